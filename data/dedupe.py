"""One text, one sample: duplicates removed from the pool before it is split.

A text that appears twice in a pool can land in weak_train and in test, and the
test accuracy then partly measures memorisation. `text_key` is THE normalisation
used to decide that two texts are the same, here and in `Splits`' disjointness
check (data/splits.py):

- Unicode NFKC (full-width digits, ligatures, non-breaking spaces become their
  plain forms), then `str.casefold()` (case differences, "ß" = "ss");
- every run of whitespace (spaces, tabs, line breaks) collapsed to one space;
- whitespace and punctuation (Unicode categories P*) at either end stripped, so
  "Claim: x." and "claim: x" are one text. Punctuation inside a text is kept:
  it can carry the content ("3 > 2" vs "3 < 2").

The key is only compared, never shown: a sample's text is not changed (debate
transcripts are addressed by the exact text).

Which duplicate is kept: the one with the smallest id (ids sort as strings), so
the choice does not depend on the order the rows were read in. When the copies
of one text carry DIFFERENT labels, every copy is dropped: such a text has no
gold answer, and keeping one would let the id order decide the answer models are
trained and scored on. Both counts go into the run's data summary.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, Sequence

from pydantic import BaseModel, Field

from data.schema import Sample

_SPACE = re.compile(r"\s+")


def _edge(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("P")


def text_key(text: str) -> str:
    """The normalised text that decides whether two texts are the same (module docstring)."""
    t = _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    start, end = 0, len(t)
    while start < end and _edge(t[start]):
        start += 1
    while end > start and _edge(t[end - 1]):
        end -= 1
    return t[start:end]


class DedupeResult(BaseModel):
    """What `dedupe_samples` did; `summary()` is the JSON-ready record without the samples."""

    n_in: int
    n_out: int
    n_duplicates: int          # copies of a text (same label) dropped; one copy kept
    n_conflicting: int         # samples dropped because copies of their text disagree on the label
    n_conflicting_texts: int   # distinct texts with disagreeing labels
    duplicate_ids: list[str]
    conflicting_ids: list[str]
    samples: list[Sample] = Field(repr=False)

    def summary(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"samples"})


def dedupe_samples(samples: Sequence[Sample]) -> DedupeResult:
    """`samples` with one sample per `text_key` (the smallest id; none where the copies'
    labels conflict); the kept samples keep their order."""
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(text_key(s.text), []).append(s)
    drop: set[str] = set()
    duplicate_ids: list[str] = []
    conflicting_ids: list[str] = []
    n_conflicting_texts = 0
    for group in groups.values():
        if len(group) == 1:
            continue
        ids = sorted(s.id for s in group)
        if len({s.label for s in group}) > 1:
            n_conflicting_texts += 1
            conflicting_ids += ids
            drop.update(ids)
        else:
            duplicate_ids += ids[1:]
            drop.update(ids[1:])
    kept = [s for s in samples if s.id not in drop]
    return DedupeResult(n_in=len(samples), n_out=len(kept), n_duplicates=len(duplicate_ids),
                        n_conflicting=len(conflicting_ids), n_conflicting_texts=n_conflicting_texts,
                        duplicate_ids=sorted(duplicate_ids), conflicting_ids=sorted(conflicting_ids),
                        samples=kept)
