#!/usr/bin/env bash
# One command to set everything up and run the whole test suite (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test --cpu
.venv/bin/python -m ruff check bot tests scripts
exec .venv/bin/python -m pytest "$@"
