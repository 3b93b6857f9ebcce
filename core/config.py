"""The run configuration: one validated pydantic model, loaded from YAML.

Every choice that shapes a result lives here (and is copied into the run folder),
so a report can always be traced to the settings that produced it. Unknown keys
are errors: a misspelt option must never be silently ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from debate.backends.base import SamplingParams


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Strict):
    task: str = "demo"                 # demo | sciq | boolq | cosmosqa | anthropic_hh | generic
    path: str | None = None            # local file in the dataset's original format; None = hub / built-in
    split: str = "train"               # hub split to read when no path is given
    limit: int | None = Field(None, gt=0)  # read only the first N rows
    n_weak_train: int = Field(200, gt=0)
    n_transfer: int = Field(200, gt=0)
    n_test: int = Field(200, gt=0)
    balance: bool = False              # equal label counts in every split (downsampling)
    seed: int = 0


class DebateConfig(Strict):
    enabled: bool = True
    protocol: Literal["debate", "consultancy", "market_making"] = "debate"
    num_turns: int = Field(3, ge=1, le=12)   # the paper's default: A, B, A
    num_debates: int = Field(1, ge=1)        # K independent debates per sample (ensemble axis)
    model: str = "smollm2-135m"              # the strong model debates
    backend: Literal["transformers", "vllm", "vllm_server"] = "transformers"
    prompts: str = "paper"                   # built-in set name or a folder/YAML path
    batch_size: int = Field(16, gt=0)
    chunk_size: int = Field(64, gt=0)        # debates finished (and saved) together
    sampling: SamplingParams = SamplingParams(max_new_tokens=48, temperature=0.7, top_p=0.95,
                                              stop=["\nDebater A:", "\nDebater B:"])
    seed: int = 0
    # transformers on CPU only: int8 dynamic quantisation of the linear layers
    # (~2x faster decoding here; the embedded model is a Q4 GGUF to begin with).
    cpu_int8: bool = False
    # vLLM only (ignored by transformers)
    tensor_parallel_size: int = Field(1, ge=1)
    server_url: str | None = None
    max_concurrency: int = Field(32, gt=0)


class LoraConfig(Strict):
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class TrainConfig(Strict):
    mode: Literal["lora", "linear_probe"] = "lora"
    lora: LoraConfig = LoraConfig()
    epochs: float = Field(2, gt=0)
    batch_size: int = Field(16, gt=0)
    grad_accum: int = Field(1, gt=0)
    lr: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_length: int = Field(512, gt=8)
    warmup_frac: float = Field(0.05, ge=0, lt=1)
    # Burns et al. read a zero-initialised linear head on the last non-pad token.
    zero_init_head: bool = True


class WeakConfig(Strict):
    model: str = "minilm-l6"
    train: TrainConfig = TrainConfig()
    seeds: list[int] = [0]                   # finetune-ensemble axis
    aggregate: Literal["mean", "vote", "logodds"] = "mean"
    # How a transcript too long for the weak model is fitted: every turn gets an
    # equal token budget and keeps its beginning, so no debater is cut away.
    transcript_budget: Literal["per_turn", "head"] = "per_turn"


LossName = Literal["xent", "logconf", "product"]


class StrongConfig(Strict):
    model: str = "smollm2-135m"
    train: TrainConfig = TrainConfig(mode="linear_probe", epochs=20, lr=1e-2, batch_size=32,
                                     max_length=256)
    losses: list[LossName] = ["xent"]
    aux_coef: float = 0.5         # logconf: final weight of the student's hardened prediction
    aux_warmup_frac: float = 0.1  # logconf: steps over which the weight ramps from 0
    product_alpha: float = 1.0    # product: exponent of the weak label
    product_beta: float = 1.0     # product: exponent of the student's prediction
    seed: int = 0


class RunConfig(Strict):
    name: str = Field("demo", pattern=r"^[A-Za-z0-9_.-]+$")
    output_dir: str = "runs"
    trust_remote_code: bool = False
    data: DataConfig = DataConfig()
    debate: DebateConfig = DebateConfig()
    weak: WeakConfig = WeakConfig()
    strong: StrongConfig = StrongConfig()

    @model_validator(mode="after")
    def _check(self) -> "RunConfig":
        if self.debate.protocol == "debate" and self.debate.num_turns < 2:
            raise ValueError("debate.num_turns must be at least 2 for the debate protocol")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


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
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {p} is not a section")
    node[leaf] = value


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Load YAML (safe), apply `key.sub=value` overrides (values parsed as YAML), validate."""
    data: dict[str, Any] = {}
    source = "(defaults)"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r} must look like key.sub=value")
        k, v = ov.split("=", 1)
        set_dotted(data, k.strip(), yaml.safe_load(v))
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None
