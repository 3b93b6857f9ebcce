"""Stored transcripts on the console (`run.py list` and `run.py show`)."""
from __future__ import annotations

from w2s_base.runfolder.layout import RunLayout
from debate.engine import load_transcripts
from debate.transcript import Transcript
from w2s_run.report.model import ReportError


def select(layout: RunLayout, sample: str | None = None, gold: int | None = None,
           side: str | None = None) -> list[Transcript]:
    """The run's finished transcripts, filtered: one sample, one gold label, or the
    debates where `side` argued the gold label."""
    ts = [t for t in load_transcripts(layout.transcripts).values() if t.ok]
    if sample:
        ts = [t for t in ts if t.sample_id == sample]
    return filtered(ts, gold=gold, side=side)


def filtered(ts: list[Transcript], gold: int | None = None, side: str | None = None) -> list[Transcript]:
    if gold is not None:
        ts = [t for t in ts if t.gold_label == gold]
    if side:
        ts = [t for t in ts if (t.a_label == t.gold_label) == (side == "A")]
    return ts


def one_line(t: Transcript) -> str:
    first = t.turns[0].text.replace("\n", " ")[:70] if t.turns else ""
    return f"{t.sample_id:>14} k={t.debate_index} gold={t.gold_label} A->{t.a_label} [{t.prompt_set}] {first}"


def full_text(t: Transcript) -> str:
    lines = [f"=== {t.sample_id} (debate {t.debate_index}, gold {t.gold_label}; "
             f"{t.model}, {t.backend}, prompts {t.prompt_set}@{t.prompt_hash}, seed {t.seed})",
             t.sample_text]
    for x in t.turns:
        lines.append(f"--- {x.side} [{t.positions[x.position_label]}] ({x.completion_tokens} tok, {x.finish_reason})")
        lines.append(x.text)
    return "\n".join(lines) + "\n"


def require_store(layout: RunLayout) -> None:
    """A ReportError (one line) when the run has no transcript store to read."""
    if not layout.transcripts.is_file():
        raise ReportError(f"no transcripts in {layout.root}: {layout.transcripts} does not exist (the run "
                          "has not reached its debate stage, or debates are off)")


def print_transcripts(layout: RunLayout, full: bool, sample: str | None = None, gold: int | None = None,
                      side: str | None = None, limit: int = 20) -> None:
    """A store or a sample that does not exist is an error (ReportError); filters that
    match nothing in an existing store are not."""
    require_store(layout)
    ts = select(layout, sample)
    if sample and not ts:
        raise ReportError(f"no transcript of sample {sample!r} in {layout.transcripts}")
    ts = filtered(ts, gold=gold, side=side)
    if not ts:
        print(f"no transcripts match in {layout.transcripts}")
    for t in ts[:limit]:
        print(full_text(t) if full else one_line(t))
