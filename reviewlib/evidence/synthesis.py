"""Pooling outcomes across studies: single-arm proportions and two-arm ratios.

Two entry points, both returning a :class:`PoolResult`:

* :func:`pool_proportions` for events among patients treated in single-arm studies
  (the usual case series of a new therapy), on the logit, Freeman-Tukey double-arcsine or raw scale;
* :func:`pool_ratios` for the rare controlled studies: risk ratio (RR), odds ratio (OR) or
  risk difference (RD) by inverse variance, or by Mantel-Haenszel (``method="MH"``).

The numbers follow R's metafor, and the tests pin them to metafor's published results:

* Study outcomes as ``escalc``: log RR / log OR / RD / logit / ``PFT`` (the Freeman-Tukey
  transform ``(asin(sqrt(x/(n+1))) + asin(sqrt((x+1)/(n+1))))/2`` with variance ``1/(4n+2)``),
  0.5 added to every cell of a study with a zero cell (``add=1/2, to="only0"``).  The
  Freeman-Tukey transform is defined at 0 and n, so no correction is added for it by default.
* Between-study variance (tau^2): ``"DL"`` (DerSimonian-Laird, truncated at 0), ``"REML"``
  (Fisher scoring, as ``rma``'s default), ``"PM"`` (Paule-Mandel), or ``"FE"`` (fixed effect,
  tau^2 = 0).  I^2 is metafor's: ``tau2 / (tau2 + s2)`` with the typical within-study
  variance ``s2``; for a fixed-effect model ``(Q - df) / Q``.
* Hartung-Knapp(-Sidik-Jonkman) as an option (``hartung_knapp=True``): the standard error
  scaled by the weighted residual variance and t quantiles with k - 1 df (metafor
  ``test="knha"``).
* Prediction interval as metafor's ``predict``: ``mu +- crit * sqrt(tau2 + se^2)``, crit from
  the normal (or t with k - 1 df under Hartung-Knapp); ``prediction_df="k-2"`` gives Higgins,
  Thompson & Spiegelhalter's t with k - 2 df instead (the Cochrane Handbook's advice).
* Back-transforms: inverse logit; for Freeman-Tukey Miller's (1978) inverse, each study with
  its own n and the pooled values with the harmonic mean of the n (metafor ``transf.ipft`` and
  ``transf.ipft.hm``).

statsmodels' :func:`statsmodels.stats.meta_analysis.combine_effects` gives the fixed-effect
estimate, Cochran's Q and the DL and PM estimates of tau^2, and
:func:`~statsmodels.stats.meta_analysis.effectsize_2proportions` the study log RR / log OR /
RD with the 0.5 correction.  What it lacks is written here: REML (not offered), the truncation
of a negative DL tau^2 at 0 (statsmodels keeps it negative, so its random-effects weights can
go wrong), metafor's I^2, prediction intervals, Mantel-Haenszel pooling of RR and RD,
back-transforms, subgroups, leave-one-out and Egger's test.

With fewer than three studies a result is still computed, but ``poolable`` is False and
``reason`` says why; a report shows the studies then, not a pooled number.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["PoolResult", "EggerResult", "pool_proportions", "pool_ratios", "freeman_tukey",
           "inverse_freeman_tukey", "MIN_STUDIES_TO_POOL", "MIN_STUDIES_SMALL_STUDY_TESTS",
           "TRANSFORMS", "METHODS", "MEASURES"]

#: Below this many studies a pooled number is not shown (the studies are).
MIN_STUDIES_TO_POOL = 3
#: Funnel plots and Egger's test need at least this many studies (Cochrane Handbook 10.4.3.1).
MIN_STUDIES_SMALL_STUDY_TESTS = 10
TRANSFORMS = ("logit", "freeman-tukey", "raw")
METHODS = ("REML", "DL", "PM", "FE")
MEASURES = ("RR", "OR", "RD")
_TRANSFORM_ALIASES = {"logit": "logit", "plo": "logit", "freeman-tukey": "freeman-tukey", "ft": "freeman-tukey",
                      "pft": "freeman-tukey", "double-arcsine": "freeman-tukey", "raw": "raw", "pr": "raw",
                      "identity": "raw"}
_METHOD_ALIASES = {"reml": "REML", "dl": "DL", "pm": "PM", "paule-mandel": "PM", "fe": "FE", "ee": "FE",
                   "fixed": "FE", "mh": "MH", "mantel-haenszel": "MH"}


# -- input checks ------------------------------------------------------------------------------
def _labels(labels: Sequence[Any] | None, k: int) -> list[str]:
    if labels is None:
        return [f"Study {i + 1}" for i in range(k)]
    labels = [str(x) for x in labels]
    if len(labels) != k:
        raise InputError(f"labels has {len(labels)} entries but there are {k} studies: give one label per study")
    return labels


def _counts(values: Sequence[Any], name: str, labels: list[str]) -> np.ndarray:
    out = []
    for label, value in zip(labels, values):
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            raise InputError(f"study {label!r}: {name} is missing: give a count or leave the study out")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"study {label!r}: {name} is {value!r}, not a number: give a whole count") from None
        if math.isnan(number):
            raise InputError(f"study {label!r}: {name} is missing: give a count or leave the study out")
        if number < 0:
            raise InputError(f"study {label!r}: {name} is negative ({value!r}): counts are 0 or more")
        if number != int(number):
            raise InputError(f"study {label!r}: {name} is {value!r}, not a whole number: give a count")
        out.append(number)
    return np.asarray(out, dtype=float)


def _check_arm(events: Sequence[Any], totals: Sequence[Any], labels: list[str], ev_name: str,
               n_name: str) -> tuple[np.ndarray, np.ndarray]:
    if len(events) != len(totals):
        raise InputError(f"{ev_name} has {len(events)} entries and {n_name} {len(totals)}: give one of each per study")
    x = _counts(events, ev_name, labels)
    n = _counts(totals, n_name, labels)
    for label, xi, ni in zip(labels, x, n):
        if ni == 0:
            raise InputError(f"study {label!r}: {n_name} is 0: a study needs at least one patient")
        if xi > ni:
            raise InputError(f"study {label!r}: {ev_name} ({int(xi)}) is more than {n_name} ({int(ni)}): "
                             "check the extracted counts")
    return x, n


def _method(method: str, allow_mh: bool = False) -> str:
    key = _METHOD_ALIASES.get(str(method).lower())
    allowed = METHODS + (("MH",) if allow_mh else ())
    if key not in allowed:
        raise InputError(f"method {method!r} is not one of {', '.join(allowed)}: pick one")
    return key


# -- transforms ---------------------------------------------------------------------------------
def freeman_tukey(events: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Freeman-Tukey double arcsine of ``events/n`` as metafor's ``PFT``: value and variance."""
    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    y = 0.5 * (np.arcsin(np.sqrt(events / (n + 1))) + np.arcsin(np.sqrt((events + 1) / (n + 1))))
    return y, 1.0 / (4 * n + 2)


