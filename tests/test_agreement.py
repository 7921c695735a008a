"""Dual screening: blind views and reveal, kappa against a hand computation, conflicts, resolutions."""
from __future__ import annotations

import math
import random
import subprocess
import sys

import pandas as pd
import pytest

from reviewlib.screening import agreement
from reviewlib.screening import decisions
from reviewlib.errors import InputError
from reviewlib.records import conform
from reviewlib.store import ReviewStore

# ana and bob on 10 records; cy on the first 6 only
ANA = ["include", "include", "include", "exclude", "exclude", "exclude", "exclude", "maybe", "include", "exclude"]
BOB = ["include", "include", "exclude", "exclude", "exclude", "exclude", "include", "maybe", "include", "exclude"]
CY = ["include", "exclude", "include", "exclude", "exclude", "include"]


@pytest.fixture
def store(tmp_path):
    s = ReviewStore(tmp_path / "review.sqlite")
    s.add_records(conform(pd.DataFrame([{"pmid": str(i), "title": f"record {i}"} for i in range(1, 11)])))
    for name, calls in (("ana", ANA), ("bob", BOB), ("cy", CY)):
        for i, call in enumerate(calls, start=1):
            decisions.record_decision(s, f"pmid:{i}", name, call, reason="no-data" if call == "exclude" else None)
    return s


def test_kappa_matches_a_hand_computation(store):
    # ana vs bob: 8 of 10 agree.  ana: include 4, exclude 5, maybe 1; bob: include 4, exclude 5, maybe 1.
    # p_o = 0.8; p_e = .4*.4 + .5*.5 + .1*.1 = 0.42; kappa = (0.8 - 0.42) / (1 - 0.42) = 0.655172...
    table = agreement.agreement(store).set_index(["reviewer_a", "reviewer_b"])
    ab = table.loc[("ana", "bob")]
    assert ab["n"] == 10 and ab["agreed"] == 8 and ab["percent_agreement"] == pytest.approx(80.0)
    assert ab["kappa"] == pytest.approx(0.38 / 0.58)
    # pairwise for three reviewers, each on the records both screened
    assert set(table.index) == {("ana", "bob"), ("ana", "cy"), ("bob", "cy")}
    ac = table.loc[("ana", "cy")]
    # ana vs cy on 6: agree on 1,3,4,5 -> 4/6; ana inc 3 exc 3; cy inc 3 exc 3; p_e = .5; kappa = (2/3-.5)/.5
    assert ac["n"] == 6 and ac["agreed"] == 4 and ac["kappa"] == pytest.approx((4 / 6 - 0.5) / 0.5)


def test_kappa_edge_cases():
    assert math.isnan(agreement.kappa([], []))
    assert math.isnan(agreement.kappa(["include", "include"], ["include", "include"]))   # chance agreement 1
    assert agreement.kappa(["include", "exclude"], ["exclude", "include"]) == pytest.approx(-1.0)


def test_conflicts_and_resolution_feed_included(store):
    table = agreement.conflicts(store)
    # records where any two reviewers differ: 2 (cy), 3 (bob), 6 (cy), 7 (bob)
    assert table["record_id"].tolist() == ["pmid:2", "pmid:3", "pmid:6", "pmid:7"]
    assert table.set_index("record_id").loc["pmid:3", ["ana", "bob", "cy"]].tolist() == [
        "include", "exclude", "include"]
    assert not table["resolved"].any()
    before = decisions.included(store)
    assert "pmid:3" not in before and "pmid:1" in before and "pmid:9" in before
    agreement.resolve(store, "pmid:3", "dee", take="ana")
    agreement.resolve(store, "pmid:7", "dee", decision="exclude", reason="wrong-intervention")
    after = decisions.included(store)
    assert "pmid:3" in after and "pmid:7" not in after
    final = decisions.final_decisions(store).set_index("record_id")
    assert final.loc["pmid:7", ["decision", "reason", "basis"]].tolist() == ["exclude", "wrong-intervention",
                                                                             "resolution"]
    assert final.loc["pmid:2", "basis"] == "conflict"
    table = agreement.conflicts(store).set_index("record_id")
    assert table.loc["pmid:3", "resolved"] and table.loc["pmid:3", "resolution"] == "include"
    # a resolution does not change the agreement statistics (they rest on the reviewers' own calls)
    assert agreement.agreement(store, reviewers=["ana", "bob"])["agreed"].tolist() == [8]


def test_bad_reviewers_are_refused(store):
    with pytest.raises(InputError, match="reviewer 'eve' did not screen pmid:3"):
        agreement.resolve(store, "pmid:3", "dee", take="eve")
    with pytest.raises(InputError, match="reviewer name is empty"):
        agreement.resolve(store, "pmid:3", "", decision="include")
    with pytest.raises(InputError, match="exactly one of"):
        agreement.resolve(store, "pmid:3", "dee")
    with pytest.raises(InputError, match="reviewer 'eve' has no title-abstract decisions"):
        agreement.agreement(store, reviewers=["ana", "eve"])
    with pytest.raises(InputError, match="blind screening needs the reviewer"):
        decisions.current_decisions(store, blind=True)
    assert not (store.decisions()["kind"] == "resolution").any()


def test_blind_mode_until_reveal(store):
    view = decisions.current_decisions(store, stage="title-abstract", reviewer="bob", blind=True)
    assert set(view["reviewer"]) == {"bob"} and len(view) == 10
    assert not decisions.is_revealed(store)
    info = agreement.reveal(store, by="lead")
    assert info["by"] == "lead" and decisions.is_revealed(store)
    assert agreement.reveal(store, by="someone else")["by"] == "lead"      # the first reveal stands
    view = decisions.current_decisions(store, stage="title-abstract", reviewer="bob", blind=True)
    assert set(view["reviewer"]) == {"ana", "bob", "cy"}
    assert not decisions.is_revealed(store, "full-text")


def test_kappa_equals_scikit_learns_on_random_label_pairs():
    from sklearn.metrics import cohen_kappa_score
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randrange(1, 40)
        a = [rng.choice(["include", "exclude", "maybe"]) for _ in range(n)]
        b = [x if rng.random() < 0.6 else rng.choice(["include", "exclude", "maybe"]) for x in a]
        ours = agreement.kappa(a, b)
        if math.isnan(ours):
            assert len(set(a) | set(b)) == 1
        else:
            assert ours == pytest.approx(cohen_kappa_score(a, b, labels=sorted(set(a) | set(b))), abs=1e-12)


def test_importing_and_using_agreement_does_not_load_scikit_learn(store):
    code = ("import sys; from reviewlib.screening import agreement; from reviewlib.store import ReviewStore; "
            f"print(agreement.agreement(ReviewStore({str(store.path)!r}))['kappa'].round(3).tolist()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # bob vs cy on 6: agree 3/6; p_e = 2/6*3/6 + 4/6*3/6 = 0.5 -> kappa 0
    assert out.splitlines() == [str([round(0.38 / 0.58, 3), round((4 / 6 - 0.5) / 0.5, 3), 0.0]), "[]"]
