"""Living review: which records make up a run, and what changed between two runs.

Real SQLite stores and real run folders on disk; the full-pipeline rerun is in test_pipeline.py.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from reviewlib.report import living
from reviewlib.screening import decisions
from reviewlib.store import ReviewStore


def _records(pmids):
    return pd.DataFrame({"pmid": [str(p) for p in pmids], "title": [f"CAR-T study {p}" for p in pmids]})


def _search(store, pmids, source="pubmed"):
    sid = store.add_search(source, "car-t", count=len(pmids), status="complete")
    store.add_records(_records(pmids), search_id=sid)
    return sid


@pytest.fixture
def store(tmp_path):
    with ReviewStore(tmp_path / "review" / "review.sqlite") as s:
        yield s


def test_full_search_is_the_run_record_set(store):
    old = _search(store, [1, 2, 3])
    living.register_search(store, "run-a", old)
    new = _search(store, [2, 3, 4])
    living.register_search(store, "run-b", new)
    assert sorted(living.run_records(store, "run-a")["pmid"]) == ["1", "2", "3"]
    assert sorted(living.run_records(store, "run-b")["pmid"]) == ["2", "3", "4"]


def test_incremental_search_adds_to_the_last_full_search(store):
    full = _search(store, [1, 2, 3])
    living.register_search(store, "run-a", full)
    inc = _search(store, [4, 5])
    living.register_search(store, "run-b", inc, since="2026/01/01")
    assert living.run_search_ids(store, "run-b") == [full, inc]
    assert sorted(living.run_records(store, "run-b")["pmid"]) == ["1", "2", "3", "4", "5"]
    # a later full search starts the chain again
    full2 = _search(store, [2, 5])
    living.register_search(store, "run-c", full2)
    assert living.run_search_ids(store, "run-c") == [full2]


def test_unregistered_run_falls_back_to_the_latest_complete_search(store):
    _search(store, [1])
    latest = _search(store, [7, 8])
    assert living.run_search_ids(store, "interactive") == [latest]


def test_compare_reports_new_gone_and_dropped_included():
    before = living.RunSets(matched=["1", "2", "3", "10"], included=["2", "3"])
    after = living.RunSets(matched=["2", "4", "10"], included=["2", "10"])
    changes = living.compare(before, after, previous_run="20260101T000000Z")
    assert changes.new == ["4"]
    assert changes.gone == ["1", "3"]
    assert changes.dropped_included == ["3"]
    assert changes.newly_included == ["10"]
    assert changes.alarming
    assert "3" in changes.warning() and "20260101T000000Z" in changes.warning()


def test_pmids_sort_numerically_not_as_text():
    changes = living.compare(living.RunSets(matched=[]), living.RunSets(matched=["10", "9", "100"]), previous_run="x")
    assert changes.new == ["9", "10", "100"]


def test_incremental_run_cannot_see_records_that_stopped_matching():
    changes = living.compare(living.RunSets(matched=["1", "2"]), living.RunSets(matched=["2", "3"]),
                             previous_run="x", incremental=True)
    assert changes.gone == [] and changes.new == ["3"]


def test_first_run_has_nothing_to_compare():
    changes = living.compare(None, living.RunSets(matched=["1"], included=["1"]))
    assert changes.first_run and not changes.alarming and changes.warning() is None
    assert changes.to_dict()["first_run"] is True


def test_digest_ignores_order_and_duplicates():
    assert living.RunSets.digest(["2", "1", "1"]) == living.RunSets.digest(["1", "2"])
    assert living.RunSets.digest(["1"]) != living.RunSets.digest(["1", "2"])


def _run_folder(root, name, started, status="complete", sets=None):
    folder = root / name
    folder.mkdir(parents=True)
    living.write_json(folder / "manifest.json", {"status": status, "started_at": started, "run_id": name})
    if sets is not None:
        living.save_sets(folder, sets)
    return folder


def test_previous_run_skips_failed_runs_and_the_current_one(tmp_path):
    _run_folder(tmp_path, "a", "2026-01-01T00:00:00+00:00", sets=living.RunSets(matched=["1"]))
    _run_folder(tmp_path, "b", "2026-02-01T00:00:00+00:00", status="failed")
    _run_folder(tmp_path, "c", "2026-03-01T00:00:00+00:00", sets=living.RunSets(matched=["1", "2"]))
    (tmp_path / "latest").symlink_to("c")
    assert living.previous_run(tmp_path)[0].name == "c"
    assert living.previous_run(tmp_path, exclude="c")[0].name == "a"
    assert living.load_sets(tmp_path / "c").matched == ["1", "2"]
    assert living.load_sets(tmp_path / "b") is None


def test_compare_with_previous_reads_the_store_and_the_previous_pmids(tmp_path, store):
    results = tmp_path / "results" / "car-t"
    _run_folder(results, "old", "2026-01-01T00:00:00+00:00",
                sets=living.RunSets(matched=["1", "2", "3"], included=[]))
    sid = _search(store, [2, 3, 4])
    living.register_search(store, "new", sid)
    changes = living.compare_with_previous(results, store, "new")
    assert (changes.previous_run, changes.new, changes.gone) == ("old", ["4"], ["1"])


def test_since_date_is_the_previous_run_day():
    assert living.since_date({"started_at": "2026-11-25T00:40:53+00:00"}) == "2026/11/25"


def test_write_json_leaves_no_temp_file_and_is_readable(tmp_path):
    path = living.write_json(tmp_path / "m.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


# -- the final include set: full text once a full-text stage exists ---------------------
def _decide(store, pmids, decision, stage, reason=None, reviewer="alice"):
    from reviewlib.screening.decisions import record_decision
    for p in pmids:
        record_decision(store, f"pmid:{p}", reviewer, decision, stage=stage, reason=reason)


def test_final_include_set_is_title_abstract_until_full_text_decisions_exist(store):
    sid = _search(store, [1, 2, 3, 4, 5])
    living.register_search(store, "run-a", sid)
    _decide(store, [1, 2, 3, 4], "include", "title-abstract")
    _decide(store, [5], "exclude", "title-abstract", reason="preclinical")
    ids = set(living.run_records(store, "run-a")["record_id"])
    assert decisions.final_stage(store, ids) == "title-abstract"
    assert living.run_included(store, "run-a") == ["pmid:1", "pmid:2", "pmid:3", "pmid:4"]
    # the first full-text decision switches the run to its full-text includes (not yet assessed: not included)
    _decide(store, [1, 2], "include", "full-text")
    _decide(store, [3], "exclude", "full-text", reason="publication-type")
    assert decisions.final_stage(store, ids) == "full-text"
    assert living.run_included(store, "run-a") == ["pmid:1", "pmid:2"]
    assert list(living.run_included_records(store, "run-a")["pmid"]) == ["1", "2"]
    assert living.current_sets(store, "run-a").included == ["1", "2"]
    # one stage asked for explicitly
    assert living.run_included(store, "run-a", stage="title-abstract") == ["pmid:1", "pmid:2", "pmid:3", "pmid:4"]


def test_full_text_include_of_a_title_abstract_exclusion_is_not_included(store):
    sid = _search(store, [1, 2])
    living.register_search(store, "run-a", sid)
    _decide(store, [1], "include", "title-abstract")
    _decide(store, [2], "exclude", "title-abstract", reason="preclinical")
    _decide(store, [1, 2], "include", "full-text")
    assert decisions.final_included_ids(store) == ["pmid:1"]
    assessment = living.run_full_text_assessment(store, "run-a")
    assert (assessment.sought, assessment.assessed, assessment.included) == (1, 1, 1)


def test_full_text_decisions_of_another_run_do_not_switch_this_run(store):
    old = _search(store, [1, 2])
    living.register_search(store, "run-a", old)
    new = _search(store, [3, 4])
    living.register_search(store, "run-b", new)
    _decide(store, [1, 2, 3, 4], "include", "title-abstract")
    _decide(store, [1], "exclude", "full-text", reason="no-data")
    assert decisions.final_stage(store, living.run_records(store, "run-b")["record_id"]) == "title-abstract"
    assert living.run_included(store, "run-b") == ["pmid:3", "pmid:4"]
    assert living.run_included(store, "run-a") == []
    assert decisions.final_stage(store) == "full-text"


def test_undone_full_text_decision_returns_the_run_to_title_abstract(store):
    from reviewlib.screening.decisions import undo_last
    sid = _search(store, [1, 2])
    living.register_search(store, "run-a", sid)
    _decide(store, [1, 2], "include", "title-abstract")
    _decide(store, [2], "exclude", "full-text", reason="no-data")
    assert living.run_included(store, "run-a") == []
    undo_last(store, "alice", stage="full-text")
    assert living.run_included(store, "run-a") == ["pmid:1", "pmid:2"]


def test_full_text_assessment_counts_reasons_and_undecided(store):
    sid = _search(store, [1, 2, 3, 4, 5, 6])
    living.register_search(store, "run-a", sid)
    _decide(store, [1, 2, 3, 4, 5, 6], "include", "title-abstract")
    _decide(store, [1], "include", "full-text")
    _decide(store, [2, 3], "exclude", "full-text", reason="publication-type")
    _decide(store, [4], "exclude", "full-text", reason="preclinical")
    _decide(store, [5], "maybe", "full-text")
    a = living.run_full_text_assessment(store, "run-a")
    assert (a.stage, a.sought, a.assessed, a.included, a.excluded, a.undecided) == ("full-text", 6, 5, 1, 3, 1)
    assert a.reasons == {"publication-type": 2, "preclinical": 1}
    assert list(a.reasons) == ["publication-type", "preclinical"]
    assert a.excluded_reports == {"pmid:2": "publication-type", "pmid:3": "publication-type",
                                  "pmid:4": "preclinical"}
    assert a.to_dict()["reasons"] == a.reasons
    # the PRISMA diagram counts the same stage the same way
    from reviewlib.report import prisma
    c = prisma.counts(store, search_ids=[sid])
    assert (c.sought, c.assessed, c.excluded_full_text, c.included) == (a.sought, a.assessed, a.excluded, a.included)
    assert c.excluded_full_text_reasons == a.reasons
    assert len(living.run_included(store, "run-a")) == c.included


def test_no_full_text_stage_counts_nothing_assessed(store):
    sid = _search(store, [1, 2])
    living.register_search(store, "run-a", sid)
    _decide(store, [1], "include", "title-abstract")
    a = living.run_full_text_assessment(store, "run-a")
    assert (a.stage, a.sought, a.assessed, a.excluded, a.reasons) == ("title-abstract", 1, 0, 0, {})


def test_prisma_counts_of_a_run_count_only_its_own_searches(store):
    # the store keeps an earlier, broader search's records; the run after a query change must not count them
    living.register_search(store, "run-a", _search(store, [1, 2, 3, 4, 5]))
    living.register_search(store, "run-b", _search(store, [2, 3]))
    assert living.run_prisma_counts(store, "run-a").identified_total == 5
    counts_b = living.run_prisma_counts(store, "run-b")
    assert counts_b.identified_total == 2 and counts_b.screened == 2


def test_explain_dropped_says_why_each_included_study_dropped_out(tmp_path):
    """The cause comes from the store: the decision that stands now, or the query no longer matching."""
    from reviewlib.records import conform
    store = ReviewStore(tmp_path / "review.sqlite")
    sid = store.add_search("pubmed", "q")
    store.add_records(conform(pd.DataFrame({"pmid": ["1", "2", "3", "4"], "title": list("abcd")})), search_id=sid)
    decisions.record_decision(store, "pmid:1", "ana", "exclude", reason="wrong-population")
    decisions.record_decision(store, "pmid:2", "ana", "include")
    decisions.record_decision(store, "pmid:2", "ben", "exclude", reason="no-data")
    decisions.record_decision(store, "pmid:3", "ana", "include")
    decisions.record_decision(store, "pmid:3", "ana", "include", stage="full-text")
    decisions.undo_last(store, "ana", stage="full-text")
    decisions.undo_last(store, "ana")
    changes = living.Changes(previous_run="r1", gone=["4"], dropped_included=["1", "2", "3", "4"])
    causes = living.explain_dropped(changes, store).dropped_causes
    assert causes["1"] == "excluded at title-abstract (wrong-population) by ana"
    assert causes["2"].startswith("the reviewers disagree at title-abstract (ana, ben)")
    assert causes["3"] == "no decision includes it any more (a decision was undone)"
    assert causes["4"].startswith("no longer matched by the query")
    assert "cause of each is listed" in changes.warning()
    store.close()
