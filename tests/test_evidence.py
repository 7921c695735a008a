"""reviewlib.evidence.tables: study table, same-cohort flags, gap-showing summaries, exports, offline HTML.

Studies come from the hand-checked abstracts (tests/data/extraction/) run through the real
extractor and a real SQLite store; one test uses the synthetic demo snapshot and its truth sidecar.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from reviewlib.evidence import tables as ev
from reviewlib.evidence import extraction as ex
from reviewlib.protocol import load_protocol
from reviewlib.records import conform
from reviewlib.store import ReviewStore

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "notebooks" / "car-t-autoimmune.yaml"
SNAPSHOT = ROOT / "reviewlib" / "data" / "car-t-autoimmune-snapshot.xml.gz"
TRUTH = ROOT / "reviewlib" / "data" / "car-t-autoimmune-truth.csv"


@pytest.fixture(scope="module")
def schema():
    return ex.load_schema(load_protocol(PROTOCOL))


@pytest.fixture(scope="module")
def handchecked():
    return {i["id"]: i for i in ex.load_testset(DATA / "extraction" / "car_t_abstracts_testset.yaml")}


def records_of(handchecked, spec: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """Records from hand-checked abstracts: (testset id, pmid, first author, year)."""
    return conform(pd.DataFrame([{"pmid": pmid, "title": handchecked[tid]["title"],
                                  "abstract": handchecked[tid]["abstract"], "authors": [author, "Other B"],
                                  "year": year, "journal": "J Test"} for tid, pmid, author, year in spec]))


@pytest.fixture
def review(tmp_path, handchecked, schema):
    """A store with 8 extracted studies; 6 are 'included'."""
    spec = [("ts01", "101", "Schett G", 2022), ("ts04", "102", "Granit V", 2024),
            ("ts05", "103", "Lee J", 2024), ("ts22", "104", "Müller F", 2024),
            ("ts35", "105", "Fisher K", 2025), ("ts03", "106", "Muller F.", 2025),
            ("ts07", "107", "Review R", 2024), ("ts40", "108", "Meta M", 2025)]
    records = records_of(handchecked, spec)
    store = ReviewStore(tmp_path / "review.sqlite")
    store.add_records(records)
    ex.save(store, ex.extract(store.records(), schema), schema)
    included = store.records()
    included = included[included["pmid"].isin(["101", "102", "103", "104", "105", "106"])]
    yield store, included
    store.close()


def test_extracted_record_ids_are_the_records_current_values_lists(review, tmp_path):
    store, _ = review
    ids = ex.extracted_record_ids(store)
    assert ids == set(ex.current_values(store)["record_id"]) and len(ids) == 8
    with ReviewStore(tmp_path / "empty.sqlite") as empty:     # nothing extracted: None, where current_values raises
        assert ex.extracted_record_ids(empty) is None
        with pytest.raises(Exception, match="no extracted values yet"):
            ex.current_values(empty)


def test_study_table_one_row_per_included_study_with_status(review):
    store, included = review
    table = ev.study_table(ex.current_values(store), included)
    assert list(table["pmid"]) == ["101", "102", "103", "104", "105", "106"]
    assert table.loc[0, "study"] == "Schett 2022"
    for col in ("disease", "target", "design", "n_patients", "lymphodepletion", "disease_status",
                "n_patients_status", "cohort_id", "duplicate_of", "counted"):
        assert col in table
    assert "disease_evidence" not in table
    assert set(table["target_status"]) == {"machine"}
    shown = ev.with_status(table)
    assert shown.loc[1, "target"] == "BCMA (machine)" and "target_status" not in shown


def test_same_first_author_cohort_flagged_and_counted_once(review):
    store, included = review
    # 104 (Müller F, 2024, basket, CD19, 24 pts) and 106 (Muller F., 2025, CD19, 15 pts, SLE/SSc/myositis)
    table = ev.study_table(ex.current_values(store), included).set_index("pmid")
    assert table.loc["106", "cohort_id"] == table.loc["104", "cohort_id"] == "cohort:104"
    assert (table.loc["106", "duplicate_of"], bool(table.loc["106", "counted"])) == ("104", False)
    assert table.loc["106", "duplicate_rule"].startswith("same first author")
    assert table.loc["101", "cohort_id"] == "" and bool(table.loc["101", "counted"])
    sums = ev.summary_tables(table.reset_index())
    total = sums["patients by disease and target"].set_index("disease").loc["Total", "Total"]
    assert total == 12 + 36 + 12 + 24 + 30  # 106's 15 patients are not counted again


@pytest.mark.parametrize("author, year", [("Müller K", 2025), ("Müller F", 2026)])
def test_other_initials_or_years_apart_are_not_a_cohort(handchecked, schema, author, year):
    records = records_of(handchecked, [("ts22", "1", "Müller F", 2024), ("ts03", "2", author, year)])
    records.insert(0, "record_id", ["pmid:1", "pmid:2"])
    table = ev.study_table(ex.extract(records, schema), records, schema)
    assert list(table["cohort_id"]) == ["", ""] and table["counted"].all()


def test_reviewer_duplicate_note_flags_a_cohort(review, tmp_path):
    store, included = review
    ex.correct(store, "pmid:105", "duplicate_of", "102", reviewer="ana", note="same trial, longer follow-up")
    table = ev.study_table(ex.current_values(store), included).set_index("pmid")
    # 105 has fewer patients (30) than 102 (36): 102 is the primary report
    assert (table.loc["105", "duplicate_of"], table.loc["105", "duplicate_rule"]) == ("102", "reviewer note")
    assert not table.loc["105", "counted"] and table.loc["102", "counted"]


def test_summaries_keep_zero_cells_and_not_reported(review, schema):
    store, included = review
    # as the 03-extract notebook calls it: the vocabulary travels with current_values
    table = ev.study_table(ex.current_values(store, schema), included)
    sums = ev.summary_tables(table)
    assert set(sums) >= {"studies by disease and target", "patients by disease and target", "designs",
                         "lymphodepletion", "outcomes and safety by disease", "constructs",
                         "age groups by disease"}
    studies = sums["studies by disease and target"].set_index("disease")
    # every disease and target of the protocol is there, zeros included
    assert list(studies.index) == [v for v in schema.field("disease").allowed if v != "not reported"] \
        + ["not reported", "Total"]
    assert studies.loc["rheumatoid arthritis"].sum() == 0
    assert studies.loc["SLE", "CD19"] == 2 and studies.loc["SLE", "BCMA"] == 1
    assert studies.loc["myasthenia gravis", "BCMA"] == 1 and studies.loc["pemphigus", "CAAR"] == 1
    assert studies.loc["Total", "Total"] == 5  # six reports, one cohort reported twice
    designs = sums["designs"].set_index("design")
    assert designs.loc["randomised controlled", "studies"] == 1
    assert designs.loc["randomised controlled", "controlled"] == "yes"
    assert designs.loc["case series", "studies"] == 0 and "not reported" in designs.index
    assert designs.loc["Total", "controlled"] == "1 controlled"
    ld = sums["lymphodepletion"].set_index("lymphodepletion")
    assert list(ld.index) == ["Flu/Cy", "Cy", "none", "other", "agents not named", "not reported"]
    assert (ld.loc["none", "studies"], ld.loc["none", "patients"]) == (3, 36 + 12 + 30)
    assert (ld.loc["Flu/Cy", "studies"], ld.loc["Flu/Cy", "patients"]) == (2, 12 + 24)
    assert ld.loc["not reported", "studies"] == 0 and ld.loc["none", "controlled studies"] == 1
    assert (ld["verified"] == 0).all() and ld["machine"].sum() == 5
    safety = sums["outcomes and safety by disease"].set_index("disease")
    assert safety.loc["rheumatoid arthritis", "studies"] == 0
    assert safety.loc["myasthenia gravis", "icans none"] == 1
    assert sums["constructs"].set_index("target").loc["CD19", "costimulation: 4-1BB"] == 1


def test_verified_values_are_counted_as_verified(review):
    store, included = review
    ex.correct(store, "pmid:101", "lymphodepletion", "Flu/Cy", reviewer="ana")
    table = ev.study_table(ex.current_values(store), included)
    ld = ev.summary_tables(table)["lymphodepletion"].set_index("lymphodepletion")
    assert (ld.loc["Flu/Cy", "verified"], ld.loc["Flu/Cy", "machine"]) == (1, 1)


def test_gaps_state_each_question(review):
    store, included = review
    lines = ev.gaps(ev.study_table(ex.current_values(store), included))
    text = " ".join(lines)
    # 1 controlled study in 5 (20%) and a median of 20 or more: by the protocol's thresholds (median below 20;
    # under a fifth controlled) these data do not show those two gaps, and the sentences say so
    assert "Samples are not small by this protocol's measure" in text and "5 studies with 114 patients" in text
    assert "Controlled trials are not rare here: 1 of 5 studies (20%) are randomised controlled (myasthenia gravis)" in text
    assert "2 studies gave lymphodepleting chemotherapy, 3 gave none and 0 did not report it" in text
    assert "construct" in text and "patients benefit" in text
    assert ev.gaps(pd.DataFrame()) == ["No study is included yet: there is no evidence to describe."]


def _study_rows(sizes, controlled, lymphodepletion=None, targets=None, diseases=None, ages=None) -> pd.DataFrame:
    """A hand-built study table: one row per study, the columns the default protocol's gap statements read."""
    k = len(sizes)
    return pd.DataFrame({
        "n_patients": [str(x) for x in sizes],
        "controlled": ["yes" if c else "no" for c in controlled],
        "lymphodepletion": lymphodepletion or ["Flu/Cy"] * k,
        "target": targets or ["CD19"] * k,
        "costimulation": ["4-1BB"] * k,
        "disease": diseases or ["SLE"] * k,
        "age_group": ages or ["adult"] * k,
    })


