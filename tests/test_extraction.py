"""reviewlib.evidence.extraction: schema from the protocol, extractor, reviewer corrections, CLI, accuracy.

Text comes from tests/data/extraction/car_t_abstracts_testset.yaml (68 hand-checked abstracts
written for these tests); the store is a real SQLite file; the CLI runs in-process and once as
a real subprocess.
"""
from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import yaml

from reviewlib.evidence import extraction as ex
from reviewlib.cli import main as cli_main
from reviewlib.errors import InputError, ProtocolError
from reviewlib.protocol import PACKAGE_DATA, load_protocol
from reviewlib.records import conform, write_csv
from reviewlib.store import ReviewStore

DATA = Path(__file__).resolve().parent / "data"
TESTSET = DATA / "extraction" / "car_t_abstracts_testset.yaml"
ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "notebooks" / "car-t-autoimmune.yaml"


@pytest.fixture(scope="module")
def schema() -> ex.Schema:
    return ex.load_schema(load_protocol(PROTOCOL))


@pytest.fixture(scope="module")
def handchecked() -> list[dict]:
    return ex.load_testset(TESTSET)


def handchecked_records(items: list[dict], ids: list[str] | None = None) -> pd.DataFrame:
    """The hand-checked abstracts as a records table (PMIDs 1..n, first author invented)."""
    rows = []
    for i, it in enumerate(items, start=1):
        if ids is None or it["id"] in ids:
            rows.append({"pmid": str(i), "title": it["title"], "abstract": it["abstract"],
                         "authors": [f"Author{i} A"], "year": 2020 + i % 6})
    return conform(pd.DataFrame(rows))


def one(schema: ex.Schema, abstract: str, title: str = "") -> dict[str, ex.Extracted]:
    return ex.extract_record(title, abstract, schema)


# -- accuracy on the hand-checked test set ------------------------------------------------
def test_handchecked_testset_is_varied(handchecked):
    assert len(handchecked) >= 60
    text = " ".join(f"{i['title']} {i['abstract']}" for i in handchecked).lower()
    for word in ("basket", "caar", "allogeneic", "car-nk", "bcma", "randomi", "mice", "review", "case report",
                 "without lymphodepletion", "twelve", "cd19/bcma" if "cd19/bcma" in text else "compound"):
        assert word in text, word
    designs = {i["expected"].get("design") for i in handchecked}
    assert {"case report", "case series", "phase 1", "phase 1/2", "phase 2", "randomised controlled",
            "observational", "preclinical", "review"} <= designs


def test_accuracy_floor_on_handchecked_testset(handchecked, schema):
    acc = ex.evaluate(handchecked, schema).set_index("field")
    assert list(acc.columns) == ["n", "correct", "accuracy"]
    # the targets are >= 0.90 (disease, target, design) and >= 0.85 (n_patients,
    # lymphodepletion); this development set measures 1.00 / 0.985, so the floor sits a bit below that
    for field in ("disease", "target", "design", "n_patients", "lymphodepletion"):
        assert acc.loc[field, "accuracy"] >= 0.95, acc
    assert acc.loc["disease", "n"] >= 60 and acc.loc["n_patients", "n"] >= 60


def test_heldout_set_regression_floor(schema):
    """The first held-out set was not tuned on by the first extraction engineer; the second one used
    it as development data (its shorthand: LN, PV, pts, N=9, Flu + Cy), so it now measures 1.00 and
    is no longer an honest estimate (heldout2 is).  This floor guards against regressions."""
    acc = ex.evaluate(ex.load_testset(DATA / "extraction" / "car_t_abstracts_heldout.yaml"), schema)
    acc = acc.set_index("field")["accuracy"]
    for field in ("disease", "target", "design", "n_patients", "lymphodepletion"):
        assert acc[field] >= 0.95, acc


# Floors a little below what benchmarks/extraction.py measured on the SECOND held-out set
# (46 abstracts written before the second extraction engineer read the extractor and committed before
# it was run on them). They guard against regressions; the benchmark prints the figures.
# Measured once (first and only run): 1.000 / 0.976 / 0.913 / 0.955 / 0.957.
HELDOUT2_FLOORS = {"disease": 0.95, "target": 0.93, "design": 0.87, "n_patients": 0.91, "lymphodepletion": 0.91}


