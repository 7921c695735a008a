"""Issue 15: living.run_record_ids is kept in the process while the run's searches and the store's records
are unchanged; a write of records (by another store object) or another search of the run is seen."""
from __future__ import annotations

import pandas as pd

from reviewlib.records import conform
from reviewlib.report import living
from reviewlib.store import ReviewStore


def _records(pmids):
    return conform(pd.DataFrame([{"pmid": str(p), "title": f"Study {p}", "year": 2020} for p in pmids]))


def test_run_record_ids_follow_every_write(tmp_path):
    path = tmp_path / "review.sqlite"
    store = ReviewStore(path)
    first = store.add_search("snapshot", "q", status="complete")
    store.add_records(_records([1, 2, 3]), search_id=first)
    living.register_search(store, "R1", first)
    assert living.run_record_ids(store, "R1") == ["pmid:1", "pmid:2", "pmid:3"]
    got = living.run_record_ids(store, "R1")
    got.append("changed by a caller")
    assert living.run_record_ids(store, "R1") == ["pmid:1", "pmid:2", "pmid:3"]
    with ReviewStore(path) as other:                    # records written through another store object
        other.add_records(_records([4]), search_id=first)
    assert living.run_record_ids(store, "R1") == ["pmid:1", "pmid:2", "pmid:3", "pmid:4"]
    second = store.add_search("snapshot", "q2", status="complete")
    store.add_records(_records([5]), search_id=second)
    living.register_search(store, "R2", second)
    assert living.run_record_ids(store, "R2") == ["pmid:5"]
    assert living.run_record_ids(store, "R1") == ["pmid:1", "pmid:2", "pmid:3", "pmid:4"]
    assert living.run_record_ids(ReviewStore(tmp_path / "other.sqlite"), "R1") == []
    store.close()
