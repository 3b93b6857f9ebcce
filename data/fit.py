"""Fitting sample texts to the context of every model that reads them.

The classifiers tokenize with `truncation=True, max_length=...`, which cuts the
END of a text. Every task here puts the part that carries the label last: BoolQ
"Passage: ...\\nQuestion: ...?", CosmosQA "Context: ...\\nQuestion: ...\\nAnswer: ...",
Anthropic HH "...\\n\\nAssistant: <final reply>". So plain truncation of a long item
silently removes its question, candidate answer or final reply. This module
decides, before the data is split, what happens to an over-long text:

- `drop`: the sample is removed, as openai/weak-to-strong does; but the reference
  splits first and drops after (`load_dataset` takes `n_docs`, train_weak_to_strong.py
  halves the train split, then `tokenize_dataset` keeps `len(input_ids) < max_ctx` in
  each part), so its parts come out smaller than asked. Here it is called before
  splitting, so the split sizes stay as configured.
- `cut_middle`: the END and the BEGINNING of the text are kept and a middle span
  is replaced by a visible marker, so the question / candidate answer / final
  reply and the opening of the passage survive. The sample keeps its id, label
  and positions; `meta["cut_tokens"]` records how many tokens were removed.
- `cut_end`: the text is left unchanged, so the tokenizer cuts its end later
  (the legacy behaviour, kept only as an explicit choice); over-long texts are
  still counted so the report can say how many lost their end.

A *reader* is `(name, tokenizer, max_length)`: every model that reads the sample
text (each weak model with `weak.train.max_length`, the strong model with
`strong.train.max_length`). A text is over-long when, for ANY reader, its token
count with special tokens exceeds that reader's `max_length - reserve[name]`;
the reserve holds room for what is appended after the sample text (the debate
transcript the weak model reads). A reader that reads a view of the sample rather
than its text (the weak judge with `weak.sees: without_passage`) is measured on
that view (`fit_samples`' `views`); which readers and reserves a run uses is
decided in w2s_run/pipeline.py (`fit_to_readers`).

Design choices of `cut_middle`:
- budget split: of the tokens the text may keep, `HEAD_SHARE` = 1/4 go to the
  beginning and 3/4 to the end, because the end is where every task's label-
  carrying part sits (a BoolQ question is ~10 tokens, an HH final reply often
  100+), while the beginning keeps the passage's opening (title, topic sentence,
  the first Human turn).
- the cut is made in the tokens of the *tightest* reader (the one that can keep
  the smallest fraction of the text), on its token boundaries, moved by at most
  `MAX_SNAP` tokens so that no word is split (a tail never starts with "##ing").
- the kept parts are sliced from the ORIGINAL string at the tokenizer's
  character offsets, never decoded: a BERT decode would lower-case and re-space
  the text. The result is re-tokenized by every reader and, while any reader
  still finds it too long (the marker and the new boundary can tokenize
  differently), the kept budget shrinks and the cut is redone.
- the marker is `MARKER` = " … " (U+2026, one token for BERT, two for SmolLM2);
  when the kept end starts with a line break (e.g. "\\nQuestion:" or
  "\\n\\nHuman:"), that line break is kept in place of the marker's trailing space,
  so the task's layout survives.
"""
from __future__ import annotations

import contextlib
import math
import statistics
from typing import Any, Callable, Iterator, Literal, Sequence, get_args

from pydantic import BaseModel, Field

from data.schema import Sample

Overlong = Literal["drop", "cut_middle", "cut_end"]
POLICIES: tuple[str, ...] = get_args(Overlong)

# (name, tokenizer, max_length): one model that reads the sample text.
Reader = tuple[str, Any, int]

MARKER = " … "
HEAD_SHARE = 0.25      # share of the kept tokens given to the beginning; the rest to the end
MAX_SNAP = 8           # at most this many tokens given up to avoid splitting a word
MIN_KEEP = 8           # a reader must leave at least this many content tokens to cut into
_MAX_ROUNDS = 50       # re-check rounds of cut_middle (each strictly shrinks the kept budget)
_BATCH = 512           # texts per tokenizer call


class ReaderStats(BaseModel):
    max_length: int
    reserve: int
    budget: int                 # max_length - reserve: the most tokens the sample text may take
    n_overlong: int             # input texts longer than `budget` for this reader
    max_tokens: int             # longest input text, in this reader's tokens (special tokens included)
    median_tokens: float
    max_tokens_out: int         # longest returned text (cut_end: the tokenizer still truncates it)
    reads: Literal["text", "view"] = "text"  # the sample text, or a view of it (`fit_samples`' views)


