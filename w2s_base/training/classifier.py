"""One binary classifier trainer, shared by the weak models and the strong student.

Two modes, chosen per model in the config (`train.mode`), one function each:
- `lora` (train_lora): AutoModelForSequenceClassification + a peft LoRA adapter (task type
  SEQ_CLS, so the classification head is trained and saved with the adapter).
  Decoder LMs read the last non-pad token, as in Burns et al.
- `linear_probe` (train_probe): a linear head on frozen features (decoders: the last token's
  final hidden state; encoders: mean pooling), as Burns et al. and EleutherAI/w2s
  also offer. Features are cached on disk per (model, text), so every student
  trained on the same texts pays for the forward passes once.
Both modes share the loop below and the soft-label losses of w2s_base/losses.py.

Memory (GPU scale; `python run.py plan` estimates it): `train.dtype` is the dtype the
frozen weights load in, while the trainable parameters (LoRA adapters, the head) stay
float32; `train.gradient_checkpointing` is enabled on the base before peft wraps it.
Under DDP no trained model outlives its use (`fit` drops accelerate's references,
`ModelTrainer.release` a shared base), and prediction is split across the processes.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from w2s_base import console
from w2s_base.training import distributed as dist
from w2s_base.training import schedule
from w2s_base.config import TrainConfig, TrainMode
from w2s_base.runfolder.artifacts import save_artifact
from w2s_base.training.distributed import device
from w2s_base.training.models import cache_root, load_tokenizer, resolve_model

LossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def is_decoder(path: str, trust_remote_code: bool = False) -> bool:
    from transformers import AutoConfig
    cfg = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    return any("CausalLM" in a or "LMHead" in a for a in (cfg.architectures or []))


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield list(range(i, min(i + size, n)))


def torch_dtype(name: str):
    """TrainConfig.dtype as from_pretrained takes it ("auto" stays a string)."""
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "auto": "auto"}[name]


def free_device_memory() -> None:
    """Collect garbage (reference cycles of released models), then hand the freed
    CUDA blocks back to the driver, so another model (or a vLLM engine) can use them."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- frozen features
class FeatureExtractor:
    """Frozen features with a per-text disk cache (content-addressed by model and text)."""

    def __init__(self, model: str, max_length: int, batch_size: int = 16,
                 trust_remote_code: bool = False, dtype: str = "float32"):
        self.model_name, self.max_length, self.batch_size = model, max_length, batch_size
        self.path = resolve_model(model)
        self.trust, self.dtype = trust_remote_code, dtype
        # float32 features keep the cache key they had before dtypes were configurable
        key = f"{self.path}|{max_length}" + ("" if dtype == "float32" else f"|{dtype}")
        tag = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.cache_file = cache_root() / "features" / f"{Path(self.path).name}-{tag}.pt"
        self._cache: dict[str, torch.Tensor] | None = None
        self._model = None

    def _load_cache(self) -> dict[str, torch.Tensor]:
        if self._cache is None:
            self._cache = torch.load(self.cache_file) if self.cache_file.exists() else {}
        return self._cache

    def _lazy_model(self):
        if self._model is None:
            from transformers import AutoModel
            self.tok = load_tokenizer(self.path, self.trust)
            self.decoder = is_decoder(self.path, self.trust)
            self._model = AutoModel.from_pretrained(
                self.path, trust_remote_code=self.trust, dtype=torch_dtype(self.dtype)).to(device()).eval()
        return self._model

    def release(self) -> None:
        """Drops the loaded model (the features stay cached); a later call loads it again."""
        self._model = None

    @torch.inference_mode()
    def __call__(self, texts: list[str], desc: str = "features") -> torch.Tensor:
        cache = self._load_cache()
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in cache}.items(),
                         key=lambda kv: len(kv[1]))
        if missing:
            model = self._lazy_model()
            batches = list(_batches(len(missing), self.batch_size))
            for b, idx in enumerate(tqdm(batches, desc=desc, unit="batch",
                                         disable=None if console.inner_bars() else True)):
                console.now(f"{desc}: batch {b + 1}/{len(batches)}")
                enc = self.tok([missing[i][1] for i in idx], return_tensors="pt", padding=True,
                               truncation=True, max_length=self.max_length).to(device())
                h = model(**enc).last_hidden_state.float()
                mask = enc["attention_mask"]
                if self.decoder:
                    last = mask.sum(1) - 1
                    feats = h[torch.arange(h.shape[0]), last]
                else:
                    m = mask.unsqueeze(-1).float()
                    feats = (h * m).sum(1) / m.sum(1)
                for i, f in zip(idx, feats.cpu()):
                    cache[missing[i][0]] = f.clone()
            if dist.is_main():  # the other processes computed the same features
                save_artifact(self.cache_file, lambda tmp: torch.save(cache, tmp))
        return torch.stack([cache[k] for k in keys])


