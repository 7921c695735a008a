"""Pooling pinned to metafor's published numbers.

Sources of the expected values (each test says which it uses):

[T-metan]  metafor tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r (rma() vs Stata metan on
           dat.bcg: FE and DL for RR, OR, RD).
[T-mh]     metafor tests/testthat/test_misc_metan_vs_rma.mh_with_dat.bcg.r (rma.mh() RR, OR, RD).
[T-infl]   metafor tests/testthat/test_misc_influence.r (rma(yi, vi) REML on dat.bcg: tau2 0.313243325980895,
           QE 152.233008082373, weight of trial 1 5.05948307931551 %, leave1out() without trial 1).
[T-cumul]  metafor tests/testthat/test_misc_cumul.r (the last cumulative REML estimate, all 13 trials, -0.714532).
[T-uni]    metafor tests/testthat/test_misc_rma_uni.r (method="DLIT" tau2 0.3181: iterated DL converges to the
           Paule-Mandel solution, DerSimonian & Kacker 2007).
[T-miller] metafor tests/testthat/test_analysis_example_miller1978.r (PFT escalc values, Miller's 1978 weighted
           estimate 0.3595, and the 0/10 ... 20/20 example: back-transforms 0, .4, .6, .8, 1 and EE 0.6886
           [0.5734, 0.7943] with transf.ipft.hm).
[T-stijnen] metafor tests/testthat/test_analysis_example_stijnen2010.r (rma(measure="PLO") REML on
           dat.nielweise2007 with escalc's default add=1/2 to="only0": control arm -3.30, se 0.24, tau2 0.663,
           0.036 [0.023, 0.055]; treated arm, 6 trials with 0 events: -4.26, se 0.26, tau2 0.393, 0.014
           [0.008, 0.023]; OR without the double-zero trial: -0.980, se 0.243, tau 0.19, 0.38 [0.23, 0.60];
           the published values of Stijnen et al. 2010, Stat Med 29:3046, Tables II and III).
[perf]     easystats/performance tests (model_performance on metafor's rma REML fit of dat.bcg: I2 0.9222139).
[ext]      The REML se 0.1798 and the Hartung-Knapp CI [-1.108444, -0.320621] were not found in metafor's own
           files; they are the values the task brief states from metafor's documentation, and the same values
           appear in public third-party code that checks itself against metafor (se 0.179782).
Zero cells: [T-stijnen] pins proportions with zero cells to published numbers; the closed-form
tests below check the same correction study by study, with expected values computed here by hand.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reviewlib.errors import InputError
from reviewlib.evidence import synthesis
from reviewlib.evidence.synthesis import pool_proportions, pool_ratios

DATA = Path(__file__).parent / "data" / "synthesis"


@pytest.fixture(scope="module")
def bcg() -> pd.DataFrame:
    return pd.read_csv(DATA / "dat_bcg.csv")


def _ratios(bcg, **kw):
    return pool_ratios(bcg.tpos, bcg.tpos + bcg.tneg, bcg.cpos, bcg.cpos + bcg.cneg, labels=bcg.author, **kw)


def _log(x):
    return math.log(x)


# -- dat.bcg, risk ratio ----------------------------------------------------------------------------
def test_bcg_reml_matches_metafor(bcg):
    res = _ratios(bcg, measure="RR", method="REML")
    assert res.k == 13 and res.poolable and res.reason is None
    assert res.estimate_t == pytest.approx(-0.714532, abs=5e-6)       # [T-cumul]
    assert res.se_t == pytest.approx(0.1798, abs=5e-5)                 # [ext]
    assert res.tau2 == pytest.approx(0.313243325980895, abs=1e-6)      # [T-infl]
    assert res.q == pytest.approx(152.233008082373, abs=1e-6)          # [T-infl]
    assert res.i2 == pytest.approx(92.22139, abs=1e-3)                 # [perf]
    assert res.studies["weight"].iloc[0] == pytest.approx(5.05948307931551, abs=1e-4)   # [T-infl]
    assert res.estimate == pytest.approx(math.exp(-0.714532), abs=1e-5)
    # prediction interval: metafor's predict(), mu +- z sqrt(tau2 + se^2), on the log scale
    half = 1.959964 * math.sqrt(res.tau2 + res.se_t ** 2)
    assert _log(res.pi_low) == pytest.approx(res.estimate_t - half, abs=1e-5)
    assert _log(res.pi_high) == pytest.approx(res.estimate_t + half, abs=1e-5)


def test_bcg_dl_matches_metafor(bcg):
    res = _ratios(bcg, measure="RR", method="DL")                       # [T-metan]
    assert res.estimate_t == pytest.approx(-0.7141, abs=5e-5)
    assert _log(res.ci_low) == pytest.approx(-1.0644, abs=5e-5)
    assert _log(res.ci_high) == pytest.approx(-0.3638, abs=5e-5)
    assert res.estimate_t / res.se_t == pytest.approx(-3.9952, abs=5e-5)
    assert res.tau2 == pytest.approx(0.3088, abs=5e-5)
    assert res.i2 == pytest.approx(92.1173, abs=5e-5)
    assert res.estimate == pytest.approx(0.4896, abs=5e-5)
    assert res.ci_low == pytest.approx(0.3449, abs=5e-5)
    assert res.ci_high == pytest.approx(0.6950, abs=5e-5)


def test_bcg_fixed_effect_matches_metafor(bcg):
    res = _ratios(bcg, measure="RR", method="FE")                       # [T-metan]
    assert res.tau2 == 0
    assert res.estimate_t == pytest.approx(-0.4303, abs=5e-5)
    assert _log(res.ci_low) == pytest.approx(-0.5097, abs=5e-5)
    assert _log(res.ci_high) == pytest.approx(-0.3509, abs=5e-5)
    assert res.estimate_t / res.se_t == pytest.approx(-10.6247, abs=5e-4)
    assert res.q == pytest.approx(152.2330, abs=5e-4)
    assert (res.estimate, res.ci_low, res.ci_high) == pytest.approx((0.6503, 0.6007, 0.7040), abs=5e-5)
    assert math.isnan(res.pi_low)


def test_bcg_paule_mandel_is_the_iterated_dl_solution(bcg):
    res = _ratios(bcg, measure="RR", method="PM")
    assert res.tau2 == pytest.approx(0.3181, abs=5e-5)                  # [T-uni]
    # and it solves the generalised Q equation sum w (y - mu)^2 = k - 1
    y, v = res.studies["yi"].to_numpy(), res.studies["vi"].to_numpy()
    w = 1 / (v + res.tau2)
    mu = (w * y).sum() / w.sum()
    assert (w * (y - mu) ** 2).sum() == pytest.approx(12, abs=1e-6)


def test_bcg_hartung_knapp(bcg):
    res = _ratios(bcg, measure="RR", method="REML", hartung_knapp=True)
    assert _log(res.ci_low) == pytest.approx(-1.108444, abs=5e-6)       # [ext]
    assert _log(res.ci_high) == pytest.approx(-0.320621, abs=5e-6)
    plain = _ratios(bcg, measure="RR", method="REML")
    assert res.estimate == pytest.approx(plain.estimate)


@pytest.mark.parametrize("measure, est, lo, hi, z, q", [
    ("OR", -0.4361, -0.5190, -0.3533, -10.3190, 163.1649),
    ("RD", -0.0009, -0.0014, -0.0005, -4.0448, 276.4737),
])
def test_bcg_fixed_effect_or_rd(bcg, measure, est, lo, hi, z, q):
    res = _ratios(bcg, measure=measure, method="FE")                    # [T-metan]
    to_t = _log if measure == "OR" else (lambda x: x)
    assert res.estimate_t == pytest.approx(est, abs=5e-5)
    assert to_t(res.ci_low) == pytest.approx(lo, abs=5e-5)
    assert to_t(res.ci_high) == pytest.approx(hi, abs=5e-5)
    assert res.estimate_t / res.se_t == pytest.approx(z, abs=5e-4)
    assert res.q == pytest.approx(q, abs=5e-4)


@pytest.mark.parametrize("measure, est, tau2, i2, z", [
    ("OR", -0.7474, 0.3663, 92.6455, -3.8873),
    ("RD", -0.0071, 0.0000, 95.6596, -4.5128),
])
def test_bcg_dl_or_rd(bcg, measure, est, tau2, i2, z):
    res = _ratios(bcg, measure=measure, method="DL")                    # [T-metan]
    assert res.estimate_t == pytest.approx(est, abs=5e-5)
    assert res.tau2 == pytest.approx(tau2, abs=5e-5)
    assert res.i2 == pytest.approx(i2, abs=5e-5)
    assert res.estimate_t / res.se_t == pytest.approx(z, abs=5e-4)


@pytest.mark.parametrize("measure, est, lo, hi, z, q", [
    ("RR", -0.4537, -0.5308, -0.3766, -11.5338, 152.5676),
    ("OR", -0.4734, -0.5538, -0.3930, -11.5444, 163.9426),
    ("RD", -0.0033, -0.0039, -0.0027, -11.4708, 386.7759),
])
def test_bcg_mantel_haenszel(bcg, measure, est, lo, hi, z, q):
    res = _ratios(bcg, measure=measure, method="MH")                    # [T-mh]
    to_t = (lambda x: x) if measure == "RD" else _log
    assert res.estimate_t == pytest.approx(est, abs=5e-5)
    assert to_t(res.ci_low) == pytest.approx(lo, abs=5e-5)
    assert to_t(res.ci_high) == pytest.approx(hi, abs=5e-5)
    assert res.estimate_t / res.se_t == pytest.approx(z, abs=5e-4)
    assert res.q == pytest.approx(q, abs=5e-4)
    assert res.studies["weight"].sum() == pytest.approx(100)


def test_bcg_leave_one_out(bcg):
    loo = _ratios(bcg, measure="RR", method="REML").leave_one_out()     # [T-infl]
    assert len(loo) == 13 and (loo["k"] == 12).all()
    first = loo.iloc[0]
    assert first["left_out"] == "Aronson"
    assert _log(first["estimate"]) == pytest.approx(-0.707083788031436, abs=1e-5)
    assert _log(first["ci_low"]) == pytest.approx(-1.07940055491509, abs=1e-5)
    assert _log(first["ci_high"]) == pytest.approx(-0.334767021147788, abs=1e-5)
    assert first["tau2"] == pytest.approx(0.336156745300306, abs=1e-6)
    assert first["q"] == pytest.approx(151.582572747109, abs=1e-6)
    assert first["i2"] == pytest.approx(93.2259349111223, abs=1e-4)


def test_bcg_mh_leave_one_out(bcg):
    first = _ratios(bcg, measure="RR", method="MH").leave_one_out().iloc[0]   # [T-infl]
    assert _log(first["estimate"]) == pytest.approx(-0.451379469928476, abs=1e-6)
    assert first["q"] == pytest.approx(151.915260738878, abs=1e-5)
    assert first["i2"] == pytest.approx(92.7591211399706, abs=1e-4)


def test_bcg_egger_and_funnel(bcg):
    res = _ratios(bcg, measure="RR", method="REML")
    egger = res.egger()
    # Egger 1997 computed independently: OLS of y/se on 1/se, intercept and its t test
    y, se = res.studies["yi"].to_numpy(), np.sqrt(res.studies["vi"].to_numpy())
    X = np.column_stack([np.ones(13), 1 / se])
    beta, *_ = np.linalg.lstsq(X, y / se, rcond=None)
    resid = y / se - X @ beta
    cov = (resid @ resid / 11) * np.linalg.inv(X.T @ X)
    assert egger.intercept == pytest.approx(beta[0], rel=1e-9)
    assert egger.t == pytest.approx(beta[0] / math.sqrt(cov[0, 0]), rel=1e-9)
    assert egger.df == 11 and 0 < egger.p < 1
    assert "Egger" in egger.sentence()
    funnel = res.funnel_data()
    assert len(funnel) == 13 and (funnel["upper"] > funnel["lower"]).all()
    assert res.small_study_reason is None


def test_bcg_subgroups_q_between(bcg):
    res = _ratios(bcg, measure="RR", method="REML", subgroups=bcg.alloc)
    groups = res.subgroups.set_index("subgroup")
    assert groups.loc["random", "k"] == 7 and groups.loc["systematic", "k"] == 4
    assert not groups.loc["alternate", "poolable"]                      # 2 trials: not pooled
    # Q between computed from the subgroup estimates and their standard errors
    sub = [_ratios(bcg[bcg.alloc == g].reset_index(), measure="RR", method="REML") for g in groups.index]
    w = np.array([1 / s.se_t ** 2 for s in sub])
    m = np.array([s.estimate_t for s in sub])
    q = (w * (m - (w * m).sum() / w.sum()) ** 2).sum()
    assert res.q_between == pytest.approx(q, rel=1e-9)
    assert res.q_between_df == 2 and 0 < res.q_between_p < 1


def test_few_studies_are_flagged_not_pooled(bcg):
    res = _ratios(bcg.iloc[:2], measure="RR", method="DL")
    assert not res.poolable and "only 2 studies" in res.reason
    assert res.summary().startswith("Not pooled: only 2 studies")
    assert res.egger() is None and res.funnel_data() is None
    assert "need at least 10" in res.small_study_reason


# -- proportions: Freeman-Tukey (Miller 1978) -----------------------------------------------------
def test_freeman_tukey_matches_metafor_miller1978():
    res = pool_proportions([3, 6, 10, 1], [11, 17, 21, 6], method="FE", transform="freeman-tukey")   # [T-miller]
    assert (2 * res.studies["yi"]).tolist() == pytest.approx([1.1391, 1.2888, 1.5253, 0.9515], abs=5e-5)
    assert (4 * res.studies["vi"]).tolist() == pytest.approx([0.0870, 0.0571, 0.0465, 0.1538], abs=5e-5)
    assert 2 * res.estimate_t == pytest.approx(1.3093, abs=5e-5)
    assert res.estimate == pytest.approx(0.3595, abs=5e-5)


def test_freeman_tukey_zero_and_all_events_back_transform():
    res = pool_proportions([0, 4, 9, 16, 20], [10, 10, 15, 20, 20], method="FE", transform="ft")   # [T-miller]
    assert not res.studies["corrected"].any()          # FT needs no continuity correction
    back = synthesis.inverse_freeman_tukey(res.studies["yi"], res.studies["n"])
    assert back.tolist() == pytest.approx([0.0, 0.4, 0.6, 0.8, 1.0], abs=1e-12)
    assert res.estimate == pytest.approx(0.6886, abs=5e-5)
    assert res.ci_low == pytest.approx(0.5734, abs=5e-5)
    assert res.ci_high == pytest.approx(0.7943, abs=5e-5)


# -- proportions with zero cells: metafor's published dat.nielweise2007 ------------------------------
@pytest.fixture(scope="module")
def nielweise() -> pd.DataFrame:
    return pd.read_csv(DATA / "dat_nielweise2007.csv")


@pytest.mark.parametrize("events, n, est, se, tau2, p, lo, hi, zeros", [
    ("ci", "n2i", -3.30, 0.24, 0.663, 0.036, 0.023, 0.055, 1),
    ("ai", "n1i", -4.26, 0.26, 0.393, 0.014, 0.008, 0.023, 6),
])
def test_logit_proportions_with_zero_cells_match_metafor(nielweise, events, n, est, se, tau2, p, lo, hi, zeros):
    res = pool_proportions(nielweise[events], nielweise[n], method="REML", transform="logit")   # [T-stijnen]
    assert int(res.studies["corrected"].sum()) == zeros
    assert round(res.estimate_t, 2) == est
    assert round(res.se_t, 2) == se
    assert round(res.tau2, 3) == tau2
    assert (round(res.estimate, 3), round(res.ci_low, 3), round(res.ci_high, 3)) == (p, lo, hi)


def test_odds_ratio_with_zero_cells_matches_metafor(nielweise):
    d = nielweise[nielweise.author != "Yucel"]            # drop00=TRUE: the trial with no events in either arm
    res = pool_ratios(d.ai, d.n1i, d.ci, d.n2i, measure="OR", method="REML")                   # [T-stijnen]
    assert round(res.estimate_t, 3) == -0.980
    assert round(res.se_t, 3) == 0.243
    assert round(math.sqrt(res.tau2), 2) == 0.19
    assert (round(res.estimate, 2), round(res.ci_low, 2), round(res.ci_high, 2)) == (0.38, 0.23, 0.60)


# -- proportions with zero cells: logit, closed form --------------------------------------------------
ZERO_EVENTS = [0, 3, 5, 10]
ZERO_N = [10, 12, 20, 10]


def _dl_by_hand(y, v):
    w = [1 / x for x in v]
    mu_fe = sum(wi * yi for wi, yi in zip(w, y)) / sum(w)
    q = sum(wi * (yi - mu_fe) ** 2 for wi, yi in zip(w, y))
    c = sum(w) - sum(wi ** 2 for wi in w) / sum(w)
    tau2 = max(0.0, (q - (len(y) - 1)) / c)
    ws = [1 / (x + tau2) for x in v]
    mu = sum(wi * yi for wi, yi in zip(ws, y)) / sum(ws)
    return mu, math.sqrt(1 / sum(ws)), tau2, q


def test_logit_zero_cells_get_half_added_like_escalc():
    res = pool_proportions(ZERO_EVENTS, ZERO_N, method="DL", transform="logit")
    # escalc(measure="PLO", add=1/2, to="only0"): 0/10 -> 0.5/11, 10/10 -> 10.5/11; the others untouched
    y = [math.log(0.5 / 10.5), math.log(3 / 9), math.log(5 / 15), math.log(10.5 / 0.5)]
    v = [1 / 0.5 + 1 / 10.5, 1 / 3 + 1 / 9, 1 / 5 + 1 / 15, 1 / 10.5 + 1 / 0.5]
    assert res.studies["corrected"].tolist() == [True, False, False, True]
    assert res.studies["yi"].tolist() == pytest.approx(y, rel=1e-12)
    assert res.studies["vi"].tolist() == pytest.approx(v, rel=1e-12)
    mu, se, tau2, q = _dl_by_hand(y, v)
    assert res.tau2 == pytest.approx(tau2, rel=1e-9)
    assert res.q == pytest.approx(q, rel=1e-9)
    expit = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    assert res.estimate == pytest.approx(expit(mu), rel=1e-9)
    assert res.ci_low == pytest.approx(expit(mu - 1.959963984540054 * se), rel=1e-9)
    assert res.ci_high == pytest.approx(expit(mu + 1.959963984540054 * se), rel=1e-9)
    # the study table keeps the raw counts and the observed proportion
    assert res.studies["events"].tolist() == ZERO_EVENTS
    assert res.studies["value"].tolist() == pytest.approx([0.0, 0.25, 0.25, 1.0])
    assert res.patients == 52 and res.events == 18


def test_ratio_zero_cell_gets_half_added_to_that_study_only():
    res = pool_ratios([0, 5], [20, 20], [4, 10], [20, 20], measure="RR", method="FE")
    rr1 = math.log((0.5 / 21) / (4.5 / 21))
    rr2 = math.log((5 / 20) / (10 / 20))
    assert res.studies["yi"].tolist() == pytest.approx([rr1, rr2], rel=1e-12)
    assert res.studies["vi"].tolist() == pytest.approx([1 / 0.5 - 1 / 21 + 1 / 4.5 - 1 / 21,
                                                         1 / 5 - 1 / 20 + 1 / 10 - 1 / 20], rel=1e-12)
    assert res.studies["corrected"].tolist() == [True, False]


def test_reml_proportions_and_prediction_interval_t():
    res = pool_proportions([2, 8, 5, 12, 3], [10, 12, 9, 20, 15], method="REML", transform="logit",
                           prediction_df="k-2")
    # the REML tau2 solves its score equation y'PPy = tr(P)
    y, v = res.studies["yi"].to_numpy(), res.studies["vi"].to_numpy()
    w = 1 / (v + res.tau2)
    P = np.diag(w) - np.outer(w, w) / w.sum()
    assert (y @ P @ P @ y) == pytest.approx(np.trace(P), rel=1e-6)
    from scipy import stats
    half = stats.t.isf(0.025, 3) * math.sqrt(res.tau2 + res.se_t ** 2)
    assert res.pi_low == pytest.approx(1 / (1 + math.exp(-(res.estimate_t - half))), rel=1e-9)
    assert res.ci_low < res.estimate < res.ci_high
    assert "prediction interval" in res.summary() and "5 studies, 66 patients" in res.summary()


def test_raw_scale_clips_to_unit_interval():
    res = pool_proportions([0, 1, 0], [5, 6, 4], method="DL", transform="raw")
    assert 0.0 <= res.ci_low <= res.estimate <= res.ci_high <= 1.0


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("events, totals, message", [
    ([3, 16, 2], [10, 15, 8], "study 'Study 2': events (16) is more than n (15)"),
    ([3, -1, 2], [10, 15, 8], "study 'Study 2': events is negative"),
    ([3, None, 2], [10, 15, 8], "study 'Study 2': events is missing"),
    ([3, 1, 2], [10, float("nan"), 8], "study 'Study 2': n is missing"),
    ([3, 1.5, 2], [10, 15, 8], "not a whole number"),
    ([3, 1, 2], [10, 0, 8], "n is 0"),
])
def test_bad_counts_are_one_clear_line(events, totals, message):
    with pytest.raises(InputError) as err:
        pool_proportions(events, totals)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_ratio_counts_name_the_study_and_arm():
    with pytest.raises(InputError, match="study 'Liu 2023b': events_ctrl \\(9\\) is more than n_ctrl \\(8\\)"):
        pool_ratios([1, 2], [10, 10], [3, 9], [10, 8], labels=["Liu 2023a", "Liu 2023b"])


def test_unknown_options():
    with pytest.raises(InputError, match="transform 'probit'"):
        pool_proportions([1, 2, 3], [5, 5, 5], transform="probit")
    with pytest.raises(InputError, match="method 'HS'"):
        pool_proportions([1, 2, 3], [5, 5, 5], method="HS")
    with pytest.raises(InputError, match="measure 'HR'"):
        pool_ratios([1], [5], [1], [5], measure="HR")
