"""Decisions are appended at once, validated, derived, undone by appending, exchanged as CSV, never lost."""
from __future__ import annotations

import csv
import random
import re
import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from reviewlib.screening import decisions
from reviewlib.cli import main
from reviewlib.errors import InputError
from reviewlib.records import conform
from reviewlib.store import ReviewStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _store(path, n=5) -> ReviewStore:
    store = ReviewStore(path)
    store.add_records(conform(pd.DataFrame([{"pmid": str(i), "title": f"CAR T record {i}"}
                                            for i in range(1, n + 1)])))
    return store


@pytest.fixture
def store(tmp_path):
    return _store(tmp_path / "review.sqlite")


def test_bad_decisions_are_refused_with_one_line_and_nothing_written(store):
    cases = [
        (dict(record_id="pmid:1", reviewer="ana", decision="yes"), "decision 'yes'"),
        (dict(record_id="pmid:1", reviewer="ana", decision="exclude", reason="too-small"), "reason 'too-small'"),
        (dict(record_id="pmid:99", reviewer="ana", decision="include"), "record 'pmid:99'"),
        (dict(record_id="pmid:1", reviewer="  ", decision="include"), "reviewer name is empty"),
        (dict(record_id="pmid:1", reviewer="rules", decision="include"), "reserved"),
        (dict(record_id="pmid:1", reviewer="ana", decision="include", stage="abstract"), "stage 'abstract'"),
    ]
    for kwargs, expected in cases:
        with pytest.raises(InputError) as info:
            decisions.record_decision(store, **kwargs)
        assert expected in str(info.value) and "\n" not in str(info.value)
    assert store.decisions().empty


def test_change_of_mind_appends_and_current_is_derived(store):
    decisions.record_decision(store, "pmid:1", "ana", "include")
    decisions.record_decision(store, "pmid:1", "ana", "exclude", reason="no-data", note="conference abstract")
    decisions.record_decision(store, "pmid:1", "ana", "exclude", stage="full-text", reason="preclinical")
    assert len(store.decisions()) == 3
    current = decisions.current_decisions(store, stage="title-abstract")
    assert current[["record_id", "reviewer", "decision", "reason", "note"]].values.tolist() == [
        ["pmid:1", "ana", "exclude", "no-data", "conference abstract"]]
    assert list(current.columns[:8]) == ["record_id", "reviewer", "stage", "decision", "reason", "note", "kind",
                                         "created_at"]
    hist = decisions.history(store, "pmid:1")
    assert hist["decision"].tolist() == ["include", "exclude", "exclude"]
    assert hist["effective"].tolist() == [True, True, True]


def test_undo_appends_a_revoking_row_and_brings_back_the_earlier_call(store):
    decisions.record_decision(store, "pmid:1", "ana", "include")
    decisions.record_decision(store, "pmid:2", "ana", "exclude", reason="language")
    decisions.record_decision(store, "pmid:2", "ana", "maybe")
    undone = decisions.undo_last(store, "ana")
    assert (undone["record_id"], undone["decision"]) == ("pmid:2", "maybe")
    cur = decisions.current_decisions(store, reviewer="ana").set_index("record_id")["decision"].to_dict()
    assert cur == {"pmid:1": "include", "pmid:2": "exclude"}
    decisions.undo_last(store, "ana")
    decisions.undo_last(store, "ana")
    assert decisions.current_decisions(store, reviewer="ana").empty
    assert decisions.undo_last(store, "ana") is None
    rows = store.decisions()
    assert len(rows) == 6 and rows["kind"].tolist()[-3:] == ["undo"] * 3
    assert (rows.loc[rows["kind"] == "undo", "decision"] == "undo").all()
    with pytest.raises(InputError, match="reviewer 'zoe' has no decisions"):
        decisions.undo_last(store, "zoe")


