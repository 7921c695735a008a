"""One review, two sources: the registry in screening, PRISMA, extraction, links and the registry section.

Data: the default review's real registry snapshot (reviewlib/data/car-t-autoimmune-registry-2026-08-22.json.gz,
made from tests/data/ctgov/car_t_autoimmune_2026_08_22_trials.csv by reviewlib.sources.ctgov_snapshot) and the
real API v2 study bodies in tests/data/ctgov/ (see tests/data/README.md).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import matplotlib.text
import pandas as pd
import pytest

from reviewlib import cli, pipeline
from reviewlib.evidence import extraction
from reviewlib.evidence import registry as evreg
from reviewlib.protocol import PACKAGE_DATA, load_protocol
from reviewlib.report import figures, living, prisma
from reviewlib.report import registry as repreg
from reviewlib.screening import dedup, registrations
from reviewlib.sources import links
from reviewlib.sources.ctgov import read_ctgov, registry_records, write_trials_csv
from reviewlib.errors import InputError
from reviewlib.store import ReviewStore

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "ctgov"
SNAPSHOT = PACKAGE_DATA / "car-t-autoimmune-registry-2026-08-22.json.gz"
CSV = DATA / "car_t_autoimmune_2026_08_22_trials.csv"
ENGINE_MODULES = ["reviewlib/evidence/registry.py", "reviewlib/report/registry.py",
                  "reviewlib/screening/registrations.py", "reviewlib/sources/links.py"]


@pytest.fixture(scope="module")
def protocol():
    return load_protocol(ROOT / "notebooks" / "car-t-autoimmune.yaml")


@pytest.fixture(scope="module")
def snapshot_trials():
    return read_ctgov(SNAPSHOT)


@pytest.fixture(scope="module")
def trial_table(snapshot_trials, protocol):
    return evreg.trial_table(snapshot_trials, protocol)


def _study(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _renamed(study: dict, nct: str, **ident) -> dict:
    out = copy.deepcopy(study)
    out["protocolSection"]["identificationModule"]["nctId"] = nct
    out["protocolSection"]["identificationModule"].update(ident)
    return out


# -- the run's two searches, PRISMA's two boxes, the curated inclusion ---------------------------------
@pytest.fixture(scope="module")
def two_source_review(tmp_path_factory, protocol):
    base = tmp_path_factory.mktemp("two-sources")
    ctx = pipeline.open_review(protocol.path, review_dir=base / "review", output_dir=base / "out", run_name="r1",
                               offline=True)
    pubmed = pipeline.search(ctx, offline=True)
    registry = pipeline.search_registry(ctx, offline=True)
    records = living.run_records(ctx.store, "r1")
    deduped = registrations.deduplicate(records, ctx.store.trials())
    dedup.save(ctx.store, deduped)
    first = registrations.record_curation(ctx, deduped.records)
    again = registrations.record_curation(ctx, deduped.records)
    return {"ctx": ctx, "pubmed": pubmed, "registry": registry, "records": records, "deduped": deduped,
            "first": first, "again": again}


def test_the_run_holds_both_searches_and_prisma_counts_databases_and_registers(two_source_review):
    r = two_source_review
    store = r["ctx"].store
    ids = living.run_search_ids(store, "r1")
    assert ids == sorted([r["pubmed"].search_id, r["registry"].search_id])
    regs = r["records"][r["records"]["record_id"].str.startswith("nct:")]
    assert len(regs) == 315 and set(regs["source"]) == {"ctgov"}
    c = prisma.counts(store, search_ids=ids)
    assert c.registers == ["ClinicalTrials.gov (offline snapshot)"]
    assert c.identified_registers == 315
    assert c.identified_databases == r["pubmed"].n_records == len(r["records"]) - 315
    assert c.identified_total == len(r["records"])
    # the curator's inclusions are the only full-text decisions: the included studies are the 315 registrations
    assert c.full_text_stage and c.included == c.included_registrations == 315
    drawn = " ".join(t.get_text() for t in figures.prisma_flow(c).findobj(matplotlib.text.Text))
    assert "Registers (n = 315)" in drawn and f"Databases (n = {c.identified_databases:,})" in drawn
    assert "315 registrations" in drawn


def test_registrations_are_screened_by_the_named_curator_once(two_source_review, protocol):
    r = two_source_review
    assert r["first"] == {"title-abstract": 315, "full-text": 315}
    assert r["again"] == {"title-abstract": 0, "full-text": 0}
    d = r["ctx"].store.decisions()
    who = protocol.section("registry")["curation"]["reviewer"]
    mine = d[d["reviewer"] == who]
    assert set(mine["record_id"]) == set(r["records"].loc[r["records"]["record_id"].str.startswith("nct:"),
                                                          "record_id"])
    assert set(mine["decision"]) == {"include"} and mine["note"].str.contains("curated snapshot").all()
    # the scripted literature reviewer never decides a registration
    assert not d[(d["reviewer"] == pipeline.DEMO_REVIEWER) & d["record_id"].str.startswith("nct:")].shape[0]


def test_curation_is_not_recorded_online(two_source_review):
    ctx = two_source_review["ctx"]
    online = pipeline.ReviewContext(protocol=ctx.protocol, store=ctx.store, review_dir=ctx.review_dir,
                                    output_dir=ctx.output_dir, run_name="online", offline=False)
    before = len(ctx.store.decisions())
    assert registrations.record_curation(online, two_source_review["deduped"].records) == \
        {"title-abstract": 0, "full-text": 0}
    assert len(ctx.store.decisions()) == before


def test_an_incremental_pubmed_search_keeps_the_runs_registry_search(tmp_path):
    with ReviewStore(tmp_path / "review.sqlite") as store:
        full = store.add_search("pubmed", "q", status="complete")
        reg = store.add_search("ctgov", "{}", status="complete")
        inc = store.add_search("pubmed", "q", status="complete")
        living.register_search(store, "r1", full)
        living.register_search(store, "r1", reg)
        living.register_search(store, "r2", inc, since="2026/01/01")
        living.register_search(store, "r2", reg)
        assert living.run_search_ids(store, "r1") == [full, reg]
        assert living.run_search_ids(store, "r2") == [full, reg, inc]


# -- deduplication --------------------------------------------------------------------------------------
def test_registrations_merge_by_register_ids_only_never_with_a_publication_by_title():
    real = _study("study_NCT02552212.json")                      # lists EudraCT 2015-001894-41
    shared = _renamed(real, "NCT99999901", briefTitle="Another title entirely")
    shared["protocolSection"]["identificationModule"].setdefault("secondaryIdInfos", [])
    same_title = _renamed(real, "NCT99999902")                   # same title, no shared register id
    same_title["protocolSection"]["identificationModule"]["secondaryIdInfos"] = []
    same_title["protocolSection"]["identificationModule"]["orgStudyIdInfo"] = {"id": "OTHER-1"}
    trials = read_ctgov({"studies": [real, shared, same_title]})
    regs = registry_records(trials)
    regs.insert(0, "record_id", [f"nct:{n}" for n in trials["nct_id"]])
    pub = regs.iloc[[0]].copy()
    pub[["record_id", "source", "pmid", "journal"]] = ["pmid:35296532", "pubmed", "35296532", "Lancet"]
    records = pd.concat([pub, regs], ignore_index=True)
    result = registrations.deduplicate(records, trials)
    assert result.n_removed == 1
    assert result.removed_ids == {"nct:NCT99999901"}
    row = result.audit[result.audit["record_id"] == "nct:NCT99999901"].iloc[0]
    assert row["rule"] == "registry id (shared EudraCT id)" and row["matched_to"] == "nct:NCT02552212"
    assert list(result.records["record_id"]) == ["pmid:35296532", "nct:NCT02552212", "nct:NCT99999902"]
    # the plain dedup, blind to what a registration is, merges some of them by their shared title
    assert dedup.deduplicate(records.drop(columns=[c for c in trials.columns if c in records and c not in
                                                  ("title", "keywords", "source")])).n_removed >= 1


def _three_registrations():
    """The real NCT02552212, a copy sharing its EudraCT number, and a same-titled registration without one."""
    real = _study("study_NCT02552212.json")
    shared = _renamed(real, "NCT99999901", briefTitle="Another title entirely")
    same_title = _renamed(real, "NCT99999902")
    same_title["protocolSection"]["identificationModule"]["secondaryIdInfos"] = []
    same_title["protocolSection"]["identificationModule"]["orgStudyIdInfo"] = {"id": "OTHER-1"}
    trials = read_ctgov({"studies": [real, shared, same_title]})
    regs = registry_records(trials)
    regs.insert(0, "record_id", [f"nct:{n}" for n in trials["nct_id"]])
    return trials, regs


def test_reviewers_marks_on_registrations_hold_in_every_run(tmp_path):
    """A "not duplicates" mark splits a shared-register-id pair; a "duplicates" mark merges two registrations;
    both survive a rerun of `dedup.run`, and a withdrawal restores the register's link."""
    trials, regs = _three_registrations()
    with ReviewStore(tmp_path / "review.sqlite") as store:
        sid = store.add_search("ctgov", "{}", status="complete")
        store.add_trials(trials, sid)
        store.add_records(regs.drop(columns=["record_id"]), sid)
        assert dedup.run(store).removed_ids == {"nct:NCT99999901"}
        apart = dedup.mark_not_duplicates(store, ["nct:NCT02552212", "nct:NCT99999901"], "ana", note="two trials")
        dedup.mark_duplicates(store, ["nct:NCT02552212", "nct:NCT99999902"], "ana")
        for _ in range(2):                                   # and again: the marks are in the store
            result = dedup.run(store)
            assert result.removed_ids == {"nct:NCT99999902"}
            row = result.audit[result.audit["record_id"] == "nct:NCT99999902"].iloc[0]
            assert (row["rule"], row["matched_to"]) == ("reviewer", "nct:NCT02552212")
        dedup.withdraw_mark(store, apart, "ana")
        assert dedup.run(store).removed_ids == {"nct:NCT99999901", "nct:NCT99999902"}


