"""The protocols: who speaks, in which order, with which instruction, how many turns,
and how the side each speaker defends is chosen. The registry below is the only list
of protocols: the config validates labellers' protocols and `debate.turns` against
it, the debate engine runs a spec's schedule (and asks the prompt set for its roles),
the pipeline and preflight place speakers by its `placement`, the weak model's input
names speakers by `reader_names`, and the viewer and inspect export show `speakers`.

To add a protocol, write one module that calls `register_protocol` (see
tests/extensions/toy_protocol.py) and import it before the config is loaded; its
prompt set must define the instruction roles its schedule uses.

The built-in ones:
- `none`: no transcript; the plain weak model.
- `debate` (the paper's): A argues its position; B argues the other and lists the
  flaws in A's argument; then the sides alternate, each answering the other.
  Which label A defends is drawn at random per (sample, debate).
- `consultancy`: one consultant (side A) argues a randomly drawn position.
- `market_making`: consultancy where the consultant argues for the label the plain
  weak model (weak.reference) did NOT pick.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Literal

from w2s_base.registry import Registry

Side = Literal["A", "B"]
Schedule = list[tuple[Side, str]]  # (side, instruction role) of every turn
# random: drawn per (sample, debate) by `draw_a_label`; against_reference: the label
# the reference weak model did not predict (the pipeline computes it before generation).
Placement = Literal["random", "against_reference"]
MAX_TURNS = 12


@dataclass(frozen=True)
class ProtocolSpec:
    name: str
    speakers: tuple[str, ...]   # display names, one per side in use (A first); () for none
    make_schedule: Callable[[int], Schedule] | None  # turns -> schedule; None: no transcript
    default_turns: int = 0      # its number of turns when the config sets none (debate.turns)
    min_turns: int = 1
    # A DebateConfig field that sets its number of turns under an older name (the
    # built-ins' debate.num_turns, debate.consult_turns; the field's default equals
    # default_turns); None: only debate.turns.<name>.
    turns_key: str | None = None
    placement: Placement = "random"
    # How the weak model's input names each side; None: `speakers`.
    reader_names: tuple[str, ...] | None = None

    @property
    def reads_transcript(self) -> bool:
        return self.make_schedule is not None

    @property
    def needs_reference(self) -> bool:
        """Whether the plain weak model (weak.reference) must be trained before its
        transcripts are generated, to place the speakers."""
        return self.placement == "against_reference"

    def schedule(self, num_turns: int) -> Schedule:
        """(side, instruction role) of every turn."""
        return self.make_schedule(num_turns) if self.make_schedule else []

    @property
    def roles(self) -> set[str]:
        """Every instruction role its schedule may use (a prompt set may define these)."""
        return {role for n in range(self.min_turns, MAX_TURNS + 1) for _, role in self.schedule(n)}

    def reader_name(self, side: Side) -> str:
        """The speaker of `side` as the weak model reads it."""
        names = self.reader_names or self.speakers
        return names["AB".index(side)]

    def num_turns(self, debate_cfg) -> int:
        """Its turn count under a DebateConfig: debate.turns.<name>, else its older
        key, else its default (0 for a protocol without a transcript)."""
        if not self.reads_transcript:
            return 0
        if self.name in debate_cfg.turns:
            return debate_cfg.turns[self.name]
        return getattr(debate_cfg, self.turns_key) if self.turns_key else self.default_turns


PROTOCOLS: Registry[ProtocolSpec] = Registry("protocol")


def add_protocol(spec: ProtocolSpec) -> ProtocolSpec:
    """Register `spec` (a name may be registered once); checks that its schedule speaks
    only as the sides it names and that its default turn count is allowed."""
    if spec.reads_transcript:
        if not spec.min_turns <= spec.default_turns <= MAX_TURNS:
            raise ValueError(f"protocol {spec.name!r}: default_turns must be in [{spec.min_turns}, {MAX_TURNS}]")
        sides = {side for n in range(spec.min_turns, MAX_TURNS + 1) for side, _ in spec.schedule(n)}
        if not sides <= set("AB"[:len(spec.speakers)]):
            raise ValueError(f"protocol {spec.name!r}: its schedule speaks as {sorted(sides)} "
                             f"but it names {len(spec.speakers)} speaker(s)")
    return PROTOCOLS.add(spec.name, spec)


def register_protocol(name: str, speakers: tuple[str, ...], **settings) -> Callable:
    """Decorator: register the decorated schedule function (num_turns -> [(side, role)])
    as protocol `name` with these speakers; `settings` are ProtocolSpec's other fields
    (default_turns, min_turns, turns_key, placement, reader_names). Returns the
    function unchanged."""
    def register(make_schedule: Callable[[int], Schedule]) -> Callable[[int], Schedule]:
        add_protocol(ProtocolSpec(name, tuple(speakers), make_schedule, **settings))
        return make_schedule
    return register


def protocol(name: str) -> ProtocolSpec:
    """The spec registered as `name`; a ValueError naming the registered ones otherwise."""
    return PROTOCOLS[name]


def draw_a_label(seed: int, sample_id: str, k: int) -> int:
    """The label side A defends in debate k of a sample under random placement: drawn
    from an RNG seeded by the unit alone, so it is reproducible and independent of
    which other samples are in the run. The engine and the positive control both use it."""
    return random.Random(f"{seed}|{sample_id}|{k}").randint(0, 1)


# ---------------------------------------------------------------- the built-ins
add_protocol(ProtocolSpec("none", (), None))


@register_protocol("debate", ("Debater A", "Debater B"), default_turns=3, min_turns=2,
                   turns_key="num_turns")
def debate_schedule(num_turns: int) -> Schedule:
    turns: Schedule = [("A", "opening"), ("B", "counter")]
    turns += [("A" if t % 2 == 0 else "B", "rebuttal") for t in range(2, num_turns)]
    return turns[:num_turns]


def consult_schedule(num_turns: int) -> Schedule:
    return [("A", "consult")] * num_turns


# Without a judge asking questions, further consultant turns only continue the same
# argument, so 1 by default. The weak model has always read the consultant as
# "Debater A": kept, since changing the text it reads changes every consultancy result.
_CONSULTANT = dict(default_turns=1, turns_key="consult_turns", reader_names=("Debater A",))
register_protocol("consultancy", ("Consultant",), **_CONSULTANT)(consult_schedule)
register_protocol("market_making", ("Consultant",), placement="against_reference", **_CONSULTANT)(consult_schedule)
