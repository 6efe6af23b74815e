#!/usr/bin/env bash
# The whole test suite: install (editable, with dev extras), lint, type-check, unit + end-to-end tests.
# End-to-end tests need the real kubectl (v1.32) on PATH; they fail loudly without it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
./scripts/install-system-deps.sh
command -v kubectl >/dev/null || { echo "kubectl (v1.32) must be on PATH for the e2e tests" >&2; exit 1; }
python3 -m ruff check src tests bench
python3 -m mypy
python3 -m pytest -q -n 2 --dist loadfile tests "$@"
