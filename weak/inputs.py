"""What the weak model reads: the sample, then the debate, fitted to its context.

`per_turn` (default) gives every turn an equal share of the tokens left after the
sample and keeps each turn's beginning, so a long first turn can never push the
second debater out of the window. `head` keeps everything up to the limit (the
tokenizer's plain truncation), which can cut whole turns off the end.
"""
from __future__ import annotations

from debate.transcript import Transcript


def turn_line(t: Transcript, i: int, text: str) -> str:
    turn = t.turns[i]
    return f"Debater {turn.side} (argues: {t.positions[turn.position_label]}): {text}"


def weak_input(sample_text: str, transcript: Transcript | None, tok, max_length: int,
               strategy: str = "per_turn") -> str:
    if transcript is None or not transcript.turns:
        return sample_text
    head = f"{sample_text}\n\nDebate:"
    if strategy == "head":
        return head + "\n" + "\n".join(turn_line(transcript, i, x.text)
                                       for i, x in enumerate(transcript.turns))
    n_head = len(tok(head, add_special_tokens=True)["input_ids"])
    overhead = sum(len(tok(turn_line(transcript, i, ""), add_special_tokens=False)["input_ids"]) + 1
                   for i in range(len(transcript.turns)))
    per_turn = max(4, (max_length - n_head - overhead) // len(transcript.turns))
    lines = []
    for i, x in enumerate(transcript.turns):
        ids = tok(x.text, add_special_tokens=False)["input_ids"][:per_turn]
        lines.append(turn_line(transcript, i, tok.decode(ids).strip()))
    return head + "\n" + "\n".join(lines)
