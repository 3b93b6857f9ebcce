"""One run at a time in a run folder.

Two runs writing one folder do all the work twice (every transcript stored twice),
or, with different configs, leave a config.yaml that did not make the results. So a
run holds an exclusive lock on `runs/<name>/.lock` from before it writes anything
until it ends; a second run on that folder is refused at once, with the holder
(pid, host, start time, command) read from the lock file.

The lock is `flock(2)`: the kernel drops it when its process dies, however it dies
(kill -9 included), so a lock file left by a killed run never blocks the next one;
the next holder simply overwrites it (and reports it in `RunLock.stale`). The file
itself is never deleted: deleting it would let two processes lock two different
files under one name. flock also holds across NFS clients on Linux (as a POSIX
lock); a filesystem with no locking at all gets a warning and an unlocked run.

The descriptor is close-on-exec; a child forked without exec (a DataLoader worker)
shares it, so the folder stays locked while such a child outlives its run.

Under a multi-process launcher only the main process takes the lock
(`RunLock(root, enabled=dist.is_main())`): the other ranks belong to the same run.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from w2s_base.config import ConfigError
from w2s_base.runfolder.artifacts import save_artifact

if TYPE_CHECKING:
    from w2s_base.config import RunConfig
    from w2s_base.runfolder.layout import RunLayout

LOCK_NAME = ".lock"
_HELD: dict[Path, "RunLock"] = {}  # run folders this process holds, by resolved path


class RunLocked(ConfigError):
    """Another live run holds the run folder (a ConfigError: the CLI prints one line, exit 2)."""


def _command() -> str:
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return shlex.join(argv)


def _one_line(text: Any, limit: int = 300) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def describe(holder: dict[str, Any] | None) -> str:
    """'pid 123 on host, started 2025-01-01T10:00:00, command: python run.py ...'."""
    if not holder:
        return "a process that has not recorded itself yet"
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started "
            f"{holder.get('started', '?')}, command: {_one_line(holder.get('command', '?'))}")


def _read_info(fd: int) -> dict[str, Any] | None:
    try:
        raw = os.pread(fd, 65536, 0).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return {"command": f"(unreadable lock file: {raw[:80]!r})"}
    return info if isinstance(info, dict) else None


class RunLock:
    """Exclusive, non-blocking lock on a run folder, held as a context manager:

        with RunLock(layout.root, enabled=dist.is_main()):
            ...   # the whole run

    Raises RunLocked at once when another live process holds it. `enabled=False`
    makes it a no-op (the non-main ranks of a multi-process launch)."""

    def __init__(self, root: str | os.PathLike[str], enabled: bool = True, command: str | None = None):
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        self.enabled = enabled
        self.command = command
        self.stale: dict[str, Any] | None = None  # the record a killed earlier run left behind
        self._fd: int | None = None
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self) -> "RunLock":
        if not self.enabled or self._held:
            return self
        key = self.root.resolve()
        if key in _HELD:
            raise RunLocked(f"run folder {self.root} is already held by this process (pid {os.getpid()})")
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                info = None
                for _ in range(10):  # the holder may be between taking the lock and recording itself
                    info = _read_info(fd)
                    if info:
                        break
                    time.sleep(0.02)
                os.close(fd)
                raise RunLocked(f"run folder {self.root} is in use by another run ({describe(info)}); "
                                "wait for it to end, or choose another name or output_dir") from None
            os.close(fd)  # no locking on this filesystem (ENOLCK, EOPNOTSUPP, ...)
            print(f"warning: cannot lock {self.path} ({os.strerror(e.errno or 0)}): a second run on "
                  "this folder would not be detected", file=sys.stderr)
            self._held = True
            _HELD[key] = self
            return self
        self.stale = _read_info(fd)  # left by a run that died holding it (a clean end empties it)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": self.command if self.command is not None else _command(),
                "cwd": os.getcwd()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd, self._held = fd, True
        _HELD[key] = self
        return self

    def release(self) -> None:
        if not self._held:
            return
        _HELD.pop(self.root.resolve(), None)
        self._held = False
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # a clean end: an empty file means "nobody died holding it"
        except OSError:
            pass  # the folder failed (the error being reported): the next run reads it as killed
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def live_holder(root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The record of the live run that holds this run folder, or None when none does.
    For readers (`view`, `export`) that refuse a folder a run is writing: creates
    nothing (no folder, no lock file) and takes the lock only for an instant, to test
    it. A folder on a filesystem without locking reads as free."""
    path = Path(root) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # no lock file: no run has ever held the folder
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return _read_info(fd) or {}
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def is_held_here(root: str | os.PathLike[str]) -> bool:
    """Whether this process holds the lock of that run folder."""
    return Path(root).resolve() in _HELD


def write_config_of_record(cfg: "RunConfig", layout: "RunLayout") -> Path:
    """Write runs/<name>/config.yaml atomically (temporary file, fsync, rename), so
    a reader sees the old config or the new one, never half of one. Only the holder
    of the run folder's lock may write it."""
    if not is_held_here(layout.root):
        raise RuntimeError(f"config of record for {layout.root}: take RunLock({layout.root}) first")
    target = layout.config
    text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    save_artifact(target, lambda tmp: tmp.write_text(text))
    return target