def test_heldout2_set_regression_floor(schema):
    items = ex.load_testset(DATA / "extraction" / "car_t_abstracts_heldout2.yaml")
    assert len(items) >= 40
    acc = ex.evaluate(items, schema).set_index("field")["accuracy"]
    for field, floor in HELDOUT2_FLOORS.items():
        assert acc[field] >= floor, acc


def test_shorthand_and_regimen_spellings(schema):
    """Written-for-the-test sentences in the shorthand the first held-out set exposed (LN, PV, pts,
    N=9, "Flu ... + Cy", "Cy ... + Flu", FC, LD, mo) and a few more of the same kind."""
    cases = [
        ("Pts with biopsy-proven LN, N=9, received CD19-CART after Flu 30 mg/m2 x3 d + Cy 500 mg/m2 x3 d.",
         {"disease": "SLE", "n_patients": "9", "lymphodepletion": "Flu/Cy", "design": "case series"}),
        ("Seven pts with refractory PV received DSG3-CAART.", {"disease": "pemphigus", "n_patients": "7"}),
        ("An n of 12 patients with SSc received CAR T cells after Cy 500 mg/m2 + Flu 30 mg/m2.",
         {"n_patients": "12", "lymphodepletion": "Flu/Cy"}),
        ("Eight patients with IIM received CD19 CAR T cells after the FC regimen.",
         {"disease": "myositis", "lymphodepletion": "Flu/Cy"}),
        ("Six patients with AAV (GPA or MPA) got CAR T cells; LD was Cy 1 g/m2.",
         {"disease": "ANCA vasculitis", "lymphodepletion": "Cy"}),
        ("Patients with RA (n = 3) and pSS (n = 2) received CAR T cells.",
         {"disease": "rheumatoid arthritis; Sjogren", "n_patients": "5"}),
        ("Patient 1 (MG, 34 y, F) and patient 2 (MS, 41 y, M) received CD19 CAR T cells.",
         {"disease": "myasthenia gravis; multiple sclerosis", "n_patients": "2", "age_group": "adult"}),
        ("A 3-patient series of SLE treated with CAR T cells; all in remission at 12 mo.",
         {"n_patients": "3", "follow_up_months": "12"}),
        ("CAR T cells were given to 5 patients with NMDAR encephalitis.", {"disease": "other"}),
        ("Eleven patients received BCMA CAR T cells; the LD regimen was not reported.",
         {"lymphodepletion": "not reported"}),
        ("Eleven patients received BCMA CAR T cells; no LD chemo was required.", {"lymphodepletion": "none"}),
    ]
    for abstract, want in cases:
        r = one(schema, abstract)
        got = {k: r[k].value for k in want}
        assert got == want, abstract


def test_was_not_reported_is_not_a_negation():
    assert ex.is_negated("The conditioning regimen was not reported.", 4, 16) is False
    assert ex.is_negated("The conditioning regimen was not given.", 4, 16) is True
    text = "No details of lymphodepletion were given."
    assert ex.is_negated(text, text.index("lymph"), text.index("lymph") + 15) is False
    text = "No lymphodepletion was given."
    assert ex.is_negated(text, 3, 18) is True


def test_numeric_fallback_from_design(schema):
    """A case report with no number in the text is one patient; a large series with no design
    word is an observational cohort, a small one a case series."""
    r = one(schema, "", title="Anti-CD20 CAR-T cells in a patient with microscopic polyangiitis: a case report")
    assert (r["design"].value, r["n_patients"].value) == ("case report", "1")
    assert one(schema, "Seventy patients with SLE received CAR T cells.")["design"].value == "observational"
    assert one(schema, "Seven patients with SLE received CAR T cells.")["design"].value == "case series"


def test_numeric_fallback_value_must_be_a_number(tmp_path):
    section = {"fields": {
        "design": {"kind": "categorical", "values": {"case report": ["case report"]}},
        "n": {"kind": "integer", "patterns": ["{NUM} patients"],
              "fallback": {"from": "design", "rules": [{"equals": "case report", "value": "one"}]}}}}
    assert ex.extract_record("A case report", "", ex.load_schema(section))["n"].value == "1"
    section["fields"]["n"]["fallback"]["rules"][0]["value"] = "many"
    with pytest.raises(ProtocolError, match="fallback value"):
        ex.load_schema(section)


