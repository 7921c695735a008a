"""Living review: what changed between two runs of the same protocol.

Each run of ``reviewlib run`` registers the search(es) it made in the review
store (table ``living_runs``) and saves, in its results folder, the PMIDs it
matched and the PMIDs it included (``pmids.json``).  The next run compares
itself with the previous complete run of the same review and reports:

* new records (matched now, not before);
* records no longer matched by the query (matched before, not now);
* included studies that dropped out (included before, not included now) -
  the loud one: it is written to the manifest and shown on every HTML page.

Online, a rerun of an unchanged protocol fetches only what PubMed added since
the previous run (``since``, passed to :func:`reviewlib.retrieval.fetch.run_search` as
``mindate`` with ``datetype='edat'``).  Such an incremental search cannot
notice records that stopped matching; its record set is the previous full
search plus every incremental search since (see :func:`run_search_ids`).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from ..atomic import write_text
from ..screening import decisions
from ..screening.decisions import FULL_TEXT, TITLE_ABSTRACT, final_included_ids, final_stage  # the one include rule
from ..store import ReviewStore, utcnow

logger = logging.getLogger(__name__)

PMIDS_FILE = "pmids.json"
COUNTS_FILE = "counts.json"
MANIFEST_FILE = "manifest.json"

RUNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS living_runs (
    run_name TEXT NOT NULL,            -- the run id (results/<review>/<run-id>) or 'interactive'
    search_id INTEGER NOT NULL,
    incremental INTEGER NOT NULL DEFAULT 0,   -- 1 when the search only fetched records added since a date
    since TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_name, search_id)
);
"""


# -- which records belong to a run -------------------------------------------
def register_search(store: ReviewStore, run_name: str, search_id: int, *, since: str | None = None) -> None:
    """Note that ``run_name`` made search ``search_id`` (incremental when ``since`` is given).

    Parameters
    ----------
    store : ReviewStore
        The review store.
    run_name : str
        The run's id (or ``'interactive'`` in JupyterLab).
    search_id : int
        The search returned by :func:`reviewlib.retrieval.fetch.run_search`.
    since : str, optional
        The date the search started from, for an incremental (living) update.
    """
    store.ensure_schema(RUNS_SCHEMA)
    with store.transaction() as con:
        con.execute("INSERT OR REPLACE INTO living_runs(run_name, search_id, incremental, since, created_at) "
                    "VALUES(?, ?, ?, ?, ?)", (run_name, int(search_id), int(bool(since)), since, utcnow()))


def run_search_ids(store: ReviewStore, run_name: str) -> list[int]:
    """The searches whose records make up ``run_name``'s record set.

    Per kind of source (bibliographic databases; trial registers, see
    :data:`reviewlib.retrieval.registry.REGISTER_SOURCES`): the run's latest
    search of that kind; if it is incremental, also every search of that kind
    back to (and including) the latest full one before it.  Without a
    registered search, the store's latest complete search.
    """
    from ..retrieval.registry import REGISTER_SOURCES
    store.ensure_schema(RUNS_SCHEMA)
    rows = store.connection.execute(
        "SELECT l.search_id, l.incremental, s.source FROM living_runs l LEFT JOIN searches s USING(search_id) "
        "ORDER BY l.search_id").fetchall()
    mine_all = _run_ids(store, run_name)
    mine = [r["search_id"] for r in rows if r["search_id"] in mine_all]
    if not mine:
        row = store.connection.execute(
            "SELECT search_id FROM searches WHERE status='complete' ORDER BY search_id DESC LIMIT 1").fetchone()
        if row is None:
            row = store.connection.execute("SELECT MAX(search_id) AS search_id FROM searches").fetchone()
        return [int(row["search_id"])] if row and row["search_id"] is not None else []
    chosen: list[int] = []
    for register in (False, True):
        kind = [r for r in rows if (r["source"] in REGISTER_SOURCES) == register]
        last = max((r["search_id"] for r in kind if r["search_id"] in mine_all), default=None)
        if last is None:
            continue
        for r in reversed([r for r in kind if r["search_id"] <= last]):
            chosen.append(int(r["search_id"]))
            if not r["incremental"]:
                break
    return sorted(chosen)


