"""Crash-safe JSONL: append and flush per record; tolerate a torn last line."""
from __future__ import annotations

import json
import os
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
        self._terminate_torn_line(path)
        self.f = path.open("a", encoding="utf-8")

    @staticmethod
    def _terminate_torn_line(path: Path) -> None:
        # A killed writer can leave a partial last line; start on a fresh line so
        # the next record is not glued onto it.
        if path.exists() and path.stat().st_size:
            with path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    with path.open("a") as g:
                        g.write("\n")

    def write(self, record: dict[str, Any]) -> None:
        self.f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def save_json(path: Path, obj: Any) -> None:
    """Write JSON atomically: a kill mid-write leaves the old file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)
