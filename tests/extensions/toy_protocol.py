"""A toy protocol, added in this one file (its prompt templates: dialogue_prompts/):
`dialogue`, a Proponent (side A) and an Opponent (side B) taking turns, each with
its own instruction role. Importing the module registers it; a config then names it
as a labeller's protocol and may set its turns with `debate.turns: {dialogue: n}`."""
from pathlib import Path

from w2s_base.protocols import register_protocol

PROMPTS = Path(__file__).with_name("dialogue_prompts")  # a prompt set defining its roles


@register_protocol("dialogue", ("Proponent", "Opponent"), default_turns=2, min_turns=2)
def dialogue(num_turns: int) -> list[tuple[str, str]]:
    return [("A", "propose") if t % 2 == 0 else ("B", "oppose") for t in range(num_turns)]
