"""A git revision's source tree, exported for a benchmark to run beside this checkout (same input, same run)."""
from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def short_revision(revision: str = "HEAD", *, check: bool = False) -> str:
    """``git rev-parse --short revision`` of this checkout ("" when git cannot say and ``check`` is off)."""
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", revision], capture_output=True,
                          text=True, check=check).stdout.strip()


def export_revision(revision: str, into: Path, *paths: str) -> Path:
    """The files of git ``revision`` (all, or only ``paths``) written into ``into`` by ``git archive``."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", revision, *paths], capture_output=True,
                          check=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def fresh_review_copy(review: Path, into: Path) -> Path:
    """A copy of a review's folder (its store) in ``into``, without its cache: what a cold step reads."""
    target = into / "review"
    shutil.copytree(review, target)
    shutil.rmtree(target / "cache", ignore_errors=True)
    return target
