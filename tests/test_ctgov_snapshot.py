"""The default review's offline registry snapshot: built reproducibly from the real trials CSV, read by the reader."""
from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from reviewlib.errors import InputError
from reviewlib.retrieval.registry import load_registry_snapshot
from reviewlib.sources.ctgov import read_ctgov
from reviewlib.sources.ctgov_snapshot import SNAPSHOT, build, main
from reviewlib.store import ReviewStore


@pytest.fixture
def csv_path(data_dir):
    return data_dir / "ctgov" / "car_t_autoimmune_2026_08_22_trials.csv"


@pytest.fixture
def csv(csv_path):
    return pd.read_csv(csv_path, dtype=str, keep_default_na=False).set_index("NCTId")


def test_the_packaged_snapshot_is_what_the_converter_builds_from_the_csv(csv_path):
    assert SNAPSHOT.is_file() and build(csv_path) == SNAPSHOT.read_bytes()      # byte for byte


def test_315_real_trials_read_back_through_the_same_reader(csv):
    trials = read_ctgov(SNAPSHOT)
    assert len(trials) == 315 and trials["nct_id"].is_unique and set(trials["nct_id"]) == set(csv.index)
    t = trials.set_index("nct_id")
    first = t.loc["NCT04146051"]
    assert first["title"] == "Descartes-08 CAR-T Cells in Generalized Myasthenia Gravis (MG)"
    assert (first["status"], first["phases"], first["enrollment"], first["enrollment_type"]) == \
        ("ACTIVE_NOT_RECRUITING", ["PHASE2"], 30, "ESTIMATED")
    assert first["conditions"] == ["Myasthenia Gravis, Generalized"]            # a comma inside one condition
    assert first["countries"] == ["Canada", "United States"] and first["start_date"] == "2019-12-04"
    assert t.loc["NCT04561557", "interventions"] == ["CT103A cells", "Cyclophosphamide and fludarabine"]
    for nct in ("NCT04146051", "NCT04422912", "NCT04561557"):
        row = csv.loc[nct]
        assert t.loc[nct, "brief_summary"] == row["BriefSummary"].strip()
        assert t.loc[nct, "lead_sponsor"] == row["LeadSponsor"] and t.loc[nct, "lead_sponsor_class"] == \
            row["LeadSponsorClass"]
        assert "|".join(t.loc[nct, "std_ages"]) == row["StdAges"]
        assert "|".join(t.loc[nct, "primary_outcomes"]) == row["PrimaryEndpoints"]
    assert (trials["enrollment"].astype(int) == csv.loc[trials["nct_id"], "EnrollmentCount"].astype(int).values).all()
    assert trials["enrollment"].median() == 18          # shared/data/registry/README.md: "median 18"


def test_fields_the_csv_lacks_stay_absent(csv):
    pages = json.loads(gzip.decompress(SNAPSHOT.read_bytes()))
    assert len(pages) == 1 and pages[0]["totalCount"] == 315 and "nextPageToken" not in pages[0]
    for study in pages[0]["studies"]:
        assert set(study) == {"protocolSection"}                           # no hasResults, no derivedSection
        ps = study["protocolSection"]
        assert "designInfo" not in ps.get("designModule", {}) and "studyType" not in ps.get("designModule", {})
        assert "referencesModule" not in ps and "officialTitle" not in ps["identificationModule"]
        assert all(set(i) == {"name"} for i in ps.get("armsInterventionsModule", {}).get("interventions", []))
        assert all(set(d) == {"date"} for k, d in ps["statusModule"].items() if k.endswith("DateStruct"))
    trials = read_ctgov(SNAPSHOT)
    assert trials["allocation"].isna().all() and trials["masking"].isna().all() and trials["has_results"].isna().all()
    unknown = csv.index[csv["Phase"] == "Unknown"]
    assert len(unknown) == 5 and all(p == [] for p in trials.set_index("nct_id").loc[unknown, "phases"])
    no_start = csv.index[csv["StartDate"] == ""]
    assert len(no_start) == 33 and trials.set_index("nct_id").loc[no_start, "start_date"].isna().all()


def test_a_csv_of_the_wrong_shape_is_one_line_and_nothing_is_written(tmp_path, csv_path, capsys):
    bad = tmp_path / "trials.csv"
    pd.read_csv(csv_path, dtype=str).drop(columns=["Phase"]).to_csv(bad, index=False)
    out = tmp_path / "snap.json.gz"
    assert main(["--csv", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "wrong shape (missing: Phase" in err and str(bad) in err
    assert not out.exists()
    with pytest.raises(InputError, match="registry CSV not found"):
        build(tmp_path / "nope.csv")


def test_snapshot_loads_into_a_store_once(tmp_path):
    with ReviewStore(tmp_path / "review.sqlite") as store:
        first = load_registry_snapshot(SNAPSHOT, store, note="REAL registry records")
        assert first.source == "ctgov-snapshot" and first.count == first.n_records == 315 and not first.reused
        assert "not a live search" in first.translation and "REAL registry records" in first.translation
        again = load_registry_snapshot(SNAPSHOT, store)
        assert again.reused and again.search_id == first.search_id and len(store.trials()) == 315
        assert store.trial_sources()["source"].eq("ctgov-snapshot").sum() == 315