def _run_ids(store: ReviewStore, run_name: str) -> set[int]:
    return {int(r["search_id"]) for r in store.connection.execute(
        "SELECT search_id FROM living_runs WHERE run_name=?", (run_name,))}


def run_records(store: ReviewStore, run_name: str) -> pd.DataFrame:
    """The records table of a run: the union of the records of :func:`run_search_ids`.

    Returns
    -------
    pandas.DataFrame
        ``record_id`` then the records columns, each record once.
    """
    return union_of_searches(store, run_name, lambda search_id: store.records(search_id=search_id))


def union_of_searches(store: ReviewStore, run_name: str, read: Callable[[int], pd.DataFrame]) -> pd.DataFrame:
    """``read(search_id)`` (a table with ``record_id``) for each of :func:`run_search_ids`, joined: each record
    once, at its last search (an empty ``read(-1)`` when the run searched nothing)."""
    frames = [read(s) for s in run_search_ids(store, run_name)]
    if not frames:
        return read(-1)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame.drop_duplicates("record_id", keep="last").reset_index(drop=True)


#: The last :func:`run_record_ids` read in this process: ``(key, ids)`` (the notebooks of a run share a
#: kernel, and each opens the store anew).
_RUN_IDS_MEMO: list = []


def run_record_ids(store: ReviewStore, run_name: str) -> list[str]:
    """The ``record_id`` column of :func:`run_records` (same order), read without decoding any record.

    Kept in this process while the run's searches and the store's records are unchanged (every write
    of records, by any process, renews the store's ``records_version``): a notebook asks several
    times, 0.3 s each at 100,000 records.
    """
    from ..store import RECORDS_VERSION
    searches = run_search_ids(store, run_name)
    version = store.get_meta(RECORDS_VERSION)
    key = (str(Path(store.path).resolve()), tuple(searches), version)
    if version is not None and _RUN_IDS_MEMO and _RUN_IDS_MEMO[0] == key:
        return list(_RUN_IDS_MEMO[1])
    ids = [r for s in searches for r in store.record_ids(search_id=s)]
    ids = list(reversed(dict.fromkeys(reversed(ids))))      # each once, at its last search (as run_records)
    _RUN_IDS_MEMO[:] = [key, ids] if version is not None else []
    return list(ids)


def run_included(store: ReviewStore, run_name: str, stage: str | None = None) -> list[str]:
    """The record ids of ``run_name``'s records that the review includes, in record order.

    Parameters
    ----------
    stage : str, optional
        Default (None): the final include set (:func:`final_included_ids`);
        ``'title-abstract'`` or ``'full-text'``: that stage's includes only.
    """
    ids = run_record_ids(store, run_name)
    inc = _included_for(store, ids, stage)
    return [r for r in ids if r in inc]


def run_included_records(store: ReviewStore, run_name: str, stage: str | None = None) -> pd.DataFrame:
    """The records table of the included records of ``run_name`` (see :func:`run_included`).

    Only the included records are decoded (a few thousand of a 100,000-record review), in
    :func:`run_records`' order.
    """
    keep = run_included(store, run_name, stage)
    frame = store.records_by_id(keep)
    order = {r: i for i, r in enumerate(keep)}
    return frame.iloc[sorted(range(len(frame)), key=lambda i: order[frame["record_id"].iat[i]])] \
        .reset_index(drop=True)


def _included_for(store: ReviewStore, record_ids: Iterable[str], stage: str | None) -> set[str]:
    if stage is None:
        return set(final_included_ids(store, record_ids))
    return set(decisions.included(store, stage=stage))


