"""PRISMA 2020 flow counts, drawn from the review store (never typed in).

:func:`counts` reads the store (searches and the records they found, the saved
deduplication result, and the screening decisions) and returns a
:class:`PrismaCounts`; :meth:`PrismaCounts.check` verifies that the boxes add
up.  :func:`reviewlib.report.figures.prisma_flow` draws the diagram from these counts.

How each box is counted
-----------------------
- *Records identified*, per source: distinct records linked to the searches of
  that source, grouped as PRISMA 2020 does into *Databases* (PubMed, files) and
  *Registers* (ClinicalTrials.gov; :attr:`PrismaCounts.registers`) (``store.record_sources()``); records in the store that no search
  found are listed as ``"other (no search recorded)"``.  With ``search_ids``
  (the searches of one run), only those searches and the records they found
  count, so a run whose query changed is not counted with the old query's records.
- *Duplicates removed*: records found by several sources (merged by the store
  on PMID/DOI) plus those the saved :mod:`reviewlib.screening.dedup` result removed.
- *Records screened*: the distinct records left after deduplication.
- *Records excluded* (title-abstract): records whose resolved title-abstract
  decision is ``exclude``, counted per reason key; *awaiting*: screened records
  with no resolved decision yet (none, ``maybe``/``unsure``, or a disagreement).
- *Reports sought*: records included at title-abstract.  *Reports assessed*:
  those with a resolved full-text decision; when no full-text decision exists
  at all, the title-abstract includes stand for the assessed reports (a note
  says so).  *Studies included*: resolved full-text includes (or the
  title-abstract includes when no full-text stage was run).

One source of truth: the screening set is :func:`reviewlib.screening.dedup.screening_records`
and each record's decision is :func:`reviewlib.screening.decisions.final_decisions`
(resolution > agreeing or single human > rules where no human decided).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import pandas as pd

from ..errors import InputError, StoreError

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
    fixed = {"pubmed": "PubMed", "snapshot": "PubMed (offline snapshot)", "openalex": "OpenAlex",
             "ctgov": "ClinicalTrials.gov", "ctgov-snapshot": "ClinicalTrials.gov (offline snapshot)"}
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
        sources, and duplicates found by :mod:`reviewlib.screening.dedup`.
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
    registers : list[str]
        The labels of ``identified`` that are trial registers (PRISMA 2020's "Registers");
        the other labels are databases.
    included_registrations : int
        Of ``included``, the records a register search found (registrations, not publications).
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
    registers: list[str] = field(default_factory=list)
    included_registrations: int = 0

    @property
    def identified_total(self) -> int:
        """Records identified, summed over sources."""
        return int(sum(self.identified.values()))

    @property
    def identified_databases(self) -> int:
        """Records identified from databases (every source that is not a register)."""
        return int(sum(v for k, v in self.identified.items() if k not in self.registers))

    @property
    def identified_registers(self) -> int:
        """Records identified from trial registers (ClinicalTrials.gov)."""
        return int(sum(v for k, v in self.identified.items() if k in self.registers))

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
UNDECIDED = ("maybe", "unsure", "conflict")


def stage_decisions(store, stage: str) -> pd.DataFrame:
    """One resolved decision per record at ``stage``, from :func:`reviewlib.screening.decisions.final_decisions`.

    The resolution rule lives there (resolution > agreeing or single human >
    rules where no human decided; undone decisions are gone); this only maps
    ``maybe``/``unsure``/``conflict`` to ``'undecided'``.

    Parameters
    ----------
    store : reviewlib.store.ReviewStore
        The review store.
    stage : str
        ``'title-abstract'`` or ``'full-text'``.

    Returns
    -------
    pandas.DataFrame
        record_id, decision ('include', 'exclude', 'undecided'), reason, basis.
    """
    from ..screening import decisions
    final = decisions.final_decisions(store, stage=stage)
    out = final[["record_id", "decision", "reason", "basis"]].copy()
    out["decision"] = [d if d in ("include", "exclude") else "undecided" for d in out["decision"]]
    return out


# -- counting -------------------------------------------------------------
def _first_reason(reason) -> str:
    """The reason key an exclusion is counted under: the first of agreeing reviewers' reasons."""
    if not isinstance(reason, str) or not reason.strip():
        return NO_REASON
    return reason.split(";")[0].strip() or NO_REASON


def _reason_counts(resolved: pd.DataFrame) -> dict[str, int]:
    reasons = resolved.loc[resolved["decision"] == "exclude", "reason"].map(_first_reason)
    counted = reasons.value_counts()
    return {str(k): int(v) for k, v in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))}


def _screening_ids(store, all_ids: list[str], notes: list[str]) -> list[str]:
    """The records a reviewer screens: :func:`reviewlib.screening.dedup.screening_records` (store order)."""
    from ..screening import dedup
    # the ids dedup removed, from its audit table alone: dedup.load and screening_records decode every
    # record (20 s at 100,000) for the same answer (screening_records = the store's records less these)
    removed = dedup._latest_removed_ids(store)
    if removed is None:
        notes.append("no saved deduplication result in the store: duplicates removed by deduplication counted as 0")
        return list(all_ids)
    return [r for r in all_ids if r not in removed]


