"""Typed debate records: what was said, by whom, and how to reproduce it."""
from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict

from w2s_base.config import SamplingParams
from w2s_base.protocols import Side


class Turn(BaseModel):
    index: int
    side: Side
    role: str             # which instruction template produced it (opening, counter, rebuttal)
    position_label: int   # the label this side argues for
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    endpoint: str | None = None  # which server answered (several endpoints); None in process
    # Wall time from this turn's request to its reply. With continuous scheduling it is
    # this request's own latency; in turns (a barrier per turn) every debate of the
    # chunk waits for the whole batch, so it is that batch's time. None: stored before.
    seconds: float | None = None


class Transcript(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    sample_id: str
    task: str
    sample_text: str
    positions: tuple[str, str]
    gold_label: int
    debate_index: int         # k of K independent debates on this sample
    protocol: str
    num_turns: int
    a_label: int              # the label debater A defends, drawn at random per sample
    turns: list[Turn]
    model: str
    backend: str
    prompt_set: str
    prompt_hash: str
    sampling: SamplingParams
    seed: int
    # Wall time from its first request to its last reply. With continuous scheduling
    # that is this debate's own time; in turns every debate of a chunk starts with the
    # chunk and ends with its last batch, so all of them read the chunk's time.
    seconds: float = 0.0
    started_at: float | None = None  # Unix time of its first request (None: stored before)
    # "continuous" (each turn sent when its debate's last reply is back) or "turns"
    # (a barrier per turn); with per-request seeds the text does not depend on it.
    scheduling: str | None = None
    error: str | None = None  # set when a backend call failed; such debates are retried on rerun
    seeded: bool = True       # false: sampled without per-request seeds (debate.seeded), not replayable
    # Set only on scripted/permuted control transcripts (debate/controls.py), e.g.
    # "positive:0.9", "deceptive:0.3" or "shuffled"; None for every real debate.
    control: str | None = None
    # Whether a side argues the wrong label on purpose: True or False on a deceptive
    # control's transcripts (debate/controls.py deceptive_control: the scripted winner) and
    # on the real debates of a run with debate.mislead (the wrong side's debater was given
    # the prompt set's mislead instruction: engine.py); None where nobody was asked to
    # deceive (every other transcript).
    deceptive: bool | None = None
    # The hash of the mislead instruction a real debate's wrong side was given (its prompt
    # set's mislead.jinja); None on every other transcript.
    mislead_hash: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def debate_key(
    *, sample_id: str, sample_text: str, positions: tuple[str, str], prompt_hash: str, model: str,
    sampling: SamplingParams, seed: int, debate_index: int, protocol: str, num_turns: int,
    fixed_a_label: int | None = None, seeded: bool = True,
    mislead: tuple[bool, str | None] | None = None,
) -> str:
    """Content address of one debate: any input that changes its text changes the key,
    so a rerun recomputes exactly what changed (e.g. only the debates of a new prompt set).
    `mislead` (debate.mislead on): (whether this debate's wrong side is told to mislead,
    the hash of the instruction it is given), so a new mislead.jinja regenerates only the
    debates it reaches; without it keys stay as they were."""
    payload = json.dumps(
        [sample_id, sample_text, list(positions), prompt_hash, model, sampling.model_dump(),
         seed, debate_index, protocol, num_turns]
        # positions set from outside (market-making) are part of the input
        + ([fixed_a_label] if fixed_a_label is not None else [])
        + ([] if seeded else [{"seeded": False}]),  # seeded keys stay as they were
        sort_keys=True,
    )
    key = hashlib.sha256(payload.encode()).hexdigest()[:24]
    if mislead is None:
        return key
    return hashlib.sha256(json.dumps([key, "mislead", *mislead]).encode()).hexdigest()[:24]
