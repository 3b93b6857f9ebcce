"""Skip-if-done for stage outputs: a result is reused only if the settings that
produced it are unchanged (its fingerprint), so a config edit never serves stale work."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from w2s_base.training.distributed import is_main
from w2s_base.runfolder.jsonl import save_json


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached(path: Path, spec: Any, compute: Callable[[], Any]) -> Any:
    fp = fingerprint(spec)
    if path.exists():
        try:
            stored = json.loads(path.read_text())
            if stored.get("fingerprint") == fp:
                return stored["result"]
        except (json.JSONDecodeError, KeyError):
            pass  # a torn file from a killed run: recompute
    result = compute()
    if is_main():  # under a multi-process launcher every process computes; one writes
        save_json(path, {"fingerprint": fp, "spec": spec, "result": result})
    return result