def test_a_mark_joining_a_registration_and_a_publication_is_refused(tmp_path):
    trials, regs = _three_registrations()
    pub = regs.iloc[[0]].drop(columns=["record_id"]).assign(source="pubmed", pmid="35296532")
    with ReviewStore(tmp_path / "review.sqlite") as store:
        sid = store.add_search("ctgov", "{}", status="complete")
        store.add_records(pd.concat([pub, regs.drop(columns=["record_id"])], ignore_index=True), sid)
        with pytest.raises(InputError, match=r"nct:NCT02552212 is a registration and pmid:35296532 a publication"):
            dedup.mark_duplicates(store, ["pmid:35296532", "nct:NCT02552212"], "ana")
        assert len(store.dedup_marks()) == 0


# -- extraction ---------------------------------------------------------------------------------------
def test_structured_registry_fields_are_read_from_their_fields(protocol):
    trials = read_ctgov([_study("study_NCT02552212.json"), _study("study_NCT04207047.json")])
    out = evreg.extract_trials(trials, protocol).set_index("nct_id")
    rct, single = out.loc["NCT02552212"], out.loc["NCT04207047"]
    assert (rct["design"], rct["design_evidence"], rct["design_confidence"]) == \
        ("randomised controlled", "ClinicalTrials.gov allocation: RANDOMIZED", 1.0)
    assert rct["controlled"] == "yes"                                  # derived again from the field's value
    assert (rct["n_patients"], rct["n_patients_evidence"]) == ("317", "ClinicalTrials.gov enrollment: 317")
    assert (rct["age_group"], rct["age_group_evidence"]) == ("adult", "ClinicalTrials.gov std_ages: ADULT; OLDER_ADULT")
    assert single["n_patients"] == "3"
    assert not str(single["design_evidence"]).startswith("ClinicalTrials.gov")   # NA phase: no rule gives one
    assert single["controlled"] == "no"


