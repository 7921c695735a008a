"""One line for an operating-system error: what failed, on which path, and what to do.

The CLI turns every ``OSError`` and ``sqlite3`` error that reaches it into the
line :func:`describe` gives, instead of a traceback: a read-only or missing
output folder, an output path that is a directory, a full disk, a file that
cannot be read.  :func:`name_target` lets the atomic writer report the file the
user asked for rather than its hidden temporary file.
"""
from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

__all__ = ["describe", "describe_sqlite", "name_target"]


def name_target(exc: OSError, target: str | os.PathLike, tmp: str | os.PathLike | None = None) -> OSError:
    """Point ``exc`` at ``target`` when it names nothing or only the temporary file; returns ``exc``."""
    target = str(target)
    named = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    if exc.errno == errno.EISDIR and target in named:
        exc.filename, exc.filename2 = target, None
    elif not named or (tmp is not None and named[0] == str(tmp)) or Path(named[0]).name.startswith(
            f".{Path(target).name}."):
        exc.filename, exc.filename2 = target, None
    return exc


def _folder(path: str) -> str:
    parent = str(Path(path).parent)
    return parent if parent not in ("", ".") else os.getcwd()


def describe(exc: OSError) -> str:
    """One line for ``exc``: the path it concerns, what is wrong, what to do."""
    path = exc.filename2 if exc.errno == errno.EISDIR and exc.filename2 else exc.filename
    path = str(path) if path is not None else None
    code = exc.errno
    at = f"{path}: " if path else ""
    if code == errno.ENOSPC:
        where = f"the disk holding {_folder(path)}" if path else "the disk"
        return (f"no space left on {where}{f' (writing {path})' if path else ''}: free some space or give a "
                "folder on another disk, then run the same command again")
    if code == getattr(errno, "EDQUOT", -1):
        return f"{at}disk quota exceeded: free some space or give a folder on another disk, then run again"
    if code == errno.EROFS:
        return f"{at}the file system is read-only: give an output folder you can write to"
    if code in (errno.EACCES, errno.EPERM):
        return f"{at}permission denied: give a folder you can write to, or change its permissions"
    if code == errno.EISDIR:
        return f"{at}is a directory, not a file: give a file name (e.g. {Path(path or '.') / 'out.csv'})"
    if code == errno.ENOTDIR:
        return f"{at}a part of this path is a file, not a folder: check the path"
    if code == errno.ENOENT:
        return f"{at}no such file or folder: check the path"
    if code == errno.ENAMETOOLONG:
        return f"{at}the name is too long: give a shorter path"
    if code in (errno.EMFILE, errno.ENFILE):
        return "too many open files: close other programs or raise the limit (ulimit -n), then run again"
    if code == errno.EIO:
        return f"{at}input/output error: the disk or network share failed; check it and run again"
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{at}{reason}"


def describe_sqlite(exc: sqlite3.Error, store: str | None = None) -> str:
    """One line for an SQLite error of a review store."""
    text = str(exc)
    where = f"review store {store}" if store else "the review store"
    low = text.lower()
    if "disk is full" in low or "disk i/o" in low and "full" in low:
        return (f"{where}: no space left on the disk (database or disk is full): free some space and run the "
                "same command again; the step that failed was not saved")
    if "readonly" in low or "read-only" in low:
        return f"{where} cannot be written ({text}): give a review folder you can write to"
    if "unable to open" in low:
        return f"{where} cannot be opened ({text}): check that its folder exists and can be written to"
    if "locked" in low:
        return f"{where} is locked by another process ({text}): wait for it to finish, then run again"
    return f"{where}: {text}"
