"""Registrations (ClinicalTrials.gov records) in a review's screening: deduplication and curated inclusion.

A review searches a bibliographic database and a trial register; both land in
one records table (registrations as ``nct:NCT...`` records, source ``'ctgov'``).
Two rules keep them apart where they must be:

* :func:`deduplicate` merges publications with :func:`reviewlib.screening.dedup.deduplicate`
  (PMID, DOI, fuzzy title) and registrations only among themselves, by
  :func:`reviewlib.sources.ctgov.registry_duplicates` (an NCT alias, or a shared
  EudraCT/CTIS/ChiCTR/... number).  A registration is never merged with a
  publication by a similar title: a publication *reports* a registered trial,
  it is not a duplicate record of it (that is a link, :mod:`reviewlib.sources.links`);
  and two registrations with the same title are two registrations unless a
  register says otherwise.
* :func:`record_curation` records a curated registry snapshot's inclusion as a
  reviewer's decisions (both stages), under the name and rule the protocol's
  ``registry: curation`` gives, only offline on that snapshot.

:func:`split_sources` separates publications from registrations (the evidence
tables count published reports; the registry section counts registrations).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Mapping

import numpy as np
import pandas as pd

from . import decisions, dedup

logger = logging.getLogger(__name__)

#: The records-table ``source`` of registrations.
REGISTRY_SOURCE = "ctgov"
#: The dedup audit's rule for registrations merged by a register's own ids.
REGISTRY_RULE = "registry id"


def is_registration(records: pd.DataFrame) -> pd.Series:
    """True for the rows of a records table that are registrations (source 'ctgov')."""
    if "source" not in records.columns:
        return pd.Series(False, index=records.index)
    return records["source"].eq(REGISTRY_SOURCE)


def split_sources(records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(publications, registrations)`` of a records table, each in its order, index reset."""
    reg = is_registration(records)
    return records[~reg].reset_index(drop=True), records[reg].reset_index(drop=True)


