"""Saving weights and caches when the disk fills (w2s_base/runfolder/artifacts.py):
every whole-file save goes through save_artifact, which writes a temporary copy, syncs
and renames it, and turns a failure while writing into one RunFolderError naming the
artifact and its cause, even where the library reports none (`torch.save` on a full
disk: `RuntimeError: basic_ios::clear: iostream error`).

The disk is filled for real on a small tmpfs where the test may mount one (as in
test_run_folder_faults.py); without the privilege the libraries' errno-less failure
is raised in their place, and the message must still name the file.

The end-to-end test fills the disk as the first weak member's LoRA adapter, then the
first student's head, is saved (tiny run, fake debater, real models): each run ends
in one `error:` line naming that file, rc 1, no traceback, no result recorded for the
unsaved model, and the rerun ends with the report of an uninterrupted run."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_random_kills import ENV as KILL_ENV, TINY, _assert_close, _outputs
from test_run_folder_faults import _fill, _mount_tmpfs
from w2s_base.runfolder.artifacts import save_artifact
from w2s_base.runfolder.faults import RunFolderError

ROOT = Path(__file__).resolve().parents[1]
TRACEBACK_MARKS = ("Traceback", "never retrieved", "event loop", "Exception ignored")


@pytest.fixture
def full_disk(tmp_path):
    """(folder, filled): a folder on a 16 MiB tmpfs to be filled with `filled()`
    (None where no tmpfs can be mounted); unmounted after the test."""
    mnt = tmp_path / "mnt"
    mounted = _mount_tmpfs(mnt, "16m")
    try:
        yield mnt, ((lambda: _fill(mnt)) if mounted else None)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old")))


def test_torch_save_on_a_full_disk_names_the_file_and_keeps_the_old_one(full_disk):
    mnt, fill = full_disk
    head = mnt / "member" / "head.pt"
    save_artifact(head, lambda tmp: torch.save({"w": torch.ones(3)}, tmp))
    if fill is not None:
        fill()
        write = lambda tmp: torch.save({"w": torch.zeros(4096)}, tmp)  # noqa: E731
    else:  # what torch.save raises on a full disk, without the errno
        def write(tmp):
            tmp.write_bytes(b"PK")
            raise RuntimeError("basic_ios::clear: iostream error")
    with pytest.raises(RunFolderError) as e:
        save_artifact(head, write)
    assert e.value.path == head and "\n" not in str(e.value)
    if fill is not None:
        assert e.value.errno == errno.ENOSPC
        assert str(e.value).startswith(f"cannot write {head}: No space left on device (")
        assert str(e.value).endswith("free space and rerun to resume")
    else:
        assert str(e.value).startswith(f"cannot write {head}: RuntimeError: basic_ios::clear: iostream error")
    # the old weights, whole; no partial copy
    assert torch.load(head)["w"].tolist() == [1.0, 1.0, 1.0]
    assert _leftovers(head.parent) == []


def test_safetensors_on_a_full_disk_takes_the_errno_from_its_message(full_disk, tmp_path):
    from safetensors.torch import save_file
    mnt, fill = full_disk
    path = (mnt if fill else tmp_path) / "adapter_model.safetensors"
    if fill is not None:
        fill()
        write = lambda tmp: save_file({"w": torch.zeros(4096)}, str(tmp))  # noqa: E731
    else:
        from safetensors import SafetensorError

        def write(tmp):
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    with pytest.raises(RunFolderError) as e:
        save_artifact(path, write)
    assert e.value.errno == errno.ENOSPC
    assert str(e.value).startswith(f"cannot write {path}: No space left on device (errno 28); free space")
    assert not path.exists() and _leftovers(path.parent) == []


def test_feature_cache_on_a_full_disk(full_disk, monkeypatch):
    """The frozen-feature cache (a real embedded model's features, torch.save)."""
    from w2s_base.training.classifier import FeatureExtractor
    mnt, fill = full_disk
    if fill is None:
        pytest.skip("needs a tmpfs to fill (root)")
    monkeypatch.setenv("W2SD_CACHE", str(mnt / "cache"))
    fx = FeatureExtractor("minilm-l6", max_length=32, batch_size=4)
    first = fx(["one claim", "another claim"])
    fill()
    with pytest.raises(RunFolderError) as e:
        fx(["a third claim, not cached yet"])
    assert e.value.path == fx.cache_file and e.value.errno == errno.ENOSPC
    (mnt / "filler").unlink()
    again = FeatureExtractor("minilm-l6", max_length=32, batch_size=4)
    assert torch.equal(again(["one claim", "another claim"]), first)  # the cache saved before, whole
    assert len(again._load_cache()) == 2
    assert _leftovers(fx.cache_file.parent) == []


def test_a_folder_artifact_is_replaced_whole(tmp_path):
    out = tmp_path / "adapter"

    def write(files):
        def w(tmp):
            tmp.mkdir()
            for name, text in files.items():
                (tmp / name).write_text(text)
        return w

    save_artifact(out, write({"a.json": "1", "old.bin": "x"}))
    save_artifact(out, write({"a.json": "2"}))
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.json": "2"}

    def torn(tmp):
        write({"a.json": "3"})(tmp)
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(RunFolderError, match=r"cannot write .*adapter: Input/output error \(errno 5\)"):
        save_artifact(out, torn)
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.json": "2"}
    # keep_existing (a shared cache another process filled first): the copy in place stays
    save_artifact(out, write({"a.json": "4"}), keep_existing=True)
    assert (out / "a.json").read_text() == "2" and _leftovers(tmp_path) == []


def test_a_killed_saves_leftovers_are_removed_a_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / f".head.pt.{dead}.tmp").write_bytes(b"half")
    (tmp_path / f".adapter.{dead}.old").mkdir()
    live = tmp_path / f".head.pt.{os.getppid()}.tmp"  # our parent: running
    live.write_bytes(b"its own save in progress")
    save_artifact(tmp_path / "head.pt", lambda tmp: tmp.write_bytes(b"w"))
    save_artifact(tmp_path / "adapter", lambda tmp: tmp.mkdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["head.pt", "adapter", live.name])


