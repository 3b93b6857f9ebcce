"""The run configuration: one validated pydantic model, loaded from YAML.

Every choice that shapes a result lives here (and is copied into the run folder),
so a report can always be traced to the settings that produced it. Unknown keys
are errors: a misspelt option must never be silently ignored.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar, Literal

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, TypeAdapter,
                      ValidationError, ValidationInfo, field_validator, model_serializer, model_validator)
from pydantic_core import PydanticCustomError

from w2s_base.backend_specs import BACKENDS, backend_spec
from w2s_base.runfolder.layout import RunLayout, slug
from w2s_base.protocols import MAX_TURNS, PROTOCOLS, protocol as protocol_spec
from w2s_base.losses import LOSSES, Loss  # the registry; imports no torch (see there)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SamplingParams(Strict):
    """How each debate turn is sampled; part of every transcript's key."""
    max_new_tokens: int = Field(64, gt=0)
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    stop: list[str] = []


class TrackingConfig(Strict):
    """`tracking:`: an experiment tracker for the loss curves and the final table
    (w2s_run/services/tracking.py). Off by default."""
    backend: Literal["none", "trackio", "wandb"] = "none"
    project: str = Field("w2s-debate", min_length=1)
    run_name: str | None = None  # the tracker's group for this pipeline run; None: the run's name


class ReportConfig(Strict):
    """`report:`: what the run's claims must be able to resolve."""
    # The smallest paired accuracy difference worth detecting, as a fraction (0.05 = 5
    # accuracy points). `run.py plan` warns when the run's minimum detectable difference
    # (80 % power, two-sided 5 %; w2s_run/report/statistics.py) is larger.
    min_effect: float = Field(0.05, gt=0, lt=1)


class ModelPair(Strict):
    """A (weak model, strong model) pair: model names as weak.model and strong.model take them."""
    weak: str = Field(min_length=1)
    strong: str = Field(min_length=1)


class DataConfig(Strict):
    task: str = "demo"                 # demo | sciq | boolq | cosmosqa | anthropic_hh | generic
    # Local file in the dataset's original format; None = hub / built-in. Relative: to the
    # config file that sets it (or the working directory, for --set); stored absolute.
    path: str | None = None
    split: str = "train"               # hub split to read when no path is given
    limit: int | None = Field(None, gt=0)  # read only the first N rows
    n_weak_train: int = Field(200, gt=0)
    n_transfer: int = Field(200, gt=0)
    n_test: int = Field(200, gt=0)
    balance: bool = False              # equal label counts in every split (downsampling)
    seed: int = 0
    # A text longer than a model's train.max_length: `drop` it before splitting (the
    # reference's rule), `cut_middle` (keep the start and, mostly, the end, where the
    # question, candidate answer or final reply sit), or `cut_end` (the tokenizer's
    # plain truncation, which can cut the label-carrying part away). Counted in the report.
    overlong: Literal["drop", "cut_middle", "cut_end"] = "drop"
    # Models besides this run's own whose contexts bound the pool (over-long texts are
    # handled for them too; w2s_run/pipeline.py fit_to_readers): a capability-gap sweep
    # (w2s_run/sweep.py) names every pair here, so that every pair draws the same pool,
    # split and test ids whatever its tokenizer.
    fit_also: list[ModelPair] = []

    @model_serializer(mode="wrap")
    def _without_empty_fit_also(self, handler) -> dict:
        # Left out when empty, so a config that does not use it is recorded (config.yaml,
        # `run.py verify`'s comparison) exactly as before it existed.
        out = handler(self)
        if not self.fit_also:
            out.pop("fit_also", None)
        return out


class VLLMEngineConfig(Strict):
    """vLLM engine settings for debate.backend `vllm` (in process) and `ray_data`.

    A `vllm_server` endpoint is started by hand with its own flags: these are then the
    server's business, and `debate.backends.vllm_engine.serve_args(cfg)` prints them as
    `vllm serve` flags. One replica is one engine on `tensor_parallel_size` GPUs; a model
    that fits one GPU (Qwen2.5-14B in bf16 on an 80 GB card) runs fastest as one replica
    per GPU (`data_parallel_size` = the GPUs) rather than split by tensor parallelism."""
    tensor_parallel_size: int = Field(1, ge=1)       # GPUs per replica
    # Replicas: `vllm` starts one engine process per replica, each on its own
    # tensor_parallel_size GPUs (of CUDA_VISIBLE_DEVICES), and splits every turn among
    # them; `ray_data` runs this many engine actors over the Ray cluster.
    data_parallel_size: int = Field(1, ge=1)
    max_model_len: int | None = Field(None, gt=0)    # None: the model's own context length
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_num_seqs: int | None = Field(None, gt=0)     # None: vLLM's default for the device
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] = "auto"  # auto: the checkpoint's
    quantization: str | None = None                  # e.g. awq, gptq, fp8 (vLLM's names)
    enable_prefix_caching: bool = True
    enforce_eager: bool = False                      # true: no CUDA graphs / torch.compile
    # Any other vLLM engine argument, passed VERBATIM as a keyword to the engine
    # (vllm.LLM / the Ray Data engine), e.g. {kv_cache_memory_bytes: 1073741824,
    # max_num_batched_tokens: 8192, swap_space: 8}. Not checked here: a misspelt or
    # unsupported key fails when the engine starts. Settings that have a field above,
    # and model / seed (debate.model, debate.seed), are refused here.
    extra: dict[str, Any] = {}

    @field_validator("extra")
    @classmethod
    def _extra_not_shadowing(cls, v: dict[str, Any]) -> dict[str, Any]:
        typed = set(cls.model_fields) - {"extra"}
        for key in v:
            if key in typed:
                raise ValueError(f"{key!r} has its own setting: use debate.vllm.{key}, not "
                                 "debate.vllm.extra")
            if key in ("model", "seed"):
                raise ValueError(f"{key!r} comes from debate.{key}; it cannot be set in "
                                 "debate.vllm.extra")
        return v

    def engine_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of one replica's engine (data_parallel_size excluded:
        replicas are started by the backend, one engine each)."""
        kw: dict[str, Any] = {
            "tensor_parallel_size": self.tensor_parallel_size, "dtype": self.dtype,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "enable_prefix_caching": self.enable_prefix_caching,
            "enforce_eager": self.enforce_eager,
        }
        for key in ("max_model_len", "max_num_seqs", "quantization"):
            if getattr(self, key) is not None:
                kw[key] = getattr(self, key)
        kw.update(self.extra)
        return kw


class RayDataConfig(Strict):
    """debate.backend `ray_data`: each turn is one Ray Data LLM processor stage over the
    turn's conversations (engine settings: debate.vllm; replicas: vllm.data_parallel_size)."""
    # The Ray cluster: "auto", "ray://head:10001", ...; None: $RAY_ADDRESS if set, else
    # a Ray instance started in this process (local mode).
    address: str | None = None
    batch_size: int = Field(64, gt=0)                # rows sent to an engine replica at once
    accelerator_type: str | None = None              # e.g. "H100": only that GPU type


