#!/usr/bin/env bash
# Run the test suite: unit tests and integration tests against real PostgreSQL and real SQS servers (moto through
# sqs2pg's local SQS, and fauxqs). `scripts/test.sh --long` runs the long tier instead (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# The local PostgreSQL, unless TEST_DATABASE_URL or a Docker engine (testcontainers) provides one, or every test
# asked for is a unit test (they need no server).
unit_only=false
paths=()
for arg in "$@"; do case $arg in -*) ;; *) paths+=("$arg") ;; esac; done
if [ ${#paths[@]} -gt 0 ]; then
  unit_only=true
  for p in "${paths[@]}"; do case $p in tests/unit|tests/unit/*) ;; *) unit_only=false ;; esac; done
fi
if ! $unit_only && [ -z "${TEST_DATABASE_URL:-}" ] && ! (command -v docker >/dev/null && docker info >/dev/null 2>&1); then
  scripts/ensure-postgres.sh TEST_DATABASE_URL
fi
# -rs: every skipped test is listed with its reason (a missing tool must show, not pass quietly).
# Test files run side by side in TEST_WORKERS processes (4; 0 runs them in this one), each with its own SQS
# servers and template database: most of a test's time is spent waiting on servers, not on the CPU.
exec .venv/bin/pytest -rs -n "${TEST_WORKERS:-4}" --dist loadfile "$@"
