"""Outcomes as events among patients: protocol section, extractor on hand-written sentences, store round trip."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from reviewlib.errors import InputError, ProtocolError
from reviewlib.evidence import outcomes as oc
from reviewlib.evidence.synthesis import pool_proportions
from reviewlib.protocol import load_protocol
from reviewlib.store import ReviewStore

SENTENCES = yaml.safe_load((Path(__file__).parent / "data" / "outcomes" / "sentences.yaml").read_text())


@pytest.fixture(scope="module")
def default_outcomes():
    return oc.load_outcomes(load_protocol("car-t-autoimmune"))


def test_default_protocol_declares_the_issue_outcomes(default_outcomes):
    names = [o.name for o in default_outcomes]
    assert names == ["remission", "any response", "relapse", "CRS any grade", "CRS grade >= 3", "ICANS",
                     "serious infection", "death"]


def _got(outcomes, case):
    by_name = {o.name: o for o in outcomes}
    out = {}
    for name in case["expected"]:
        res = oc.extract_text(case.get("title"), case.get("text"), by_name[name], case.get("n_patients"))
        out[name] = f"{res['events']}/{res['n']}" if res else None
    return out


@pytest.mark.parametrize("case_id", ["brief-count-of-n", "brief-percent-of-n", "brief-none-observed"])
def test_the_issue_examples(default_outcomes, case_id):
    case = next(c for c in SENTENCES if c["id"] == case_id)
    assert _got(default_outcomes, case) == case["expected"]


def test_accuracy_on_hand_written_sentences(default_outcomes):
    """Every (sentence, outcome) pair scored; the first measured accuracy is in the README."""
    pairs = [(c["id"], name, exp, got) for c in SENTENCES for name, (exp, got) in
             ((n, (c["expected"][n], g)) for n, g in _got(default_outcomes, c).items())]
    right = sum(exp == got for _, _, exp, got in pairs)
    misses = [(i, n, e, g) for i, n, e, g in pairs if e != g]
    assert len(pairs) == 33
    assert right / len(pairs) >= 0.85, misses


def test_evidence_sentence_is_kept(default_outcomes):
    crs = next(o for o in default_outcomes if o.name == "CRS any grade")
    text = "Twelve patients were infused. CRS occurred in 12 of 15 patients. No deaths occurred."
    res = oc.extract_text("A trial", text, crs, 15)
    assert res["evidence"] == "CRS occurred in 12 of 15 patients." and res["rule"] == "count of n"


def test_nothing_found_is_not_reported(default_outcomes):
    icans = next(o for o in default_outcomes if o.name == "ICANS")
    assert oc.extract_text("CD19 CAR-T in SLE", "Five patients were treated.", icans, 5) is None
    # a negation without a known n says nothing about a denominator: not reported
    assert oc.extract_text(None, "No ICANS was observed.", icans, None) is None


def test_protocol_outcome_without_words_is_one_line():
    with pytest.raises(ProtocolError, match="outcome 'ICANS' has no words: list the words that state it"):
        oc.load_outcomes([{"name": "ICANS", "words": []}])
    with pytest.raises(ProtocolError, match="outcome 2 has no name"):
        oc.load_outcomes([{"name": "death", "words": ["died"]}, {"words": ["x"]}])
    with pytest.raises(ProtocolError, match="not a valid regular expression"):
        oc.load_outcomes([{"name": "death", "words": ["(died"]}])


def test_store_round_trip_reviewer_wins_and_pools(tmp_path, default_outcomes):
    records = pd.DataFrame([
        {"record_id": "pmid:1", "title": "CD19 CAR-T in SLE", "abstract": "CRS occurred in 3 of 5 patients."},
        {"record_id": "pmid:2", "title": "CAR-T in SSc", "abstract": "Grade 1 CRS in 50% of 4 patients."},
        {"record_id": "pmid:3", "title": "CAR-T in myositis", "abstract": "No CRS was observed."},
        {"record_id": "pmid:4", "title": "CAR-T in MG", "abstract": "Patients improved."},
    ])
    found = oc.extract_outcomes(records, default_outcomes, n_patients={"pmid:3": 6, "pmid:4": 3})
    crs = found[found["outcome"] == "CRS any grade"].set_index("record_id")
    assert crs["events"].to_dict() == {"pmid:1": 3, "pmid:2": 2, "pmid:3": 0}
    assert crs.loc["pmid:3", "n"] == 6 and crs.loc["pmid:3", "rule"] == "none, study's n"
    with ReviewStore(tmp_path / "r.sqlite") as store:
        assert oc.save(store, found) == len(found)
        oc.correct(store, "pmid:1", "CRS any grade", 4, 5, "ana", note="table 2 says 4")
        cur = oc.current_outcomes(store)
        row = cur[(cur["record_id"] == "pmid:1") & (cur["outcome"] == "CRS any grade")].iloc[0]
        assert (row["events"], row["n"], row["status"], row["reviewer"]) == (4, 5, "verified", "ana")
        assert row["evidence"] == "CRS occurred in 3 of 5 patients."     # the machine's sentence stays
        assert len(store.extractions()) == len(found) + 1                # appended, nothing overwritten
        table = oc.events_table(cur, "CRS any grade")
        res = pool_proportions(table["events"], table["n"], labels=table["record_id"])
        assert res.k == 3 and res.events == 6 and res.patients == 15
        with pytest.raises(InputError, match="study pmid:2, outcome 'CRS any grade': events .7. must be between 0 and n .4."):
            oc.correct(store, "pmid:2", "CRS any grade", 7, 4, "ana")
        with pytest.raises(InputError, match="n is missing"):
            oc.correct(store, "pmid:2", "CRS any grade", 1, None, "ana")


def test_held_out_sentences(default_outcomes):
    """Held-out set, never tuned on: first (and only) run 14/15 = 0.933 (baseline 'not reported' 0.200).
    The miss: '... syndrome (ICANS) did not occur.' (a bracket between the mention and 'did not')."""
    held = yaml.safe_load((Path(__file__).parent / "data" / "outcomes" / "sentences_heldout.yaml").read_text())
    pairs = [(exp, got) for c in held for exp, got in
             ((c["expected"][n], g) for n, g in _got(default_outcomes, c).items())]
    assert len(pairs) == 15
    assert sum(e == g for e, g in pairs) >= 14


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_outcomes_sheet_round_trip(tmp_path, default_outcomes, suffix):
    records = pd.DataFrame([
        {"record_id": "pmid:1", "title": "t", "abstract": "=CMD() CRS occurred in 3 of 5 patients."},
        {"record_id": "pmid:2", "title": "t", "abstract": "Patients improved."}])
    studies = pd.DataFrame({"record_id": ["pmid:1", "pmid:2"], "study": ["Liu 2023a", "de Vries 2024"]})
    with ReviewStore(tmp_path / "r.sqlite") as store:
        oc.save(store, oc.extract_outcomes(records, default_outcomes))
        path = oc.export_sheet(store, tmp_path / f"outcomes{suffix}", outcomes=["CRS any grade", "ICANS"],
                               studies=studies)
        read = (pd.read_excel(path, dtype=str).fillna("") if suffix == ".xlsx"
                else pd.read_csv(path, dtype=str, keep_default_na=False))
        assert len(read) == 4
        first = read.iloc[0]
        assert (first["current_value"], first["status"]) == ("3/5", "machine")
        if suffix == ".xlsx":                           # a string cell, never a formula (safe_cells)
            assert first["evidence"].startswith("=")
            import openpyxl
            ws = openpyxl.load_workbook(path)["outcomes"]
            assert not [c for row in ws.iter_rows() for c in row if c.data_type == "f"]
        else:
            assert first["evidence"].startswith("'=")                   # formula neutralised
        read.loc[0, ["corrected_value", "reviewer"]] = ["4/5", "ana"]
        read.loc[3, ["corrected_value", "reviewer"]] = ["0/7", "ana"]   # ICANS for de Vries, not in the text
        (read.to_excel(path, index=False) if suffix == ".xlsx" else read.to_csv(path, index=False))
        assert oc.import_sheet(store, path) == 2
        assert oc.import_sheet(store, path) == 0
        cur = oc.current_outcomes(store).set_index(["record_id", "outcome"])
        assert (cur.loc[("pmid:1", "CRS any grade"), "events"], cur.loc[("pmid:2", "ICANS"), "n"]) == (4, 7)
        read.loc[0, "corrected_value"] = "9/5"
        (read.to_excel(path, index=False) if suffix == ".xlsx" else read.to_csv(path, index=False))
        before = len(store.extractions())
        with pytest.raises(InputError, match=r"line 2: study pmid:1, outcome 'CRS any grade': events \(9\) must be"):
            oc.import_sheet(store, path)
        assert len(store.extractions()) == before
