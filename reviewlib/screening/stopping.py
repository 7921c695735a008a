"""When to stop screening: a stopping rule with a stated guarantee (Callaghan & Müller-Hansen 2020).

Prioritised screening finds most included records early, but no number of consecutive irrelevant
records proves that few are left.  Callaghan and Müller-Hansen (2020, "Statistical stopping criteria
for automated screening in systematic reviews", Systematic Reviews 9:273) give a rule a reviewer can
state:

1. Screen in the model's order as long as it is useful (``screened_before`` records, ``found_before``
   of them included).
2. Then screen records drawn **uniformly at random** from the ``urn`` of records not yet screened
   (``urn = n_total - screened_before``); after ``n`` draws ``k`` of them were included.
3. After every draw, test H0: "recall is below the target" (``target``, 95 % by default).  With
   ``r_seen = found_before + k`` included records found, recall < target needs at least
   ``K_tar = floor(r_seen / target) + 1`` included records in all, i.e. at least
   ``K_tar - found_before`` in the urn.  Under H0 the number of includes among the ``n`` random draws
   is then (at least as large as) hypergeometric, and
   ``p = hypergeom.cdf(k, urn, K_tar - found_before, n)``
   (``scipy.stats.hypergeom(M=urn, n=K_tar - found_before, N=n)``).  More includes in the urn
   only make small ``k`` less likely, so this ``p`` is the largest under H0.
4. Stop when ``p`` is below the level of the test.

Testing after every draw and stopping at the first rejection is a sequential test: at level ``alpha``
each time, the chance of stopping below the target exceeds ``alpha`` when recall sits near the target
(``tests/test_stopping.py`` pins a case: 5.75 % of 400 runs at alpha 0.05).  reviewlib therefore
splits ``alpha`` over the number ``k`` of includes found in the sample: the test with ``k`` found is
made at level ``alpha_k = alpha * 6 / (pi**2 * (k + 1)**2)`` (0.61 alpha while none is found, 0.15 alpha
after one, ...; the levels sum to alpha).  While ``k`` stays fixed, ``p`` only falls as draws are
added, so "rejected at some draw with ``k`` found" is the single event "the sample had at most ``k``
includes when ``p`` first fell below ``alpha_k``", whose probability under H0 is below ``alpha_k``;
summed over ``k`` the chance of ever stopping while recall is below the target is below ``alpha``,
however many draws are tested.  ``correction=None`` gives the rule as published (level ``alpha`` at
every draw).

The guarantee: when screening stops this way, recall is at least ``target`` with probability at least
``confidence``, whatever the recall when sampling began and whenever the reviewer chose to begin it.
It holds only when its assumptions hold: the records after ``screened_before`` are drawn uniformly
at random from all records unscreened then, and every decision is final (a reviewer who would have
included a record includes it).  Before a random-sampling phase has begun there is no guarantee, and
:func:`estimate` says so (``guaranteed=False``).

Two other rules are computed for comparison:

``consecutive_irrelevant`` (reviewlib's old heuristic)
    Stop after ``patience`` irrelevant records in a row; no guarantee (issue 14 measured it stopping
    at 12 % recall).
``ranked`` (the windowed "biased urn" form of buscar, :func:`ranked_p`)
    No random phase.  As in ``calculate_h0`` of Callaghan's buscar packages (buscarpy,
    ``buscarpy/__init__.py``; buscarR, vignette "stopping-criteria"; the hypergeometric test of
    Callaghan & Müller-Hansen 2020), the last ``n`` records screened in the model's order are
    treated as if they had been drawn at random from themselves plus every unscreened record,
    for every window ``n = 1 .. screened``: with ``k_n`` includes among them and ``r_seen`` found
    in all, H0 "recall < target" puts at least ``K_tar - (r_seen - k_n)`` includes in that
    population of ``n + unscreened`` records, and
    ``p_n = hypergeom.cdf(k_n, n + unscreened, K_tar - (r_seen - k_n), n)``.
    The rule's p is the smallest ``p_n``; stop when it is below ``1 - confidence``.
    **Assumption**: the prioritised order is at least as good as random, i.e. a record the model
    ranked earlier is at least as likely to be included as one still unscreened, so the window
    holds at least as many includes as a random sample would (then ``p_n`` only overstates the
    chance of so few).  Nothing checks that assumption: a model blind to a cluster of includes
    unlike the ones it learned from ranks that cluster worse than random, and breaks it.  The minimum
    over windows and the test after every record are not corrected for either: with a tail that is
    exactly random it stops below the target in 9-11 % of runs (``tests/test_stopping_ranked.py``),
    and on the eight development sets it stopped below 95 % recall in 15 of 120 runs, every one on
    Cohen's triptans (207 of 218 found), after screening 86 % of the records on average
    (``benchmarks/results/screening_stopping_seeds0-14.txt``).  So this is an estimate, **not a
    guarantee**.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy.special import gammaln
from scipy.stats import hypergeom

from ..errors import InputError

#: Recall target of the stopping rule.
DEFAULT_TARGET = 0.95
#: Confidence of the stopping rule (alpha = 1 - confidence).
DEFAULT_CONFIDENCE = 0.95


def _check(target: float, confidence: float) -> None:
    if not 0 < target < 1:
        raise InputError(f"recall target {target!r} is not between 0 and 1: give e.g. 0.95")
    if not 0 < confidence < 1:
        raise InputError(f"confidence {confidence!r} is not between 0 and 1: give e.g. 0.95")


def sampling_level(sample_found: int | np.ndarray, confidence: float = DEFAULT_CONFIDENCE,
               correction: str | None = "split"):
    """Level of the test made with ``sample_found`` includes in the sample (see the module docstring).

    Examples
    --------
    >>> round(sampling_level(0, 0.95), 4), round(sampling_level(1, 0.95), 4), round(sampling_level(3, 0.95, correction=None), 4)
    (0.0304, 0.0076, 0.05)
    """
    alpha = 1 - confidence
    if correction is None:
        return alpha if np.ndim(sample_found) == 0 else np.full(np.shape(sample_found), alpha)
    if correction != "split":
        raise InputError(f"unknown correction {correction!r}: use 'split' or None")
    return alpha * 6 / (math.pi ** 2 * (np.asarray(sample_found, dtype=float) + 1) ** 2) \
        if np.ndim(sample_found) else alpha * 6 / (math.pi ** 2 * (int(sample_found) + 1) ** 2)


def min_total_for_low_recall(found: int, target: float = DEFAULT_TARGET) -> int:
    """K_tar: the fewest included records in all for which ``found`` of them is a recall below ``target``.

    Examples
    --------
    >>> min_total_for_low_recall(19, 0.95)   # 19/20 = 0.95 is not below 0.95; 19/21 is
    21
    >>> min_total_for_low_recall(36, 0.95)   # 36/0.95 = 37.9: 36/38 < 0.95
    38
    """
    return int(math.floor(found / target + 1e-12)) + 1


def hypergeometric_p(urn: int, found_before: int, sample_size: int, sample_found: int,
                     target: float = DEFAULT_TARGET) -> float:
    """p-value of H0 "recall < target" after a random sample (Callaghan & Müller-Hansen 2020, eq. 2-3).

    Parameters
    ----------
    urn : int
        Records not yet screened when random sampling began.
    found_before : int
        Included records found before random sampling began.
    sample_size : int
        Records drawn at random from the urn so far (n).
    sample_found : int
        Included records among them (k).
    target : float
        The recall target.

    Returns
    -------
    float
        ``hypergeom.cdf(k, urn, K_tar - found_before, n)`` with ``K_tar`` from
        :func:`min_total_for_low_recall`; 0.0 when H0 is impossible (the urn cannot hold that many
        includes besides the ``n - k`` irrelevant records drawn); 1.0 for an empty sample.

    Examples
    --------
    >>> round(hypergeometric_p(urn=100, found_before=19, sample_size=50, sample_found=0), 4)
    0.2475
    """
    for name, value in (("urn", urn), ("found_before", found_before), ("sample_size", sample_size),
                        ("sample_found", sample_found)):
        if int(value) != value or value < 0:
            raise InputError(f"{name} must be a whole number >= 0, got {value!r}")
    if sample_found > sample_size or sample_size > urn:
        raise InputError(f"a sample of {sample_size} records with {sample_found} included cannot come from an "
                         f"urn of {urn}: check the counts")
    if sample_size == 0:
        return 1.0
    k_tar = min_total_for_low_recall(found_before + sample_found, target)
    in_urn = k_tar - found_before
    if in_urn > urn - (sample_size - sample_found):
        return 0.0
    return float(hypergeom.cdf(sample_found, urn, in_urn, sample_size))


def urn_includes_interval(urn: int, sample_size: int, sample_found: int,
                          confidence: float = DEFAULT_CONFIDENCE) -> tuple[int, int]:
    """Two-sided ``confidence`` interval for the number of included records the urn held (exact, hypergeometric).

    The smallest K with ``P(X >= k) >= (1 - confidence) / 2`` and the largest with
    ``P(X <= k) >= (1 - confidence) / 2``, X ~ hypergeom(urn, K, n).
    """
    half = (1 - confidence) / 2
    lo_k, hi_k = sample_found, urn - (sample_size - sample_found)
    ks = np.arange(lo_k, hi_k + 1)
    if sample_size == 0:
        return int(lo_k), int(hi_k)
    upper_ok = hypergeom.cdf(sample_found, urn, ks, sample_size) >= half
    lower_ok = hypergeom.sf(sample_found - 1, urn, ks, sample_size) >= half
    return int(ks[lower_ok].min()), int(ks[upper_ok].max())


@dataclass(frozen=True)
class StoppingEstimate:
    """Where screening stands against the stopping rule.

    Attributes
    ----------
    screened : int
        Records screened (both phases).
    found : int
        Included records found.
    n_total : int
        Records in the review.
    sample_size, sample_found : int
        Records screened in the random-sampling phase, and included records among them.
    target, confidence : float
    guaranteed : bool
        True only when a random-sampling phase has begun: otherwise the numbers below are not a
        guarantee (no p-value, recall interval unknown).
    p_value : float or None
        p of H0 "recall < target" (None without a random sample).
    recall_estimate, recall_low, recall_high : float
        Point estimate and two-sided ``confidence`` interval of recall (NaN without a random sample).
    stop : bool
        The rule says stop (``p_value`` below :func:`sampling_level` for the includes in the sample).
    """

    screened: int
    found: int
    n_total: int
    sample_size: int
    sample_found: int
    target: float
    confidence: float
    guaranteed: bool
    p_value: float | None
    recall_estimate: float
    recall_low: float
    recall_high: float
    stop: bool

    def line(self) -> str:
        """One line for the screener's progress display (never says 'guarantee' without a random sample)."""
        head = f"screened {self.screened} of {self.n_total}, {self.found} included found"
        if not self.guaranteed:
            return (f"{head}; stopping rule (recall >= {self.target:.0%} at {self.confidence:.0%} confidence): "
                    "no estimate yet, it needs a random-sampling phase (not a guarantee until then)")
        verdict = (f"recall >= {self.target:.0%} with {self.confidence:.0%} confidence: you may stop" if self.stop
                   else f"keep sampling: recall >= {self.target:.0%} not yet shown (p = {self.p_value:.3f})")
        return (f"{head}; random sample {self.sample_size} records ({self.sample_found} included); "
                f"estimated recall {self.recall_estimate:.0%} "
                f"({self.confidence:.0%} interval {self.recall_low:.0%}-{self.recall_high:.0%}); {verdict}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate(n_total: int, ranked_labels: Sequence[int], sample_labels: Sequence[int] = (), *,
             target: float = DEFAULT_TARGET, confidence: float = DEFAULT_CONFIDENCE,
             correction: str | None = "split") -> StoppingEstimate:
    """The stopping rule's state after ``ranked_labels`` (prioritised phase) then ``sample_labels`` (random).

    Parameters
    ----------
    n_total : int
        Records in the review.
    ranked_labels : sequence of 0/1
        Decisions of the records screened before the random-sampling phase (any order).
    sample_labels : sequence of 0/1
        Decisions of the records drawn at random from the rest, in draw order (empty: no phase yet).
    target, confidence : float
        Recall target and confidence (alpha = 1 - confidence).
    correction : {'split', None}
        How the level is kept over repeated tests (:func:`sampling_level`).

    Returns
    -------
    StoppingEstimate
    """
    _check(target, confidence)
    ranked = [int(v) for v in ranked_labels]
    sample = [int(v) for v in sample_labels]
    screened = len(ranked) + len(sample)
    if screened > n_total:
        raise InputError(f"{screened} records screened but the review has only {n_total}: check the counts")
    found_before, k, n = sum(ranked), sum(sample), len(sample)
    found = found_before + k
    if n == 0:
        return StoppingEstimate(screened, found, n_total, 0, 0, target, confidence, False, None,
                                math.nan, math.nan, math.nan, False)
    urn = n_total - len(ranked)
    p = hypergeometric_p(urn, found_before, n, k, target)
    lo_k, hi_k = urn_includes_interval(urn, n, k, confidence)
    point_k = k * urn / n

    def recall(in_urn: float) -> float:
        total = found_before + in_urn
        return float(found / total) if total > 0 else 1.0

    return StoppingEstimate(screened, found, n_total, n, k, target, confidence, True, p, recall(point_k),
                            recall(hi_k), recall(lo_k), p < sampling_level(k, confidence, correction))


