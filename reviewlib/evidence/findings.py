"""From the store to the summary of findings: every outcome pooled, appraised and graded in one call.

:func:`synthesize` is what a report calls after extraction and appraisal:

1. the current events/n per study and outcome (:func:`outcomes.current_outcomes`, reviewer
   corrections winning), joined to the study table;
2. per outcome, :func:`synthesis.pool_proportions` (subgroups by ``subgroup``, e.g. the
   intervention), and per population (``by``) where a population has enough studies;
3. per outcome, the studies' risk-of-bias levels (:func:`appraisal.study_levels` of the final
   judgements) and :func:`certainty.assess` (with the reviewers' stored GRADE overrides);
4. :func:`certainty.summary_of_findings` over them.

It returns a :class:`Findings` with the results (for the forest plots), the certainty objects
and the summary table; outcomes with too few studies are kept and say so, and outcomes no study
reports get a row saying that (a gap).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from ..store import ReviewStore
from . import appraisal, certainty, outcomes as oc
from .synthesis import PoolResult, pool_proportions
from .tables import role_field

logger = logging.getLogger(__name__)

__all__ = ["Findings", "synthesize", "MIXED"]

#: The ``by`` group of studies with several values (basket studies: outcomes are not split by disease).
MIXED = "mixed (basket studies)"


@dataclass
class Findings:
    """Pooled results, certainty and the summary-of-findings table of a review."""

    results: dict[str, PoolResult]
    certainty: dict[str, certainty.Certainty]
    by_group: dict[tuple[str, str], PoolResult]
    table: pd.DataFrame
    group_table: pd.DataFrame

    def grade_table(self) -> pd.DataFrame:
        """Every outcome's GRADE domains: computed default, reason, override, reviewer, final."""
        frames = [c.to_frame() for c in self.certainty.values()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def synthesize(store: ReviewStore, studies: pd.DataFrame, outcome_names: Sequence[str], *,
               method: str = "REML", transform: str = "logit", subgroup: str | None = None,
               by: str | None = None, label: str = "study", design: str | None = None,
               overrides: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
               current: pd.DataFrame | None = None) -> Findings:
    """Pool, appraise and grade every outcome.

    Parameters
    ----------
    store : ReviewStore
    studies : pandas.DataFrame
        The included studies, one row each: ``record_id``, the ``label`` column (unique study
        labels), the design column, and the ``subgroup`` / ``by`` columns if given.
    outcome_names : sequence of str
        The outcomes to report, in order (e.g. the protocol's ``outcomes`` names).
    method, transform : str
        Passed to :func:`pool_proportions`.
    subgroup : str, optional
        Column whose values make the forest plots' subgroup panels (e.g. the intervention).
    by : str, optional
        Column giving one row of ``group_table`` per value (e.g. the population); values with fewer
        than three studies are listed with their counts and not pooled, and studies with several
        values (``"asthma; eczema"``) form one :data:`MIXED` group.
    design : str, optional
        The column of study designs (GRADE's starting level); default the protocol's
        ``study_design`` role when the study table carries its schema.
    overrides : mapping outcome -> list of override mappings, optional
        Reviewer overrides of GRADE domains (see :func:`certainty.assess`); default the ones
        stored with :func:`certainty.record_override`.
    current : pandas.DataFrame, optional
        The current events/n (default: read from the store).
    """
    current = oc.current_outcomes(store) if current is None else current
    if design is None:
        design = role_field("study_design", studies, required=False)
    if overrides is None:
        overrides = certainty.stored_overrides(store)
    final = appraisal.final_judgements(store)
    levels = appraisal.study_levels(final).drop_duplicates("record_id").set_index("record_id")["level"] \
        if not final.empty else pd.Series(dtype=object)
    results, certs, groups, group_rows = {}, {}, {}, []
    for name in outcome_names:
        table = oc.events_table(current, name, studies)
        if table.empty:
            logger.info("outcome %s: no study reports it", name)
            continue
        labels = table[label] if label in table else table["record_id"]
        res = pool_proportions(table["events"], table["n"], method=method, transform=transform, labels=labels,
                               subgroups=table[subgroup] if subgroup and subgroup in table else None)
        results[name] = res
        certs[name] = certainty.assess(
            name, res, designs=table[design].tolist() if design and design in table else None,
            bias_levels=[levels.get(r) for r in table["record_id"]],
            overrides=(overrides or {}).get(name, ()))
        if by and by in table:
            # a multi-valued cell ("asthma; eczema", a basket study) cannot be split by outcome
            groups_of = table[by].map(lambda v: MIXED if isinstance(v, str) and ";" in v else v)
            for value, sub in table.groupby(groups_of, sort=True):
                part = pool_proportions(sub["events"], sub["n"], method=method, transform=transform,
                                        labels=sub[label] if label in sub else sub["record_id"])
                groups[(name, str(value))] = part
                # the outcome's overrides hold for its per-population rows too (a reviewer's judgement of
                # the outcome's evidence); the computed domains are the subset's own
                sub_cert = certainty.assess(
                    name, part, designs=sub[design].tolist() if design and design in sub else None,
                    bias_levels=[levels.get(r) for r in sub["record_id"]], overrides=(overrides or {}).get(name, ()))
                sof_row = certainty.summary_of_findings([sub_cert]).iloc[0]
                group_rows.append({"outcome": name, by: value, "studies": part.k, "patients": part.patients,
                                   "events": part.events, "estimate": part.summary(), "poolable": part.poolable,
                                   "certainty": sof_row["certainty"], "level": sof_row["level"],
                                   "finding": sof_row["finding"]})
    sof = certainty.summary_of_findings(list(certs.values()))
    missing = [name for name in outcome_names if name not in results]
    if missing:   # a gap is a finding too
        sof = pd.concat([sof, pd.DataFrame([{"outcome": name, "studies": 0, "patients": 0, "events": 0,
                                             "estimate": "No study reports it", "certainty": "", "level": None,
                                             "downgraded_for": "", "finding": f"{name}: no included study reports it."}
                                            for name in missing])], ignore_index=True)
    return Findings(results, certs, groups, sof, pd.DataFrame(group_rows))
