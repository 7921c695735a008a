"""The API v2 study JSON reader (reviewlib.sources.ctgov) on real recorded responses (tests/data/ctgov/)."""
from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from reviewlib.errors import InputError
from reviewlib.records import COLUMNS
from reviewlib.sources.ctgov import (TRIAL_COLUMNS, read_ctgov, read_trials_csv, registry_records,
                                     write_trials_csv)


@pytest.fixture
def ctgov_dir(data_dir):
    return data_dir / "ctgov"


def one(frame: pd.DataFrame, nct: str) -> pd.Series:
    rows = frame[frame["nct_id"] == nct]
    assert len(rows) == 1
    return rows.iloc[0]


def test_a_full_single_study_gives_every_column_from_its_fields(ctgov_dir):
    frame = read_ctgov(ctgov_dir / "study_NCT02552212.json")
    assert list(frame.columns) == TRIAL_COLUMNS and len(frame) == 1
    t = frame.iloc[0]
    assert t["nct_id"] == "NCT02552212" and t["source"] == "ctgov"
    assert t["title"].startswith("Multicenter Study Evaluating Certolizumab Pegol Compared to Placebo")
    assert t["official_title"].startswith("Phase 3, Multicenter, Randomized, Placebo-Controlled")
    assert (t["status"], t["study_type"], t["phases"]) == ("COMPLETED", "INTERVENTIONAL", ["PHASE3"])
    assert (t["allocation"], t["intervention_model"], t["masking"], t["primary_purpose"]) == \
        ("RANDOMIZED", "PARALLEL", "QUADRUPLE", "TREATMENT")
    assert (t["enrollment"], t["enrollment_type"]) == (317, "ACTUAL")
    assert t["secondary_ids"] == ["AS0006", "2015-001894-41"]
    assert (t["lead_sponsor"], t["lead_sponsor_class"]) == ("UCB BIOSCIENCES GmbH", "INDUSTRY")
    assert (t["sex"], t["minimum_age"], t["std_ages"], t["healthy_volunteers"]) == \
        ("ALL", "18 Years", ["ADULT", "OLDER_ADULT"], False)
    assert t["reference_pmids"][:2] == ["35296532", "35733363"] and t["reference_types"][0] == "RESULT"
    assert len(t["reference_pmids"]) == len(t["reference_types"])
    assert t["has_results"] is True and len(t["countries"]) == len(set(t["countries"])) > 1
    assert any("PLACEBO_COMPARATOR" in a for a in t["arms"]) and "PLACEBO_COMPARATOR" in t["arm_types"]
    assert len(t["interventions"]) == len(t["intervention_types"]) and t["primary_outcomes"]
    assert t["start_date"] and t["start_date_type"] in ("ACTUAL", "ESTIMATED")
    assert t["eligibility_criteria"].startswith("Inclusion Criteria")


def test_fields_a_study_lacks_stay_empty_never_guessed(ctgov_dir):
    observational = read_ctgov(ctgov_dir / "study_NCT05594173.json").iloc[0]
    assert observational["study_type"] == "OBSERVATIONAL" and observational["phases"] == []
    assert observational["allocation"] is None and observational["masking"] is None
    withdrawn = read_ctgov(ctgov_dir / "study_NCT00973089.json").iloc[0]
    assert withdrawn["status"] == "WITHDRAWN" and withdrawn["enrollment"] == 0 and withdrawn["phases"] == ["NA"]
    assert withdrawn["why_stopped"].startswith("recruiting or enrolling participants has halted")
    limited = read_ctgov(ctgov_dir / "get_nct06382129_20260811.json").iloc[0]   # a fields-limited answer
    assert limited["nct_id"] == "NCT06382129" and limited["has_results"] is None


def test_a_page_a_file_of_pages_jsonl_and_gzip_read_alike(ctgov_dir, tmp_path):
    page = read_ctgov(ctgov_dir / "search_page_kras_g12c_pancreatic_10studies.json")
    assert len(page) == 10 and page["nct_id"].is_unique and "NCT06008288" in set(page["nct_id"])
    assert one(page, "NCT06008288").equals(read_ctgov(ctgov_dir / "study_NCT06008288.json").iloc[0])
    p1 = json.loads((ctgov_dir / "search_phelan_limit5_20260811.json").read_text())
    p2 = json.loads((ctgov_dir / "search_phelan_next_20260811.json").read_text())
    pages = tmp_path / "pages.json.gz"
    pages.write_bytes(gzip.compress(json.dumps([p1, p2]).encode()))
    lines = tmp_path / "pages.jsonl"
    lines.write_text(json.dumps(p1) + "\n" + json.dumps(p2) + "\n")
    both = read_ctgov(pages)
    assert len(both) == 10 and both.equals(read_ctgov(lines)) and both.equals(read_ctgov([p1, p2]))
    assert read_ctgov({"studies": []}).empty and list(read_ctgov({"studies": []}).columns) == TRIAL_COLUMNS


