"""sqs2pg benchmark: the queue and database ceilings, a naive consumer and sqs2pg itself, in one run.

scripts/bench.sh            # or: .venv/bin/python -m bench --help
"""
