"""The store grows only by what is new (issue 15): an unchanged rerun adds no record copies.

Before the fix, every run's ``dedup.save`` stored another full JSON copy of every record
(``dedup_records``): an unchanged rerun of a 10k review grew the store by 47%.
"""
from __future__ import annotations

import json

import pandas as pd

from reviewlib.protocol import load_protocol
from reviewlib.report import living
from reviewlib.retrieval import fetch
from reviewlib.screening import dedup, eligibility, rule_cache
from reviewlib.store import ReviewStore


def _row_counts(store: ReviewStore) -> dict[str, int]:
    tables = [r[0] for r in store.connection.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                                     "AND name NOT LIKE 'sqlite_%'")]
    return {t: store.connection.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


def _stored_bytes(store: ReviewStore) -> int:
    """Bytes of the database file and its WAL after a checkpoint."""
    store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = store.connection.execute("PRAGMA page_size").fetchone()[0]
    pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
    free = store.connection.execute("PRAGMA freelist_count").fetchone()[0]
    return (pages - free) * page_size


def _screening_steps(store: ReviewStore, protocol, run_name: str) -> None:
    """What notebooks 01 and 02 store on every run: the snapshot, dedup, the rules' decisions."""
    result = fetch.run_search(protocol, store, offline=True)
    living.register_search(store, run_name, result.search_id)
    records = living.run_records(store, run_name)
    deduped = dedup.deduplicate(records)
    dedup.save(store, deduped)
    rules = eligibility.load_rules(protocol)
    proposed = rule_cache.apply_rules_cached(store, deduped.records, rules)
    eligibility.save_rule_decisions(store, proposed, rules)


def test_unchanged_rerun_adds_no_record_copies(tmp_path):
    protocol = load_protocol("car-t-autoimmune")
    store = ReviewStore(tmp_path / "review.sqlite")
    _screening_steps(store, protocol, "run-1")
    counts, size = _row_counts(store), _stored_bytes(store)
    # the unique records are the store's records as read: their JSON is records.data, not copied again
    # (before task scale5b each was copied into record_contents: the store held every record twice)
    stored = {r[0] for r in store.connection.execute("SELECT data FROM records")}
    copies = [r[0] for r in store.connection.execute("SELECT data FROM record_contents")]
    assert not stored & set(copies)
    assert counts["record_contents"] <= dedup.load(store).groups        # at most the kept records filled in
    _screening_steps(store, protocol, "run-2")
    again = _row_counts(store)
    assert again.pop("living_runs") == counts.pop("living_runs") + 1     # the run is noted, nothing else
    assert again == counts
    assert _stored_bytes(store) - size <= 4 * 4096                      # a page or so, no record copies


def test_changed_result_stores_only_the_new_records_content(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    protocol = load_protocol("car-t-autoimmune")
    result = fetch.run_search(protocol, store, offline=True)
    frame = store.records(search_id=result.search_id)
    first = dedup.deduplicate(frame)
    run1 = dedup.save(store, first)
    n_contents = _row_counts(store)["record_contents"]
    changed = frame.copy()
    changed.loc[0, "title"] = changed.loc[0, "title"] + " (erratum)"
    second = dedup.deduplicate(changed)
    run2 = dedup.save(store, second)
    assert run2 == run1 + 1
    assert _row_counts(store)["record_contents"] == n_contents + 1      # only the changed record is new
    back = dedup.load(store)
    assert back.records.loc[0, "title"].endswith("(erratum)")
    pd.testing.assert_frame_equal(back.records.drop(columns="record_id"),
                                  second.records.drop(columns="record_id").reset_index(drop=True),
                                  check_dtype=False)


def test_run_saved_before_content_addressing_still_loads(tmp_path):
    """A store written by the old dedup.save (the record's JSON inline in dedup_records) reads back."""
    store = ReviewStore(tmp_path / "review.sqlite")
    protocol = load_protocol("car-t-autoimmune")
    result = fetch.run_search(protocol, store, offline=True)
    deduped = dedup.deduplicate(store.records(search_id=result.search_id))
    run_id = dedup.save(store, deduped)
    with store.transaction() as con:   # rewrite the run as the old code stored it
        for rid, data in con.execute("SELECT d.record_id, COALESCE(c.data, r.data) FROM dedup_records d "
                                     "LEFT JOIN record_contents c ON d.data = 'sha256:' || c.content_hash "
                                     "JOIN records r USING(record_id) WHERE run_id=?", (run_id,)).fetchall():
            con.execute("UPDATE dedup_records SET data=? WHERE run_id=? AND record_id=?", (data, run_id, rid))
        con.execute("DELETE FROM record_contents")
        con.execute("DELETE FROM dedup_digests")
    back = dedup.load(store)
    assert back.records["record_id"].tolist() == deduped.records["record_id"].tolist()
    assert back.records["title"].tolist() == deduped.records["title"].tolist()
    assert json.loads(store.connection.execute("SELECT data FROM dedup_records LIMIT 1").fetchone()[0])


def test_rules_are_not_redone_for_unchanged_records(tmp_path, caplog):
    protocol = load_protocol("car-t-autoimmune")
    store = ReviewStore(tmp_path / "review.sqlite")
    result = fetch.run_search(protocol, store, offline=True)
    deduped = dedup.deduplicate(store.records(search_id=result.search_id))
    dedup.save(store, deduped)
    rules = eligibility.load_rules(protocol)
    expected = eligibility.apply_rules(deduped.records, rules)
    first = rule_cache.apply_rules_cached(store, deduped.records, rules)
    pd.testing.assert_frame_equal(first, expected)
    with caplog.at_level("INFO", logger="reviewlib.screening.rule_cache"):
        again = rule_cache.apply_rules_cached(store, deduped.records, rules)
    pd.testing.assert_frame_equal(again, expected)
    assert "0 records evaluated, 398 unchanged read back" in caplog.text
    # one record changes: only it is evaluated again, and the outcome follows the change
    changed = deduped.records.copy()
    row = int(expected.index[expected["decision"] == "include"][0])
    changed.loc[row, "publication_types"] = [["Review"]]
    changed_result = dedup.DedupResult(records=changed, audit=deduped.audit, n_removed=deduped.n_removed,
                                       n_input=deduped.n_input)
    dedup.save(store, changed_result)
    caplog.clear()
    with caplog.at_level("INFO", logger="reviewlib.screening.rule_cache"):
        third = rule_cache.apply_rules_cached(store, changed, rules)
    assert "1 records evaluated, 397 unchanged read back" in caplog.text
    pd.testing.assert_frame_equal(third, eligibility.apply_rules(changed, rules))
    assert third.loc[row, "decision"] == "exclude"
