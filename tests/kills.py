"""kill -9 for the kill tests (tests/test_random_kills.py, tests/test_vllm_kill.py): start
a command in its own process group, wait until the run's files say it has got somewhere,
SIGKILL the whole group there (its engine or worker processes too; nothing of it gets to
clean up). No `test_` prefix: pytest does not collect it; tests import it as `kills`
(tests/ is on sys.path, as for fake_backend)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable


def stored_lines(path: Path) -> list[bytes]:
    """A JSONL store's whole lines (a record torn by a kill is not one of them)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return data.split(b"\n")[:-1]


def run_until_killed(args: list[str], cwd: Path, env: dict[str, str], reached: Callable[[], bool],
                     log: Path, delay_s: float = 0.0, timeout_s: float = 900) -> int | None:
    """Run `args`; once `reached()` (polled every 5 ms), wait `delay_s` and SIGKILL its
    process group. Returns None when it was killed, its return code when it ended first."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + timeout_s
    try:
        while not reached():
            if proc.poll() is not None:
                return proc.returncode
            if time.monotonic() > deadline:
                raise TimeoutError(f"not reached in {timeout_s:g} s: {' '.join(args)}")
            time.sleep(0.005)
        time.sleep(delay_s)
        if proc.poll() is not None:
            return proc.returncode
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(60)
        return None
    finally:
        if proc.poll() is None:  # the test failed while the run was alive
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(60)
        else:  # its children (an engine process) die with it, whatever it did
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