def test_extract_cli_reads_a_trials_csv(tmp_path, snapshot_trials, protocol):
    trials = snapshot_trials.head(12)
    path = write_trials_csv(trials, tmp_path / "trials.csv")
    assert cli.main(["extract", "--protocol", str(protocol.path), "--records", str(path),
                     "--out", str(tmp_path / "evidence.csv")]) == 0
    out = pd.read_csv(tmp_path / "evidence.csv", dtype=str, keep_default_na=False)
    assert list(out["nct_id"]) == list(trials["nct_id"])
    assert list(out["n_patients"]) == [str(int(v)) for v in trials["enrollment"]]
    assert out["n_patients_evidence"].str.startswith("ClinicalTrials.gov enrollment: ").all()


def test_a_bad_registry_field_rule_is_one_protocol_error(tmp_path, protocol):
    raw = dict(protocol.raw)
    raw["registry"] = dict(raw["registry"], fields={"design": [{"column": "allocation",
                                                               "map": {"RANDOMIZED": "a design nobody declared"}}]})
    with pytest.raises(Exception) as err:
        evreg.extract_trials(read_ctgov(_study("study_NCT02552212.json")),
                             dataclasses.replace(protocol, raw=raw))
    assert "registry.fields.design" in str(err.value) and "not an allowed value" in str(err.value)


