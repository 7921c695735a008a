"""GRADE per outcome: computed defaults with their reasons, overrides that keep both, four levels."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reviewlib.errors import InputError
from reviewlib.evidence import certainty
from reviewlib.evidence.synthesis import pool_proportions, pool_ratios

BCG = pd.read_csv(Path(__file__).parent / "data" / "synthesis" / "dat_bcg.csv")


def _series(events, totals):
    return pool_proportions(events, totals, method="REML", transform="logit")


def test_single_arm_series_start_low_and_fall_to_very_low():
    res = _series([2, 5, 1, 3], [6, 9, 4, 8])           # 27 patients
    cert = certainty.assess("CRS any grade", res, designs=["case series"] * 4,
                            bias_levels=["high", "high", "some concerns", None])
    assert cert.start == "low" and "non-randomised" in cert.start_reason
    rob = cert.domains["risk of bias"]
    assert rob.computed == 2 and "1 of 4 studies not appraised" in rob.computed_reason
    imp = cert.domains["imprecision"]
    assert imp.computed >= 1 and "27 patients" in imp.computed_reason and "OIS" in imp.computed_reason
    pub = cert.domains["publication bias"]
    assert pub.computed == 0 and "need at least 10" in pub.computed_reason
    assert cert.level == "very low" and cert.symbol.count("\u2295") == 1


def test_rct_evidence_starts_high_and_precise_consistent_stays_high():
    res = pool_ratios([10, 11, 9, 10], [500, 500, 500, 500], [20, 21, 19, 20], [500, 500, 500, 500],
                      measure="RR", method="REML")
    cert = certainty.assess("relapse", res, designs=["randomised controlled"] * 4, bias_levels=["low"] * 4)
    assert cert.start == "high"
    assert cert.domains["inconsistency"].computed == 0
    assert cert.domains["risk of bias"].computed == 0
    # 4000 patients against an OIS for a 25% RRR at a 4% control risk: still short -> imprecision flagged
    ois = certainty._ois_ratio(res)
    assert ois > 4000 and cert.domains["imprecision"].computed == 1
    assert cert.level == "moderate"


def test_inconsistency_from_i2_and_prediction_interval():
    res = pool_ratios(BCG.tpos, BCG.tpos + BCG.tneg, BCG.cpos, BCG.cpos + BCG.cneg, measure="RR", method="REML")
    cert = certainty.assess("tuberculosis", res, designs=["randomised controlled"] * 13, bias_levels=["low"] * 13)
    inc = cert.domains["inconsistency"]
    assert inc.computed == 2 and "I\u00b2 92%" in inc.computed_reason and "0.15-1.55" in inc.computed_reason
    assert "Egger" in cert.domains["publication bias"].computed_reason     # 13 studies: the test is run


def test_override_keeps_the_computed_default_and_its_reason():
    res = _series([2, 5, 1, 3], [6, 9, 4, 8])
    cert = certainty.assess("CRS any grade", res, designs=["case series"] * 4, bias_levels=["low"] * 4)
    before = cert.level
    changed = cert.override("imprecision", 0, "clinically the CI excludes harm thresholds", "ana")
    dom = changed.domains["imprecision"]
    assert dom.override == 0 and dom.computed == cert.domains["imprecision"].computed
    assert "reviewer ana" in dom.reason and "computed:" in dom.reason
    frame = changed.to_frame().set_index("domain")
    assert frame.loc["imprecision", "computed"] == cert.domains["imprecision"].computed
    assert frame.loc["imprecision", "override"] == 0 and frame.loc["imprecision", "reviewer"] == "ana"
    assert certainty.LEVELS.index(changed.level) <= certainty.LEVELS.index(before)
    with pytest.raises(InputError, match="downgrade 3 is not 0, 1 or 2"):
        cert.override("imprecision", 3, "x", "ana")
    with pytest.raises(InputError, match="needs the reviewer"):
        cert.override("imprecision", 1, "x", "")
    with pytest.raises(InputError, match="domain 'cost'"):
        cert.override("cost", 1, "x", "ana")


def test_summary_of_findings_rows_and_unpooled_outcome():
    pooled = certainty.assess("CRS any grade", _series([2, 5, 1, 3], [6, 9, 4, 8]), designs=["case series"] * 4)
    few = certainty.assess("ICANS", _series([0, 1], [6, 9]), designs=["case series"] * 2)
    sof = certainty.summary_of_findings([pooled, few])
    assert sof["outcome"].tolist() == ["CRS any grade", "ICANS"]
    assert sof.loc[0, "patients"] == 27 and "95% CI" in sof.loc[0, "estimate"]
    assert sof.loc[1, "estimate"].startswith("Not pooled: only 2 studies")
    assert "too few studies to pool" in sof.loc[1, "finding"]
    assert set(sof["level"]) <= set(certainty.LEVELS)


def test_overrides_are_stored_append_only_and_latest_wins(tmp_path):
    from reviewlib.store import ReviewStore
    with ReviewStore(tmp_path / "r.sqlite") as store:
        certainty.record_override(store, "ICANS", "imprecision", 2, "only 20 patients", "ana")
        certainty.record_override(store, "ICANS", "imprecision", 1, "on reflection", "ana")
        certainty.record_override(store, "ICANS", "indirectness", 1, "adults only", "ben")
        certainty.record_override(store, "ICANS", "indirectness", None, "", "ben")      # withdrawn
        stored = certainty.stored_overrides(store)
        assert stored == {"ICANS": [{"domain": "imprecision", "downgrade": 1, "reason": "on reflection",
                                     "reviewer": "ana"}]}
        assert len(store.grade_overrides()) == 4
        with pytest.raises(InputError, match="needs a reason"):
            certainty.record_override(store, "ICANS", "imprecision", 1, " ", "ana")
        with pytest.raises(InputError, match="domain 'cost'"):
            certainty.record_override(store, "ICANS", "cost", 1, "x", "ana")
        assert len(store.grade_overrides()) == 4
    cert = certainty.assess("ICANS", _series([0, 1, 2], [6, 9, 5]), designs=["case series"] * 3,
                            overrides=stored["ICANS"])
    assert cert.domains["imprecision"].override == 1 and cert.domains["imprecision"].reviewer == "ana"