def _protocol_with_gaps(tmp_path, **settings) -> Path:
    """The default protocol with some gap thresholds changed (kind -> {setting: value})."""
    import yaml
    from reviewlib.protocol import find_protocol
    raw = yaml.safe_load(find_protocol("car-t-autoimmune").read_text(encoding="utf-8"))
    for spec in raw["report"]["gaps"]:
        spec.update(settings.get(spec["kind"], {}))
    path = tmp_path / "car-t-gaps.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_gaps_say_small_only_when_the_median_is_below_the_protocol_threshold(tmp_path):
    small = ev.gaps(_study_rows([3, 5, 12, 30], [False] * 4), "car-t-autoimmune")
    assert small[0].startswith("Samples are small: 4 studies with 50 patients in all; median 8.5 patients")
    large = ev.gaps(_study_rows([40, 60, 80, 120], [False] * 4), "car-t-autoimmune")
    assert large[0].startswith("Samples are not small by this protocol's measure (a median of 20 patients or more)")
    assert "median 70" in large[0] and "Samples are small" not in " ".join(large)
    # the same data, another protocol threshold: the verdict follows the protocol
    stricter = _protocol_with_gaps(tmp_path, sample_size={"small_median_below": 100})
    assert ev.gaps(_study_rows([40, 60, 80, 120], [False] * 4), stricter)[0].startswith("Samples are small:")