class FitResult(BaseModel):
    """What `fit_samples` did; `summary()` is the JSON-ready record without the samples."""

    policy: Overlong
    n_in: int
    n_out: int
    n_overlong: int             # over-long for at least one reader
    n_dropped: int
    n_cut: int
    readers: dict[str, ReaderStats]
    overlong_ids: list[str]
    samples: list[Sample] = Field(repr=False)
    # Set by the pipeline after fitting: duplicate texts removed from the pool
    # (data/dedupe.py DedupeResult.summary()), so the run's data summary holds both;
    # `samples` is then the deduplicated pool (n_out still counts the fitted texts).
    dedupe: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"samples"})


# ---------------------------------------------------------------- tokens

@contextlib.contextmanager
def _quiet(tok) -> Iterator[None]:
    """Silence "Token indices sequence length is longer than ..." while measuring."""
    warned = getattr(tok, "deprecation_warnings", None)
    key = "sequence-length-is-longer-than-the-specified-maximum"
    if not isinstance(warned, dict):
        yield
        return
    before = warned.get(key)
    warned[key] = True
    try:
        yield
    finally:
        if before is None:
            warned.pop(key, None)
        else:
            warned[key] = before


def count_tokens(tok, texts: Sequence[str]) -> list[int]:
    """Token counts with special tokens, as the classifiers see them before truncation."""
    out: list[int] = []
    with _quiet(tok):
        for i in range(0, len(texts), _BATCH):
            enc = tok(list(texts[i:i + _BATCH]), add_special_tokens=True, truncation=False,
                      return_attention_mask=False, return_token_type_ids=False)
            out += [len(ids) for ids in enc["input_ids"]]
    return out


def make_reader(name: str, max_length: int, model: str | None = None,
                trust_remote_code: bool = False) -> Reader:
    """A reader for a model name or path of the config (`model` defaults to `name`)."""
    from w2s_base.training.models import load_tokenizer, resolve_model
    return (name, load_tokenizer(resolve_model(model or name), trust_remote_code), max_length)


def _reserves(readers: Sequence[Reader], reserve: dict[str, int] | int) -> dict[str, int]:
    names = [r[0] for r in readers]
    if isinstance(reserve, int):
        res = dict.fromkeys(names, reserve)
    else:
        unknown = sorted(set(reserve) - set(names))
        if unknown:
            raise ValueError(f"reserve names unknown readers {unknown}; readers: {names}")
        res = {n: int(reserve.get(n, 0)) for n in names}
    for name, _, max_length in readers:
        if res[name] < 0:
            raise ValueError(f"reader {name}: reserve must be >= 0, got {res[name]}")
        if max_length - res[name] <= 0:
            raise ValueError(f"reader {name}: max_length {max_length} minus reserve {res[name]} "
                             "leaves no room for the sample text")
    return res


# ---------------------------------------------------------------- cut_middle

def _splice(text: str, offsets: list[tuple[int, int]], words: list[int | None],
            keep: int) -> tuple[str, int, tuple[int, int]]:
    """Keep `keep` content tokens (1/4 head, 3/4 tail) of `text`, tokenized as
    `offsets`/`words` (no special tokens); returns (text, tokens removed, removed char span)."""
    n = len(offsets)
    head = int(keep * HEAD_SHARE)
    h, t = head, n - (keep - head)
    # No split words: the head gives back a word's first pieces, the tail its last ones.
    for _ in range(MAX_SNAP):
        if 0 < h < n and words[h] is not None and words[h] == words[h - 1]:
            h -= 1
    for _ in range(MAX_SNAP):
        if 0 < t < n and words[t] is not None and words[t] == words[t - 1]:
            t += 1
    t = max(t, h)
    head_end = offsets[h - 1][1] if h > 0 else 0
    tail_start = offsets[t][0] if t < n else len(text)
    head_part = text[:head_end].rstrip()
    tail_part = text[tail_start:]
    stripped = tail_part.lstrip()
    lead = tail_part[:len(tail_part) - len(stripped)]
    sep = lead if "\n" in lead else MARKER[-1:]
    marker = MARKER.rstrip()
    out = (head_part + marker if head_part else marker.lstrip()) + sep + stripped
    return out, t - h, (head_end, tail_start)