def test_compare_scores_only_expected_fields(schema):
    items = [{"id": "x", "title": "", "abstract": "Five patients with SLE received CD19 CAR T cells.",
              "expected": {"n_patients": 5, "target": "BCMA"}}]
    detail = ex.compare(items, schema)
    assert sorted(detail["field"]) == ["n_patients", "target"]
    assert detail.set_index("field")["correct"].to_dict() == {"n_patients": True, "target": False}


# -- numbers -----------------------------------------------------------------------------
@pytest.mark.parametrize("text, value", [("15", 15), ("fifteen", 15), ("Forty-two", 42), ("twenty one", 21),
                                         ("5.5", 5.5), ("a dozen", 12), ("patients", None)])
def test_parse_number_digits_and_words(text, value):
    assert ex.parse_number(text) == value


@pytest.mark.parametrize("abstract, n", [
    ("We report 15 patients (8 SLE, 3 myositis, 4 SSc) treated with CD19 CAR T cells.", "15"),
    ("Five patients with refractory lupus received CAR T cells.", "5"),
    ("In this phase 1 trial (n = 9), CAR T cells were given.", "9"),
    ("We treated two patients with myasthenia gravis and one with NMOSD with BCMA CAR T cells.", "3"),
    ("Thirteen patients with SLE, 11 with lupus nephritis, received cCAR T cells.", "13"),
    ("A 23-year-old woman with lupus nephritis received CD19 CAR T cells.", "1"),
    ("Remission occurred in 10 of 12 patients after CAR T cells.", "12"),
    ("B cells were depleted within 12 days in all patients.", "not reported"),
])
def test_patient_numbers(schema, abstract, n):
    assert one(schema, abstract)["n_patients"].value == n


def test_follow_up_converted_to_months(schema):
    r = one(schema, "Twelve patients received CAR T cells. Median follow-up was 2 years. Response at week 24.")
    assert r["follow_up_months"].value == "24"
    assert r["follow_up_months"].evidence == "Median follow-up was 2 years."


# -- lymphodepletion and negation --------------------------------------------------------
@pytest.mark.parametrize("abstract, value", [
    ("Cells were infused without lymphodepletion.", "none"),
    ("No conditioning chemotherapy was given before the infusion.", "none"),
    ("Conventional lymphodepletion was omitted because of infection.", "none"),
    ("Lymphodepletion consisted of fludarabine (25 mg/m2) and cyclophosphamide (1000 mg/m2).", "Flu/Cy"),
    ("Patients received Flu/Cy before infusion.", "Flu/Cy"),
    ("Six patients received NK cells after lymphodepletion with cyclophosphamide without fludarabine.", "Cy"),
    ("She was refractory to mycophenolate, cyclophosphamide and belimumab. CD19 CAR T cells were given.",
     "not reported"),
    ("The patient received CAR T cells after lymphodepleting chemotherapy.", "agents not named"),
    ("Patients underwent lymphodepleting chemotherapy with fludarabine and cyclophosphamide.", "Flu/Cy"),
    ("CAR T cells were given without lymphodepleting chemotherapy.", "none"),
])
def test_lymphodepletion_and_negation(schema, abstract, value):
    assert one(schema, abstract)["lymphodepletion"].value == value


# registry phrasings (tests/data/registry_testset dev part): cell source and disease names
@pytest.mark.parametrize("abstract, value", [
    ("CRT-402 is an in vivo CD19-targeted CAR-T cell therapy designed to deplete B cells.", "in vivo"),
    ("Safety of a targeted BCMA in vivo LV injection in refractory lupus.", "in vivo"),
    ("CAR T cells showed in vivo expansion and persistence after autologous infusion.", "autologous"),
    ("Universal CD19 CAR-T cells in refractory lupus.", "allogeneic"),
    ("UCAR T-cell therapy targeting CD19/BCMA.", "allogeneic"),
    ("A universal screening questionnaire was used before CAR-T therapy.", "not reported"),
    ("Participants have their own blood immune cells collected by leukapheresis.", "autologous"),
    ("Specialized immune cells called CAR-T regulatory cells that target CD19.", "CAR-Treg"),
])
def test_cell_source_registry_phrasings(schema, abstract, value):
    assert one(schema, abstract)["cell_source"].value == value


