#!/usr/bin/env bash
# Run the test suite: unit tests and integration tests against real PostgreSQL and real SQS servers (moto through
# sqs2pg's local SQS, and fauxqs). `scripts/test.sh --long` runs the long tier instead (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if [ -z "${TEST_DATABASE_URL:-}" ] && ! (command -v docker >/dev/null && docker info >/dev/null 2>&1); then
  scripts/ensure-postgres.sh
fi
# -rs: every skipped test is listed with its reason (a missing tool must show, not pass quietly).
exec .venv/bin/pytest -rs "$@"
