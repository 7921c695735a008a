"""Certainty of the evidence per outcome (GRADE), with computed defaults a reviewer can override.

:func:`assess` takes an outcome's pooled result (:class:`~reviewlib.evidence.synthesis.PoolResult`),
the studies' designs and their risk-of-bias levels, and returns a :class:`Certainty`:

* **Start level** by design: high when every study is randomised, low otherwise (single-arm
  series and cohorts are observational evidence).
* **Five downgrade domains**, each with a computed default (0, 1 or 2 levels) and the sentence
  that gives its reason:

  - *risk of bias*: the share of the pooled weight from studies at high (or critical) risk,
    and from studies at some concerns / unclear / not appraised (:func:`appraisal.study_levels`);
    two levels when at least half the weight is at high risk, one when at least half is at
    high risk or some concerns;
  - *inconsistency*: I^2 and the prediction interval; one level at I^2 >= 50 %, two at
    I^2 >= 75 % with a prediction interval wider than half the scale (proportions) or
    spanning both 0.8 and 1.25 (ratios);
  - *imprecision*: the CI width and the optimal information size (OIS): for a proportion the
    patients needed to estimate it within +-``margin`` (``z^2 p(1-p)/margin^2``); for a ratio
    the patients needed to detect a 25 % relative risk reduction at the control risk (alpha
    0.05, power 0.8).  One level when the patients fall short of the OIS or the CI is wider
    than ``2*margin`` (proportions) / spans 1 and an appreciable effect (0.75 or 1.25); two
    when below half the OIS or the CI is wider than 0.5 (proportions) / both;
  - *indirectness*: the weight share of studies the caller flags as indirect (population,
    intervention or outcome not the question's); one level at >= 50 %;
  - *publication bias*: Egger's test when there are at least 10 studies (one level at
    p < 0.10); otherwise not assessable and not downgraded, which the reason says.
* **Overrides**: :meth:`Certainty.override` sets a domain's downgrade with the reviewer and a
  reason; the computed default and its reason are kept beside it, and both are in
  :meth:`Certainty.to_frame`.
* Overrides are reviewer decisions and are stored like them: :func:`record_override` appends one
  to the review store (``downgrade=None`` withdraws it), :func:`stored_overrides` gives the
  latest per outcome and domain, ready for ``assess(..., overrides=...)``.
* The final level is one of the four GRADE levels (:data:`LEVELS`), never below "very low".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InputError
from ..store import ReviewStore
from .synthesis import PoolResult

__all__ = ["LEVELS", "DOMAINS", "SYMBOLS", "Domain", "Certainty", "assess", "summary_of_findings",
           "record_override", "stored_overrides"]

LEVELS = ("high", "moderate", "low", "very low")
SYMBOLS = {"high": "\u2295\u2295\u2295\u2295", "moderate": "\u2295\u2295\u2295\u25ef",
           "low": "\u2295\u2295\u25ef\u25ef", "very low": "\u2295\u25ef\u25ef\u25ef"}
DOMAINS = ("risk of bias", "inconsistency", "imprecision", "indirectness", "publication bias")


@dataclass(frozen=True)
class Domain:
    """One downgrade domain: the computed default and, if any, a reviewer's override."""

    name: str
    computed: int
    computed_reason: str
    override: int | None = None
    override_reason: str | None = None
    reviewer: str | None = None

    @property
    def downgrade(self) -> int:
        return self.computed if self.override is None else self.override

    @property
    def reason(self) -> str:
        if self.override is None:
            return self.computed_reason
        return f"{self.override_reason} (reviewer {self.reviewer}; computed: {self.computed_reason})"