@pytest.mark.parametrize("abstract, value", [
    ("Patients with recurrent or refractory IgG4 related diseases.", "other"),
    ("Chronic inflammatory demyelinating polyradiculoneuropathy (CIDP) refractory to IVIG.", "other"),
    ("Multi-drug resistant nephrotic syndrome and IgA nephropathy (IgAN).", "other"),
    ("Refractory lupus nephritis and myasthaenia gravis.", "SLE; myasthenia gravis"),
])
def test_disease_registry_phrasings(schema, abstract, value):
    assert one(schema, abstract)["disease"].value == value


@pytest.mark.parametrize("title, value", [
    ("A Study of CNTY-101 in Participants With Refractory B Cell-mediated Autoimmune Diseases", "not reported"),
    ("NEUK203-215 Injection in Adult Chinese Patients With Autoimmune Diseases", "not reported"),
    ("KYV-101 in 3 patients with myasthenia gravis", "3"),
    ("36-72 patients are planned to be enrolled in the dose-escalation trial", "72"),
])
def test_a_product_code_number_is_not_a_patient_count(schema, title, value):
    assert one(schema, "", title)["n_patients"].value == value


def test_negated_safety_mentions(schema):
    r = one(schema, "Twelve patients were treated. No ICANS occurred; two patients had infections. "
                    "Grade 3 or higher CRS did not occur; grade 1 CRS was seen in 7.")
    assert r["icans"].value == "none"
    assert r["infections"].value == "yes"
    assert r["crs_grade"].value == "1"


def test_nothing_found_is_not_reported_with_no_evidence(schema):
    r = one(schema, "Autoimmune disease is common. Treatment options are limited.", title="An overview")
    for name in ("target", "lymphodepletion", "n_patients", "cell_source", "costimulation"):
        assert r[name].value == ex.NOT_REPORTED and r[name].evidence == ""
    assert r["disease"].value == ex.NOT_REPORTED


def test_evidence_is_the_supporting_sentence_and_confidence_in_range(schema, handchecked):
    r = ex.extract_record(handchecked[0]["title"], handchecked[0]["abstract"], schema)
    assert "fludarabine" in r["lymphodepletion"].evidence
    assert r["lymphodepletion"].evidence in handchecked[0]["abstract"]
    for e in r.values():
        assert 0.0 <= e.confidence <= 1.0


def test_background_sentences_do_not_add_diseases(schema):
    r = one(schema, "BACKGROUND: CD19 CAR T cells have helped in myasthenia gravis and systemic sclerosis. "
                    "METHODS: Seven patients with SLE received CD19 CAR T cells.")
    assert r["disease"].value == "SLE"


def test_acronyms_keep_their_case(schema):
    # "mg/m2" must not read as myasthenia gravis (MG)
    r = one(schema, "Ten patients with SLE received fludarabine 25 mg/m2 and cyclophosphamide.")
    assert r["disease"].value == "SLE"


def test_design_and_derived_controlled(schema):
    rct = one(schema, "We randomly assigned 60 patients to CAR T cells or standard care.")
    assert (rct["design"].value, rct["controlled"].value) == ("randomised controlled", "yes")
    cs = one(schema, "Three patients received CD19 CAR T cells.")  # no cue: from n_patients
    assert (cs["design"].value, cs["controlled"].value) == ("case series", "no")
    rev = one(schema, "In this narrative review we summarise 120 patients treated with CAR T cells.")
    assert rev["design"].value == "review" and rev["n_patients"].value == ex.NOT_REPORTED


# -- the engine holds no CAR-T vocabulary --------------------------------------------------
def test_engine_has_no_domain_words():
    src = inspect.getsource(ex).lower()
    for word in ("cd19", "bcma", "lupus", "fludarabine", "cyclophosphamide", "myasthenia", "car-t", "caar"):
        assert word not in src, word


def test_another_review_declares_its_own_fields(tmp_path):
    proto = tmp_path / "statins.yaml"
    proto.write_text(yaml.safe_dump({
        "review": {"name": "statins"}, "search": {"query": "statins[tiab]"},
        "extraction": {"fields": {
            "drug": {"kind": "categorical", "values": {"atorvastatin": ["atorvastatin"],
                                                       "simvastatin": ["simvastatin", "zocor"]}},
            "n": {"kind": "integer", "patterns": [r"{NUM}\s+(?:\w+\s+){0,2}?participants"]},
        }}}))
    frame = ex.extract(conform(pd.DataFrame([
        {"pmid": "1", "title": "Zocor in the elderly", "abstract": "Two hundred and ten? No: ninety older participants."},
        {"pmid": "2", "title": "A trial", "abstract": "Atorvastatin was given to 40 participants."}])),
        load_protocol(proto))
    assert frame[["drug", "n"]].values.tolist() == [["simvastatin", "90"], ["atorvastatin", "40"]]


