"""Crash-safe files: JSONL appended and flushed per record (a torn last line is
tolerated, then compacted away by the next writer), and JSON / text written
atomically (temp file + rename), so a reader never sees half a file."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield records; a line that does not parse (a write cut short by a kill) is
    skipped with a warning instead of failing the whole run."""
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                print(f"[jsonl] {path}:{n}: ignoring an unreadable (truncated) line")


class JsonlWriter:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._compact(path)
        self.f = path.open("a", encoding="utf-8")
        self._synced = time.monotonic()

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
        self.f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.f.flush()
        if time.monotonic() - self._synced >= self.SYNC_EVERY_S:
            self._sync()

    def _sync(self) -> None:
        os.fsync(self.f.fileno())
        self._synced = time.monotonic()

    def close(self) -> None:
        if not self.f.closed:
            self.f.flush()
            self._sync()
        self.f.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """A kill mid-write leaves the old file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def save_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2))