def _content_budgets(readers: Sequence[Reader], budgets: dict[str, int],
                     specials: dict[str, int]) -> dict[str, int]:
    """Per reader, the content tokens a cut text may keep: its budget less its special
    tokens and the marker."""
    out = {}
    for name, tok, _ in readers:
        marker = len(tok(MARKER, add_special_tokens=False)["input_ids"])
        out[name] = budgets[name] - specials[name] - marker
        if out[name] < MIN_KEEP:
            raise ValueError(f"reader {name}: a budget of {budgets[name]} tokens leaves "
                             f"{out[name]} for a cut text; at least {MIN_KEEP} needed")
    return out


def _token_spans(texts: list[str], toks: dict[str, Any], cutter: list[str]
                 ) -> tuple[list[list[tuple[int, int]]], list[list[int | None]]]:
    """Each text's character offsets and word ids in its cutting reader's tokens (no
    special tokens)."""
    offsets: list[list[tuple[int, int]]] = [[] for _ in texts]
    words: list[list[int | None]] = [[] for _ in texts]
    for name, tok in toks.items():
        idx = [i for i, c in enumerate(cutter) if c == name]
        if idx and not getattr(tok, "is_fast", False):
            raise ValueError(f"reader {name}: cut_middle needs a fast tokenizer (character offsets)")
        with _quiet(tok):
            for s in range(0, len(idx), _BATCH):
                part = idx[s:s + _BATCH]
                enc = tok([texts[i] for i in part], add_special_tokens=False, truncation=False,
                          return_offsets_mapping=True, return_attention_mask=False,
                          return_token_type_ids=False)
                for b, i in enumerate(part):
                    offsets[i] = [tuple(o) for o in enc["offset_mapping"][b]]
                    words[i] = enc.word_ids(b)
    return offsets, words


def _shrink(over: dict[str, int], n_tokens: int, content: dict[str, int]) -> int:
    """How many more of the cutting reader's `n_tokens` tokens a trial cut must give up:
    the largest excess over a reader's budget (`over`, in that reader's tokens),
    converted into the cutting reader's tokens by the ratio of the text's lengths."""
    shrink = 0
    for name, excess in over.items():
        if excess > 0:
            scale = n_tokens / content[name]
            shrink = max(shrink, math.ceil(excess * scale))
    return shrink


def _cut_middle(texts: list[str], readers: Sequence[Reader], budgets: dict[str, int],
                counts: dict[str, list[int]]) -> list[tuple[str, int, str, tuple[int, int]]]:
    """Cut every text of `texts` (all over-long) to fit every reader; per text
    (new text, tokens removed, name of the reader whose tokens were cut, removed char span)."""
    specials = {name: tok.num_special_tokens_to_add(pair=False) for name, tok, _ in readers}
    content_budget = _content_budgets(readers, budgets, specials)
    toks = {name: tok for name, tok, _ in readers}
    # each text's length in each reader's content tokens
    content = [{name: max(1, counts[name][i] - specials[name]) for name in toks}
               for i in range(len(texts))]
    # The tightest reader per text: the one that can keep the smallest fraction of it.
    cutter = [min(toks, key=lambda name: content_budget[name] / content[i][name])
              for i in range(len(texts))]
    offsets, words = _token_spans(texts, toks, cutter)

    keep = [content_budget[cutter[i]] for i in range(len(texts))]
    done: dict[int, tuple[str, int, str, tuple[int, int]]] = {}
    pending = list(range(len(texts)))
    for _ in range(_MAX_ROUNDS):
        if not pending:
            break
        trial = {i: _splice(texts[i], offsets[i], words[i], keep[i]) for i in pending}
        new_counts = {name: count_tokens(tok, [trial[i][0] for i in pending])
                      for name, tok in toks.items()}
        still = []
        for j, i in enumerate(pending):
            shrink = _shrink({name: new_counts[name][j] - budgets[name] for name in toks},
                             len(offsets[i]), content[i])
            if shrink == 0:
                text, removed, span = trial[i]
                done[i] = (text, removed, cutter[i], span)
            else:
                keep[i] -= shrink
                if keep[i] < 2:
                    raise RuntimeError(f"cannot fit text {i} to every reader (budgets {budgets})")
                still.append(i)
        pending = still
    if pending:
        raise RuntimeError(f"cut_middle did not converge for {len(pending)} texts")
    return [done[i] for i in range(len(texts))]


# ---------------------------------------------------------------- the entry point

def _check_policy_and_readers(policy: str, readers: Sequence[Reader]) -> None:
    if policy not in POLICIES:
        raise ValueError(f"unknown over-long policy {policy!r}; one of {list(POLICIES)}")
    if not readers:
        raise ValueError("fit_samples needs at least one reader")
    names = [r[0] for r in readers]
    if len(set(names)) != len(names):
        raise ValueError(f"repeated reader names {names}")


