"""The interface every debate backend implements, and how debates are scheduled on it.

A backend turns a batch of chat conversations into one completion each
(`generate`). A debate is a multi-turn conversation whose next request depends on
the previous reply; there are two ways to drive many of them:

- **in turns** (`run_in_turns`, any backend): every live debate's turn t in one
  `generate` call; no debate starts turn t+1 before the slowest reply of turn t is
  back (a barrier per turn).
- **continuous** (`ContinuousBackend.generate_continuous`, where the engine can
  take requests one by one: the server client, vLLM's in-process engine and its
  replica pool): a
  debate's next turn is sent as soon as its own reply arrives, so the engine's
  batch never drains at a turn's end.

Both take the same `next_request(i, reply)` callback, which owns everything a turn
means (prompts, seeds, the transcript); the schedulers only decide when requests go.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Protocol, runtime_checkable

from pydantic import BaseModel

from w2s_base.config import SamplingParams

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

    @classmethod
    def failed(cls, error: str) -> "Generation":
        """A request that produced nothing: recorded in its transcript, retried on rerun."""
        return cls(text="", prompt_tokens=0, completion_tokens=0, finish_reason="error", error=error)


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


class Request(NamedTuple):
    """One request of a multi-turn conversation."""
    messages: list[Message]
    seed: int | None  # None: unseeded sampling


# next_request(i, reply): conversation i's next request, or None once it is finished.
# reply is None when its first request is asked for, else the reply to its last one
# (an error reply included: the callback decides whether the conversation goes on).
NextRequest = Callable[[int, Optional[Generation]], Optional[Request]]


@runtime_checkable
class ContinuousBackend(Protocol):
    def generate_continuous(self, n: int, next_request: NextRequest, params: SamplingParams,
                            max_live: int) -> None:
        """Drive conversations 0..n-1 to their end: start them in index order, at most
        `max_live` in progress at once, and send conversation i's next request as soon
        as its last reply is back (no barrier between turns). `next_request` is called
        from one thread at a time, once per reply, in the order replies arrive."""


def run_in_turns(backend: Backend, n: int, next_request: NextRequest,
                 params: SamplingParams) -> None:
    """The `generate_continuous` contract on a backend's plain `generate`, with a
    barrier per turn: all n conversations start together, and every live one's next
    request goes in one `generate` call (a backend that batches sees the largest batch
    the protocol allows; its batches are the same on a resumed run)."""
    live = {i: r for i in range(n) if (r := next_request(i, None)) is not None}
    while live:
        ids = list(live)
        seeds = [live[i].seed for i in ids]
        replies = backend.generate([live[i].messages for i in ids], params,
                                   None if all(s is None for s in seeds) else seeds)
        live = {i: r for i, g in zip(ids, replies) if (r := next_request(i, g)) is not None}


class RequestQueue(Protocol):
    """Requests in flight on an engine that the caller steps: what continuous
    scheduling is built from (vLLM's engine loop, a pool of engine processes)."""

    def add(self, tag: int, request: Request, params: SamplingParams) -> None: ...

    def step(self) -> list[tuple[int, Generation]]:
        """Advance; the requests that finished since the last step, by tag."""

    def __len__(self) -> int: ...

    def abort(self) -> None:
        """Drop every request in flight (the caller was interrupted)."""


def drive_continuously(queue: RequestQueue, n: int, next_request: NextRequest,
                       params: SamplingParams, max_live: int) -> None:
    """`ContinuousBackend.generate_continuous` on a `RequestQueue`: conversations start
    in index order while fewer than `max_live` are in progress (each has one request in
    flight), and a conversation's next request is queued the step its reply arrives."""
    started = 0

    def start_more() -> None:
        nonlocal started
        while started < n and len(queue) < max_live:
            i, started = started, started + 1
            if (request := next_request(i, None)) is not None:
                queue.add(i, request, params)

    try:
        start_more()
        while len(queue):
            for i, reply in queue.step():
                if (request := next_request(i, reply)) is not None:
                    queue.add(i, request, params)
            start_more()
    finally:
        if len(queue):  # interrupted: leave the engine empty for the next caller
            queue.abort()