class MisleadConfig(Strict):
    """debate.mislead: on a seeded share `rate` (d) of the transfer and test debates, the
    debater assigned the WRONG label (the gold label's opposite) gets the prompt set's
    mislead instruction (mislead.jinja beside its prompts.yaml) after its turn's own:
    win by any means, fabricated quotes included. A debate is chosen iff its uniform draw
    (debate/controls.py deception_draw: seed, sample id, k; the rate left out, so the
    debates chosen at 0.3 are among those chosen at 0.6) is below d. weak_train stays
    honest, as in the scripted deceptive control (debate/controls.py says why). Recorded
    per transcript (Transcript.deceptive) and labelled [CONTROL] in viewer and report: a
    run with it measures deception, never the method."""
    rate: float = Field(ge=0, le=1)


class DebateConfig(Strict):
    """How transcripts are generated. Which protocols run, and how many debates per
    sample, follows from the weak labellers that read them (weak.labellers).

    A registered backend with its own settings model has them under debate.<name>
    (w2s_base/backend_specs.py): the only extra keys allowed here, each validated by
    its model; any other unknown key is still an error."""
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    enabled: bool = True                     # false: only the no-debate labellers run
    num_turns: int = Field(3, ge=2, le=MAX_TURNS)   # debate: the paper's A, B, A (= turns.debate)
    # Consultancy and market-making: turns of the single consultant (= turns.<protocol>).
    consult_turns: int = Field(1, ge=1, le=MAX_TURNS)
    # {protocol: number of turns} for any registered protocol (w2s_base/protocols.py),
    # over its default; num_turns and consult_turns are the built-ins' older names.
    turns: dict[str, int] = {}
    model: str = "smollm2-135m"              # the strong model debates
    backend: str = "transformers"            # a registered backend: `python run.py --help` lists them
    # A built-in set's name (a bare word: paper, terse, quotes), or a folder / YAML path
    # (holding a '/', or ending .yaml): relative to the config file that sets it (or the
    # working directory, for --set / --prompts); stored absolute.
    prompts: str = "paper"
    # transformers only: conversations per forward pass. vLLM schedules its own batches
    # (vllm.max_num_seqs); the server client keeps max_concurrency per endpoint.
    batch_size: int = Field(16, gt=0)
    # Debates in progress at once. Continuous scheduling (debate.scheduling) keeps this
    # many live, starting one as another ends; in turns, they run as a chunk whose
    # every turn is one backend call. Keep it >= the engine's batch (vllm.max_num_seqs,
    # or max_concurrency x endpoints) so the engine never waits for work.
    chunk_size: int = Field(64, gt=0)
    # continuous: a debate's next turn is sent as soon as its own reply is back (the
    # server client, vLLM's in-process engine and replica pool; transformers and
    # ray_data run in turns).
    # turns: every live debate's turn t in one call, a barrier per turn.
    scheduling: Literal["continuous", "turns"] = "continuous"
    sampling: SamplingParams = SamplingParams(max_new_tokens=48, temperature=0.7, top_p=0.95,
                                              stop=["\nDebater A:", "\nDebater B:"])
    seed: int = 0
    # Per-request sampling seeds derived from (seed, protocol, sample, k, turn), so a
    # debate's text does not depend on its batch and a resumed run equals an
    # uninterrupted one. False: unseeded sampling (recorded: another transcript key).
    seeded: bool = True
    # transformers on CPU only: int8 dynamic quantisation of the linear layers
    # (~2x faster decoding here; the embedded model is a Q4 GGUF to begin with).
    cpu_int8: bool = False
    # vllm / ray_data: the engine (debate.tensor_parallel_size is still read, as
    # debate.vllm.tensor_parallel_size).
    vllm: VLLMEngineConfig = VLLMEngineConfig()
    ray_data: RayDataConfig = RayDataConfig()
    # vllm_server: one OpenAI-compatible endpoint, or a list of them (requests go to the
    # endpoint with the fewest outstanding; a request that fails on one is retried on
    # another), each with at most max_concurrency requests in flight.
    server_url: str | list[str] | None = None
    max_concurrency: int = Field(32, gt=0)
    # vllm_server: each attempt's whole-request limit, attempts per request (first
    # try included) and the base of the exponential backoff between them. A hung
    # server surfaces as failed requests after about timeout x attempts.
    server_timeout_s: float = Field(600, gt=0)
    server_max_attempts: int = Field(5, ge=1)
    server_backoff_s: float = Field(0.5, ge=0)
    # A control, not a method: a share of the debates has its wrong side told to mislead
    # (MisleadConfig). None: every debater argues honestly for its side.
    mislead: MisleadConfig | None = None

    @field_validator("turns")
    @classmethod
    def _turns_of_protocols(cls, v: dict[str, int]) -> dict[str, int]:
        for name, n in v.items():
            spec = protocol_spec(name)
            if not spec.reads_transcript:
                raise ValueError(f"protocol {name!r} has no transcript, so no turns")
            if not spec.min_turns <= n <= MAX_TURNS:
                raise ValueError(f"{name}: {n} turns, outside [{spec.min_turns}, {MAX_TURNS}]")
        return v

    @model_validator(mode="after")
    def _turns_set_once(self) -> "DebateConfig":
        for name in self.turns:
            key = protocol_spec(name).turns_key
            if key and key in self.model_fields_set:
                raise ValueError(f"turns.{name} and {key} both set the turns of {name}: set one")
        return self

    @model_serializer(mode="wrap")
    def _without_empty_turns(self, handler) -> dict:
        # An empty `turns` is left out, so a config that does not use it is recorded
        # (config.yaml, the report's settings) exactly as before it existed.
        out = handler(self)
        if not self.turns:
            out.pop("turns", None)
        if self.mislead is None:  # likewise a config without debate.mislead
            out.pop("mislead", None)
        return out

    @model_validator(mode="before")
    @classmethod
    def _tensor_parallel_alias(cls, data: Any) -> Any:
        """`debate.tensor_parallel_size` (older configs) is `debate.vllm.tensor_parallel_size`."""
        if not isinstance(data, dict) or "tensor_parallel_size" not in data:
            return data
        data = dict(data)
        tp = data.pop("tensor_parallel_size")
        vllm = data.get("vllm")
        if isinstance(vllm, VLLMEngineConfig):
            vllm = vllm.model_dump(exclude_unset=True)
        vllm = dict(vllm or {})
        if "tensor_parallel_size" in vllm and vllm["tensor_parallel_size"] != tp:
            raise ValueError(f"tensor_parallel_size {tp!r} and vllm.tensor_parallel_size "
                             f"{vllm['tensor_parallel_size']!r} disagree: set only "
                             "vllm.tensor_parallel_size")
        vllm["tensor_parallel_size"] = tp
        data["vllm"] = vllm
        return data

    @field_validator("backend")
    @classmethod
    def _registered_backend(cls, v: str) -> str:
        if v not in BACKENDS:
            raise PydanticCustomError("backend", "unknown debate backend {name} (registered: {names})",
                                      {"name": repr(v), "names": ", ".join(BACKENDS)})
        return v

    @model_validator(mode="after")
    def _backend_sections(self) -> "DebateConfig":
        """Each extra key must be a registered backend's settings section: validated by
        its model (errors located under debate.<name>), else an unknown key."""
        errors = []
        for key, value in (self.__pydantic_extra__ or {}).items():
            spec = BACKENDS.get(key)
            if spec is None or spec.settings is None:
                errors.append({"type": "extra_forbidden", "loc": (key,), "input": value})
                continue
            try:
                self.__pydantic_extra__[key] = spec.settings.model_validate(value)
            except ValidationError as e:
                # re-raised with the section's name in front of each location (the
                # message as rendered: a model may raise error types of its own)
                errors += [{"type": PydanticCustomError(err["type"], "{msg}", {"msg": err["msg"]}),
                            "loc": (key, *err["loc"]), "input": err["input"]} for err in e.errors()]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @property
    def backend_settings(self) -> BaseModel | None:
        """The chosen backend's own settings (debate.<backend>, its defaults where the
        config has none); None for a backend without a settings model."""
        spec = backend_spec(self.backend)
        if spec.settings is None:
            return None
        given = (self.__pydantic_extra__ or {}).get(spec.name)
        return spec.settings() if given is None else given

    @field_validator("server_url")
    @classmethod
    def _server_urls(cls, v: str | list[str] | None) -> str | list[str] | None:
        if v is None:
            return v
        urls = [v] if isinstance(v, str) else v
        if not urls:
            raise ValueError("an empty list: give one endpoint URL or several")
        seen: set[str] = set()
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
            norm = url.rstrip("/").removesuffix("/v1")
            if norm in seen:
                raise ValueError(f"{url!r} is listed twice")
            seen.add(norm)
        return v

    @property
    def server_urls(self) -> list[str]:
        """The vllm_server endpoints as a list (empty when none is set)."""
        if self.server_url is None:
            return []
        return [self.server_url] if isinstance(self.server_url, str) else list(self.server_url)

    @property
    def tensor_parallel_size(self) -> int:
        return self.vllm.tensor_parallel_size


