"""Quote checking for information-asymmetric debate (Khan et al. 2024,
ucl-dark/llm_debate): debaters who read a passage the judge cannot see support
their claims with <quote>…</quote> spans; each span is graded against the passage
and shown to the judge with the tag of its grade, so the judge can learn how far to
trust each kind of evidence:

- verified, <v_quote>: the quote's words occur in the passage, in order and
  contiguous, after normalisation (case, punctuation and spacing ignored; an
  exact-character check marks near-verbatim quotes false, their issue #2);
- fuzzy, <f_quote>: a near match: the word-level similarity (difflib's
  SequenceMatcher ratio, 2·matched / (quote words + window words)) between the
  quote and its best-matching window of the passage is at least the threshold
  (`weak.fuzzy_quote_threshold`, 0.9 by default), and no word the two differ in is
  a negation (a dropped or added "not" flips the meaning however similar the words);
- unverified, <u_quote>: anything else.

At 0.9 a changed word is tolerated from ten words on and a dropped or added word
from five: a short quote must be verbatim. Similarity of words is not similarity of
meaning, which is why fuzzy quotes are shown as their own grade, never as verified.

The grades are a function of (turn text, passage, threshold), recomputed whenever
the weak model's inputs are built, never stored with a transcript: a new threshold
changes what the judge reads, and so its members' cache keys (their texts' hash),
but no debate (whose text and key it does not change).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from w2s_base.protocols import Side
from w2s_base.runfolder.jsonl import read_jsonl
from debate.transcript import Transcript

QUOTE = re.compile(r"<quote>(.*?)</quote>", re.DOTALL | re.IGNORECASE)
Grade = Literal["verified", "fuzzy", "unverified"]
GRADES: tuple[Grade, ...] = ("verified", "fuzzy", "unverified")
TAGS: dict[Grade, str] = {"verified": "v_quote", "fuzzy": "f_quote", "unverified": "u_quote"}
# Words whose presence on one side only of a near match flips its meaning ("t" is
# what words() leaves of "n't": "isn't" -> "isn", "t").
NEGATIONS = frozenset({"not", "no", "never", "none", "nor", "neither", "nothing", "nobody", "nowhere",
                       "cannot", "t", "without"})


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("’", "'"))


def _verbatim(q: list[str], p: list[str]) -> bool:
    return f" {' '.join(q)} " in f" {' '.join(p)} "


def _flips_meaning(sm: SequenceMatcher) -> bool:
    """Whether a word the two sides of a match differ in is a negation."""
    a, b = sm.a, sm.b
    return any(w in NEGATIONS for tag, i1, i2, j1, j2 in sm.get_opcodes() if tag != "equal"
               for w in (*a[i1:i2], *b[j1:j2]))


def near_match(q: list[str], p: list[str], threshold: float) -> bool:
    """Whether the window of the passage's words p that best matches the quote's words q
    (highest SequenceMatcher ratio) reaches the threshold with no negation among the
    words they differ in. The best window decides, not any window that passes: a quote
    that drops the passage's "not" matches the words beside it well, but the window
    holding the "not" better.

    A window of L words shares at most min(L, n) of the n quote words, so its ratio is
    at most 2·min(L, n)/(n + L) and only lengths in [n·t/(2−t), n·(2−t)/t] can reach t;
    within them, a window is aligned only when the words it shares with the quote (a
    multiset count, kept while the window slides) could reach t and the best so far, so
    a paraphrase far from the text costs one pass over the passage and no alignment."""
    n = len(q)
    if not n or not p:
        return False
    want = Counter(q)
    shared = sum(min(c, want[w]) for w, c in Counter(p).items())
    if 2 * shared / (n + shared) < threshold:  # the bound of the best window anywhere
        return False
    sm = SequenceMatcher(None, autojunk=False)
    sm.set_seq2(q)  # SequenceMatcher caches what it learns about its second sequence
    best, flips = threshold, None  # flips: None until a window reaches the threshold
    lo = max(1, math.floor(n * threshold / (2 - threshold)))  # rounded outwards
    hi = min(len(p), math.ceil(n * (2 - threshold) / threshold))
    for size in range(lo, hi + 1):
        have: Counter[str] = Counter()
        overlap = 0
        for end, w in enumerate(p):
            if have[w] < want[w]:
                overlap += 1
            have[w] += 1
            if end >= size:  # the window is p[end - size + 1 : end + 1]
                out = p[end - size]
                have[out] -= 1
                if have[out] < want[out]:
                    overlap -= 1
            if end + 1 < size or 2 * overlap / (n + size) < best:
                continue
            sm.set_seq1(p[end + 1 - size:end + 1])
            ratio = sm.ratio()
            if ratio > best or (ratio == best and flips is None):
                best, flips = ratio, _flips_meaning(sm)
            elif ratio == best:  # a tie: any best window that flips the meaning rejects
                flips = flips or _flips_meaning(sm)
    return flips is False


# Each weak model (and the report's count) grades the same quotes again: keep the answers.
@lru_cache(maxsize=1 << 16)
def grade(quote: str, passage: str, fuzzy_threshold: float) -> Grade:
    q, p = words(quote), words(passage)
    if not q:
        return "unverified"
    if _verbatim(q, p):
        return "verified"
    return "fuzzy" if near_match(q, p, fuzzy_threshold) else "unverified"


class GradeCounts(BaseModel):
    verified: int = 0
    fuzzy: int = 0
    unverified: int = 0

    @property
    def total(self) -> int:
        return self.verified + self.fuzzy + self.unverified

    @classmethod
    def of(cls, grades: list[Grade]) -> "GradeCounts":
        return cls(**Counter(grades))

    def __add__(self, other: "GradeCounts") -> "GradeCounts":
        return GradeCounts(**{g: getattr(self, g) + getattr(other, g) for g in GRADES})


@dataclass(frozen=True)
class QuoteCheck:
    """What every <quote> of a debate about one sample is checked against."""
    passage: str
    fuzzy_threshold: float

    def grades(self, text: str) -> list[Grade]:
        """The grade of each <quote> of a turn, in order."""
        return [grade(m.group(1), self.passage, self.fuzzy_threshold) for m in QUOTE.finditer(text)]

    def mark(self, text: str) -> tuple[str, list[Grade]]:
        """The turn as the judge reads it (each <quote> retagged with its grade), and the grades."""
        grades: list[Grade] = []

        def repl(m: re.Match) -> str:
            grades.append(grade(m.group(1), self.passage, self.fuzzy_threshold))
            tag = TAGS[grades[-1]]
            return f"<{tag}>{m.group(1)}</{tag}>"

        return QUOTE.sub(repl, text), grades


class TurnQuotes(BaseModel):
    side: Side
    grades: list[Grade]


class TranscriptQuotes(BaseModel):
    """The grade of every quote of one transcript, turn by turn, as its judge read them."""
    source: str          # the labellers' source it was read under: a protocol or a control's tag
    key: str             # the transcript's content key (debate/transcript.py debate_key)
    sample_id: str
    k: int
    fuzzy_threshold: float
    turns: list[TurnQuotes]

    @classmethod
    def of(cls, source: str, t: Transcript, check: QuoteCheck) -> "TranscriptQuotes":
        return cls(source=source, key=t.key, sample_id=t.sample_id, k=t.debate_index,
                   fuzzy_threshold=check.fuzzy_threshold,
                   turns=[TurnQuotes(side=x.side, grades=check.grades(x.text)) for x in t.turns])


class QuoteTally(BaseModel):
    """One source's quotes over its transcripts: per debater (side) and per transcript."""
    fuzzy_threshold: float
    transcripts: int
    by_side: dict[Side, GradeCounts]    # every quote of that side's turns
    with_any: GradeCounts               # transcripts holding at least one quote of each grade

    @classmethod
    def of(cls, records: list[TranscriptQuotes], fuzzy_threshold: float) -> "QuoteTally":
        by_side: dict[Side, GradeCounts] = {}
        with_any = GradeCounts()
        for r in records:
            for turn in r.turns:
                by_side[turn.side] = by_side.get(turn.side, GradeCounts()) + GradeCounts.of(turn.grades)
            present = {g for turn in r.turns for g in turn.grades}
            with_any = with_any + GradeCounts(**{g: 1 for g in present})
        return cls(fuzzy_threshold=fuzzy_threshold, transcripts=len(records),
                   by_side=dict(sorted(by_side.items())), with_any=with_any)

    @property
    def total(self) -> GradeCounts:
        return sum(self.by_side.values(), GradeCounts())


def read_quote_grades(path: Path) -> dict[str, list[list[str]]]:
    """{transcript key: its quotes' grades per turn} from a run's quote_grades.jsonl (what
    weak/stage.py write_quote_grades wrote; {} without weak.verify_quotes): what debates.html
    and the inspect export show, read without the training stack. A transcript read under
    several sources has one record per source, of the same grades (one threshold per run):
    the first is kept."""
    out: dict[str, list[list[str]]] = {}
    for r in read_jsonl(path):
        try:
            q = TranscriptQuotes.model_validate(r)
        except ValueError:
            continue  # not a record of this build: that transcript is shown ungraded
        out.setdefault(q.key, [list(turn.grades) for turn in q.turns])
    return out