def random_sampling_stop(ranked_labels: Sequence[int], rest_labels: Sequence[int], rng: np.random.Generator, *,
                         target: float = DEFAULT_TARGET, confidence: float = DEFAULT_CONFIDENCE,
                         correction: str | None = "split") -> dict[str, Any]:
    """Simulate the random-sampling phase: draw ``rest_labels`` in random order until the rule stops.

    Parameters
    ----------
    ranked_labels : sequence of 0/1
        Labels screened before sampling began (prioritised phase, priors included).
    rest_labels : sequence of 0/1
        Labels of every record not screened then (the urn).
    rng : numpy.random.Generator
        Draws the sampling order.
    correction : {'split', None}
        See :func:`sampling_level`.

    Returns
    -------
    dict
        ``screened`` (both phases), ``sampled``, ``found``, ``p_value`` at the stop, ``stopped``
        (False when the urn ran out before H0 was rejected: everything was screened).
    """
    _check(target, confidence)
    ranked = np.asarray(list(ranked_labels), dtype=int)
    rest = np.asarray(list(rest_labels), dtype=int)
    urn, found_before = len(rest), int(ranked.sum())
    draws = rest[rng.permutation(urn)]
    k = np.cumsum(draws)
    n = np.arange(1, urn + 1)
    r_seen = found_before + k
    k_tar = np.floor(r_seen / target + 1e-12).astype(int) + 1
    in_urn = k_tar - found_before
    possible = in_urn <= urn - (n - k)
    p = np.where(possible, hypergeom.cdf(k, urn, np.minimum(in_urn, urn), n), 0.0)
    hits = np.flatnonzero(p < sampling_level(k, confidence, correction))
    if hits.size:
        i = int(hits[0])
        return {"screened": int(len(ranked) + i + 1), "sampled": i + 1, "found": int(found_before + k[i]),
                "p_value": float(p[i]), "stopped": True}
    return {"screened": int(len(ranked) + urn), "sampled": urn, "found": int(found_before + rest.sum()),
            "p_value": float(p[-1]) if urn else 1.0, "stopped": False}


