#!/usr/bin/env bash
# Create .venv and install sqs2pg with its test dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "sqs2pg needs Python 3.11 or newer"'
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last install.
stamp=.venv/.sqs2pg-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log=.venv/install.log
  { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip \
    && .venv/bin/python -m pip install --disable-pip-version-check -e '.[test]'; } >"$log" 2>&1 \
    || { tail -40 "$log" >&2; echo "bootstrap: pip install failed (full log: $log)" >&2; exit 1; }
  touch "$stamp"
fi
