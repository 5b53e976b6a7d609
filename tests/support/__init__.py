"""What the tests and the benchmark share: servers started on free ports, and the checks they both make."""
