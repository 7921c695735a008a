"""dedup.save refers to records unchanged since they were read instead of storing them again (issue 15,
task scale5b), and a saved run still reads back as it was saved after a later search replaces (or
something deletes) the stored records it referred to."""
from __future__ import annotations

import hashlib

import pandas as pd

from reviewlib.protocol import load_protocol
from reviewlib.retrieval import fetch
from reviewlib.screening import dedup
from reviewlib.store import ReviewStore


def _demo(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    result = fetch.run_search(load_protocol("car-t-autoimmune"), store, offline=True)
    return store, store.records(search_id=result.search_id)


def _count(store, table):
    return store.connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_stored_content_hashes_are_those_of_rows_as_read(tmp_path):
    store, frame = _demo(tmp_path)
    version, hashes = store.stored_content_hashes(frame)
    stored = dict(store.connection.execute("SELECT record_id, data FROM records"))
    assert version is not None and all(hashes)
    assert hashes == [hashlib.sha256(stored[r].encode()).hexdigest() for r in frame["record_id"]]
    changed = frame.copy()
    changed.loc[3, "title"] = changed.loc[3, "title"] + " "                 # one value changed
    changed.at[5, "authors"] = list(changed.at[5, "authors"])               # equal, but not the value read
    _, after = store.stored_content_hashes(changed)
    assert after[3] is None and after[5] is None and sum(h is None for h in after) == 2
    assert store.stored_content_hashes(frame.iloc[::-1].reset_index(drop=True))[1] == hashes[::-1]
    assert not any(store.stored_content_hashes(frame.assign(extra=1))[1])      # not the stored columns
    store.add_records(frame.iloc[:1])                                       # any write: a new version
    new_version, again = store.stored_content_hashes(frame)
    assert new_version != version and not any(again)


def test_a_later_search_replacing_records_leaves_the_saved_run_as_saved(tmp_path):
    store, frame = _demo(tmp_path)
    first = dedup.deduplicate(frame)
    dedup.save(store, first)
    assert _count(store, "record_contents") <= first.groups                 # no copy of unchanged records
    # a later search refreshes two records the run refers to, and one is deleted outright
    refreshed = frame.iloc[[0, 1]].copy()
    refreshed["title"] = ["Refreshed title one", "Refreshed title two"]
    store.add_records(refreshed)
    with store.transaction() as con:
        con.execute("DELETE FROM record_sources WHERE record_id=?", (frame["record_id"].iat[2],))
        con.execute("DELETE FROM records WHERE record_id=?", (frame["record_id"].iat[2],))
    assert store.records().set_index("record_id").loc[frame["record_id"].iat[0], "title"] == "Refreshed title one"
    back = dedup.load(store)
    pd.testing.assert_frame_equal(back.records, first.records, check_dtype=False)
    pd.testing.assert_frame_equal(back.audit, first.audit, check_dtype=False)
    # refreshing again keeps the first version (the one the run saved), not the intermediate one
    refreshed["title"] = ["Third title one", "Third title two"]
    store.add_records(refreshed)
    pd.testing.assert_frame_equal(dedup.load(store).records, first.records, check_dtype=False)


def test_a_run_saved_on_the_refreshed_records_reads_back_the_new_content(tmp_path):
    store, frame = _demo(tmp_path)
    dedup.save(store, dedup.deduplicate(frame))
    refreshed = frame.iloc[[0]].copy()
    refreshed["title"] = ["Refreshed title"]
    store.add_records(refreshed)
    second = dedup.deduplicate(store.records())
    dedup.save(store, second)
    back = dedup.load(store)
    assert back.records["title"].iat[0] == "Refreshed title"
    pd.testing.assert_frame_equal(back.records, second.records, check_dtype=False)


def test_records_written_between_the_comparison_and_the_save_are_stored_whole(tmp_path, monkeypatch):
    store, frame = _demo(tmp_path)
    result = dedup.deduplicate(frame)
    real = store.stored_content_hashes

    def compare_then_write(records):
        answer = real(records)
        other = ReviewStore(store.path)                 # another process writes records meanwhile
        changed = frame.iloc[[0]].copy()
        changed["title"] = ["Changed meanwhile"]
        other.add_records(changed)
        other.close()
        return answer
    monkeypatch.setattr(store, "stored_content_hashes", compare_then_write)
    dedup.save(store, result)
    assert _count(store, "record_contents") == len(result.records)     # every row's JSON kept with the run
    pd.testing.assert_frame_equal(dedup.load(store).records, result.records, check_dtype=False)
