"""OS faults of the run folder in the middle of a run (w2s_base/runfolder/faults.py):
permission denied and disk full end the run with one `error:` line naming the file
and the cause, rc 1, no traceback and no stray asyncio report from the continuous
workers; what was stored before the fault stays stored, and once the cause is fixed
the rerun generates only what is missing and ends where an uninterrupted run ends.

The faults are real where this machine allows it: an immutable store (`chattr +i`,
as root, where chmod would not stop root's writes) and a disk filled for real on a
small tmpfs (where the test may mount one). Where it does not (no root), the last
resort is an OSError injected into the store's writes (EACCES, ENOSPC); a writer on
/dev/full meets a real ENOSPC either way. The runs are
`run.py --until debate` in a subprocess against the scripted OpenAI-compatible server
of test_server_client.py, with continuous scheduling (the default)."""
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_server_client import FakeOpenAI, needs_httpx
from w2s_base.runfolder import faults
from w2s_base.runfolder.faults import RunFolderError
from w2s_base.runfolder.jsonl import JsonlWriter, read_jsonl, save_json, write_bytes_atomic

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
N_DEBATES = 24  # n_weak_train + n_transfer + n_test
TURNS = 3
FAULT_AT = 30  # the fault lands when the server gets this chat request: with at most 4
# debates live, at least (30 - 4 * 2) / 3 > 6 debates are stored by then, and at most 10


def _argv(out: Path, url: str) -> list[str]:
    args = [str(ROOT / "run.py"), "--config", "configs/demo.yaml", "--name", "r", "--until", "debate"]
    for o in (f"output_dir={out}", "debate.backend=vllm_server", f"debate.server_url={url}",
              "data.n_weak_train=8", "data.n_transfer=8", "data.n_test=8", "debate.chunk_size=4"):
        args += ["--set", o]
    return args


def _run(out: Path, url: str, prelude: str = "") -> subprocess.CompletedProcess:
    """run.py in a subprocess; `prelude` (Python) runs first in it (the injected fault)."""
    code = f"import sys, run\n{prelude}\nsys.exit(run.main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *_argv(out, url)[1:]], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)


def _store(out: Path) -> Path:
    return out / "r" / "debate" / "transcripts.jsonl"


def _debates(out: Path) -> dict[str, list[str]]:
    """{key: turn texts} of the finished debates stored."""
    return {r["key"]: [t["text"] for t in r["turns"]] for r in read_jsonl(_store(out)) if r["error"] is None}


def _assert_one_line_error(p: subprocess.CompletedProcess, path: Path, cause: str) -> None:
    both = p.stdout + p.stderr
    assert p.returncode == 1, both[-3000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, both[-3000:]
    assert errors[0].startswith(f"error: cannot write {path}: {cause}"), errors
    assert "rerun to resume" in errors[0]
    for bad in ("Traceback", "never retrieved", "event loop", "Exception ignored", "destroyed but it is pending"):
        assert bad not in both, both[-3000:]


@pytest.fixture(scope="module")
def server():
    fake = FakeOpenAI()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def uninterrupted(server, tmp_path_factory) -> dict[str, list[str]]:
    out = tmp_path_factory.mktemp("clean")
    server.script = []
    p = _run(out, server.url)
    assert p.returncode == 0, p.stderr[-3000:]
    done = _debates(out)
    assert len(done) == N_DEBATES
    return done


def _fault_then_resume(server, out: Path, fault, fix, uninterrupted, prelude: str = "") -> subprocess.CompletedProcess:
    """Run with `fault()` applied as the server gets chat request FAULT_AT; check
    nothing stored was lost; `fix()`; rerun; check it resumed to the uninterrupted
    result. Returns the faulted run."""
    seen = {"n": 0}

    def step(body):
        seen["n"] += 1
        if seen["n"] == FAULT_AT:
            fault()
        return 200, None, 0

    server.script = [step] * (N_DEBATES * TURNS)
    try:
        failed = _run(out, server.url, prelude)
    finally:
        server.script = []
        fix()
    stored = _debates(out)
    assert 0 < len(stored) < N_DEBATES, failed.stderr[-3000:]
    assert all(uninterrupted[k] == v for k, v in stored.items())
    before = server.chat_requests
    rerun = _run(out, server.url)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert _debates(out) == uninterrupted
    # Only what was missing was generated again: the stored debates were kept.
    assert server.chat_requests - before == TURNS * (N_DEBATES - len(stored))
    return failed


# ------------------------------------------------------------------ permission denied
def _chattr_works(probe: Path) -> bool:
    """Whether an immutable flag stops writes here (root on a filesystem that has it)."""
    if shutil.which("chattr") is None:
        return False
    probe.write_text("x")
    if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode:
        return False
    try:
        with open(probe, "a") as f:
            f.write("y")
        return False
    except OSError:
        return True
    finally:
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)