def _cut_samples(samples: list[Sample], over_idx: list[int], readers: Sequence[Reader],
                 budgets: dict[str, int], counts: dict[str, list[int]]
                 ) -> tuple[list[Sample], dict[str, list[int]]]:
    """`samples` with the over-long ones (at `over_idx`) cut by cut_middle, and every
    reader's token counts of the result. A cut sample keeps its id, label and positions;
    its meta records the cut."""
    names = [r[0] for r in readers]
    cuts = _cut_middle([samples[i].text for i in over_idx], readers, budgets,
                       {name: [counts[name][i] for i in over_idx] for name in names})
    new_counts = {name: count_tokens(tok, [c[0] for c in cuts]) for name, tok, _ in readers}
    out = list(samples)
    out_counts = {name: list(counts[name]) for name in names}
    for j, (i, (text, removed, cutter, span)) in enumerate(zip(over_idx, cuts)):
        s = samples[i]
        out[i] = s.model_copy(update={
            "text": text,
            "meta": {**s.meta, "cut_tokens": removed, "cut_reader": cutter,
                     "cut_chars": [span[0], span[1]]},
        })
        for name in names:
            out_counts[name][i] = new_counts[name][j]
    return out, out_counts


def fit_samples(samples: list[Sample], readers: list[Reader], policy: Overlong,
                reserve: dict[str, int] | int = 0,
                views: dict[str, Callable[[Sample], str]] | None = None) -> FitResult:
    """Apply `policy` to the samples whose text is over-long for any reader.

    `reserve`: tokens kept free after the sample text, one number for all
    readers or {reader name: tokens} (missing names: 0). `views`: {reader name:
    what that reader reads of a sample} for a reader that does not read the whole
    text (the weak judge of information-asymmetric debate reads the question
    without the passage); it is measured on that view. A view is not ours to cut
    (it is the task's question and candidate), so under `cut_middle` a sample
    over-long in a view is dropped, and only the readers of the text take part in
    the cut. Returned samples keep their order; a cut sample keeps its id, label
    and positions."""
    _check_policy_and_readers(policy, readers)
    views = views or {}
    names = [r[0] for r in readers]
    unknown = sorted(set(views) - set(names))
    if unknown:
        raise ValueError(f"views name unknown readers {unknown}; readers: {names}")
    res = _reserves(readers, reserve)
    budgets = {name: max_length - res[name] for name, _, max_length in readers}
    counts = {name: count_tokens(tok, [views[name](s) if name in views else s.text for s in samples])
              for name, tok, _ in readers}
    over_by = {name: [c > budgets[name] for c in counts[name]] for name in names}
    over = [any(over_by[name][i] for name in names) for i in range(len(samples))]
    over_idx = [i for i, o in enumerate(over) if o]

    out, out_counts = list(samples), counts
    drop: set[int] = set(over_idx) if policy == "drop" else set()
    cut_idx: list[int] = []
    if policy == "cut_middle":
        drop = {i for i in over_idx if any(over_by[name][i] for name in views)}
        cut_idx = [i for i in over_idx if i not in drop]
    if cut_idx:
        text_readers = [r for r in readers if r[0] not in views]
        out, text_counts = _cut_samples(samples, cut_idx, text_readers, budgets, counts)
        out_counts = {**counts, **text_counts}
        for name, tok, _ in readers:
            if name in views:  # a view may be derived from the text: measure it again
                recount = count_tokens(tok, [views[name](out[i]) for i in cut_idx])
                out_counts[name] = list(counts[name])
                for i, c in zip(cut_idx, recount):
                    out_counts[name][i] = c
    kept = [i for i in range(len(samples)) if i not in drop]
    out = [out[i] for i in kept]

    stats = {name: ReaderStats(
        max_length=max_length, reserve=res[name], budget=budgets[name],
        n_overlong=sum(over_by[name]),
        max_tokens=max(counts[name], default=0),
        median_tokens=float(statistics.median(counts[name])) if counts[name] else 0.0,
        max_tokens_out=max((out_counts[name][i] for i in kept), default=0),
        reads="view" if name in views else "text",
    ) for name, _, max_length in readers}
    return FitResult(
        policy=policy, n_in=len(samples), n_out=len(out), n_overlong=len(over_idx),
        n_dropped=len(drop), n_cut=len(cut_idx),
        readers=stats, overlong_ids=[samples[i].id for i in over_idx], samples=out,
    )