def test_gaps_say_controlled_trials_are_rare_only_below_the_protocol_share(tmp_path):
    rare = ev.gaps(_study_rows([10] * 10, [True] + [False] * 9, diseases=["myasthenia gravis"] + ["SLE"] * 9),
                   "car-t-autoimmune")
    assert rare[1] == "Controlled trials are rare: 1 of 10 studies are randomised controlled (myasthenia gravis)."
    common = ev.gaps(_study_rows([10] * 4, [True, True, False, False]), "car-t-autoimmune")
    assert common[1].startswith("Controlled trials are not rare here: 2 of 4 studies (50%) are randomised controlled")
    assert ev.gaps(_study_rows([10] * 3, [False] * 3), "car-t-autoimmune")[1] == \
        "No randomised controlled trial among the 3 included studies."
    demanding = _protocol_with_gaps(tmp_path, controlled_trials={"rare_below": 0.6})
    assert ev.gaps(_study_rows([10] * 4, [True, True, False, False]), demanding)[1].startswith(
        "Controlled trials are rare: 2 of 4")


def test_gaps_regimen_established_only_by_controlled_studies_with_and_without_it():
    ld = ["Flu/Cy", "none", "none", "agents not named", "not reported"]
    both = ev.gaps(_study_rows([20] * 5, [True, True, False, False, False], ld), "car-t-autoimmune")
    assert both[2].startswith("Lymphodepletion can be judged from controlled comparisons: 1 controlled studies "
                              "gave it and 1 did not; in all 2 studies gave lymphodepleting chemotherapy, 2 none "
                              "and 1 did not report it")
    one_side = ev.gaps(_study_rows([20] * 5, [False, True, True, False, False], ld), "car-t-autoimmune")
    assert one_side[2].startswith("The role of lymphodepletion is not established: 2 studies gave lymphodepleting "
                                  "chemotherapy, 2 gave none and 1 did not report it; controlled studies without "
                                  "lymphodepletion: 2 of 2")