def deduplicate(records: pd.DataFrame, trials: pd.DataFrame | None = None,
                threshold: float = dedup.FUZZY_THRESHOLD, marks: pd.DataFrame | None = None) -> dedup.DedupResult:
    """Deduplicate a run's records: publications by :func:`dedup.deduplicate`, registrations by register ids.

    Parameters
    ----------
    records : pandas.DataFrame
        The run's records (``record_id`` first), publications and registrations.
    trials : pandas.DataFrame, optional
        The registry table (``store.trials()``): its ``nct_aliases`` and
        ``secondary_ids`` decide which registrations are one study.
    threshold : float
        The fuzzy title threshold for publications.
    marks : pandas.DataFrame, optional
        Reviewers' duplicate marks (:func:`dedup.current_marks`). Marks on publications go to
        :func:`dedup.deduplicate`; marks on registrations are applied here: "not duplicates" keeps
        registrations apart that share a register id, "duplicates" merges registrations (rule
        ``'reviewer'``). For one pair the latest mark wins. (A mark mixing the two is refused when
        it is made.)

    Returns
    -------
    DedupResult
        One result (what :func:`dedup.save` stores and PRISMA counts): the
        unique records in input order, the audit of both parts (registrations'
        rule ``'registry id'``, with ``how`` in ``matched_to``'s row title), and
        ``n_removed`` summed.
    """
    from ..sources.ctgov import registry_duplicates
    reg = is_registration(records)
    pubs, regs = records[~reg], records[reg]
    reg_marks = None
    if marks is not None and len(marks):
        pub_ids, reg_ids = set(pubs["record_id"]), set(regs["record_id"])
        on_regs = [bool(ids) and all(r in reg_ids for r in ids) for ids in marks["record_ids"]]
        reg_marks = marks[on_regs]
        marks = marks[[any(r in pub_ids for r in ids) and not on for ids, on in zip(marks["record_ids"], on_regs)]]
    result = dedup.deduplicate(pubs, threshold=threshold, marks=marks)
    removed: set[str] = set()
    audit_rows: list[dict[str, Any]] = []
    links: list[tuple[str, str, str]] = []           # (kept-side id, other id, rule)
    if len(regs) and trials is not None and len(trials):
        reg_ids = set(regs["record_id"])
        known = trials[[f"nct:{n}" in reg_ids for n in trials["nct_id"]]]
        links = [(f"nct:{p.duplicate_of}", f"nct:{p.nct_id}", f"{REGISTRY_RULE} ({p.how})")
                 for p in registry_duplicates(known).itertuples(index=False)]
    if len(regs):
        groups = _registration_groups(list(regs["record_id"]), links, reg_marks)
        group = int(result.audit["group_id"].max()) if len(result.audit) else 0
        titles = dict(zip(regs["record_id"], regs["title"]))
        rows_of = {rid: i for i, rid in enumerate(records["record_id"])}
        for kid, members in groups:
            group += 1
            audit_rows.append({"group_id": group, "record_id": kid, "kept": True, "rule": None, "score": None,
                               "matched_to": None, "source": REGISTRY_SOURCE, "row": rows_of.get(kid),
                               "title": titles.get(kid)})
            for mid, parent, rule in members:
                removed.add(mid)
                audit_rows.append({"group_id": group, "record_id": mid, "kept": False, "rule": rule,
                                   "score": 100.0, "matched_to": parent, "source": REGISTRY_SOURCE,
                                   "row": rows_of.get(mid), "title": titles.get(mid)})
    unique_regs = regs[~regs["record_id"].isin(removed)]
    kept_pubs = result.records
    # the unique records in input order: publications as dedup kept them (merged fields), registrations as given
    order = {rid: i for i, rid in enumerate(records["record_id"])}
    cols = list(kept_pubs.columns)
    both = pd.concat([kept_pubs, unique_regs[[c for c in cols if c in unique_regs.columns]]], ignore_index=True)
    rank = np.fromiter((order.get(r, len(order)) for r in both["record_id"].tolist()), dtype=np.int64, count=len(both))
    both = both.iloc[np.argsort(rank, kind="stable")]     # stable: what sorted() by the same key gives
    audit = pd.concat([result.audit, pd.DataFrame(audit_rows, columns=dedup.AUDIT_COLUMNS)], ignore_index=True) \
        if audit_rows else result.audit
    audit["kept"] = audit["kept"].astype(bool)
    audit["score"] = audit["score"].astype(float)
    n_removed = result.n_removed + len(removed)
    logger.info("dedup: %d publications -> %d, %d registrations -> %d (%d by register ids)", len(pubs),
                len(kept_pubs), len(regs), len(unique_regs), len(removed))
    return dedup.DedupResult(records=both.reset_index(drop=True), audit=audit, n_removed=n_removed,
                             n_input=len(records), threshold=threshold,
                             groups=int(audit["group_id"].nunique()) if len(audit) else 0)


def _registration_groups(ids: list[str], links: list[tuple[str, str, str]],
                         marks: pd.DataFrame | None) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Registrations joined by reviewers' marks and register ids, never across a "not duplicates" mark
    (the latest mark on a pair wins, as for publications: :func:`dedup._mark_pairs`).

    Returns ``(kept id, [(member id, the id it was joined to, rule), ...])`` for each group of two or
    more, the kept one the first in ``ids``; a reviewer's merge is rule ``'reviewer'``.
    """
    order = {r: i for i, r in enumerate(ids)}
    apart, together = dedup._mark_pairs(marks, {r: [i] for r, i in order.items()})
    uf = dedup._UnionFind(len(ids))
    members: dict[int, list[int]] = {i: [i] for i in range(len(ids))}
    edges: dict[int, list[tuple[int, str]]] = defaultdict(list)

    def join(a: int, b: int, rule: str) -> None:
        ra, rb = uf.find(a), uf.find(b)
        if ra == rb or any((min(x, y), max(x, y)) in apart for x in members[ra] for y in members[rb]):
            return
        uf.union(a, b)
        root = uf.find(a)
        members[root].extend(members.pop(rb if root == ra else ra))
        edges[a].append((b, rule))
        edges[b].append((a, rule))

    for a, b in together:
        join(a, b, "reviewer")
    for a, b, rule in links:
        if a in order and b in order:
            join(order[a], order[b], rule)
    out = []
    for kept, group in sorted(members.items()):        # the root is the group's first record
        if len(group) > 1:
            via = dedup._links_from(kept, edges)
            out.append((ids[kept], [(ids[m], ids[via[m][0]], via[m][1]) for m in sorted(group) if m != kept]))
    return out


def curation(protocol: Any) -> dict[str, str] | None:
    """The protocol's ``registry: curation`` (reviewer, rule), or None."""
    section = protocol.section("registry") if hasattr(protocol, "section") else None
    cur = (section or {}).get("curation") if isinstance(section, dict) else None
    return dict(cur) if isinstance(cur, dict) else None


