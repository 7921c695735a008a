"""Risk-of-bias appraisal: tools as data, judgements in the real SQLite store, agreement, sheets, demo."""
from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from reviewlib.errors import InputError
from reviewlib.evidence import appraisal
from reviewlib.protocol import load_protocol
from reviewlib.store import ReviewStore


@pytest.fixture
def store(tmp_path):
    with ReviewStore(tmp_path / "review.sqlite") as s:
        yield s


def test_tools_have_the_published_item_counts_and_answers():
    assert len(appraisal.TOOLS["jbi-case-series"].items) == 10
    assert len(appraisal.TOOLS["jbi-case-report"].items) == 8
    assert len(appraisal.TOOLS["robins-i"].items) == 7
    assert len(appraisal.TOOLS["rob2"].items) == 5
    assert appraisal.TOOLS["rob2"].answers == ("Low", "Some concerns", "High")
    assert "Critical" in appraisal.TOOLS["robins-i"].answers
    assert appraisal.TOOLS["jbi-case-series"].answers == ("Yes", "No", "Unclear", "Not applicable")


@pytest.mark.parametrize("design, tool", [
    ("case report", "jbi-case-report"), ("case series", "jbi-case-series"), ("phase 1", "jbi-case-series"),
    ("phase 1/2", "jbi-case-series"), ("observational", "robins-i"), ("randomised controlled", "rob2"),
    ("Randomized controlled trial", "rob2"), ("review", None), (None, None)])
def test_tool_by_design(design, tool):
    assert appraisal.tool_for_design(design) == tool


def test_latest_wins_history_kept_and_undo_brings_back_the_earlier(store):
    appraisal.record_judgement(store, "pmid:1", "jbi-case-series", "8", "Yes", "ana", "follow-up 12 months")
    appraisal.record_judgement(store, "pmid:1", "jbi-case-series", "8", "No", "ana", "on second reading: 3 lost")
    cur = appraisal.current_judgements(store, reviewer="ana")
    assert cur["answer"].tolist() == ["No"]
    undo = appraisal.undo_last(store, "ana")
    assert undo is not None
    assert appraisal.current_judgements(store, reviewer="ana")["answer"].tolist() == ["Yes"]
    hist = appraisal.history(store)
    assert hist["kind"].tolist() == ["human", "human", "undo"]          # nothing deleted
    assert hist["answer"].tolist()[:2] == ["Yes", "No"]
    # a second undo revokes the first answer too; a third finds nothing
    appraisal.undo_last(store, "ana")
    assert appraisal.current_judgements(store, reviewer="ana").empty
    assert appraisal.undo_last(store, "ana") is None


def test_judgements_survive_reopening_the_store(tmp_path):
    path = tmp_path / "review.sqlite"
    with ReviewStore(path) as s:
        appraisal.record_judgement(s, "pmid:2", "rob2", "D1", "low", "ben")     # case-insensitive answer
    con = sqlite3.connect(path)
    rows = con.execute("SELECT record_id, tool, item, answer, reviewer, kind FROM appraisals").fetchall()
    con.close()
    assert rows == [("pmid:2", "rob2", "D1", "Low", "ben", "human")]


@pytest.mark.parametrize("args, message", [
    (("pmid:1", "jbi-case-series", "3", "Maybe", "ana"),
     "study pmid:1, JBI checklist for case series item 3: answer 'Maybe' is not one of Yes, No, Unclear, Not applicable"),
    (("pmid:1", "rob2", "D1", "Serious", "ana"), "answer 'Serious' is not one of Low, Some concerns, High"),
    (("pmid:1", "rob2", "D9", "Low", "ana"), "item 'D9' is not in RoB 2"),
    (("pmid:1", "grade", "1", "Low", "ana"), "appraisal tool 'grade' is not one of"),
    (("pmid:1", "rob2", "D1", "Low", " "), "reviewer name is empty"),
])
def test_bad_judgements_are_one_line_and_write_nothing(store, args, message):
    with pytest.raises(InputError) as err:
        appraisal.record_judgement(store, *args)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert appraisal.history(store).empty


def _two_reviewers(store):
    answers_a = ["Yes", "Yes", "No", "Unclear", "Yes", "No"]
    answers_b = ["Yes", "No", "No", "Unclear", "Yes", "Yes"]
    for i, (a, b) in enumerate(zip(answers_a, answers_b), start=1):
        appraisal.record_judgement(store, "pmid:9", "jbi-case-series", str(i), a, "ana")
        appraisal.record_judgement(store, "pmid:9", "jbi-case-series", str(i), b, "ben")
    return answers_a, answers_b


def test_agreement_kappa_with_n_conflicts_and_resolution(store):
    a, b = _two_reviewers(store)
    agree = appraisal.agreement(store)
    row = agree.iloc[0]
    assert (row["reviewer_a"], row["reviewer_b"], row["n"], row["agreed"]) == ("ana", "ben", 6, 4)
    # Cohen's kappa by hand: p_o = 4/6; p_e from the marginals
    labels = set(a) | set(b)
    pe = sum((a.count(x) / 6) * (b.count(x) / 6) for x in labels)
    assert row["kappa"] == pytest.approx((4 / 6 - pe) / (1 - pe))
    open_ = appraisal.conflicts(store)
    assert open_["item"].tolist() == ["2", "6"]
    assert open_["ana"].tolist() == ["Yes", "No"] and open_["ben"].tolist() == ["No", "Yes"]
    appraisal.resolve(store, "pmid:9", "jbi-case-series", "2", "cara", take="ben")
    appraisal.resolve(store, "pmid:9", "jbi-case-series", "6", "cara", answer="Unclear", support="consensus")
    final = appraisal.final_judgements(store).set_index("item")
    assert final.loc["2", "answer"] == "No" and final.loc["2", "basis"] == "resolution"
    assert final.loc["6", "answer"] == "Unclear"
    assert final.loc["1", "basis"] == "agreed"
    assert appraisal.conflicts(store).empty
    with pytest.raises(InputError, match="did not judge"):
        appraisal.resolve(store, "pmid:9", "jbi-case-series", "7", "cara", take="ben")


