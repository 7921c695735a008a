"""Atomic writes: a failed write leaves the old file and no temporary file behind."""
from __future__ import annotations

import os
import stat

import pytest

from reviewlib.atomic import atomic_path, write_bytes, write_text


def test_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text(target, "first")
    write_bytes(target, b"second", fsync=True)
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~_umask()


def test_failure_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "records.csv"
    target.write_text("complete old content")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new con")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "complete old content"
    assert [p.name for p in tmp_path.iterdir()] == ["records.csv"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
