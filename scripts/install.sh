#!/usr/bin/env bash
# Set up .venv in the checkout with everything clipbot needs. Idempotent: a
# second run with the same pyproject.toml and options does nothing.
#
#   scripts/install.sh            # the bot (CPU onnxruntime, or GPU when nvidia-smi finds one)
#   scripts/install.sh --test     # plus the test and dev tools
#   scripts/install.sh --gpu      # force the GPU build of onnxruntime
#   scripts/install.sh --cpu      # force the CPU build
#   scripts/install.sh --slim     # a CPU build of torch first (no CUDA libraries: GBs smaller)
#
# --slim takes torch and torchvision from TORCH_INDEX_URL (default: PyTorch's CPU wheel
# index). TORCH_INDEX_URL= (empty) takes them from pip's own configured sources instead, and
# TORCH_VERSION=X pins torch (a mirror or wheel folder holding a CPU build, as on our CI).
# inference needs torch (rf-clip's preprocessing) but never runs a model on it, so the CPU
# build serves the GPU image too: onnxruntime-gpu brings its own CUDA libraries.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=()
gpu=auto
slim=no
for arg in "$@"; do
  case "$arg" in
    --test) extras+=(test) ;;
    --gpu) gpu=yes ;;
    --cpu) gpu=no ;;
    --slim) slim=yes ;;
    *) echo "usage: scripts/install.sh [--test] [--gpu|--cpu] [--slim]" >&2; exit 2 ;;
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
torch_index=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}
torch_version=${TORCH_VERSION:-}
want="$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16) $spec"
[[ $slim == yes ]] && want+=" slim:$torch_index:$torch_version"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi

echo "Installing clipbot $spec into .venv (first time: a few minutes, torch is large)..." >&2
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q --upgrade pip
if [[ $slim == yes ]]; then
  # Installed first, torch stays: the next step finds the requirement met and keeps it.
  # The range is pyproject.toml's test extra (torchvision's C ops must match torch's build).
  torch_args=("torch${torch_version:+==$torch_version}" "torchvision>=0.21,<0.30")
  [[ -z $torch_version ]] && torch_args[0]="torch>=2.6,<2.15"
  [[ -n $torch_index ]] && torch_args+=(--index-url "$torch_index")
  .venv/bin/python -m pip install -q "${torch_args[@]}"
  .venv/bin/python -c 'import torch; assert not torch.version.cuda, f"torch {torch.__version__} is a CUDA build"'
fi
.venv/bin/python -m pip install -q -e "$spec"
if [[ $slim == yes ]] && ! .venv/bin/python -c 'import torchvision' >/dev/null 2>&1; then
  # A CPU torch next to PyPI's torchvision (a CUDA build: where no CPU torchvision can be had,
  # as with TORCH_INDEX_URL= on our CI) cannot load torchvision's C++ ops, and torchvision's
  # import then fails on its unguarded op registrations (pytorch/vision#9085). clipbot uses
  # only torchvision's transforms: guard those registrations like the others, as the proposed
  # upstream fix does (pytorch/vision#9086). PyTorch's CPU index gives a matching pair instead.
  registrations=$(.venv/bin/python -c 'import importlib.util as u; print(u.find_spec("torchvision").submodule_search_locations[0])')/_meta_registrations.py
  sed -i -E 's/^@torch\.library\.register_fake\("torchvision::(\w+)"\)$/@register_meta("\1")/' "$registrations"
  .venv/bin/python -c 'import torchvision.transforms'
  echo "note: torchvision's C++ ops do not load with this torch (CPU); its transforms do" >&2
fi

if [[ $gpu == yes ]]; then
  # onnxruntime (CPU, pulled in by inference) and onnxruntime-gpu write the same
  # files; with both present the CPU build can win silently. Keep only the GPU one.
  version=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("onnxruntime-gpu"))')
  .venv/bin/python -m pip uninstall -q -y onnxruntime onnxruntime-gpu
  .venv/bin/python -m pip install -q --no-deps "onnxruntime-gpu==$version"
  .venv/bin/python -c 'import onnxruntime as o; p = o.get_available_providers(); print("onnxruntime providers:", p); assert "CUDAExecutionProvider" in p'
fi
echo "$want" > "$stamp"