def test_study_levels_from_final_judgements(store):
    _two_reviewers(store)
    appraisal.record_judgement(store, "pmid:3", "robins-i", "overall", "Serious", "ana")
    levels = appraisal.study_levels(appraisal.final_judgements(store)).set_index("record_id")
    assert levels.loc["pmid:9", "level"] == "high"            # items answered No
    assert levels.loc["pmid:3", "level"] == "high" and levels.loc["pmid:3", "basis"] == "overall judgement"


STUDIES = pd.DataFrame([
    {"record_id": "pmid:11", "study": "=HYPERLINK(\"x\") 2023", "design": "case report", "n_patients": 1,
     "age_group": "adult", "follow_up_months": 6, "lymphodepletion": "Flu/Cy", "target": "CD19", "disease": "SLE",
     "crs_grade": 1},
    {"record_id": "pmid:12", "study": "Liu 2023b", "design": "case series", "n_patients": 8, "age_group": "not reported",
     "follow_up_months": "not reported", "lymphodepletion": "Flu/Cy", "target": "CD19", "disease": "SSc",
     "crs_grade": "not reported"},
    {"record_id": "pmid:13", "study": "de Vries 2024", "design": "randomised controlled", "n_patients": 30,
     "follow_up_months": 12},
    {"record_id": "pmid:14", "study": "A review", "design": "review"},
])


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_sheet_round_trip(store, tmp_path, suffix):
    path = appraisal.export_sheet(store, tmp_path / f"appraisal{suffix}", STUDIES, reviewer="ana",
                                  design="design")
    sheet = pd.read_excel(path, dtype=str).fillna("") if suffix == ".xlsx" else pd.read_csv(path, dtype=str,
                                                                                          keep_default_na=False)
    assert len(sheet) == 8 + 10 + 6                      # the review has no tool: left out
    if suffix == ".xlsx":                                # a string cell, never a formula (safe_cells)
        import openpyxl
        cell = openpyxl.load_workbook(path)["appraisal"]["B2"]
        assert cell.data_type == "s" and cell.value.startswith("=") and sheet["study"].iloc[0] == cell.value
    else:
        assert sheet["study"].iloc[0].startswith("'=")   # formula neutralised
    sheet.loc[sheet["record_id"] == "pmid:13", "answer"] = "Low"
    sheet.loc[(sheet["record_id"] == "pmid:12") & (sheet["item"] == "4"), ["answer", "support"]] = ["No", "-selected"]
    if suffix == ".xlsx":
        sheet.to_excel(path, index=False)
    else:
        sheet.to_csv(path, index=False)
    assert appraisal.import_sheet(store, path) == 7
    assert appraisal.import_sheet(store, path) == 0      # importing twice adds nothing
    cur = appraisal.current_judgements(store, reviewer="ana")
    assert set(cur[cur["record_id"] == "pmid:13"]["answer"]) == {"Low"}
    row = cur[(cur["record_id"] == "pmid:12") & (cur["item"] == "4")].iloc[0]
    assert (row["answer"], row["support"]) == ("No", "-selected")


def test_sheet_with_a_bad_answer_names_the_line_and_writes_nothing(store, tmp_path):
    path = appraisal.export_sheet(store, tmp_path / "a.csv", STUDIES.iloc[:2], reviewer="ana", design="design")
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    sheet.loc[0, "answer"] = "Yes"
    sheet.loc[3, "answer"] = "Probably"
    sheet.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"line 5: study pmid:11, JBI checklist for case reports item 4: answer "
                                         r"'Probably' is not one of"):
        appraisal.import_sheet(store, path)
    assert appraisal.history(store).empty


def test_demo_appraiser_is_labelled_scripted_and_idempotent(store):
    n = appraisal.demo_appraise(store, STUDIES, load_protocol("car-t-autoimmune"))
    assert n == 8 + 10 + 6
    hist = appraisal.history(store)
    assert set(hist["reviewer"]) == {appraisal.DEMO_REVIEWER} and "demo" in appraisal.DEMO_REVIEWER
    assert hist["support"].str.startswith("demo (scripted from the study table): ").all()
    cur = appraisal.current_judgements(store).set_index(["record_id", "item"])
    # judged from the reported fields: follow-up reported -> Yes, not reported -> No
    assert cur.loc[("pmid:11", "6"), "answer"] == "Yes"
    assert cur.loc[("pmid:12", "8"), "answer"] == "No"
    assert cur.loc[("pmid:12", "10"), "answer"] == "Not applicable"     # 8 patients, descriptive
    assert appraisal.demo_appraise(store, STUDIES, load_protocol("car-t-autoimmune")) == 0


def test_a_store_from_before_appraisals_gains_the_table_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.sqlite"
    with ReviewStore(path) as s:
        s.append_decision("pmid:1", "ana", "title-abstract", "include")
    con = sqlite3.connect(path)
    con.execute("DROP TABLE appraisals")           # as a store written before this table existed
    con.commit()
    con.close()
    with ReviewStore(path) as s:
        assert len(s.decisions()) == 1
        appraisal.record_judgement(s, "pmid:1", "jbi-case-report", "1", "Yes", "ana")
        assert len(appraisal.history(s)) == 1
