"""Who speaks when, and with which instruction: the protocol as data."""
from __future__ import annotations

from .transcript import Side


def schedule(protocol: str, num_turns: int) -> list[tuple[Side, str]]:
    """The paper's debate: A argues its position; B argues the other and lists the
    flaws in A's argument; then the sides alternate, each answering the other.
    Consultancy: one consultant (side A) argues its position for every turn;
    market-making is consultancy where the position is the one the no-debate weak
    model did not pick (set by the pipeline, not drawn at random)."""
    if protocol in ("consultancy", "market_making"):
        return [("A", "consult")] * num_turns
    turns: list[tuple[Side, str]] = [("A", "opening"), ("B", "counter")]
    for t in range(2, num_turns):
        turns.append(("A" if t % 2 == 0 else "B", "rebuttal"))
    return turns[:num_turns]