@dataclass
class FullTextAssessment:
    """Where the full-text stage of a run stands.

    Attributes
    ----------
    stage : str
        The stage of the final include set (:func:`final_stage`).
    sought : int
        Reports of the records included at title-abstract.
    assessed : int
        Those with a full-text decision.
    included, excluded, undecided : int
        The assessed reports by resolved full-text decision (undecided: maybe,
        unsure or a disagreement).
    reasons : dict[str, int]
        Exclusion-reason key -> reports excluded at full text, largest first (a
        report excluded with several reasons counts under the first, as in PRISMA).
    excluded_reports : dict[str, str]
        Record id -> the reason key it is counted under, for every report
        excluded at full text (in decision order).
    """

    stage: str = TITLE_ABSTRACT
    sought: int = 0
    assessed: int = 0
    included: int = 0
    excluded: int = 0
    undecided: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    excluded_reports: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """For the manifest."""
        return asdict(self)


def full_text_assessment(store: ReviewStore, record_ids: Iterable[str]) -> FullTextAssessment:
    """Count the full-text stage for ``record_ids`` (one run's records; duplicates may be among them).

    Only reports included at title-abstract count: a full-text decision on any
    other record is not part of the stage (PRISMA ignores it too).
    """
    wanted = set(record_ids)
    ta = set(decisions.included(store, TITLE_ABSTRACT)) & wanted
    ft = decisions.final_decisions(store, FULL_TEXT)
    ft = ft[ft["record_id"].isin(ta)]
    excluded = ft[ft["decision"] == "exclude"]
    keys = [(r.split(";")[0].strip() if isinstance(r, str) else "") or "reason not stated"
            for r in excluded["reason"]]
    counted = pd.Series(keys, dtype=object).value_counts()
    reasons = {str(k): int(v) for k, v in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))}
    n_inc = int((ft["decision"] == "include").sum())
    return FullTextAssessment(stage=final_stage(store, wanted), sought=len(ta), assessed=len(ft),
                              included=n_inc, excluded=len(excluded), undecided=len(ft) - n_inc - len(excluded),
                              reasons=reasons, excluded_reports=dict(zip(excluded["record_id"], keys)))


def run_full_text_assessment(store: ReviewStore, run_name: str) -> FullTextAssessment:
    """:func:`full_text_assessment` of ``run_name``'s records (:func:`run_records`)."""
    return full_text_assessment(store, run_record_ids(store, run_name))


@dataclass
class RunSets:
    """The PMIDs (or record ids) a run matched and included."""

    matched: list[str] = field(default_factory=list)
    included: list[str] = field(default_factory=list)

    @staticmethod
    def digest(ids: Iterable[str]) -> str:
        """SHA-256 of the sorted ids joined by newlines (stable across runs)."""
        return hashlib.sha256("\n".join(sorted(set(map(str, ids)))).encode()).hexdigest()

    def summary(self) -> dict[str, Any]:
        """Counts and hashes, for the manifest."""
        return {"n_matched": len(self.matched), "matched_sha256": self.digest(self.matched),
                "n_included": len(self.included), "included_sha256": self.digest(self.included)}


def _label(record_id: str) -> str:
    return record_id[5:] if record_id.startswith("pmid:") else record_id


def current_sets(store: ReviewStore, run_name: str) -> RunSets:
    """What ``run_name`` matched and, among those, what the review finally includes (:func:`final_included_ids`).

    Ids are PMIDs (``'12345'``), or the store's record id for records without one.
    """
    matched = set(run_record_ids(store, run_name))
    included = final_included_ids(store, matched)
    return RunSets(matched=sorted(_label(r) for r in matched), included=sorted(_label(r) for r in included))


# -- run folders ---------------------------------------------------------------
def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically (temp file in the same folder, then rename)."""
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def save_sets(run_dir: Path, sets: RunSets) -> Path:
    """Save a run's matched and included PMIDs as ``pmids.json`` in its folder."""
    return write_json(Path(run_dir) / PMIDS_FILE, asdict(sets))