@dataclass
class Certainty:
    """GRADE certainty of one outcome."""

    outcome: str
    start: str
    start_reason: str
    domains: dict[str, Domain]
    result: PoolResult | None = field(default=None, repr=False)

    @property
    def downgrades(self) -> int:
        return sum(d.downgrade for d in self.domains.values())

    @property
    def level(self) -> str:
        return LEVELS[min(len(LEVELS) - 1, LEVELS.index(self.start) + self.downgrades)]

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.level]

    def override(self, domain: str, downgrade: int, reason: str, reviewer: str) -> "Certainty":
        """A copy with ``domain`` set to ``downgrade`` levels by ``reviewer`` (the computed default kept)."""
        if domain not in self.domains:
            raise InputError(f"GRADE domain {domain!r} is not one of {', '.join(DOMAINS)}: pick one")
        if downgrade not in (0, 1, 2):
            raise InputError(f"outcome {self.outcome!r}, {domain}: downgrade {downgrade!r} is not 0, 1 or 2")
        if not isinstance(reviewer, str) or not reviewer.strip():
            raise InputError(f"outcome {self.outcome!r}, {domain}: an override needs the reviewer's name")
        if not isinstance(reason, str) or not reason.strip():
            raise InputError(f"outcome {self.outcome!r}, {domain}: an override needs a reason")
        domains = dict(self.domains)
        domains[domain] = replace(domains[domain], override=int(downgrade), override_reason=reason.strip(),
                                  reviewer=reviewer.strip())
        return Certainty(self.outcome, self.start, self.start_reason, domains, self.result)

    def to_frame(self) -> pd.DataFrame:
        """One row per domain: computed downgrade and reason, override, reviewer, final downgrade."""
        return pd.DataFrame([{"outcome": self.outcome, "domain": d.name, "computed": d.computed,
                              "computed_reason": d.computed_reason, "override": d.override,
                              "override_reason": d.override_reason, "reviewer": d.reviewer,
                              "downgrade": d.downgrade} for d in self.domains.values()])

    def sentence(self) -> str:
        """Plain language: the certainty and why."""
        why = [f"{d.name} (-{d.downgrade})" for d in self.domains.values() if d.downgrade]
        text = f"{self.level.capitalize()} certainty: starts {self.start} ({self.start_reason})"
        return text + (f", downgraded for {', '.join(why)}" if why else ", not downgraded")


# -- the domains -------------------------------------------------------------------------------
def _weights(result: PoolResult) -> np.ndarray:
    w = result.studies["weight"].to_numpy(dtype=float)
    return w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / max(1, len(w)))


def _risk_of_bias(result: PoolResult, levels: Sequence[Any] | None) -> Domain:
    k = result.k
    if levels is None:
        levels = [None] * k
    if len(levels) != k:
        raise InputError(f"risk-of-bias levels: {len(levels)} given for {k} studies; give one per study")
    w = _weights(result)
    lv = ["not appraised" if (x is None or (isinstance(x, float) and math.isnan(x))) else str(x) for x in levels]
    high = float(sum(wi for wi, x in zip(w, lv) if x in ("high", "critical")))
    concern = float(sum(wi for wi, x in zip(w, lv) if x not in ("low", "high", "critical")))
    unappraised = sum(x == "not appraised" for x in lv)
    note = f"; {unappraised} of {k} studies not appraised (counted as unclear)" if unappraised else ""
    text = (f"{100 * high:.0f}% of the weight from studies at high risk of bias, {100 * concern:.0f}% at some "
            f"concerns or unclear{note}")
    if high >= 0.5:
        return Domain("risk of bias", 2, text)
    if high + concern >= 0.5:
        return Domain("risk of bias", 1, text)
    return Domain("risk of bias", 0, text)


def _inconsistency(result: PoolResult) -> Domain:
    if result.k < 2 or math.isnan(result.i2):
        return Domain("inconsistency", 0, f"{result.k} study: inconsistency cannot be assessed")
    i2 = result.i2
    if result.is_ratio:
        wide = (not math.isnan(result.pi_low)) and result.pi_low < 0.8 and result.pi_high > 1.25
        pi = (f"prediction interval {result.pi_low:.2f}-{result.pi_high:.2f}" if not math.isnan(result.pi_low)
              else "no prediction interval")
    else:
        wide = (not math.isnan(result.pi_low)) and (result.pi_high - result.pi_low) > 0.5
        pi = (f"prediction interval {100 * result.pi_low:.0f}-{100 * result.pi_high:.0f}%"
              if not math.isnan(result.pi_low) else "no prediction interval")
    text = f"I\u00b2 {i2:.0f}%, {pi}"
    if i2 >= 75 and wide:
        return Domain("inconsistency", 2, text + ": considerable heterogeneity and a wide prediction interval")
    if i2 >= 50:
        return Domain("inconsistency", 1, text + ": substantial heterogeneity")
    return Domain("inconsistency", 0, text)


def _ois_ratio(result: PoolResult, rrr: float = 0.25, alpha: float = 0.05, power: float = 0.8) -> float:
    s = result.studies
    pc = float(s["events_ctrl"].sum() / s["n_ctrl"].sum())
    if pc <= 0 or pc >= 1:
        return float("nan")
    pt = pc * (1 - rrr)
    z = stats.norm.isf(alpha / 2) + stats.norm.isf(1 - power)
    return 2 * math.ceil(z ** 2 * (pc * (1 - pc) + pt * (1 - pt)) / (pc - pt) ** 2)


