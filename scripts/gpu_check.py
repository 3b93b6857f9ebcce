"""The paper config's training jobs on a real GPU, measured beside `run.py plan`'s
estimates: scripts/gpu_check.sh runs each part in its own process (a failure or an
out-of-memory in one keeps the others' numbers) and writes everything to $OUT.

No hub weights are needed: each model is the REAL architecture (the published
Qwen2.5-7B / -14B config values of w2s_run/services/plan.py) with random weights,
built in bf16 directly on the device, and a word-level tokenizer built in code (the
token ids do not matter to the cost). Training runs the project's own path
(LoraBase.around -> train_lora -> fit) with configs/paper_sciq_gpu.yaml's
weak.train / strong.train settings: every row is max_length tokens (the plan's
upper bound), `--steps` timed optimiser steps after `--warmup` untimed ones.

Parts (`python scripts/gpu_check.py PART --out DIR [--dry]`):
  env      versions, GPU, driver                          -> DIR/env.json
  weak     Qwen2.5-7B  x weak.train, then prediction      -> DIR/job_weak.json
  strong   Qwen2.5-14B x strong.train, then prediction    -> DIR/job_strong.json
  summary  the above merged, with the vLLM KV-cache check -> DIR/gpu_check.json, gpu_check.md

Achieved FLOP/s uses plan.py's formula (train_flops_per_token: 3 forwards per token
with checkpointing, a forward = 2 x linear weights + 2 x layers x length x hidden),
so its value is what plan.TRAIN_FLOPS should hold. `--dry`: the same code on CPU
with tiny dimensions and short sequences (memory fields null), for CI.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GIB = 2 ** 30
PAPER = ROOT / "configs" / "paper_sciq_gpu.yaml"
JOBS = {"weak": "Qwen/Qwen2.5-7B", "strong": "Qwen/Qwen2.5-14B"}
# dense bf16 peak FLOP/s by card (SXM parts; NVIDIA's data sheets, without sparsity)
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12}
# --dry: two tiny Qwen2 shapes (the architecture, not the size)
TINY = {"weak": dict(model_type="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, vocab_size=512, tie_word_embeddings=False, dtype="bfloat16"),
        "strong": dict(model_type="qwen2", hidden_size=96, intermediate_size=192, num_hidden_layers=3,
                       num_attention_heads=6, num_key_value_heads=2, vocab_size=512, tie_word_embeddings=False,
                       dtype="bfloat16")}
DRY_TRAIN = {"batch_size": 2, "grad_accum": 2, "max_length": 64}
WORDS = 1000
PREDICT_BATCHES = 4
# every field a job's JSON has (tests/test_gpu_check.py holds the dry run to it)
JOB_FIELDS = ("job", "model", "status", "error", "device", "dims", "settings", "params", "trainable_params",
              "attn_implementation", "build_s", "step_s", "median_step_s", "tokens_per_step",
              "train_tokens_per_s", "train_flops_per_token", "train_tflops", "mfu", "losses",
              "peak_allocated_gib", "peak_reserved_gib", "non_torch_gib", "process_peak_gib",
              "plan_memory_gib", "plan_memory_parts", "memory_ratio_allocated", "memory_ratio_process",
              "plan_step_s", "time_ratio", "predict")
PREDICT_FIELDS = ("rows", "batch_size", "s_per_batch", "tokens_per_s", "tflops", "peak_allocated_gib")


def say(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


# ---------------------------------------------------------------- env
def env_part(dry: bool) -> dict:
    import torch
    out = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "dry": dry, "cpus": os.cpu_count()}
    for mod in ("transformers", "peft", "accelerate", "tokenizers", "pydantic", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception as e:  # recorded, not fatal: the parts that need it fail on their own
            out[mod] = f"missing ({type(e).__name__})"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(gpu=p.name, gpu_memory_gib=p.total_memory / GIB, gpu_count=torch.cuda.device_count(),
                   capability=f"{p.major}.{p.minor}")
        try:
            out["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=30).stdout.strip() or None
        except Exception:
            out["driver"] = None
    else:
        out.update(gpu=None, gpu_memory_gib=None, gpu_count=0, capability=None, driver=None)
    try:
        out["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                       timeout=30).stdout.strip() or None
    except Exception:
        out["commit"] = None
    return out


# ---------------------------------------------------------------- one training job
def word_tokenizer(words: int):
    """A word-level tokenizer ("w0".."w{words-1}", pad, unk) in transformers' fast-tokenizer
    class: the classifier pads and truncates with it as with the model's own."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {f"w{i}": i for i in range(words)} | {"<pad>": words, "<unk>": words + 1}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>",
                                  model_input_names=["input_ids", "attention_mask"])  # what Qwen2 reads
    tok.padding_side = "right"
    return tok


