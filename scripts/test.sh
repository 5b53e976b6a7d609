#!/usr/bin/env bash
# Run the whole test suite: unit tests and integration tests against real PostgreSQL and moto's SQS server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if [ -z "${TEST_DATABASE_URL:-}" ] && ! (command -v docker >/dev/null && docker info >/dev/null 2>&1); then
  scripts/ensure-postgres.sh
fi
# -rs: every skipped test is listed with its reason (a missing tool must show, not pass quietly).
exec .venv/bin/pytest -rs "$@"