def _imprecision(result: PoolResult, margin: float) -> Domain:
    n = result.patients
    if result.is_ratio:
        ois = _ois_ratio(result)
        lo, hi = result.ci_low, result.ci_high
        if result.kind == "RD":
            spans = lo < 0 < hi
            appreciable = lo < -0.05 or hi > 0.05
        else:
            spans = lo < 1 < hi
            appreciable = lo < 0.75 or hi > 1.25
        short = not math.isnan(ois) and n < ois
        ci = f"CI {lo:.2f}-{hi:.2f}"
        text = f"{n} patients" + (f" (OIS {ois:.0f})" if not math.isnan(ois) else "") + f", {ci}"
        count = int(short) + int(spans and appreciable)
        if count:
            parts = (["below the optimal information size"] if short else []) + \
                    (["the CI includes no effect and an appreciable one"] if spans and appreciable else [])
            return Domain("imprecision", count, text + ": " + " and ".join(parts))
        return Domain("imprecision", 0, text)
    p = min(max(result.estimate, 0.01), 0.99) if not math.isnan(result.estimate) else 0.5
    ois = math.ceil(stats.norm.isf(0.025) ** 2 * p * (1 - p) / margin ** 2)
    width = result.ci_high - result.ci_low
    text = (f"{n} patients (OIS {ois} for +-{100 * margin:.0f} points at {100 * p:.0f}%), CI "
            f"{100 * result.ci_low:.0f}-{100 * result.ci_high:.0f}% ({100 * width:.0f} points wide)")
    if n < ois / 2 or width > 0.5:
        return Domain("imprecision", 2, text + ": very imprecise")
    if n < ois or width > 2 * margin:
        return Domain("imprecision", 1, text + ": imprecise")
    return Domain("imprecision", 0, text)


def _indirectness(result: PoolResult, indirect: Sequence[bool] | None, note: str | None) -> Domain:
    if indirect is None:
        return Domain("indirectness", 0, note or "no study flagged as indirect (population, intervention and "
                      "outcome as in the question); reviewer to confirm")
    if len(indirect) != result.k:
        raise InputError(f"indirect flags: {len(indirect)} given for {result.k} studies; give one per study")
    share = float(sum(w for w, flag in zip(_weights(result), indirect) if flag))
    text = f"{100 * share:.0f}% of the weight from studies flagged as indirect" + (f" ({note})" if note else "")
    return Domain("indirectness", 1 if share >= 0.5 else 0, text)


def _publication_bias(result: PoolResult) -> Domain:
    egger = result.egger()
    if egger is None:
        return Domain("publication bias", 0, f"not assessable: {result.small_study_reason}; not downgraded")
    return Domain("publication bias", 1 if egger.p < 0.10 else 0, egger.sentence())


def _start(designs: Sequence[Any] | None) -> tuple[str, str]:
    if not designs:
        return "low", "designs not given: treated as observational"
    names = [str(d).lower() for d in designs]
    randomised = ["random" in d for d in names]
    if all(randomised):
        return "high", "randomised trials"
    if any(randomised):
        return "low", f"{sum(randomised)} of {len(names)} studies randomised; the rest observational"
    return "low", "non-randomised studies (single-arm series, case reports, cohorts)"


def assess(outcome: str, result: PoolResult, *, designs: Sequence[Any] | None = None,
           bias_levels: Sequence[Any] | None = None, indirect: Sequence[bool] | None = None,
           indirect_note: str | None = None, margin: float = 0.10,
           overrides: Sequence[Mapping[str, Any]] = ()) -> Certainty:
    """GRADE certainty for one outcome.

    Parameters
    ----------
    outcome : str
        The outcome's name.
    result : PoolResult
        Its pooled result (the study order defines the order of the per-study arguments).
    designs : sequence of str, optional
        Each study's design.
    bias_levels : sequence, optional
        Each study's overall risk-of-bias level ('low', 'some concerns', 'high', 'critical',
        'unclear', or None when not appraised), e.g. from :func:`appraisal.study_levels`.
    indirect : sequence of bool, optional
        Each study flagged indirect, with ``indirect_note`` saying why.
    margin : float
        For proportions: the precision wanted (+-10 points).
    overrides : sequence of mappings
        ``{"domain", "downgrade", "reason", "reviewer"}`` applied after the computed defaults.
    """
    if not isinstance(outcome, str) or not outcome.strip():
        raise InputError("outcome name is empty: give the outcome assessed")
    if designs is not None and len(designs) != result.k:
        raise InputError(f"outcome {outcome!r}: {len(designs)} designs given for {result.k} studies")
    start, start_reason = _start(designs)
    domains = {d.name: d for d in (_risk_of_bias(result, bias_levels), _inconsistency(result),
                                   _imprecision(result, margin), _indirectness(result, indirect, indirect_note),
                                   _publication_bias(result))}
    cert = Certainty(outcome, start, start_reason, domains, result)
    for o in overrides:
        cert = cert.override(o["domain"], int(o["downgrade"]), o.get("reason", ""), o.get("reviewer", ""))
    return cert