def save_run_state(ctx: Any, counts: Any = None) -> None:
    """Save what the run's manifest needs from the store: PMID sets (``pmids.json``) and PRISMA counts.

    Called by the last notebook, whose kernel has the store's state at hand, so
    that ``reviewlib run`` does not compute it again.

    Parameters
    ----------
    ctx : reviewlib.pipeline.ReviewContext
        The notebook's review (store, run name, output folder).
    counts : reviewlib.report.prisma.PrismaCounts or dict, optional
        The PRISMA counts shown in the report.

    Returns nothing (a notebook cell ending with it shows no path).
    """
    import dataclasses
    save_sets(ctx.output_dir, current_sets(ctx.store, ctx.run_name))
    if counts is not None:
        data = dataclasses.asdict(counts) if dataclasses.is_dataclass(counts) else dict(counts)
        write_json(Path(ctx.output_dir) / COUNTS_FILE, data)


def load_sets(run_dir: Path) -> RunSets | None:
    """The ``pmids.json`` of a run folder, or None when it has none."""
    path = Path(run_dir) / PMIDS_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return RunSets(matched=list(data.get("matched", [])), included=list(data.get("included", [])))


def complete_runs(results_root: Path) -> list[tuple[Path, dict]]:
    """The complete runs under ``results/<review>/``, oldest first, with their manifests."""
    runs = []
    root = Path(results_root)
    if not root.is_dir():
        return runs
    for child in root.iterdir():
        if child.is_symlink() or not child.is_dir():
            continue
        path = child / MANIFEST_FILE
        if not path.is_file():
            continue
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            logger.warning("ignoring unreadable manifest %s", path)
            continue
        if manifest.get("status") == "complete":
            runs.append((child, manifest))
    runs.sort(key=lambda item: (str(item[1].get("started_at", "")), item[0].name))
    return runs


def previous_run(results_root: Path, exclude: str | None = None) -> tuple[Path, dict] | None:
    """The latest complete run of a review (other than ``exclude``), or None."""
    runs = [(d, m) for d, m in complete_runs(results_root) if d.name != exclude]
    return runs[-1] if runs else None


# -- the comparison -------------------------------------------------------------
@dataclass
class Changes:
    """What changed since the previous run.

    Attributes
    ----------
    previous_run : str or None
        The run compared with (None for a first run).
    new : list of str
        Matched now, not before.
    gone : list of str
        Matched before, no longer matched by the query.
    dropped_included : list of str
        Included before, not included now (the loud warning).
    newly_included : list of str
        Included now, not before.
    incremental : bool
        True when this run only fetched what was added since the previous one
        (records that stopped matching cannot be seen then).
    """

    previous_run: str | None = None
    new: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    dropped_included: list[str] = field(default_factory=list)
    newly_included: list[str] = field(default_factory=list)
    incremental: bool = False
    #: Why each included study dropped out (record -> one sentence), from :func:`explain_dropped`.
    dropped_causes: dict[str, str] = field(default_factory=dict)

    @property
    def first_run(self) -> bool:
        """True when there was no previous run to compare with."""
        return self.previous_run is None

    @property
    def alarming(self) -> bool:
        """True when an included study dropped out."""
        return bool(self.dropped_included)

    def to_dict(self) -> dict[str, Any]:
        """For the manifest."""
        out = asdict(self)
        out.update(first_run=self.first_run, alarming=self.alarming)
        return out

    def warning(self) -> str | None:
        """The one-line warning when included studies dropped out, else None."""
        if not self.dropped_included:
            return None
        ids = ", ".join(self.dropped_included[:20]) + (" ..." if len(self.dropped_included) > 20 else "")
        why = ("The cause of each is listed under 'Changes since the previous run'." if self.dropped_causes else
               "Check whether the query, the record (retracted, re-indexed) or a decision changed.")
        return (f"{len(self.dropped_included)} included stud{'y' if len(self.dropped_included) == 1 else 'ies'} "
                f"dropped out since run {self.previous_run}: {ids}. {why}")


