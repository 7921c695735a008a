"""Issue 15: deduplication is read back while its inputs are unchanged, and redone when one changes.

Data: the default review's synthetic snapshot and real registry snapshot (planted duplicates and
registrations merged by register ids), and the real MEDLINE + RIS records of test_dedup.py (a kept
record whose empty fields are filled from its group).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reviewlib import pipeline
from reviewlib.report import living
from reviewlib.screening import dedup, dedup_cache, registrations
from reviewlib.sources.readers import read_medline, read_ris
from reviewlib.store import ReviewStore

ROOT = Path(__file__).resolve().parent.parent


def _assert_same(a: dedup.DedupResult, b: dedup.DedupResult) -> None:
    pd.testing.assert_frame_equal(a.records, b.records, check_exact=True)
    pd.testing.assert_frame_equal(a.audit, b.audit, check_exact=True)
    pd.testing.assert_frame_equal(a.uncertain, b.uncertain, check_exact=True)
    assert (a.n_removed, a.n_input, a.threshold, a.groups) == (b.n_removed, b.n_input, b.threshold, b.groups)


def _fail_if_deduplicated(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("deduplicated again although nothing changed")
    monkeypatch.setattr(registrations, "deduplicate", fail)


@pytest.fixture
def demo_review(tmp_path):
    ctx = pipeline.open_review(str(ROOT / "notebooks" / "car-t-autoimmune.yaml"), review_dir=tmp_path / "review",
                               output_dir=tmp_path / "out", run_name="r1", offline=True)
    pipeline.search(ctx, offline=True)
    pipeline.search_registry(ctx, offline=True)
    return ctx


def test_unchanged_demo_review_reads_the_result_back_equal_to_a_fresh_deduplication(demo_review, monkeypatch):
    store = demo_review.store
    records, trials = living.run_records(store, "r1"), store.trials()
    fresh = registrations.deduplicate(records, trials, marks=dedup.current_marks(store))
    assert fresh.n_removed == 20 and len(fresh.records) > 300          # the planted duplicates, and 315 trials
    first = dedup_cache.deduplicate_cached(store, records, trials, marks=dedup.current_marks(store))
    _assert_same(first, fresh)
    assert len(list((store.folder / "cache").glob("dedup-*.json"))) == 1
    runs = store.connection.execute("SELECT COUNT(*) FROM dedup_runs").fetchone()[0]

    _fail_if_deduplicated(monkeypatch)
    reopened = ReviewStore(store.path)                   # the next run: a new connection, the same inputs
    again = dedup_cache.deduplicate_cached(reopened, living.run_records(reopened, "r1"), reopened.trials(),
                                           marks=dedup.current_marks(reopened))
    _assert_same(again, fresh)
    assert reopened.connection.execute("SELECT COUNT(*) FROM dedup_runs").fetchone()[0] == runs   # nothing saved
    assert dedup.load(reopened).removed_ids == fresh.removed_ids


def test_a_changed_record_is_deduplicated_again(demo_review):
    store = demo_review.store
    records, trials = living.run_records(store, "r1"), store.trials()
    dedup_cache.deduplicate_cached(store, records, trials)
    audit = registrations.deduplicate(records, trials).audit
    removed = audit.loc[~audit["kept"] & (audit["source"] != "ctgov"), "record_id"].iloc[0]
    changed = records.copy()
    row = changed.index[changed["record_id"] == removed][0]
    changed.at[row, "title"] = "An unrelated title about gardening tools and soil"    # no longer a duplicate
    expected = registrations.deduplicate(changed, trials)
    assert removed not in expected.removed_ids
    result = dedup_cache.deduplicate_cached(store, changed, trials)
    _assert_same(result, expected)
    assert dedup.load(store).removed_ids == expected.removed_ids          # and saved as the latest run
    assert len(list((store.folder / "cache").glob("dedup-*.json"))) == 1  # the older entry was dropped


def test_a_reviewers_mark_is_honoured_at_once(demo_review, monkeypatch):
    store = demo_review.store
    records, trials = living.run_records(store, "r1"), store.trials()
    first = dedup_cache.deduplicate_cached(store, records, trials, marks=dedup.current_marks(store))
    pair = first.audit[first.audit["source"] != "ctgov"].groupby("group_id")["record_id"].apply(list).iloc[0]
    dedup.mark_not_duplicates(store, pair[:2], "ana")
    result = dedup_cache.deduplicate_cached(store, records, trials, marks=dedup.current_marks(store))
    assert not {pair[0], pair[1]} <= set(first.records["record_id"])   # merged before the mark
    assert {pair[0], pair[1]} <= set(result.records["record_id"])      # kept apart: both are screened
    _assert_same(result, registrations.deduplicate(records, trials, marks=dedup.current_marks(store)))
    # two registrations merged by a reviewer: the registrations' part of the result (rule 'reviewer')
    ncts = [r for r in records["record_id"] if r.startswith("nct:")][:2]
    dedup.mark_duplicates(store, ncts, "ana")
    merged = dedup_cache.deduplicate_cached(store, records, trials, marks=dedup.current_marks(store))
    assert ncts[1] in merged.removed_ids and (merged.audit["source"] == "ctgov").any()
    _assert_same(merged, registrations.deduplicate(records, trials, marks=dedup.current_marks(store)))
    monkeypatch.setattr(registrations, "deduplicate", None)                 # and read back on the next run
    _assert_same(dedup_cache.deduplicate_cached(store, records, trials, marks=dedup.current_marks(store)), merged)


def test_another_saved_run_in_between_is_not_overruled_by_the_cache(demo_review):
    store = demo_review.store
    records, trials = living.run_records(store, "r1"), store.trials()
    full = dedup_cache.deduplicate_cached(store, records, trials)
    dedup.save(store, registrations.deduplicate(records.iloc[:50], trials))   # `reviewlib dedup run` on other records
    again = dedup_cache.deduplicate_cached(store, records, trials)
    _assert_same(again, full)
    assert dedup.load(store).removed_ids == full.removed_ids                 # the latest saved run is this one again


def test_filled_fields_of_merged_records_come_back(tmp_path, data_dir, monkeypatch):
    medline = read_medline(data_dir / "screening" / "medline_pubmed_result2.txt")
    ris = read_ris(data_dir / "screening" / "zotero_same_articles.ris")
    medline["journal"] = None           # the PubMed copies kept lack the journal: the RIS copies give it
    store = ReviewStore(tmp_path / "review.sqlite")
    store.add_records(pd.concat([medline, ris], ignore_index=True))
    records = store.records()
    fresh = registrations.deduplicate(records, None)
    kept = fresh.audit.loc[fresh.audit["kept"], "record_id"]
    before = records.set_index("record_id").loc[kept]
    after = fresh.records.set_index("record_id").loc[kept]
    assert len(kept) == 3 and before["journal"].isna().all() and after["journal"].notna().all()
    dedup_cache.deduplicate_cached(store, records, None)
    _fail_if_deduplicated(monkeypatch)
    _assert_same(dedup_cache.deduplicate_cached(store, records, None), fresh)


def test_the_key_follows_threshold_code_version_and_every_value(demo_review, monkeypatch):
    store = demo_review.store
    records, trials = living.run_records(store, "r1"), store.trials()
    key = dedup_cache.input_key(records, trials)
    assert dedup_cache.input_key(records.copy(), trials.copy()) == key
    assert dedup_cache.input_key(records, trials, threshold=90) != key
    assert dedup_cache.input_key(records, None) != key
    one_year = records.copy()
    one_year.at[3, "year"] = (one_year.at[3, "year"] or 2000) + 1
    assert dedup_cache.input_key(one_year, trials) != key
    one_author = records.copy()
    one_author.at[5, "authors"] = one_author.at[5, "authors"] + ["Someone X"]
    assert dedup_cache.input_key(one_author, trials) != key
    shifted = records.copy()                      # one character moved from one title to the next: other titles
    shifted.at[0, "title"], shifted.at[1, "title"] = records.at[0, "title"][:-1], records.at[0, "title"][-1:] + \
        records.at[1, "title"]
    assert dedup_cache.input_key(shifted, trials) != key
    section = records.copy()
    row = next(i for i, s in enumerate(records["abstract_sections"]) if s)
    section.at[row, "abstract_sections"] = [dict(records.at[row, "abstract_sections"][0], label="OTHER")] + \
        records.at[row, "abstract_sections"][1:]
    assert dedup_cache.input_key(section, trials) != key
    none_for_empty = records.copy()
    none_for_empty.at[0, "doi"] = "" if records.at[0, "doi"] is None else None
    assert dedup_cache.input_key(none_for_empty, trials) != key
    monkeypatch.setattr(dedup_cache, "DEDUP_CACHE_VERSION", dedup_cache.DEDUP_CACHE_VERSION + 1)
    assert dedup_cache.input_key(records, trials) != key


def _old_json_value(v):
    """dedup's per-cell encoder before it used store.json_rows (kept here as the reference)."""
    import numpy as np
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def _old_contents(records: pd.DataFrame) -> list[tuple[str, str, str]]:
    """What dedup.save stored for each record before it encoded column by column: the reference."""
    import hashlib
    import json
    cols = [c for c in records.columns if c != "record_id"]
    out = []
    for rid, *vals in records[["record_id"] + cols].itertuples(index=False):
        data = json.dumps({c: _old_json_value(v) for c, v in zip(cols, vals)}, ensure_ascii=False)
        out.append((rid, hashlib.sha256(data.encode("utf-8")).hexdigest(), data))
    return out


