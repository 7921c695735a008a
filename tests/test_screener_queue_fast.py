"""Issue 15: the screener's queue, worked out on row positions with the rules' excludes cached, is the
queue the code before it gave (kept below as ``queue_before``: prioritiser ranking of every id, set
comparisons, a fresh gathering of the rules' decisions from a full replay)."""
from __future__ import annotations

import random

import pandas as pd
import pytest

from reviewlib.records import conform
from reviewlib.screening import decisions as dec
from reviewlib.screening.eligibility import load_rules
from reviewlib.protocol import load_protocol
from reviewlib.screening.screener import Screener, sampling_order
from reviewlib.store import ReviewStore
from stepping_clock import SteppingClock

WORDS = ("lupus CAR T cells myositis sclerosis statins heart failure belimumab rituximab nephritis "
         "trial cohort mice vitro remission relapse safety cytokine").split()


def queue_before(s: Screener) -> tuple[list[str], str | None, int]:
    """The queue, estimate and rule-excluded count as ``Screener.refresh`` computed them before issue 15."""
    mine = s.my_decisions()
    done = set(mine["record_id"])
    labels = s._labels(mine)
    queue = [r for r in s._order if r not in done]
    estimate = None
    if s._prioritiser is not None and queue:
        ranked = [r for r in s._prioritiser.rank(labels) if r not in done]
        if set(ranked) == set(queue):
            queue = ranked
        if len(set(labels.values())) == 2:
            estimate = f"~{s._prioritiser.estimate_relevant_remaining(labels).expected:.0f} (model)"
    replay = dec.current_decisions(s.store, stage=s.stage)
    rules = replay[(replay["reviewer"] == dec.RULES_REVIEWER) & (replay["decision"] == "exclude")]
    rule_excluded = {r for r in rules["record_id"] if r in s._by_id} - done
    phase = s.sampling_phase()
    if phase is not None:
        queue = sampling_order([r for r in s._by_id if r not in done], phase["seed"])
    elif rule_excluded:
        kept = [r for r in queue if r not in rule_excluded]
        queue = kept + ([r for r in queue if r in rule_excluded] if s.rule_excluded == "last" else [])
    return queue, estimate, len(rule_excluded)


def same_as_before(s: Screener) -> None:
    queue, estimate, n_rule = queue_before(s)
    assert s._queue == queue
    assert s.current == (queue[0] if queue else None)
    assert s.n_rule_excluded == n_rule
    if estimate is not None:
        assert s._estimate == estimate


@pytest.fixture(scope="module")
def rules():
    return load_rules(load_protocol("car-t-autoimmune"))


def _store(tmp_path, n: int = 80) -> ReviewStore:
    rng = random.Random(15)
    store = ReviewStore(tmp_path / "review.sqlite")
    store.add_records(conform(pd.DataFrame([
        {"pmid": str(i), "title": " ".join(rng.choice(WORDS) for _ in range(6)),
         # a few identical texts, so ties in the scores are broken by the seeded permutation
         "abstract": "Same abstract." if i % 9 == 0 else " ".join(rng.choice(WORDS) for _ in range(25)),
         "year": 2020} for i in range(1, n + 1)])))
    for i in range(1, n + 1, 4):      # the rules exclude every fourth record
        store.append_decision(f"pmid:{i}", "rules", "title-abstract", "exclude", "wrong-population", None,
                              kind="rule")
    return store


@pytest.mark.parametrize("rule_excluded,order_subset", [("last", False), ("omit", False), ("last", True)])
def test_queue_after_random_clicks_undos_and_skips_equals_the_code_before(tmp_path, rules, rule_excluded,
                                                                           order_subset):
    store = _store(tmp_path)
    ids = list(store.records()["record_id"])
    order = ids[::-1][:60] if order_subset else None      # a given order leaving records out
    s = Screener(store, "ana", rules=rules, seed=3, clock=SteppingClock(), rule_excluded=rule_excluded, order=order)
    same_as_before(s)
    rng = random.Random(7)
    for step in range(45):
        action = rng.random()
        if action < 0.55:
            choice = rng.choice(["include", "exclude", "exclude", "maybe"])
            if choice == "exclude":
                s.reason.value = "wrong-population"
            s.decide(choice)
        elif action < 0.7:
            s.undo()
            s.refresh()
        elif action < 0.8:
            s.skip()
            s.refresh()
        elif action < 0.9:   # the rules change during the session: a new exclude, or one undone by a person
            rid = rng.choice(ids)
            store.append_decision(rid, "rules", "title-abstract", "exclude", "wrong-population", None, kind="rule")
            s.refresh()
        else:                # another reviewer decides: their calls change nothing in ana's queue
            store.append_decision(rng.choice(ids), "ben", "title-abstract", "include", None, None)
            s.refresh()
        same_as_before(s)
    assert len(s._queue) < len(ids)


def test_random_sampling_queue_equals_the_code_before(tmp_path, rules):
    store = _store(tmp_path, n=50)
    s = Screener(store, "ana", rules=rules, seed=5, clock=SteppingClock())
    for k in range(8):
        s.reason.value = "wrong-population"
        s.decide("include" if k % 3 == 0 else "exclude")
    s.start_random_sampling()
    same_as_before(s)
    for _ in range(10):
        s.reason.value = "wrong-population"
        s.decide("exclude")
        same_as_before(s)
    s.undo()
    s.refresh()
    same_as_before(s)


def test_rule_excluded_ids_follow_new_rule_decisions(tmp_path, rules):
    store = _store(tmp_path, n=20)
    s = Screener(store, "ana", rules=rules, seed=0, clock=SteppingClock(), prioritise=False)
    before = s.rule_excluded_ids()
    assert before == {f"pmid:{i}" for i in range(1, 21, 4)}
    store.append_decision("pmid:2", "rules", "title-abstract", "exclude", "wrong-population", None, kind="rule")
    store.append_decision("pmid:1", "rules", "title-abstract", "include", None, None, kind="rule")
    assert s.rule_excluded_ids() == (before | {"pmid:2"}) - {"pmid:1"}