def test_gaps_subsets_from_the_data():
    thin = ev.gaps(_study_rows([10] * 3, [False] * 3, diseases=["SLE", "SLE", "pemphigus"]), "car-t-autoimmune")
    assert thin[-1].startswith("Which patients benefit is unknown: paediatric patients in 0 studies")
    assert thin[-1].endswith("1 disease(s) rest on a single study.")
    covered = ev.gaps(_study_rows([10] * 4, [False] * 4, diseases=["SLE", "SLE", "pemphigus", "pemphigus"],
                                  ages=["paediatric", "both", "adult", "adult"]), "car-t-autoimmune")
    assert covered[-1].startswith("Patient subsets are covered: paediatric patients in 2 of 4 studies")


def test_exports_csv_and_xlsx_one_sheet_per_table(review, tmp_path):
    store, included = review
    table = ev.study_table(ex.current_values(store), included)
    tables = {"studies": table, **ev.summary_tables(table)}
    paths = ev.export_csv(tables, tmp_path / "csv")
    assert {p.name for p in paths} >= {"studies.csv", "designs.csv", "lymphodepletion.csv",
                                      "studies-by-disease-and-target.csv"}
    back = pd.read_csv(tmp_path / "csv" / "lymphodepletion.csv")
    assert back["lymphodepletion"].tolist()[-1] == "not reported"
    xlsx = ev.export_xlsx(tables, tmp_path / "evidence.xlsx")
    wb = openpyxl.load_workbook(xlsx)
    assert len(wb.sheetnames) == len(tables) and all(len(s) <= 31 for s in wb.sheetnames)
    assert wb["designs"]["A1"].value == "design"
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temp files left


def test_interactive_html_is_offline_and_escaped(review):
    store, included = review
    table = ev.study_table(ex.current_values(store), included)
    table.loc[0, "title"] = "<script>alert('x')</script> & <b>bold</b>"
    page = ev.interactive(table, caption="Studies <i>included</i>")
    assert not re.search(r"<script[^>]+src\s*=\s*[\"']?https?:", page, re.I)
    assert not re.search(r"(?:import|from)\s*[\"']https?:", page)
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "<i>included</i>" not in page
    assert len(page) > 100_000  # the DataTables bundle is embedded
    assert len(ev.interactive(table, include_library=False)) < len(page) / 10
    with pytest.raises(ValueError):
        ev.interactive(table, allow_html=True)
    static = ev.to_html(table)
    assert "<script>alert" not in static and "&lt;b&gt;bold&lt;/b&gt;" in static


