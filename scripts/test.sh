#!/usr/bin/env bash
# One command to set everything up and run the whole test suite (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
# The suite needs torch only as inference's dependency and for its ONNX exports, never CUDA:
# where pip's own sources hold a CPU build (as on our CI), install that (--slim) instead of
# PyPI's CUDA build, GBs smaller, which leaves the container image tests their disk.
if torch_env=$(python3 -m tests.support.images cpu-torch 2>/dev/null); then
  env $torch_env scripts/install.sh --test --cpu --slim
else
  scripts/install.sh --test --cpu
fi
# The storage tests run against a real PostgreSQL server (tests/support/postgres.py starts a throw-away
# one); install Debian's package where it is missing and we may (root). Elsewhere they skip.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing PostgreSQL for the storage tests..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) ||
      echo "warning: could not install PostgreSQL; its tests will be skipped" >&2
  fi
fi
.venv/bin/python -m ruff check bot tests scripts benchmarks
.venv/bin/python -m mypy bot  # settings in pyproject.toml, [tool.mypy]
.venv/bin/lint-imports  # the layers contract, pyproject.toml [tool.importlinter]
exec .venv/bin/python -m pytest "$@"
