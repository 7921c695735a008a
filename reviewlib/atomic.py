"""Atomic file writes: write to a temporary file beside the target, then rename it into place.

A reader (or a crash) never sees a half-written file: either the old file or the
complete new one is there.  Every module that writes a file a user or a later
run reads goes through here.
"""
from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .oserrors import name_target


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes, read in 1 MiB blocks (never held in memory whole)."""
    import hashlib
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_digest(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """One SHA-256 of several files: each one's name (relative to ``root``, else its own name) and bytes.

    What a cache keyed by code depends on: the source files whose change must recompute it.
    """
    import hashlib
    digest = hashlib.sha256()
    for path in map(Path, paths):
        name = path.relative_to(root).as_posix() if root is not None else path.name
        digest.update(name.encode("utf-8") + b"\0" + file_digest(path).encode("ascii") + b"\0")
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    Parameters
    ----------
    path : path-like
        The final file; its folder is created if missing.
    suffix : str
        Suffix of the temporary file (some writers, e.g. openpyxl, look at it).

    On an exception the temporary file is removed and ``path`` is left as it was.
    The new file gets ordinary permissions (0666 less the umask), not mkstemp's 0600.
    An ``OSError`` (read-only folder, full disk, ``path`` a directory) names ``path``,
    not the temporary file, so the CLI's one line points at what the user gave.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as exc:
        raise name_target(exc, path) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            name_target(exc, path, tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; ``fsync`` forces it to disk before the rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
    return path


def write_text(path: str | os.PathLike, text: str, fsync: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"), fsync=fsync)


def write_with(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp)`` on a temporary file (same suffix as ``path``) that then replaces ``path``.

    For writers that want a file name rather than bytes, e.g.
    ``write_with(p, lambda tmp: frame.to_csv(tmp, index=False))``.
    """
    path = Path(path)
    with atomic_path(path, suffix=path.suffix or ".tmp") as tmp:
        write(tmp)
    return path