@pytest.mark.parametrize("content, message", [
    (b"<html>upstream connect error</html>", "is not JSON"),
    (b'NCTId,BriefTitle,OverallStatus\nNCT1,x,RECRUITING\n', "looks like a CSV export"),
    (b'{"studies": [{"protocolSection": {"identificationModule": {"nctId": "NCT1"}}}, {"hasResults": true}]}',
     "page.json study 2 has no protocolSection"),
    (b'[{"studies": []}, {"studies": [{"protocolSection": {}}]}]', "page.json page 2 study 1 has no "
                                                                  "identificationModule.nctId"),
    (b'{"studies": "none"}', "'studies' is not a list"),
    (b'{"studies": [{"protocolSection": {"identificat', "is not valid JSON"),
])
def test_bad_input_is_one_line_naming_the_file_and_page(tmp_path, content, message):
    path = tmp_path / "page.json"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_ctgov(path)
    assert message in str(info.value) and "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_file_says_what_to_give(tmp_path):
    with pytest.raises(InputError, match="registry file not found"):
        read_ctgov(tmp_path / "nope.json")


def test_trials_csv_round_trip_with_nct_id_first_and_formulas_neutralised(ctgov_dir, tmp_path):
    frame = read_ctgov(ctgov_dir / "search_page_kras_g12c_pancreatic_10studies.json")
    frame.loc[0, "title"] = "=HYPERLINK(\"http://evil.example\")"
    path = write_trials_csv(frame, tmp_path / "trials.csv")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(raw.columns) == TRIAL_COLUMNS and raw.loc[0, "title"].startswith("'=")
    back = read_trials_csv(path)
    assert back["title"].iloc[0] == frame["title"].iloc[0]
    assert back["conditions"].tolist() == frame["conditions"].tolist()
    assert back["enrollment"].tolist() == frame["enrollment"].tolist()
    assert back["has_results"].tolist() == frame["has_results"].tolist()


def test_a_csv_of_the_wrong_shape_is_one_line(tmp_path):
    path = tmp_path / "trials.csv"
    path.write_text("NCTId,BriefTitle\nNCT04146051,x\n")
    with pytest.raises(InputError, match=r"has no nct_id column \(columns: NCTId, BriefTitle"):
        read_trials_csv(path)


def test_registry_rows_become_records_screening_and_extraction_can_read(ctgov_dir):
    trials = read_ctgov(ctgov_dir / "study_NCT02552212.json")
    assert [s["label"] for s in registry_records(trials).iloc[0]["abstract_sections"]] == \
        ["BRIEF SUMMARY", "DESIGN", "ELIGIBILITY"]             # it has no detailed description
    trials = read_ctgov(ctgov_dir / "study_NCT06008288.json")
    records = registry_records(trials)
    assert list(records.columns[:len(COLUMNS)]) == COLUMNS and records.columns[len(COLUMNS)] == "nct_id"
    r = records.iloc[0]
    assert r["title"] == trials["title"].iloc[0] and r["source"] == "ctgov" and r["pmid"] is None
    labels = [s["label"] for s in r["abstract_sections"]]
    assert labels == ["BRIEF SUMMARY", "DETAILED DESCRIPTION", "DESIGN", "ELIGIBILITY"]
    assert r["abstract"].startswith(trials["brief_summary"].iloc[0])
    assert trials["detailed_description"].iloc[0] in r["abstract"]
    assert "Allocation: NA" in r["abstract"] and "Intervention model: SINGLE_GROUP" in r["abstract"]
    assert "Enrollment: 88 (ESTIMATED)" in r["abstract"] and "Phase: PHASE2" in r["abstract"]
    assert r["year"] == 2023 and r["pub_date"] == "2023-10-27"
    assert r["intervention_model"] == "SINGLE_GROUP" and r["enrollment"] == 88      # the fields ride along
    assert r["publication_types"] == ["Clinical Trial Registration"]
    assert registry_records(trials.iloc[0:0]).empty


def test_registry_records_enter_the_store_as_nct_records_never_merged_by_title(tmp_path, ctgov_dir):
    from reviewlib.store import ReviewStore
    trials = read_ctgov(ctgov_dir / "search_page_kras_g12c_pancreatic_10studies.json").head(2).copy()
    trials["title"] = "The same brief title"               # two registrations, one title: still two records
    trials["start_date"] = "2024-01-01"
    with ReviewStore(tmp_path / "review.sqlite") as store:
        assert store.add_records(registry_records(trials)) == 2
        stored = store.records()
        assert sorted(stored["record_id"]) == sorted(f"nct:{n}" for n in trials["nct_id"])
        assert set(stored["source"]) == {"ctgov"}


def test_registrations_of_one_study_are_found_by_alias_and_shared_register_id(ctgov_dir):
    from reviewlib.sources.ctgov import registry_duplicates
    trials = read_ctgov(ctgov_dir / "search_page_kras_g12c_pancreatic_10studies.json").head(4).copy()
    a, b, c, d = trials["nct_id"]
    trials.at[1, "nct_aliases"] = [a]                                      # b was renamed from a
    trials.at[2, "secondary_ids"] = ["AS0006", "2015-001894-41"]           # real EudraCT number of NCT02552212
    trials.at[3, "secondary_ids"] = ["AS0006", "2015-001894-41"]
    found = registry_duplicates(trials)
    assert found.values.tolist() == [[b, a, "nct alias"], [d, c, "shared EudraCT id"]]
    trials.at[3, "secondary_ids"] = ["AS0006"]                             # a sponsor's own number is not global
    assert registry_duplicates(trials)["how"].tolist() == ["nct alias"]
    assert registry_duplicates(read_ctgov(ctgov_dir / "study_NCT02552212.json")).empty