# -- the registry section's numbers, checked against the CSV the snapshot was made from ----------------
def test_registry_tables_agree_with_the_source_csv(trial_table, protocol):
    csv = pd.read_csv(CSV, dtype=str, keep_default_na=False)
    tables = evreg.registry_tables(trial_table, protocol)
    phases = tables["trials by registered phase"].set_index("phase")["trials"]
    expected = csv["Phase"].replace({"": "not given", "Unknown": "not given"})  # the snapshot leaves it absent
    expected = expected.str.replace("|", "; ").value_counts()
    assert phases.to_dict() == expected.to_dict()
    assert (phases["PHASE1"], phases["EARLY_PHASE1"], phases["PHASE1; PHASE2"]) == (114, 97, 48)   # its README
    enrol = tables["planned enrollment"].set_index("group")
    assert enrol.loc["all trials", "median"] == pd.to_numeric(csv["EnrollmentCount"]).median() == 18
    status = tables["trials by status"]
    assert status["trials"].sum() == 315
    assert dict(zip(status["status"], status["trials"])) == \
        {k.lower().replace("_", " "): v for k, v in csv["OverallStatus"].value_counts().items()}
    spec = next(s for s in protocol.section("report")["registry_tables"] if s.get("gap") == "lymphodepletion")
    agents = tables[spec["title"]].set_index("named")["trials"]
    for agent, pats in spec["values"].items():
        hit = csv["Interventions"].str.contains("|".join(f"(?:{p})" for p in pats), flags=re.I, regex=True)
        assert agents[agent] == int(hit.sum()), agent
    assert agents[spec["none"]] == 315 - int(csv["Interventions"].str.contains(
        "|".join(f"(?:{p})" for ps in spec["values"].values() for p in ps), flags=re.I, regex=True).sum())
    ages = tables["age groups eligible"].set_index("age group")["trials"]
    months = csv["MinAge"].str.extract(r"^(\d+) (Year|Month|Week|Day)")
    below = pd.to_numeric(months[0]).where(months[1] == "Year", 0) < 18       # a minimum in months is a child
    children = csv["StdAges"].str.contains("CHILD") | (below & months[0].notna())
    assert ages.iloc[0] == int(children.sum())


def test_gap_facts_give_the_numbers_the_lead_states(trial_table, protocol):
    facts = evreg.registry_gap_facts(trial_table, protocol)
    assert facts["n_trials"] == 315
    assert facts["enrollment"]["median"] == 18 and facts["enrollment"]["small"] == 20
    assert facts["enrollment"]["at_most_small"] == int((pd.to_numeric(trial_table["enrollment"]) <= 20).sum())
    d = facts["registered_design"]
    assert d["randomised_from_text"] == d["randomised"]     # the snapshot has no allocation field
    assert d["randomised"] < d["single_arm"] and d["none_stated"] > 0
    assert set(facts["lymphodepletion"]) == {"fludarabine", "cyclophosphamide", "other agent", "none named"}
    assert facts["publications"]["completed"] == int(trial_table["status"].eq("COMPLETED").sum())
    sentences = repreg.gap_sentences(facts)
    assert any("median enrollment of 18" in s for s in sentences)


