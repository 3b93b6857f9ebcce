"""One small converter per benchmark: a raw row in the dataset's own format -> Sample.

Which converter, default positions and hub source belong to a task is declared
once, in the registry `data.tasks.TASKS`; this module holds only the converters
(`data.loading.convert_row` applies one to a row).

The text/label semantics follow openai/weak-to-strong `datasets.py` (Burns et
al. 2023): multiple-choice sets become binary by showing one candidate answer,
the correct one half the time. Randomness is drawn from an rng seeded by
(seed, task, sample id), never from a shared stream, so reading a prefix of a
file, or the rows in another order, yields the same samples for the rows read.

Row ids: a row's `id` (or SuperGLUE's `idx`) field when present, else
f"{task}-{index}" with the 0-based index of the row in its source.

Generic JSONL format (task "generic"), one object per line:
    {"text": "...", "label": 0 | 1 | true | false,
     "id": "optional-unique-id",
     "positions": ["claim true if label 0", "claim true if label 1"]}  # optional
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from data.schema import DataError, Sample


Row = Mapping[str, Any]


class RowError(Exception):
    """A problem with one row; the caller adds task, file and line."""


@dataclass(frozen=True)
class Converted:
    text: str
    label: int
    meta: dict[str, Any]
    positions: tuple[str, str] | None = None  # None: the task's default (TaskSpec.positions)


# ---- field access: every failure names the field ---------------------------

def _present(row: Row, name: str) -> Any:
    value = row.get(name)
    if value is None:  # absent key, JSON null and parquet null read the same
        raise RowError(f"missing field {name!r}")
    return value


def _text(row: Row, name: str) -> str:
    value = _present(row, name)
    if not isinstance(value, str):
        raise RowError(f"field {name!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RowError(f"field {name!r} is empty")
    return value


_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


def _binary(row: Row, name: str) -> int:
    # CSV gives strings, parquet/JSON give bools or ints; all mean the same label.
    value = _present(row, name)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return int(value.strip().lower() in _TRUE)
    raise RowError(f"field {name!r} must be 0/1 or true/false, got {value!r}")


def _index(row: Row, name: str, n: int) -> int:
    value = _present(row, name)
    i: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        i = value
    elif isinstance(value, float) and value.is_integer():
        i = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        i = int(value)
    if i is None or not 0 <= i < n:
        raise RowError(f"field {name!r} must be an integer in 0..{n - 1}, got {value!r}")
    return i


# ---- converters ------------------------------------------------------------
# One per dataset, `(row, rng) -> Converted`; the registry (data/tasks.py) pairs
# each with its task's default positions and hub source.

def sciq(row: Row, rng: random.Random) -> Converted:
    question = _text(row, "question")
    correct = _text(row, "correct_answer")
    raw = [_present(row, f"distractor{i}") for i in (1, 2, 3)]
    # An empty distractor is a data slip, not a reason to lose the row.
    distractors = [d for d in raw if isinstance(d, str) and d.strip() and d != correct]
    if not distractors:
        raise RowError("fields 'distractor1'..'distractor3' hold no usable wrong answer")
    label = int(rng.random() < 0.5)
    candidate = correct if label else rng.choice(distractors)
    return Converted(
        f"Q: {question} A: {candidate}", label,
        {"question": question, "candidate": candidate, "correct_answer": correct,
         "support": row.get("support") or ""},
    )


def boolq(row: Row, rng: random.Random) -> Converted:
    question = _text(row, "question")
    passage = _text(row, "passage")
    # google/boolq has `answer: bool`; super_glue/boolq has `label: 0/1`.
    label = _binary(row, "answer" if "answer" in row else "label")
    # BoolQ questions are lower-case and lack the "?" that marks them as questions.
    shown = question.rstrip() if question.rstrip().endswith("?") else question.rstrip() + "?"
    # passage / without_passage: for information-asymmetric debate (weak.sees), where
    # the debaters read the passage and the weak judge only the question.
    meta = {"question": question, "passage": passage, "without_passage": f"Question: {shown}"}
    if row.get("title"):
        meta["title"] = row["title"]
    return Converted(f"Passage: {passage}\nQuestion: {shown}", label, meta)


def cosmosqa(row: Row, rng: random.Random) -> Converted:
    context = _text(row, "context")
    question = _text(row, "question")
    answers = [_present(row, f"answer{i}") for i in range(4)]
    for i, a in enumerate(answers):
        if not isinstance(a, str):
            raise RowError(f"field 'answer{i}' must be a string, got {type(a).__name__}")
    gold = _index(row, "label", 4)
    true_answer = answers[gold]
    # As in Burns et al.: when the gold answer is "None of the above", every
    # shown candidate is wrong, so the row is always a label-0 example.
    label = 0 if "None of the above choices" in true_answer else int(rng.random() < 0.5)
    wrong = [a for a in answers if a != true_answer and a.strip()]
    if not label and not wrong:
        raise RowError("no wrong answer among 'answer0'..'answer3' differs from the gold one")
    candidate = true_answer if label else rng.choice(wrong)
    return Converted(
        f"Context: {context}\nQuestion: {question}\nAnswer: {candidate}", label,
        {"question": question, "candidate": candidate, "correct_answer": true_answer,
         "passage": context, "without_passage": f"Question: {question}\nAnswer: {candidate}"},
    )


_ASSISTANT = "\n\nAssistant:"


def anthropic_hh(row: Row, rng: random.Random) -> Converted:
    chosen = _text(row, "chosen")
    rejected = _text(row, "rejected")
    label = int(rng.random() < 0.5)
    text = chosen if label else rejected
    cut = text.rfind(_ASSISTANT)
    meta: dict[str, Any] = {
        "final_reply": text[cut + len(_ASSISTANT):].strip() if cut >= 0 else "",
        # A few HH pairs are identical; their label carries no signal.
        "identical_pair": chosen == rejected,
    }
    return Converted(text, label, meta)


def _positions(row: Row) -> tuple[str, str] | None:
    value = row.get("positions")
    if value is None:
        return None
    if isinstance(value, str):  # CSV cells hold the list as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RowError("field 'positions' must be a list of 2 strings") from None
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(p, str) and p.strip() for p in value)):
        raise RowError("field 'positions' must be a list of 2 non-empty strings")
    if value[0] == value[1]:
        raise RowError("field 'positions' must hold two different claims")
    return (value[0], value[1])


def generic(row: Row, rng: random.Random) -> Converted:
    return Converted(_text(row, "text"), _binary(row, "label"), {}, _positions(row))


Converter = Callable[[Row, random.Random], Converted]
