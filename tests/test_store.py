"""The review store: records round-trip, append-only decisions, searches and batches."""
from __future__ import annotations

import pandas as pd
import pytest

from reviewlib.errors import ProtocolError, StoreError
from reviewlib.protocol import load_protocol
from reviewlib.records import conform, read_csv, write_csv
from reviewlib.store import ReviewStore


def _records() -> pd.DataFrame:
    return conform(pd.DataFrame([
        {"pmid": "1", "title": "CD19 CAR T cells in lupus", "abstract": "Five patients.", "year": 2022,
         "authors": ["Mackensen A", "Schett G"], "abstract_sections": [{"label": "RESULTS", "text": "x"}],
         "publication_types": ["Journal Article"], "language": ["eng"], "source": "pubmed"},
        {"pmid": None, "doi": "10.1/ABC", "title": "No PMID record", "year": None, "source": "ris"},
    ]))


def test_records_round_trip_through_store(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    sid = store.add_search("pubmed", "car t AND lupus", count=2)
    store.add_records(_records(), search_id=sid)
    back = store.records()
    assert list(back["record_id"]) == ["pmid:1", "doi:10.1/abc"]
    pd.testing.assert_frame_equal(back.drop(columns="record_id"), _records())
    # reopening gives the same table
    store.close()
    again = ReviewStore(tmp_path / "review.sqlite").records()
    pd.testing.assert_frame_equal(again.drop(columns="record_id"), _records())


def test_readding_a_record_updates_it_and_keeps_sources(tmp_path):
    store = ReviewStore(tmp_path / "r.sqlite")
    a = store.add_search("pubmed", "q1")
    b = store.add_search("ris:embase.ris")
    store.add_records(_records().iloc[:1], search_id=a)
    changed = _records().iloc[:1].copy()
    changed["title"] = "Corrected title"
    store.add_records(changed, search_id=b)
    assert store.records()["title"].tolist() == ["Corrected title"]
    assert sorted(store.record_sources()["source"]) == ["pubmed", "ris:embase.ris"]
    assert store.records(search_id=b)["pmid"].tolist() == ["1"]


def test_decisions_are_appended_never_overwritten(tmp_path):
    store = ReviewStore(tmp_path / "r.sqlite")
    store.append_decision("pmid:1", "ana", "title-abstract", "include")
    store.append_decision("pmid:1", "ana", "title-abstract", "exclude", reason="wrong population")
    hist = store.decisions()
    assert hist["decision"].tolist() == ["include", "exclude"]
    assert hist["reason"].tolist()[1] == "wrong population"


def test_search_fields_json_and_unknown_field(tmp_path):
    store = ReviewStore(tmp_path / "r.sqlite")
    sid = store.add_search("pubmed", "q", warnings=["PhraseNotFound: foo"], slices=[{"mindate": "2020"}])
    store.update_search(sid, status="complete", count=3)
    row = store.searches().iloc[0]
    assert row["warnings"] == ["PhraseNotFound: foo"] and row["status"] == "complete"
    assert row["completed_at"]
    with pytest.raises(TypeError):
        store.update_search(sid, colour="red")


def test_store_on_a_file_that_is_not_sqlite(tmp_path):
    bad = tmp_path / "review.sqlite"
    bad.write_text("this is not a database" * 100)
    with pytest.raises(StoreError, match="not a reviewlib store|cannot open"):
        ReviewStore(bad)


def test_csv_round_trip_keeps_lists(tmp_path):
    path = write_csv(_records(), tmp_path / "out" / "records.csv")
    text = path.read_text()
    assert "Mackensen A; Schett G" in text
    back = read_csv(path)
    assert back.loc[0, "authors"] == ["Mackensen A", "Schett G"]
    assert back.loc[0, "abstract_sections"] == [{"label": "RESULTS", "text": "x"}]
    assert back.loc[0, "year"] == 2022 and pd.isna(back.loc[1, "year"])


def test_default_protocol_loads_and_bad_protocol_is_one_clear_error(tmp_path):
    protocol = load_protocol()
    assert protocol.name == "car-t-autoimmune" and "chimeric antigen receptor" in protocol.query
    assert protocol.synthetic
    bad = tmp_path / "bad.yaml"
    bad.write_text("review: {name: x}\nsearch: [unclosed\n")
    with pytest.raises(ProtocolError, match="not valid YAML"):
        load_protocol(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("review: {name: ok}\nsearch: {}\n")
    with pytest.raises(ProtocolError, match="search.query is missing"):
        load_protocol(empty)
