"""Deterministic, disjoint weak-train / transfer / test splits.

As in weak-to-strong experiments: the weak supervisor is trained on
`weak_train`, labels `transfer` for the strong student, and everyone is scored
on `test`. The split depends only on the set of samples and the seed: samples
are sorted by id before the seeded shuffle, so the order they were read in
does not matter.

`Splits` refuses parts that share a sample id or a text (compared by
`data.dedupe.text_key`, so texts differing only in case, spacing or surrounding
punctuation count as one): no code path can build splits that leak. The pool is
deduplicated before it is split (data/dedupe.py), so `make_splits` never meets
such texts from the pipeline.
"""
from __future__ import annotations

import random
from typing import Sequence

from pydantic import BaseModel, ConfigDict, model_validator

from data.dedupe import text_key
from data.schema import DataError, Sample

_NAMES = ("weak_train", "transfer", "test")


class Splits(BaseModel):
    model_config = ConfigDict(frozen=True)

    weak_train: list[Sample]
    transfer: list[Sample]
    test: list[Sample]

    @model_validator(mode="after")
    def _disjoint(self) -> "Splits":
        # Overlap would leak test labels into training; refuse it at the type.
        ids = [s.id for part in (self.weak_train, self.transfer, self.test) for s in part]
        if len(ids) != len(set(ids)):
            raise ValueError("splits share sample ids")
        seen: dict[str, tuple[str, str]] = {}
        for name in _NAMES:
            for s in getattr(self, name):
                key = text_key(s.text)
                if key in seen and seen[key][0] != name:
                    other, oid = seen[key]
                    raise ValueError(f"splits share a text: {name} sample {s.id!r} and {other} "
                                     f"sample {oid!r} read the same (deduplicate the pool first)")
                seen.setdefault(key, (name, s.id))
        return self

    def all(self) -> list[Sample]:
        return self.weak_train + self.transfer + self.test


def make_splits(samples: Sequence[Sample], n_weak_train: int, n_transfer: int,
                n_test: int, seed: int, balance: bool = False) -> Splits:
    """Three disjoint parts of the given sizes, drawn with `random.Random(seed)`.

    With `balance`, each part holds n//2 samples of each label (the odd one
    from the label with more left), drawn from per-label pools.
    """
    sizes = (n_weak_train, n_transfer, n_test)
    for name, n in zip(_NAMES, sizes):
        if n < 0:
            raise DataError(f"split size n_{name} must be >= 0, got {n}")
    ordered = sorted(samples, key=lambda s: s.id)
    for a, b in zip(ordered, ordered[1:]):
        if a.id == b.id:
            raise DataError(f"duplicate sample id {a.id!r}: cannot split")
    need = sum(sizes)
    if need > len(ordered):
        raise DataError(f"splits need {need} samples ({n_weak_train} weak_train + "
                        f"{n_transfer} transfer + {n_test} test) but only "
                        f"{len(ordered)} are available")
    rng = random.Random(seed)
    rng.shuffle(ordered)
    if not balance:
        cuts = [0, n_weak_train, n_weak_train + n_transfer, need]
        parts = [ordered[cuts[i]:cuts[i + 1]] for i in range(3)]
    else:
        parts = _balanced(ordered, sizes, rng)
    return Splits(**dict(zip(_NAMES, parts)))


def _balanced(shuffled: list[Sample], sizes: tuple[int, int, int],
              rng: random.Random) -> list[list[Sample]]:
    pools = {0: [s for s in shuffled if s.label == 0], 1: [s for s in shuffled if s.label == 1]}
    left = {lab: len(pool) for lab, pool in pools.items()}
    counts = []
    for n in sizes:
        c = {0: n // 2, 1: n // 2}
        if n % 2:
            c[0 if left[0] > left[1] else 1] += 1
        for lab in (0, 1):
            left[lab] -= c[lab]
        counts.append(c)
    for lab in (0, 1):
        want = sum(c[lab] for c in counts)
        if want > len(pools[lab]):
            raise DataError(f"balanced splits need {want} samples with label {lab} "
                            f"but only {len(pools[lab])} are available")
    parts, taken = [], {0: 0, 1: 0}
    for c in counts:
        part = []
        for lab in (0, 1):
            part += pools[lab][taken[lab]:taken[lab] + c[lab]]
            taken[lab] += c[lab]
        rng.shuffle(part)  # otherwise every part would list all 0s before all 1s
        parts.append(part)
    return parts