def _run_scope(store, search_ids: Iterable[int], records: pd.DataFrame,
               sources: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The records and record-source links of the given searches only (unknown ids refused)."""
    wanted = [int(i) for i in search_ids]
    known = set(store.searches()["search_id"].astype(int))
    unknown = [i for i in wanted if i not in known]
    if unknown:
        raise InputError(f"search id(s) {', '.join(map(str, unknown))} not in the review store {store.path} "
                         f"(searches: {', '.join(map(str, sorted(known))) or 'none'}): pass the run's search ids")
    sources = sources[sources["search_id"].isin(wanted)]
    return records[records["record_id"].isin(set(sources["record_id"]))], sources


def counts(store, search_ids: Iterable[int] | None = None) -> PrismaCounts:
    """Count every box of the PRISMA 2020 flow diagram from the review store.

    Parameters
    ----------
    store : reviewlib.store.ReviewStore
        The review store (searches, record sources, dedup result, decisions).
    search_ids : iterable of int, optional
        The searches of the run being reported (e.g.
        ``living.run_search_ids(store, run_name)``): identified, screened and
        every later box count only the records these searches found.
        Default: every search in the store (and records no search found).

    Returns
    -------
    PrismaCounts
        Checked counts (:meth:`PrismaCounts.check` has passed) with notes.

    Raises
    ------
    PrismaCountError
        If the counts do not add up.
    InputError
        If a search id is not in the store.

    Examples
    --------
    >>> c = counts(ReviewStore("results/car-t-autoimmune/review.sqlite"))   # doctest: +SKIP
    >>> c.screened, c.included                                              # doctest: +SKIP
    """
    notes: list[str] = []
    records = pd.DataFrame({"record_id": pd.Series(store.record_ids(), dtype=object)})  # ids only: none decoded
    sources = store.record_sources()
    if search_ids is not None:
        records, sources = _run_scope(store, search_ids, records, sources)
    all_ids = list(records["record_id"])

    from ..retrieval.registry import REGISTER_SOURCES
    identified: dict[str, int] = {}
    registers: list[str] = []
    links = 0
    for source in dict.fromkeys(sources["source"]):  # search order, each source once
        n = int(sources.loc[sources["source"] == source, "record_id"].nunique())
        label = source_label(source)
        identified[label] = identified.get(label, 0) + n
        links += n
        if source in REGISTER_SOURCES and label not in registers:
            registers.append(label)
    unlinked = set(all_ids) - set(sources["record_id"])
    if unlinked:
        identified[UNLINKED_SOURCE] = len(unlinked)
        links += len(unlinked)
        notes.append(f"{len(unlinked)} records in the store are linked to no search: counted as "
                     f"'{UNLINKED_SOURCE}'")
    merged = links - len(all_ids)

    screened_ids = _screening_ids(store, all_ids, notes)
    screened_set = set(screened_ids)
    removed = set(all_ids) - screened_set

    ta = stage_decisions(store, STAGE_SCREENING)
    if search_ids is not None:  # decisions on records other searches found belong to other runs
        ta = ta[ta["record_id"].isin(set(all_ids))]
    stray = set(ta["record_id"]) - screened_set
    if stray:
        notes.append(f"{len(stray)} title-abstract decisions on duplicates or unknown records were ignored")
    ta = ta[ta["record_id"].isin(screened_set)]
    ta_included = set(ta.loc[ta["decision"] == "include", "record_id"])
    ta_excluded = ta[ta["decision"] == "exclude"]
    several = int(ta_excluded["reason"].map(lambda r: isinstance(r, str) and ";" in r).sum())
    if several:
        notes.append(f"{several} records excluded with several reasons are counted under the first")

    ft_all = stage_decisions(store, STAGE_FULL_TEXT)
    if search_ids is not None:
        ft_all = ft_all[ft_all["record_id"].isin(set(all_ids))]
    from ..screening.decisions import FULL_TEXT, final_include_set
    stage, included_ids = final_include_set(ta, ft_all)  # the review's one include rule
    full_text_stage = stage == FULL_TEXT
    if full_text_stage:
        stray = set(ft_all["record_id"]) - ta_included
        if stray:
            notes.append(f"{len(stray)} full-text decisions on records not included at title-abstract "
                         "were ignored")
        ft = ft_all[ft_all["record_id"].isin(ta_included)]
        assessed = set(ft["record_id"])
        ft_excluded = ft[ft["decision"] == "exclude"]
        awaiting_ft = int((ft["decision"] == "undecided").sum())
        ft_reasons = _reason_counts(ft)
        notes.append("reports assessed = title-abstract includes with a full-text decision")
    else:
        assessed = ta_included
        ft_excluded = ta.iloc[0:0]
        awaiting_ft = 0
        ft_reasons = {}
        notes.append("no full-text stage recorded: reports assessed and studies included are the "
                     "title-abstract includes")
    included = len(included_ids)

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
        registers=registers,
        included_registrations=len(set(included_ids) & set(
            sources.loc[sources["source"].isin(REGISTER_SOURCES), "record_id"])),
    )
    logger.info("PRISMA: %d identified, %d duplicates, %d screened, %d included",
                result.identified_total, result.duplicates_removed, result.screened, result.included)
    return result.check()