# The last resort, where no real fault can be made (without root, a mode change does
# not stop a descriptor that is already open, and no filesystem can be mounted to
# fill): the store's writes fail with this errno once a marker file appears.
INJECT = """
import errno, os
_write = os.write
def _failing(fd, data):
    if os.path.exists(os.environ["W2S_TEST_FAULT_MARKER"]) and \\
            os.readlink(f"/proc/self/fd/{fd}").endswith("transcripts.jsonl"):
        n = errno.{name}
        raise OSError(n, os.strerror(n))
    return _write(fd, data)
os.write = _failing
"""


def _injected(tmp_path: Path, name: str):
    """(fault, fix, prelude) for an injected OSError(errno.<name>) on the store."""
    marker = tmp_path / "fault"
    ENV["W2S_TEST_FAULT_MARKER"] = str(marker)  # read by the subprocess's prelude
    return marker.touch, lambda: marker.unlink(missing_ok=True), INJECT.replace("{name}", name)


@needs_httpx
def test_store_that_becomes_unwritable_mid_run(server, uninterrupted, tmp_path):
    out = tmp_path / "out"
    store = _store(out)
    if _chattr_works(tmp_path / "probe"):
        fault = lambda: subprocess.run(["chattr", "+i", str(store)], check=True)  # noqa: E731
        fix = lambda: subprocess.run(["chattr", "-i", str(store)], capture_output=True)  # noqa: E731
        prelude, cause = "", "Operation not permitted (errno 1)"
    else:
        (fault, fix, prelude), cause = _injected(tmp_path, "EACCES"), "Permission denied (errno 13)"
    failed = _fault_then_resume(server, out, fault, fix, uninterrupted, prelude)
    _assert_one_line_error(failed, store, cause)
    assert "make it writable" in failed.stderr


# ------------------------------------------------------------------ disk full
def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    if shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def _fill(folder: Path) -> None:
    """Write zeros until the filesystem is full (ENOSPC for real)."""
    with open(folder / "filler", "wb", buffering=0) as f:
        while True:
            try:
                f.write(b"\0" * 65536)
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
        try:  # the last bytes too: tmpfs counts pages
            while True:
                f.write(b"\0")
        except OSError:
            pass


@needs_httpx
def test_disk_full_mid_run(server, uninterrupted, tmp_path):
    mnt = tmp_path / "mnt"
    mounted = _mount_tmpfs(mnt, "16m")
    try:
        if mounted:  # a real full disk
            fault, fix, prelude = lambda: _fill(mnt), lambda: (mnt / "filler").unlink(missing_ok=True), ""
        else:  # no privileges to mount: the writer on /dev/full (below) is the real ENOSPC
            fault, fix, prelude = _injected(tmp_path, "ENOSPC")
        out = mnt / "out"
        failed = _fault_then_resume(server, out, fault, fix, uninterrupted, prelude)
        _assert_one_line_error(failed, _store(out), "No space left on device (errno 28)")
        assert "free space" in failed.stderr
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# ------------------------------------------------------------------ the writers themselves
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_writer_on_a_full_device_names_the_file(tmp_path):
    path = tmp_path / "s.jsonl"
    path.symlink_to("/dev/full")
    w = JsonlWriter(path)
    with pytest.raises(RunFolderError) as e:
        w.write({"a": 1})
    assert e.value.errno == errno.ENOSPC and e.value.path == path
    assert str(e.value) == (f"cannot write {path}: No space left on device (errno 28); "
                            "free space and rerun to resume")
    with pytest.raises(RunFolderError) as again:  # a concurrent caller meets the same fault
        w.write({"a": 2})
    assert again.value is e.value
    w.close()  # quiet after a fault