def ranked_p(ranked_labels: Sequence[int], n_total: int, target: float = DEFAULT_TARGET) -> float:
    """p of H0 "recall < target" from the prioritised order alone (buscar's windowed test; module docstring).

    Parameters
    ----------
    ranked_labels : sequence of 0/1
        Decisions in screening order (the model's order, priors first).
    n_total : int
        Records in the review (screened and not).
    target : float
        The recall target.

    Returns
    -------
    float
        The smallest, over windows ``n`` of the last records screened, of
        ``hypergeom.cdf(k_n, n + unscreened, K_tar - (r_seen - k_n), n)``; 0.0 when H0 is impossible
        (fewer records unscreened than the includes it needs there); 1.0 when nothing is screened.

    Examples
    --------
    >>> round(ranked_p([1] * 20 + [0] * 100, n_total=200), 4)   # 20 found, last 100 irrelevant, 80 unscreened
    0.1962
    """
    seq = np.asarray(list(ranked_labels), dtype=int)
    if seq.size and not np.isin(seq, (0, 1)).all():
        raise InputError("ranked labels hold values other than 0 and 1: give 0 (excluded) or 1 (included)")
    if len(seq) > n_total:
        raise InputError(f"{len(seq)} records screened but the review has only {n_total}: check the counts")
    return float(_ranked_p_after(np.flatnonzero(seq), np.array([len(seq)]), n_total, target)[0])


