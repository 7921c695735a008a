"""Issue 15: the current and final decisions are kept in the store (decision_views) while the log of
their stage is unchanged, so a new store object or process reads them instead of replaying the log;
any append (by any process) or rewrite of a row makes them derived again, never served stale."""
from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from reviewlib.records import conform
from reviewlib.screening import decision_views as views
from reviewlib.screening import decisions as dec
from reviewlib.store import ReviewStore

from test_decisions_memo import fresh_current

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "review.sqlite"
    with ReviewStore(p) as s:
        s.add_records(conform(pd.DataFrame([{"pmid": str(i), "title": f"Study {i}", "year": 2020}
                                            for i in range(1, 31)])))
    return p


def fresh_final(store, stage):
    return dec.final_decisions(store, stage, current=fresh_current(store, stage))


def no_replay(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("the log was replayed")
    monkeypatch.setattr(dec, "_replay", refuse)


def test_a_new_store_object_reads_the_kept_frames_without_replaying(path, monkeypatch):
    with ReviewStore(path) as s:
        s.append_decision("pmid:1", "rules", "title-abstract", "exclude", "no-data", "required:x", kind="rule")
        s.append_decision("pmid:1", "ana", "title-abstract", "include", None, "é note")
        s.append_decision("pmid:2", "ana", "full-text", "exclude", "no-data")
        expected = {stage: (fresh_current(s, stage), fresh_final(s, stage)) for stage in dec.STAGES}
        for stage in dec.STAGES:
            dec.final_decisions(s, stage)
            dec.current_decisions(s, stage=stage)
    no_replay(monkeypatch)
    with ReviewStore(path) as s:
        for stage in dec.STAGES:
            pd.testing.assert_frame_equal(dec.current_decisions(s, stage=stage), expected[stage][0])
            pd.testing.assert_frame_equal(dec.final_decisions(s, stage), expected[stage][1])
        assert dec.final_included_ids(s) == []          # pmid:1 included at TA, no full-text include


def test_an_append_in_another_process_is_seen(path):
    with ReviewStore(path) as s:
        s.append_decision("pmid:1", "ana", "title-abstract", "exclude", "no-data")
        assert dec.included(s, "title-abstract") == []
        script = ("import sys; from reviewlib.store import ReviewStore; s = ReviewStore(sys.argv[1]); "
                  "s.append_decision('pmid:1', 'ana', 'title-abstract', 'include'); s.close()")
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, cwd=ROOT,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        assert dec.included(s, "title-abstract") == ["pmid:1"]         # the same store object
    with ReviewStore(path) as s:
        assert dec.included(s, "title-abstract") == ["pmid:1"]         # a new one


@pytest.mark.parametrize("rewrite", ["UPDATE decisions SET decision='exclude' WHERE record_id='pmid:1'",
                                     "DELETE FROM decisions WHERE record_id='pmid:1'"])
def test_a_rewritten_row_is_never_served_from_a_view(path, rewrite):
    """The log is append-only; should anyone change or remove a row by hand (the ids do not move), the
    views derived before are not served."""
    with ReviewStore(path) as s:
        s.append_decision("pmid:1", "ana", "title-abstract", "include")
        s.append_decision("pmid:2", "ana", "title-abstract", "include")
        assert dec.included(s, "title-abstract") == ["pmid:1", "pmid:2"]
    con = sqlite3.connect(path)
    con.execute(rewrite)
    con.commit()
    con.close()
    with ReviewStore(path) as s:
        assert dec.included(s, "title-abstract") == ["pmid:2"]
        pd.testing.assert_frame_equal(dec.final_decisions(s, "title-abstract"), fresh_final(s, "title-abstract"))


def test_a_row_inserted_by_hand_is_seen(path):
    with ReviewStore(path) as s:
        s.append_decision("pmid:1", "ana", "title-abstract", "include")
        assert dec.included(s, "title-abstract") == ["pmid:1"]
    con = sqlite3.connect(path)
    con.execute("INSERT INTO decisions(record_id, reviewer, stage, decision, kind, created_at) "
                "VALUES('pmid:3', 'ben', 'title-abstract', 'include', 'human', '2030-01-01T00:00:00+00:00')")
    con.commit()
    con.close()
    with ReviewStore(path) as s:
        assert dec.included(s, "title-abstract") == ["pmid:1", "pmid:3"]


def test_an_append_at_one_stage_keeps_the_other_stage_view(path, monkeypatch):
    with ReviewStore(path) as s:
        for i in range(1, 11):
            s.append_decision(f"pmid:{i}", "rules", "title-abstract", "include", None, None, kind="rule")
        ta = dec.final_decisions(s, "title-abstract")
    with ReviewStore(path) as s:
        s.append_decision("pmid:1", "ana", "full-text", "include")
        real = dec._replay
        replayed = []
        monkeypatch.setattr(dec, "_replay", lambda h: replayed.append(set(h["stage"])) or real(h))
        pd.testing.assert_frame_equal(dec.final_decisions(s, "title-abstract"), ta)
        assert dec.final_included_ids(s) == ["pmid:1"]
        assert replayed == [{"full-text"}]                 # only the stage that changed


def test_views_equal_a_fresh_replay_through_new_store_objects(path):
    """Random decisions, undos and rule rows; after each, a new store object (reading the kept views
    where the log did not change) gives what a replay gives."""
    rng = random.Random(1515)
    for step in range(40):
        with ReviewStore(path) as s:
            rid = f"pmid:{rng.randint(1, 30)}"
            who = rng.choice(["ana", "ben", "rules"])
            if rng.random() < 0.15 and who != "rules":
                try:
                    dec.undo_last(s, who, stage="title-abstract")
                except Exception:       # noqa: BLE001 - nothing of theirs to undo yet
                    pass
            elif who == "rules":
                s.append_decision(rid, "rules", "title-abstract", rng.choice(["include", "exclude"]),
                                  "wrong-population", "excluding:x", kind="rule")
            elif rng.random() < 0.5:
                stage = rng.choice(["title-abstract", "full-text"])
                s.append_decision(rid, who, stage, rng.choice(["include", "exclude", "maybe"]),
                                  rng.choice([None, "no-data"]), None, kind=rng.choice(["human", "resolution"]))
            for stage in dec.STAGES:
                dec.final_decisions(s, stage)
                dec.current_decisions(s, stage=stage)
            dec.current_decisions(s)
        with ReviewStore(path) as s:
            for stage in (None, *dec.STAGES):
                pd.testing.assert_frame_equal(dec.current_decisions(s, stage=stage), fresh_current(s, stage))
            for stage in dec.STAGES:
                pd.testing.assert_frame_equal(dec.final_decisions(s, stage), fresh_final(s, stage))


def test_frames_round_trip_and_odd_ones_are_not_kept():
    frame = pd.DataFrame({"record_id": pd.Series(["pmid:1", "pmid:2", "doi:10.1/é"], dtype=object),
                          "reason": pd.Series([None, "a; b", None], dtype=object),
                          "decision_id": pd.Series([3, 1, 2], dtype="int64")})
    pd.testing.assert_frame_equal(views.decode_frame(views.encode_frame(frame)), frame)
    assert views.encode_frame(frame.assign(reason=pd.Series([None, 1.5, None], dtype=object))) is None      # not strings: derived again
    assert views.encode_frame(frame.iloc[:0]) is None
    with pytest.raises(ValueError):
        views.decode_frame(views.encode_frame(frame)[:-4])


def test_a_damaged_view_is_derived_again(path):
    with ReviewStore(path) as s:
        s.append_decision("pmid:1", "ana", "title-abstract", "include")
        dec.final_decisions(s, "title-abstract")
        s.connection.execute("UPDATE decision_views SET data=x'00'")
    with ReviewStore(path) as s:
        assert dec.included(s, "title-abstract") == ["pmid:1"]