def record_curation(ctx: Any, records: pd.DataFrame) -> dict[str, int]:
    """Record a curated registry snapshot's inclusion of its trials as the curation reviewer's decisions.

    Only offline, when the protocol's ``registry:`` section has a snapshot and a
    ``curation`` (reviewer, rule); online the registry's records are screened by
    people.  Every registration in ``records`` (the run's deduplicated records)
    is included at title-abstract and, the registration being its own full
    record, at full text, with the rule as the note.  A record that already has
    this reviewer's include at a stage is skipped, so reruns add nothing; a
    person's decisions are never touched (they are stored under other names and
    win by the usual rules only where they agree, see :mod:`decisions`).

    Returns
    -------
    dict
        ``{'title-abstract': n, 'full-text': n}``: decisions appended.
    """
    added = {decisions.TITLE_ABSTRACT: 0, decisions.FULL_TEXT: 0}
    cur = curation(ctx.protocol)
    section = ctx.protocol.section("registry") or {}
    if not (ctx.offline and cur and section.get("snapshot")):
        return added
    regs = records[is_registration(records)]
    store = ctx.store
    for stage in (decisions.TITLE_ABSTRACT, decisions.FULL_TEXT):
        done = {r["record_id"] for r in store.connection.execute(
            "SELECT record_id FROM decisions WHERE reviewer=? AND stage=? AND decision='include'",
            (cur["reviewer"], stage))}
        for rid in regs["record_id"]:
            if rid in done:
                continue
            decisions.record_decision(store, rid, cur["reviewer"], "include", stage=stage,
                                      note=" ".join(str(cur["rule"]).split()))
            added[stage] += 1
    logger.info("registry curation: %s", added)
    return added


def rules_overruled(store: Any, records: pd.DataFrame) -> pd.DataFrame:
    """Registrations the protocol's rules proposed to exclude at title-abstract, by reason (``reason``, ``trials``).

    The rules are written for publications (their words, their publication
    types); where a curated or human inclusion stands over them, this says how
    often, so a reader sees what the rules would have done.
    """
    regs = set(records.loc[is_registration(records), "record_id"])
    rules = decisions.current_decisions(store, stage=decisions.TITLE_ABSTRACT)
    rules = rules[(rules["reviewer"] == "rules") & rules["record_id"].isin(regs) & rules["decision"].eq("exclude")]
    counts = rules["reason"].fillna("reason not stated").value_counts()
    return pd.DataFrame({"reason": list(counts.index), "trials": [int(v) for v in counts.values]})


def trial_facts(trial: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What a screener shows of a registration beside its summary: conditions, interventions, phase, enrollment."""
    def joined(v: Any) -> str:
        return "; ".join(str(x) for x in v) if isinstance(v, (list, tuple)) else ("" if v is None else str(v))
    enrol = trial.get("enrollment")
    enrol = "" if enrol is None or (isinstance(enrol, float) and pd.isna(enrol)) else str(enrol)
    if enrol and trial.get("enrollment_type"):
        enrol += f" ({str(trial['enrollment_type']).lower()})"
    rows = [("Conditions", joined(trial.get("conditions"))), ("Interventions", joined(trial.get("interventions"))),
            ("Phase", joined(trial.get("phases"))), ("Enrollment", enrol), ("Status", joined(trial.get("status")))]
    return [(k, v) for k, v in rows if v]


def trial_facts_html(store: Any, record_id: str, cache: dict | None = None) -> str:
    """The :func:`trial_facts` of registration ``record_id`` (``nct:NCT...``) as escaped HTML; '' for a publication.

    ``cache``: a dict kept by the caller (the screener) so the registry table is read once.
    """
    import html
    if not str(record_id).startswith("nct:"):
        return ""
    cache = cache if cache is not None else {}
    if "trials" not in cache:
        trials = store.trials()
        cache["trials"] = {t["nct_id"]: t for t in trials.to_dict("records")}
    trial = cache["trials"].get(str(record_id)[4:])
    if not trial:
        return ""
    cells = "".join(f"<b>{html.escape(k)}:</b> {html.escape(v)}<br>" for k, v in trial_facts(trial))
    return f'<div class="rl-trial">{cells}</div>'