class LoraConfig(Strict):
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    # The adapter's dropout; applies only with `train.dropout: true` (off otherwise).
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class TrainMode(StrEnum):
    LORA = "lora"                  # LoRA adapters on the model and a classification head
    LINEAR_PROBE = "linear_probe"  # a linear head on the frozen model's features


class TrainConfig(Strict):
    mode: TrainMode = TrainMode.LORA
    lora: LoraConfig = LoraConfig()
    epochs: float = Field(2, gt=0)
    batch_size: int = Field(16, gt=0)
    grad_accum: int = Field(1, gt=0)
    lr: float = Field(5e-4, gt=0)
    # The optimiser, schedule and clipping of w2s_base/training/classifier.py's fit. The
    # defaults are the reference's (openai/weak-to-strong train.py): torch Adam (betas
    # 0.9/0.999, eps 1e-8), the rate annealed by a cosine from lr to 0 over the steps
    # without warm-up, no clipping, no dropout. This project's earlier setting:
    # optimizer adamw, schedule linear, warmup_frac 0.05, max_grad_norm 1.0, dropout true.
    optimizer: Literal["adam", "adamw"] = "adam"
    # adam: torch's L2 term added to the gradient; adamw: decoupled decay. 0: the two agree.
    weight_decay: float = Field(0.0, ge=0)
    # cosine: lr * (1 + cos(pi * progress)) / 2 after warm-up (warmup_frac 0: torch's
    # CosineAnnealingLR); linear: lr * (1 - progress); constant: lr. Warm-up rises
    # linearly from 0 over the first int(warmup_frac * steps) steps.
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_frac: float = Field(0.0, ge=0, lt=1)
    max_grad_norm: float | None = Field(None, gt=0)  # None: no gradient clipping
    # False: every dropout off while training (the model's own dropout probabilities and
    # the LoRA adapter's), as the reference, which trains "without dropout, for
    # determinism"; True: the model's own probabilities and `lora.dropout`.
    dropout: bool = False
    max_length: int = Field(512, gt=8)
    # Burns et al. read a zero-initialised linear head on the last non-pad token.
    zero_init_head: bool = True
    # GPU memory (`python run.py plan` estimates it per job). Gradient checkpointing
    # keeps only each layer's input and recomputes the rest in the backward pass
    # (non-reentrant; ~30 % more compute, a fraction of the activation memory).
    gradient_checkpointing: bool = False
    # The dtype the frozen weights are loaded in ("auto": the checkpoint's own). The
    # trainable parameters (LoRA adapter, head) are float32 whatever it is, so small
    # Adam updates do not round away; on CUDA the compute runs under bf16 autocast.
    dtype: Literal["float32", "bfloat16", "auto"] = "float32"

    # Fields that cannot change a trained model, left out of its cache fingerprint:
    # gradient checkpointing recomputes the same activations (non-reentrant, with the
    # dropout RNG state replayed) and only trades memory for compute.
    NOT_IN_RESULT: ClassVar[frozenset[str]] = frozenset({"gradient_checkpointing"})

    def result_spec(self) -> dict:
        """Every setting that shapes a trained model's result, for cache fingerprints:
        all fields (nested ones, and any added later, included, each with its value even
        when it is the default, so that a changed default retrains) but NOT_IN_RESULT."""
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in self.NOT_IN_RESULT}


