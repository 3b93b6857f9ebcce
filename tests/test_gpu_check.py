"""scripts/gpu_check.sh, the GPU measurement for a lent device, in its CPU dry mode:
the same code path (random Qwen2 models of tiny dimensions trained through
LoraBase.around / train_lora, prediction, the plan's estimates, the KV-cache table)
writes every field the GPU run writes."""
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_dry_run_writes_every_field(tmp_path):
    gc = _script()
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == {"env.json", "job_weak.json", "job_strong.json", "gpu_check.json",
                                               "gpu_check.md", "gpu_check.log"}
    data = json.loads((out / "gpu_check.json").read_text())
    assert data["env"]["dry"] is True and data["env"]["torch"] and data["env"]["gpu"] is None
    for job in ("weak", "strong"):
        j = data["jobs"][job]
        assert set(j) == set(gc.JOB_FIELDS), job
        assert j["status"] == "ok" and j["error"] is None and j["device"] == "cpu"
        s = j["settings"]
        assert (s["batch_size"], s["grad_accum"], s["max_length"]) == tuple(gc.DRY_TRAIN.values())
        assert s["dtype"] == "bfloat16" and s["gradient_checkpointing"]  # the paper config's settings
        assert len(j["step_s"]) == s["steps"] and all(_positive(t) for t in j["step_s"])
        assert len(j["losses"]) == s["steps"] + s["warmup"] and all(math.isfinite(x) for x in j["losses"])
        assert j["tokens_per_step"] == s["batch_size"] * s["grad_accum"] * s["max_length"]
        for k in ("median_step_s", "train_tokens_per_s", "train_flops_per_token", "train_tflops", "build_s",
                  "plan_memory_gib", "plan_step_s", "time_ratio", "params", "trainable_params"):
            assert _positive(j[k]), k
        assert j["trainable_params"] < j["params"]
        assert j["trainable_params"] == j["plan_memory_parts"]["trainable_params"]  # the plan counts peft's
        for k in ("mfu", "peak_allocated_gib", "peak_reserved_gib", "non_torch_gib", "process_peak_gib",
                  "memory_ratio_allocated", "memory_ratio_process"):
            assert j[k] is None, k  # no CUDA: no memory or MFU figures
        assert set(j["predict"]) == set(gc.PREDICT_FIELDS)
        assert all(_positive(j["predict"][k]) for k in ("rows", "s_per_batch", "tokens_per_s", "tflops"))
    kv = {(k["model"], k["gpu_memory_gib"]): k for k in data["kv_cache"]}
    assert len(kv) == 4
    big = kv[("Qwen/Qwen2.5-14B", 80.0)]
    assert big["kv_bytes_per_token"] == 2 * 48 * 8 * 128 * 2  # 192 KiB, the figure
    assert big["verdict"] == "limited" and big["concurrent"] < big["max_num_seqs"]
    assert kv[("Qwen/Qwen2.5-14B", 141.0)]["kv_tokens"] > big["kv_tokens"]
    md = (out / "gpu_check.md").read_text()
    assert "| weak |" in md and "| strong |" in md and "vLLM KV cache" in md
    log = (out / "gpu_check.log").read_text()
    assert "weak: step 4/4" in log and "done (rc 0)" in log


def test_summary_keeps_what_finished_when_a_part_failed(tmp_path):
    """A part that died (the 14B out of memory, or killed) leaves its partial file or
    none: the summary still reports the other's numbers and names the failure."""
    gc = _script()
    weak = dict.fromkeys(gc.JOB_FIELDS) | {"job": "weak", "model": "Qwen/Qwen2.5-7B", "status": "ok",
                                           "median_step_s": 2.5, "plan_memory_gib": 25.5}
    strong = dict.fromkeys(gc.JOB_FIELDS) | {"job": "strong", "status": "error while training",
                                             "error": "Traceback ...\ntorch.OutOfMemoryError: CUDA out of memory"}
    (tmp_path / "job_weak.json").write_text(json.dumps(weak))
    (tmp_path / "job_strong.json").write_text(json.dumps(strong))
    data = gc.summary_part(tmp_path)
    assert data["jobs"]["weak"]["median_step_s"] == 2.5 and data["env"] is None
    md = (tmp_path / "gpu_check.md").read_text()
    assert "| weak | Qwen/Qwen2.5-7B | ok | 2.50 |" in md
    assert "error while training" in md and "OutOfMemoryError" in md
    (tmp_path / "job_strong.json").unlink()
    assert gc.summary_part(tmp_path)["jobs"]["strong"]["status"] == "not run"