def _shape_and_spec(job: str, dry: bool, tmp: Path):
    """The plan's ModelShape and the config values the model is built from (one source)."""
    from transformers import AutoConfig
    from w2s_run.services.plan import PUBLISHED, load_shape
    if dry:
        spec = dict(TINY[job])
        folder = tmp / f"tiny-{job}"
        values = dict(spec)
        AutoConfig.for_model(values.pop("model_type"), **values).save_pretrained(folder)
        return load_shape(str(folder)), spec
    return load_shape(JOBS[job]), dict(PUBLISHED[JOBS[job]])


def _train_config(job: str, dry: bool):
    from w2s_base.config import load_config
    cfg = load_config(PAPER)
    tcfg = (cfg.weak if job == "weak" else cfg.strong).train
    return tcfg.model_copy(update={"epochs": 1.0, **(DRY_TRAIN if dry else {})})


def _peak(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def job_part(job: str, out_file: Path, dry: bool, steps: int, warmup: int) -> dict:
    import numpy as np
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from w2s_base.losses import XentLoss
    from w2s_base.training.classifier import LoraBase, torch_dtype, train_lora
    from w2s_base.training.distributed import device
    from w2s_run.services.plan import TRAIN_FLOPS, estimate_memory, train_flops_per_token

    res: dict = dict.fromkeys(JOB_FIELDS)
    dev = device()
    cuda = dev.type == "cuda"
    res.update(job=job, status="starting", device=str(dev))

    def save(status: str) -> None:
        res["status"] = status
        write_json(out_file, res)

    with tempfile.TemporaryDirectory() as tmp:
        shape, spec = _shape_and_spec(job, dry, Path(tmp))
    tcfg = _train_config(job, dry)
    res.update(model=shape.model, dims={k: v for k, v in spec.items() if k != "dtype"},
               settings=tcfg.model_dump(include={"batch_size", "grad_accum", "max_length", "dtype",
                                                 "gradient_checkpointing", "mode"}) | {
                   "lora_r": tcfg.lora.r, "lora_targets": tcfg.lora.target_modules, "loss": "xent",
                   "steps": steps, "warmup": warmup})
    est = estimate_memory(shape, tcfg)
    res.update(plan_memory_gib=est.total, plan_memory_parts=est.model_dump(),
               train_flops_per_token=train_flops_per_token(shape, tcfg))
    save("building")
    say(f"{job}: building {shape.model} ({shape.params / 1e9:.2f}B) in {tcfg.dtype} on {dev}")

    t0 = time.perf_counter()
    values = {k: v for k, v in spec.items() if k != "dtype"}
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    config.num_labels = 2
    with torch.device(dev):  # weights are created (and initialised) on the device, in bf16
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_config(config, dtype=torch_dtype(tcfg.dtype))
    res["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
    words = min(WORDS, config.vocab_size - 2)  # every id (words, pad, unk) inside the vocabulary
    base = LoraBase.around(model, word_tokenizer(words), tcfg, name=f"random {shape.model}")
    del model
    if cuda:
        torch.cuda.synchronize()
    res["build_s"] = time.perf_counter() - t0
    say(f"{job}: built in {res['build_s']:.1f} s (attention: {res['attn_implementation']})")

    rows_per_step = tcfg.batch_size * tcfg.grad_accum
    n = (warmup + steps) * rows_per_step  # epochs 1: exactly warmup + steps optimiser steps
    rng = np.random.default_rng(0)
    # max_length + 8 words each: every row is cut to exactly max_length tokens
    texts = [" ".join(f"w{i}" for i in rng.integers(0, words, tcfg.max_length + 8)) for _ in range(n)]
    labels = rng.random(n).astype(np.float32)
    stamps: list[float] = []

    def stamp(opt, args, kwargs):
        if cuda:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        res["step_s"] = [b - a for a, b in zip(stamps[warmup - 1:], stamps[warmup:])]
        write_json(out_file, res)  # a killed run keeps the steps it timed
        say(f"{job}: step {len(stamps)}/{warmup + steps}")

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    save("training")
    handle = register_optimizer_step_post_hook(stamp)
    try:
        clf = train_lora(base, texts, labels, XentLoss(), tcfg, seed=0, desc=f"gpu_check {job}")
    finally:
        handle.remove()
    step_s = res["step_s"]
    med = float(np.median(step_s))
    tokens = rows_per_step * tcfg.max_length
    flops = res["train_flops_per_token"] * tokens
    res.update(params=sum(p.numel() for p in clf.model.parameters()),
               trainable_params=sum(p.numel() for p in clf.model.parameters() if p.requires_grad),
               step_s=step_s, median_step_s=med, tokens_per_step=tokens, train_tokens_per_s=tokens / med,
               train_tflops=flops / med / 1e12, losses=clf.history, plan_step_s=flops / TRAIN_FLOPS)
    res["time_ratio"] = med / res["plan_step_s"]
    if cuda:
        peak = _peak(torch.cuda.get_device_name(0))
        res["mfu"] = flops / med / peak if peak else None
        free, total = torch.cuda.mem_get_info()
        non_torch = (total - free - torch.cuda.memory_reserved()) / GIB  # CUDA context, cuBLAS, ...
        res.update(peak_allocated_gib=torch.cuda.max_memory_allocated() / GIB,
                   peak_reserved_gib=torch.cuda.max_memory_reserved() / GIB, non_torch_gib=non_torch)
        res["process_peak_gib"] = res["peak_reserved_gib"] + non_torch
        res["memory_ratio_allocated"] = res["peak_allocated_gib"] / est.total
        res["memory_ratio_process"] = res["process_peak_gib"] / est.total
    save("predicting")
    say(f"{job}: {med:.2f} s/step, {tokens / med:,.0f} tokens/s, {res['train_tflops']:.1f} TFLOP/s"
        + (f", peak {res['peak_allocated_gib']:.1f} GiB allocated / {res['process_peak_gib']:.1f} GiB process"
           f" vs plan {est.total:.1f} GiB" if cuda else ""))

    # prediction at the classifier's batch size (the training batch size), warmed once
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rows = PREDICT_BATCHES * tcfg.batch_size
    clf.predict(texts[:tcfg.batch_size])
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    p = clf.predict(texts[:rows])
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    assert np.all(np.isfinite(p)), "non-finite predictions"
    res["predict"] = {"rows": rows, "batch_size": tcfg.batch_size, "s_per_batch": dt / PREDICT_BATCHES,
                      "tokens_per_s": rows * tcfg.max_length / dt,
                      "tflops": shape.forward_flops(tcfg.max_length) * rows * tcfg.max_length / dt / 1e12,
                      "peak_allocated_gib": torch.cuda.max_memory_allocated() / GIB if cuda else None}
    say(f"{job}: predict {res['predict']['tokens_per_s']:,.0f} tokens/s ({res['predict']['tflops']:.1f} TFLOP/s)")
    save("ok")
    return res


# ---------------------------------------------------------------- summary
def kv_rows() -> list[dict]:
    """The debate stage's vLLM KV cache for the paper config's engine settings, both
    paper models on an 80 GB and a 141 GB card (analytic: no vLLM here)."""
    from w2s_base.config import load_config
    from w2s_run.services.plan import PROMPT_TOKENS, kv_check, load_shape
    cfg = load_config(PAPER)
    seq = PROMPT_TOKENS + cfg.debate.num_turns * cfg.debate.sampling.max_new_tokens
    rows = []
    for model in JOBS.values():
        shape = load_shape(model)
        for gib in (80.0, 141.0):
            rows.append(kv_check(shape, gib, cfg.debate.vllm, seq).model_dump())
    return rows


def _f(x, fmt=".2f") -> str:
    return "n/a" if x is None else format(x, fmt)


def summary_part(out: Path) -> dict:
    from w2s_run.services import plan
    data: dict = {"env": None, "jobs": {}, "kv_cache": None,
                  "plan_assumptions": {"TRAIN_FLOPS": plan.TRAIN_FLOPS, "GEN_TOKENS_PER_S": plan.GEN_TOKENS_PER_S,
                                       "PROMPT_TOKENS": plan.PROMPT_TOKENS,
                                       "VLLM_RESERVE_GIB": plan.VLLM_RESERVE_GIB}}
    if (out / "env.json").is_file():
        data["env"] = json.loads((out / "env.json").read_text())
    for job in JOBS:
        f = out / f"job_{job}.json"
        data["jobs"][job] = json.loads(f.read_text()) if f.is_file() else {"job": job, "status": "not run"}
    data["kv_cache"] = kv_rows()
    write_json(out / "gpu_check.json", data)

    env = data["env"] or {}
    lines = [f"# gpu_check: {env.get('gpu') or 'CPU (dry run)'}",
             f"torch {env.get('torch')}, transformers {env.get('transformers')}, peft {env.get('peft')}, "
             f"CUDA {env.get('cuda')}, driver {env.get('driver')}, commit {env.get('commit')}", "",
             "| job | model | status | s/step | tokens/s | TFLOP/s | MFU | peak alloc GiB | process GiB "
             "| plan GiB | alloc/plan | plan s/step | predict tokens/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for job, r in data["jobs"].items():
        pr = r.get("predict") or {}
        lines.append(f"| {job} | {r.get('model')} | {r.get('status')} | {_f(r.get('median_step_s'))} | "
                     f"{_f(r.get('train_tokens_per_s'), ',.0f')} | {_f(r.get('train_tflops'), '.1f')} | "
                     f"{_f(r.get('mfu'), '.2f')} | {_f(r.get('peak_allocated_gib'), '.1f')} | "
                     f"{_f(r.get('process_peak_gib'), '.1f')} | {_f(r.get('plan_memory_gib'), '.1f')} | "
                     f"{_f(r.get('memory_ratio_allocated'))} | {_f(r.get('plan_step_s'))} | "
                     f"{_f(pr.get('tokens_per_s'), ',.0f')} |")
        if r.get("error"):
            lines.append(f"|  | error: {r['error'].splitlines()[-1][:200]} |")
    lines += ["", "vLLM KV cache (analytic, paper engine settings):", "",
              "| model | GPU GiB | weights GiB | KiB/token | cache tokens | need (seqs x tokens) | verdict |",
              "|---|---|---|---|---|---|---|"]
    for k in data["kv_cache"]:
        lines.append(f"| {k['model']} | {k['gpu_memory_gib']:.0f} | {k['weights_gib']:.1f} | "
                     f"{k['kv_bytes_per_token'] // 1024} | {k['kv_tokens']:,} | {k['max_num_seqs']} x "
                     f"{k['seq_tokens']:,} | {k['verdict']} ({k['concurrent']} at once) |")
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["env", *JOBS, "summary"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dry", action="store_true", help="CPU, tiny dimensions (CI)")
    ap.add_argument("--steps", type=int, default=3, help="timed optimiser steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed optimiser steps first (>= 1)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.part == "env":
        env = env_part(a.dry)
        write_json(a.out / "env.json", env)
        say(json.dumps(env))
    elif a.part == "summary":
        summary_part(a.out)
    else:
        if a.warmup < 1 or a.steps < 1:
            ap.error("--steps and --warmup must be >= 1")
        out_file = a.out / f"job_{a.part}.json"
        try:
            job_part(a.part, out_file, a.dry, a.steps, a.warmup)
        except BaseException as e:  # OOM included: what was measured so far stays in the file
            say(f"{a.part}: FAILED {type(e).__name__}: {e}")
            res = json.loads(out_file.read_text()) if out_file.is_file() else dict.fromkeys(JOB_FIELDS)
            res.update(job=a.part, error=traceback.format_exc()[-4000:],
                       status=f"error while {res.get('status') or 'starting'}")
            write_json(out_file, res)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
