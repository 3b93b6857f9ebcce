"""Shared test factories: transcripts and report rows, built one way for every test."""
from __future__ import annotations

from w2s_base.config import SamplingParams
from debate.transcript import Transcript, Turn


def make_transcript(sample_id: str = "s", texts: list[str] = ("a", "b", "c"), *, protocol: str = "debate",
                    sample_text: str = "a plain review", positions: tuple[str, str] = ("negative", "positive"),
                    gold: int = 1, a_label: int = 0, k: int = 0, key: str | None = None,
                    task: str = "sentiment", error: str | None = None, finish_reason: str = "stop",
                    **extra) -> Transcript:
    """A finished transcript with one turn per text, sides and roles as the protocol
    schedules them (debate: A, B, A, ...; consultancy and market-making: A only)."""
    consult = protocol != "debate"
    turns = [Turn(index=i, side="A" if consult else "AB"[i % 2],
                  role="consult" if consult else ["opening", "counter", "rebuttal"][min(i, 2)],
                  position_label=a_label if consult or i % 2 == 0 else 1 - a_label, text=x,
                  prompt_tokens=50, completion_tokens=len(x.split()), finish_reason=finish_reason)
             for i, x in enumerate(texts)]
    fields = dict(key=key or f"key-{sample_id}-{k}", sample_id=sample_id, task=task, sample_text=sample_text,
                  positions=positions, gold_label=gold, debate_index=k, protocol=protocol,
                  num_turns=len(texts), a_label=a_label, turns=turns, model="smollm2-135m|transformers",
                  backend="transformers", prompt_set="terse", prompt_hash="abc123",
                  sampling=SamplingParams(), seed=7, error=error)
    fields.update(extra)
    return Transcript(**fields)


def report_rows(report: dict) -> dict[str, dict]:
    """report.json's rows by their identity: a labeller's name, w2s[labeller|loss], ceiling."""
    def key(r: dict) -> str:
        if r["kind"] == "w2s":
            return f"w2s[{r['labeller']}|{r['loss']}]"
        return "ceiling" if r["kind"] == "ceiling" else r["name"]
    return {key(r): r for r in report["rows"]}