def fmt_reliability(reliability: float) -> str:
    """The reliability as written in tags, model names and RNG seeds: 0.9 -> "0.9"."""
    return repr(float(reliability))


class ControlKind(StrEnum):
    POSITIVE = "positive"   # scripted transcripts whose winner names the gold label with some reliability
    SHUFFLED = "shuffled"   # another source's transcripts, each given to another sample
    DECEPTIVE = "deceptive"  # scripted transcripts whose winner argues the WRONG label on a fraction `rate`


class ControlSpec(BaseModel):
    """One control, as the config names it.

    `kind="positive"` needs `reliability` (0..1: the probability that the debate's
    winner defends the gold label; 0.5 = no information). `kind="shuffled"`
    permutes across samples the transcripts of `of` — a protocol's real ones, or a
    positive control's ("positive:0.9": each sample then reads a transcript that
    carries another sample's label, the strictest leak check) — and takes no
    reliability. `kind="deceptive"` needs `rate` (0..1: the fraction of transfer and
    test samples on which the scripted winner argues the wrong label; debate/controls.py
    deceptive_control)."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ControlKind
    reliability: float | None = Field(None, ge=0, le=1)
    rate: float | None = Field(None, ge=0, le=1)
    of: str = "debate"

    @model_validator(mode="after")
    def _check(self) -> "ControlSpec":
        if self.kind != ControlKind.DECEPTIVE and self.rate is not None:
            raise ValueError(f"a {self.kind} control takes no rate (a deceptive control's share of deceived samples)")
        if self.kind in (ControlKind.POSITIVE, ControlKind.DECEPTIVE) and self.of != "debate":
            raise ValueError(f"a {self.kind} control is a scripted 'debate'; `of` applies to shuffled controls")
        if self.kind == ControlKind.POSITIVE:
            if self.reliability is None:
                raise ValueError("a positive control needs a reliability in [0, 1] (0.5 = no information)")
        elif self.kind == ControlKind.DECEPTIVE:
            if self.rate is None:
                raise ValueError("a deceptive control needs a rate in [0, 1] (the share of deceived samples)")
            if self.reliability is not None:
                raise ValueError("a deceptive control takes no reliability (its honest debates name the gold "
                                 "label always; its rate sets how often the winner argues the wrong one)")
        else:
            if self.reliability is not None:
                raise ValueError("a shuffled control takes no reliability")
            if self.of.startswith("positive:"):
                ControlSpec.from_tag(self.of)  # a well-formed positive control
            elif self.of not in PROTOCOLS or not PROTOCOLS[self.of].reads_transcript:
                raise ValueError(f"a shuffled control permutes transcripts; {self.of!r} is neither a "
                                 "protocol with transcripts nor a positive control (positive:<r>)")
        return self

    @classmethod
    def from_tag(cls, tag: str) -> "ControlSpec":
        kind, _, rest = tag.partition(":")
        if kind == ControlKind.POSITIVE:
            try:
                return cls(kind=ControlKind.POSITIVE, reliability=float(rest))
            except ValueError:
                raise ValueError(f"{tag!r}: a positive control's tag is positive:<reliability>") from None
        if kind == ControlKind.DECEPTIVE:
            try:
                return cls(kind=ControlKind.DECEPTIVE, rate=float(rest))
            except ValueError:
                raise ValueError(f"{tag!r}: a deceptive control's tag is deceptive:<rate>") from None
        return cls(kind=ControlKind.SHUFFLED, of=rest)

    @property
    def needs_debater(self) -> bool:
        """Whether it permutes real transcripts (a positive control needs no LLM)."""
        return self.kind == ControlKind.SHUFFLED and self.of in PROTOCOLS

    @property
    def protocol(self) -> str:
        """The protocol its transcripts follow (what a labeller reading it must set)."""
        return "debate" if self.kind != ControlKind.SHUFFLED or self.of.startswith("positive:") else self.of

    @property
    def tag(self) -> str:
        """"positive:0.9", "deceptive:0.3" or "shuffled:debate": a stable, human-readable name."""
        if self.kind == ControlKind.POSITIVE:
            return f"positive:{fmt_reliability(self.reliability)}"
        if self.kind == ControlKind.DECEPTIVE:
            return f"deceptive:{fmt_reliability(self.rate)}"
        return f"shuffled:{self.of}"


# A control as results record it (labeller.json, report.json): its tag on disk, the spec in memory.
ControlTag = Annotated[ControlSpec, BeforeValidator(lambda v: ControlSpec.from_tag(v) if isinstance(v, str) else v),
                       PlainSerializer(lambda c: c.tag, return_type=str)]


@dataclass(frozen=True)
class Source:
    """Which transcripts a labeller's members read: none, a protocol's, or a control's."""
    protocol: str
    control: ControlSpec | None = None

    @property
    def key(self) -> str:
        """"none", the protocol, or the control's tag: as member folders, their cache keys and
        the run's transcript sets name it."""
        return self.control.tag if self.control else self.protocol

    @property
    def reads_transcripts(self) -> bool:
        return protocol_spec(self.protocol).reads_transcript


