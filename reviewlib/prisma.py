"""PRISMA 2020 flow counts, drawn from the review store (never typed in).

:func:`counts` reads the store (searches and the records they found, the saved
deduplication result, and the screening decisions) and returns a
:class:`PrismaCounts`; :meth:`PrismaCounts.check` verifies that the boxes add
up.  :func:`reviewlib.plots.prisma_flow` draws the diagram from these counts.

How each box is counted
-----------------------
- *Records identified*, per source: distinct records linked to the searches of
  that source (``store.record_sources()``); records in the store that no search
  found are listed as ``"other (no search recorded)"``.
- *Duplicates removed*: records found by several sources (merged by the store
  on PMID/DOI) plus those removed by :mod:`reviewlib.dedup` (its saved result).
- *Records screened*: the distinct records left after deduplication.
- *Records excluded* (title-abstract): records whose resolved title-abstract
  decision is ``exclude``, counted per reason key; *awaiting*: screened records
  with no resolved decision yet (none, ``maybe``/``unsure``, or a disagreement).
- *Reports sought*: records included at title-abstract.  *Reports assessed*:
  those with a resolved full-text decision; when no full-text decision exists
  at all, the title-abstract includes stand for the assessed reports (a note
  says so).  *Studies included*: resolved full-text includes (or the
  title-abstract includes when no full-text stage was run).

Decisions are resolved with :mod:`reviewlib.decisions` when that module
provides ``included``; otherwise from the decision history with the same rule:
a resolution beats humans, agreeing humans or a single human beat rules, rules
count only where no human decided.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from .errors import StoreError

logger = logging.getLogger(__name__)

STAGE_SCREENING = "title-abstract"
STAGE_FULL_TEXT = "full-text"
#: Key used for exclusions recorded without a reason.
NO_REASON = "reason not stated"
#: Label of records in the store that no recorded search found.
UNLINKED_SOURCE = "other (no search recorded)"


class PrismaCountError(StoreError):
    """The PRISMA counts do not add up (the store is inconsistent or a count is wrong)."""


def source_label(source: str) -> str:
    """A reader-facing label for a search source string.

    Parameters
    ----------
    source : str
        The ``searches.source`` value: ``'pubmed'``, ``'snapshot'``, ``'ris:<file>'``...

    Returns
    -------
    str
        ``'PubMed'``, ``'PubMed (offline snapshot)'``, ``'RIS file: <file>'``...

    Examples
    --------
    >>> source_label("snapshot")
    'PubMed (offline snapshot)'
    >>> source_label("ris:embase.ris")
    'RIS file: embase.ris'
    """
    fixed = {"pubmed": "PubMed", "snapshot": "PubMed (offline snapshot)", "openalex": "OpenAlex"}
    if source in fixed:
        return fixed[source]
    kind, sep, rest = str(source).partition(":")
    names = {"ris": "RIS file", "medline": "MEDLINE file", "openalex": "OpenAlex", "pubmed": "PubMed",
             "csv": "CSV file"}
    if sep and kind.lower() in names:
        return f"{names[kind.lower()]}: {rest}"
    return str(source)


@dataclass
class PrismaCounts:
    """The numbers of a PRISMA 2020 flow diagram.

    Attributes
    ----------
    identified : dict[str, int]
        Records identified per source label (``source_label``), in search order.
    duplicates_removed : int
        Records removed as duplicates before screening.
    duplicates_merged_by_store, duplicates_removed_by_dedup : int
        The two parts of ``duplicates_removed``: the same record found by several
        sources, and duplicates found by :mod:`reviewlib.dedup`.
    screened : int
        Records screened on title and abstract.
    excluded_screening : int
        Records excluded at title-abstract.
    excluded_screening_reasons : dict[str, int]
        Reason key -> records, largest first.
    awaiting_screening : int
        Screened records without a resolved title-abstract decision yet.
    sought : int
        Reports sought for retrieval (title-abstract includes).
    not_assessed : int
        Reports sought but not (yet) assessed at full text.
    assessed : int
        Reports assessed for eligibility.
    excluded_full_text : int
        Reports excluded at full text.
    excluded_full_text_reasons : dict[str, int]
        Reason key -> reports, largest first.
    awaiting_full_text : int
        Assessed reports whose full-text decision is unresolved (maybe, disagreement).
    included : int
        Studies (reports) included in the review.
    full_text_stage : bool
        Whether any full-text decision exists in the store.
    notes : list[str]
        How the counts were made where a choice was needed (shown under the diagram).
    """

    identified: dict[str, int] = field(default_factory=dict)
    duplicates_removed: int = 0
    duplicates_merged_by_store: int = 0
    duplicates_removed_by_dedup: int = 0
    screened: int = 0
    excluded_screening: int = 0
    excluded_screening_reasons: dict[str, int] = field(default_factory=dict)
    awaiting_screening: int = 0
    sought: int = 0
    not_assessed: int = 0
    assessed: int = 0
    excluded_full_text: int = 0
    excluded_full_text_reasons: dict[str, int] = field(default_factory=dict)
    awaiting_full_text: int = 0
    included: int = 0
    full_text_stage: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def identified_total(self) -> int:
        """Records identified, summed over sources."""
        return int(sum(self.identified.values()))

    def to_dict(self) -> dict[str, Any]:
        """The counts as a plain dict (JSON-ready), with ``identified_total`` added."""
        out = asdict(self)
        out["identified_total"] = self.identified_total
        return out

    def check(self) -> "PrismaCounts":
        """Verify that the boxes add up; returns ``self`` so calls can chain.

        Raises
        ------
        PrismaCountError
            On the first identity that fails, with both sides in the message.
        """
        identities = [
            ("identified - duplicates removed == screened",
             self.identified_total - self.duplicates_removed, self.screened),
            ("duplicates removed == merged by store + removed by dedup",
             self.duplicates_removed, self.duplicates_merged_by_store + self.duplicates_removed_by_dedup),
            ("screened - excluded - awaiting == reports sought",
             self.screened - self.excluded_screening - self.awaiting_screening, self.sought),
            ("sum of title-abstract exclusion reasons == records excluded",
             sum(self.excluded_screening_reasons.values()), self.excluded_screening),
            ("reports sought - not assessed == reports assessed", self.sought - self.not_assessed, self.assessed),
            ("assessed - excluded at full text - awaiting == included",
             self.assessed - self.excluded_full_text - self.awaiting_full_text, self.included),
            ("sum of full-text exclusion reasons == reports excluded",
             sum(self.excluded_full_text_reasons.values()), self.excluded_full_text),
        ]
        for name, left, right in identities:
            if left != right:
                raise PrismaCountError(f"PRISMA counts do not add up: {name} fails ({left} != {right}); "
                                       "recount from the store with prisma.counts(store)")
        negatives = [k for k, v in self.to_dict().items() if isinstance(v, int) and not isinstance(v, bool) and v < 0]
        if negatives:
            raise PrismaCountError(f"PRISMA counts are negative for {', '.join(negatives)}; "
                                   "recount from the store with prisma.counts(store)")
        return self


# -- decisions ------------------------------------------------------------
def _optional_module(name: str):
    """Import a sibling module that another engineer may not have written yet."""
    try:
        return importlib.import_module(f"reviewlib.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"reviewlib.{name}":
            raise
        return None


def _latest_per_reviewer(history: pd.DataFrame, stage: str) -> pd.DataFrame:
    """Latest decision per record and reviewer at ``stage``, from the full history."""
    frame = history[history["stage"] == stage]
    if frame.empty:
        return frame
    sort = ["created_at", "decision_id"] if "decision_id" in frame else ["created_at"]
    frame = frame.sort_values(sort, kind="stable")
    return frame.groupby(["record_id", "reviewer"], sort=False).tail(1)


def resolve_decisions(current: pd.DataFrame) -> pd.DataFrame:
    """Resolve per-reviewer decisions into one decision per record.

    Parameters
    ----------
    current : pandas.DataFrame
        Latest decision per record and reviewer at one stage (columns record_id,
        reviewer, decision, reason, kind, created_at), e.g. from
        ``reviewlib.decisions.current_decisions``.

    Returns
    -------
    pandas.DataFrame
        Columns record_id, decision ('include', 'exclude' or 'undecided'),
        reason, basis ('resolution', 'human', 'agreed', 'rule', 'conflict').
        A resolution beats humans; agreeing humans or a single human beat rules;
        rules count only where no human decided; 'maybe'/'unsure' are undecided.
    """
    rows = []
    if current is None or current.empty:
        return pd.DataFrame(columns=["record_id", "decision", "reason", "basis"])
    sort = [c for c in ("created_at", "decision_id") if c in current]
    for record_id, group in current.sort_values(sort, kind="stable").groupby("record_id", sort=False):
        kinds = group["kind"].fillna("human")
        resolution = group[kinds == "resolution"]
        humans = group[~kinds.isin(["rule", "resolution"])]
        if not resolution.empty:
            chosen, basis = resolution.iloc[[-1]], "resolution"
        elif not humans.empty:
            calls = set(humans["decision"])
            if len(calls) > 1:
                rows.append((record_id, "undecided", None, "conflict"))
                continue
            chosen, basis = humans.iloc[[-1]], "human" if len(humans) == 1 else "agreed"
        else:
            chosen, basis = group[kinds == "rule"].iloc[[-1]], "rule"
        decision = chosen["decision"].iloc[0]
        if decision not in ("include", "exclude"):
            decision = "undecided"
        reason = chosen["reason"].iloc[0] if decision == "exclude" else None
        rows.append((record_id, decision, reason, basis))
    return pd.DataFrame(rows, columns=["record_id", "decision", "reason", "basis"])


def stage_decisions(store, stage: str) -> pd.DataFrame:
    """One resolved decision per record at ``stage`` (see :func:`resolve_decisions`).

    Uses ``reviewlib.decisions.current_decisions`` and ``included`` when that
    module exists (the include set is then exactly ``decisions.included``);
    otherwise reads ``store.decisions()`` directly.

    Parameters
    ----------
    store : reviewlib.store.ReviewStore
        The review store.
    stage : str
        ``'title-abstract'`` or ``'full-text'``.
    """
    decisions = _optional_module("decisions")
    if decisions is not None and hasattr(decisions, "current_decisions") and hasattr(decisions, "included"):
        current = decisions.current_decisions(store, stage=stage)
        resolved = resolve_decisions(current)
        shared_includes = set(decisions.included(store, stage=stage))
        mine = set(resolved.loc[resolved["decision"] == "include", "record_id"])
        if mine != shared_includes:
            logger.warning("prisma: %d records resolve differently from reviewlib.decisions.included at %s; "
                           "following reviewlib.decisions", len(mine ^ shared_includes), stage)
            is_in = resolved["record_id"].isin(shared_includes)
            resolved.loc[is_in, ["decision", "reason"]] = ["include", None]
            resolved.loc[~is_in & (resolved["decision"] == "include"), "decision"] = "undecided"
            missing = shared_includes - set(resolved["record_id"])
            if missing:
                extra = pd.DataFrame({"record_id": sorted(missing), "decision": "include", "reason": None,
                                      "basis": "shared"})
                resolved = pd.concat([resolved, extra], ignore_index=True)
        return resolved
    return resolve_decisions(_latest_per_reviewer(store.decisions(), stage))


# -- counting -------------------------------------------------------------
def _reason_counts(resolved: pd.DataFrame) -> dict[str, int]:
    reasons = resolved.loc[resolved["decision"] == "exclude", "reason"]
    reasons = reasons.map(lambda r: str(r).strip() if isinstance(r, str) and str(r).strip() else NO_REASON)
    counted = reasons.value_counts()
    return {str(k): int(v) for k, v in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))}


def _dedup_removed(store, notes: list[str]) -> set[str]:
    """Record ids that the saved deduplication result removed (empty when none saved)."""
    dedup = _optional_module("dedup")
    if dedup is None or not hasattr(dedup, "load"):
        notes.append("no deduplication module available: duplicates removed by dedup counted as 0")
        return set()
    result = dedup.load(store)
    if result is None:
        notes.append("no saved deduplication result in the store: duplicates removed by dedup counted as 0")
        return set()
    audit = getattr(result, "audit", None)
    if audit is not None and len(audit) and {"record_id", "kept"} <= set(audit.columns):
        removed = set(audit.loc[~audit["kept"].astype(bool), "record_id"].astype(str))
        if len(removed) != int(result.n_removed):
            notes.append(f"dedup audit lists {len(removed)} removed records but n_removed is "
                         f"{int(result.n_removed)}; the audit was used")
        return removed
    # No audit: fall back on the unique records the result kept.
    kept = getattr(result, "records", None)
    if kept is not None and "record_id" in getattr(kept, "columns", []):
        all_ids = set(store.records()["record_id"])
        return all_ids - set(kept["record_id"].astype(str))
    raise PrismaCountError("saved deduplication result has neither an audit nor records with record_id; "
                           "rerun dedup.deduplicate and dedup.save")


def counts(store) -> PrismaCounts:
    """Count every box of the PRISMA 2020 flow diagram from the review store.

    Parameters
    ----------
    store : reviewlib.store.ReviewStore
        The review store (searches, record sources, dedup result, decisions).

    Returns
    -------
    PrismaCounts
        Checked counts (:meth:`PrismaCounts.check` has passed) with notes.

    Raises
    ------
    PrismaCountError
        If the counts do not add up.

    Examples
    --------
    >>> c = counts(ReviewStore("results/car-t-autoimmune/review.sqlite"))   # doctest: +SKIP
    >>> c.screened, c.included                                              # doctest: +SKIP
    """
    notes: list[str] = []
    records = store.records()
    all_ids = list(records["record_id"])
    sources = store.record_sources()

    identified: dict[str, int] = {}
    links = 0
    for source in dict.fromkeys(sources["source"]):  # search order, each source once
        n = int(sources.loc[sources["source"] == source, "record_id"].nunique())
        label = source_label(source)
        identified[label] = identified.get(label, 0) + n
        links += n
    unlinked = set(all_ids) - set(sources["record_id"])
    if unlinked:
        identified[UNLINKED_SOURCE] = len(unlinked)
        links += len(unlinked)
        notes.append(f"{len(unlinked)} records in the store are linked to no search: counted as "
                     f"'{UNLINKED_SOURCE}'")
    merged = links - len(all_ids)

    removed = _dedup_removed(store, notes) & set(all_ids)
    screened_ids = [r for r in all_ids if r not in removed]
    screened_set = set(screened_ids)

    ta = stage_decisions(store, STAGE_SCREENING)
    stray = set(ta["record_id"]) - screened_set
    if stray:
        notes.append(f"{len(stray)} title-abstract decisions on duplicates or unknown records were ignored")
    ta = ta[ta["record_id"].isin(screened_set)]
    ta_included = set(ta.loc[ta["decision"] == "include", "record_id"])
    ta_excluded = ta[ta["decision"] == "exclude"]

    ft_all = stage_decisions(store, STAGE_FULL_TEXT)
    full_text_stage = not ft_all.empty
    if full_text_stage:
        stray = set(ft_all["record_id"]) - ta_included
        if stray:
            notes.append(f"{len(stray)} full-text decisions on records not included at title-abstract "
                         "were ignored")
        ft = ft_all[ft_all["record_id"].isin(ta_included)]
        assessed = set(ft["record_id"])
        ft_excluded = ft[ft["decision"] == "exclude"]
        included = int((ft["decision"] == "include").sum())
        awaiting_ft = int((ft["decision"] == "undecided").sum())
        ft_reasons = _reason_counts(ft)
        notes.append("reports assessed = title-abstract includes with a full-text decision")
    else:
        assessed = ta_included
        ft_excluded = ta.iloc[0:0]
        included = len(ta_included)
        awaiting_ft = 0
        ft_reasons = {}
        notes.append("no full-text stage recorded: reports assessed and studies included are the "
                     "title-abstract includes")

    result = PrismaCounts(
        identified=identified,
        duplicates_removed=merged + len(removed),
        duplicates_merged_by_store=merged,
        duplicates_removed_by_dedup=len(removed),
        screened=len(screened_ids),
        excluded_screening=len(ta_excluded),
        excluded_screening_reasons=_reason_counts(ta),
        awaiting_screening=len(screened_ids) - len(ta_included) - len(ta_excluded),
        sought=len(ta_included),
        not_assessed=len(ta_included) - len(assessed),
        assessed=len(assessed),
        excluded_full_text=len(ft_excluded),
        excluded_full_text_reasons=ft_reasons,
        awaiting_full_text=awaiting_ft,
        included=included,
        full_text_stage=full_text_stage,
        notes=notes,
    )
    logger.info("PRISMA: %d identified, %d duplicates, %d screened, %d included",
                result.identified_total, result.duplicates_removed, result.screened, result.included)
    return result.check()