def test_saved_record_contents_equal_the_old_encoding(demo_review):
    import hashlib

    import numpy as np
    store = demo_review.store
    records = living.run_records(store, "r1")
    result = registrations.deduplicate(records, store.trials())
    written = result.records.copy()
    written["journal"] = written["journal"].astype(object)
    written.at[0, "journal"], written.at[1, "journal"] = np.str_("J"), float("nan")     # not plain values
    written["pub_date"] = written["pub_date"].astype(object)
    written.at[2, "pub_date"] = np.int64(2020)
    for frame in (result.records, written):
        saved = dedup.DedupResult(records=frame, audit=result.audit, n_removed=result.n_removed,
                                  n_input=result.n_input, threshold=result.threshold, groups=result.groups)
        run = dedup.save(store, saved)
        stored = dict(store.connection.execute("SELECT content_hash, data FROM record_contents").fetchall())
        # a record unchanged since it was read is referred to in records.data itself (not copied again)
        stored.update((hashlib.sha256(d.encode("utf-8")).hexdigest(), d)
                      for (d,) in store.connection.execute("SELECT data FROM records"))
        refs = store.connection.execute("SELECT record_id, data FROM dedup_records WHERE run_id=? ORDER BY position",
                                        (run,)).fetchall()
        expected = _old_contents(frame)
        assert [(r[0], r[1]) for r in refs] == [(rid, dedup.CONTENT_REF + h) for rid, h, _ in expected]
        assert all(stored[h] == data for _, h, data in expected)


