"""The one interface every debate backend implements.

A backend turns a batch of chat conversations into one completion each. The
debate engine calls it once per turn with every pending debate of that turn,
so a backend sees the largest batch the protocol allows.
"""
from __future__ import annotations

from typing import Optional, Protocol

from pydantic import BaseModel

from core.config import SamplingParams

Message = dict[str, str]  # {"role": ..., "content": ...}
Seeds = Optional[list[int]]  # one sampling seed per conversation; None: unseeded


class Generation(BaseModel):
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (model ended or a stop string), "length", "error"
    error: str | None = None
    # vllm_server: the endpoint that answered (scheme://host:port, no credentials);
    # None for in-process backends.
    endpoint: str | None = None


class Backend(Protocol):
    name: str
    model: str

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams, seeds: Seeds
    ) -> list[Generation]:
        """One completion per conversation. `seeds[i]` is conversation i's sampling
        seed (`seeds` None: unseeded sampling); backends that sample per request (vLLM) honour it for
        that request alone, so its text does not depend on what else is batched."""


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Trim at the first stop string; the backends that cannot stop on strings
    themselves (transformers) share this so every backend extracts turns alike."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
