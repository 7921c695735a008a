"""Screening rules from the protocol: decisions with every reason, bad criteria, never over a human."""
from __future__ import annotations

import copy

import pandas as pd
import pytest

from reviewlib.screening import decisions
from reviewlib.screening import eligibility as screening
from reviewlib.errors import ProtocolError
from reviewlib.protocol import PACKAGE_DATA, load_protocol
from reviewlib.records import conform
from reviewlib.store import ReviewStore


@pytest.fixture(scope="module")
def protocol():
    return load_protocol("car-t-autoimmune")


@pytest.fixture(scope="module")
def rules(protocol):
    return screening.load_rules(protocol)


def _record(**fields) -> dict:
    base = {"pmid": "1", "title": "Anti-CD19 CAR T cells in refractory systemic lupus erythematosus",
            "abstract": "Five patients with SLE received CD19 CAR T cells after fludarabine and cyclophosphamide.",
            "language": ["eng"], "publication_types": ["Journal Article"], "mesh_terms": ["Humans"], "year": 2023}
    base.update(fields)
    return base


def _decide(rules, **fields):
    frame = screening.apply_rules(conform(pd.DataFrame([_record(**fields)])), rules)
    row = frame.iloc[0]
    return row["decision"], row["reasons"], row["fired"]


def test_vocabulary_is_the_contract(rules):
    assert list(rules.reasons) == ["publication-type", "preclinical", "wrong-population", "wrong-intervention",
                                   "language", "no-data"]
    assert rules.criteria["include"] and rules.criteria["exclude"]


def test_single_rules_fire_with_their_reasons(rules):
    assert _decide(rules)[0] == "include"
    assert _decide(rules, publication_types=["Review"])[:2] == ("exclude", ["publication-type"])
    # a letter that is also a case report carries patient data: not excluded
    assert _decide(rules, publication_types=["Letter", "Case Reports"])[0] == "include"
    assert _decide(rules, language=["ger"])[:2] == ("exclude", ["language"])
    assert _decide(rules, mesh_terms=["Animals", "Mice"])[:2] == ("exclude", ["preclinical"])
    assert _decide(rules, mesh_terms=["Animals", "Humans"])[0] == "include"
    assert _decide(rules, year=2012)[:2] == ("unsure", [])
    onc = _decide(rules, title="CD19 CAR T cells in relapsed mantle cell lymphoma",
                  abstract="85 patients with mantle cell lymphoma received CAR T cells.")
    assert onc[:2] == ("exclude", ["wrong-population"])
    other = _decide(rules, title="Belimumab in systemic lupus erythematosus",
                    abstract="40 patients received belimumab; 12 reached remission.")
    assert other[:2] == ("exclude", ["wrong-intervention"])


def test_every_reason_that_fired_is_listed(rules):
    decision, reasons, fired = _decide(rules, publication_types=["Review"], language=["chi"],
                                       mesh_terms=["Animals"])
    assert decision == "exclude"
    assert reasons == ["publication-type", "language", "preclinical"]
    assert any(f.startswith("publication_types:") for f in fired) and "animal_only" in fired


def test_missing_required_term_without_abstract_is_unsure_not_excluded(rules):
    decision, reasons, fired = _decide(rules, title="Remission of refractory lupus after cell therapy",
                                       abstract=None)
    assert (decision, reasons) == ("unsure", [])
    assert "required:engineered-cell-therapy" in fired
    with_abstract = _decide(rules, title="Remission of refractory lupus after cell therapy",
                            abstract="A patient with lupus received an infusion of cells.")
    assert with_abstract[:2] == ("exclude", ["wrong-intervention"])


