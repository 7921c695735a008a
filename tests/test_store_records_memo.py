"""Issue 15: ReviewStore.records() decodes the records once while none is written; any write of
records (through this store object or another one on the same file) makes it read them again."""
from __future__ import annotations

import pandas as pd

from reviewlib.records import conform
from reviewlib.store import ReviewStore


def _frame(pmids, title="A trial"):
    return conform(pd.DataFrame([{"pmid": str(p), "title": f"{title} {p}", "abstract": "Text.", "year": 2020,
                                  "authors": ["Doe J"]} for p in pmids]))


def _counting(store, monkeypatch):
    reads = []
    real = store._read_records
    monkeypatch.setattr(store, "_read_records", lambda sid, *rest: reads.append(sid) or real(sid, *rest))
    return reads


def test_records_read_once_until_records_are_written(tmp_path, monkeypatch):
    store = ReviewStore(tmp_path / "review.sqlite")
    sid = store.add_search("pubmed", "q", count=3, status="complete")
    store.add_records(_frame([1, 2, 3]), search_id=sid)
    reads = _counting(store, monkeypatch)
    first = store.records()
    again = store.records()
    pd.testing.assert_frame_equal(first, again)
    assert reads == [None]
    # a caller changing its copy changes nothing for the next one
    first.loc[0, "title"] = "changed"
    first["abstract"] = None
    pd.testing.assert_frame_equal(store.records(), again)
    assert len(store.records(search_id=sid)) == 3 and reads == [None]    # the same records: not read again
    # decisions and meta are not records: still no new read
    store.append_decision("pmid:1", "ana", "title-abstract", "include")
    store.set_meta("something", "else")
    store.records()
    assert reads == [None]
    # a write of records: read again, and the new record is there
    store.add_records(_frame([4]), search_id=sid)
    assert list(store.records()["record_id"]) == ["pmid:1", "pmid:2", "pmid:3", "pmid:4"]
    assert len(store.records(search_id=sid)) == 4 and reads == [None, None]
    # a record updated in place (same PMID, new title) is read again too
    store.add_records(_frame([2], title="Corrected"))
    assert store.records().set_index("record_id").loc["pmid:2", "title"] == "Corrected 2"


def test_a_write_by_another_store_object_on_the_same_file_is_seen(tmp_path):
    path = tmp_path / "review.sqlite"
    store = ReviewStore(path)
    store.add_records(_frame([1, 2]))
    assert len(store.records()) == 2
    other = ReviewStore(path)
    other.add_records(_frame([3]))
    other.close()
    assert list(store.records()["record_id"]) == ["pmid:1", "pmid:2", "pmid:3"]


def test_an_empty_store_reads_an_empty_table(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    assert store.records().empty and list(store.records().columns)[0] == "record_id"
    store.add_records(_frame([1]))
    assert len(store.records()) == 1


def test_a_search_that_found_every_record_gives_the_whole_table_once(tmp_path, monkeypatch):
    store = ReviewStore(tmp_path / "review.sqlite")
    sid = store.add_search("pubmed", "q", count=3, status="complete")
    store.add_records(_frame([1, 2, 3]), search_id=sid)
    reads = _counting(store, monkeypatch)
    by_search = store.records(search_id=sid)
    everything = store.records()
    pd.testing.assert_frame_equal(by_search, everything)
    assert reads == [sid]                                    # the same records: read once
    store.add_records(_frame([4]))                           # a record no search found
    assert len(store.records(search_id=sid)) == 3 and len(store.records()) == 4
    assert reads == [sid, sid, None]
    pd.testing.assert_frame_equal(store.records(), store._read_records(None))


def test_a_new_store_object_on_the_same_file_reads_the_table_read_before(tmp_path, monkeypatch):
    """Each notebook of a run opens the store anew in the one kernel: the records are decoded once."""
    path = tmp_path / "review.sqlite"
    store = ReviewStore(path)
    store.add_records(_frame([1, 2]))
    first = store.records()
    store.close()
    again = ReviewStore(path)
    reads = _counting(again, monkeypatch)
    pd.testing.assert_frame_equal(again.records(), first)
    assert reads == []
    writer = ReviewStore(path)                  # a write through a third object: read again, by each
    writer.add_records(_frame([3]))
    assert list(again.records()["record_id"]) == ["pmid:1", "pmid:2", "pmid:3"] and reads == [None]
    other = ReviewStore(tmp_path / "other.sqlite")       # another file has its own records
    other.add_records(_frame([7]))
    assert list(other.records()["record_id"]) == ["pmid:7"]
    assert list(again.records()["record_id"]) == ["pmid:1", "pmid:2", "pmid:3"] and reads == [None, None]
