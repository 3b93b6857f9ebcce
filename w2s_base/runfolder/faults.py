"""When the run folder fails at the OS level (permission denied, an immutable file,
disk full, a read-only filesystem, the folder removed or a file replaced under a
running writer), the run stops with one line naming the path and the cause:

    error: cannot write runs/x/debate/transcripts.jsonl: No space left on device (errno 28); free space and rerun to resume

`RunFolderError` is that one exception type. The run folder's writers (jsonl.py,
and artifacts.save_artifact for weights and caches) raise it with their path;
`under(root)` turns any other OSError that names a path inside the run folder into
one. Libraries that save weights often fail without an errno (`torch.save` on a full
disk raises `RuntimeError: basic_ios::clear: iostream error`, safetensors a
`SafetensorError`): `while_writing` finds the cause from what is real, the errno
the library's message carries or the free space left where it wrote. `run.py` prints it as one
line, rc 1. What was stored before the fault stays stored (records are appended and
flushed one by one, whole files replaced atomically), so the rerun resumes.
"""
from __future__ import annotations

import errno
import os
import re
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

# Below this much free space a failed write is taken as disk full: a filesystem that
# refused a write for space has less than a block or two left (tmpfs: none).
NEARLY_FULL_BYTES = 1 << 20

# An errno in a library's message: Rust's std::io::Error ("... (os error 28)"), which
# safetensors passes on as text only.
_OS_ERROR_IN_TEXT = re.compile(r"\(os error (\d+)\)")


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Space this process may still write in `folder`'s filesystem (root may use the
    blocks reserved for it); None when it cannot be asked."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize


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

    @classmethod
    def while_writing(cls, e: BaseException, path: str | os.PathLike[str],
                      folder: str | os.PathLike[str]) -> "RunFolderError":
        """`e` was raised while `path` was written in `folder`. Its cause, first found:
        an OSError with an errno in its chain; an errno in its message; the disk full
        (free space in `folder` below NEARLY_FULL_BYTES, asked before the partial file
        is removed); else its own message, errno unknown."""
        seen: set[int] = set()
        x: BaseException | None = e
        while x is not None and id(x) not in seen:
            seen.add(id(x))
            if isinstance(x, OSError) and x.errno is not None:
                return cls.from_os(x, path)
            x = x.__cause__ or x.__context__
        m = _OS_ERROR_IN_TEXT.search(str(e))
        if m:
            n = int(m.group(1))
            return cls("write", path, f"{os.strerror(n)} (errno {n})", n)
        free = free_bytes(folder)
        if free is not None and free < NEARLY_FULL_BYTES:
            # no errno was reported: the free space is what says so
            return cls("write", path, f"No space left on device ({free} bytes free)", errno.ENOSPC)
        text = (str(e).strip().splitlines() or [""])[0]
        return cls("write", path, f"{type(e).__name__}: {text}" if text else type(e).__name__)


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