def test_a_bug_in_the_writer_stays_a_bug(tmp_path):
    with pytest.raises(TypeError):
        save_artifact(tmp_path / "x.pt", lambda tmp: torch.save())
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ a whole run
# Run in the subprocess before run.py: once the artifact named in W2S_TEST_FILL_ON is
# being saved, fill the disk (W2S_TEST_FILL_DIR) for real, then let the library write;
# without a tmpfs, raise the library's errno-less error instead.
FILL = """
import errno, os
import torch, safetensors.torch as st
def _fill(folder):
    with open(os.path.join(folder, "filler"), "wb", buffering=0) as f:
        for size in (65536, 1):
            try:
                while True:
                    f.write(b"\\0" * size)
            except OSError:
                pass
def _hook(original, library_error):
    def save(obj, path, *a, **k):
        if os.environ["W2S_TEST_FILL_ON"] in os.fsdecode(path):
            if os.environ["W2S_TEST_FILL_DIR"]:
                _fill(os.environ["W2S_TEST_FILL_DIR"])
            else:
                raise library_error
        return original(obj, path, *a, **k)
    return save
torch.save = _hook(torch.save, RuntimeError("basic_ios::clear: iostream error"))
st.save_file = _hook(st.save_file, RuntimeError("Error while serializing: I/O error"))
"""


def _run(out: Path, fill_on: str | None = None, fill_dir: str = "") -> subprocess.CompletedProcess:
    args = ["--config", "configs/demo.yaml", "--name", "r", "--no-debate", "--set", f"output_dir={out}"]
    for o in TINY:
        args += ["--set", o]
    env = {**KILL_ENV, "W2S_TEST_FILL_ON": fill_on or "", "W2S_TEST_FILL_DIR": fill_dir}
    code = f"import sys\n{FILL if fill_on else ''}\nimport run\nsys.exit(run.main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _one_error_line(p: subprocess.CompletedProcess, filled: bool) -> str:
    both = p.stdout + p.stderr
    assert p.returncode == 1, both[-3000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, both[-3000:]
    for bad in TRACEBACK_MARKS:
        assert bad not in both, both[-3000:]
    assert ("No space left on device" if filled else "RuntimeError: ") in errors[0], errors
    print(errors[0])  # shown with -rP
    return errors[0]


@pytest.mark.slow
def test_disk_full_while_a_weak_member_and_a_student_are_saved(full_disk, tmp_path):
    mnt, fill = full_disk
    whole = _run(tmp_path / "whole")
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]

    out = (mnt if fill else tmp_path) / "out"
    rd = out / "r"
    fill_dir = str(mnt) if fill else ""

    def fixed():
        (mnt / "filler").unlink(missing_ok=True)

    # 1. the first weak member's LoRA adapter (peft save_pretrained -> safetensors)
    failed = _run(out, "/.adapter.", fill_dir)
    fixed()
    line = _one_error_line(failed, bool(fill))
    members = rd / "weak" / "members"
    adapter = next(members.glob("*/*/*")) / "adapter"
    assert line.startswith(f"error: cannot write {adapter}: "), line
    assert not list(members.glob("*/*/*/result.json"))  # not recorded as finished
    assert not list(members.glob("*/*/*/.*"))  # no partial copy left
    # 2. the first student's head (torch.save), the weak stage now done
    failed = _run(out, "/.head.pt.", fill_dir)
    fixed()
    line = _one_error_line(failed, bool(fill))
    assert line.startswith(f"error: cannot write {rd / 'strong'}/"), line
    head = Path(line.split("cannot write ", 1)[1].split(": ", 1)[0])
    assert head.name == "head.pt" and not head.exists()
    assert not (head.parent / "result.json").exists() and not list(head.parent.glob(".*"))
    assert list(members.glob("*/*/*/result.json")) and list(adapter.rglob("adapter_model.safetensors"))
    # 3. space freed: the rerun ends where an uninterrupted run ends
    rerun = _run(out)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    (_, lab_a, rep_a), (_, lab_b, rep_b) = _outputs(tmp_path / "whole" / "r"), _outputs(rd)
    _assert_close(lab_b, lab_a, "labels")
    _assert_close(rep_b, rep_a)
    assert head.exists() and (head.parent / "result.json").exists()
