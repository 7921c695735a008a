"""The hypergeometric stopping rule (Callaghan & Müller-Hansen 2020) against hand computation and scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import hypergeom

from reviewlib.errors import InputError
from reviewlib.screening.stopping import (consecutive_irrelevant, estimate, hypergeometric_p,
                                          min_total_for_low_recall, random_sampling_stop, sampling_level,
                                          urn_includes_interval)


def test_k_tar_is_the_fewest_includes_that_make_recall_fall_below_target():
    # 19 found: 19/20 = 0.95 is not below 0.95, 19/21 = 0.905 is
    assert min_total_for_low_recall(19, 0.95) == 21
    # 36 found: 36/37 = 0.973, 36/38 = 0.947 < 0.95
    assert min_total_for_low_recall(36, 0.95) == 38
    assert min_total_for_low_recall(9, 0.9) == 11        # 9/10 = 0.9 exactly is not below
    for found in range(0, 200):
        k = min_total_for_low_recall(found, 0.95)
        assert found / k < 0.95 and (k - 1 == 0 or found / (k - 1) >= 0.95)


def test_p_value_by_hand_two_includes_left_none_drawn():
    # urn 100, 19 found before sampling, 50 drawn with 0 includes: H0 needs >= 2 includes in the urn;
    # P(no include in 50 of 100 | 2 in the urn) = C(98,50)/C(100,50) = (50*49)/(100*99)
    p = hypergeometric_p(urn=100, found_before=19, sample_size=50, sample_found=0, target=0.95)
    assert p == pytest.approx(50 * 49 / (100 * 99))
    assert p == pytest.approx(hypergeom.cdf(0, 100, 2, 50))


def test_p_value_by_hand_with_an_include_in_the_sample():
    # 30 found before, sample of 40 from an urn of 200 holds 1: r_seen 31, K_tar = floor(31/0.95)+1 = 33,
    # so H0 puts >= 3 includes in the urn; p = P(X <= 1), X ~ hypergeom(200, 3, 40)
    p = hypergeometric_p(urn=200, found_before=30, sample_size=40, sample_found=1, target=0.95)
    by_hand = (math.comb(197, 40) + 3 * math.comb(197, 39)) / math.comb(200, 40)
    assert p == pytest.approx(by_hand)
    assert p == pytest.approx(hypergeom.cdf(1, 200, 3, 40))


def test_p_value_edges():
    assert hypergeometric_p(100, 5, 0, 0) == 1.0                     # nothing sampled: nothing shown
    # the whole urn drawn without an include: H0 (2 includes left) is impossible
    assert hypergeometric_p(urn=10, found_before=19, sample_size=10, sample_found=0) == 0.0
    with pytest.raises(InputError, match="cannot come from an urn"):
        hypergeometric_p(urn=10, found_before=0, sample_size=11, sample_found=0)
    with pytest.raises(InputError, match="whole number"):
        hypergeometric_p(urn=10, found_before=-1, sample_size=1, sample_found=0)


def test_p_falls_as_more_irrelevant_records_are_drawn():
    ps = [hypergeometric_p(500, 40, n, 0) for n in range(0, 501, 50)]
    assert all(a >= b for a, b in zip(ps, ps[1:])) and ps[0] == 1.0 and ps[-1] == 0.0


def test_urn_interval_matches_scipy_inversion():
    lo, hi = urn_includes_interval(urn=300, sample_size=60, sample_found=3, confidence=0.95)
    assert hypergeom.sf(2, 300, lo, 60) >= 0.025 > hypergeom.sf(2, 300, lo - 1, 60)
    assert hypergeom.cdf(3, 300, hi, 60) >= 0.025 > hypergeom.cdf(3, 300, hi + 1, 60)
    assert lo <= 3 * 300 / 60 <= hi


def test_estimate_without_random_sample_is_no_guarantee():
    est = estimate(1000, [1] * 30 + [0] * 170)
    assert est.guaranteed is False and est.p_value is None and est.stop is False
    assert math.isnan(est.recall_estimate)
    assert "not a guarantee" in est.line() and "you may stop" not in est.line()


def test_estimate_after_a_random_sample():
    ranked = [1] * 40 + [0] * 160           # 200 screened in the model's order, 40 included
    sample = [0] * 600                      # then 600 of the 800 left drawn at random: none included
    est = estimate(1000, ranked, sample)
    assert est.guaranteed and est.screened == 800 and est.found == 40 and est.sample_size == 600
    # H0: >= floor(40/0.95)+1 - 40 = 3 includes left in the urn of 800
    assert est.p_value == pytest.approx(hypergeom.cdf(0, 800, 3, 600))
    assert est.stop == (est.p_value < 0.05 * 6 / math.pi ** 2)
    assert est.recall_estimate == 1.0 and est.recall_low < 1.0 and est.recall_high == 1.0
    assert "interval" in est.line()


def test_random_sampling_stop_stops_at_first_rejection():
    rng = np.random.default_rng(0)
    ranked = [1] * 19 + [0] * 81
    rest = [0] * 100                         # nothing left to find: stops when 2 hidden includes are unlikely
    out = random_sampling_stop(ranked, rest, rng)
    n = out["sampled"]
    assert out["stopped"] and out["found"] == 19
    level = 0.05 * 6 / math.pi ** 2                 # the split level with no include in the sample
    assert hypergeom.cdf(0, 100, 2, n) < level <= hypergeom.cdf(0, 100, 2, n - 1)
    assert out["screened"] == 100 + n


def test_random_sampling_stop_agrees_with_the_scalar_test_draw_by_draw():
    ranked = [1] * 30 + [0] * 70
    rest = [1] * 3 + [0] * 397
    out = random_sampling_stop(ranked, rest, np.random.default_rng(1))
    draws = np.asarray(rest)[np.random.default_rng(1).permutation(len(rest))]
    ps = [hypergeometric_p(400, 30, n, int(draws[:n].sum())) for n in range(1, 401)]
    first = next(n for n, p in enumerate(ps, start=1) if p < sampling_level(int(draws[:n].sum())))
    assert out["sampled"] == first and out["p_value"] == pytest.approx(ps[first - 1])
    assert out["found"] == 30 + int(draws[:first].sum()) and out["screened"] == 100 + first


def _share_below_target(correction, runs=400):
    # recall at the switch is 90 % (45 of 50 found, 5 hidden among 500 unscreened)
    rng = np.random.default_rng(2020)
    ranked = [1] * 45 + [0] * 55
    rest = [1] * 5 + [0] * 495
    low = sum(random_sampling_stop(ranked, rest, rng, correction=correction)["found"] / 50 < 0.95
              for _ in range(runs))
    return low / runs


def test_published_rule_tested_after_every_draw_exceeds_alpha_near_the_target():
    # the reason for the split level: at level 0.05 after every draw, 23 of these 400 runs stop below 95 %
    assert _share_below_target(None) > 0.05


def test_split_level_holds_the_promised_confidence():
    assert _share_below_target("split") <= 0.05


def test_level_split_sums_to_alpha():
    assert sum(sampling_level(k, 0.95) for k in range(100_000)) == pytest.approx(0.05, rel=1e-4)
    assert sampling_level(0, 0.9, correction=None) == pytest.approx(0.1)
    with pytest.raises(InputError, match="unknown correction"):
        sampling_level(0, 0.95, correction="bonferroni")


def test_consecutive_irrelevant_heuristic():
    assert consecutive_irrelevant([1, 0, 0, 1, 0, 0, 0, 1], patience=3) == 7
    assert consecutive_irrelevant([1, 0, 1, 0], patience=3) == 4
