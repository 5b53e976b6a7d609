#!/usr/bin/env bash
# Static checks of the deployment artefacts: checkov on the Terraform module (deploy/terraform) and on the
# Dockerfile. Needs no Docker engine, no terraform binary, no AWS account. (The module's parse and property
# tests, tests/deploy, run in the main suite, scripts/test.sh, with python-hcl2.)
# Installs its tools into .venv-iac (requirements-iac.txt) on first use. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-iac

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when requirements-iac.txt changed since the last install.
stamp=$VENV/.iac-installed
if [ ! -f "$stamp" ] || [ requirements-iac.txt -nt "$stamp" ]; then
  log=$VENV/install.log
  { "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet --upgrade pip \
    && "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r requirements-iac.txt; } >"$log" 2>&1 \
    || { tail -40 "$log" >&2; echo "check-iac: pip install failed (full log: $log)" >&2; exit 1; }
  touch "$stamp"
fi

# --skip-download: no calls to the vendor's platform (no network needed; results are the same).
checkov=("$VENV/bin/checkov" --quiet --compact --skip-download)

# Each run on its own line: under `set -e` a failure in `cmd && echo ok` does not stop the script (only the
# last command of an && list is checked), which hid checkov's findings on the module.
echo "== checkov: deploy/terraform"
"${checkov[@]}" -d deploy/terraform --framework terraform
echo "checkov: deploy/terraform passed"

echo "== checkov: Dockerfile"
"${checkov[@]}" -f Dockerfile --framework dockerfile
echo "checkov: Dockerfile passed"

