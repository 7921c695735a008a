"""From the store to the summary of findings: outcomes, appraisal and GRADE together on a real store."""
from __future__ import annotations

import pandas as pd

from reviewlib.evidence import appraisal, findings, outcomes as oc
from reviewlib.protocol import load_protocol
from reviewlib.store import ReviewStore

RECORDS = pd.DataFrame([
    {"record_id": "pmid:1", "title": "CD19 CAR-T in SLE", "abstract": "CRS occurred in 3 of 5 patients. No ICANS was observed."},
    {"record_id": "pmid:2", "title": "CD19 CAR-T in SSc", "abstract": "Grade 1 CRS in 50% of 4 patients."},
    {"record_id": "pmid:3", "title": "BCMA CAR-T in SLE", "abstract": "CRS occurred in 4 of 8 patients."},
    {"record_id": "pmid:4", "title": "CD19 CAR-T in myositis", "abstract": "Two of 6 patients had CRS."},
])
STUDIES = pd.DataFrame({"record_id": ["pmid:1", "pmid:2", "pmid:3", "pmid:4"],
                        "study": ["Liu 2023a", "Liu 2023b", "de Vries 2024", "Müller 2022"],
                        "design": ["case series"] * 4, "target": ["CD19", "CD19", "BCMA", "CD19"],
                        "disease": ["SLE", "SSc", "SLE", "SLE; myositis"], "n_patients": [5, 4, 8, 6],
                        "follow_up_months": [12, "not reported", 6, 3], "age_group": "adult",
                        "lymphodepletion": "Flu/Cy"})


def test_synthesize_pools_grades_and_keeps_unpooled_outcomes(tmp_path):
    proto = load_protocol("car-t-autoimmune")
    with ReviewStore(tmp_path / "r.sqlite") as store:
        found = oc.extract_outcomes(RECORDS, proto, n_patients=dict(zip(STUDIES.record_id, STUDIES.n_patients)))
        oc.save(store, found)
        appraisal.demo_appraise(store, STUDIES, load_protocol("car-t-autoimmune"))
        out = findings.synthesize(store, STUDIES, ["CRS any grade", "ICANS", "death"], subgroup="target",
                                  by="disease", design="design",
                                  overrides={"CRS any grade": [{"domain": "indirectness", "downgrade": 1,
                                                                "reason": "mixed diseases", "reviewer": "ana"}]})
    crs = out.results["CRS any grade"]
    assert (crs.k, crs.events, crs.patients) == (4, 11, 23)
    assert list(crs.subgroups["subgroup"]) == ["CD19", "BCMA"]
    assert list(crs.studies["label"]) == ["Liu 2023a", "Liu 2023b", "de Vries 2024", "Müller 2022"]
    assert not out.results["ICANS"].poolable                       # one study: shown, not pooled
    assert "death" not in out.results
    sof = out.table.set_index("outcome")
    assert sof.loc["death", "studies"] == 0 and sof.loc["death", "estimate"] == "No study reports it"  # a gap
    assert sof.loc["ICANS", "estimate"].startswith("Not pooled: only 1 study")
    grade = out.grade_table()
    row = grade[(grade.outcome == "CRS any grade") & (grade.domain == "indirectness")].iloc[0]
    assert (row["computed"], row["override"], row["reviewer"]) == (0, 1, "ana")
    sle = out.group_table[(out.group_table.outcome == "CRS any grade") & (out.group_table.disease == "SLE")].iloc[0]
    assert (sle["studies"], sle["events"], sle["patients"], sle["poolable"]) == (2, 7, 13, False)
    # per population: its own certainty and plain sentence, saying why it is not pooled
    assert sle["level"] in ("high", "moderate", "low", "very low") and sle["certainty"].endswith(sle["level"])
    assert "too few studies to pool" in sle["finding"] and "2 studies" in sle["finding"]
    mixed = out.group_table[out.group_table.disease == findings.MIXED]
    assert mixed["studies"].tolist() == [1]                         # the basket study, not split
