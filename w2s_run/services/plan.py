"""What a run will do, and whether its training fits in GPU memory, before anything
loads (`python run.py plan --config ...`).

Per stage: the models, the debates (samples x K per protocol, turns, an upper bound
on generated tokens), the weak members and the students, and for every training
job an estimate of the GPU memory one process needs. No weights are read and the
network is never touched: a model's shape comes from its config (a local folder,
an embedded model's folder, the hub cache), or, for the paper's models when they
are not cached, from their published config values (`PUBLISHED` below); its
parameters are counted on the meta device. Last, the power of its paired comparisons:
the minimum detectable difference for its n_test and replicates (`power_plan`), with
a warning when it exceeds `report.min_effect`.

The memory model of one LoRA training process (GPU, bf16 autocast, SDPA/flash
attention, so no sequence-squared term):

  weights       parameters x bytes of train.dtype (float32 4, bfloat16 2, auto: the
                checkpoint's); float32 weights under autocast also keep bf16 copies
                of the weights a backward needs (all layers, or one with checkpointing)
  trainable     LoRA adapter + head, float32: parameter, gradient, two Adam moments
                (16 bytes each; +4 for DDP's gradient buckets with several processes);
                other members' adapters on a shared base (weak ensembles): 4 bytes each
  activations   tokens = rows per process (ceil(batch_size / processes)) x max_length;
                a layer's activations are ACT_H x hidden + ACT_I x intermediate bf16
                values per token (projections, SwiGLU, fp32 norm statistics, LoRA
                dropout copies); without checkpointing every layer keeps them, with
                it each layer keeps only its input (hidden values per token) and one
                layer at a time is recomputed in full
  overhead      CUDA context, cuBLAS workspaces, allocator fragmentation

The constants are calibrated on two measured points (80 GB H100, r = 16 all-linear
LoRA, bf16, non-reentrant checkpointing, 1 process): Qwen2.5-14B at 8 x 1024 tokens,
34.7 GiB, and Qwen2.5-7B at 8 x 2048, 24.7 GiB; the model gives 35.4 (+2 %) and
23.8 (-4 %), and 136 GiB for the 14B without checkpointing (reported: ~134, out of
memory), 143 GiB for the 7B.
tests/test_plan.py holds them to 15 %.

Time (GPU-hours per stage, and wall hours on the GPUs the config names) comes from
stated throughput assumptions, each a constant below with its source:

  training      FLOPs / TRAIN_FLOPS (achieved bf16 FLOP/s per GPU). FLOPs per token of
                a LoRA step on a frozen base: one forward F = 2 x (weights of every
                linear layer) + 2 x layers x max_length x hidden (causal attention, T/2
                keys on average); the backward costs another F (input gradients only:
                frozen weights get none, the adapters' are negligible) and gradient
                checkpointing a recomputation F: 2F, or 3F with checkpointing.
                logconf's whole-batch statistics pass (+F when a batch is split) is
                not counted. Tokens: every row padded to max_length, an upper bound
                (a batch pads to its longest text).
  prediction    F per token (weak members: transfer and test; students: test), at the
                same FLOP/s.
  debates       generated tokens (the upper bound above) / GEN_TOKENS_PER_S per GPU
                for a ~14B model, scaled by 14.8e9 / parameters; prefill not counted.
                Only for the vLLM backends (those reading debate.vllm).

The vLLM KV-cache check (the same backends): one replica's GPUs hold
gpu_memory_utilization x GPU memory; less the weights (parameters x dtype bytes) and
VLLM_RESERVE_GIB (activations, CUDA graphs), the rest is KV cache at
2 x layers x KV heads x head_dim x dtype bytes per token (split over tensor_parallel_size).
vLLM refuses to start when one max_model_len sequence does not fit (a problem here);
when max_num_seqs sequences of the expected length (PROMPT_TOKENS + turns x
max_new_tokens) do not fit, it runs fewer at once (a note: the throughput drops).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from w2s_base.config import ConfigError, RunConfig, TrainConfig, TrainMode
from w2s_base.protocols import protocol as protocol_spec
from w2s_run.report import statistics as st
from w2s_run.report.model import Report, ReportError, read_report

GIB = 2 ** 30
ACT_H = 15.0          # bf16 activation values per token per layer, per hidden unit
ACT_I = 5.0           # ... per intermediate (MLP) unit
EDGE_H = 4.0          # outside the layers: embeddings' output, final norm, head input
OVERHEAD_GIB = 2.0    # CUDA context, workspaces, fragmentation
PROBE_BATCH = 16      # FeatureExtractor's batch (frozen features, no gradient)
DEFAULT_GPU_GIB = 80.0
# Achieved bf16 training FLOP/s per GPU (formula in the docstring): an H100/H200's dense
# bf16 peak (989 TFLOP/s) x 0.40 MFU, an assumption until scripts/gpu_check.sh measures
# it (it prints the achieved value under this same formula).
TRAIN_FLOPS = 989e12 * 0.40
# vLLM generation throughput per GPU of a ~14B bf16 model at 100+ concurrent sequences:
# an assumption of this order (vLLM's published offline-throughput figures for 8-14B
# dense models on one H100 are a few thousand tokens/s); not measured here.
GEN_TOKENS_PER_S = 2000.0
GEN_REF_PARAMS = 14.8e9
PROMPT_TOKENS = 768    # a debate's prompt: instructions + SciQ-length passage + question (assumed)
VLLM_RESERVE_GIB = 2.0  # vLLM's activation peak and CUDA graphs beside weights and KV cache

# Published config values (the models' config.json on the hub), used when the config
# is not cached locally: the planner never downloads. The -Instruct models share
# their base model's shape.
_QWEN25_7B = dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                  num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                  tie_word_embeddings=False, dtype="bfloat16")
_QWEN25_14B = dict(model_type="qwen2", hidden_size=5120, intermediate_size=13824, num_hidden_layers=48,
                   num_attention_heads=40, num_key_value_heads=8, vocab_size=152064,
                   tie_word_embeddings=False, dtype="bfloat16")
PUBLISHED: dict[str, dict] = {
    "Qwen/Qwen2.5-7B": _QWEN25_7B,
    "Qwen/Qwen2.5-7B-Instruct": _QWEN25_7B,
    "Qwen/Qwen2.5-14B": _QWEN25_14B,
    "Qwen/Qwen2.5-14B-Instruct": _QWEN25_14B,
    # the embedded debater/student before its one-off GGUF conversion (afterwards
    # its converted folder's config is read)
    "smollm2-135m": dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                         tie_word_embeddings=True, dtype="bfloat16"),
}


class PlanError(ConfigError):
    """The config cannot fit (or cannot be planned); `.plan` holds the plan."""

    def __init__(self, message: str, plan: "Plan | None" = None):
        super().__init__(message)
        self.plan = plan


# ---------------------------------------------------------------- model shapes
class ModelShape(BaseModel):
    """What the memory model needs of one model, read from its config."""
    model: str
    source: str                      # where the config came from
    model_type: str
    hidden: int
    intermediate: int
    layers: int
    params: int                      # the sequence-classification model (2 labels)
    layer_params: int                # one layer's (the largest)
    checkpoint_dtype: str | None     # the dtype the checkpoint declares ("auto")
    linear: list[tuple[str, int, int]]  # (name, in, out) of every nn.Linear but the head
    head_params: int
    vocab: int
    tied: bool                       # the LM head shares the embeddings' weights
    kv_heads: int
    head_dim: int
    context: int                     # max_position_embeddings (0: not stated)

    @property
    def lm_params(self) -> int:
        """Parameters of the causal LM (what vLLM loads): the classifier's, head swapped."""
        return self.params - self.head_params + (0 if self.tied else self.vocab * self.hidden)

    def forward_flops(self, length: int) -> float:
        """FLOPs of one forward pass per token at sequence length `length` (docstring)."""
        return 2.0 * sum(i * o for _, i, o in self.linear) + 2.0 * self.layers * length * self.hidden

    def lora_params(self, lora) -> int:
        """Trainable LoRA parameters: r x (in + out) per targeted linear layer (peft's
        matching: "all-linear", or a module name equal to or ending in ".<target>")."""
        if lora.target_modules == "all-linear":
            targets = self.linear
        else:
            keys = list(lora.target_modules)
            targets = [t for t in self.linear if any(t[0] == k or t[0].endswith("." + k) for k in keys)]
        return sum(lora.r * (i + o) for _, i, o in targets)


