"""The prioritiser's TF-IDF fitted in a process beside notebook 02 (reviewlib.screening.tfidf_beside, issue 15).

Real processes (``python -m reviewlib.screening.tfidf_beside``) on real PubMed records (Cohen 2006
antihistamines, tests/data/screening_sets): the matrix they keep is the one an in-process fit keeps, a
Prioritiser of the same records reads it instead of fitting, and a fit that fails or takes too long is
a warning, never an error of the notebook.
"""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from reviewlib.screening import prioritise, screener, tfidf, tfidf_beside
from reviewlib.store import ReviewStore

COHEN = Path(__file__).resolve().parent / "data/screening_sets/cohen2006_antihistamines/Antihistamines.csv"


@pytest.fixture(scope="module")
def records() -> pd.DataFrame:
    table = pd.read_csv(COHEN, dtype=str, keep_default_na=False).iloc[:300].copy()
    table["record_id"] = [f"r{i}" for i in range(len(table))]
    return table


def _matrix(path: Path) -> sparse.csr_matrix:
    return sparse.load_npz(path).tocsr()


def test_the_process_beside_keeps_the_matrix_an_in_process_fit_keeps(tmp_path, records):
    titles, abstracts = prioritise.titles_and_abstracts(records)
    beside = tfidf_beside.start(titles, abstracts, tmp_path / "beside", min_records=0)
    assert beside.beside
    here = prioritise.prepare_tfidf(records, tmp_path / "here")
    assert beside.wait() is True and beside.wait() is True                  # waiting again: same answer
    assert beside.path.parent == tmp_path / "beside" and beside.path.name == here.name   # same texts, same key
    a, b = _matrix(beside.path), _matrix(here)
    assert a.shape == b.shape and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data)


def test_a_prioritiser_of_the_same_records_reads_what_the_process_kept(tmp_path, records, monkeypatch):
    store = ReviewStore(tmp_path / "review.sqlite")
    monkeypatch.setattr(tfidf_beside, "BESIDE_MIN_RECORDS", 0)             # 300 records: beside anyway
    preparation = screener.prepare_prioritiser_beside(store, records)
    assert preparation.beside and preparation.wait() is True
    fits = []
    real_fit = tfidf.FastTfidfVectorizer.fit_transform
    monkeypatch.setattr(tfidf.FastTfidfVectorizer, "fit_transform",
                        lambda self, docs, y=None: fits.append(1) or real_fit(self, docs))
    cached = prioritise.Prioritiser(records, id_column="record_id", cache_dir=store.cache_dir)
    assert fits == []                                                        # read, not fitted
    fresh = prioritise.Prioritiser(records, id_column="record_id")
    assert fits == [1] and (cached.X != fresh.X).nnz == 0


def test_few_records_are_fitted_here_without_a_process(tmp_path, records, monkeypatch):
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a) or pytest.fail("no process"))
    titles, abstracts = prioritise.titles_and_abstracts(records)
    done = tfidf_beside.start(titles, abstracts, tmp_path)                  # 300 < BESIDE_MIN_RECORDS
    assert not done.beside and started == [] and done.wait() is True and done.path.is_file()


def test_a_fit_that_cannot_write_its_cache_is_a_warning_and_false(tmp_path, records, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    titles, abstracts = prioritise.titles_and_abstracts(records)
    preparation = tfidf_beside.start(titles, abstracts, blocked / "cache", min_records=0)
    with caplog.at_level(logging.WARNING, logger="reviewlib"):
        assert preparation.wait() is False
    assert not list(tmp_path.rglob("tfidf-*.npz"))


def test_a_fit_that_takes_too_long_is_stopped_with_a_warning(tmp_path, records, caplog):
    titles, abstracts = prioritise.titles_and_abstracts(records)
    preparation = tfidf_beside.start(titles, abstracts, tmp_path, min_records=0)
    with caplog.at_level(logging.WARNING, logger="reviewlib"):
        assert preparation.wait(timeout=0.01) is False                      # a Python start alone is longer
    assert "was stopped" in caplog.text
    assert preparation._process.poll() is not None                          # the process is gone
    assert not list(tmp_path.glob("tfidf-*.npz"))


def test_a_process_that_fails_says_why_in_the_warning(tmp_path, records, caplog):
    titles, abstracts = prioritise.titles_and_abstracts(records)
    preparation = tfidf_beside.start(titles, abstracts, tmp_path, "char-only", min_records=0)
    with caplog.at_level(logging.WARNING, logger="reviewlib"):
        assert preparation.wait() is False
    assert "unknown feature set 'char-only'" in caplog.text and "exit 1" in caplog.text


def test_the_module_run_without_texts_exits_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "reviewlib.screening.tfidf_beside", str(tmp_path)],
                          input=b"not a pickle stream", capture_output=True)
    assert proc.returncode == 1 and proc.stdout == b""
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "cut short" in lines[0] and "tfidf_beside.start" in lines[0]


def test_a_store_without_records_prepares_nothing(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    preparation = screener.prepare_prioritiser_beside(store, pd.DataFrame({"record_id": [], "title": []}))
    assert preparation.wait() is False and not preparation.beside


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_the_process_yields_the_core_to_the_notebook(tmp_path):
    import os
    import time
    proc = subprocess.Popen([sys.executable, "-m", "reviewlib.screening.tfidf_beside", str(tmp_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wanted, seen, deadline = os.nice(0) + tfidf_beside.BESIDE_NICE, None, time.monotonic() + 20
        while time.monotonic() < deadline and seen != wanted:
            seen = int(Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
            time.sleep(0.02)
        assert seen == min(wanted, 19)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
