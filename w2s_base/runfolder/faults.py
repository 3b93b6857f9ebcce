"""When the run folder fails at the OS level (permission denied, an immutable file,
disk full, a read-only filesystem, the folder removed or a file replaced under a
running writer), the run stops with one line naming the path and the cause:

    error: cannot write runs/x/debate/transcripts.jsonl: No space left on device (errno 28); free space and rerun to resume

`RunFolderError` is that one exception type. The run folder's writers (jsonl.py)
raise it with their path; `under(root)` turns any other OSError that names a path
inside the run folder (a library saving a model) into one. `run.py` prints it as one
line, rc 1. What was stored before the fault stays stored (records are appended and
flushed one by one, whole files replaced atomically), so the rerun resumes.
"""
from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# What the user can do about it, by errno; the rest: DEFAULT_HINT.
HINTS = {
    errno.ENOSPC: "free space and rerun to resume",
    errno.EDQUOT: "free space (or raise the quota) and rerun to resume",
    errno.EACCES: "make it writable (permissions) and rerun to resume",
    errno.EPERM: "make it writable (permissions, or chattr -i) and rerun to resume",
    errno.EROFS: "the filesystem is read-only: make it writable and rerun to resume",
    errno.ENOENT: "the run folder was removed or moved during the run; rerun to redo what is missing",
}
DEFAULT_HINT = "fix the cause and rerun to resume"


class RunFolderError(Exception):
    """The run folder failed at the OS level: the message is one line naming the path,
    the cause and what to do."""

    def __init__(self, action: str, path: str | os.PathLike[str], cause: str,
                 errno_: int | None = None):
        self.action, self.path, self.cause, self.errno = action, Path(path), cause, errno_
        hint = HINTS.get(errno_, DEFAULT_HINT) if errno_ is not None else DEFAULT_HINT
        super().__init__(f"cannot {action} {path}: {cause}; {hint}")

    @classmethod
    def from_os(cls, e: OSError, path: str | os.PathLike[str], action: str = "write") -> "RunFolderError":
        cause = e.strerror or str(e) or type(e).__name__
        if e.errno is not None:
            cause += f" (errno {e.errno})"
        return cls(action, path, cause, e.errno)


@contextmanager
def guard(path: str | os.PathLike[str], action: str = "write") -> Iterator[None]:
    """An OSError inside becomes a RunFolderError naming `path` (the file the caller
    was writing or reading, not a temporary name)."""
    try:
        yield
    except OSError as e:
        raise RunFolderError.from_os(e, path, action) from e


def _inside(name: object, root: Path) -> bool:
    if not isinstance(name, (str, bytes, os.PathLike)):
        return False
    try:
        return Path(os.fsdecode(name)).resolve().is_relative_to(root)
    except (OSError, ValueError, RuntimeError):
        return False


@contextmanager
def under(root: str | os.PathLike[str]) -> Iterator[None]:
    """Around a whole run: an OSError that names a path inside `root` (raised by code
    that is not the run folder's own writers, e.g. a library saving weights) becomes a
    RunFolderError. Any other OSError passes unchanged: it is not the run folder's."""
    resolved = Path(root).resolve()
    try:
        yield
    except OSError as e:
        name = next((n for n in (e.filename, e.filename2) if _inside(n, resolved)), None)
        if name is None:
            raise
        raise RunFolderError.from_os(e, os.fsdecode(name), "access") from e