def _config_folder(name: str) -> tuple[Path | None, str]:
    """A local folder holding the model's config.json, or None; and where it is."""
    from w2s_base.training.models import EMBEDDED, cache_root, embedded_source
    if name in EMBEDDED:
        if not EMBEDDED[name].gguf:
            try:
                src = embedded_source(name)
            except Exception:  # the package is missing: no config to read
                return None, "embedded, package missing"
            return src, f"embedded ({src})"
        out = cache_root() / "models" / name
        return (out, f"embedded, converted ({out})") if (out / "config.json").is_file() else (None, "")
    p = Path(name).expanduser()
    if p.is_dir():
        return p, f"local folder {p}"
    try:
        from huggingface_hub import try_to_load_from_cache
        hit = try_to_load_from_cache(name, "config.json")
    except Exception:  # not a valid hub id
        hit = None
    if isinstance(hit, str):
        return Path(hit).parent, "hub cache"
    return None, ""


def load_shape(name: str, trust_remote_code: bool = False) -> ModelShape | None:
    """The model's shape from its local config (or its published values), its
    parameters counted on the meta device; None when no config is at hand."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForSequenceClassification

    folder, source = _config_folder(name)
    if folder is not None:
        config = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code,
                                            local_files_only=True)
    elif name in PUBLISHED:
        values = dict(PUBLISHED[name])
        config = AutoConfig.for_model(values.pop("model_type"), **values)
        source = "published config values (w2s_run/services/plan.py)"
    else:
        return None
    config.num_labels = 2
    with init_empty_weights():
        model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code)
    heads = {"score", "classifier"}
    linear = [(n, m.in_features, m.out_features) for n, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and n.split(".")[-1] not in heads
              and not n.startswith("classifier.")]
    head_params = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] in heads)
    layer_params = 0
    for mod in model.modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) > 1:
            layer_params = max(layer_params, max(sum(p.numel() for p in m.parameters()) for m in mod))
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if dtype is not None and not isinstance(dtype, str):
        dtype = str(dtype).removeprefix("torch.")
    return ModelShape(
        model=name, source=source, model_type=config.model_type,
        hidden=config.hidden_size, intermediate=getattr(config, "intermediate_size", 4 * config.hidden_size),
        layers=config.num_hidden_layers, params=sum(p.numel() for p in model.parameters()),
        layer_params=layer_params, checkpoint_dtype=dtype, linear=linear, head_params=head_params,
        vocab=config.vocab_size, tied=bool(getattr(config, "tie_word_embeddings", False)),
        kv_heads=getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
        context=getattr(config, "max_position_embeddings", None) or 0)


# ---------------------------------------------------------------- the memory model
class MemoryEstimate(BaseModel):
    """GiB per process, by part."""
    weights: float
    trainable: float          # fp32 adapter + head, gradients, Adam moments (+ DDP buckets)
    other_adapters: float     # other members' adapters kept on a shared base
    activations: float
    overhead: float
    trainable_params: int
    tokens: int               # rows per process x max_length

    @property
    def total(self) -> float:
        return self.weights + self.trainable + self.other_adapters + self.activations + self.overhead


def _dtype_bytes(tcfg: TrainConfig, shape: ModelShape) -> int:
    name = shape.checkpoint_dtype if tcfg.dtype == "auto" else tcfg.dtype
    return 2 if name in ("bfloat16", "float16") else 4


def estimate_memory(shape: ModelShape, tcfg: TrainConfig, processes: int = 1, members: int = 1) -> MemoryEstimate:
    """One training process's GPU memory (GiB) for `tcfg` on `shape` (module docstring).
    `members`: adapters that end up on one shared base (weak ensembles)."""
    wbytes = _dtype_bytes(tcfg, shape)
    per_layer = ACT_H * shape.hidden + ACT_I * shape.intermediate  # bf16 values per token
    if tcfg.mode == TrainMode.LINEAR_PROBE:
        # frozen features under inference_mode, in the weights' dtype (no autocast)
        tokens = PROBE_BATCH * tcfg.max_length
        act = tokens * (per_layer + EDGE_H * shape.hidden) * wbytes
        return MemoryEstimate(weights=shape.params * wbytes / GIB, trainable=0.0, other_adapters=0.0,
                              activations=act / GIB, overhead=OVERHEAD_GIB, trainable_params=0, tokens=tokens)
    rows = math.ceil(tcfg.batch_size / processes)
    tokens = rows * tcfg.max_length
    n_train = shape.lora_params(tcfg.lora) + shape.head_params
    trainable = n_train * (16 + (4 if processes > 1 else 0))
    weights = shape.params * wbytes
    if wbytes == 4:  # autocast's bf16 weight copies, saved for the backward
        weights += 2 * shape.layer_params * (1 if tcfg.gradient_checkpointing else shape.layers)
    if tcfg.gradient_checkpointing:
        act = tokens * (shape.layers * shape.hidden + per_layer) * 2
    else:
        act = tokens * shape.layers * per_layer * 2
    act += tokens * EDGE_H * shape.hidden * 2
    return MemoryEstimate(weights=weights / GIB, trainable=trainable / GIB,
                          other_adapters=(members - 1) * n_train * 4 / GIB,
                          activations=act / GIB, overhead=OVERHEAD_GIB, trainable_params=n_train, tokens=tokens)


def train_flops_per_token(shape: ModelShape, tcfg: TrainConfig) -> float:
    """FLOPs per trained token of a LoRA step (module docstring): 2F, 3F with checkpointing."""
    return shape.forward_flops(tcfg.max_length) * (3 if tcfg.gradient_checkpointing else 2)


def job_flops(shape: ModelShape, tcfg: TrainConfig, steps: int, predicted: int) -> float:
    """One training's FLOPs: its steps' rows and its predictions, at max_length tokens each."""
    f = shape.forward_flops(tcfg.max_length)
    if tcfg.mode == TrainMode.LINEAR_PROBE:  # frozen features, one forward per text (cached)
        return f * tcfg.max_length * predicted
    rows = steps * tcfg.batch_size * tcfg.grad_accum
    return (train_flops_per_token(shape, tcfg) * rows + f * predicted) * tcfg.max_length


class KVCheck(BaseModel):
    """vLLM's KV cache on one replica (module docstring)."""
    model: str
    gpu_memory_gib: float
    utilization: float
    tensor_parallel: int
    weights_gib: float           # per GPU
    kv_bytes_per_token: int      # per GPU
    kv_tokens: int               # the cache's capacity
    max_model_len: int
    max_num_seqs: int
    seq_tokens: int              # expected tokens of one sequence
    concurrent: int              # such sequences that fit at once
    verdict: Literal["fits", "limited", "cannot start"]
    knobs: str = ""


