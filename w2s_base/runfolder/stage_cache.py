"""Skip-if-done for stage outputs: a result is reused only if the fingerprint of the
`spec` its caller passes is unchanged.

The fingerprint covers that spec and nothing else (a hash of its JSON, keys sorted,
values JSON cannot write by their str()). So a result is as fresh as its spec is
complete, and each caller puts in it everything that made the result: the model,
every training setting (TrainConfig.result_spec), the loss with every hyperparameter
(Loss.spec), the seed, and a hash of the exact texts the model reads, per split, with
their ids and the labels it learns from (`texts_hash`), not merely the samples' ids:
a changed text under an unchanged id (another data file, over-long policy, context
length, transcript reserve, transcript fitting) retrains what reads it, and nothing
else. Debates are keyed the same way by their content (debate/transcript.debate_key).
What a spec cannot see is the model's weights behind an unchanged name or path."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Iterable

from w2s_base.training.distributed import is_main
from w2s_base.runfolder.jsonl import save_json


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def texts_hash(samples: Iterable[Any], values: Iterable[Any]) -> str:
    """A hash of what a model reads or learns: each sample's id (anything with `.id`)
    beside its value (the exact text, as it goes into the tokenizer, or its label), in
    order."""
    return fingerprint([[s.id, v] for s, v in zip(samples, values, strict=True)])


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
