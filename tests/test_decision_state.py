"""The incremental decision state equals a full replay of the log (issue 15)."""
from __future__ import annotations

import random

import pandas as pd
import pytest

from reviewlib.records import conform
from reviewlib.screening import decisions as dec
from reviewlib.screening.state import DecisionState
from reviewlib.store import ReviewStore

STAGE = "title-abstract"
REASONS = {"preclinical": "Preclinical", "wrong-population": "Not autoimmune"}


@pytest.fixture
def store(tmp_path) -> ReviewStore:
    store = ReviewStore(tmp_path / "review.sqlite")
    store.add_records(conform(pd.DataFrame({"pmid": [str(1000 + i) for i in range(12)],
                                            "title": [f"record {i}" for i in range(12)]})))
    return store


def _same(state: DecisionState, store: ReviewStore, reviewers) -> None:
    pd.testing.assert_frame_equal(state.current(), dec.current_decisions(store, stage=state.stage))
    for reviewer in reviewers:
        pd.testing.assert_frame_equal(state.current(reviewer),
                                      dec.current_decisions(store, stage=state.stage, reviewer=reviewer))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_incremental_state_equals_a_full_replay_after_random_decisions_and_undos(store, seed):
    rng = random.Random(seed)
    ids = [f"pmid:{1000 + i}" for i in range(12)]
    people = ["ana", "bob"]
    state = DecisionState(store, STAGE)
    other_stage = DecisionState(store, "full-text")
    everything = DecisionState(store)
    # the rules propose first, as notebook 02 does
    for rid in ids:
        store.append_decision(rid, "rules", STAGE, rng.choice(["include", "exclude", "unsure"]),
                              "preclinical", None, kind="rule")
    undone = 0
    for step in range(60):
        action = rng.random()
        who = rng.choice(people)
        if action < 0.55:
            dec.record_decision(store, rng.choice(ids), who, rng.choice(dec.HUMAN_DECISIONS),
                                stage=rng.choice([STAGE, STAGE, "full-text"]),
                                reason=rng.choice([None, "preclinical"]), reasons=REASONS)
        elif action < 0.8:
            # the screener's undo (from the state) and the library's (a replay) alternate
            try:
                if rng.random() < 0.5:
                    out = state.undo_last(who)
                else:
                    out = dec.undo_last(store, who, stage=STAGE)
            except Exception as exc:            # no decision of that reviewer yet
                assert "has no decisions" in str(exc)
                out = None
            undone += out is not None
        elif action < 0.9:
            dec.record_decision(store, rng.choice(ids), who, rng.choice(["include", "exclude"]), stage=STAGE,
                                kind="resolution", reasons=REASONS)
        else:
            # a row dated in the past (an import from another machine): the state replays the log
            store.append_decision(rng.choice(ids), "carol", STAGE, rng.choice(dec.HUMAN_DECISIONS),
                                  created_at=f"2020-01-01T00:00:{step % 60:02d}.000000+00:00", kind="import")
        if rng.random() < 0.4:                  # often several rows land between two syncs
            state.sync()
            _same(state, store, people + ["rules", "carol"])
    state.sync()
    other_stage.sync()
    everything.sync()
    _same(state, store, people + ["rules", "carol"])
    _same(other_stage, store, people)
    _same(everything, store, people)
    assert undone > 3
    assert state.replays >= 2                   # the back-dated rows forced a replay at least once


def test_state_undo_matches_the_library_undo(store):
    state = DecisionState(store, STAGE)
    with pytest.raises(Exception, match="has no decisions"):
        state.undo_last("ana")
    dec.record_decision(store, "pmid:1000", "ana", "include", stage=STAGE)
    dec.record_decision(store, "pmid:1000", "ana", "exclude", stage=STAGE, reason="preclinical", reasons=REASONS)
    dec.record_decision(store, "pmid:1001", "ana", "maybe", stage=STAGE)
    undone = state.undo_last("ana")
    assert undone["record_id"] == "pmid:1001" and undone["decision"] == "maybe"
    undone = state.undo_last("ana")             # then the change of mind: the include comes back
    assert undone["decision"] == "exclude"
    current = state.current("ana")
    assert current[["record_id", "decision"]].values.tolist() == [["pmid:1000", "include"]]
    _same(state, store, ["ana"])
    assert state.replays == 1                   # no replay was needed for any of it
    history = store.decisions()
    assert list(history["kind"]) == ["human", "human", "human", "undo", "undo"]   # the log only grew


def test_screener_state_after_clicks_and_undos_equals_a_replay(store):
    """The screener keeps its state incrementally: its view, the summary and the log agree with a replay."""
    from reviewlib.screening import agreement
    from reviewlib.screening.eligibility import load_rules
    from reviewlib.screening.screener import Screener, summary_tables

    rules = load_rules("car-t-autoimmune")
    records = store.records()
    clock = iter(range(0, 10_000, 5))
    ana = Screener(store, "ana", rules=rules, records=records, clock=lambda: float(next(clock)))
    bob = Screener(store, "bob", rules=rules, records=records, clock=lambda: float(next(clock)))
    rng = random.Random(7)
    for step in range(30):
        s = rng.choice([ana, bob])
        if rng.random() < 0.25:
            s.undo()
        else:
            value = rng.choice(["include", "exclude", "maybe"])
            if value == "exclude":
                s.reason.value = "preclinical"
            s.decide(value)
        if step == 15:   # another process resolves a conflict: the screeners pick it up at their next sync
            agreement.resolve(store, records["record_id"][0], "lead", decision="include")
    for s in (ana, bob):
        replay = dec.current_decisions(store, stage=STAGE, reviewer=s.reviewer)
        replay = replay[replay["kind"] != "resolution"].reset_index(drop=True)
        pd.testing.assert_frame_equal(s.my_decisions(), replay)
        fresh, kept = summary_tables(store, STAGE), summary_tables(store, STAGE, state=s.state)
        for name in fresh:
            pd.testing.assert_frame_equal(fresh[name], kept[name])
    assert ana.state.replays == 1 and bob.state.replays == 1
