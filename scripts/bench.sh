#!/usr/bin/env bash
# The benchmark (not part of the test suite): ceilings, a naive consumer and sqs2pg on fauxqs and the local
# PostgreSQL. Prints a table and writes bench/results/latest.json. `scripts/bench.sh --help` for the options.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/ensure-postgres.sh
[ -x .venv/bin/py-spy ] || .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,bench]'
exec .venv/bin/python -m bench "$@"
