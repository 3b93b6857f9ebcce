"""What the weak model reads: the sample, then the debate, fitted to its context.
Each turn is named by its protocol's speaker for that side (ProtocolSpec.reader_name).

`per_turn` (default) gives every turn an equal share of the tokens left after the
sample and keeps each turn's beginning, so a long first turn can never push the
second debater out of the window. `head` keeps everything up to the limit (the
tokenizer's plain truncation), which can cut whole turns off the end.

With `quotes` (information-asymmetric debate, weak.verify_quotes), every <quote> in
a turn is graded against the sample's passage and shown as <v_quote> (verbatim),
<f_quote> (a near match) or <u_quote> (neither): debate/quotes.py.
"""
from __future__ import annotations

from w2s_base.config import WeakConfig
from w2s_base.protocols import protocol as protocol_spec
from data.schema import DataError, Sample
from debate.quotes import QuoteCheck
from debate.transcript import Transcript

def weak_view(sample: Sample, sees: str) -> str:
    """What the weak model reads of a sample: all of it, or (information-asymmetric
    debate) the question and candidate without the passage the debaters read."""
    if sees == "all":
        return sample.text
    view = sample.meta.get("without_passage")
    if view is None:
        raise DataError(f"weak.sees={sees}: task {sample.task!r} has no passage to hide "
                        "(boolq and cosmosqa have one)")
    return view


def quote_check(sample: Sample, w: WeakConfig) -> QuoteCheck | None:
    """What a sample's quotes are graded against under weak.verify_quotes; None: they are
    shown as written (quotes not verified, or a task without a passage)."""
    passage = sample.meta.get("passage")
    return QuoteCheck(passage, w.fuzzy_quote_threshold) if w.verify_quotes and passage is not None else None


def turn_line(t: Transcript, i: int, text: str) -> str:
    turn = t.turns[i]
    speaker = protocol_spec(t.protocol).reader_name(turn.side)
    return f"{speaker} (argues: {t.positions[turn.position_label]}): {text}"


def weak_input(sample_text: str, transcript: Transcript | None, tok, max_length: int,
               strategy: str = "per_turn", quotes: QuoteCheck | None = None) -> str:
    if transcript is None or not transcript.turns:
        return sample_text
    texts = [x.text if quotes is None else quotes.mark(x.text)[0] for x in transcript.turns]
    head = f"{sample_text}\n\nDebate:"
    if strategy == "head":
        return head + "\n" + "\n".join(turn_line(transcript, i, x) for i, x in enumerate(texts))
    n_head = len(tok(head, add_special_tokens=True)["input_ids"])
    overhead = sum(len(tok(turn_line(transcript, i, ""), add_special_tokens=False)["input_ids"]) + 1
                   for i in range(len(transcript.turns)))
    per_turn = max(4, (max_length - n_head - overhead) // len(transcript.turns))
    lines = []
    for i, x in enumerate(texts):
        ids = tok(x, add_special_tokens=False)["input_ids"][:per_turn]
        lines.append(turn_line(transcript, i, tok.decode(ids).strip()))
    return head + "\n" + "\n".join(lines)
