"""Practice screening on the demo: the user's clicks go to a copy, the demo's store is never written."""
from __future__ import annotations

import pandas as pd
import pytest

from reviewlib.records import conform
from reviewlib.report.notebook import screening_status
from reviewlib.screening import decisions
from reviewlib.screening.practice import practice_notice, practice_store
from reviewlib.screening.screener import Screener
from reviewlib.store import ReviewStore
from stepping_clock import SteppingClock


@pytest.fixture
def review(tmp_path):
    """A demo-like review: three records, every one decided by the demo reviewer."""
    store = ReviewStore(tmp_path / "reviews" / "demo" / "review.sqlite")
    store.add_records(conform(pd.DataFrame([
        {"pmid": str(i), "title": f"CAR T cells in lupus, report {i}", "abstract": "Patients.", "year": 2024}
        for i in (1, 2, 3)])))
    for rid, d in (("pmid:1", "include"), ("pmid:2", "include"), ("pmid:3", "include")):
        decisions.record_decision(store, rid, "demo reviewer", d)
    return store


def _rows(store) -> int:
    return int(store.connection.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])


def test_screener_clicks_in_practice_mode_never_reach_the_review_store(review, tmp_path):
    before = _rows(review)
    practice = practice_store(review)
    assert practice.path == review.path.parent / "practice.sqlite"
    s = Screener(practice, "ana", records=review.records().assign(record_id=lambda f: "pmid:" + f["pmid"]),
                 prioritise=False, require_reason=False, clock=SteppingClock())
    assert s.decide("exclude") is not None and s.decide("include") is not None
    assert _rows(review) == before                                   # the demo's store: untouched
    assert set(decisions.current_decisions(review)["reviewer"]) == {"demo reviewer"}
    mine = decisions.current_decisions(practice, reviewer="ana")
    assert len(mine) == 2
    # the practice copy keeps the user's decisions across a restart, and a reset starts over
    practice.close()
    again = practice_store(review)
    assert len(decisions.current_decisions(again, reviewer="ana")) == 2
    again.close()
    fresh = practice_store(review, reset=True)
    assert decisions.current_decisions(fresh, reviewer="ana").empty
    assert len(decisions.current_decisions(fresh, reviewer="demo reviewer")) == 3


def test_status_says_whose_decisions_each_line_counts(review):
    practice = practice_store(review)
    records = review.records().assign(record_id=lambda f: "pmid:" + f["pmid"])
    decisions.record_decision(practice, "pmid:1", "ana", "include")
    status = screening_status(review, records, reviewer="ana", reviewer_store=practice)
    assert status["decided by a person (any reviewer)"] == 3
    assert status["reviewers counted here"] == "demo reviewer"
    assert status["no decision from anyone yet"] == 0
    assert status["decided by you, ana (practice copy): what the screener counts"] == 1
    assert not any("by you" in k for k in screening_status(review, records))   # no "you" line without a reviewer


def test_practice_notice_names_the_copy_relative_to_the_checkout(review, tmp_path):
    practice = practice_store(review)
    line = practice_notice(practice, root=tmp_path)
    assert "reviews/demo/practice.sqlite" in line and "never read it" in line


def test_a_review_that_gained_records_starts_the_practice_over(review):
    practice = practice_store(review)
    decisions.record_decision(practice, "pmid:1", "ana", "include")
    practice.close()
    review.add_records(conform(pd.DataFrame([{"pmid": "4", "title": "A new record", "abstract": "x", "year": 2025}])))
    again = practice_store(review)
    assert "pmid:4" in {r[0] for r in again.connection.execute("SELECT record_id FROM records")}
    assert decisions.current_decisions(again, reviewer="ana").empty
    assert decisions.record_decision(again, "pmid:4", "ana", "include")


def test_the_practice_copy_is_never_the_review_store(review):
    with pytest.raises(ValueError):
        practice_store(review, path=review.path)