# ---------------------------------------------------------------- the shared loop
@dataclass(frozen=True)
class _Procs:
    """The processes that share every micro-batch: process `rank` of `n` takes its rows
    `batch[rank::n]` (shares may differ in size by one). `n == 1`: no sharing."""
    acc: Any
    n: int
    rank: int

    def share(self, batch: list[int]) -> list[int]:
        return batch[self.rank::self.n]


def _autocast(use_amp: bool):
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp)


def _gather_rows(acc, local: list[torch.Tensor], sizes: list[int], n_proc: int) -> torch.Tensor:
    """The whole optimiser batch's rows, in the order one process would see them, from
    every process's shares: `local[m]` holds this process's rows `batch_m[rank::n_proc]`
    of micro-batch m (of `sizes[m]` rows), so row j of micro-batch m comes from process
    j % n_proc at position j // n_proc. Every process gets the same tensor. Shares may
    differ by one row: they are padded to one width for accelerate's gather, which
    needs equal shapes, and the padding is dropped again."""
    if n_proc == 1:
        return torch.cat(local)
    width = max(-(-s // n_proc) for s in sizes)
    tail = local[0].shape[1:]
    padded = local[0].new_zeros(len(local), width, *tail)
    for m, t in enumerate(local):
        padded[m, : len(t)] = t
    every = acc.gather(padded).view(n_proc, len(local), width, *tail)  # process-major
    out = []
    for m, size in enumerate(sizes):
        j = torch.arange(size, device=every.device)
        out.append(every[j % n_proc, m, j // n_proc])
    return torch.cat(out)


def _optimiser_batches(n: int, batch_size: int, grad_accum: int, seed: int) -> Iterator[list[list[int]]]:
    """Each optimiser step's micro-batches as one process would draw them: `grad_accum`
    batches of `batch_size` row indices, taken in turn from a seeded permutation of the
    `n` rows, a fresh one appended whenever fewer than a batch are left. Every process
    draws the same ones (same seed)."""
    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    while True:
        batches = []
        for _ in range(grad_accum):
            if len(order) < batch_size:  # a fresh permutation each epoch
                order += torch.randperm(n, generator=gen).tolist()
            idx, order = order[:batch_size], order[batch_size:]
            batches.append(idx)
        yield batches


def _full_batch_stats(stats_fn, module, forward, targets: torch.Tensor, batches: list[list[int]],
                      procs: _Procs, use_amp: bool) -> dict:
    """`stats_fn` (a loss's batch_stats, i.e. logconf's hardening threshold) over the whole
    optimiser batch, the same on every process, for a batch split into micro-batches or
    process shares: one no-grad forward of this process's share of every micro-batch with
    the current parameters, gathered with accelerate so every process holds the same full
    batch in single-process row order. Every micro-batch's loss then uses the statistic.

    That costs one forward pass per optimiser step (no backward) and a gather of [rows, 2]
    logits. Without dropout (the default, train.dropout false) this pass computes the
    logits the gradient pass computes, and the split run equals the unsplit one (up to
    float rounding). With `train.dropout: true` it draws other dropout masks than the
    gradient pass (and advances the RNG): the threshold then comes from one stochastic
    forward, the hardened labels and the gradient from another."""
    local = []
    with torch.no_grad():
        for batch in batches:
            with _autocast(use_amp):
                local.append(forward(module, procs.share(batch)).float())
        logits = _gather_rows(procs.acc, local, [len(b) for b in batches], procs.n)
    rows = [i for b in batches for i in b]
    return stats_fn(logits, targets[rows].to(logits.device))


def _accumulate_gradients(wrapped, forward, targets: torch.Tensor, loss_fn: LossFn,
                          batches: list[list[int]], step_frac: float, stats: dict,
                          procs: _Procs, use_amp: bool) -> torch.Tensor:
    """Forward and backward of this process's share of every micro-batch; returns the
    mean loss over the whole optimiser batch (every process's shares).

    Each share's mean loss is weighted by its share of the batch's rows (and by the
    number of processes, which DDP's gradient averaging divides out again), so the
    summed gradient and the returned loss are those of the mean over the whole batch,
    with uneven shares too."""
    rows = sum(len(b) for b in batches)
    total = 0.0
    for micro, batch in enumerate(batches):
        idx = procs.share(batch)
        # gradients are averaged across processes once per optimiser step
        sync = contextlib.nullcontext() if micro == len(batches) - 1 else procs.acc.no_sync(wrapped)
        with sync:
            with _autocast(use_amp):
                logits = forward(wrapped, idx)
            loss = loss_fn(logits.float(), targets[idx].to(logits.device), step_frac, **stats)
            # this share's weight in the batch mean; DDP divides by the number of processes
            (loss * (len(idx) * procs.n / rows)).backward()
        total = total + loss.detach() * (len(idx) / rows)
    if procs.n > 1:  # every process's shares: the whole batch's mean
        total = procs.acc.reduce(total, reduction="sum")
    return total


def build_optimiser(params: list[torch.nn.Parameter], tcfg: TrainConfig, steps: int):
    """The optimiser and learning-rate scheduler `tcfg` names, for `steps` optimiser
    steps (w2s_base/training/schedule.py defines the rates; the scheduler steps after
    each optimiser step). torch's defaults otherwise: betas (0.9, 0.999), eps 1e-8."""
    optimiser = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[tcfg.optimizer]
    opt = optimiser(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    warm = schedule.warmup_steps(tcfg, steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: schedule.lr_factor(tcfg.schedule, s, steps, warm))
    return opt, sched


def _optimiser_step(params: list[torch.nn.Parameter], opt, sched, max_grad_norm: float | None) -> None:
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    opt.step()
    sched.step()


def fit(module: torch.nn.Module, forward: Callable[[torch.nn.Module, list[int]], torch.Tensor],
        targets: torch.Tensor, loss_fn: LossFn, tcfg: TrainConfig, seed: int,
        desc: str, ddp: bool = True, on_epoch: Callable[[int], None] | None = None) -> list[float]:
    """Minibatch training of `module`'s trainable parameters on soft targets [N, 2];
    returns the loss per optimiser step: the mean over the whole optimiser batch
    (batch_size * grad_accum rows), on every process. `on_epoch(step)`, when given, is
    called after the last optimiser step of each epoch (a held-out evaluation: it must
    leave the module's parameters, mode and the random state as it found them).

    Under a multi-process launcher (w2s_base/training/distributed.py) the module is wrapped for
    DDP and each process takes its share of every batch: all processes draw the same
    permutation (same seed), so together they train on exactly the batches one
    process would. `ddp=False`: every process trains the whole thing by itself.

    The optimiser batch may be split into grad_accum micro-batches and, within each,
    into one share per process; the gradient is still that of the whole batch's mean
    loss (_accumulate_gradients). A loss whose target depends on statistics of the
    batch (one with `batch_stats`, i.e. logconf) gets them for the whole optimiser
    batch when it is split (_full_batch_stats); xent and product (batch_stats None),
    and unsplit batches, skip that pass."""
    acc = dist.accelerator()
    procs = _Procs(acc, acc.num_processes, acc.process_index) if ddp else _Procs(acc, 1, 0)
    if tcfg.batch_size < procs.n:
        raise ValueError(f"train.batch_size {tcfg.batch_size} is smaller than the {procs.n} processes")
    params = [p for p in module.parameters() if p.requires_grad]
    wrapped = acc.prepare_model(module) if procs.n > 1 else module
    try:
        steps = max(1, math.ceil(tcfg.epochs * len(targets) / (tcfg.batch_size * tcfg.grad_accum)))
        opt, sched = build_optimiser(params, tcfg, steps)
        draws = _optimiser_batches(len(targets), tcfg.batch_size, tcfg.grad_accum, seed)
        stats_fn = getattr(loss_fn, "batch_stats", None)
        whole_batch_stats = stats_fn is not None and (tcfg.grad_accum > 1 or procs.n > 1)
        use_amp = device().type == "cuda"
        history = []
        bar = tqdm(range(steps), desc=desc, unit="step", leave=False,
                   disable=None if acc.is_main_process and console.inner_bars() else True)
        for step in bar:
            opt.zero_grad(set_to_none=True)
            batches = next(draws)
            stats = (_full_batch_stats(stats_fn, module, forward, targets, batches, procs, use_amp)
                     if whole_batch_stats else {})
            loss = _accumulate_gradients(wrapped, forward, targets, loss_fn, batches, step / steps,
                                         stats, procs, use_amp)
            _optimiser_step(params, opt, sched, tcfg.max_grad_norm)
            history.append(loss.item())
            bar.set_postfix(loss=f"{history[-1]:.3f}")
            console.now(f"{desc}: step {step + 1}/{steps}, loss {history[-1]:.3f}")
            # after the last step of each epoch (epochs may be fractional: the last step ends one)
            if on_epoch is not None and (int((step + 1) * tcfg.epochs / steps) > int(step * tcfg.epochs / steps)
                                         or step + 1 == steps):
                on_epoch(step + 1)
        return history
    finally:
        # accelerate keeps every model it prepared (Accelerator._models) for the life of
        # the process: dropped here, with this fit's DDP wrapper (its gradient buckets)
        # and optimiser state, so a trained model lives only as long as its caller
        # holds it. free_memory also collects cycles and empties the CUDA cache.
        wrapped = opt = sched = None  # noqa: F841
        if procs.n > 1:
            acc.free_memory()


def soft_targets(p1: np.ndarray) -> torch.Tensor:
    p1 = torch.as_tensor(np.asarray(p1, dtype=np.float32))
    return torch.stack([1 - p1, p1], dim=1)


# ---------------------------------------------------------------- the two modes
class ProbeClassifier:
    def __init__(self, extractor: FeatureExtractor, head: torch.nn.Linear):
        self.extractor, self.head = extractor, head

    @torch.no_grad()
    def predict(self, texts: list[str], desc: str = "predict") -> np.ndarray:
        x = self.extractor(texts, desc=desc)
        return torch.softmax(self.head(x), -1)[:, 1].numpy()

    def save(self, out: Path) -> None:
        if dist.is_main():
            save_artifact(out / "head.pt", lambda tmp: torch.save(self.head.state_dict(), tmp))


class LoraClassifier:
    def __init__(self, model, tok, max_length: int, batch_size: int):
        self.model, self.tok, self.max_length, self.batch_size = model, tok, max_length, batch_size
        self.adapter = model.active_adapter  # the base may carry other members' adapters too

    def logits(self, texts: list[str], model: torch.nn.Module | None = None) -> torch.Tensor:
        """`model`: the same model wrapped for training (DDP), if it is."""
        enc = self.tok(texts, return_tensors="pt", padding=True, truncation=True,
                       max_length=self.max_length).to(device())
        return (model or self.model)(**enc).logits

    @torch.no_grad()
    def predict(self, texts: list[str], desc: str = "predict") -> np.ndarray:
        """P(label = 1) per text. Under a multi-process launch this is collective: every
        process must call it with the same texts. Each predicts every n-th of the
        batches one process would form (texts sorted by length, so the shares cost
        about the same) and the rows are gathered, so every process returns the
        one-process result, computed on the same batches."""
        self.model.set_adapter(self.adapter)
        self.model.eval()
        out = np.zeros(len(texts), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        n_proc, rank = dist.world(), dist.state().process_index
        batches = list(_batches(len(order), self.batch_size))[rank::n_proc]
        mine: list[tuple[int, float]] = []
        for b, idx in enumerate(tqdm(batches, desc=desc, unit="batch", leave=False,
                                     disable=None if rank == 0 and console.inner_bars() else True)):
            console.now(f"{desc}: batch {b + 1}/{len(batches)}")
            rows = [order[i] for i in idx]
            p = torch.softmax(self.logits([texts[r] for r in rows]).float(), -1)[:, 1].cpu().numpy()
            mine += zip(rows, p.tolist())
        if n_proc > 1:
            from accelerate.utils import gather_object
            mine = gather_object(mine)  # every process's (row, p), concatenated
        rows, p = zip(*mine) if mine else ((), ())
        out[list(rows)] = p
        return out

    def save(self, out: Path) -> None:
        # only the member's own adapter, when several share one base
        if dist.is_main():
            save_artifact(out / "adapter",
                          lambda tmp: self.model.save_pretrained(tmp, selected_adapters=[self.adapter]))


def _head_module(model) -> torch.nn.Module | None:
    for name in ("score", "classifier"):
        mod = getattr(model, name, None)
        if isinstance(mod, torch.nn.Linear):
            return mod
    return None


def _lora_config(tcfg: TrainConfig):
    from peft import LoraConfig, TaskType
    # lora_dropout 0: peft puts an identity where the dropout would be
    return LoraConfig(task_type=TaskType.SEQ_CLS, r=tcfg.lora.r, lora_alpha=tcfg.lora.alpha,
                      lora_dropout=tcfg.lora.dropout if tcfg.dropout else 0.0,
                      target_modules=tcfg.lora.target_modules)


_DROPOUT_LAYERS = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d,
                   torch.nn.AlphaDropout, torch.nn.FeatureAlphaDropout)


def _is_dropout_key(key: str) -> bool:
    """A config field holding a dropout probability: hidden_dropout_prob,
    attention_probs_dropout_prob, classifier_dropout (BERT), attention_dropout (Llama,
    Qwen2), resid_pdrop/embd_pdrop/attn_pdrop (GPT-2), ..."""
    return "dropout" in key or key.endswith("pdrop")


def _dropout_off(path: str, trust_remote_code: bool) -> dict:
    """from_pretrained overrides that set every dropout probability of the model's
    config to 0: some modules read the rate from their config at forward time, which
    _zero_dropout's pass over the built modules does not reach."""
    from transformers import AutoConfig
    cfg = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    return {k: 0.0 for k, v in cfg.to_dict().items()
            if _is_dropout_key(k) and isinstance(v, float) and v > 0}


def _zero_dropout(model: torch.nn.Module) -> None:
    """Every dropout rate the loaded modules hold set to 0: each dropout layer's p
    (some are built with a fixed rate, not the config's) and each float dropout
    attribute (the rate functional attention dropout reads)."""
    for m in model.modules():
        if isinstance(m, _DROPOUT_LAYERS):
            m.p = 0.0
        for k, v in list(vars(m).items()):
            if _is_dropout_key(k) and isinstance(v, float):
                setattr(m, k, 0.0)


def load_base_model(model: str, tcfg: TrainConfig, trust_remote_code: bool = False):
    """The classification model before any adapter, and its tokenizer. Loaded under a
    fixed RNG seed: a head that is not zero-initialised is then the same whichever
    member happens to load the base first."""
    from transformers import AutoModelForSequenceClassification

    path = resolve_model(model)
    tok = load_tokenizer(path, trust_remote_code)
    overrides = {} if tcfg.dropout else _dropout_off(path, trust_remote_code)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=2, trust_remote_code=trust_remote_code, dtype=torch_dtype(tcfg.dtype),
            **overrides)
    return prepare_base(base, tok, tcfg), tok


def prepare_base(base, tok, tcfg: TrainConfig):
    """What LoRA training needs of a classification model, however it was built: dropout
    off (unless train.dropout), the pad token, the head zero-initialised (if configured)
    and gradient checkpointing."""
    if not tcfg.dropout:
        # The model still trains in train mode (the reference calls model.eval() instead):
        # transformers checkpoints gradients only in train mode, so eval mode would turn
        # train.gradient_checkpointing off.
        _zero_dropout(base)
    base.config.pad_token_id = tok.pad_token_id  # decoders find the last non-pad token with it
    head = _head_module(base)
    if tcfg.zero_init_head and head is not None:
        torch.nn.init.zeros_(head.weight)
        if head.bias is not None:
            torch.nn.init.zeros_(head.bias)
    if tcfg.gradient_checkpointing:
        # On the base, before peft wraps it. Non-reentrant: works under DDP and with
        # frozen inputs; transformers also makes the embeddings' output require grad
        # (enable_input_require_grads) for models read from input_ids.
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if getattr(base, "_require_grads_hook", None) is None:
            base.enable_input_require_grads()
        base.config.use_cache = False  # no KV cache while checkpointing (it warns otherwise)
    return base


def _trainable_float32(model: torch.nn.Module) -> None:
    """The fp32 master copy: every trainable parameter (LoRA adapters, the head's
    per-adapter copy) in float32, whatever dtype the frozen base was loaded in. peft
    casts the adapters itself; the head copy keeps the base's dtype without this."""
    for p in model.parameters():
        if p.requires_grad and p.is_floating_point() and p.dtype != torch.float32:
            p.data = p.data.float()


def _head_input_float32(peft_model) -> None:
    """A float32 head on a bf16 base: its input (the base's last hidden states) is cast
    to float32, which matters without autocast (CPU); under CUDA autocast the head's
    matmul runs in bf16 as every other and its output is read as float32."""
    head = next((getattr(peft_model.base_model.model, n) for n in ("score", "classifier")
                 if isinstance(getattr(peft_model.base_model.model, n, None), torch.nn.Module)), None)
    if head is None or getattr(head, "_w2s_fp32_input", False):
        return
    head.register_forward_pre_hook(
        lambda _m, args: tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args))
    head._w2s_fp32_input = True


class LoraBase:
    """One loaded base model carrying one LoRA adapter (and head copy) per member.

    LoRA training never changes the base weights, so ensemble members can share
    them: each member adds its own adapter instead of reloading the model. The
    head is zero-initialised once, and peft gives every adapter its own copy.
    The base is loaded on the first adapter, so a base whose members are all
    cached is never loaded.
    """

    def __init__(self, model: str, tcfg: TrainConfig, trust_remote_code: bool = False):
        self.model_name, self.tcfg, self.trust = model, tcfg, trust_remote_code
        self.peft = None
        self.tok = None
        self._built = None  # (base, tokenizer) of `around`, until the first adapter takes it

    @classmethod
    def around(cls, base, tok, tcfg: TrainConfig, name: str = "in-memory") -> "LoraBase":
        """A LoraBase on a classification model already built in memory (prepared here as a
        loaded one is), e.g. the random-initialised paper-size models scripts/gpu_check.py
        trains without writing tens of GB of weights to disk first."""
        self = cls(name, tcfg)
        self._built = (prepare_base(base, tok, tcfg), tok)
        return self

    def new_adapter(self, name: str, seed: int):
        """A fresh adapter whose initialisation (and, from here, training) depends on
        `seed` alone: the RNG is seeded after the base is loaded, and the first adapter
        is created exactly as every later one, so a member trains the same whether or
        not others trained before it in this process (a resumed run equals an
        uninterrupted one)."""
        from peft import get_peft_model
        if self.peft is None:
            base, self.tok = self._built or load_base_model(self.model_name, self.tcfg, self.trust)
            self._built = None  # peft holds the base from here
        torch.manual_seed(seed)
        if self.peft is None:
            self.peft = get_peft_model(base, _lora_config(self.tcfg), adapter_name=name)
            _head_input_float32(self.peft)
        else:
            self.peft.add_adapter(name, _lora_config(self.tcfg))
        self.peft.set_adapter(name)
        _trainable_float32(self.peft)
        self.peft.to(device())
        return self.peft, self.tok


HeldOut = tuple[list[str], np.ndarray]  # texts and their gold labels (0/1)
# The held-out evaluation per epoch reads at most this many test samples (the first, in
# the split's order): a curve to read, at a cost of a few hundred forward passes an epoch.
HELD_OUT_SAMPLES = 256


def held_out_slice(texts: list[str], labels: list[int]) -> HeldOut:
    """The held-out set a training curve is evaluated on: the first HELD_OUT_SAMPLES."""
    return list(texts[:HELD_OUT_SAMPLES]), np.asarray(labels[:HELD_OUT_SAMPLES], dtype=np.int64)


def held_out_metrics(logits: torch.Tensor, gold: np.ndarray) -> dict[str, float]:
    """Cross-entropy against the gold labels and accuracy (ties read as label 1, as
    w2s_base/decision.py reads a P(1) of 0.5) of a held-out evaluation."""
    y = torch.as_tensor(np.asarray(gold), dtype=torch.long)
    logits = logits.float().cpu()
    p1 = torch.softmax(logits, -1)[:, 1]
    return {"loss": float(torch.nn.functional.cross_entropy(logits, y)),
            "accuracy": float(((p1 >= 0.5).long() == y).float().mean())}


def train_probe(extractor: FeatureExtractor, texts: list[str], p1: np.ndarray, loss_fn: LossFn,
                tcfg: TrainConfig, seed: int, desc: str = "train",
                held_out: HeldOut | None = None) -> ProbeClassifier:
    """A linear head on the extractor's frozen features, trained on soft labels `p1`
    (P(label = 1) per text). `held_out`: texts with gold labels evaluated after each
    epoch (`clf.eval_history`), for the curves only: nothing in training reads it."""
    torch.manual_seed(seed)
    targets = soft_targets(p1)
    x = extractor(texts, desc=f"{desc}: features")
    head = torch.nn.Linear(x.shape[1], 2)
    if tcfg.zero_init_head:
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
    # Standardising inside the head keeps one learning rate sensible across models.
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xs = (x - mu) / sd
    # A linear head on cached features costs milliseconds: each process fits the
    # same head itself rather than synchronising gradients for it.
    evals: list[dict[str, float]] = []
    on_epoch = None
    if held_out is not None and len(held_out[0]):
        xh = (extractor(held_out[0], desc=f"{desc}: held-out features") - mu) / sd  # cached: predicted later

        def on_epoch(step: int) -> None:
            with torch.no_grad():
                evals.append({"step": step, **held_out_metrics(head(xh), held_out[1])})
    history = fit(head, lambda m, idx: m(xs[idx]), targets, loss_fn, tcfg, seed, desc, ddp=False,
                  on_epoch=on_epoch)
    with torch.no_grad():  # fold the standardisation into the head
        w = head.weight / sd
        head.bias -= (head.weight * (mu / sd)).sum(1)
        head.weight.copy_(w)
    clf = ProbeClassifier(extractor, head)
    clf.history, clf.eval_history = history, evals
    return clf


def train_lora(base: LoraBase, texts: list[str], p1: np.ndarray, loss_fn: LossFn, tcfg: TrainConfig,
               seed: int, desc: str = "train", adapter: str = "default",
               held_out: HeldOut | None = None) -> LoraClassifier:
    """A new LoRA adapter (and head) on `base`, trained on soft labels `p1`. `held_out`:
    texts with gold labels evaluated after each epoch (`clf.eval_history`): eval mode,
    no gradients, the train mode restored; nothing in training reads it, and no random
    numbers are drawn (dropout is off in eval mode), so the training is the same."""
    targets = soft_targets(p1)
    lora, tok = base.new_adapter(adapter, seed)
    clf = LoraClassifier(lora, tok, tcfg.max_length, tcfg.batch_size)
    lora.train()
    evals: list[dict[str, float]] = []
    on_epoch = None
    if held_out is not None and len(held_out[0]):
        order = sorted(range(len(held_out[0])), key=lambda i: len(held_out[0][i]))  # less padding

        def on_epoch(step: int) -> None:
            lora.eval()
            try:
                with torch.no_grad():
                    rows = [clf.logits([held_out[0][order[i]] for i in idx]).float().cpu()
                            for idx in _batches(len(order), tcfg.batch_size)]
                gold = np.asarray(held_out[1])[order]
                evals.append({"step": step, **held_out_metrics(torch.cat(rows), gold)})
            finally:
                lora.train()
    clf.history = fit(lora, lambda m, idx: clf.logits([texts[i] for i in idx], m), targets, loss_fn,
                      tcfg, seed, desc, on_epoch=on_epoch)
    clf.eval_history = evals
    return clf


class ModelTrainer:
    """Trains classifiers of one model in the configured mode, sharing what can be
    shared between them: one frozen-feature extractor (probe: each text's forward
    pass paid once) or, with `share_base`, one loaded base for every LoRA adapter
    (weak ensemble members). Without it each LoRA classifier loads its own base."""

    def __init__(self, model: str, tcfg: TrainConfig, trust_remote_code: bool = False,
                 share_base: bool = True):
        self.model, self.tcfg, self.trust, self.share_base = model, tcfg, trust_remote_code, share_base
        self._extractor: FeatureExtractor | None = None
        self._base: LoraBase | None = None

    @property
    def extractor(self) -> FeatureExtractor:
        if self._extractor is None:
            self._extractor = FeatureExtractor(self.model, self.tcfg.max_length,
                                               trust_remote_code=self.trust, dtype=self.tcfg.dtype)
        return self._extractor

    def release(self) -> None:
        """Frees the loaded model: the shared LoRA base (with every member's adapter)
        and the feature extractor's model (its features stay cached). Classifiers
        trained before keep their own reference, so drop them too; a later `train`
        loads the base again. Call it when a stage is done with this model, e.g. the
        weak base before the strong stage loads the strong model."""
        self._base = None
        if self._extractor is not None:
            self._extractor.release()
        free_device_memory()

    def train(self, texts: list[str], p1: np.ndarray, loss_fn: LossFn, seed: int, desc: str = "train",
              adapter: str = "default", held_out: HeldOut | None = None):
        if self.tcfg.mode == TrainMode.LINEAR_PROBE:
            return train_probe(self.extractor, texts, p1, loss_fn, self.tcfg, seed, desc, held_out)
        if not self.share_base:
            return train_lora(LoraBase(self.model, self.tcfg, self.trust), texts, p1, loss_fn,
                              self.tcfg, seed, desc, held_out=held_out)
        if self._base is None:
            self._base = LoraBase(self.model, self.tcfg, self.trust)
        return train_lora(self._base, texts, p1, loss_fn, self.tcfg, seed, desc, adapter, held_out)