def _ranked_p_after(include_at: np.ndarray, screened: np.ndarray, n_total: int, target: float) -> np.ndarray:
    """:func:`ranked_p` after each count in ``screened``, from the 0-based positions of the includes.

    Only the windows that end just after an include (going back in time) and the whole sequence can
    give the minimum: adding an older irrelevant record to a window, with the same includes and the
    same unscreened records, only lowers ``p_n`` (the ``missing`` includes H0 puts outside the
    screened part are then spread over a larger population).  ``p_n = P(Y >= missing)`` for
    ``Y ~ hypergeom(n + unscreened, k_n + missing, unscreened)`` (the includes left unscreened),
    the same number as ``hypergeom.cdf(k_n, n + unscreened, k_n + missing, n)``, summed from log
    binomials for every count and window at once (scipy's cdf costs ~30 us a value, too slow to
    test after every record).
    """
    t = np.asarray(screened, dtype=float)[:, None]                       # (B, 1)
    r_t = np.searchsorted(include_at, np.asarray(screened), side="left").astype(float)[:, None]
    unscreened = n_total - t
    missing = np.floor(r_t / target + 1e-12) + 1 - r_t                   # includes H0 needs among the unscreened
    i = np.arange(len(include_at), dtype=float)[None, :]
    # windows after the i-th include (k = r_t - 1 - i newer includes), and the whole sequence
    n = np.concatenate([t - 1 - include_at[None, :], t], axis=1)            # (B, R + 1)
    k = np.concatenate([r_t - 1 - i, r_t], axis=1)
    valid = (n >= 1) & (k >= 0)
    population, successes = n + unscreened, k + missing
    j = np.arange(int(missing.max()) if missing.size else 0, dtype=float)[None, None, :]
    in_sum = j < missing[:, :, None]
    with np.errstate(invalid="ignore"):       # invalid windows give -inf - -inf; they are masked out below
        log_pmf = (_log_comb(successes[:, :, None], j) + _log_comb((population - successes)[:, :, None],
                                                                   (unscreened[:, :, None] - j))
                   - _log_comb(population, unscreened)[:, :, None])
        p = 1.0 - np.where(in_sum, np.exp(log_pmf), 0.0).sum(axis=2)
    p = np.where(valid, np.clip(p, 0.0, 1.0), np.inf).min(axis=1)
    p = np.where(missing[:, 0] > unscreened[:, 0], 0.0, p)               # H0 impossible
    return np.where(np.asarray(screened) == 0, 1.0, p)