# -- schema errors: one line naming the field --------------------------------------------
def _protocol_with(tmp_path: Path, fields: dict) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({"review": {"name": "p"}, "search": {"query": "x"},
                                 "extraction": {"fields": fields}}))
    return p


@pytest.mark.parametrize("fields, words", [
    ({"disease": {"kind": "categorical", "values": {}}}, ["'disease'", "no values"]),
    ({"disease": {"kind": "categorical"}}, ["'disease'", "no values"]),
    ({"dose": {"kind": "fuzzy"}}, ["'dose'", "unknown kind 'fuzzy'"]),
    ({"target": {"kind": "categorical", "values": {"CD19": ["CD19("]}}}, ["'target'", "'CD19('",
                                                                          "not a valid regular expression"]),
    ({"n": {"kind": "integer", "patterns": []}}, ["'n'", "no patterns"]),
    ({"controlled": {"kind": "derived", "from": "design"}}, ["'controlled'", "unknown field 'design'"]),
    ({"split": {"kind": "breakdown", "of": "disease"}}, ["'split'", "unknown field 'disease'"]),
    ({"n": {"kind": "integer", "patterns": ["{NUM} x"]}, "split": {"kind": "breakdown", "of": "n"}},
     ["'split'", "not a categorical field"]),
])
def test_schema_errors(tmp_path, fields, words):
    with pytest.raises(ProtocolError) as err:
        ex.load_schema(load_protocol(_protocol_with(tmp_path, fields)))
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_default_protocol_schema_has_the_review_fields(schema):
    assert {"disease", "target", "cell_source", "costimulation", "lymphodepletion", "design", "controlled",
            "n_patients", "follow_up_months", "age_group", "outcomes", "crs_grade", "icans",
            "infections"} <= set(schema.names)
    assert schema.field("disease").multiple
    assert "CAAR" in schema.field("target").allowed and "CD19+BCMA" in schema.field("target").allowed
    assert schema.field("controlled").kind == "derived"


# -- CLI ---------------------------------------------------------------------------------
def test_cli_extract_writes_one_row_per_record(tmp_path, handchecked, capsys):
    records = handchecked_records(handchecked, ["ts01", "ts03", "ts05"])
    rec_csv = write_csv(records, tmp_path / "records.csv")
    out = tmp_path / "out" / "evidence.csv"
    store = tmp_path / "review.sqlite"
    code = cli_main(["extract", "--protocol", str(PROTOCOL), "--records", str(rec_csv), "--out", str(out),
                     "--store", str(store)])
    assert code == 0
    ev = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(ev) == 3 and list(ev["pmid"]) == list(records["pmid"])
    for col in ("disease", "disease_evidence", "disease_confidence", "lymphodepletion_evidence"):
        assert col in ev
    basket = ev.set_index("pmid").loc[records.loc[records["title"].str.contains("compassionate"), "pmid"].iloc[0]]
    assert basket["disease"] == "SLE; systemic sclerosis; myositis"
    assert basket["n_patients"] == "15"
    assert not list(out.parent.glob(".*tmp"))
    with ReviewStore(store) as st:
        assert set(st.extractions()["method"]) == {"machine"}


