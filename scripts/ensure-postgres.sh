#!/usr/bin/env bash
# Make sure the local PostgreSQL answers on 127.0.0.1:5432; start the Debian cluster if it is down.
# `scripts/ensure-postgres.sh VARIABLE`: the variable that would point the caller at another server (its
# failure message names it). Callers run it only when they are about to use the local server.
set -euo pipefail
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
ready && exit 0
if command -v pg_lsclusters >/dev/null; then
  version=$(pg_lsclusters --no-header | awk '$2 == "main" {print $1; exit}')
  if [ -n "$version" ]; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
fi
for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
echo "PostgreSQL is not answering on 127.0.0.1:5432 (set ${1:-TEST_DATABASE_URL} to use another server)" >&2
exit 1
