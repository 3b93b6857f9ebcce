"""The one interface every debate backend implements.

A backend turns a batch of chat conversations into one completion each. The
debate engine calls it once per turn with every pending debate of that turn,
so a backend sees the largest batch the protocol allows.
"""
from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

Message = dict[str, str]  # {"role": ..., "content": ...}


class SamplingParams(BaseModel):
    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.95
    stop: list[str] = []


class Generation(BaseModel):
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (model ended or a stop string), "length", "error"
    error: str | None = None


class Backend(Protocol):
    name: str
    model: str

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams, seed: int
    ) -> list[Generation]: ...


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Trim at the first stop string; the backends that cannot stop on strings
    themselves (transformers) share this so every backend extracts turns alike."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


_SEED_MOD = 2**31 - 1


def request_seed(seed: int, index: int) -> int:
    """The sampling seed of conversation `index` of a call seeded `seed`.

    Mixed (not simply `seed + index`) so that neighbouring call seeds, e.g. two
    turns of one chunk, do not hand out the same seeds shifted by one. Each request
    samples with its own seed, so its text does not depend on what else is batched.
    """
    return (seed * 1_000_003 + index * 7_919 + 12_345) % _SEED_MOD
