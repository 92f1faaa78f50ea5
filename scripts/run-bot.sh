#!/usr/bin/env bash
# One command to set everything up and start the bot (reads .env / the environment).
# It stays in the foreground and exits with the bot's own code (exec): 0 stopped, 1 crash
# or transient start-up failure, 78 a configuration error a restart cannot fix. Under a
# supervisor run `.venv/bin/python -m bot run` instead (deploy/clipbot.service; README,
# "Running for the long term").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh "$@"
exec .venv/bin/python -m bot run
