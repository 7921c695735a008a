"""Checked before anything runs (issue 13): fetch arguments, query brackets, NCBI_EMAIL."""
from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from reviewlib.retrieval.eutils import EutilsClient
from reviewlib.retrieval.fetch import query_warnings

ROOT = Path(__file__).resolve().parents[1]


def fetch(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "NCBI_EMAIL": "reviewer@example.org",
            "REVIEWLIB_RATE_FILE": str(tmp_path / f"rate-{uuid.uuid4().hex}"),
            "REVIEWLIB_EUTILS_URL": "http://127.0.0.1:9/entrez/eutils/"}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "reviewlib", "fetch", *args], capture_output=True, text=True,
                          timeout=120, env=base)


@pytest.mark.parametrize("args, env, words", [
    (["--mindate", "yesterday"], {}, "mindate"),
    (["--mindate", "2024", "--maxdate", "2020"], {}, "after maxdate"),
    (["--batch-size", "0"], {}, "bad batch size"),
    (["--since", "someday"], {}, "since date"),
    ([], {"REVIEWLIB_EUTILS_URL": "ftp://nowhere"}, "REVIEWLIB_EUTILS_URL"),
    ([], {"REVIEWLIB_READ_TIMEOUT": "soon"}, "REVIEWLIB_READ_TIMEOUT"),
    ([], {"REVIEWLIB_MAX_WAIT": "-1"}, "REVIEWLIB_MAX_WAIT"),
])
def test_a_refused_fetch_leaves_no_store(tmp_path, args, env, words):
    out = tmp_path / "review"
    proc = fetch(tmp_path, "lupus[tiab]", "--out", str(out), *args, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("query, expected", [
    ('("CAR-T"[tiab] OR lupus[tiab]', ["'(' at position 1 that is never closed"]),
    ('CAR-T[tiab]) AND lupus', ["')' at position 12 with no '(' before it"]),
    ('"chimeric antigen receptor[tiab] AND lupus', ["opens a quote at position 1 and never closes it"]),
    ('"a (b" AND (c OR d)', []),
    ('("CAR-T"[tiab] OR "chimeric antigen receptor"[tiab]) AND lupus[tiab]', []),
])
def test_query_bracket_and_quote_warnings_name_the_position(query, expected):
    got = query_warnings(query)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert e in g


def test_fetch_warns_about_an_unbalanced_query(tmp_path, ncbi_env, caplog):
    from reviewlib.retrieval.fetch import fetch_pubmed
    from reviewlib.store import ReviewStore
    caplog.set_level(logging.WARNING)
    with ReviewStore(tmp_path / "review.sqlite") as store:
        fetch_pubmed("(lupus[tiab]", store, progress=False)
    assert any("'(' at position 1 that is never closed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("email, warned", [("reviewer@example.org", False), ("reviewer", True),
                                           ("me@localhost", True), ("a b@example.org", True)])
def test_ncbi_email_that_is_not_an_address_is_warned_about(monkeypatch, caplog, email, warned):
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("NCBI_EMAIL", email)
    EutilsClient("http://127.0.0.1:9/")
    hits = [r.getMessage() for r in caplog.records if "is not an e-mail address" in r.getMessage()]
    assert bool(hits) is warned
    if warned:
        assert repr(email) in hits[0] and "export NCBI_EMAIL=you@example.org" in hits[0]


def test_a_refused_registry_fetch_leaves_no_store(tmp_path):
    out = tmp_path / "trials"
    proc = subprocess.run([sys.executable, "-m", "reviewlib", "registry", "--cond", "lupus", "--out", str(out),
                           "--page-size", "0"], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                               "REVIEWLIB_CTGOV_URL": "http://127.0.0.1:9/api/v2/"})
    assert proc.returncode == 2, proc.stderr
    assert "page size" in proc.stderr and "Traceback" not in proc.stderr
    assert not (out / "review.sqlite").exists()


def test_a_store_kept_when_it_already_held_data(tmp_path):
    from reviewlib.records import conform
    from reviewlib.store import ReviewStore
    import pandas as pd
    path = tmp_path / "review.sqlite"
    with pytest.raises(RuntimeError):
        with ReviewStore(path) as store:
            store.add_records(conform(pd.DataFrame([{"pmid": "1", "title": "x"}])))
            raise RuntimeError("a later step failed")
    assert path.exists() and len(ReviewStore(path).records()) == 1
    with pytest.raises(RuntimeError):
        with ReviewStore(tmp_path / "empty.sqlite"):
            raise RuntimeError("refused before anything was stored")
    assert not (tmp_path / "empty.sqlite").exists()
