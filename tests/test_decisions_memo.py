"""Issue 15: current_decisions and final_decisions are derived once while the decision log is unchanged;
every write (through this store object or another one on the same file) is seen, and the frames equal
a fresh replay of the log."""
from __future__ import annotations

import random

import pandas as pd
import pytest

from reviewlib.records import conform
from reviewlib.screening import decisions as dec
from reviewlib.store import ReviewStore


def fresh_current(store, stage=None, reviewer=None):
    """The replay as current_decisions did it before the memo."""
    effective = dec._replay(dec._history(store, stage))
    current = effective[effective["_top"]] if not effective.empty else effective
    if reviewer is not None:
        current = current[current["reviewer"] == reviewer]
    current = current.reindex(columns=dec.CURRENT_COLUMNS).reset_index(drop=True)
    return current.astype(object).where(current.notna(), None).astype({"decision_id": "int64"})


@pytest.fixture
def store(tmp_path):
    s = ReviewStore(tmp_path / "review.sqlite")
    s.add_records(conform(pd.DataFrame([{"pmid": str(i), "title": f"Study {i}", "year": 2020}
                                        for i in range(1, 31)])))
    return s


def test_memoised_decisions_equal_a_fresh_replay_after_every_write(store, tmp_path):
    other = ReviewStore(tmp_path / "review.sqlite")          # a second connection writing too
    rng = random.Random(15)
    for step in range(60):
        writer = other if step % 7 == 3 else store
        rid = f"pmid:{rng.randint(1, 30)}"
        who = rng.choice(["ana", "ben", "rules"])
        action = rng.random()
        if action < 0.15 and who != "rules":
            try:
                dec.undo_last(writer, who, stage="title-abstract")
            except Exception:
                pass
        elif who == "rules":
            writer.append_decision(rid, "rules", "title-abstract", rng.choice(["include", "exclude"]),
                                   "wrong-population", None, kind="rule")
        else:
            stage = rng.choice(["title-abstract", "title-abstract", "full-text"])
            writer.append_decision(rid, who, stage, rng.choice(["include", "exclude", "maybe"]),
                                   None, None, kind=rng.choice(["human", "human", "resolution"]))
        for stage in (None, "title-abstract", "full-text"):
            pd.testing.assert_frame_equal(dec.current_decisions(store, stage=stage), fresh_current(store, stage))
            pd.testing.assert_frame_equal(dec.current_decisions(store, stage=stage, reviewer="ana"),
                                          fresh_current(store, stage, reviewer="ana"))
        for stage in ("title-abstract", "full-text"):
            pd.testing.assert_frame_equal(dec.final_decisions(store, stage),
                                          dec.final_decisions(store, stage, current=fresh_current(store, stage)))
    other.close()


def test_a_caller_changing_its_frame_changes_nothing_for_the_next(store):
    store.append_decision("pmid:1", "ana", "title-abstract", "include")
    store.append_decision("pmid:2", "ana", "title-abstract", "exclude", "no-data")
    first = dec.current_decisions(store, stage="title-abstract")
    first.loc[0, "decision"] = "exclude"
    final = dec.final_decisions(store, "title-abstract")
    final.loc[0, "decision"] = "exclude"
    assert list(dec.current_decisions(store, stage="title-abstract")["decision"]) == ["include", "exclude"]
    assert list(dec.final_decisions(store, "title-abstract")["decision"]) == ["include", "exclude"]
    assert dec.included(store, "title-abstract") == ["pmid:1"]


def test_the_log_is_read_once_while_unchanged(store, monkeypatch):
    store.append_decision("pmid:1", "ana", "title-abstract", "include")
    reads = []
    real = dec._history
    monkeypatch.setattr(dec, "_history", lambda s, stage=None: reads.append(stage) or real(s, stage))
    for _ in range(3):
        dec.current_decisions(store, stage="title-abstract")
        dec.final_decisions(store, "title-abstract")
        dec.included(store, "title-abstract")
    assert reads == ["title-abstract"]
    store.append_decision("pmid:2", "ana", "title-abstract", "include")
    assert dec.included(store, "title-abstract") == ["pmid:1", "pmid:2"] and reads == ["title-abstract"] * 2
