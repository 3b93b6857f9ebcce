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
What a spec cannot see is the model's weights behind an unchanged name or path.

The saved file also holds `result_sha`, a checksum of the result, so a result changed
after it was written (bit rot, a hand edit) is recomputed like a torn file. Files
written before it existed are trusted as they are.

`audit()` turns `cached` into a check (run.py verify): nothing is computed or written,
each call records whether its result is there, sound and keyed as the caller keys it
now, and returns the stored result (stale or not) so later stages can be keyed too."""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

from w2s_base.training.distributed import is_main
from w2s_base.runfolder.jsonl import read_only, save_json


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (what report.json records of its inputs)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def texts_hash(samples: Iterable[Any], values: Iterable[Any]) -> str:
    """A hash of what a model reads or learns: each sample's id (anything with `.id`)
    beside its value (the exact text, as it goes into the tokenizer, or its label), in
    order."""
    return fingerprint([[s.id, v] for s, v in zip(samples, values, strict=True)])


Status = Literal["ok", "stale", "damaged", "missing"]


@dataclass(frozen=True)
class CacheCheck:
    """One cached result as `audit()` found it."""
    path: Path
    status: Status
    detail: str = ""


class NotBuilt(Exception):
    """Under `audit()`: a result that is missing or damaged, so nothing keyed on it can be
    checked."""

    def __init__(self, check: CacheCheck):
        super().__init__(f"{check.path}: {check.status}")
        self.check = check


_audit: contextvars.ContextVar[list[CacheCheck] | None] = contextvars.ContextVar("audit", default=None)


@contextlib.contextmanager
def audit() -> Iterator[list[CacheCheck]]:
    """Within it `cached` checks instead of computing, and nothing is written (read_only)."""
    checks: list[CacheCheck] = []
    token = _audit.set(checks)
    try:
        with read_only():
            yield checks
    finally:
        _audit.reset(token)


def _differs(a: Any, b: Any, at: str = "") -> list[str]:
    """The keys (dotted) where two specs differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in _differs(a.get(k), b.get(k), f"{at}.{k}" if at else str(k))]
    return [] if a == b else [at or "spec"]


def _look(path: Path, spec: Any, fp: str) -> tuple[CacheCheck, dict | None]:
    if not path.exists():
        return CacheCheck(path, "missing", "not on disk"), None
    try:
        stored = json.loads(path.read_bytes())
        stored["result"], stored["fingerprint"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        return CacheCheck(path, "damaged", "unreadable (torn or not JSON)"), None
    if "result_sha" in stored and stored["result_sha"] != fingerprint(stored["result"]):
        return CacheCheck(path, "damaged", "its result does not match its checksum (changed after it was "
                                           "written)"), None
    if stored["fingerprint"] != fp:
        keys = _differs(json.loads(json.dumps(spec, default=str)), stored.get("spec"))
        why = (f"keyed for another {', '.join(keys)}" if keys else
               "its fingerprint does not match its spec (edited)")
        return CacheCheck(path, "stale", why), stored
    return CacheCheck(path, "ok"), stored


def cached(path: Path, spec: Any, compute: Callable[[], Any]) -> Any:
    fp = fingerprint(spec)
    check, stored = _look(path, spec, fp)
    checks = _audit.get()
    if checks is not None:
        checks.append(check)
        if stored is None:
            raise NotBuilt(check)
        return stored["result"]
    if check.status == "ok":
        return stored["result"]  # type: ignore[index]
    result = compute()  # missing, stale, or damaged (e.g. a torn file from a killed run)
    if is_main():  # under a multi-process launcher every process computes; one writes
        # the checksum of the result as a reader parses it back
        save_json(path, {"fingerprint": fp, "spec": spec, "result": result,
                         "result_sha": fingerprint(json.loads(json.dumps(result)))})
    return result