def test_publications_count_links_to_the_reviews_records(snapshot_trials):
    trials = read_ctgov(_study("study_NCT02552212.json"))
    table = trials[["nct_id", "status"]]
    lk = links.link_table(trials=trials)
    mine = {"pmid:35296532"}
    out = evreg.publications(table, lk, mine).set_index("status")
    assert out.loc["all trials", "with a publication linked"] == 1
    out = evreg.publications(table, lk, {"pmid:1"}).set_index("status")
    assert out.loc["all trials", "no publication linked"] == 1


def test_study_links_show_each_studys_registrations_and_reports():
    table = pd.DataFrame({"record_id": ["pmid:1", "pmid:2", "pmid:3"]})
    lk = pd.DataFrame([("pmid:1", "NCT02149199", "abstract"), ("pmid:2", "NCT02149199", "pubmed databank"),
                       ("pmid:9", "NCT02149199", "registry reference (RESULT)")], columns=links.LINK_COLUMNS)
    out = links.study_links(table, lk, record_ids=["pmid:1", "pmid:2", "pmid:3"])
    assert list(out["registrations"]) == ["NCT02149199", "NCT02149199", ""]
    assert list(out["reports"]) == ["pmid:1; pmid:2", "pmid:1; pmid:2", "pmid:3"]


def test_the_screener_shows_a_trials_fields_escaped(tmp_path):
    study = _renamed(_study("study_NCT04207047.json"), "NCT04207047")
    study["protocolSection"]["conditionsModule"]["conditions"] = ["<script>alert(1)</script> lupus"]
    with ReviewStore(tmp_path / "review.sqlite") as store:
        store.add_trials(read_ctgov(study))
        shown = registrations.trial_facts_html(store, "nct:NCT04207047")
        assert "&lt;script&gt;" in shown and "<script>" not in shown
        assert "Enrollment:</b> 3 (actual)" in shown and "Phase:</b> NA" in shown
        assert registrations.trial_facts_html(store, "pmid:1") == ""


def test_the_registry_notice_calls_the_registry_real_and_nothing_synthetic(protocol):
    offline = repreg.registry_notice(protocol, offline=True)
    online = repreg.registry_notice(protocol, offline=False)
    assert "REAL" in offline and "2026-08-22" in offline and "synthetic" not in offline.lower()
    assert "REAL" in online and "snapshot" not in online
    demo = " ".join(protocol.demo["notice"].split())
    assert "registry records (ClinicalTrials.gov, NCT ids) are REAL" in demo


def test_registry_figures_are_drawn_from_the_protocols_declarations(trial_table, protocol):
    figs = repreg.registry_figures(trial_table, protocol)
    assert list(figs) == [s["name"] for s in protocol.section("report")["registry_figures"]]
    start = figs["registry_start_year"]
    title = start._suptitle.get_text()
    n_dated = int(evreg.start_year(trial_table).notna().sum())
    assert title.startswith(f"{n_dated} registered trials")
    assert "median 18" in figs["registry_enrollment"]._suptitle.get_text()


def test_engine_modules_name_no_word_of_the_protocol(protocol):
    words = set()
    for spec in protocol.section("report")["registry_tables"]:
        words |= set((spec.get("values") or {}).keys())
    for f in protocol.section("extraction")["fields"].values():
        words |= {str(v) for v in (f.get("values") or {}) if len(str(v)) > 3}
    words -= {"other", "none", "both", "adult", "other agent", "response", "relapse", "yes", "review"}  # plain words
    for module in ENGINE_MODULES:
        text = (ROOT / module).read_text(encoding="utf-8").lower()
        found = sorted(w for w in words if re.search(rf"(?<![\w-]){re.escape(w.lower())}(?![\w-])", text))
        assert not found, f"{module} names {found}: vocabulary belongs in the protocol"
