"""Scripts run from the repository root as modules (`python -m scripts.chaos`), so they import the test kit
(tests/support) without touching sys.path."""
