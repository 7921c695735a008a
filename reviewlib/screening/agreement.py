"""Dual (or multiple) screening: blind mode, agreement, conflicts and their resolution.

Workflow
--------
1. Each reviewer screens with ``Screener(..., reviewer="ana", blind=True)``;
   :func:`reviewlib.screening.decisions.current_decisions` with ``blind=True`` shows a
   reviewer only their own decisions until the stage is revealed.
2. :func:`reveal` records the reveal in the store (meta ``screening.revealed.<stage>``).
3. :func:`agreement` gives Cohen's kappa and percent agreement for every pair
   of reviewers, on the records both screened (with that n).
4. :func:`conflicts` lists records whose reviewers disagree; :func:`resolve`
   appends a decision of kind ``'resolution'``, which
   :func:`reviewlib.screening.decisions.included` honours above the reviewers' calls.
"""
from __future__ import annotations

import itertools
import json
import logging
import math
from typing import Iterable

import pandas as pd

from .decisions import (HUMAN_DECISIONS, META_REVEALED, RULES_REVIEWER, _check_reviewer, _check_stage,
                        current_decisions, is_revealed, record_decision)
from ..errors import InputError
from ..store import ReviewStore, utcnow

logger = logging.getLogger(__name__)

AGREEMENT_COLUMNS = ["reviewer_a", "reviewer_b", "n", "agreed", "percent_agreement", "kappa"]


def reveal(store: ReviewStore, stage: str = "title-abstract", by: str | None = None) -> dict:
    """Record that blind decisions at ``stage`` are revealed (idempotent: the first reveal stands)."""
    _check_stage(stage)
    key = META_REVEALED + stage
    existing = store.get_meta(key)
    if existing is not None:
        return json.loads(existing)
    info = {"stage": stage, "by": by, "at": utcnow()}
    store.set_meta(key, json.dumps(info))
    logger.info("revealed %s decisions%s", stage, f" (by {by})" if by else "")
    return info


def human_decisions(store: ReviewStore, stage: str = "title-abstract") -> pd.DataFrame:
    """Each reviewer's current own decision per record (no rules, no resolutions)."""
    current = current_decisions(store, stage=stage)
    return current[current["kind"].isin(["human", "import"])].reset_index(drop=True)


def reviewer_names(store: ReviewStore, stage: str = "title-abstract") -> list[str]:
    """The people who screened at ``stage``."""
    return sorted(set(human_decisions(store, stage)["reviewer"]))


def _check_known(names: Iterable[str], known: list[str], stage: str) -> list[str]:
    out = []
    for name in names:
        name = _check_reviewer(name)
        if name not in known:
            raise InputError(f"reviewer {name!r} has no {stage} decisions (reviewers: {', '.join(known) or 'none'}): "
                             "check the name")
        out.append(name)
    return out


def _wide(store: ReviewStore, stage: str) -> pd.DataFrame:
    human = human_decisions(store, stage)
    if human.empty:
        return pd.DataFrame()
    return human.pivot(index="record_id", columns="reviewer", values="decision")


def kappa(a: list[str], b: list[str]) -> float:
    """Cohen's kappa of two raters' labels; NaN when undefined (no items, or chance agreement is 1).

    ``(p_o - p_e) / (1 - p_e)`` with observed agreement ``p_o`` and chance
    agreement ``p_e`` from each rater's label frequencies (the same value as
    ``sklearn.metrics.cohen_kappa_score``, without its one-second import).
    """
    if not a:
        return float("nan")
    labels = sorted(set(a) | set(b))
    n = len(a)
    expected = sum((a.count(x) / n) * (b.count(x) / n) for x in labels)
    if math.isclose(expected, 1.0):
        return float("nan")
    observed = sum(x == y for x, y in zip(a, b)) / n
    return float((observed - expected) / (1.0 - expected))