def test_rules_on_the_synthetic_snapshot(rules):
    truth_path = PACKAGE_DATA / "car-t-autoimmune-truth.csv"
    snapshot = PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz"
    assert truth_path.is_file() and snapshot.is_file(), "the packaged demo snapshot and its truth are part of the repository"
    from reviewlib import read_pubmed_xml
    truth = pd.read_csv(truth_path, dtype=str)
    result = screening.apply_rules(read_pubmed_xml(snapshot), rules)
    result["pmid"] = result["record_id"].str.removeprefix("pmid:")
    merged = result.merge(truth, on="pmid")
    assert len(merged) == len(truth)
    relevant = merged[merged["relevant"].isin(["1", "True", "true"])]
    assert len(relevant) > 50
    assert (relevant["decision"] != "exclude").all()         # no relevant clinical report excluded
    excluded = merged[merged["decision"] == "exclude"]
    # every rule exclusion names the truth's reason first
    assert (excluded["reasons"].str[0] == excluded["exclusion_reason"]).all()
    for kind in ("review", "editorial", "non-english", "preclinical", "distractor-oncology"):
        of_kind = merged[merged["kind"] == kind]
        if len(of_kind):
            share = (of_kind["decision"] == "exclude").mean()
            assert share >= 0.9, f"{kind}: only {share:.0%} excluded"


def _bad(section_patch) -> str:
    raw = copy.deepcopy(load_protocol("car-t-autoimmune").section("eligibility"))
    section_patch(raw)
    with pytest.raises(ProtocolError) as info:
        screening.load_rules(raw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_criteria_raise_one_line_naming_the_criterion():
    msg = _bad(lambda e: e["publication_types"].update(reason="not-a-reason"))
    assert "publication_types.reason" in msg and "'not-a-reason'" in msg and "exclusion_reasons" in msg
    msg = _bad(lambda e: e["excluding"][0].update(text=["lymph(oma"]))
    assert "excluding.oncology-title.text" in msg and "lymph(oma" in msg and "regular expression" in msg
    msg = _bad(lambda e: e["publication_types"].update(exclude="Review, Editorial"))
    assert "publication_types.exclude" in msg and "list of strings" in msg and "Review, Editorial" in msg
    msg = _bad(lambda e: e["publication_types"].update(exclude=["Review", 3]))
    assert "publication_types.exclude" in msg and "list of strings" in msg
    msg = _bad(lambda e: e.update(langauges={"allowed": ["eng"]}))
    assert "langauges" in msg
    msg = _bad(lambda e: e["required"][0].pop("reason"))
    assert "required.engineered-cell-therapy" in msg and "no reason" in msg
    msg = _bad(lambda e: e["years"].update(action="drop"))
    assert "years.action" in msg


def test_protocol_without_eligibility(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("review: {name: x}\nsearch: {query: lupus}\n")
    with pytest.raises(ProtocolError, match="no eligibility section"):
        screening.load_rules(path)


@pytest.fixture
def store(tmp_path):
    s = ReviewStore(tmp_path / "review.sqlite")
    s.add_records(conform(pd.DataFrame([
        _record(pmid="1"), _record(pmid="2", publication_types=["Review"]), _record(pmid="3", language=["fre"]),
    ])))
    return s


def test_saved_rules_never_override_a_human(store, rules):
    decisions.record_decision(store, "pmid:2", "ana", "include", note="review with a new case inside")
    result = screening.apply_rules(store.records(), rules)
    assert screening.save_rule_decisions(store, result, rules) == 2        # pmid:2 left to ana
    rows = store.decisions()
    assert set(rows.loc[rows["kind"] == "rule", "record_id"]) == {"pmid:1", "pmid:3"}
    assert rows.loc[rows["record_id"] == "pmid:3", "reason"].tolist() == ["language"]
    # saving again adds nothing; a later human decision beats the rule in the final decision
    assert screening.save_rule_decisions(store, result, rules) == 0
    decisions.record_decision(store, "pmid:1", "bob", "exclude", reason="no-data")
    assert decisions.included(store) == ["pmid:2"]
    final = decisions.final_decisions(store).set_index("record_id")
    assert final.loc["pmid:3", "basis"] == "rules" and final.loc["pmid:1", "basis"] == "single"
    # the vocabulary is recorded for validating human reasons
    assert screening.vocabulary(store) == rules.reasons


def test_reason_counts(rules):
    frame = screening.apply_rules(conform(pd.DataFrame([
        _record(publication_types=["Review"]), _record(language=["ger"], publication_types=["Editorial"]),
        _record()])), rules)
    counts = screening.reason_counts(frame, rules).set_index("reason")["records"].to_dict()
    assert counts == {"publication-type": 2, "language": 1}