def test_writer_notices_a_removed_or_replaced_file(tmp_path):
    path = tmp_path / "d" / "s.jsonl"
    w = JsonlWriter(path)
    w.write({"a": 1})
    shutil.rmtree(tmp_path / "d")  # the run folder deleted under a running writer
    with pytest.raises(RunFolderError, match=r"No such file or directory \(errno 2\); the run folder was removed"):
        w.write({"a": 2})
    w = JsonlWriter(path)
    w.write({"a": 1})
    path.unlink()
    path.write_text("")  # another file in its place: appends would go to the old one
    with pytest.raises(RunFolderError, match="it was replaced while this run was writing it"):
        w.write({"a": 2})


def test_atomic_write_into_a_missing_folder_leaves_nothing(tmp_path):
    (tmp_path / "f").write_text("a file where the run folder should be")
    with pytest.raises(RunFolderError) as e:
        save_json(tmp_path / "f" / "report.json", {})
    assert e.value.path == tmp_path / "f" / "report.json" and "File exists (errno 17)" in str(e.value)
    with pytest.raises(RunFolderError):
        write_bytes_atomic(tmp_path / "f" / "x.bin", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_under_converts_only_faults_inside_the_run_folder(tmp_path):
    root = tmp_path / "runs" / "x"
    with pytest.raises(RunFolderError) as e:
        with faults.under(root):
            raise OSError(errno.ENOSPC, "No space left on device", str(root / "weak" / "m.safetensors"))
    assert str(e.value).startswith(f"cannot access {root / 'weak' / 'm.safetensors'}: No space left")
    with pytest.raises(FileNotFoundError):  # not the run folder's: passes unchanged
        with faults.under(root):
            open(tmp_path / "elsewhere.txt")


# ------------------------------------------------------------------ both schedulers, in process
@pytest.mark.parametrize("scheduling", ["continuous", "turns"])
def test_a_store_replaced_mid_stage_stops_either_scheduler_and_resumes(tmp_path, scheduling):
    """The engine's own schedulers (drive_continuously, run_in_turns) on the fake
    backends: the store is moved away and a folder put in its place after some
    debates; the stage stops with the RunFolderError naming the store; once the
    store is back the rerun completes to what an uninterrupted run stores."""
    from data.demo_task import make_demo_samples
    from debate.engine import DebateRunner, load_transcripts
    from fake_backend import ContinuousSeededBackend, SeededBackend
    from w2s_base.config import DebateConfig

    samples = make_demo_samples(12)
    cfg = DebateConfig(chunk_size=4, scheduling=scheduling, seed=3)
    make = ContinuousSeededBackend if scheduling == "continuous" else SeededBackend

    def texts(path):
        return {k: [x.text for x in t.turns] for k, t in load_transcripts(path).items() if t.ok}

    DebateRunner(cfg, tmp_path / "clean.jsonl", make).run(samples)
    clean = texts(tmp_path / "clean.jsonl")
    assert len(clean) == 12

    store, away = tmp_path / "t.jsonl", tmp_path / "away.jsonl"

    class Faulty(make):
        def generate(self, conversations, params, seeds):
            if self.calls == (14 if scheduling == "continuous" else 6):  # some debates are stored by then
                store.rename(away)
                store.mkdir()
            return super().generate(conversations, params, seeds)

    with pytest.raises(RunFolderError) as e:
        DebateRunner(cfg, store, Faulty).run(samples)
    assert e.value.path == store and "replaced while this run was writing it" in str(e.value)
    store.rmdir()
    away.rename(store)  # fixed
    kept = texts(store)
    assert 0 < len(kept) < 12 and all(clean[k] == v for k, v in kept.items())
    backend = make()
    DebateRunner(cfg, store, lambda: backend).run(samples)
    assert texts(store) == clean
    if scheduling == "continuous":
        assert backend.calls == 3 * (12 - len(kept))  # only the missing debates' turns
