"""One clear line instead of a traceback for OS errors and odd files (issue 13).

Real processes and real file systems: read-only and full file systems are small
tmpfs mounts (the tests run as root in CI); without the right to mount, those
tests are skipped with the reason.
"""
from __future__ import annotations

import contextlib
import gzip
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from reviewlib.errors import InputError
from reviewlib.records import conform, read_csv, write_csv
from reviewlib.sources.readers import read_ris
from reviewlib.store import ReviewStore

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "1m", readonly: bool = False):
    """A tmpfs of ``size`` mounted at ``folder`` (read-only after ``prepare`` if asked); unmounted after."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'mount failed'}): needs root")
    try:
        if readonly:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


def reviewlib(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    base = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "REVIEWLIB_RATE_FILE": str(Path("/tmp") /
            f"rate-{uuid.uuid4().hex}"), "NCBI_EMAIL": "reviewer@example.org",
            "REVIEWLIB_EUTILS_URL": "http://127.0.0.1:9/entrez/eutils/"}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "reviewlib", *args], capture_output=True, text=True,
                          timeout=300, env=base, cwd=cwd)


def one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    errors = [l for l in lines if ": error: " in l]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr   # progress lines may come before it
    return errors[0]


@pytest.fixture
def records_csv(tmp_path) -> Path:
    frame = conform(pd.DataFrame([{"pmid": str(i), "title": f"CD19 CAR T cells in lupus {i}",
                                   "abstract": "Eight patients with SLE received CD19 CAR T cells. " * 20}
                                  for i in range(1, 41)]))
    return write_csv(frame, tmp_path / "records.csv")


@pytest.fixture
def decided_store(tmp_path) -> Path:
    path = tmp_path / "review.sqlite"
    from reviewlib.screening import decisions
    with ReviewStore(path) as store:
        store.add_records(conform(pd.DataFrame([{"pmid": "1", "title": "x"}])))
        decisions.record_decision(store, "pmid:1", "ana", "include")
    return path


# -- read-only and full file systems ------------------------------------------------------
def test_extract_and_decisions_export_into_a_read_only_folder(tmp_path, records_csv, decided_store):
    with tmpfs(tmp_path / "ro", readonly=True) as ro:
        line = one_line(reviewlib("extract", "--records", str(records_csv), "--out", str(ro / "e.csv")))
        assert f"{ro / 'e.csv'}: the file system is read-only" in line and line.startswith("reviewlib extract: error:")
        line = one_line(reviewlib("decisions", "export", "--store", str(decided_store), "--out",
                                  str(ro / "sub" / "d.csv")))
        assert "read-only" in line and str(ro / "sub") in line
        assert os.listdir(ro) == []


def test_fetch_into_a_read_only_folder_and_a_read_only_rate_file(tmp_path):
    with tmpfs(tmp_path / "ro", readonly=True) as ro:
        line = one_line(reviewlib("fetch", "lupus[tiab]", "--out", str(ro / "review")))
        assert "read-only" in line and str(ro / "review") in line
        line = one_line(reviewlib("fetch", "lupus[tiab]", "--out", str(tmp_path / "out"),
                                  env={"REVIEWLIB_RATE_FILE": str(ro / "rate")}))
        assert "NCBI rate file" in line and "REVIEWLIB_RATE_FILE" in line and "read-only" in line
        assert not (tmp_path / "out" / "review.sqlite").exists()     # refused before the store was made


def test_full_disk_while_writing_leaves_nothing_half_written(tmp_path, records_csv):
    with tmpfs(tmp_path / "full", size="256k") as full:
        out = full / "evidence.csv"
        out.write_text("previous,content\n")
        fill(full)
        line = one_line(reviewlib("extract", "--records", str(records_csv), "--out", str(out)))
        assert "no space left on the disk holding" in line and str(out) in line
        assert out.read_text() == "previous,content\n"               # the old file, untouched
        assert sorted(os.listdir(full)) == ["evidence.csv", "filler"]  # no temporary file left


def test_full_disk_at_store_creation_leaves_no_store(tmp_path):
    with tmpfs(tmp_path / "full", size="256k") as full:
        (full / "review").mkdir()
        fill(full)
        line = one_line(reviewlib("fetch", "lupus[tiab]", "--out", str(full / "review")))
        assert "no space left" in line or "disk is full" in line
        assert os.listdir(full / "review") == []


# -- paths that are not what they should be -----------------------------------------------
def test_output_path_that_is_a_directory(tmp_path, records_csv, decided_store):
    (tmp_path / "e.csv").mkdir()
    line = one_line(reviewlib("extract", "--records", str(records_csv), "--out", str(tmp_path / "e.csv")))
    assert f"{tmp_path / 'e.csv'}: is a directory, not a file" in line
    line = one_line(reviewlib("decisions", "export", "--store", str(decided_store), "--out", str(tmp_path)))
    assert "is a directory, not a file" in line


def test_input_path_that_is_a_directory(tmp_path, decided_store):
    line = one_line(reviewlib("extract", "--records", str(tmp_path), "--out", str(tmp_path / "e.csv")))
    assert "is a directory, not a file" in line and "not found" not in line
    line = one_line(reviewlib("decisions", "import", "--store", str(decided_store), str(tmp_path)))
    assert "is a directory, not a file" in line
    with pytest.raises(Exception, match="is a directory"):
        ReviewStore(tmp_path)


def test_gzip_and_binary_given_as_csv(tmp_path, records_csv):
    gz = tmp_path / "records-gz.csv"
    gz.write_bytes(gzip.compress(records_csv.read_bytes()))
    line = one_line(reviewlib("extract", "--records", str(gz), "--out", str(tmp_path / "e.csv")))
    assert "is a gzip-compressed file, not a text file: decompress it first (gunzip)" in line
    binary = tmp_path / "records-bin.csv"
    binary.write_bytes(bytes(range(256)) * 8)
    line = one_line(reviewlib("extract", "--records", str(binary), "--out", str(tmp_path / "e.csv")))
    assert "is a binary file, not text" in line
    assert not (tmp_path / "e.csv").exists()
    # a compressed CSV whose name says so is still read, as pandas does
    named = tmp_path / "records.csv.gz"
    named.write_bytes(gz.read_bytes())
    assert len(read_csv(named)) == 40


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-8-sig"])
def test_utf16_ris_is_decoded(tmp_path, encoding):
    source = DATA / "ris" / "embase_export.ris"
    expected = read_ris(source)
    path = tmp_path / "export.ris"
    path.write_bytes(source.read_text(encoding="utf-8-sig").encode(encoding))
    got = read_ris(path)
    assert got["title"].tolist() == expected["title"].tolist() and len(got) == len(expected)


def test_utf16_records_csv_is_decoded(tmp_path, records_csv):
    path = tmp_path / "utf16.csv"
    path.write_bytes(records_csv.read_text(encoding="utf-8").encode("utf-16"))
    assert read_csv(path)["title"].tolist() == read_csv(records_csv)["title"].tolist()


def test_ris_in_an_undecodable_encoding_names_it(tmp_path):
    path = tmp_path / "bad.ris"
    path.write_bytes(b"\xff\xfeT\x00Y\x00" + b"\x00\xd8" * 3)   # UTF-16 BOM, then a lone surrogate
    with pytest.raises(InputError, match=r"cannot decode RIS file .* as utf-16"):
        read_ris(path)


def test_full_disk_during_fetch_is_one_line_and_the_rerun_resumes(tmp_path, eutils_server):
    from eutils_server import load_articles, renumbered
    eutils_server.set_corpus(renumbered(load_articles(), 400))
    env = {"REVIEWLIB_EUTILS_URL": eutils_server.url, "REVIEWLIB_EUTILS_BACKOFF": "0.01"}
    with tmpfs(tmp_path / "small", size="2m") as small:
        proc = reviewlib("fetch", "lupus[tiab]", "--out", str(small / "review"), "--batch-size", "50",
                         "--no-progress", env=env)
        line = one_line(proc)
        assert "no space left" in line or "disk is full" in line, line
        assert not [p for p in (small / "review").rglob(".*.tmp")]    # no half-written batch
        # free space (a bigger disk): the same command resumes and finishes
        subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
        proc = reviewlib("fetch", "lupus[tiab]", "--out", str(small / "review"), "--batch-size", "50",
                         "--no-progress", env=env)
        assert proc.returncode == 0, proc.stderr
        assert len(read_csv(small / "review" / "records.csv")) == 400