def _vllm_bytes(name: str, shape: ModelShape) -> int:
    if name == "auto":
        name = shape.checkpoint_dtype or "bfloat16"
    return 4 if name in ("float", "float32") else 2


def kv_check(shape: ModelShape, gpu_memory_gib: float, vcfg, seq_tokens: int) -> KVCheck:
    """Whether a vLLM replica of `shape` under the engine settings `vcfg`
    (VLLMEngineConfig) starts and holds max_num_seqs sequences of `seq_tokens`."""
    tp = vcfg.tensor_parallel_size
    wbytes = _vllm_bytes(vcfg.dtype, shape)
    kvb = 1 if str(vcfg.extra.get("kv_cache_dtype", "auto")).startswith("fp8") else wbytes
    per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * kvb // tp
    weights = shape.lm_params * wbytes / tp / GIB
    free = gpu_memory_gib * vcfg.gpu_memory_utilization - weights - VLLM_RESERVE_GIB
    tokens = max(0, int(free * GIB // per_token))
    max_len = vcfg.max_model_len or shape.context or seq_tokens
    seqs = vcfg.max_num_seqs or 256  # vLLM's default for its offline engine
    concurrent = tokens // max(1, seq_tokens)
    if tokens < max_len:
        verdict = "cannot start"
        knobs = (f"debate.vllm.max_model_len <= {tokens}" if tokens >= seq_tokens else "") + \
            "; debate.vllm.gpu_memory_utilization, debate.vllm.tensor_parallel_size or a larger GPU"
        knobs = knobs.lstrip("; ")
    elif concurrent < seqs:
        verdict = "limited"
        knobs = (f"debate.vllm.max_num_seqs: {concurrent} states what runs; more at once needs "
                 "debate.vllm.tensor_parallel_size > 1, debate.vllm.gpu_memory_utilization or a larger GPU")
    else:
        verdict, knobs = "fits", ""
    return KVCheck(model=shape.model, gpu_memory_gib=gpu_memory_gib, utilization=vcfg.gpu_memory_utilization,
                   tensor_parallel=tp, weights_gib=weights, kv_bytes_per_token=per_token, kv_tokens=tokens,
                   max_model_len=max_len, max_num_seqs=seqs, seq_tokens=seq_tokens, concurrent=concurrent,
                   verdict=verdict, knobs=knobs)


class StageTime(BaseModel):
    stage: str
    gpu_hours: float
    gpus: int                 # GPUs the config spreads the stage over
    basis: str                # the assumption it rests on

    @property
    def wall_hours(self) -> float:
        return self.gpu_hours / self.gpus


# ---------------------------------------------------------------- the plan
class ProtocolPlan(BaseModel):
    protocol: str
    k: int                    # transcripts per sample
    debates: int              # samples x k
    turns: int                # per debate
    turns_total: int
    max_new_tokens_total: int  # upper bound: debates x turns x max_new_tokens


class DebatePlan(BaseModel):
    model: str
    backend: str
    samples: int
    protocols: list[ProtocolPlan]
    reference_first: bool     # market-making: the plain weak model is trained before the debates

    @property
    def debates(self) -> int:
        return sum(p.debates for p in self.protocols)

    @property
    def max_new_tokens_total(self) -> int:
        return sum(p.max_new_tokens_total for p in self.protocols)


class TrainingJob(BaseModel):
    # audit: the out-of-fold ceiling on transfer (strong/stage.py ceiling_out_of_fold),
    # trained with strong.train before any student
    stage: Literal["weak", "strong", "audit"]
    model: str
    mode: str
    trainings: int            # members (weak), students (strong) or ceiling folds (audit) of this model
    rows: int                 # training rows of each
    steps: int                # optimiser steps of each
    settings: str             # the memory-relevant settings, as written in the config
    shape_source: str | None
    params: int | None
    memory: MemoryEstimate | None
    fits: bool | None         # None: not estimated (no config at hand)
    fixes: list[str] = []     # knobs that would make it fit, with their estimates
    gpu_hours: float | None = None  # every training of the job, with its predictions


class PowerPlan(BaseModel):
    """What the run's paired comparisons can resolve (statistics.minimum_detectable_difference:
    80 % power, two-sided 5 %)."""
    n_test: int
    replicates: int
    p: float                  # expected accuracy of each compared model (the variance's worst case in range)
    tau: float                # between-replicate sd of a difference (0: unknown or none)
    source: str               # where p and tau came from
    mde: float
    min_effect: float
    n_test_needed: int | None  # for min_effect at these replicates; None: n_test alone cannot reach it

    @property
    def resolvable(self) -> bool:
        return self.mde <= self.min_effect


class Plan(BaseModel):
    name: str
    samples: dict[str, int]
    gpu_memory_gib: float
    gpu_source: str
    processes: int
    debate: DebatePlan | None
    labellers: list[str]
    weak_members: dict[str, int]   # {model: distinct members}
    students: int
    student_seeds: int
    jobs: list[TrainingJob]
    # the audit's out-of-fold ceilings on transfer, one per fold (first strong seed), trained
    # before any student; 0 in plans made before they were counted
    audit_trainings: int = 0
    problems: list[str] = []       # one line per job that cannot fit
    notes: list[str] = []
    times: list[StageTime] = []    # per stage, from the stated throughput assumptions
    kv: KVCheck | None = None      # the debate stage's vLLM KV cache
    power: PowerPlan | None = None
    replicates: int = 1            # every count above is one replicate's (config `replicates`)

    @property
    def fits(self) -> bool:
        return not self.problems


def gpu_memory(gpu_memory_gib: float | None) -> tuple[float, str]:
    """The memory one process may use: the given value, else the smallest visible CUDA
    device, else the default."""
    if gpu_memory_gib is not None:
        return float(gpu_memory_gib), "--gpu-memory-gib"
    import torch
    if torch.cuda.is_available() and torch.cuda.device_count():
        props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
        small = min(props, key=lambda p: p.total_memory)
        return small.total_memory / GIB, f"{len(props)} visible CUDA device(s), smallest {small.name}"
    return DEFAULT_GPU_GIB, "the default: no CUDA here, set --gpu-memory-gib"


def _steps(rows: int, tcfg: TrainConfig) -> int:
    return max(1, math.ceil(tcfg.epochs * rows / (tcfg.batch_size * tcfg.grad_accum)))


def _settings(tcfg: TrainConfig) -> str:
    if tcfg.mode == TrainMode.LINEAR_PROBE:
        return f"probe, features {PROBE_BATCH} x {tcfg.max_length} tokens, {tcfg.dtype}"
    return (f"batch {tcfg.batch_size} x accum {tcfg.grad_accum}, max_length {tcfg.max_length}, "
            f"{tcfg.dtype}, checkpointing {'on' if tcfg.gradient_checkpointing else 'off'}, "
            f"LoRA r {tcfg.lora.r} ({tcfg.lora.target_modules if isinstance(tcfg.lora.target_modules, str) else ','.join(tcfg.lora.target_modules)})")


def _fixes(stage: str, shape: ModelShape, tcfg: TrainConfig, processes: int, members: int,
           budget: float) -> list[str]:
    """Settings that would fit, each with its estimate: the knobs to turn."""
    key = f"{stage}.train"
    est = lambda t: estimate_memory(shape, t, processes, members).total  # noqa: E731
    out = []
    if tcfg.mode == TrainMode.LORA and not tcfg.gradient_checkpointing:
        t = tcfg.model_copy(update={"gradient_checkpointing": True})
        out.append(f"{key}.gradient_checkpointing: true (~{est(t):.1f} GiB)")
    if _dtype_bytes(tcfg, shape) == 4:
        t = tcfg.model_copy(update={"dtype": "bfloat16"})
        out.append(f"{key}.dtype: bfloat16 (~{est(t):.1f} GiB)")
    batch = tcfg.batch_size if tcfg.mode == TrainMode.LORA else 0
    while batch > processes:  # a smaller micro-batch, the same optimiser batch
        batch = max(processes, batch // 2)
        t = tcfg.model_copy(update={"batch_size": batch,
                                    "grad_accum": math.ceil(tcfg.batch_size * tcfg.grad_accum / batch)})
        if est(t) <= budget:
            out.append(f"{key}.batch_size: {batch} with {key}.grad_accum: {t.grad_accum} "
                       f"(the same {tcfg.batch_size * tcfg.grad_accum} rows a step; ~{est(t):.1f} GiB)")
            break
    length = tcfg.max_length
    while length > 64:
        length = max(64, length // 2)
        t = tcfg.model_copy(update={"max_length": length})
        if est(t) <= budget:
            out.append(f"{key}.max_length: {length} (longer inputs are cut; ~{est(t):.1f} GiB)")
            break
    if tcfg.mode == TrainMode.LORA:
        for n in (2, 4, 8):
            if processes < n <= tcfg.batch_size and estimate_memory(shape, tcfg, n, members).total <= budget:
                out.append(f"more processes: accelerate launch --num_processes {n} (each takes "
                           f"{math.ceil(tcfg.batch_size / n)} rows of a micro-batch; "
                           f"~{estimate_memory(shape, tcfg, n, members).total:.1f} GiB)")
                break
    return out


def _job(stage: Literal["weak", "strong", "audit"], model: str, tcfg: TrainConfig, trainings: int, rows: int,
         processes: int, members: int, budget: float, trust: bool, shapes: dict,
         predicted: int = 0) -> TrainingJob:
    if model not in shapes:
        shapes[model] = load_shape(model, trust)
    shape = shapes[model]
    mem = estimate_memory(shape, tcfg, processes, members) if shape else None
    fits = None if mem is None else mem.total <= budget
    return TrainingJob(stage=stage, model=model, mode=tcfg.mode, trainings=trainings, rows=rows,
                       steps=_steps(rows, tcfg), settings=_settings(tcfg),
                       shape_source=shape.source if shape else None, params=shape.params if shape else None,
                       memory=mem, fits=fits,
                       # the audit's folds train under strong.train: its knobs are the strong stage's
                       fixes=(_fixes("strong" if stage == "audit" else stage, shape, tcfg, processes, members,
                                     budget) if fits is False else []),
                       gpu_hours=(trainings * job_flops(shape, tcfg, _steps(rows, tcfg), predicted)
                                  / TRAIN_FLOPS / 3600) if shape else None)


def _between_replicate_sd(report: Report) -> float | None:
    """The largest standard deviation, over the report's replicates, of one paired
    difference (a weak labeller vs the plain one, a student vs its reference student),
    each replicate scored on the same test set; None without two replicates."""
    reps = getattr(report, "replicates", None) or []  # Report.replicates: R draws of the whole run
    if len(reps) < 2:
        return None
    diffs: dict[tuple, list[float]] = {}
    for r in reps:
        for w in r.weak_rows():
            if w.vs_reference:
                diffs.setdefault(("weak", w.name), []).append(w.vs_reference.acc_diff)
        for c in r.comparisons:
            diffs.setdefault(("w2s", c.labeller, c.loss), []).append(c.result.acc_diff)
    sds = [float(st.seed_spread(v).std) for v in diffs.values() if len(v) > 1]
    return max(sds, default=None)


def power_plan(cfg: RunConfig) -> PowerPlan:
    """The minimum detectable paired difference for the config's n_test and replicates,
    from a previous run's report in the run folder (its weak and ceiling accuracies, and
    the spread of its differences over replicates), else the worst case p = 0.5, tau = 0."""
    n, reps = cfg.data.n_test, getattr(cfg, "replicates", 1)  # config.replicates: issue 20's replicate axis
    p, tau, f = 0.5, 0.0, cfg.layout.report_json
    if not f.is_file():
        source = f"worst case p = 0.5 (no previous report at {f})"
    else:
        try:
            report = read_report(cfg.layout)
        except (ReportError, ValueError) as e:
            report, source = None, f"worst case p = 0.5 (the previous report is unreadable: {e})"
        if report is not None:
            lo, hi = sorted((report.weak_accuracy, report.ceiling_accuracy))
            p = min(max(0.5, lo), hi)  # the compared models lie between weak and ceiling: the largest variance there
            sd = _between_replicate_sd(report)
            tau = sd or 0.0
            source = (f"the previous report {f}: weak {100 * report.weak_accuracy:.1f} %, ceiling "
                      f"{100 * report.ceiling_accuracy:.1f} %, so p = {100 * p:.1f} % (the largest variance in that "
                      "range); " + (f"between-replicate sd of a difference {100 * tau:.1f} points" if sd is not None
                                    else "no replicates in it: the draw-to-draw spread (tau) is unknown and "
                                    "taken as 0, so with one draw this is a lower bound"))
    kw = dict(replicates=reps, p_a=p, p_b=p, tau=tau)
    return PowerPlan(n_test=n, replicates=reps, p=p, tau=tau, source=source,
                     mde=st.minimum_detectable_difference(n, **kw), min_effect=cfg.report.min_effect,
                     n_test_needed=st.test_samples_needed(cfg.report.min_effect, **kw))


def render_power(w: PowerPlan) -> list[str]:
    lines = [f"power: minimum detectable paired difference {100 * w.mde:.1f} points (80 % power, two-sided 5 %) "
             f"with n_test {_n(w.n_test)} and {w.replicates} replicate(s); expected accuracy from {w.source}"]
    if not w.resolvable:
        need = (f"n_test >= {_n(w.n_test_needed)} at {w.replicates} replicate(s)" if w.n_test_needed
                else f"more replicates (tau {100 * w.tau:.1f} points over {w.replicates} replicate(s) alone exceeds it)")
        lines.append(f"WARNING: the minimum detectable difference {100 * w.mde:.1f} points exceeds report.min_effect "
                     f"{100 * w.min_effect:.1f} points: a true difference of that size would mostly read \"no "
                     f"detectable difference\"; to resolve it: {need}")
    return lines


def student_count(cfg: RunConfig) -> int:
    """Students the strong stage trains: the ceiling and one per labeller x loss, each
    per seed (strong/stage.student_keys; core may not import it)."""
    losses = {lab.name: lab.losses or cfg.strong.losses for lab in cfg.weak.labellers}
    return (1 + sum(len(losses[lab.name]) for lab in cfg.labellers)) * len(cfg.strong.seeds)


def plan(cfg: RunConfig, gpu_memory_gib: float | None = None, processes: int | None = None,
         strict: bool = True) -> Plan:
    """The run's plan. `processes`: the DDP processes training will run under (default:
    WORLD_SIZE, else 1). `strict`: raise PlanError (naming the knobs) when a training
    job cannot fit; otherwise the plan lists it under `problems`."""
    processes = processes or int(os.environ.get("WORLD_SIZE", "1") or 1)
    budget, gpu_source = gpu_memory(gpu_memory_gib)
    d = cfg.data
    samples = {"weak_train": d.n_weak_train, "transfer": d.n_transfer, "test": d.n_test}
    n_samples = sum(samples.values())

    debate = None
    need = cfg.debates_needed()
    if need:
        prots = []
        for name, k in need.items():
            turns = protocol_spec(name).num_turns(cfg.debate)
            debates = n_samples * k
            prots.append(ProtocolPlan(protocol=name, k=k, debates=debates, turns=turns,
                                      turns_total=debates * turns,
                                      max_new_tokens_total=debates * turns * cfg.debate.sampling.max_new_tokens))
        debate = DebatePlan(model=cfg.debate.model, backend=cfg.debate.backend, samples=n_samples,
                            protocols=prots,
                            reference_first=any(protocol_spec(p).needs_reference for p in need))

    # weak members are stored once per (source, model, seed, k); the source is the
    # protocol, or a control's tag where the config has controls
    members: dict[str, set] = {}
    for lab in cfg.labellers:
        reads_from = getattr(lab, "source", lab.protocol)
        for model in lab.models or [cfg.weak.model]:
            for k in range(lab.debates):
                for seed in lab.seeds:
                    members.setdefault(model, set()).add(
                        (reads_from, seed, k if lab.reads_transcript else None))
    folds = getattr(cfg.weak, "placement_folds", 0)
    if debate and debate.reference_first and folds:
        # market-making's out-of-fold placement: one more adapter per fold on the reference's model
        ref = next(lab for lab in cfg.weak.labellers if lab.name == cfg.weak.reference)
        for f in range(folds):
            members.setdefault((ref.models or [cfg.weak.model])[0], set()).add(("none-oof", ref.seeds[0], f))
    shapes: dict[str, ModelShape | None] = {}
    jobs = [_job("weak", model, cfg.weak.train, len(m), d.n_weak_train, processes, len(m), budget,
                 cfg.trust_remote_code, shapes, predicted=d.n_transfer + d.n_test)
            for model, m in members.items()]
    students = student_count(cfg)
    jobs.append(_job("strong", cfg.strong.model, cfg.strong.train, students, d.n_transfer, processes, 1,
                     budget, cfg.trust_remote_code, shapes, predicted=d.n_test))
    # The audit (before any student): one ceiling per fold of transfer, each trained on
    # the other folds (at most n - n // folds rows) and predicting its own. Imported here:
    # strong/stage.py loads the training stack, which the module's top stays without.
    from strong.stage import CEILING_FOLDS as F
    jobs.append(_job("audit", cfg.strong.model, cfg.strong.train, F, d.n_transfer - d.n_transfer // F,
                     processes, 1, budget, cfg.trust_remote_code, shapes, predicted=-(-d.n_transfer // F)))

    problems, notes = [], []
    for j in jobs:
        if j.stage == "audit":
            continue  # the strong model under strong.train, as the students: their line says it once
        if j.fits is None:
            notes.append(f"{j.stage} {j.model}: no config at hand (not local, not in the hub cache, not in "
                         "w2s_run/services/plan.py's published values): memory not estimated")
        elif not j.fits:
            m = j.memory
            problems.append(
                f"{j.stage} training of {j.model} ({j.mode}) does not fit: ~{m.total:.1f} GiB per process "
                f"(weights {m.weights:.1f}, activations {m.activations:.1f}) > {budget:.1f} GiB. Turn a knob: "
                + ("; ".join(j.fixes) if j.fixes else "none of the train settings suffices alone: a larger "
                   "GPU or a smaller model"))
    times, kv = _times_and_kv(cfg, debate, jobs, budget, processes, shapes, notes, problems)
    p = Plan(name=cfg.name, samples=samples, gpu_memory_gib=budget, gpu_source=gpu_source, processes=processes,
             debate=debate, labellers=[lab.name for lab in cfg.labellers],
             weak_members={m: len(v) for m, v in members.items()}, students=students,
             student_seeds=len(cfg.strong.seeds), jobs=jobs, audit_trainings=F, problems=problems, notes=notes,
             times=times, kv=kv, power=power_plan(cfg), replicates=cfg.replicates)
    if strict and problems:
        raise PlanError(f"config {cfg.name!r} cannot fit in {budget:.1f} GiB per process:\n  "
                        + "\n  ".join(problems), p)
    return p


def _times_and_kv(cfg: RunConfig, debate: DebatePlan | None, jobs: list[TrainingJob], budget: float,
                  processes: int, shapes: dict, notes: list[str], problems: list[str]):
    """GPU-hours per stage and the vLLM KV-cache check (module docstring); appends
    the check's problem or note."""
    from w2s_base.backend_specs import backend_spec
    times, kv = [], None
    vllm = debate is not None and "vllm" in backend_spec(cfg.debate.backend).reads
    if vllm:
        if cfg.debate.model not in shapes:
            shapes[cfg.debate.model] = load_shape(cfg.debate.model, cfg.trust_remote_code)
        shape, v = shapes[cfg.debate.model], cfg.debate.vllm
        if shape is None:
            notes.append(f"debate {cfg.debate.model}: no config at hand: time and KV cache not estimated")
        else:
            rate = GEN_TOKENS_PER_S * GEN_REF_PARAMS / shape.lm_params
            times.append(StageTime(
                stage="debate", gpu_hours=debate.max_new_tokens_total / rate / 3600,
                gpus=v.tensor_parallel_size * v.data_parallel_size,
                basis=f"{rate:,.0f} generated tokens/s per GPU (assumed), at most max_new_tokens a turn"))
            if v.quantization:
                notes.append(f"debate: quantization {v.quantization}: the vLLM KV cache is not estimated")
            else:
                turns = max(x.turns for x in debate.protocols)
                kv = kv_check(shape, budget, v, PROMPT_TOKENS + turns * cfg.debate.sampling.max_new_tokens)
                line = (f"vLLM KV cache of {shape.model}: {kv.kv_tokens:,} tokens on {kv.gpu_memory_gib:.0f} GiB "
                        f"x {kv.utilization} ({kv.kv_bytes_per_token // 1024} KiB a token per GPU)")
                if kv.verdict == "cannot start":
                    problems.append(f"{line} < max_model_len {kv.max_model_len}: vLLM cannot start. Turn a "
                                    f"knob: {kv.knobs}")
                elif kv.verdict == "limited":
                    notes.append(f"{line} hold {kv.concurrent} of the {kv.max_num_seqs} sequences "
                                 f"(debate.vllm.max_num_seqs) of ~{kv.seq_tokens:,} tokens at once: "
                                 f"throughput drops. {kv.knobs}")
    for stage in ("weak", "audit", "strong"):  # the order they run in
        hours = [j.gpu_hours for j in jobs if j.stage == stage]
        if hours and None not in hours:
            times.append(StageTime(stage=stage, gpu_hours=sum(hours), gpus=processes,
                                   basis=f"{TRAIN_FLOPS / 1e12:.0f} TFLOP/s per GPU achieved (assumed), "
                                         "every row at max_length"))
    return times, kv


def _n(x: int) -> str:
    return f"{x:,}"


def render_plan(p: Plan) -> str:
    lines = [f"plan for {p.name}: {p.processes} training process(es), {p.gpu_memory_gib:.1f} GiB each "
             f"({p.gpu_source})",
             "data: " + ", ".join(f"{k} {_n(v)}" for k, v in p.samples.items())]
    if p.debate:
        d = p.debate
        lines.append(f"debate: {d.model} on {d.backend}, {_n(d.samples)} samples"
                     + (" (market-making: the plain weak model is trained first)" if d.reference_first else ""))
        for x in d.protocols:
            lines.append(f"  {x.protocol}: {_n(d.samples)} x {x.k} = {_n(x.debates)} transcripts x {x.turns} "
                         f"turns = {_n(x.turns_total)} turns, <= {_n(x.max_new_tokens_total)} generated tokens")
        lines.append(f"  total: {_n(d.debates)} transcripts, <= {_n(d.max_new_tokens_total)} generated tokens")
    else:
        lines.append("debate: none (no labeller reads a transcript)")
    lines.append(f"weak: {len(p.labellers)} labellers ({', '.join(p.labellers)}); members: "
                 + ", ".join(f"{m} {n}" for m, n in p.weak_members.items()))
    lines.append(f"strong: {p.students} students (ceiling and labeller x loss, x {p.student_seeds} seeds)")
    if p.audit_trainings:
        lines.append(f"audit: {p.audit_trainings} out-of-fold ceilings on transfer (first strong seed, one per "
                     "fold, each trained on the other folds), before any student")
    if p.replicates > 1:
        lines.append(f"replicates: {p.replicates}: the debates, members and students above are one replicate's; "
                     f"the run makes {p.replicates} times as many (each replicate re-seeds them)")
    lines.append("training jobs (GPU memory per process):")
    for j in p.jobs:
        what = {"weak": "members", "strong": "students", "audit": "ceiling folds"}[j.stage]
        lines.append(f"  {j.stage} {j.model} ({j.mode}): {j.trainings} {what}, {_n(j.rows)} rows, "
                     f"{j.steps} steps each; {j.settings}")
        if j.memory is None:
            lines.append("    memory: not estimated (no config at hand)")
            continue
        m = j.memory
        verdict = "fits" if j.fits else "DOES NOT FIT"
        lines.append(f"    {j.params / 1e9:.2f}B params ({j.shape_source}); trainable {m.trainable_params / 1e6:.1f}M")
        lines.append(f"    ~{m.total:.1f} GiB = weights {m.weights:.1f} + trainable/Adam {m.trainable:.2f}"
                     + (f" + other adapters {m.other_adapters:.2f}" if m.other_adapters else "")
                     + f" + activations {m.activations:.1f} ({_n(m.tokens)} tokens) + overhead {m.overhead:.1f}"
                     + f" -> {verdict} in {p.gpu_memory_gib:.1f} GiB")
        for f in j.fixes:
            lines.append(f"    fix: {f}")
    if p.times:
        lines.append("time (upper bounds from stated throughput; w2s_run/services/plan.py):")
        for t in p.times:
            lines.append(f"  {t.stage}: {t.gpu_hours:,.1f} GPU-hours, ~{t.wall_hours:,.1f} h on {t.gpus} GPU(s) "
                         f"({t.basis})")
        lines.append(f"  total: {sum(t.gpu_hours for t in p.times):,.1f} GPU-hours")
    if p.kv is not None:
        k = p.kv
        lines.append(f"vLLM KV cache ({k.model}, {k.tensor_parallel} GPU(s) a replica): weights "
                     f"{k.weights_gib:.1f} GiB, {k.kv_tokens:,} tokens of cache; {k.max_num_seqs} sequences x "
                     f"~{k.seq_tokens:,} tokens -> {k.verdict}" + (f" ({k.concurrent} at once)"
                                                                  if k.verdict == "limited" else ""))
    for n in p.notes:
        lines.append(f"note: {n}")
    estimated = [j for j in p.jobs if j.fits is not None]
    if p.problems:
        lines.append(f"{len(p.problems)} problem(s) (a training job that DOES NOT FIT, or a vLLM engine that "
                     "cannot start): turn one of the knobs named")
    elif estimated:
        lines.append(f"every estimated training job fits in {p.gpu_memory_gib:.1f} GiB per process")
    if p.power:
        lines += render_power(p.power)
    return "\n".join(lines)


def print_plan(cfg, gpu_memory_gib: float | None = None, processes: int | None = None) -> None:
    """`run.py plan`: the plan; when a job cannot fit, the plan with it, then the error."""
    try:
        print(render_plan(plan(cfg, gpu_memory_gib, processes)))
    except PlanError as e:
        if e.plan is not None:
            print(render_plan(e.plan))
        raise