def test_cli_records_without_abstract_column_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"pmid": ["1"], "title": ["x"]}).to_csv(bad, index=False)
    out = tmp_path / "evidence.csv"
    out.write_text("previous,content\n")
    code = cli_main(["extract", "--protocol", str(PROTOCOL), "--records", str(bad), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and str(bad) in err and "abstract" in err
    assert out.read_text() == "previous,content\n"  # nothing half-written


def test_cli_bad_protocol_exits_nonzero_in_a_real_process(tmp_path, handchecked):
    proto = _protocol_with(tmp_path, {"disease": {"kind": "categorical", "values": {}}})
    rec_csv = write_csv(handchecked_records(handchecked[:2]), tmp_path / "records.csv")
    proc = subprocess.run([sys.executable, "-m", "reviewlib", "extract", "--protocol", str(proto),
                           "--records", str(rec_csv), "--out", str(tmp_path / "e.csv")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'disease'" in lines[0] and "no values" in lines[0]
    assert not (tmp_path / "e.csv").exists()


# -- store, sheet, corrections -----------------------------------------------------------
@pytest.fixture
def extracted_store(tmp_path, handchecked, schema):
    records = handchecked_records(handchecked, ["ts01", "ts04", "ts12"])
    store = ReviewStore(tmp_path / "review.sqlite")
    store.add_records(records)
    frame = ex.extract(store.records(), schema)
    ex.save(store, frame, schema)
    yield store, frame
    store.close()


def test_save_is_idempotent_and_current_values_are_machine(extracted_store, schema):
    store, frame = extracted_store
    n = len(store.extractions())
    assert ex.save(store, frame, schema) == 0 and len(store.extractions()) == n
    cur = ex.current_values(store)  # schema remembered in the store
    assert set(cur["disease_status"]) == {"machine"}
    assert cur.set_index("record_id").loc[frame["record_id"][1], "target"] == "BCMA"


def _fill(sheet: pd.DataFrame, record_id: str, field: str, value: str, reviewer: str = "", note: str = ""):
    mask = (sheet["record_id"] == record_id) & (sheet["field"] == field)
    assert mask.sum() == 1
    sheet.loc[mask, ["corrected_value", "reviewer", "note"]] = [value, reviewer, note]


def test_sheet_csv_round_trip_verified_values_win(extracted_store, tmp_path):
    store, frame = extracted_store
    rid = frame["record_id"][0]
    path = ex.export_sheet(store, tmp_path / "sheet.csv")
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert {"machine_value", "evidence", "corrected_value", "reviewer", "note"} <= set(sheet.columns)
    assert len(sheet) == 3 * len([f for f in ex.stored_schema(store).fields.values() if f.kind != "derived"])
    assert (sheet["corrected_value"] == "").all()
    _fill(sheet, rid, "design", "Randomised controlled", "ana", "full text: randomised")
    _fill(sheet, rid, "disease", "sle; Sjogren")
    sheet.to_csv(path, index=False)
    assert ex.import_sheet(store, path, reviewer="ben") == 2
    cur = ex.current_values(store).set_index("record_id").loc[rid]
    assert (cur["design"], cur["design_status"], cur["design_reviewer"]) == ("randomised controlled", "verified", "ana")
    assert (cur["disease"], cur["disease_reviewer"]) == ("SLE; Sjogren", "ben")
    assert (cur["controlled"], cur["controlled_status"]) == ("yes", "verified")  # follows the corrected design
    assert cur["target_status"] == "machine"
    # history kept, machine rows untouched; re-extraction does not override the reviewer
    hist = store.extractions()
    assert len(hist[(hist["record_id"] == rid) & (hist["field"] == "design")]) == 2
    ex.save(store, frame, ex.stored_schema(store))
    assert ex.current_values(store).set_index("record_id").loc[rid, "design"] == "randomised controlled"


def test_sheet_xlsx_round_trip_with_openpyxl(extracted_store, tmp_path):
    store, frame = extracted_store
    path = ex.export_sheet(store, tmp_path / "sheet.xlsx", record_ids=[frame["record_id"][2]])
    wb = openpyxl.load_workbook(path)
    ws = wb["extraction"]
    header = [c.value for c in ws[1]]
    col = {h: i + 1 for i, h in enumerate(header)}
    for row in range(2, ws.max_row + 1):
        if ws.cell(row, col["field"]).value == "n_patients":
            assert ws.cell(row, col["machine_value"]).value == "3"
            ws.cell(row, col["corrected_value"]).value = 4
            ws.cell(row, col["note"]).value = "one more in the supplement"
    assert "fields" in wb.sheetnames
    wb.save(path)
    assert ex.import_sheet(store, path, reviewer="cara") == 1
    cur = ex.current_values(store).set_index("record_id").loc[frame["record_id"][2]]
    assert (cur["n_patients"], cur["n_patients_status"], cur["n_patients_note"]) == \
        ("4", "verified", "one more in the supplement")


@pytest.mark.parametrize("field, value, words", [
    ("dose", "1e6", ["field 'dose'", "not in the protocol"]),
    ("target", "CD22", ["'CD22' is not an allowed value of target", "CD19"]),
    ("n_patients", "many", ["'many' is not an integer"]),
])
def test_bad_correction_is_one_line_and_nothing_is_written(extracted_store, tmp_path, field, value, words):
    store, frame = extracted_store
    path = ex.export_sheet(store, tmp_path / "sheet.csv")
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    _fill(sheet, frame["record_id"][0], "disease", "SLE", "ana")  # a good row first
    extra = sheet.iloc[[0]].copy()
    extra[["field", "corrected_value", "reviewer"]] = [field, value, "ana"]
    pd.concat([sheet, extra]).to_csv(path, index=False)
    before = len(store.extractions())
    with pytest.raises(InputError) as err:
        ex.import_sheet(store, path)
    msg = str(err.value)
    assert "\n" not in msg and "nothing was imported" in msg
    for w in words:
        assert w in msg
    assert len(store.extractions()) == before


def test_correction_needs_a_reviewer(extracted_store, tmp_path):
    store, frame = extracted_store
    path = ex.export_sheet(store, tmp_path / "sheet.csv")
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    _fill(sheet, frame["record_id"][0], "target", "CD19")
    sheet.to_csv(path, index=False)
    with pytest.raises(InputError, match="no reviewer named"):
        ex.import_sheet(store, path)
    assert ex.import_sheet(store, path, reviewer="dana") == 1


def test_import_sheet_without_extraction_is_an_error(tmp_path):
    with ReviewStore(tmp_path / "empty.sqlite") as store:
        with pytest.raises(InputError, match="no extracted values"):
            ex.current_values(store)


# -- per-disease breakdown of basket studies (field n_by_disease, kind 'breakdown') ---------------
BASKET = DATA / "extraction" / "car_t_basket_testset.yaml"


@pytest.mark.parametrize("abstract, expected", [
    ("We report 15 patients (8 SLE, 3 myositis, 4 SSc) treated with CD19 CAR T cells.",
     "SLE: 8; myositis: 3; systemic sclerosis: 4"),
    ("Fifteen patients were treated: eight with SLE, three with myositis and four with systemic sclerosis.",
     "SLE: 8; myositis: 3; systemic sclerosis: 4"),
    ("Patients with SLE (n = 8) and SSc (n = 4) received CD19 CAR T cells.", "SLE: 8; systemic sclerosis: 4"),
    ("Eight patients received CAR T cells (n=6 lupus nephritis, n=2 myositis).", "SLE: 6; myositis: 2"),
    # the total next to the first disease of the list is not a part
    ("In a case series, 4 patients with SLE and ANCA vasculitis (3 SLE, 1 AAV) received CAR T cells.",
     "SLE: 3; ANCA vasculitis: 1"),
    # synonyms of one value add up; the words are the disease field's own synonyms
    ("Seven patients (4 SLE, 2 lupus nephritis, 1 IIM) received CAR T cells.", "SLE: 6; myositis: 1"),
    # one disease: the breakdown is that disease: n_patients
    ("Twelve patients with refractory SLE received CD19 CAR T cells.", "SLE: 12"),
    # responders per disease are not the enrolment split
    ("Nine patients with SLE or Sjogren's disease received CAR T cells. Remission occurred in 5 SLE "
     "patients and 2 Sjogren patients.", "not reported"),
    ("Patients with SLE, SSc or myositis were treated (n = 18); the split was not given.", "not reported"),
    ("In this narrative review we summarise 40 patients (30 SLE, 10 SSc) treated with CAR T cells.",
     "not reported"),
])
def test_breakdown_of_patients_by_disease(schema, abstract, expected):
    r = one(schema, abstract)["n_by_disease"]
    assert r.value == expected
    if expected == "not reported":
        assert r.evidence in ("", "not applicable: design is review")
    else:
        assert r.evidence and r.raw is not None


def test_breakdown_evidence_is_the_sentence_with_the_split(schema):
    r = one(schema, "BACKGROUND: B cells drive autoimmunity. METHODS: We enrolled 15 patients (8 SLE, 3 myositis, "
                    "4 SSc). RESULTS: Remission in 7 of 8 patients with SLE.")["n_by_disease"]
    assert r.evidence == "We enrolled 15 patients (8 SLE, 3 myositis, 4 SSc)."
    assert 0 < r.confidence <= 0.95


def test_breakdown_accuracy_on_the_basket_testset(schema):
    """15 hand-checked basket abstracts committed before the breakdown extractor ran on them
    (first run: n_by_disease 14/15; the miss, b13, has no stated total and n_patients took a part)."""
    acc = ex.evaluate(ex.load_testset(BASKET), schema).set_index("field")
    assert acc.loc["n_by_disease", "n"] == 15
    assert acc.loc["n_by_disease", "accuracy"] >= 0.9
    assert acc.loc["disease", "accuracy"] >= 0.9


def test_breakdown_on_the_snapshot_basket_studies_matches_their_abstracts(schema):
    """Every basket study of the synthetic snapshot whose abstract states "(k1 X, k2 Y...)": the
    breakdown equals those numbers mapped through the disease synonyms, its values are the truth's
    diseases and it adds up to the truth's n_patients."""
    from reviewlib.sources.pubmed_xml import read_pubmed_xml
    root = PACKAGE_DATA
    truth = pd.read_csv(root / "car-t-autoimmune-truth.csv", dtype=str, keep_default_na=False)
    records = read_pubmed_xml(root / "car-t-autoimmune-snapshot.xml.gz").set_index("pmid")
    short = {"SLE": "SLE", "SSc": "systemic sclerosis", "IIM": "myositis", "MG": "myasthenia gravis",
             "NMOSD": "NMOSD", "AAV": "ANCA vasculitis", "RA": "rheumatoid arthritis", "SjD": "Sjogren",
             "IgG4-RD": "other"}
    label = {"Sjogren's disease": "Sjogren", "IgG4-related disease": "other"}
    checked = 0
    for t in truth[truth["disease"].str.contains(";")].to_dict("records"):
        rec = records.loc[t["pmid"]]
        stated = re.search(r"\((\d+ [A-Za-z][^()]*?)\)", rec["abstract"])
        got = ex.parse_breakdown(ex.extract_record(rec["title"], rec["abstract"], schema)["n_by_disease"].value)
        if not stated:
            continue
        want: dict[str, int] = {}
        for part in stated.group(1).split(", "):
            k, name = part.split(" ", 1)
            want[short[name]] = want.get(short[name], 0) + int(k)
        assert got == want, t["pmid"]
        assert set(got) == {label.get(d.strip(), d.strip()) for d in t["disease"].split(";")}, t["pmid"]
        assert sum(got.values()) == int(t["n_patients"]), t["pmid"]
        checked += 1
    assert checked >= 12


def test_breakdown_corrections_are_checked_against_the_disease_vocabulary(extracted_store, schema):
    store, _ = extracted_store
    rid = store.extractions()["record_id"].iloc[0]
    assert ex.correct(store, rid, "n_by_disease", "sle: 8; Myositis:3", reviewer="ana", protocol=schema) \
        == "SLE: 8; myositis: 3"
    assert ex.current_values(store, schema).set_index("record_id").loc[rid, "n_by_disease_status"] == "verified"
    for bad, words in (("lupus: 8", "not an allowed value of disease"), ("SLE 8", "not a breakdown"),
                       ("SLE: eight", "not a breakdown")):
        with pytest.raises(InputError) as err:
            ex.correct(store, rid, "n_by_disease", bad, reviewer="ana", protocol=schema)
        assert words in str(err.value) and "\n" not in str(err.value)


def test_another_review_declares_a_breakdown_with_its_own_words(tmp_path):
    proto = tmp_path / "copd.yaml"
    proto.write_text(yaml.safe_dump({
        "review": {"name": "copd"}, "search": {"query": "inhaler[tiab]"},
        "extraction": {"fields": {
            "condition": {"kind": "categorical", "multiple": True,
                          "values": {"asthma": ["asthma"], "COPD": ["COPD", "chronic obstructive"]}},
            "n": {"kind": "integer", "patterns": [r"{NUM}\s+volunteers"]},
            "n_by_condition": {"kind": "breakdown", "of": "condition", "total": "n", "nouns": ["volunteers"]},
        }}}))
    frame = ex.extract(conform(pd.DataFrame([
        {"pmid": "1", "title": "Inhalers", "abstract": "We enrolled 30 volunteers (20 asthma, 10 chronic obstructive "
                                                         "pulmonary disease)."},
        {"pmid": "2", "title": "Inhalers", "abstract": "Twelve volunteers with asthma used the inhaler."}])),
        load_protocol(proto))
    assert frame["n_by_condition"].tolist() == ["asthma: 20; COPD: 10", "asthma: 12"]
