"""Issue 15: ReviewStore.add_records encodes column by column, and stores exactly what it stored before.

Data: the default review's synthetic snapshot and real registry snapshot, the real MEDLINE and RIS
records of tests/data/screening, and a written frame holding numpy scalars, NaN and pandas' NA.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reviewlib import read_pubmed_xml
from reviewlib.protocol import PACKAGE_DATA
from reviewlib.records import COLUMNS, conform
from reviewlib.sources.ctgov import read_ctgov, registry_records
from reviewlib.sources.readers import read_medline, read_ris
from reviewlib.store import ReviewStore, _jsonable, record_id_for


def _old_rows(frame: pd.DataFrame) -> list[tuple]:
    """What add_records wrote before (to_dict, _jsonable per cell, json.dumps): the reference."""
    frame = conform(frame)
    ncts = list(frame["nct_id"]) if "nct_id" in frame else [None] * len(frame)
    out = []
    for rec, nct in zip(frame[COLUMNS].to_dict("records"), ncts):
        rec = {k: _jsonable(v) for k, v in rec.items()}
        out.append((record_id_for({**rec, "nct_id": nct}), rec.get("pmid"), rec.get("doi"),
                    json.dumps(rec, ensure_ascii=False)))
    return out


def _frames(data_dir):
    yield "demo snapshot", read_pubmed_xml(PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz")
    yield "registry", registry_records(read_ctgov(PACKAGE_DATA / "car-t-autoimmune-registry-2026-08-22.json.gz"))
    yield "medline", read_medline(data_dir / "screening" / "medline_pubmed_result2.txt")
    yield "ris", read_ris(data_dir / "screening" / "zotero_same_articles.ris")
    written = conform(pd.DataFrame({"pmid": ["1", "2", None], "doi": [None, "10.1/x", "10.1/y"],
                                    "title": ["Caf\u00e9 \u201cquoted\u201d", "x", "y"],
                                    "year": [2020, None, 1999]}))
    written["keywords"] = pd.Series([["a"], [], ["\u00b5g"]], dtype=object)
    written["journal"] = pd.Series([np.str_("J"), float("nan"), pd.NA], dtype=object)   # not plain: _jsonable
    written["pub_date"] = pd.Series([np.int64(2020), None, np.float64(1.5)], dtype=object)
    yield "written", written


def test_stored_rows_equal_the_old_encoding(tmp_path, data_dir):
    store = ReviewStore(tmp_path / "review.sqlite")
    for name, frame in _frames(data_dir):
        expected = _old_rows(frame)
        assert expected, name
        store.add_records(frame)
        got = {r[0]: (r[0], r[1], r[2], r[3]) for r in store.connection.execute(
            "SELECT record_id, pmid, doi, data FROM records")}
        for row in expected:
            assert got[row[0]] == row, (name, row[0])


def test_written_frame_values_are_made_plain(tmp_path, data_dir):
    store = ReviewStore(tmp_path / "review.sqlite")
    store.add_records(dict(_frames(data_dir))["written"])
    data = {r[0]: json.loads(r[1]) for r in store.connection.execute("SELECT record_id, data FROM records")}
    assert data["pmid:1"]["journal"] == "J" and data["pmid:1"]["pub_date"] == 2020
    assert data["pmid:2"]["journal"] is None and data["pmid:2"]["year"] is None
    assert data["doi:10.1/y"]["pub_date"] == pytest.approx(1.5) and data["doi:10.1/y"]["keywords"] == ["\u00b5g"]
