#!/usr/bin/env bash
# The paper config's weak (Qwen2.5-7B) and strong (Qwen2.5-14B) training jobs on one GPU,
# random-initialised weights of the real architectures, measured beside `run.py plan`'s
# estimates (scripts/gpu_check.py says what and how). Every part runs in its own process
# under its own time limit, so an out-of-memory or a hang in the 14B keeps the 7B's numbers.
#
#   bash scripts/gpu_check.sh          # on a CUDA machine, ~3-5 min on one H100/H200
#   bash scripts/gpu_check.sh --dry    # (or DRY=1) the same code on CPU, tiny models, < 1 min
#
# Writes to $OUT (default runs/gpu_check): gpu_check.json (everything), gpu_check.md (the
# tables), gpu_check.log (this script's output), env.json, job_weak.json, job_strong.json.
# Needs the project's imports (pydantic, pyyaml, ...) beside torch/transformers/peft/accelerate.
set -u
cd "$(dirname "$0")/.."
dry=""
if [ "${1:-}" = "--dry" ] || [ "${DRY:-0}" = "1" ]; then dry="--dry"; fi
OUT="${OUT:-runs/gpu_check}"
mkdir -p "$OUT"
log="$OUT/gpu_check.log"
: > "$log"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
# no tqdm bars in the log (the script prints its own progress lines)
export TQDM_DISABLE=1
py="${PYTHON:-python3}"
# limits per part (seconds): at most 8 minutes in all; a job takes ~1-2 minutes on an H100/H200
# (--dry: generous ones, a loaded CI machine is slow to import torch)
if [ -n "$dry" ]; then d_env=300 d_job=600 d_sum=300; else d_env=60 d_job=180 d_sum=60; fi
t_env="${GPU_CHECK_T_ENV:-$d_env}" t_job="${GPU_CHECK_T_JOB:-$d_job}" t_sum="${GPU_CHECK_T_SUM:-$d_sum}"
# e.g. GPU_CHECK_ARGS="--steps 5 --warmup 2" (scripts/gpu_check.py -h)
args="${GPU_CHECK_ARGS:-}"
status=0
part() {  # part NAME LIMIT: one process, its output to the terminal and the log
    local name="$1" limit="$2"
    echo "[gpu_check.sh $(date +%T)] part $name (limit ${limit}s)" | tee -a "$log"
    local extra=""
    case "$name" in env|summary) ;; *) extra="$args";; esac
    # shellcheck disable=SC2086  # $dry and $extra are word lists
    timeout --kill-after=10 "$limit" "$py" scripts/gpu_check.py "$name" --out "$OUT" $dry $extra 2>&1 | tee -a "$log"
    local rc="${PIPESTATUS[0]}"
    [ "$rc" = 0 ] || { echo "[gpu_check.sh] part $name ended with rc $rc" | tee -a "$log"; status=1; }
}
part env "$t_env"
part weak "$t_job"
part strong "$t_job"
part summary "$t_sum"
echo "[gpu_check.sh $(date +%T)] done (rc $status): $OUT/gpu_check.md" | tee -a "$log"
exit "$status"
