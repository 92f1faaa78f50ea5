#!/usr/bin/env bash
# One command to set everything up and start the bot (reads .env / the environment).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh "$@"
exec .venv/bin/python -m bot run
