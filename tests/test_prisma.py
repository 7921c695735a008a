"""PRISMA 2020 counts from a real SQLite review store, and the flow diagram drawn from them."""
from __future__ import annotations

import pandas as pd
import pytest

from reviewlib.report import prisma
from reviewlib.errors import ReviewlibError
from reviewlib.report.prisma import PrismaCountError, PrismaCounts
from reviewlib.records import conform
from reviewlib.store import ReviewStore


def _recs(pmids, source="pubmed"):
    return conform(pd.DataFrame([{"pmid": str(p), "title": f"Record {p}", "year": 2023, "source": source}
                                 for p in pmids]))


@pytest.fixture
def two_source_store(tmp_path):
    """A store with a PubMed snapshot search (10 records) and an RIS import (4 records, 2 already found)."""
    store = ReviewStore(tmp_path / "review.sqlite")
    snap = store.add_search("snapshot", "car t AND lupus", count=10)
    store.add_records(_recs(range(1, 11)), search_id=snap)
    ris = store.add_search("ris:embase.ris")
    store.add_records(_recs([9, 10, 11, 12], source="ris"), search_id=ris)  # 9 and 10 are duplicates
    ta = "title-abstract"
    # Rules screen everything; a human overrides the rule on record 3 (rule excluded, human includes).
    for p in range(1, 13):
        decision, reason = ("include", None) if p <= 4 else ("exclude", "wrong-population")
        store.append_decision(f"pmid:{p}", "rules", ta, decision, reason, kind="rule")
    store.append_decision("pmid:5", "ana", ta, "include")              # human over rule
    store.append_decision("pmid:6", "ana", ta, "exclude", "preclinical")  # human reason replaces rule's
    store.append_decision("pmid:7", "ana", ta, "exclude", "preclinical")
    store.append_decision("pmid:7", "ana", ta, "exclude", "publication-type")  # ana changes her mind
    store.append_decision("pmid:8", "ana", ta, "maybe")                 # awaiting a decision
    store.append_decision("pmid:4", "ana", ta, "exclude", None)         # excluded without a reason
    yield store
    store.close()


def test_counts_from_two_sources_with_human_overriding_rules(two_source_store):
    c = prisma.counts(two_source_store)
    assert c.identified == {"PubMed (offline snapshot)": 10, "RIS file: embase.ris": 4}
    assert c.identified_total == 14
    assert c.duplicates_merged_by_store == 2 and c.duplicates_removed == 2
    assert c.screened == 12
    # includes: 1, 2, 3 (rules), 5 (human over rule); 4 excluded by ana; 8 is 'maybe'
    assert c.sought == 4
    assert c.awaiting_screening == 1
    assert c.excluded_screening == 7
    assert c.excluded_screening_reasons == {"wrong-population": 4, "preclinical": 1,
                                            "publication-type": 1, prisma.NO_REASON: 1}
    assert not c.full_text_stage and c.assessed == 4 and c.included == 4
    assert any("no full-text stage" in n for n in c.notes)
    assert any("deduplication" in n for n in c.notes)  # dedup result absent: said, and counted 0


def test_full_text_stage_counts_reasons_and_unassessed_reports(two_source_store):
    ft = "full-text"
    two_source_store.append_decision("pmid:1", "ana", ft, "include")
    two_source_store.append_decision("pmid:2", "ana", ft, "exclude", "no-data")
    two_source_store.append_decision("pmid:3", "ana", ft, "exclude", "wrong-intervention")
    two_source_store.append_decision("pmid:3", "ben", ft, "exclude", "wrong-intervention")  # agreed
    two_source_store.append_decision("pmid:12", "ana", ft, "include")  # never included at T/A: ignored
    c = prisma.counts(two_source_store)
    assert c.full_text_stage
    assert c.sought == 4 and c.assessed == 3 and c.not_assessed == 1
    assert c.excluded_full_text == 2
    assert c.excluded_full_text_reasons == {"no-data": 1, "wrong-intervention": 1}
    assert c.included == 1
    assert any("not included at title-abstract" in n for n in c.notes)