def test_synthetic_snapshot_cohorts_match_its_truth(schema):
    assert SNAPSHOT.is_file() and TRUTH.is_file(), "the packaged demo snapshot and its truth are part of the repository"
    from reviewlib.sources.pubmed_xml import read_pubmed_xml
    truth = pd.read_csv(TRUTH, dtype=str, keep_default_na=False)
    records = read_pubmed_xml(SNAPSHOT)
    included = records[records["pmid"].isin(truth.loc[truth["demo_decision"] == "include", "pmid"])].copy()
    included.insert(0, "record_id", ["pmid:" + p for p in included["pmid"]])
    table = ev.study_table(ex.extract(included, schema), included, schema)
    expected = {p: d for p, d in zip(truth["pmid"], truth["duplicate_of"]) if d and p in set(included["pmid"])}
    flagged = {p: d for p, d in zip(table["pmid"], table["duplicate_of"]) if d}
    assert expected and flagged == expected
    sums = ev.summary_tables(table)
    assert sums["studies by disease and target"].set_index("disease").loc["Total", "Total"] == \
        len(included) - len(expected)


def test_every_table_function_works_before_anything_is_included(review, schema, tmp_path):
    # a fresh online review: extracted values may exist, but no record is included yet
    store, included = review
    values = ex.current_values(store, schema)
    empty = ev.study_table(values, included.iloc[0:0])
    full = ev.study_table(values, included)
    assert len(empty) == 0 and list(empty.columns) == list(full.columns)
    sums, full_sums = ev.summary_tables(empty), ev.summary_tables(full)
    assert list(sums) == list(full_sums)
    for name, frame in sums.items():
        assert list(frame.columns) == list(full_sums[name].columns), name
        assert frame.iloc[:, 0].tolist() == full_sums[name].iloc[:, 0].tolist(), name  # every value kept
        numbers = frame.select_dtypes("number")
        assert not numbers.empty and (numbers.fillna(0) == 0).all().all(), name   # and nothing counted
    assert sums["designs"].set_index("design").loc["Total", "controlled"] == "0 controlled"
    assert ev.gaps(empty) == ["No study is included yet: there is no evidence to describe."]
    assert list(ev.with_status(empty).columns) == [c for c in empty.columns if not c.endswith("_status")]
    paths = ev.export_csv({"studies": empty, **sums}, tmp_path / "csv")
    assert pd.read_csv(tmp_path / "csv" / "studies.csv").columns.tolist() == list(empty.columns)
    assert len(paths) == 1 + len(sums)
    wb = openpyxl.load_workbook(ev.export_xlsx({"studies": empty, **sums}, tmp_path / "evidence.xlsx"))
    assert wb["studies"]["A1"].value == "study" and wb["studies"].max_row == 1
    assert "<table" in ev.to_html(empty) and "<table" in ev.interactive(empty, include_library=False)


def test_exports_are_as_readable_as_any_file_the_user_writes(review, tmp_path):
    # written through reviewlib.atomic: not mkstemp's owner-only 0600
    store, included = review
    table = ev.study_table(ex.current_values(store), included)
    umask = os.umask(0)
    os.umask(umask)
    paths = ev.export_csv(table, tmp_path / "csv") + [ev.export_xlsx({"studies": table}, tmp_path / "e.xlsx")]
    assert [oct(p.stat().st_mode & 0o777) for p in paths] == [oct(0o666 & ~umask)] * 2
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]


# -- a patient is counted once: basket studies ------------------------------------------------
def _additive(patients: pd.DataFrame, expected_total: int) -> None:
    """Rows and columns of a patients table add up to its Total, which is the expected total."""
    t = patients.set_index(patients.columns[0])
    body = t.drop(index="Total").drop(columns="Total")
    assert (body.sum(axis=1) == t.drop(index="Total")["Total"]).all()
    assert (body.sum(axis=0) == t.drop(columns="Total").loc["Total"]).all()
    assert body.values.sum() == t.loc["Total", "Total"] == expected_total


