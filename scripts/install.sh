#!/usr/bin/env bash
# Set up .venv in the checkout with everything clipbot needs. Idempotent: a
# second run with the same pyproject.toml and options does nothing.
#
#   scripts/install.sh            # the bot (CPU onnxruntime, or GPU when nvidia-smi finds one)
#   scripts/install.sh --test     # plus the test and dev tools
#   scripts/install.sh --gpu      # force the GPU build of onnxruntime
#   scripts/install.sh --cpu      # force the CPU build
set -euo pipefail
cd "$(dirname "$0")/.."

extras=()
gpu=auto
for arg in "$@"; do
  case "$arg" in
    --test) extras+=(test) ;;
    --gpu) gpu=yes ;;
    --cpu) gpu=no ;;
    *) echo "usage: scripts/install.sh [--test] [--gpu|--cpu]" >&2; exit 2 ;;
  esac
done
if [[ $gpu == auto ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu=yes; else gpu=no; fi
fi
[[ $gpu == yes ]] && extras+=(gpu)

python=${PYTHON:-}
if [[ -z $python ]]; then
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 12)))'; then
      python=$candidate; break
    fi
  done
fi
[[ -n $python ]] || { echo "error: clipbot needs Python 3.11 or 3.12" >&2; exit 1; }

[[ -x .venv/bin/python ]] || "$python" -m venv .venv
spec="."
if ((${#extras[@]})); then spec=".[$(IFS=,; echo "${extras[*]}")]"; fi
stamp=".venv/.clipbot-installed"
want="$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16) $spec"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi

echo "Installing clipbot $spec into .venv (first time: a few minutes, torch is large)..." >&2
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e "$spec"

if [[ $gpu == yes ]]; then
  # onnxruntime (CPU, pulled in by inference) and onnxruntime-gpu write the same
  # files; with both present the CPU build can win silently. Keep only the GPU one.
  version=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("onnxruntime-gpu"))')
  .venv/bin/python -m pip uninstall -q -y onnxruntime onnxruntime-gpu
  .venv/bin/python -m pip install -q --no-deps "onnxruntime-gpu==$version"
  .venv/bin/python -c 'import onnxruntime as o; p = o.get_available_providers(); print("onnxruntime providers:", p); assert "CUDAExecutionProvider" in p'
fi
echo "$want" > "$stamp"