def _log_comb(a, b):
    """log C(a, b) for arrays (-inf where b < 0 or b > a)."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    out = np.full(a.shape, -np.inf)
    ok = (b >= 0) & (b <= a)
    out[ok] = gammaln(a[ok] + 1) - gammaln(b[ok] + 1) - gammaln(a[ok] - b[ok] + 1)
    return out


def ranked_stop(ranked_labels: Sequence[int], n_total: int, *, target: float = DEFAULT_TARGET,
                confidence: float = DEFAULT_CONFIDENCE, start: int = 1) -> dict[str, Any]:
    """Where the ranked (buscar) rule stops a prioritised screening, testing after every record.

    Parameters
    ----------
    ranked_labels : sequence of 0/1
        Every decision in the model's order (priors first); a complete screening (``n_total``
        long) or a prefix of one.
    n_total : int
        Records in the review.
    start : int
        Test only once this many records are screened (e.g. after the priors).

    Returns
    -------
    dict
        ``screened`` (records screened at the stop; ``len(ranked_labels)`` if it never stopped),
        ``found``, ``p_value`` there and ``stopped``.
    """
    _check(target, confidence)
    seq = np.asarray(list(ranked_labels), dtype=int)
    if seq.size and not np.isin(seq, (0, 1)).all():
        raise InputError("ranked labels hold values other than 0 and 1: give 0 (excluded) or 1 (included)")
    if len(seq) > n_total:
        raise InputError(f"{len(seq)} records screened but the review has only {n_total}: check the counts")
    alpha = 1 - confidence
    include_at = np.flatnonzero(seq)
    p = 1.0
    first = max(1, int(start))
    while first <= len(seq):
        # counts tested together: at most ~2 million (count, window, term) cells at a time
        width = min_total_for_low_recall(len(include_at), target) - len(include_at) + 1   # >= any "missing"
        block = max(1, min(len(seq) - first + 1, 2_000_000 // ((len(include_at) + 1) * max(1, width))))
        counts = np.arange(first, first + block)
        ps = _ranked_p_after(include_at, counts, n_total, target)
        hits = np.flatnonzero(ps < alpha)
        if hits.size:
            t = int(counts[hits[0]])
            return {"screened": t, "found": int(seq[:t].sum()), "p_value": float(ps[hits[0]]), "stopped": True}
        p = float(ps[-1])
        first += block
    return {"screened": int(len(seq)), "found": int(seq.sum()), "p_value": p, "stopped": False}


def ranked_line(ranked_labels: Sequence[int], n_total: int, *, target: float = DEFAULT_TARGET,
                confidence: float = DEFAULT_CONFIDENCE) -> str:
    """One line for the screener: the ranked (buscar) test on the decisions so far, in screening order.

    It always says what it assumes and that it is not a guarantee, even when it says "may stop".

    Examples
    --------
    >>> ranked_line([1] * 20 + [0] * 170, n_total=200)[:60]
    'ranked-order estimate (buscar): recall < 95% rejected, p = 0'
    """
    _check(target, confidence)
    p = ranked_p(ranked_labels, n_total, target)
    verdict = (f"recall < {target:.0%} rejected, p = {p:.3f} < {1 - confidence:.2f}: by this estimate you may stop"
               if p < 1 - confidence
               else f"recall >= {target:.0%} not shown (p = {p:.3f})")
    return (f"ranked-order estimate (buscar): {verdict}. It assumes the model's order is at least as good "
            "as random, which nothing checks: an estimate, not a guarantee (random sampling gives one)")


def consecutive_irrelevant(labels: Sequence[int], patience: int) -> int:
    """Number screened when ``patience`` irrelevant records in a row were seen (len(labels) if never)."""
    run = 0
    for k, label in enumerate(labels, start=1):
        run = 0 if label else run + 1
        if run >= patience:
            return k
    return len(labels)


__all__ = ["sampling_level", "DEFAULT_TARGET", "DEFAULT_CONFIDENCE", "StoppingEstimate", "estimate", "hypergeometric_p",
           "min_total_for_low_recall", "urn_includes_interval", "random_sampling_stop", "consecutive_irrelevant",
           "ranked_p", "ranked_stop", "ranked_line"]