def _read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_export_import_merges_a_second_reviewer_idempotently(tmp_path):
    main_store = _store(tmp_path / "main.sqlite")
    laptop = _store(tmp_path / "laptop.sqlite")
    decisions.record_decision(main_store, "pmid:1", "ana", "include")
    decisions.record_decision(laptop, "pmid:1", "bob", "exclude", reason="wrong-population", note="myeloma")
    decisions.record_decision(laptop, "pmid:2", "bob", "include")
    decisions.undo_last(laptop, "bob")
    out = decisions.export_csv(laptop, tmp_path / "bob.csv", reviewer="bob")
    rows = _read(out)
    assert [r["decision"] for r in rows] == ["exclude", "include", "undo"]
    assert decisions.import_csv(main_store, out) == 3
    assert decisions.import_csv(main_store, out) == 0          # same file twice adds nothing
    cur = decisions.current_decisions(main_store)
    assert sorted(map(tuple, cur[["record_id", "reviewer", "decision"]].values.tolist())) == [
        ("pmid:1", "ana", "include"), ("pmid:1", "bob", "exclude")]
    # exporting the merged store and importing it back into itself adds nothing either
    decisions.export_csv(main_store, tmp_path / "all.csv")
    assert decisions.import_csv(main_store, tmp_path / "all.csv") == 0


def test_import_of_a_hand_made_sheet_needs_a_reviewer_and_is_idempotent(store, tmp_path):
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("pmid,decision,reason\n1,include,\n2,exclude,preclinical\n")
    with pytest.raises(InputError, match="row 2 column reviewer"):
        decisions.import_csv(store, sheet)
    with pytest.raises(InputError, match="reviewer name is empty"):
        decisions.import_csv(store, sheet, reviewer="")
    assert decisions.import_csv(store, sheet, reviewer="cy") == 2
    assert decisions.import_csv(store, sheet, reviewer="cy") == 0
    assert decisions.current_decisions(store, reviewer="cy")["decision"].tolist() == ["include", "exclude"]


