"""The synthesis as the report shows it: protocol spec, sources per value, escaped HTML, saved tables (real store)."""
from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from reviewlib.errors import ProtocolError
from reviewlib.evidence import extraction, tables
from reviewlib.protocol import load_protocol
from reviewlib.report import synthesis_report as sr
from reviewlib.store import ReviewStore

PROTOCOL = load_protocol("car-t-autoimmune")
XSS = '<script>alert(1)</script>'
RECORDS = pd.DataFrame([
    {"record_id": "pmid:1", "pmid": "1", "title": f"{XSS} in SLE", "authors": ["Liu X"], "year": 2023,
     "abstract": "Five patients were treated. CRS occurred in 3 of 5 patients. No ICANS was observed."},
    {"record_id": "pmid:2", "pmid": "2", "title": "SSc series", "authors": ["Liu Y"], "year": 2023,
     "abstract": "Four patients were treated. Grade 1 CRS in 50% of 4 patients."},
    {"record_id": "pmid:3", "pmid": "3", "title": "SLE series", "authors": ["de Vries A"], "year": 2024,
     "abstract": "Eight patients were treated. CRS occurred in 4 of 8 patients."},
    {"record_id": "nct:NCT01234567", "pmid": None, "title": "Registry results", "authors": ["=Müller F"], "year": 2022,
     "abstract": "Six patients were treated. Two of 6 patients had CRS."},
])
VALUES = pd.DataFrame({"record_id": RECORDS["record_id"], "disease": ["SLE", "SSc", "SLE", "SLE"],
                       "target": ["CD19", "CD19", "BCMA", "CD19"], "design": "case series",
                       "n_patients": ["5", "4", "8", "6"]})


@pytest.fixture
def review(tmp_path):
    with ReviewStore(tmp_path / "review.sqlite") as store:
        table = tables.study_table(VALUES, RECORDS, PROTOCOL)
        yield store, table, tmp_path


def test_spec_comes_from_the_protocol_and_bad_names_are_one_line():
    spec = sr.synthesis_spec(PROTOCOL)
    assert spec["names"][0] == "remission" and len(spec["names"]) == 8
    assert (spec["subgroup"], spec["by"], spec["method"]) == ("target", "disease", "REML")
    raw = {**PROTOCOL.raw, "report": {**PROTOCOL.raw["report"], "synthesis": {"outcomes": ["remision"]}}}
    bad = dataclasses.replace(PROTOCOL, raw=raw)
    with pytest.raises(ProtocolError, match="'remision' that the outcomes section does not declare"):
        sr.synthesis_spec(bad)
    raw["report"]["synthesis"] = {"by": "diseas"}
    with pytest.raises(ProtocolError, match="by: 'diseas' is not a field"):
        sr.synthesis_spec(dataclasses.replace(PROTOCOL, raw=raw))


@pytest.mark.parametrize("record, link", [
    ({"record_id": "pmid:12"}, "https://pubmed.ncbi.nlm.nih.gov/12/"),
    ({"record_id": "doi:10.1/x", "pmid": None}, "https://doi.org/10.1/x"),
    ({"record_id": "nct:NCT01234567"}, "https://clinicaltrials.gov/study/NCT01234567"),
    ({"record_id": "x:1"}, None)])
def test_source_link(record, link):
    assert sr.source_link(record) == link


def test_synthesis_traces_every_value_and_shows_no_pooled_number_alone(review):
    store, table, folder = review
    rep = sr.synthesize_review(store, table, RECORDS, PROTOCOL, demo=True, folder=folder, gaps=["Samples are small."])
    crs = next(r for r in rep.summary["findings"] if r["outcome"] == "CRS any grade")
    assert (crs["studies"], crs["patients"], crs["events"], crs["poolable"]) == (4, 23, 11, True)
    assert "95% CI" in crs["estimate"] and "prediction interval" in crs["estimate"] and "I²" in crs["estimate"]
    assert {s["study"] for s in crs["sources"]} == {"Liu 2023a", "Liu 2023b", "de Vries 2024", "=Müller 2022"}
    assert {s["link"] for s in crs["sources"]} >= {"https://pubmed.ncbi.nlm.nih.gov/1/",
                                                   "https://clinicaltrials.gov/study/NCT01234567"}
    icans = next(r for r in rep.summary["findings"] if r["outcome"] == "ICANS")
    assert not icans["poolable"] and icans["pooled"] is None and icans["estimate"].startswith("Not pooled: only 1 study")
    html = sr.summary_html(rep.summary)
    assert XSS not in html and "nan" not in html.lower().replace("nancy", "")
    assert 'title="From 4 studies: Liu 2023a 3/5' in html                 # the pooled value's sources on hover
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/3/" title="CRS occurred in 4 of 8 patients."' in html
    assert "<details open><summary>the study: values" in html             # an unpooled outcome lists its study
    assert "scripted demo appraiser" in html
    # the outcomes table: one block per disease, then all studies, each closed by its total
    blocks = sr.outcome_blocks(rep.summary)
    assert [b["group"] for b in blocks] == ["SLE", "SSc", "All studies"] and blocks[0]["total"] == 3
    out = sr.outcomes_html(rep.summary)
    assert out.index("Total, SLE") < out.index(">SSc<") and "11/23 (4)" in out
    # saved: JSON for the index, CSV/XLSX with each value's sentence and source, formulas neutralised
    saved = json.loads((folder / sr.SOF_FILE).read_text())
    assert saved["gaps"] == ["Samples are small."] and saved["findings"][3]["outcome"] == "CRS any grade"
    long = pd.read_csv(folder / "tables" / "outcomes-by-study.csv", dtype=str, keep_default_na=False)
    row = long[(long["outcome"] == "CRS, any grade") & (long["study"] == "de Vries 2024")].iloc[0]
    assert (row["events/treated"], row["evidence"], row["source"]) == (
        "4/8", "CRS occurred in 4 of 8 patients.", "https://pubmed.ncbi.nlm.nih.gov/3/")
    assert "'=Müller 2022" in set(long["study"])
    assert (folder / "tables" / "synthesis.xlsx").is_file() and (folder / "tables" / "grade.csv").is_file()
    # a rerun appends no outcome and no demo judgement
    before = (len(store.extractions()), len(store.appraisals()))
    sr.synthesize_review(store, table, RECORDS, PROTOCOL, demo=True)
    assert (len(store.extractions()), len(store.appraisals())) == before
