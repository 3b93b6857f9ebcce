"""Skip-if-done for stage outputs: a result is reused only if the fingerprint of the
`spec` its caller passes is unchanged.

The fingerprint covers that spec and nothing else (a hash of its JSON, keys sorted,
values JSON cannot write by their str()). So a result is as fresh as its spec is
complete: each caller puts in it what made the result (weak/stage.py and
strong/stage.py: the model, its training settings, seed, loss, sample ids or hashes
of them, the debates' content keys, the labels). Anything left out of a spec, such as
a sample's text under an unchanged id, is not checked."""
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