def compare(previous: RunSets | None, current: RunSets, *, previous_run: str | None = None,
            incremental: bool = False, log: bool = True) -> Changes:
    """Compare a run's sets with the previous run's.

    Parameters
    ----------
    previous : RunSets or None
        The previous run's sets (None for a first run: nothing is new or gone).
    current : RunSets
        This run's sets.
    previous_run : str, optional
        The previous run's id, for the report.
    incremental : bool
        This run fetched only additions; ``gone`` is then always empty.
    log : bool
        Log a warning when included studies dropped out (off where the caller shows it).
    """
    if previous is None:
        return Changes(previous_run=None, incremental=incremental)
    before, now = set(previous.matched), set(current.matched)
    inc_before, inc_now = set(previous.included), set(current.included)
    changes = Changes(previous_run=previous_run or "previous",
                      new=sorted(now - before, key=_sort_key),
                      gone=[] if incremental else sorted(before - now, key=_sort_key),
                      dropped_included=sorted(inc_before - inc_now, key=_sort_key),
                      newly_included=sorted(inc_now - inc_before, key=_sort_key),
                      incremental=incremental)
    if changes.alarming and log:
        logger.warning("LIVING REVIEW: %s", changes.warning())
    return changes


def _cause(final: pd.DataFrame, record_id: str, stage: str) -> str | None:
    rows = final[final["record_id"] == record_id]
    if rows.empty:
        return None
    row = rows.iloc[-1]
    who = row.get("reviewers") or "a reviewer"
    if row["decision"] == "exclude":
        reason = f" ({row['reason']})" if isinstance(row.get("reason"), str) and row["reason"] else ""
        return f"excluded at {stage}{reason} by {who}"
    if row["decision"] == "conflict":
        return f"the reviewers disagree at {stage} ({who}): a conflict to resolve"
    if row["decision"] != "include":
        return f"undecided at {stage} ({row['decision']}, {who})"
    return None


def explain_dropped(changes: Changes, store: ReviewStore) -> Changes:
    """Fill ``changes.dropped_causes``: why each included study dropped out, from the store.

    No longer matched by the query; or the decision that now stands (excluded at full text or at
    title-abstract, with reason and reviewers; a conflict between reviewers; undecided); or no
    decision stands any more (one was undone).
    """
    gone = set(changes.gone)
    if not changes.dropped_included:
        return changes
    finals = {stage: decisions.final_decisions(store, stage) for stage in (FULL_TEXT, TITLE_ABSTRACT)}
    causes = {}
    for label in changes.dropped_included:
        record_id = f"pmid:{label}" if str(label).isdigit() else str(label)
        if label in gone:
            causes[label] = "no longer matched by the query (the query, its date range or the record changed)"
            continue
        cause = _cause(finals[FULL_TEXT], record_id, FULL_TEXT) or _cause(finals[TITLE_ABSTRACT], record_id,
                                                                        TITLE_ABSTRACT)
        causes[label] = cause or "no decision includes it any more (a decision was undone)"
    changes.dropped_causes = causes
    return changes


def _sort_key(value: str) -> tuple[int, str]:
    return (0, f"{int(value):020d}") if value.isdigit() else (1, value)


def compare_with_previous(results_root: Path, store: ReviewStore, run_name: str, *,
                          incremental: bool = False) -> Changes:
    """Compare ``run_name``'s sets (from the store) with the previous complete run in ``results_root``.

    For display (the report notebook): nothing is logged.
    """
    current = current_sets(store, run_name)
    prev = previous_run(results_root, exclude=run_name)
    if prev is None:
        return compare(None, current, incremental=incremental, log=False)
    changes = compare(load_sets(prev[0]), current, previous_run=prev[0].name, incremental=incremental, log=False)
    return explain_dropped(changes, store)


def since_date(manifest: dict) -> str:
    """The date an incremental search starts from: the previous run's start day (``YYYY/MM/DD``).

    The previous run's day itself is included, so nothing added that day is
    missed; records already in the store are merged by PMID.
    """
    started = str(manifest.get("started_at", ""))[:10]
    return started.replace("-", "/")


def run_prisma_counts(store: ReviewStore, run_name: str):
    """PRISMA 2020 counts of ``run_name``: only the records its searches found (see :func:`run_search_ids`).

    The run's page, its manifest and its PRISMA diagram all count through here, so they agree
    even after the query changed and the store holds records an earlier search found.
    """
    from . import prisma
    return prisma.counts(store, search_ids=run_search_ids(store, run_name) or None)

