"""The weak supervision handed to the strong student, one record per transfer sample."""
from __future__ import annotations

from pydantic import BaseModel

from w2s_base.config import ControlTag


class WeakLabel(BaseModel):
    sample_id: str
    soft_label: float             # aggregated P(label = 1)
    members: dict[str, float]     # each member's P(label = 1)
    debate_keys: list[str] = []   # provenance: the transcripts the members read
    gold_label: int               # kept for analysis only; never used in training


class LabellerResult(BaseModel):
    """A weak labeller's outputs (its spec is w2s_base.config.LabellerConfig): soft labels on transfer, predictions on test."""
    name: str
    protocol: str                     # a registered protocol (w2s_base/protocols.py)
    control: ControlTag | None = None  # a control (its tag on disk: "positive:0.9", "shuffled:debate"): not a method
    # debate.mislead's rate when it reads real debates of a run with it (w2s_base/config.py
    # MisleadConfig): a control too, never a method's result
    mislead: float | None = None
    aggregate: str
    members: list[str]
    transfer_p1: dict[str, float]
    test_p1: dict[str, float]
    member_test_p1: dict[str, dict[str, float]]
    # each member's soft labels on transfer, and the transcript index k it reads (labellers
    # that read transcripts): what the audit (w2s_run/report/audit.py) compares members on.
    # Empty in labeller files written before they existed.
    member_transfer_p1: dict[str, dict[str, float]] = {}
    member_debate: dict[str, int] = {}