def test_a_record_refreshed_in_the_store_is_deduplicated_again(demo_review, caplog):
    """Records as stored are keyed by their stored JSON's hashes (task scale5b): a search that refreshes
    one record in the store gives another key, and the result follows the new content."""
    store = demo_review.store
    records, trials = living.run_records(store, "r1"), store.trials()
    stored = store.stored_content_hashes(records)[1]
    assert all(stored)
    assert dedup_cache.input_key(records, trials, stored=stored) != dedup_cache.input_key(records, trials)
    first = dedup_cache.deduplicate_cached(store, records, trials)
    twin = first.audit.loc[~first.audit["kept"], "record_id"].iat[0]       # a removed duplicate
    row = records.index[records["record_id"] == twin][0]
    refreshed = records.loc[[row]].drop(columns="record_id")
    refreshed["title"] = ["A different study altogether, refreshed by a later search"]
    refreshed["doi"] = [None]
    store.add_records(refreshed)
    again_records = living.run_records(store, "r1")
    again_stored = store.stored_content_hashes(again_records)[1]
    assert all(again_stored) and again_stored != stored
    with caplog.at_level("INFO", logger="reviewlib.screening.dedup_cache"):
        again = dedup_cache.deduplicate_cached(store, again_records, trials)
    assert "read back" not in caplog.text
    expected = registrations.deduplicate(again_records, trials)
    pd.testing.assert_frame_equal(again.records, expected.records)
    pd.testing.assert_frame_equal(again.audit, expected.audit)
    assert twin in set(again.records["record_id"])