def agreement(store: ReviewStore, stage: str = "title-abstract",
              reviewers: Iterable[str] | None = None) -> pd.DataFrame:
    """Pairwise agreement between reviewers on the records both screened.

    Parameters
    ----------
    store : ReviewStore
    stage : str
    reviewers : iterable of str, optional
        The reviewers to compare (default: everyone who screened at ``stage``).

    Returns
    -------
    pandas.DataFrame
        reviewer_a, reviewer_b, n (records both screened), agreed,
        percent_agreement (0-100), kappa (Cohen's, over include/exclude/maybe;
        NaN when n is 0 or the chance agreement is 1).
    """
    _check_stage(stage)
    known = reviewer_names(store, stage)
    names = known if reviewers is None else _check_known(reviewers, known, stage)
    wide = _wide(store, stage)
    rows = []
    for a, b in itertools.combinations(names, 2):
        both = wide[[a, b]].dropna() if not wide.empty else pd.DataFrame(columns=[a, b])
        la, lb = list(both[a]), list(both[b])
        n = len(both)
        agreed = int(sum(x == y for x, y in zip(la, lb)))
        rows.append((a, b, n, agreed, 100.0 * agreed / n if n else float("nan"), kappa(la, lb)))
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def conflicts(store: ReviewStore, stage: str = "title-abstract") -> pd.DataFrame:
    """Records whose reviewers' current decisions differ.

    Returns
    -------
    pandas.DataFrame
        record_id, title, one column per reviewer (their decision, or empty),
        resolved (bool) and resolution (the resolving decision, if any).
    """
    _check_stage(stage)
    wide = _wide(store, stage)
    if wide.empty:
        return pd.DataFrame(columns=["record_id", "title", "resolved", "resolution"])
    differing = wide[wide.apply(lambda r: r.dropna().nunique() > 1, axis=1)]
    current = current_decisions(store, stage=stage)
    res = current[current["kind"] == "resolution"].sort_values(["created_at", "decision_id"])
    latest = res.groupby("record_id").tail(1).set_index("record_id")["decision"]
    out = differing.reset_index()
    out.columns.name = None
    titles = {}
    if len(out):
        records = store.records()
        titles = dict(zip(records["record_id"], records["title"]))
    out.insert(1, "title", [titles.get(r) for r in out["record_id"]])
    out["resolution"] = [latest.get(r) for r in out["record_id"]]
    out["resolved"] = out["resolution"].notna()
    return out


def resolve(store: ReviewStore, record_id: str, resolver: str, decision: str | None = None, *,
            take: str | None = None, stage: str = "title-abstract", reason: str | None = None,
            note: str | None = None) -> int:
    """Settle a record with a decision of kind 'resolution'; returns its id.

    Parameters
    ----------
    store : ReviewStore
    record_id : str
    resolver : str
        Who settles it (a third reviewer, or the pair by consensus).
    decision : {'include', 'exclude', 'maybe'}, optional
        The settled decision; or give ``take``.
    take : str, optional
        Adopt this reviewer's current decision (and reason) on the record.
    stage, reason, note
        As in :func:`reviewlib.screening.decisions.record_decision`.

    Raises
    ------
    InputError
        Neither or both of decision and take; ``take`` names a reviewer who did
        not screen this record; an invalid decision or reason.  Nothing written.
    """
    _check_stage(stage)
    resolver = _check_reviewer(resolver)
    if (decision is None) == (take is None):
        raise InputError("resolve needs exactly one of decision='include'|'exclude'|'maybe' or take='<reviewer>'")
    if take is not None:
        take = _check_reviewer(take)
        human = human_decisions(store, stage)
        calls = human[human["record_id"] == record_id]
        theirs = calls[calls["reviewer"] == take]
        if theirs.empty:
            raise InputError(f"reviewer {take!r} did not screen {record_id} at {stage} "
                             f"(screened by: {', '.join(sorted(calls['reviewer'])) or 'nobody'}): "
                             "take one of them or give decision=")
        decision = theirs["decision"].iloc[0]
        if reason is None:
            reason = theirs["reason"].iloc[0] if isinstance(theirs["reason"].iloc[0], str) else None
        note = note or f"took {take}'s decision"
    if decision not in HUMAN_DECISIONS:
        raise InputError(f"decision {decision!r} is not one of {', '.join(HUMAN_DECISIONS)}: pick one")
    return record_decision(store, record_id, resolver, decision, stage=stage, reason=reason, note=note,
                           kind="resolution")


__all__ = ["reveal", "is_revealed", "agreement", "conflicts", "resolve", "kappa", "reviewer_names",
           "human_decisions", "RULES_REVIEWER"]