@pytest.fixture
def basket_table(schema) -> pd.DataFrame:
    """Hand-built study table: a basket study with a split, one without, one with a partial split,
    one whose split does not fit, a further report of a cohort (not counted) and single-disease studies.
    It carries the default protocol's schema, as a study_table does (the roles and tables come from it)."""
    return _with_schema(schema, pd.DataFrame([
        {"pmid": "1", "disease": "SLE; myositis; systemic sclerosis", "target": "CD19", "n_patients": "15",
         "n_by_disease": "SLE: 8; myositis: 3; systemic sclerosis: 4", "lymphodepletion": "Flu/Cy", "counted": True},
        {"pmid": "2", "disease": "SLE; systemic sclerosis", "target": "CD19", "n_patients": "10",
         "n_by_disease": "not reported", "lymphodepletion": "Flu/Cy", "counted": True},
        {"pmid": "3", "disease": "SLE; NMOSD", "target": "BCMA", "n_patients": "9",
         "n_by_disease": "SLE: 5", "lymphodepletion": "Cy", "counted": True},
        {"pmid": "4", "disease": "SLE; myositis", "target": "CD19", "n_patients": "6",
         "n_by_disease": "SLE: 5; myositis: 3", "lymphodepletion": "none", "counted": True},  # 8 > 6: not used
        {"pmid": "5", "disease": "SLE", "target": "CD19", "n_patients": "12", "n_by_disease": "SLE: 12",
         "lymphodepletion": "Flu/Cy", "counted": True},
        {"pmid": "6", "disease": "SLE", "target": "CD19", "n_patients": "12", "n_by_disease": "SLE: 12",
         "lymphodepletion": "Flu/Cy", "counted": False},
        {"pmid": "7", "disease": "myositis", "target": "CD19", "n_patients": "not reported",
         "n_by_disease": "not reported", "lymphodepletion": "not reported", "counted": True},
    ]))


def _with_schema(schema, frame: pd.DataFrame) -> pd.DataFrame:
    frame.attrs["extraction_schema"] = ex.SchemaRef(schema)
    return frame


def test_basket_patients_counted_once_in_hand_built_table(basket_table, schema):
    sums = ev.summary_tables(basket_table, schema)
    patients = sums["patients by disease and target"]
    _additive(patients, 15 + 10 + 9 + 6 + 12)
    p = patients.set_index("disease")
    assert p.loc["SLE", "CD19"] == 8 + 12 and p.loc["SLE", "BCMA"] == 5
    assert p.loc["myositis", "Total"] == 3 and p.loc["systemic sclerosis", "Total"] == 4
    assert p.loc["NMOSD", "Total"] == 0
    # study 2 (no split), the rest of study 3 and study 4 (split larger than n) are visible, once
    assert p.loc[ev.MIXED, "CD19"] == 10 + 6 and p.loc[ev.MIXED, "BCMA"] == 4
    # study counts per disease are unchanged: a basket study is a study of each of its diseases
    s = sums["studies by disease and target"].set_index("disease")
    assert s.loc["SLE", "Total"] == 5 and s.loc["myositis", "Total"] == 3 and s.loc["NMOSD", "Total"] == 1
    assert ev.MIXED not in s.index
    safety = sums["outcomes and safety by disease"].set_index("disease")
    assert safety["patients"].sum() == 52 and safety.loc[ev.MIXED, "patients"] == 20
    assert safety.loc[ev.MIXED, "studies"] == 3
    assert sums["lymphodepletion"]["patients"].sum() == 52
    assert sums["constructs"]["patients"].sum() == 52


def test_allocate_patients_parts_add_up_per_study(basket_table):
    alloc = ev.allocate_patients(basket_table[basket_table["counted"]].set_index("pmid"), "disease")
    per_study = alloc.groupby("row")["patients"].sum()
    assert per_study.to_dict() == {"1": 15, "2": 10, "3": 9, "4": 6, "5": 12, "7": 0}  # 7: n not reported
    assert set(alloc.loc[alloc["row"] == "3", "split"]) == {"breakdown", "unsplit"}
    assert alloc.loc[alloc["row"] == "5", "split"].tolist() == ["single"]


