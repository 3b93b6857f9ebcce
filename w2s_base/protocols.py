"""The protocols: who speaks, in which order, with which instruction, and how the
side each speaker defends is chosen. The one home of protocol knowledge: the
config validates names against it, the debate engine runs its schedule, the
pipeline places consultants by it, the weak stage and the viewer read it.

- `none`: no transcript; the plain weak model.
- `debate` (the paper's): A argues its position; B argues the other and lists the
  flaws in A's argument; then the sides alternate, each answering the other.
  Which label A defends is drawn at random per (sample, debate).
- `consultancy`: one consultant (side A) argues a randomly drawn position.
- `market_making`: consultancy where the consultant argues for the label the plain
  weak model (weak.reference) did NOT pick.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Side = Literal["A", "B"]
Protocol = Literal["none", "debate", "consultancy", "market_making"]
# random: drawn per (sample, debate); against_reference: the label the reference
# weak model did not predict (the pipeline computes it before generation).
Placement = Literal["random", "against_reference"]


@dataclass(frozen=True)
class ProtocolSpec:
    name: Protocol
    speakers: tuple[str, ...]   # display names, one per side in use (A first)
    turns_setting: str          # the DebateConfig field holding its number of turns ("" for none)
    placement: Placement = "random"

    @property
    def reads_transcript(self) -> bool:
        return self.name != "none"

    def schedule(self, num_turns: int) -> list[tuple[Side, str]]:
        """(side, instruction role) of every turn."""
        if not self.reads_transcript:
            return []
        if len(self.speakers) == 1:
            return [("A", "consult")] * num_turns
        turns: list[tuple[Side, str]] = [("A", "opening"), ("B", "counter")]
        for t in range(2, num_turns):
            turns.append(("A" if t % 2 == 0 else "B", "rebuttal"))
        return turns[:num_turns]

    def num_turns(self, debate_cfg) -> int:
        """Its turn count under a DebateConfig (0 for `none`)."""
        return getattr(debate_cfg, self.turns_setting) if self.turns_setting else 0


PROTOCOLS: dict[str, ProtocolSpec] = {
    "none": ProtocolSpec("none", (), ""),
    "debate": ProtocolSpec("debate", ("Debater A", "Debater B"), "num_turns"),
    "consultancy": ProtocolSpec("consultancy", ("Consultant",), "consult_turns"),
    "market_making": ProtocolSpec("market_making", ("Consultant",), "consult_turns",
                                  placement="against_reference"),
}


def protocol(name: str) -> ProtocolSpec:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}: {', '.join(PROTOCOLS)}") from None