Aggregate = Literal["mean", "vote", "logodds"]


def _registered_loss(name: str) -> str:
    try:
        return LOSSES.check(name)
    except ValueError as e:
        raise PydanticCustomError("loss_name", "{why}", {"why": str(e)}) from None


# Checked when validated, not when this module is imported: a loss registered later
# (a module of the user's, imported before the config is loaded) is valid too.
LossName = Annotated[str, AfterValidator(_registered_loss)]


class LabellerConfig(Strict):
    """One weak labeller: an ensemble of members = models x seeds x debate samples.

    protocol `none` reads the sample only; otherwise member (model, seed, k) is
    trained and applied with the k-th transcript of that protocol for each sample.
    The paper's rows: single weak (1 member), finetune ensemble (seeds), debate
    ensemble (debates), consultancy and market-making labels."""
    name: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    protocol: str = "none"  # a registered protocol (w2s_base/protocols.py)
    models: list[str] | None = Field(None, min_length=1)  # None: [weak.model]; may mix architectures
    seeds: list[int] = Field([0], min_length=1)            # finetune-ensemble axis
    debates: int = Field(1, ge=1)                          # debate-ensemble axis: K transcripts per sample
    aggregate: Aggregate | None = None                     # None: weak.aggregate
    losses: list[LossName] | None = None                   # None: strong.losses
    # A control reads scripted (positive) or permuted (shuffled) transcripts instead
    # of the debater's: it calibrates the instrument and is never a method's result.
    control: ControlSpec | None = None

    @field_validator("protocol")
    @classmethod
    def _registered(cls, v: str) -> str:
        protocol_spec(v)  # one line naming the registered protocols
        return v

    @property
    def reads_transcript(self) -> bool:
        return self.source.reads_transcripts  # one rule: the Source's

    @model_validator(mode="after")
    def _check(self) -> "LabellerConfig":
        if not self.reads_transcript and self.debates != 1:
            raise ValueError(f"labeller {self.name}: debates > 1 needs a protocol other than none")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"labeller {self.name}: repeated seeds")
        if self.control is not None and self.protocol != self.control.protocol:
            raise ValueError(f"labeller {self.name}: a {self.control.kind} control reads "
                             f"{self.control.protocol!r} transcripts: set protocol: {self.control.protocol}")
        return self

    @property
    def source(self) -> Source:
        return Source(self.protocol, self.control)


class WeakConfig(Strict):
    model: str = "minilm-l6"
    train: TrainConfig = TrainConfig()
    labellers: list[LabellerConfig] = Field(
        [LabellerConfig(name="weak"), LabellerConfig(name="weak+debate", protocol="debate")], min_length=1)
    # The plain weak model every PGR is measured against (and whose predictions
    # place the market-making consultant); must be a protocol-none labeller.
    reference: str = "weak"
    aggregate: Aggregate = "mean"
    # How a transcript too long for the weak model is fitted: every turn gets an
    # equal token budget and keeps its beginning, so no debater is cut away.
    transcript_budget: Literal["per_turn", "head"] = "per_turn"
    # Tokens of each weak model's context kept free for a transcript (at most half of
    # max_length): a sample is over-long for the weak model beyond max_length - this.
    # Kept whether or not this run's labellers read transcripts, so a run with and one
    # without debate get the same samples (w2s_run/pipeline.py fit_to_readers).
    transcript_reserve: int = Field(128, ge=0)
    # What the weak model reads of each sample: `all`, or `without_passage` for
    # information-asymmetric debate (Khan et al. 2024): the debaters and the strong
    # model read the passage, the weak judge only the question (and candidate).
    sees: Literal["all", "without_passage"] = "all"
    # Grade each <quote> in a transcript against the sample's passage (debate/quotes.py)
    # in what the weak model reads: <v_quote> verbatim, <f_quote> a near match (word
    # similarity to its best passage window ≥ fuzzy_quote_threshold), <u_quote> neither.
    verify_quotes: bool = False
    fuzzy_quote_threshold: float = Field(0.9, gt=0, le=1)
    # Market-making on weak_train: the consultant's side comes from plain weak models
    # trained on the other folds (cross-fitting), never from one that saw the label.
    placement_folds: int = Field(2, ge=2)