def summary_of_findings(assessments: Sequence[Certainty]) -> pd.DataFrame:
    """The summary-of-findings table: one row per outcome.

    Columns: outcome, studies, patients, events, estimate (text, with CI), certainty (level and
    symbol), reasons (the domains downgraded), finding (one plain sentence).  An outcome with
    too few studies shows the counts and says it was not pooled.
    """
    rows = []
    for c in assessments:
        r = c.result
        why = "; ".join(f"{d.name}: {d.reason}" for d in c.domains.values() if d.downgrade) or "none"
        rows.append({"outcome": c.outcome, "studies": r.k, "patients": r.patients, "events": r.events,
                     "estimate": r.summary(), "certainty": f"{c.symbol} {c.level}", "level": c.level,
                     "downgraded_for": why, "finding": _finding(c)})
    return pd.DataFrame(rows)


def _finding(c: Certainty) -> str:
    r = c.result
    if not r.poolable:
        return (f"{c.outcome}: {r.events} events in {r.patients} patients across {r.k} "
                f"{'study' if r.k == 1 else 'studies'}; too few studies to pool ({c.level} certainty).")
    if r.kind == "proportion":
        value = f"about {100 * r.estimate:.0f}% of patients (95% CI {100 * r.ci_low:.0f}-{100 * r.ci_high:.0f}%)"
    else:
        value = f"a {r.kind} of about {r.estimate:.2f} (95% CI {r.ci_low:.2f}-{r.ci_high:.2f})"
    lead = {"high": f"{c.outcome}: {value}",
            "moderate": f"{c.outcome}: probably {value}",
            "low": f"{c.outcome}: possibly {value}; the true value may be substantially different",
            "very low": f"{c.outcome}: very uncertain, {value}"}[c.level]
    return f"{lead} ({c.level} certainty; {r.k} studies, {r.patients} patients)."


def record_override(store: ReviewStore, outcome: str, domain: str, downgrade: int | None, reason: str,
                    reviewer: str) -> int:
    """Append a reviewer's override of one GRADE domain of one outcome; ``downgrade=None`` withdraws it.

    Raises
    ------
    InputError
        Unknown domain, a downgrade other than 0/1/2/None, no reason or no reviewer: one line, nothing written.
    """
    if not isinstance(outcome, str) or not outcome.strip():
        raise InputError("outcome name is empty: give the outcome the override is for")
    if domain not in DOMAINS:
        raise InputError(f"GRADE domain {domain!r} is not one of {', '.join(DOMAINS)}: pick one")
    if downgrade not in (0, 1, 2, None):
        raise InputError(f"outcome {outcome!r}, {domain}: downgrade {downgrade!r} is not 0, 1 or 2 (None withdraws)")
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise InputError(f"outcome {outcome!r}, {domain}: an override needs the reviewer's name")
    if downgrade is not None and (not isinstance(reason, str) or not reason.strip()):
        raise InputError(f"outcome {outcome!r}, {domain}: an override needs a reason")
    return store.append_grade_override(outcome.strip(), domain, downgrade, (reason or "").strip() or None,
                                       reviewer.strip())


def stored_overrides(store: ReviewStore) -> dict[str, list[dict[str, Any]]]:
    """The latest override per outcome and domain (withdrawn ones left out), as ``assess`` takes them."""
    rows = store.grade_overrides()
    out: dict[str, list[dict[str, Any]]] = {}
    if rows.empty:
        return out
    latest = rows.sort_values(["created_at", "override_id"]).groupby(["outcome", "domain"]).tail(1)
    for r in latest.to_dict("records"):
        if r["downgrade"] is None or pd.isna(r["downgrade"]):
            continue
        out.setdefault(r["outcome"], []).append({"domain": r["domain"], "downgrade": int(r["downgrade"]),
                                                 "reason": r["reason"], "reviewer": r["reviewer"]})
    return out
