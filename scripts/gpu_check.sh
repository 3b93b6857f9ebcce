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
# limits per part (seconds); the whole stays under ~8 minutes on one GPU
t_env="${GPU_CHECK_T_ENV:-90}" t_job="${GPU_CHECK_T_JOB:-210}" t_sum="${GPU_CHECK_T_SUM:-90}"
status=0
part() {  # part NAME LIMIT: one process, its output to the terminal and the log
    local name="$1" limit="$2"
    echo "[gpu_check.sh $(date +%T)] part $name (limit ${limit}s)" | tee -a "$log"
    timeout --kill-after=10 "$limit" "$py" scripts/gpu_check.py "$name" --out "$OUT" $dry 2>&1 | tee -a "$log"
    local rc="${PIPESTATUS[0]}"
    [ "$rc" = 0 ] || { echo "[gpu_check.sh] part $name ended with rc $rc" | tee -a "$log"; status=1; }
}
part env "$t_env"
part weak "$t_job"
part strong "$t_job"
part summary "$t_sum"
echo "[gpu_check.sh $(date +%T)] done (rc $status): $OUT/gpu_check.md" | tee -a "$log"
exit "$status"