def test_without_breakdown_column_baskets_are_not_added_to_each_disease(basket_table):
    old_style = basket_table.drop(columns="n_by_disease")  # a table from before the breakdown field
    p = ev.summary_tables(old_style)["patients by disease and target"]
    _additive(p, 52)
    assert p.set_index("disease").loc["SLE", "Total"] == 12
    assert p.set_index("disease").loc[ev.MIXED, "Total"] == 40


def test_patient_totals_add_up_on_the_synthetic_demo(schema):
    from reviewlib.sources.pubmed_xml import read_pubmed_xml
    truth = pd.read_csv(TRUTH, dtype=str, keep_default_na=False)
    records = read_pubmed_xml(SNAPSHOT)
    included = records[records["pmid"].isin(truth.loc[truth["demo_decision"] == "include", "pmid"])].copy()
    included.insert(0, "record_id", ["pmid:" + p for p in included["pmid"]])
    table = ev.study_table(ex.extract(included, schema), included, schema)
    counted = table[table["counted"]]
    n_total = int(pd.to_numeric(counted["n_patients"], errors="coerce").fillna(0).sum())
    sums = ev.summary_tables(table)
    _additive(sums["patients by disease and target"], n_total)
    assert sums["outcomes and safety by disease"]["patients"].sum() == n_total
    assert sums["lymphodepletion"]["patients"].sum() == n_total
    # basket studies stated their splits: the old count (n added to each disease) was larger
    baskets = counted[counted["disease"].str.contains(";") & counted["n_patients"].str.isdigit()]
    assert len(baskets) >= 8
    split = {ex.parse_breakdown(v) is not None and bool(ex.parse_breakdown(v)) for v in baskets["n_by_disease"]}
    assert split == {True}
    # each basket adds its stated split to the disease rows, never its n to every disease: the table
    # with the study minus the table without it is the split (and the rest in the mixed row)
    by_disease = ev.patients_by(table, "disease", "target")["Total"]
    for label, study in baskets.iterrows():
        without = ev.patients_by(table.drop(index=label), "disease", "target")["Total"]
        added = by_disease.sub(without.reindex(by_disease.index, fill_value=0)).drop("Total")
        parts = {d: int(k) for d, k in ex.parse_breakdown(study["n_by_disease"]).items()}
        rest = int(study["n_patients"]) - sum(parts.values())
        expected = {**parts, **({ev.MIXED: rest} if rest else {})}
        assert added[added != 0].to_dict() == expected, study["pmid"]
        assert added.sum() == int(study["n_patients"]) < int(study["n_patients"]) * len(study["disease"].split(";"))
    # and the truth sidecar itself (no split column): the same totals, baskets in the mixed row
    clinical = truth[(truth["relevant"] == "1") & (truth["kind"] == "clinical")]
    p = ev.summary_tables(clinical.assign(counted=True), schema)["patients by disease and target"]
    mixed_n = int(pd.to_numeric(clinical.loc[clinical["disease"].str.contains(";"), "n_patients"]).sum())
    _additive(p, int(pd.to_numeric(clinical["n_patients"]).sum()))
    assert p.set_index("disease").loc[ev.MIXED, "Total"] == mixed_n


def test_study_labels_are_unique_and_keep_surname_particles(handchecked, schema):
    """Issue 10: two "Liu 2023" studies read "Liu 2023a" and "Liu 2023b"; "de Vries A" keeps its "de"."""
    records = records_of(handchecked, [("ts01", "1", "Liu X", 2023), ("ts04", "2", "de Vries A", 2024),
                                       ("ts05", "3", "Liu Y", 2023), ("ts22", "4", "van der Berg JH", 2022),
                                       ("ts35", "5", "Smith, John", 2021), ("ts03", "6", "Lee J", 2020)])
    records.insert(0, "record_id", [f"pmid:{i}" for i in range(1, 7)])
    table = ev.study_table(ex.extract(records, schema), records, schema)
    assert list(table["study"]) == ["Liu 2023a", "de Vries 2024", "Liu 2023b", "van der Berg 2022",
                                    "Smith 2021", "Lee 2020"]
    assert table["study"].is_unique
    assert ev.unique_labels(["A 1"] * 28)[26:] == ["A 1aa", "A 1ab"]
