"""Crash-safe files: JSONL appended and flushed per record (a torn last line is
tolerated, then compacted away by the next writer), and JSON / text written
atomically (temp file + rename), so a reader never sees half a file.

An OS fault (permission, disk full, read-only, the file removed or replaced under a
writer) is raised as faults.RunFolderError naming the file: one line for the user, and
the records written before it stay on disk for the rerun."""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from .faults import RunFolderError, guard


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield records; a line that does not parse (a write cut short by a kill) is
    skipped with a warning instead of failing the whole run."""
    if not path.exists():
        return
    with guard(path, "read"), path.open("r", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                print(f"[jsonl] {path}:{n}: ignoring an unreadable (truncated) line")


class JsonlWriter:
    """Appends one record per line. Each record goes to the OS in one unbuffered
    write, so after a failed write nothing is left in a buffer to be retried (and fail
    again) at close; a partial line the OS took is dropped by the next writer."""

    def __init__(self, path: Path):
        self.path = path
        with guard(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._compact(path)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            st = os.fstat(self._fd)
        self._id = (st.st_dev, st.st_ino)
        self._synced = time.monotonic()
        self._fault: RunFolderError | None = None  # the OS fault that stopped this writer

    @staticmethod
    def _compact(path: Path) -> None:
        """Drop lines a killed writer left unreadable (atomically), so the warning is
        given once and the next record is never glued onto a partial line."""
        if not path.exists() or not path.stat().st_size:
            return
        raw = path.read_bytes()
        lines = raw.split(b"\n")
        good = []
        for line in lines:
            if not line.strip():
                continue
            try:
                json.loads(line)
                good.append(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass
        if len(good) == sum(1 for x in lines if x.strip()) and raw.endswith(b"\n"):
            return  # nothing torn: leave the file alone
        print(f"[jsonl] {path}: removing {sum(1 for x in lines if x.strip()) - len(good)} unreadable "
              "(truncated) line(s)")
        write_bytes_atomic(path, b"".join(x + b"\n" for x in good))

    # A flushed line survives a kill of this process (it is in the OS's hands); fsync,
    # against a crash of the machine, at most once a second: writers call this per
    # finished debate, from inside the engine's step loop.
    SYNC_EVERY_S = 1.0

    def write(self, record: dict[str, Any]) -> None:
        data = memoryview((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        if self._fault is not None:  # every later record meets the same fault (concurrent callers)
            raise self._fault
        if self._fd is None:
            raise ValueError(f"write to a closed JsonlWriter ({self.path})")
        try:
            self._check_in_place()
            while data:
                data = data[os.write(self._fd, data):]
            if time.monotonic() - self._synced >= self.SYNC_EVERY_S:
                self._sync()
        except RunFolderError as e:
            self._fault = e
        except OSError as e:
            self._fault = RunFolderError.from_os(e, self.path)
            self._fault.__cause__ = e
        if self._fault is not None:
            self._abandon()
            raise self._fault

    def _check_in_place(self) -> None:
        """The path must still be the file this writer appends to: were it removed or
        replaced (the run folder deleted, a file put in its place), every later record
        would go to a file nobody can read: lost without an error."""
        st = os.stat(self.path)  # FileNotFoundError: removed
        if (st.st_dev, st.st_ino) != self._id:
            raise RunFolderError("write", self.path, "it was replaced while this run was writing it",
                                 None)

    def _sync(self) -> None:
        assert self._fd is not None
        os.fsync(self._fd)
        self._synced = time.monotonic()

    def _abandon(self) -> None:
        """After a fault: let go of the file without another write or sync."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            with guard(self.path):
                self._sync()
        finally:
            self._abandon()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # the error in flight is the one to report, not a failing sync after it
            with contextlib.suppress(RunFolderError):
                self.close()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """A kill mid-write leaves the old file, never a torn one; a fault leaves no
    temporary file behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with guard(path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def save_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2))
