#!/usr/bin/env bash
# The benchmark (not part of the test suite): ceilings, a naive consumer and sqs2pg on fauxqs and the local
# PostgreSQL. Prints a table and writes bench/results/latest.json. `scripts/bench.sh --help` for the options.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/ensure-postgres.sh
# the bench extra: py-spy, and the peer consumer with its PostgreSQL driver
{ [ -x .venv/bin/py-spy ] && .venv/bin/python -c 'import aws_sqs_consumer, psycopg' 2>/dev/null; } \
  || .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,bench]'
exec .venv/bin/python -m bench "$@"
