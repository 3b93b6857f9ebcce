"""Every file or folder a run saves whole (model weights, a classification head, a
LoRA adapter, the feature cache, a JSON result) goes through `save_artifact`:

- written under a temporary name in the same folder (`.<name>.<pid>.tmp`), synced
  to disk, then renamed into place: a kill or a fault mid-save leaves the old
  artifact or none, never a half-written one that a rerun would trust;
- any failure while writing (an OSError, or the errno-less RuntimeError that
  `torch.save` raises on a full disk) becomes one faults.RunFolderError naming the
  artifact's path and the cause (faults.RunFolderError.while_writing), and the
  temporary file is removed;
- the temporary files of a process that was killed mid-save are removed by the next
  save of the same artifact (they may hold as much as the artifact itself).

A result that records the artifact as finished (a member's or student's result.json)
is written after `save_artifact` returns, so a failed save never has a result."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Callable

from .faults import RunFolderError

# Raised by a writer that is wrong, not by a disk: shown as the bug it is (a traceback).
_BUGS = (TypeError, AttributeError, NameError, AssertionError, LookupError, ImportError,
         NotImplementedError)


def save_artifact(path: str | os.PathLike[str], write: Callable[[Path], object], *,
                  keep_existing: bool = False) -> None:
    """Save `path` atomically: `write(tmp)` writes it (a file or a folder) at `tmp`.
    `keep_existing`: another process may save the same artifact at the same time
    (a shared cache); whichever is in place first is kept, ours discarded."""
    path = Path(path)
    folder = path.parent
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(path)
        write(tmp)
        _sync(tmp)
        if keep_existing:
            try:
                os.rename(tmp, path)
            except OSError:
                if not path.exists():
                    raise
                _remove(tmp)  # another process's copy is in place
        else:
            _swap_in(tmp, path)
        _sync_folder(folder)
    except RunFolderError:
        _remove(tmp)
        raise
    except _BUGS:
        _remove(tmp)
        raise
    except Exception as e:
        # diagnosed before the partial file goes: its blocks are the free space asked for
        err = RunFolderError.while_writing(e, path, folder)
        _remove(tmp)
        raise err from e
    except BaseException:  # KeyboardInterrupt: reported as it is, nothing left behind
        _remove(tmp)
        raise


def _swap_in(tmp: Path, path: Path) -> None:
    """Rename `tmp` to `path`. A folder cannot be renamed over a folder: the old one is
    renamed aside first and removed after (a kill in between leaves no artifact, never
    a mixed one)."""
    if not (tmp.is_dir() or (path.is_dir() and not path.is_symlink())):
        os.replace(tmp, path)
        return
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    _remove(old)
    if path.exists() or path.is_symlink():
        os.rename(path, old)
    os.rename(tmp, path)
    _remove(old)


def _sync(p: Path) -> None:
    """fsync a file, or every file and folder under a folder. Its errors count (a
    network filesystem may report a full disk only here), except a filesystem that
    cannot sync at all."""
    if p.is_dir():
        for sub in sorted(p.rglob("*")):
            _sync(sub)
        _sync_folder(p)
        return
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable, where the filesystem can (some cannot sync
    a folder: the rename is done all the same)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(p: Path) -> None:
    with contextlib.suppress(OSError):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, another user's
        return True
    return True


def _remove_leftovers(path: Path) -> None:
    """The temporary copies of `path` that a killed process left (`.<name>.<pid>.tmp`
    or `.old`, its pid no longer running), and this process's own."""
    prefix = f".{path.name}."
    for p in path.parent.iterdir():
        name = p.name
        if not name.startswith(prefix):
            continue
        pid, _, kind = name[len(prefix):].partition(".")
        if kind in ("tmp", "old") and pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            _remove(p)