def inverse_freeman_tukey(t: Any, n: Any) -> np.ndarray:
    """Miller's (1978) inverse of the Freeman-Tukey transform (metafor ``transf.ipft``).

    Parameters
    ----------
    t : float or array
        Values on the transformed scale (metafor's ``PFT`` scale, half the classic sum).
    n : float or array
        The sample size; for a pooled value, the harmonic mean of the studies' n
        (``transf.ipft.hm``).
    """
    t = np.asarray(t, dtype=float)
    n = np.broadcast_to(np.asarray(n, dtype=float), t.shape)
    s = np.sin(2 * t)
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = 1 - (s + (s - 1 / s) / n) ** 2
        p = 0.5 * (1 - np.sign(np.cos(2 * t)) * np.sqrt(inner))
    low, _ = freeman_tukey(np.zeros_like(n), n)
    high, _ = freeman_tukey(n, n)
    p = np.where(t < low, 0.0, np.where(t > high, 1.0, p))
    return np.clip(p, 0.0, 1.0)


def _clopper_pearson(x: np.ndarray, n: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) CI of each study's own proportion, for display: it contains the
    observed proportion even at 0 or n events (R meta's ``metaprop`` default, ``method.ci="CP"``)."""
    alpha = 1 - level
    with np.errstate(invalid="ignore"):
        lo = np.where(x > 0, stats.beta.ppf(alpha / 2, x, n - x + 1), 0.0)
        hi = np.where(x < n, stats.beta.ppf(1 - alpha / 2, x + 1, n - x), 1.0)
    return lo, hi


def _expit(x: Any) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


# -- the estimators --------------------------------------------------------------------------------
def _tau2_reml(y: np.ndarray, v: np.ndarray, start: float, tol: float = 1e-10, maxiter: int = 200) -> float:
    """REML tau^2 by Fisher scoring (metafor's algorithm for ``rma(method="REML")``), truncated at 0."""
    tau2 = max(0.0, start)
    for _ in range(maxiter):
        w = 1.0 / (v + tau2)
        P = np.diag(w) - np.outer(w, w) / w.sum()
        Py = P @ y
        score = Py @ Py - np.trace(P)
        info = np.sum(P * P.T)
        new = max(0.0, tau2 + score / info)
        if abs(new - tau2) < tol:
            return new
        tau2 = new
    logger.warning("REML did not converge in %d iterations (tau2 = %.6g)", maxiter, tau2)
    return tau2


def _combine(y: np.ndarray, v: np.ndarray, method: str):
    from statsmodels.stats.meta_analysis import combine_effects

    k = len(y)
    if k < 2:
        return None, 0.0
    sm_method = "pm" if method == "PM" else "dl"
    kwds = {"atol": 1e-10, "maxiter": 500} if method == "PM" else {}
    with np.errstate(all="ignore"):   # a negative DL tau2 can give NaN or inf terms there; truncated below
        res = combine_effects(y, v, method_re=sm_method, **kwds)
    tau2 = max(0.0, float(res.tau2))
    if method == "REML":
        tau2 = _tau2_reml(y, v, start=tau2)
    elif method == "FE":
        tau2 = 0.0
    return res, tau2


def _i2(v: np.ndarray, tau2: float, q: float, k: int, fixed: bool) -> float:
    if k < 2:
        return float("nan")
    if fixed:
        return max(0.0, 100.0 * (q - (k - 1)) / q) if q > 0 else 0.0
    w = 1.0 / v
    s2 = (k - 1) * w.sum() / (w.sum() ** 2 - (w ** 2).sum())
    return 100.0 * tau2 / (tau2 + s2)


@dataclass
class EggerResult:
    """Egger's regression test for funnel-plot asymmetry (Egger et al. 1997).

    The standardised effect ``y/se`` is regressed on the precision ``1/se`` by ordinary least
    squares; a non-zero intercept suggests small-study effects.  t test with k - 2 df.
    """

    intercept: float
    se: float
    t: float
    p: float
    df: int
    k: int

    def sentence(self) -> str:
        """One line: the intercept, its p value and what it suggests."""
        verdict = "suggests small-study effects" if self.p < 0.10 else "gives no clear sign of small-study effects"
        return (f"Egger's test (k = {self.k}): intercept {self.intercept:.2f} (SE {self.se:.2f}), "
                f"p = {self.p:.3f}; {verdict}")


@dataclass
class PoolResult:
    """A pooled estimate with everything that must be shown with it.

    Attributes
    ----------
    estimate, ci_low, ci_high, pi_low, pi_high : float
        The pooled value, its confidence interval and the prediction interval, on the
        natural scale (a proportion, or a ratio; RD as a difference).
    tau2, i2, q, q_df, q_p : float
        Between-study variance (transformed scale), I^2 in percent, Cochran's Q, its df and p.
    k, patients, events : int
        Studies pooled, patients in them (both arms for ratios) and events.
    studies : pandas.DataFrame
        One row per study: label, events, n (and events_ctrl, n_ctrl for ratios), value,
        ci_low, ci_high (natural scale; for a proportion its exact Clopper-Pearson interval, so
        0/5 reads 0% [0%, 52%]), weight (percent), yi, vi (transformed scale), corrected
        (whether 0.5 was added).
    poolable : bool
        False with fewer than :data:`MIN_STUDIES_TO_POOL` studies; ``reason`` then says why.
    subgroups : pandas.DataFrame or None
        One row per subgroup with its own pooled values, when ``subgroups=`` was given;
        ``q_between``, ``q_between_df``, ``q_between_p`` test the difference.
    """

    kind: str                       # 'proportion' or 'RR'/'OR'/'RD'
    scale: str                      # 'logit', 'freeman-tukey', 'raw', 'log', 'identity'
    method: str                     # 'REML', 'DL', 'PM', 'FE', 'MH'
    hartung_knapp: bool
    k: int
    patients: int
    events: int
    estimate: float
    ci_low: float
    ci_high: float
    pi_low: float
    pi_high: float
    tau2: float
    i2: float
    q: float
    q_df: int
    q_p: float
    estimate_t: float
    se_t: float
    studies: pd.DataFrame
    poolable: bool
    reason: str | None
    level: float = 0.95
    subgroups: pd.DataFrame | None = None
    q_between: float | None = None
    q_between_df: int | None = None
    q_between_p: float | None = None
    _refit: Any = field(default=None, repr=False)

    @property
    def is_ratio(self) -> bool:
        return self.kind in MEASURES

    def leave_one_out(self) -> pd.DataFrame:
        """The pooled values with each study left out in turn (label = the study left out)."""
        rows = []
        for i, label in enumerate(self.studies["label"]):
            keep = [j for j in range(self.k) if j != i]
            res = self._refit(keep)
            rows.append({"left_out": label, "k": res.k, "estimate": res.estimate, "ci_low": res.ci_low,
                         "ci_high": res.ci_high, "tau2": res.tau2, "i2": res.i2, "q": res.q})
        return pd.DataFrame(rows)

    def funnel_data(self) -> pd.DataFrame | None:
        """Study values and standard errors (transformed scale) with the pooled line and the
        pseudo 95% limits ``estimate_t +- 1.96 se``; None below 10 studies (too few to read)."""
        if self.k < MIN_STUDIES_SMALL_STUDY_TESTS:
            return None
        se = np.sqrt(self.studies["vi"].to_numpy())
        z = stats.norm.isf((1 - self.level) / 2)
        return pd.DataFrame({"label": self.studies["label"], "yi": self.studies["yi"], "se": se,
                             "centre": self.estimate_t, "lower": self.estimate_t - z * se,
                             "upper": self.estimate_t + z * se})

    def egger(self) -> EggerResult | None:
        """Egger's regression test; None below 10 studies (``small_study_reason`` says why)."""
        if self.k < MIN_STUDIES_SMALL_STUDY_TESTS:
            return None
        from statsmodels.regression.linear_model import OLS   # statsmodels.api would add a second of imports

        y = self.studies["yi"].to_numpy()
        se = np.sqrt(self.studies["vi"].to_numpy())
        X = np.column_stack([np.ones_like(se), 1.0 / se])
        fit = OLS(y / se, X).fit()
        return EggerResult(intercept=float(fit.params[0]), se=float(fit.bse[0]), t=float(fit.tvalues[0]),
                           p=float(fit.pvalues[0]), df=int(fit.df_resid), k=self.k)

    @property
    def small_study_reason(self) -> str | None:
        """Why no funnel plot or Egger's test is given, or None when they are."""
        if self.k >= MIN_STUDIES_SMALL_STUDY_TESTS:
            return None
        return (f"only {self.k} {'study' if self.k == 1 else 'studies'}: funnel plots and Egger's test need at "
                f"least {MIN_STUDIES_SMALL_STUDY_TESTS}")

    def _fmt(self, x: float) -> str:
        if self.kind == "proportion":
            return f"{100 * x:.0f}%"
        if self.kind == "RD":
            return f"{100 * x:+.1f} points"
        return f"{x:.2f}"

    def _range(self, lo: float, hi: float) -> str:
        if self.kind == "proportion":
            return f"{100 * lo:.0f}-{100 * hi:.0f}%"
        if self.kind == "RD":
            return f"{100 * lo:+.1f} to {100 * hi:+.1f} points"
        return f"{lo:.2f}-{hi:.2f}"

    def summary(self) -> str:
        """One plain line: the estimate with CI, PI, studies, patients and I^2 (or why it is not pooled)."""
        studies = f"{self.k} {'study' if self.k == 1 else 'studies'}, {self.patients:,} patients"
        if not self.poolable:
            return f"Not pooled: {self.reason} ({studies}, {self.events} {'event' if self.events == 1 else 'events'})"
        pct = round(self.level * 100)
        text = f"{self._fmt(self.estimate)} ({pct}% CI {self._range(self.ci_low, self.ci_high)}"
        if self.method != "FE" and not math.isnan(self.pi_low):
            text += f"; prediction interval {self._range(self.pi_low, self.pi_high)}"
        text += f"), {studies}"
        if not math.isnan(self.i2):
            text += f", I\u00b2 {self.i2:.0f}%"
        return text

    def as_row(self) -> dict[str, Any]:
        """The result as one flat row (for tables and CSV)."""
        row = {k: getattr(self, k) for k in ("kind", "scale", "method", "hartung_knapp", "k", "patients", "events",
                                             "estimate", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "i2",
                                             "q", "q_df", "q_p", "poolable", "reason")}
        row["summary"] = self.summary()
        return row


# -- the core pooling, on a transformed scale ---------------------------------------------------
def _pool_core(y: np.ndarray, v: np.ndarray, method: str, hartung_knapp: bool, level: float,
               prediction_df: str) -> dict[str, float]:
    k = len(y)
    res, tau2 = _combine(y, v, method)
    w = 1.0 / (v + tau2)
    mu = float((w * y).sum() / w.sum())
    se = float(math.sqrt(1.0 / w.sum()))
    w_fe = 1.0 / v
    mu_fe = float((w_fe * y).sum() / w_fe.sum())
    q = float((w_fe * (y - mu_fe) ** 2).sum()) if k > 1 else 0.0
    alpha = 1 - level
    if hartung_knapp and k > 1:
        se = float(math.sqrt((w * (y - mu) ** 2).sum() / ((k - 1) * w.sum())))
        crit = stats.t.isf(alpha / 2, k - 1)
    else:
        crit = stats.norm.isf(alpha / 2)
    if prediction_df == "k-2" and k > 2:
        pcrit = stats.t.isf(alpha / 2, k - 2)
    elif hartung_knapp and k > 1:
        pcrit = stats.t.isf(alpha / 2, k - 1)
    else:
        pcrit = stats.norm.isf(alpha / 2)
    if method == "FE" or k < 2:
        pi = (float("nan"), float("nan"))
    else:
        half = pcrit * math.sqrt(tau2 + se ** 2)
        pi = (mu - half, mu + half)
    return {"mu": mu, "se": se, "ci": (mu - crit * se, mu + crit * se), "pi": pi, "tau2": tau2 if k > 1 else float("nan"),
            "q": q, "q_df": k - 1, "q_p": float(stats.chi2.sf(q, k - 1)) if k > 1 else float("nan"),
            "i2": _i2(v, tau2, q, k, method == "FE"), "weights": w / w.sum() * 100, "crit": crit}


def _reason(k: int) -> str | None:
    if k >= MIN_STUDIES_TO_POOL:
        return None
    return (f"only {k} {'study' if k == 1 else 'studies'}: at least {MIN_STUDIES_TO_POOL} are needed before a "
            "pooled estimate means anything; the studies are shown instead")


def _q_between(groups: pd.DataFrame) -> tuple[float, int, float]:
    g = groups.dropna(subset=["estimate_t", "se_t"])
    g = g[g["se_t"] > 0]
    if len(g) < 2:
        return float("nan"), 0, float("nan")
    w = 1.0 / g["se_t"].to_numpy() ** 2
    m = g["estimate_t"].to_numpy()
    mean = (w * m).sum() / w.sum()
    q = float((w * (m - mean) ** 2).sum())
    df = len(g) - 1
    return q, df, float(stats.chi2.sf(q, df))


def _attach_subgroups(result: PoolResult, subgroups: Sequence[Any] | None, fit_subset) -> PoolResult:
    if subgroups is None:
        return result
    subgroups = ["not reported" if (s is None or (isinstance(s, float) and math.isnan(s))) else str(s)
                 for s in subgroups]
    if len(subgroups) != result.k:
        raise InputError(f"subgroups has {len(subgroups)} entries but there are {result.k} studies: "
                         "give one subgroup per study")
    result.studies["subgroup"] = subgroups
    rows = []
    for name in dict.fromkeys(subgroups):
        idx = [i for i, s in enumerate(subgroups) if s == name]
        sub = fit_subset(idx)
        row = sub.as_row()
        row.update({"subgroup": name, "estimate_t": sub.estimate_t, "se_t": sub.se_t})
        rows.append(row)
    table = pd.DataFrame(rows)
    cols = ["subgroup"] + [c for c in table.columns if c != "subgroup"]
    result.subgroups = table[cols]
    result.q_between, result.q_between_df, result.q_between_p = _q_between(table)
    return result


# -- proportions -----------------------------------------------------------------------------------
def pool_proportions(events: Sequence[Any], totals: Sequence[Any], *, method: str = "REML",
                     transform: str = "logit", labels: Sequence[Any] | None = None,
                     hartung_knapp: bool = False, continuity: float | None = None, level: float = 0.95,
                     prediction_df: str = "normal", subgroups: Sequence[Any] | None = None) -> PoolResult:
    """Pool single-arm proportions (events among patients treated).

    Parameters
    ----------
    events, totals : sequences of int
        Per study: patients with the event and patients treated.
    method : {'REML', 'DL', 'PM', 'FE'}
        The between-study variance estimator, or a fixed-effect model.
    transform : {'logit', 'freeman-tukey', 'raw'}
        The scale pooled on.  Results are back-transformed to proportions.
    labels : sequence of str, optional
        Study labels (default "Study 1", ...).
    hartung_knapp : bool
        Hartung-Knapp-Sidik-Jonkman confidence interval (t with k - 1 df).
    continuity : float, optional
        Added to events and non-events of a study with 0 or n events.  Default 0.5 for the
        logit and raw scales (metafor ``escalc``'s default) and 0 for Freeman-Tukey, which is
        defined there.
    level : float
        Confidence level (0.95).
    prediction_df : {'normal', 'k-2'}
        Quantile of the prediction interval: metafor's default, or t with k - 2 df.
    subgroups : sequence, optional
        A subgroup per study (target, disease...): each subgroup is pooled with its own tau^2
        (R meta's default) and the test for subgroup differences is added: Q between the
        subgroup estimates weighted by 1/se^2, df = groups - 1 (every subgroup counts, a
        single-study one with its own variance; those below 3 studies are flagged not poolable).

    Returns
    -------
    PoolResult

    Raises
    ------
    InputError
        A missing, negative or fractional count, events above the total, a total of 0, or an
        unknown method or transform: one line naming the study and the field.
    """
    scale = _TRANSFORM_ALIASES.get(str(transform).lower())
    if scale is None:
        raise InputError(f"transform {transform!r} is not one of {', '.join(TRANSFORMS)}: pick one")
    method = _method(method)
    if prediction_df not in ("normal", "k-2"):
        raise InputError(f"prediction_df {prediction_df!r} is not 'normal' or 'k-2'")
    if len(events) == 0:
        raise InputError("no studies given: pass at least one study's events and total")
    labs = _labels(labels, len(events))
    x, n = _check_arm(events, totals, labs, "events", "n")
    add = (0.0 if scale == "freeman-tukey" else 0.5) if continuity is None else float(continuity)
    zero = (x == 0) | (x == n)
    corrected = zero & (add > 0)
    xc = x + add * corrected
    nc = n + 2 * add * corrected
    if scale == "logit":
        p = xc / nc
        y = np.log(p / (1 - p))
        v = 1.0 / xc + 1.0 / (nc - xc)
    elif scale == "raw":
        p = xc / nc
        y = p
        v = p * (1 - p) / nc
    else:
        y, v = freeman_tukey(xc, nc)
    if np.any(~np.isfinite(y)) or np.any(~np.isfinite(v)) or np.any(v <= 0):
        bad = labs[int(np.flatnonzero(~np.isfinite(v) | (v <= 0) | ~np.isfinite(y))[0])]
        raise InputError(f"study {bad!r}: 0 or all events on the {scale} scale needs a continuity correction: "
                         "give continuity=0.5 or use transform='freeman-tukey'")

    def back(t, n_for):
        if scale == "logit":
            return _expit(t)
        if scale == "raw":
            return np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
        return inverse_freeman_tukey(t, n_for)

    def fit(idx: list[int]) -> PoolResult:
        yi, vi = y[idx], v[idx]
        core = _pool_core(yi, vi, method, hartung_knapp, level, prediction_df)
        hm = len(idx) / np.sum(1.0 / n[idx])      # metafor transf.ipft.hm(targs=list(ni=dat$ni))
        cp_low, cp_high = _clopper_pearson(x[idx], n[idx], level)
        table = pd.DataFrame({
            "label": [labs[i] for i in idx], "events": x[idx].astype(int), "n": n[idx].astype(int),
            "value": x[idx] / n[idx],
            "ci_low": cp_low, "ci_high": cp_high,
            "weight": core["weights"], "yi": yi, "vi": vi, "corrected": corrected[idx]})
        k = len(idx)
        return PoolResult(
            kind="proportion", scale=scale, method=method, hartung_knapp=hartung_knapp, k=k,
            patients=int(n[idx].sum()), events=int(x[idx].sum()),
            estimate=float(back(core["mu"], hm)), ci_low=float(back(core["ci"][0], hm)),
            ci_high=float(back(core["ci"][1], hm)),
            pi_low=float(back(core["pi"][0], hm)) if not math.isnan(core["pi"][0]) else float("nan"),
            pi_high=float(back(core["pi"][1], hm)) if not math.isnan(core["pi"][1]) else float("nan"),
            tau2=core["tau2"], i2=core["i2"], q=core["q"], q_df=core["q_df"], q_p=core["q_p"],
            estimate_t=core["mu"], se_t=core["se"], studies=table, poolable=k >= MIN_STUDIES_TO_POOL,
            reason=_reason(k), level=level, _refit=None)

    def fit_with_refit(idx: list[int]) -> PoolResult:
        res = fit(idx)
        res._refit = lambda keep: fit([idx[j] for j in keep])
        return res

    result = fit_with_refit(list(range(len(x))))
    if not result.poolable:
        logger.info("pool_proportions: %s", result.reason)
    return _attach_subgroups(result, subgroups, fit_with_refit)


# -- two-arm ratios -------------------------------------------------------------------------------
_SM_STATISTIC = {"RR": "risk-ratio", "OR": "odds-ratio", "RD": "diff"}


def _mantel_haenszel(measure: str, a, n1, c, n2) -> tuple[float, float]:
    """Mantel-Haenszel pooled log RR / log OR / RD and its standard error (metafor ``rma.mh``).

    OR: Robins, Breslow & Greenland (1986) variance; RR: Greenland & Robins (1985); RD: Sato,
    Greenland & Robins (1989).  No continuity correction (metafor's default for the pooled value).
    """
    b, d = n1 - a, n2 - c
    N = n1 + n2
    if measure == "OR":
        R = a * d / N
        S = b * c / N
        P = (a + d) / N
        Q = (b + c) / N
        est = math.log(R.sum() / S.sum())
        var = ((P * R).sum() / (2 * R.sum() ** 2) + (P * S + Q * R).sum() / (2 * R.sum() * S.sum())
               + (Q * S).sum() / (2 * S.sum() ** 2))
        return est, math.sqrt(var)
    if measure == "RR":
        R = a * n2 / N
        S = c * n1 / N
        est = math.log(R.sum() / S.sum())
        var = ((n1 * n2 * (a + c) - a * c * N) / N ** 2).sum() / (R.sum() * S.sum())
        return est, math.sqrt(var)
    W = n1 * n2 / N
    est = float(((a * n2 - c * n1) / N).sum() / W.sum())
    P = (n1 ** 2 * c - n2 ** 2 * a + n1 * n2 * (n2 - n1) / 2) / N ** 2
    Q = (a * (n2 - c) + c * (n1 - a)) / (2 * N)
    var = (est * P.sum() + Q.sum()) / W.sum() ** 2
    return est, math.sqrt(var)


def pool_ratios(events_treat: Sequence[Any], n_treat: Sequence[Any], events_ctrl: Sequence[Any],
                n_ctrl: Sequence[Any], *, measure: str = "RR", method: str = "DL",
                labels: Sequence[Any] | None = None, hartung_knapp: bool = False, continuity: float = 0.5,
                level: float = 0.95, prediction_df: str = "normal",
                subgroups: Sequence[Any] | None = None) -> PoolResult:
    """Pool two-arm studies as a risk ratio, odds ratio or risk difference.

    Parameters
    ----------
    events_treat, n_treat, events_ctrl, n_ctrl : sequences of int
        Per study: events and patients in the treated and the control arm.
    measure : {'RR', 'OR', 'RD'}
    method : {'DL', 'REML', 'PM', 'FE', 'MH'}
        Inverse-variance random effects (DL, REML, PM), fixed effect (FE), or the
        Mantel-Haenszel fixed-effect estimator (MH; Q and I^2 then from the inverse-variance
        study values around the MH estimate, as metafor).
    continuity : float
        Added to every cell of a study with a zero cell, for the study values (0.5).
    Other parameters as :func:`pool_proportions`.

    Returns
    -------
    PoolResult
        ``estimate`` and the intervals on the ratio scale (RD as a difference of proportions).
    """
    from statsmodels.stats.meta_analysis import effectsize_2proportions

    measure = str(measure).upper()
    if measure not in MEASURES:
        raise InputError(f"measure {measure!r} is not one of {', '.join(MEASURES)}: pick one")
    method = _method(method, allow_mh=True)
    if len(events_treat) == 0:
        raise InputError("no studies given: pass at least one study's counts")
    labs = _labels(labels, len(events_treat))
    for name, seq in (("n_treat", n_treat), ("events_ctrl", events_ctrl), ("n_ctrl", n_ctrl)):
        if len(seq) != len(events_treat):
            raise InputError(f"{name} has {len(seq)} entries and events_treat {len(events_treat)}: "
                             "give one of each per study")
    a, n1 = _check_arm(events_treat, n_treat, labs, "events_treat", "n_treat")
    c, n2 = _check_arm(events_ctrl, n_ctrl, labs, "events_ctrl", "n_ctrl")
    zero = (a == 0) | (a == n1) | (c == 0) | (c == n2)
    # the 0.5 is added here, to studies with a zero cell only: effectsize_2proportions'
    # float zero_correction adds it to the events of every study but to the totals of the
    # zero-cell studies only (statsmodels 0.14-0.15), which shifts every study's value
    add = float(continuity or 0.0) * zero
    y, v = effectsize_2proportions(a + add, n1 + 2 * add, c + add, n2 + 2 * add,
                                   statistic=_SM_STATISTIC[measure], zero_correction=None)
    y, v = np.asarray(y, dtype=float), np.asarray(v, dtype=float)
    if np.any(~np.isfinite(y)) or np.any(~np.isfinite(v)) or np.any(v <= 0):
        bad = labs[int(np.flatnonzero(~np.isfinite(y) | ~np.isfinite(v) | (v <= 0))[0])]
        raise InputError(f"study {bad!r}: its {measure} is not finite (no events or all events in both arms): "
                         "leave it out or use measure='RD'")
    back = (lambda t: np.asarray(t, dtype=float)) if measure == "RD" else (lambda t: np.exp(np.asarray(t, dtype=float)))
    zs = stats.norm.isf((1 - level) / 2)

    def fit(idx: list[int]) -> PoolResult:
        yi, vi = y[idx], v[idx]
        k = len(idx)
        if method == "MH":
            mu, se = _mantel_haenszel(measure, a[idx], n1[idx], c[idx], n2[idx])
            q = float(((yi - mu) ** 2 / vi).sum()) if k > 1 else 0.0
            core = {"mu": mu, "se": se, "ci": (mu - zs * se, mu + zs * se), "pi": (float("nan"), float("nan")),
                    "tau2": 0.0, "q": q, "q_df": k - 1,
                    "q_p": float(stats.chi2.sf(q, k - 1)) if k > 1 else float("nan"),
                    "i2": max(0.0, 100 * (q - (k - 1)) / q) if q > 0 else 0.0}
            if measure == "OR":
                wmh = (n1[idx] - a[idx]) * c[idx] / (n1[idx] + n2[idx])
            elif measure == "RR":
                wmh = c[idx] * n1[idx] / (n1[idx] + n2[idx])
            else:
                wmh = n1[idx] * n2[idx] / (n1[idx] + n2[idx])
            core["weights"] = wmh / wmh.sum() * 100
        else:
            core = _pool_core(yi, vi, method, hartung_knapp, level, prediction_df)
        table = pd.DataFrame({
            "label": [labs[i] for i in idx], "events": a[idx].astype(int), "n": n1[idx].astype(int),
            "events_ctrl": c[idx].astype(int), "n_ctrl": n2[idx].astype(int), "value": back(yi),
            "ci_low": back(yi - zs * np.sqrt(vi)), "ci_high": back(yi + zs * np.sqrt(vi)),
            "weight": core["weights"], "yi": yi, "vi": vi, "corrected": zero[idx] & bool(continuity)})
        pi = core["pi"]
        return PoolResult(
            kind=measure, scale="identity" if measure == "RD" else "log", method=method,
            hartung_knapp=hartung_knapp and method != "MH", k=k,
            patients=int(n1[idx].sum() + n2[idx].sum()), events=int(a[idx].sum() + c[idx].sum()),
            estimate=float(back(core["mu"])), ci_low=float(back(core["ci"][0])), ci_high=float(back(core["ci"][1])),
            pi_low=float(back(pi[0])), pi_high=float(back(pi[1])), tau2=core["tau2"], i2=core["i2"], q=core["q"],
            q_df=core["q_df"], q_p=core["q_p"], estimate_t=core["mu"], se_t=core["se"], studies=table,
            poolable=k >= MIN_STUDIES_TO_POOL, reason=_reason(k), level=level)

    def fit_with_refit(idx: list[int]) -> PoolResult:
        res = fit(idx)
        res._refit = lambda keep: fit([idx[j] for j in keep])
        return res

    result = fit_with_refit(list(range(len(a))))
    return _attach_subgroups(result, subgroups, fit_with_refit)
