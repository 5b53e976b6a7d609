#!/usr/bin/env bash
# Lint, format check and type check (configured in pyproject.toml): ruff, then mypy on the package under its
# installed name (sqs2pg: a link to service/ on mypy_path, since mypy cannot follow the editable install),
# strict, then on the tests and tools that import it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
mkdir -p .local/mypy
ln -sfn ../../service .local/mypy/sqs2pg
.venv/bin/mypy .local/mypy/sqs2pg/*.py .local/mypy/sqs2pg/*/*.py
.venv/bin/mypy tests bench migrations scripts deploy