def test_import_validates_every_row_before_writing(store, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("record_id,reviewer,decision,reason\n"
                   "pmid:1,bob,include,\n"
                   "pmid:2,bob,exclude,preclinical\n"
                   "pmid:3,bob,yes,\n")
    with pytest.raises(InputError) as info:
        decisions.import_csv(store, bad)
    assert "row 4 column decision" in str(info.value) and "'yes'" in str(info.value)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("record_id,reviewer,decision\npmid:1,bob,include\npmid:42,bob,include\n")
    with pytest.raises(InputError, match="row 3 column record_id: record 'pmid:42'"):
        decisions.import_csv(store, unknown)
    reason = tmp_path / "reason.csv"
    reason.write_text("record_id,reviewer,decision,reason\npmid:1,bob,exclude,boring\n")
    with pytest.raises(InputError, match="row 2 column reason"):
        decisions.import_csv(store, reason)
    with pytest.raises(InputError, match="no rows for reviewer 'eve'"):
        decisions.import_csv(store, unknown, reviewer="eve")
    assert store.decisions().empty


def test_cli_export_and_import(tmp_path, capsys):
    src = _store(tmp_path / "a.sqlite")
    dst = _store(tmp_path / "b.sqlite")
    decisions.record_decision(src, "pmid:3", "bob", "maybe", note="check full text")
    decisions.record_decision(src, "pmid:4", "ana", "include")
    out = tmp_path / "out" / "bob.csv"
    assert main(["decisions", "export", "--store", str(src.path), "--out", str(out), "--reviewer", "bob"]) == 0
    assert [r["record_id"] for r in _read(out)] == ["pmid:3"]
    assert main(["decisions", "import", "--store", str(dst.path), str(out)]) == 0
    assert main(["decisions", "import", "--store", str(dst.path), str(out)]) == 0
    assert len(dst.decisions()) == 1
    out.write_text(out.read_text().replace("maybe", "perhaps"))
    assert main(["decisions", "import", "--store", str(dst.path), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "row 2 column decision" in err[0]
    assert main(["decisions", "import", "--store", str(dst.path), str(out), "--reviewer", ""]) == 2
    assert "reviewer name is empty" in capsys.readouterr().err
    assert main(["decisions", "export", "--store", str(tmp_path / "missing.sqlite"), "--out", str(out)]) == 2
    assert not (tmp_path / "missing.sqlite").exists()


WRITER = textwrap.dedent("""
    import sys
    from reviewlib.screening import decisions
    from reviewlib.store import ReviewStore
    store = ReviewStore(sys.argv[1])
    i = 0
    while True:
        i += 1
        record = "pmid:%d" % (i % 50 + 1)
        decision_id = decisions.record_decision(store, record, "ana", ("include", "exclude", "maybe")[i % 3],
                                                note="click %d" % i)
        sys.stdout.write("%d\\n" % decision_id)
        sys.stdout.flush()
""")


def test_every_acknowledged_decision_survives_sigkill(tmp_path):
    path = tmp_path / "review.sqlite"
    _store(path, n=50).close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    acknowledged = []
    try:
        for line in proc.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) >= 200:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    store = ReviewStore(path)
    stored = set(store.decisions()["decision_id"])
    assert len(acknowledged) == 200 and set(acknowledged) <= stored
    assert store.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # the current state derives from what is there
    assert len(decisions.current_decisions(store, reviewer="ana")) == min(50, len(stored))


# -- final decisions on random histories, against a record-by-record reference --------------
def _kind_class(kind):
    return kind if kind in ("resolution", "rule") else "human"


def _reference_final(rows, stage):
    """Replay each record's history on its own and apply the resolution rule, one record at a time."""
    by_record = {}
    for r in sorted(rows, key=lambda r: (r["created_at"], r["decision_id"])):
        if r["stage"] == stage:
            by_record.setdefault(r["record_id"], []).append(r)
    final = {}
    for record_id, rows_of_record in by_record.items():
        stacks = {}
        for r in rows_of_record:
            if r["kind"] != "undo":
                stacks.setdefault((r["reviewer"], _kind_class(r["kind"])), []).append(r)
                continue
            named = re.match(r"^undoes (\w+) decision of (\S+)", r["note"] or "")
            stack = stacks.get((r["reviewer"], _kind_class(named.group(1)) if named else "human"), [])
            hits = [i for i, x in enumerate(stack) if named and x["created_at"] == named.group(2)]
            if stack:
                stack.pop(hits[-1] if hits else -1)
        tops = sorted((s[-1] for s in stacks.values() if s), key=lambda r: (r["created_at"], r["decision_id"]))
        resolutions = [r for r in tops if r["kind"] == "resolution"]
        humans = [r for r in tops if _kind_class(r["kind"]) == "human"]
        if resolutions:
            r = resolutions[-1]
            final[record_id] = (r["decision"], r["reason"], "resolution", r["reviewer"])
        elif humans:
            names = ", ".join(sorted(r["reviewer"] for r in humans))
            if len({r["decision"] for r in humans}) > 1:
                final[record_id] = ("conflict", None, "conflict", names)
            else:
                reasons = []
                for r in humans:
                    if r["reason"] and r["reason"] not in reasons:
                        reasons.append(r["reason"])
                final[record_id] = (humans[0]["decision"], "; ".join(reasons) or None,
                                    "single" if len(humans) == 1 else "agreed", names)
        elif tops:
            r = tops[-1]
            final[record_id] = (r["decision"], r["reason"], "rules", "rules")
    return final


def _random_history(rng, n_records):
    """Rules, three reviewers changing their minds and undoing, resolutions; tied times; shuffled ids."""
    rows, tick = [], 0
    reasons = [None, "preclinical", "language", "wrong-population", "no-data"]

    def stamp():
        nonlocal tick
        tick += rng.random() < 0.85  # some rows share a time: decision_id breaks the tie
        return f"2024-05-01T00:00:00.{tick:06d}Z"

    for i in range(1, n_records + 1):
        record = f"pmid:{i}"
        for stage in ("title-abstract", "full-text") if rng.random() < 0.3 else ("title-abstract",):
            if rng.random() < 0.8:
                reason = rng.choice(["preclinical", "publication-type; preclinical", None])
                rows.append((record, "rules", stage, rng.choice(["include", "exclude", "unsure"]), reason, None,
                             "rule", stamp()))
            made = []
            for _ in range(rng.randrange(0, 6)):
                who = rng.choice(["ana", "bob", "cy", "dee", "eve"])
                if made and rng.random() < 0.25:
                    target = rng.choice(made)
                    note = None if rng.random() < 0.1 else \
                        f"undoes {target[6]} decision of {target[7]} ({target[3]})"
                    rows.append((record, target[1], stage, "undo", None, note, "undo", stamp()))
                    continue
                kind = "resolution" if who in ("dee", "eve") else "human"
                decision = rng.choice(["include", "exclude", "exclude", "maybe"])
                reason = rng.choice(reasons) if decision == "exclude" else None
                made.append((record, who, stage, decision, reason, None, kind, stamp()))
                rows.append(made[-1])
    rng.shuffle(rows)
    return rows


def test_final_decisions_match_a_record_by_record_replay_on_random_histories(tmp_path):
    rng = random.Random(20240501)
    store = _store(tmp_path / "review.sqlite", n=900)
    rows = _random_history(rng, 900)
    with store.transaction() as con:
        con.executemany("INSERT INTO decisions(record_id, reviewer, stage, decision, reason, note, kind, created_at) "
                        "VALUES(?, ?, ?, ?, ?, ?, ?, ?)", rows)
    history = store.decisions().astype(object).where(store.decisions().notna(), None).to_dict("records")
    assert len(history) > 3000 and {r["kind"] for r in history} == {"rule", "human", "resolution", "undo"}
    for stage in ("title-abstract", "full-text"):
        expected = _reference_final(history, stage)
        final = decisions.final_decisions(store, stage)
        got = {r["record_id"]: (r["decision"], r["reason"], r["basis"], r["reviewers"])
               for r in final.to_dict("records")}
        assert len(final) == len(got) and list(final.columns) == decisions.FINAL_COLUMNS
        assert got == expected
        assert {v[2] for v in got.values()} == {"resolution", "agreed", "single", "conflict", "rules"}
        assert decisions.included(store, stage) == sorted(r for r, v in expected.items() if v[0] == "include")


def test_final_decisions_of_an_empty_stage(store):
    final = decisions.final_decisions(store, "full-text")
    assert final.empty and list(final.columns) == decisions.FINAL_COLUMNS
    assert decisions.included(store, "full-text") == []


def test_an_undo_without_note_undoes_the_last_call(store, tmp_path):
    # a note on some row and none on the undo: pandas reads the missing note as float NaN (a crash before)
    sheet = tmp_path / "undo.csv"
    sheet.write_text("record_id,reviewer,decision,reason,kind,note,created_at\n"
                     "pmid:1,ana,exclude,wrong-population,human,myeloma,2024-05-01T10:00:00Z\n"
                     "pmid:1,ana,include,,human,,2024-05-01T10:01:00Z\n"
                     "pmid:1,ana,undo,,undo,,2024-05-01T10:02:00Z\n")
    assert decisions.import_csv(store, sheet) == 3
    assert decisions.current_decisions(store)["decision"].tolist() == ["exclude"]
    assert decisions.final_decisions(store)["decision"].tolist() == ["exclude"]


def test_exported_decisions_are_as_readable_as_any_file_the_user_writes(store, tmp_path):
    # written through reviewlib.atomic (a second reviewer must be able to read the sheet): not 0600
    decisions.record_decision(store, "pmid:1", "ana", "include")
    umask = os.umask(0)
    os.umask(umask)
    out = decisions.export_csv(store, tmp_path / "share" / "ana.csv")
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~umask)
    assert [r["decision"] for r in _read(out)] == ["include"]
    assert [p.name for p in out.parent.iterdir()] == ["ana.csv"]


def test_an_exclude_without_reason_is_refused_on_import_as_in_the_screener(store, tmp_path, capsys):
    # one rule (decisions.reason_required) for the screener and for imports
    sheet = tmp_path / "bob.csv"
    sheet.write_text("pmid,reviewer,decision,reason\n1,bob,include,\n2,bob,exclude,\n")
    code = main(["decisions", "import", "--store", str(store.path), str(sheet)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "row 3 column reason: an exclude needs an exclusion reason, as in the screener" in err
    assert decisions.current_decisions(store).empty                      # nothing imported
    assert main(["decisions", "import", "--store", str(store.path), str(sheet),
                 "--allow-exclude-without-reason"]) == 0
    assert decisions.current_decisions(store)["decision"].tolist() == ["include", "exclude"]
    assert decisions.reason_required({"preclinical": "Preclinical"}) and not decisions.reason_required({})
    assert not decisions.reason_required({"preclinical": "Preclinical"}, require_reason=False)