def test_disagreeing_humans_leave_a_record_awaiting(two_source_store):
    two_source_store.append_decision("pmid:1", "ana", "title-abstract", "include")
    two_source_store.append_decision("pmid:1", "ben", "title-abstract", "exclude", "no-data")
    c = prisma.counts(two_source_store)
    assert c.sought == 3 and c.awaiting_screening == 2
    two_source_store.append_decision("pmid:1", "chair", "title-abstract", "include", kind="resolution")
    assert prisma.counts(two_source_store).sought == 4


def test_check_catches_an_inconsistency(two_source_store):
    c = prisma.counts(two_source_store)
    c.screened += 1
    with pytest.raises(PrismaCountError, match="identified - duplicates removed == screened") as info:
        c.check()
    assert isinstance(info.value, ReviewlibError)
    assert "\n" not in str(info.value)
    good = prisma.counts(two_source_store)
    good.excluded_screening_reasons["no-data"] = 1
    with pytest.raises(PrismaCountError, match="exclusion reasons"):
        good.check()


def test_records_linked_to_no_search_are_counted_and_noted(tmp_path):
    store = ReviewStore(tmp_path / "r.sqlite")
    sid = store.add_search("pubmed", "q")
    store.add_records(_recs([1, 2]), search_id=sid)
    store.add_records(_recs([3]))
    c = prisma.counts(store)
    assert c.identified == {"PubMed": 2, prisma.UNLINKED_SOURCE: 1}
    assert c.screened == 3 and c.awaiting_screening == 3
    assert c.to_dict()["identified_total"] == 3


def test_empty_store_counts_zero(tmp_path):
    c = prisma.counts(ReviewStore(tmp_path / "empty.sqlite"))
    assert c.identified_total == 0 and c.screened == 0 and c.included == 0


def test_source_labels():
    assert prisma.source_label("snapshot") == "PubMed (offline snapshot)"
    assert prisma.source_label("pubmed") == "PubMed"
    assert prisma.source_label("ris:scopus.ris") == "RIS file: scopus.ris"
    assert prisma.source_label("somewhere") == "somewhere"


def test_to_dict_round_trips():
    c = PrismaCounts(identified={"PubMed": 3}, screened=3, sought=3, assessed=3, included=3)
    d = c.check().to_dict()
    assert d["identified_total"] == 3 and d["included"] == 3
    assert PrismaCounts(**{k: v for k, v in d.items() if k != "identified_total"}) == c


def test_saved_dedup_result_removes_records_before_screening(tmp_path):
    """An RIS record without PMID but with the DOI of a PubMed record: the store keeps both, dedup removes one."""
    from reviewlib.screening import dedup
    store = ReviewStore(tmp_path / "r.sqlite")
    pm = store.add_search("pubmed", "q")
    store.add_records(conform(pd.DataFrame([
        {"pmid": "1", "doi": "10.1/a", "title": "CD19 CAR T cells in refractory lupus", "year": 2022},
        {"pmid": "2", "doi": "10.1/b", "title": "BCMA CAR T in myasthenia gravis", "year": 2024}])), search_id=pm)
    ris = store.add_search("ris:embase.ris")
    store.add_records(conform(pd.DataFrame([
        {"pmid": None, "doi": "10.1/A", "title": "CD19 CAR T cells in refractory lupus", "year": 2022}])),
        search_id=ris)
    assert len(store.records()) == 3 and prisma.counts(store).screened == 3
    result = dedup.deduplicate(store.records())
    dedup.save(store, result)
    c = prisma.counts(store)
    assert c.identified == {"PubMed": 2, "RIS file: embase.ris": 1}
    assert c.duplicates_removed_by_dedup == 1 == result.n_removed
    assert c.duplicates_merged_by_store == 0
    assert c.screened == 2 == len(dedup.screening_records(store))
    assert not any("deduplication" in n for n in c.notes)


