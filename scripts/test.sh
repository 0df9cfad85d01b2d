#!/usr/bin/env bash
# The full check, as CI runs it: lint, types, then every test (root: tests use network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check pycni tests bench
.venv/bin/ruff format --check pycni tests bench
.venv/bin/mypy pycni tests bench
.venv/bin/lint-imports  # the import direction and no cycles (pyproject.toml [tool.importlinter])
# pytest exits 5 when it collects no test: that is a failure here too (set -e).
.venv/bin/python -m pytest -n 2 -q "$@"
