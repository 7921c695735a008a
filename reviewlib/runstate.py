"""Whether a run folder is running, failed or was interrupted, even after SIGKILL or a full disk.

A run, while it runs, holds an exclusive ``flock`` on ``<run>/.lock`` (the kernel
drops it when the process dies, however it dies).  :func:`mark_stale_runs`,
called by the next run, finds folders whose manifest still says ``running`` but
whose lock is free: their process is gone, so they are marked ``interrupted``
(or ``failed``, if their failure marker says so), and the review's index lists
them as such.  They are never taken for a complete run.

A full disk must not keep a failing run from saying so.  :func:`begin` reserves
:data:`MARKER_BYTES` in ``<run>/.status`` when the run starts; :func:`mark_failed_small`
overwrites that reserved space in place (no new blocks are needed), before
anything bigger is tried.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

try:  # POSIX only; elsewhere a run cannot tell a dead owner from a live one and says 'running'
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
STATUS_FILE = ".status"
MANIFEST_FILE = "manifest.json"
#: Bytes reserved for the failure marker when a run starts.
MARKER_BYTES = 4096


@dataclass
class RunLock:
    """The open, locked ``.lock`` of a running run (keep it until the run ends)."""

    path: Path
    fd: int

    def release(self) -> None:
        """Drop the lock (also dropped by the kernel when the process ends)."""
        if self.fd >= 0:
            try:
                os.close(self.fd)
            finally:
                self.fd = -1


def begin(run_dir: str | os.PathLike) -> RunLock:
    """Lock ``run_dir`` for this process and reserve the failure marker's space; call first."""
    run_dir = Path(run_dir)
    with open(run_dir / STATUS_FILE, "wb") as fh:
        fh.write(b" " * MARKER_BYTES)
        fh.flush()
        os.fsync(fh.fileno())
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"{os.getpid()}\n".encode())
    return RunLock(run_dir / LOCK_FILE, fd)


def mark_failed_small(run_dir: str | os.PathLike, error: Mapping[str, Any]) -> bool:
    """Write ``{"status": "failed", ...}`` into the space :func:`begin` reserved; True if written.

    Works on a full disk: it overwrites blocks the file already has.  The error is cut to fit.
    """
    path = Path(run_dir) / STATUS_FILE
    record = {"status": "failed", "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "error": {k: (str(v)[:500] if v is not None else None) for k, v in dict(error).items()}}
    data = json.dumps(record, ensure_ascii=True).encode()
    if len(data) > MARKER_BYTES:
        record["error"] = {"message": str(error.get("message") or "")[:MARKER_BYTES // 2]}
        data = json.dumps(record, ensure_ascii=True).encode()[:MARKER_BYTES]
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return False
    try:
        os.write(fd, data.ljust(MARKER_BYTES, b" "))
        os.fsync(fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _marker(run_dir: Path) -> dict | None:
    try:
        text = (run_dir / STATUS_FILE).read_text(encoding="ascii").strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def _lock_is_free(run_dir: Path) -> bool:
    """True if no live process holds the run's lock (its owner died, or it never took one)."""
    path = run_dir / LOCK_FILE
    if fcntl is None:
        return False
    if not path.exists():
        return True  # a folder made before locks, or killed before it locked: nobody is running it
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def status_of(run_dir: str | os.PathLike, manifest: Mapping[str, Any] | None) -> str:
    """A run's status: its manifest's, except that a dead ``running`` run is ``failed`` or ``interrupted``."""
    run_dir = Path(run_dir)
    status = (manifest or {}).get("status") or "unknown"
    if status != "running":
        return status
    marker = _marker(run_dir)
    if marker and marker.get("status") == "failed":
        return "failed"
    return "interrupted" if _lock_is_free(run_dir) else "running"


def mark_stale_runs(results_root: str | os.PathLike, exclude: str | None = None) -> list[str]:
    """Mark every run of ``results_root`` left ``running`` by a dead process; returns their ids.

    The manifest gets ``status`` ``interrupted`` (or ``failed``, with the marker's error) and
    ``interrupted_noticed_at``.  A manifest that cannot be rewritten (full disk) is left; the
    status is still derived correctly by :func:`status_of`.
    """
    from .atomic import write_text
    marked = []
    root = Path(results_root)
    if not root.is_dir():
        return marked
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        if run_dir.name == exclude:
            continue
        try:
            manifest = json.loads((run_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if manifest.get("status") != "running":
            continue
        status = status_of(run_dir, manifest)
        if status == "running":
            continue
        manifest["status"] = status
        manifest["interrupted_noticed_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        marker = _marker(run_dir)
        if status == "failed" and marker:
            manifest.setdefault("error", marker.get("error"))
        try:
            write_text(run_dir / MANIFEST_FILE, json.dumps(manifest, indent=2, ensure_ascii=False))
        except OSError as exc:
            logger.warning("run %s looks %s but its manifest cannot be rewritten (%s)", run_dir.name, status, exc)
            continue
        logger.warning("run %s was %s (its process is gone): marked so; it is not a complete run",
                       run_dir.name, "interrupted" if status == "interrupted" else "failed")
        marked.append(run_dir.name)
    return marked


def set_aside_truncated(run_dir: str | os.PathLike) -> list[Path]:
    """Rename every notebook of ``run_dir`` that is not whole JSON (a write cut short) to ``*.ipynb.truncated``."""
    moved = []
    for nb in Path(run_dir).glob("*.ipynb"):
        try:
            json.loads(nb.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            try:
                target = nb.with_name(nb.name + ".truncated")
                os.replace(nb, target)
                moved.append(target)
                logger.warning("notebook %s was cut short (disk full?): kept as %s", nb.name, target.name)
            except OSError:
                pass
    return moved


def listed_runs(results_root: str | os.PathLike, exclude: str | None = None) -> list[tuple[Path, dict]]:
    """Every run of ``results_root`` with its manifest (``status`` as :func:`status_of` gives it), oldest first."""
    runs = []
    root = Path(results_root)
    if not root.is_dir():
        return runs
    for run_dir in root.iterdir():
        if run_dir.is_symlink() or not run_dir.is_dir() or run_dir.name == exclude:
            continue
        try:
            manifest = json.loads((run_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = {"run_id": run_dir.name, "status": "interrupted"}   # killed before its first manifest
        manifest = dict(manifest, status=status_of(run_dir, manifest))
        manifest.setdefault("run_id", run_dir.name)
        runs.append((run_dir, manifest))
    runs.sort(key=lambda item: (str(item[1].get("started_at", "")), item[0].name))
    return runs