class StrongConfig(Strict):
    model: str = "smollm2-135m"
    train: TrainConfig = TrainConfig(mode="linear_probe", epochs=20, lr=1e-2, batch_size=32,
                                     max_length=256)
    losses: list[LossName] = ["xent"]
    # Each loss's hyperparameters, by loss name, e.g. {logconf: {aux_coef: 0.5,
    # warmup_frac: 0.1}, product: {alpha: 1.0, beta: 1.0}}: a section holds the fields
    # that loss declares (w2s_base/losses.py), and what it leaves out keeps the
    # loss's default. The flat keys of earlier configs (aux_coef, aux_warmup_frac,
    # product_alpha, product_beta) still work: see _LOSS_ALIASES.
    loss_settings: dict[LossName, dict[str, Any]] = {}
    # Every student (and the ceiling) is trained once per seed; the report gives the
    # mean over seeds and a bootstrap interval over test samples.
    seeds: list[int] = Field([0], min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _flat_loss_keys(cls, data: Any) -> Any:
        """The flat keys of earlier configs (and --set strong.aux_coef=...) move into
        loss_settings; the same setting given both ways, differently, is an error."""
        if not isinstance(data, dict) or not data.keys() & _LOSS_ALIASES.keys():
            return data
        data = dict(data)
        settings = data.get("loss_settings") or {}
        if not isinstance(settings, dict):
            return data  # reported by the field's own validation
        settings = {k: dict(v) if isinstance(v, dict) else v for k, v in settings.items()}
        for key in _LOSS_ALIASES.keys() & data.keys():
            loss, param = _LOSS_ALIASES[key]
            value = data.pop(key)
            section = settings.setdefault(loss, {})
            if isinstance(section, dict):
                if section.get(param, value) != value:
                    raise PydanticCustomError(
                        "loss_alias", "strong.{key} is the earlier name of strong.loss_settings.{loss}.{param}, "
                        "which is set to another value: set one of them", {"key": key, "loss": loss, "param": param})
                section[param] = value
        data["loss_settings"] = settings
        return data

    @field_validator("loss_settings")
    @classmethod
    def _declared_settings(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Each section checked against its loss's declared hyperparameters, and kept
        with all of them (defaults filled in): the config of record names every value."""
        return {name: _checked_settings(name, section) for name, section in v.items()}

    def loss(self, name: str) -> Loss:
        """The loss `name`, built with its settings here (what they leave out: its defaults)."""
        return LOSSES[name](**self.loss_settings.get(name, {}))


# strong.<flat key> of earlier configs -> (loss, hyperparameter) in strong.loss_settings
_LOSS_ALIASES = {"aux_coef": ("logconf", "aux_coef"), "aux_warmup_frac": ("logconf", "warmup_frac"),
                 "product_alpha": ("product", "alpha"), "product_beta": ("product", "beta")}


def _checked_settings(name: str, section: dict[str, Any]) -> dict[str, Any]:
    """A loss's settings section validated against the fields the loss declares."""
    cls = LOSSES[name]
    try:
        return asdict(TypeAdapter(cls).validate_python(section))
    except ValidationError as e:
        unknown = ("unexpected_keyword_argument", "extra_forbidden")
        problems = "; ".join(f"{name}.{'.'.join(map(str, err['loc']))}: "
                             f"{'unknown key' if err['type'] in unknown else err['msg']}" for err in e.errors())
        declared = ", ".join(asdict(cls())) or "none"
        raise PydanticCustomError("loss_settings", "{problems} (the settings of loss {name}: {declared})",
                                  {"problems": problems, "name": name, "declared": declared}) from None


# The checkout this code runs from: no run folder may land in it (its root, a folder
# above it) or in one of its source folders (w2s_base/, debate/, .git/, configs/, ...).
REPO_ROOT = Path(__file__).resolve().parents[1]
_SOURCE_SUFFIXES = {".py", ".yaml", ".yml", ".sh", ".toml"}
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def _source_folder(run_dir: Path) -> str | None:
    """Why run_dir (resolved) would write into this repository's sources, or None."""
    if run_dir == REPO_ROOT:
        return f"is the repository root {REPO_ROOT}"
    if run_dir in REPO_ROOT.parents:
        return f"contains the repository {REPO_ROOT}"
    try:
        top = run_dir.relative_to(REPO_ROOT).parts[0]
    except ValueError:
        return None  # outside the repository
    folder = REPO_ROOT / top
    if not folder.is_dir():
        return None  # a new folder (e.g. runs/)
    if top.startswith(".") or any(f.suffix in _SOURCE_SUFFIXES and f.is_file() for f in folder.iterdir()):
        where = "is" if run_dir == folder else "is inside"
        return f"{where} {folder}, a source folder of this repository"
    return None


REPLICATE_STRIDE = 1000  # replicate r's seeds: each seed + REPLICATE_STRIDE * r


class SweepPair(ModelPair):
    """One point of a capability-gap sweep: its two models and its run's folder."""
    # The pair's run folder under <run>/sweep/; None: "<weak>__<strong>", each slugged.
    name: str | None = Field(None, pattern=_NAME.pattern)

    @property
    def folder(self) -> str:
        return self.name or f"{slug(self.weak)}__{slug(self.strong)}"


class SweepConfig(Strict):
    """`sweep:`: the pipeline once per (weak, strong) pair, each pair a run of its own
    under <run>/sweep/<pair>/ with every other setting of this config (the same data,
    split and test ids, labellers, seeds and replicates), then one PGR-vs-gap table and
    plot over the pairs (<run>/sweep.md, .json, .png; w2s_run/sweep.py)."""
    pairs: list[SweepPair] = Field(min_length=2)
    # Who debates in each pair: `strong`, its strong model (the paper's setup, where the
    # strong model is the debater); `fixed`, debate.model in every pair. Labellers that
    # read no transcript, or only scripted controls, load no debater either way.
    debater: Literal["strong", "fixed"] = "strong"

    @field_validator("pairs")
    @classmethod
    def _distinct_folders(cls, v: list[SweepPair]) -> list[SweepPair]:
        folders = [p.folder for p in v]
        repeated = sorted({f for f in folders if folders.count(f) > 1})
        if repeated:
            raise ValueError(f"two pairs share the run folder {', '.join(repeated)}: list each pair once, "
                             "or give each its own `name`")
        return v


class RunConfig(Strict):
    # Python files (relative to the config file that names them) or module names imported
    # before the rest is validated: a loss, protocol or debate backend of your own,
    # registered there, is then usable by name (README: Architecture).
    extensions: list[str] = []
    name: str = "demo"
    output_dir: str = "runs"
    trust_remote_code: bool = False
    data: DataConfig = DataConfig()
    debate: DebateConfig = DebateConfig()
    weak: WeakConfig = WeakConfig()
    strong: StrongConfig = StrongConfig()
    tracking: TrackingConfig = TrackingConfig()  # experiment tracker (off by default; w2s_run/services/tracking.py)
    report: ReportConfig = ReportConfig()
    # Independent draws of the method (for_replicate): every replicate re-seeds the debates,
    # the weak members and the students (and, with replicate_splits, the split), and the
    # report pools every comparison over them (w2s_run/report/statistics.py).
    replicates: int = Field(1, ge=1)
    replicate_splits: bool = False
    # A capability-gap sweep over (weak, strong) pairs (SweepConfig); None: one run.
    sweep: SweepConfig | None = None

    @model_serializer(mode="wrap")
    def _without_unset_sweep(self, handler) -> dict:
        # Left out when None, so a one-run config is recorded exactly as before it existed.
        out = handler(self)
        if self.sweep is None:
            out.pop("sweep", None)
        return out

    @field_validator("name")
    @classmethod
    def _plain_folder_name(cls, v: str) -> str:
        # The name is one folder under output_dir: never a path ('..', 'a/b'), never
        # hidden ('.x'), never an option-like '-x'.
        if not _NAME.fullmatch(v):
            raise PydanticCustomError(
                "run_name", "{name} is not a plain folder name: use letters, digits, '_', '-' and "
                "'.', not starting with '.' or '-', at most 100 characters (it names the run "
                "folder output_dir/<name>)", {"name": repr(v)})
        return v

    @field_validator("output_dir")
    @classmethod
    def _not_into_sources(cls, v: str, info: ValidationInfo) -> str:
        name = info.data.get("name")
        if name is None:  # the name is invalid itself and reported on its own
            return v
        run_dir = (Path(v).expanduser() / name).resolve()
        why = _source_folder(run_dir)
        if why:
            raise PydanticCustomError(
                "run_folder", "the run folder {run_dir} (output_dir/name) {why}; choose another "
                "output_dir or name", {"run_dir": str(run_dir), "why": why})
        return v

    @model_validator(mode="after")
    def _check(self) -> "RunConfig":
        names = [lab.name for lab in self.weak.labellers]
        if len(set(names)) != len(names):
            raise ValueError(f"weak.labellers: repeated names {names}")
        ref = {lab.name: lab for lab in self.weak.labellers}.get(self.weak.reference)
        if ref is None:
            raise ValueError(f"weak.reference {self.weak.reference!r} is not one of weak.labellers {names}")
        if ref.reads_transcript:
            raise ValueError(f"weak.reference {ref.name!r} must be a labeller with protocol none "
                             "(PGR is measured against the plain weak model)")
        # each student is compared with the reference's student of the same loss
        ref_losses = self.student_losses(ref)
        for lab in self.weak.labellers:
            lacking = [loss for loss in self.student_losses(lab) if loss not in ref_losses]
            if lacking:
                raise ValueError(
                    f"labeller {lab.name!r} trains students with {', '.join(lacking)}, which the reference "
                    f"labeller {ref.name!r} does not ({', '.join(ref_losses)}): each student is compared with "
                    f"the reference's student of the same loss; add {', '.join(lacking)} to the losses of "
                    f"{ref.name!r} (or to strong.losses)")
        if self.replicates > 1:  # replicate r adds r * REPLICATE_STRIDE: no two draws may share a seed
            for what, seeds in (("weak.labellers[].seeds", [x for lab in self.weak.labellers for x in lab.seeds]),
                                ("strong.seeds", self.strong.seeds)):
                if max(seeds) - min(seeds) >= REPLICATE_STRIDE:
                    raise ValueError(f"{what} span {min(seeds)}..{max(seeds)}: with replicates > 1 they must "
                                     f"lie within {REPLICATE_STRIDE} of each other (replicate r adds "
                                     f"{REPLICATE_STRIDE} * r to every seed)")
        return self

    def for_replicate(self, r: int) -> "RunConfig":
        """Replicate r (0-based) of this run: every random draw of the method re-seeded,
        debate.seed, each weak labeller's seeds and strong.seeds (and data.seed with
        replicate_splits) plus REPLICATE_STRIDE * r. Replicate 0 is the run itself, so a
        one-draw run's transcripts, members and students are its replicate 0."""
        if not 0 <= r < self.replicates:
            raise ValueError(f"replicate {r} of a run with {self.replicates}")
        if r == 0:
            return self
        add = REPLICATE_STRIDE * r
        labellers = [lab.model_copy(update={"seeds": [x + add for x in lab.seeds]}) for lab in self.weak.labellers]
        return self.model_copy(update={
            "debate": self.debate.model_copy(update={"seed": self.debate.seed + add}),
            "weak": self.weak.model_copy(update={"labellers": labellers}),
            "strong": self.strong.model_copy(update={"seeds": [x + add for x in self.strong.seeds]}),
            "data": self.data.model_copy(update={"seed": self.data.seed + add}) if self.replicate_splits else self.data})

    def replicate_layout(self, r: int) -> RunLayout:
        """Where replicate r's own files lie: the run folder itself for a one-draw run."""
        return self.layout.for_replicate(r) if self.replicates > 1 else self.layout

    def student_losses(self, lab: LabellerConfig) -> list[str]:
        """The losses of the students trained on `lab`'s labels: its own, else strong.losses."""
        return lab.losses or self.strong.losses

    @property
    def labellers(self) -> list[LabellerConfig]:
        """The labellers this run trains: without debates, only the protocol-none ones."""
        return [lab for lab in self.weak.labellers if self.debate.enabled or not lab.reads_transcript]

    def debates_needed(self) -> dict[str, int]:
        """{protocol: K} of the transcripts the debater must write for this run's
        labellers (a shuffled control needs the real transcripts it permutes; a
        positive control needs none)."""
        need: dict[str, int] = {}
        for lab in self.labellers:
            if lab.reads_transcript and (lab.control is None or lab.control.needs_debater):
                need[lab.protocol] = max(need.get(lab.protocol, 0), lab.debates)
        return need

    def controls_needed(self) -> dict[str, tuple[ControlSpec, int]]:
        """{control tag: (spec, K)} over this run's control labellers, in the order they
        can be made: a positive control that a shuffled one permutes comes first."""
        need: dict[str, tuple[ControlSpec, int]] = {}

        def add(spec: ControlSpec, k: int) -> None:
            if spec.kind == ControlKind.SHUFFLED and spec.of.startswith("positive:"):
                add(ControlSpec.from_tag(spec.of), k)
            need[spec.tag] = (spec, max(need.get(spec.tag, (spec, 0))[1], k))

        for lab in self.labellers:
            if lab.control:
                add(lab.control, lab.debates)
        return need

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.run_dir)


class ConfigError(ValueError):
    pass


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = parts = dotted.split(".")
    if not all(part.strip() for part in parts):
        raise ConfigError(f"override {dotted!r}: the key must look like section.key, with no empty part")
    for i, p in enumerate(parents):
        if node.get(p) is None:  # absent, or an empty section (`debate:` with nothing under it)
            node[p] = {}
        node = node[p]
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {'.'.join(parents[:i + 1])} is not a section")
    node[leaf] = value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(p: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file; `extends: other.yaml` (relative to this file) is read first and
    this file's keys override it (mappings merge, lists and values replace)."""
    if not p.exists():
        raise ConfigError(f"config file {p} does not exist")
    if not p.is_file():
        raise ConfigError(f"config file {p} is not a file")
    if p.resolve() in seen:
        raise ConfigError(f"config file {p} extends itself (through {' -> '.join(map(str, seen))})")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:  # one line: the problem and where
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config file {p} is not valid YAML{where}: {what}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {p} cannot be read: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    _resolve_paths(data, p.parent)  # a file named here is relative to this file
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent.strip():
        raise ConfigError(f"config file {p}: extends must name one config file, got {parent!r}")
    return _merge(_read_yaml(p.parent / str(parent), seen + (p.resolve(),)), data)


def _extension_path(entry: Any, base: Path) -> Any:
    """A `.py` file of `extensions`, made absolute against `base`; a module name as it is."""
    if isinstance(entry, str) and entry.endswith(".py"):
        return str((base / Path(entry).expanduser()).resolve())
    return entry


def _absolute(value: str, base: Path) -> str:
    return os.path.normpath((base / Path(value).expanduser()).absolute())


def _prompt_set_path(value: str) -> bool:
    """Whether a `debate.prompts` value is a path (a bare word is a built-in set's name)."""
    return "/" in value or os.sep in value or value.startswith(("~", ".")) or value.endswith((".yaml", ".yml"))


# The keys whose values name files, and how a relative one is made absolute against a
# folder: the folder of the config file that holds it (as `extends` is), or the working
# directory for a `--set` override (it was typed there). Stored absolute, so the config
# of record (runs/<name>/config.yaml) reads back the same from anywhere.
PATH_KEYS: dict[str, Callable[[Any, Path], Any]] = {
    "data.path": lambda v, base: _absolute(v, base) if isinstance(v, str) and v else v,
    "debate.prompts": lambda v, base: _absolute(v, base) if isinstance(v, str) and _prompt_set_path(v) else v,
    "extensions": lambda v, base: [_extension_path(e, base) for e in v] if isinstance(v, list) else v,
}


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make the relative paths under PATH_KEYS in `data` absolute against `base`."""
    for dotted, resolve in PATH_KEYS.items():
        *parents, leaf = dotted.split(".")
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[leaf] = resolve(node[leaf], base)


def import_extensions(entries: Any) -> None:
    """Import every entry of `extensions` (a `.py` file or a module name) so that the
    losses, protocols and debate backends it registers are known when the config is
    validated. A file is imported once per process, under a name from its path."""
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise ConfigError(f"extensions: a list of .py files or module names, got {entries!r}")
    for entry in entries:
        try:
            if entry.endswith(".py"):
                path = Path(entry)
                if not path.is_file():
                    raise ConfigError(f"extensions: {entry} is not a file")
                name = "w2s_extension_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
                if name in sys.modules:
                    continue
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
            else:
                importlib.import_module(entry)
        except ConfigError:
            raise
        except Exception as e:  # the user's code: one line naming the entry and the cause
            raise ConfigError(f"extensions: {entry} could not be imported: "
                              f"{type(e).__name__}: {e}") from None


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Load YAML (safe), apply `key.sub=value` overrides (values parsed as YAML), import
    the `extensions` it names, validate."""
    data: dict[str, Any] = {}
    source = "(defaults)"
    if path is not None:
        source = str(path)
        data = _read_yaml(Path(path))
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r} must look like key.sub=value")
        k, v = ov.split("=", 1)
        try:
            value = yaml.safe_load(v)
        except yaml.YAMLError as e:  # e.g. --set 'data.n_test=[1,': one line naming the override
            what = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"override {ov!r}: the value is not valid YAML ({what}); "
                              "quote it to pass a string, e.g. key='a: b'") from None
        key = k.strip()
        one: dict[str, Any] = {}  # this override alone: its paths are relative to the cwd (typed there)
        set_dotted(one, key, value)
        _resolve_paths(one, Path.cwd())
        for part in key.split("."):
            one = one[part]
        set_dotted(data, key, one)
    import_extensions(data.get("extensions", []))
    return validate_config(data, source)


def validate_config(data: dict[str, Any], source: str) -> RunConfig:
    """A RunConfig from a mapping; a ConfigError naming `source` and every problem otherwise."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None