def test_an_undone_decision_no_longer_counts(two_source_store):
    from reviewlib.screening import decisions
    assert prisma.counts(two_source_store).excluded_screening_reasons["publication-type"] == 1
    decisions.undo_last(two_source_store, "ana", "title-abstract")  # ana's last call: exclude pmid:4
    c = prisma.counts(two_source_store)
    assert c.sought == 5  # pmid:4 falls back to the rule's include
    assert prisma.NO_REASON not in c.excluded_screening_reasons


def test_agreeing_reviewers_with_several_reasons_count_once(two_source_store):
    two_source_store.append_decision("pmid:2", "ana", "title-abstract", "exclude", "no-data")
    two_source_store.append_decision("pmid:2", "ben", "title-abstract", "exclude", "preclinical")
    c = prisma.counts(two_source_store)
    assert c.excluded_screening == 8 and sum(c.excluded_screening_reasons.values()) == 8
    assert c.excluded_screening_reasons["no-data"] == 1
    assert any("several reasons" in n for n in c.notes)


def test_counts_of_one_run_after_the_query_changed(tmp_path):
    """Search 1 (old query) found 1-6; search 2 (new query) finds 2-5 only: the run of search 2 counts 4."""
    store = ReviewStore(tmp_path / "review.sqlite")
    old = store.add_search("pubmed", "car t AND lupus", count=6)
    store.add_records(_recs(range(1, 7)), search_id=old)
    ta, ft = "title-abstract", "full-text"
    store.append_decision("pmid:1", "ana", ta, "exclude", "preclinical")   # only the old query found 1 and 6
    store.append_decision("pmid:6", "ana", ta, "include")
    store.append_decision("pmid:6", "ana", ft, "include")
    new = store.add_search("pubmed", "car t AND lupus NOT mice", count=4)
    store.add_records(_recs(range(2, 6)), search_id=new)
    store.append_decision("pmid:2", "ana", ta, "exclude", "wrong-population")
    store.append_decision("pmid:3", "ana", ta, "include")
    everything = prisma.counts(store)
    assert (everything.identified_total, everything.screened, everything.sought) == (6, 6, 2)
    assert everything.full_text_stage and everything.included == 1
    run = prisma.counts(store, search_ids=[new])
    assert run.identified == {"PubMed": 4} and run.duplicates_removed == 0 and run.screened == 4
    assert run.excluded_screening_reasons == {"wrong-population": 1} and run.awaiting_screening == 2
    assert run.sought == 1 and not run.full_text_stage and run.included == 1
    assert not any("ignored" in n for n in run.notes)    # other runs' decisions are not strays
    both = prisma.counts(store, search_ids=(old, new))
    assert both.identified == {"PubMed": 6} and both.to_dict() == everything.to_dict()
    with pytest.raises(ReviewlibError, match="search id.s. 9 not in the review store"):
        prisma.counts(store, search_ids=[new, 9])


def test_a_rule_exclusion_with_several_reasons_counts_under_its_first(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    store.add_records(_recs(range(1, 5)), search_id=store.add_search("pubmed", "q"))
    ta = "title-abstract"
    store.append_decision("pmid:1", "rules", ta, "exclude", "publication-type; preclinical", kind="rule")
    store.append_decision("pmid:2", "rules", ta, "exclude", "preclinical;wrong-population", kind="rule")
    store.append_decision("pmid:3", "rules", ta, "exclude", "language", kind="rule")
    store.append_decision("pmid:4", "rules", ta, "exclude", "publication-type; preclinical", kind="rule")
    store.append_decision("pmid:4", "ana", ta, "include")                   # a human overrides the rule
    c = prisma.counts(store)
    assert c.excluded_screening == 3 and c.sought == 1
    assert c.excluded_screening_reasons == {"language": 1, "preclinical": 1, "publication-type": 1}
    assert any(n.startswith("2 records excluded with several reasons are counted under the first") for n in c.notes)
