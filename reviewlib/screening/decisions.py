"""Screening decisions that are never lost.

Every decision a person makes is appended to the review store at the moment it
is made (:meth:`ReviewStore.append_decision`, its own durable transaction).
Nothing is ever updated or deleted: changing one's mind appends a new row,
:func:`undo_last` appends a revoking row (decision ``'undo'``, kind ``'undo'``),
and the current decision is derived from the history.

Kinds of rows: ``'human'`` (a reviewer), ``'rule'`` (protocol rules, reviewer
``'rules'``), ``'resolution'`` (a conflict settled, see
:mod:`reviewlib.screening.agreement`), ``'undo'``.  History is replayed in time order
(``created_at``, then ``decision_id``) per record, reviewer, stage and kind
class (human / resolution / rule): a decision is pushed, an undo pops the
decision it names, so undoing a change of mind brings back the earlier call.

The final decision per record (:func:`final_decisions`) is: the latest
resolution, else the humans' decision when they agree (or only one decided),
else ``conflict``; the rules count only where no human decided.  ``maybe`` and
``unsure`` are undecided; :func:`included` lists final includes.

Decisions move between stores as CSV (:func:`export_csv`, :func:`import_csv`,
and ``reviewlib decisions export|import``), so a second reviewer can screen on
another machine and merge; importing the same file twice adds nothing.
"""
from __future__ import annotations

import argparse
import csv
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd

from ..errors import InputError
from ..textfiles import check_text_file
from ..safe_cells import unguard, write_csv as write_safe_csv
from ..store import ReviewStore, utcnow

logger = logging.getLogger(__name__)

STAGES = ("title-abstract", "full-text")
HUMAN_DECISIONS = ("include", "exclude", "maybe")
RULES_REVIEWER = "rules"
#: Kinds a CSV may carry (rule decisions are recomputed, never imported).
IMPORT_KINDS = ("human", "resolution", "undo")
CSV_COLUMNS = ["record_id", "reviewer", "stage", "decision", "reason", "note", "kind", "created_at"]
CURRENT_COLUMNS = ["record_id", "reviewer", "stage", "decision", "reason", "note", "kind", "created_at",
                   "decision_id"]
FINAL_COLUMNS = ["record_id", "decision", "reason", "basis", "reviewers"]
_UNDO_NOTE = re.compile(r"^undoes (\w+) decision of (\S+)")
#: Store meta key prefix recording a reveal in blind dual screening.
META_REVEALED = "screening.revealed."


def _kind_class(kind: str | None) -> str:
    if kind == "resolution":
        return "resolution"
    if kind == "rule":
        return "rule"
    return "human"


# -- validation -------------------------------------------------------------------
def _check_reviewer(reviewer: Any, *, allow_rules: bool = False) -> str:
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise InputError(f"reviewer name is empty ({reviewer!r}): give the reviewer's name or initials")
    reviewer = reviewer.strip()
    if reviewer == RULES_REVIEWER and not allow_rules:
        raise InputError(f"reviewer name {reviewer!r} is reserved for protocol rules: use a person's name")
    return reviewer


def _check_stage(stage: Any) -> str:
    if stage not in STAGES:
        raise InputError(f"stage {stage!r} is not one of {', '.join(STAGES)}: pick one")
    return stage


def _vocabulary(store: ReviewStore, reasons: Mapping[str, str] | Iterable[str] | None) -> set[str]:
    if reasons is not None:
        return set(reasons)
    from .eligibility import vocabulary
    return set(vocabulary(store))


def reason_required(reasons: Mapping[str, str] | Iterable[str] | None, require_reason: bool = True) -> bool:
    """The one rule, for the screener and for imports: an exclude needs a reason when the review has
    an exclusion-reason vocabulary (PRISMA reports excluded records with reasons), unless turned off."""
    return bool(require_reason and reasons)


def missing_reason(decision: str, reason: str | None, reasons: Mapping[str, str] | Iterable[str] | None,
                   require_reason: bool = True) -> bool:
    """True when ``decision`` is an exclude without the reason :func:`reason_required` asks for."""
    return decision == "exclude" and not reason and reason_required(reasons, require_reason)


def _known_records(store: ReviewStore, ids: Iterable[str]) -> set[str]:
    ids = list(dict.fromkeys(ids))
    known: set[str] = set()
    con = store.connection
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" for _ in chunk)
        known.update(r[0] for r in con.execute(f"SELECT record_id FROM records WHERE record_id IN ({marks})", chunk))
    return known


def record_decision(store: ReviewStore, record_id: str, reviewer: str, decision: str,
                    stage: str = "title-abstract", reason: str | None = None, note: str | None = None, *,
                    kind: str = "human", reasons: Mapping[str, str] | Iterable[str] | None = None) -> int:
    """Validate and append one decision; returns its id once it is durable.

    Parameters
    ----------
    store : ReviewStore
        The review store.
    record_id : str
        A record in the store (``'pmid:123'``).
    reviewer : str
        The person deciding (not ``'rules'``).
    decision : {'include', 'exclude', 'maybe'}
    stage : {'title-abstract', 'full-text'}
    reason : str, optional
        A key of the exclusion-reason vocabulary.
    note : str, optional
        Free text.
    kind : {'human', 'resolution'}
        ``'resolution'`` is written by :func:`reviewlib.screening.agreement.resolve`.
    reasons : mapping or iterable, optional
        The vocabulary; default the one recorded in the store by the rules,
        else the default protocol's.

    Raises
    ------
    InputError
        Unknown decision value, stage, reason key or record id, or an empty
        reviewer: one line, nothing written.
    """
    reviewer = _check_reviewer(reviewer)
    _check_stage(stage)
    if decision not in HUMAN_DECISIONS:
        raise InputError(f"decision {decision!r} is not one of {', '.join(HUMAN_DECISIONS)}: pick one")
    if kind not in ("human", "resolution"):
        raise InputError(f"decision kind {kind!r} is not 'human' or 'resolution'")
    if reason is not None and str(reason).strip() == "":
        reason = None
    if reason is not None:
        vocab = _vocabulary(store, reasons)
        if reason not in vocab:
            raise InputError(f"reason {reason!r} is not in the protocol's exclusion reasons "
                             f"({', '.join(sorted(vocab))}): pick one of them")
    if note is not None and str(note).strip() == "":
        note = None
    if not _known_records(store, [record_id]):
        raise InputError(f"record {record_id!r} is not in the review store {store.path}: "
                         "check the id (e.g. 'pmid:12345') or load the records first")
    decision_id = store.append_decision(record_id, reviewer, stage, decision, reason, note, kind=kind)
    logger.debug("decision %d: %s %s %s (%s)", decision_id, reviewer, decision, record_id, stage)
    return decision_id


# -- deriving the current state ---------------------------------------------------------
def _replay(history: pd.DataFrame) -> pd.DataFrame:
    """The effective rows (not revoked by an undo), oldest first, each with its stack position."""
    if history.empty:
        return history.assign(_top=pd.Series(dtype=bool))
    history = history.sort_values(["created_at", "decision_id"], kind="stable")
    stacks: dict[tuple, list[int]] = {}
    # the columns as lists, zipped (issue 15: to_dict("records") of 100,000 rows was most of the replay)
    n = len(history)
    kinds = history["kind"].tolist()
    notes = history["note"].tolist() if "note" in history.columns else [None] * n
    created = history["created_at"].tolist()
    classes = {kind: _kind_class(kind) for kind in set(kinds)}
    for k, (record_id, reviewer, stage, kind, note) in enumerate(zip(
            history["record_id"].tolist(), history["reviewer"].tolist(), history["stage"].tolist(), kinds, notes)):
        if kind == "undo":
            match = _UNDO_NOTE.match(note) if isinstance(note, str) else None  # NaN when no row has a note
            target_class = _kind_class(match.group(1)) if match else "human"
            stack = stacks.get((record_id, reviewer, stage, target_class), [])
            if not stack:
                continue
            pos = None
            if match:
                pos = next((i for i in range(len(stack) - 1, -1, -1)
                            if created[stack[i]] == match.group(2)), None)
            stack.pop(len(stack) - 1 if pos is None else pos)
            continue
        key = (record_id, reviewer, stage, classes[kind])
        stacks.setdefault(key, []).append(k)
    keep = sorted(k for stack in stacks.values() for k in stack)
    tops = {stack[-1] for stack in stacks.values() if stack}
    out = history.iloc[keep].copy()
    out["_top"] = [k in tops for k in keep]
    return out


def _history(store: ReviewStore, stage: str | None = None) -> pd.DataFrame:
    if stage is None:
        return store.decisions()
    return pd.read_sql_query("SELECT * FROM decisions WHERE stage=? ORDER BY decision_id",
                             store.connection, params=(stage,))


def is_revealed(store: ReviewStore, stage: str = "title-abstract") -> bool:
    """True once decisions at ``stage`` were revealed (see :func:`reviewlib.screening.agreement.reveal`)."""
    return store.get_meta(META_REVEALED + stage) is not None


def current_decisions(store: ReviewStore, stage: str | None = None, reviewer: str | None = None,
                      blind: bool = False) -> pd.DataFrame:
    """The latest effective decision per record, reviewer and stage (and kind class).

    Parameters
    ----------
    store : ReviewStore
    stage : str, optional
        Only this stage.
    reviewer : str, optional
        Without ``blind``: only this reviewer's decisions.  With ``blind``:
        the reviewer whose view this is.
    blind : bool
        Blind dual screening: before the stage is revealed, ``reviewer`` sees
        only their own decisions; after the reveal, everyone's.

    Returns
    -------
    pandas.DataFrame
        record_id, reviewer, stage, decision, reason, note, kind, created_at,
        decision_id.  Undone decisions are gone; a reviewer who also resolved
        a conflict has a 'human' and a 'resolution' row for that record.
    """
    if stage is not None:
        _check_stage(stage)
    if blind and not reviewer:
        raise InputError("blind screening needs the reviewer whose view this is: pass reviewer='name'")
    current = _kept(store, ("current", stage), lambda: _current_all(store, stage))
    if reviewer is not None:
        reviewer = _check_reviewer(reviewer, allow_rules=True)
        if not blind or not is_revealed(store, stage or "title-abstract"):
            return current[current["reviewer"] == reviewer].reset_index(drop=True)
    return current.copy()


def _current_all(store: ReviewStore, stage: str | None) -> pd.DataFrame:
    effective = _replay(_history(store, stage))
    current = effective[effective["_top"]] if not effective.empty else effective
    current = current.reindex(columns=CURRENT_COLUMNS).reset_index(drop=True)
    return current.astype(object).where(current.notna(), None).astype({"decision_id": "int64"})


def _kept(store: ReviewStore, what: tuple, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``compute()`` (``what`` is ``(view, stage)``), kept while the log of that stage is unchanged.

    Kept twice (issue 15): on ``store`` for this process (a notebook derives the current decisions a
    dozen times), and in the store file itself (:mod:`reviewlib.screening.decision_views`), so that
    the next notebook, process or store object reads the frame instead of replaying 100,000 rows.
    Both are keyed by :func:`~reviewlib.screening.decision_views.log_state`, which every append (by
    any connection) and any rewrite of a row changes.  Callers get the kept frame itself: copy before
    changing it."""
    from . import decision_views
    kind, stage = what
    state = decision_views.log_state(store, stage)
    memo = store.__dict__.setdefault("_decisions_memo", {})
    kept = memo.get(what)
    if kept is not None and kept[0] == state:
        return kept[1]
    view = f"{kind}:{stage or '*'}"
    frame = decision_views.read(store, view, state)
    if frame is None:
        frame = compute()
        decision_views.write(store, view, state, frame)
    memo[what] = (state, frame)
    return frame


def history(store: ReviewStore, record_id: str) -> pd.DataFrame:
    """Every row ever written for a record, oldest first, with ``effective`` (not undone) marked."""
    frame = pd.read_sql_query("SELECT * FROM decisions WHERE record_id=? ORDER BY created_at, decision_id",
                              store.connection, params=(record_id,))
    effective = set(_replay(frame)["decision_id"]) if not frame.empty else set()
    frame["effective"] = [d in effective for d in frame["decision_id"]]
    return frame


def undo_last(store: ReviewStore, reviewer: str, stage: str | None = None) -> dict[str, Any] | None:
    """Revoke the reviewer's most recent effective decision by appending an 'undo' row.

    The earlier decision of that reviewer on that record (if any) becomes
    current again.  Returns the undone row (dict), or None when nothing is left
    to undo.

    Raises
    ------
    InputError
        If the reviewer never made a decision (at ``stage``).
    """
    reviewer = _check_reviewer(reviewer)
    frame = _history(store, stage)
    mine = frame[frame["reviewer"] == reviewer]
    if mine.empty:
        known = sorted(set(frame["reviewer"]) - {RULES_REVIEWER})
        raise InputError(f"reviewer {reviewer!r} has no decisions{' at ' + stage if stage else ''} to undo "
                         f"(reviewers: {', '.join(known) or 'none'}): check the name")
    effective = _replay(mine)
    effective = effective[effective["_top"] & (effective["kind"] != "undo")]
    if effective.empty:
        return None
    last = effective.sort_values(["created_at", "decision_id"]).iloc[-1].to_dict()
    store.append_decision(last["record_id"], reviewer, last["stage"], "undo", None,
                          f"undoes {last['kind']} decision of {last['created_at']} ({last['decision']})",
                          kind="undo")
    logger.info("undid %s's %s on %s", reviewer, last["decision"], last["record_id"])
    return {k: last[k] for k in CURRENT_COLUMNS}


def final_decisions(store: ReviewStore, stage: str = "title-abstract",
                    current: pd.DataFrame | None = None) -> pd.DataFrame:
    """One resolved decision per record that has any decision at ``stage``.

    ``current`` may give ``current_decisions(store, stage=stage)`` already computed (the
    screener keeps it incrementally, see :class:`reviewlib.screening.state.DecisionState`).

    Returns
    -------
    pandas.DataFrame
        record_id, decision ('include', 'exclude', 'maybe', 'unsure' or
        'conflict'), reason (exclusion reason key(s), for excludes), basis
        ('resolution', 'agreed', 'single', 'conflict', 'rules'), reviewers (the
        people whose calls it rests on, comma-separated).  Records appear in
        the order of their first current decision.
    """
    _check_stage(stage)
    if current is None:
        return _kept(store, ("final", stage),
                     lambda: final_decisions(store, stage, current=current_decisions(store, stage=stage))).copy()
    if current.empty:
        return pd.DataFrame(columns=FINAL_COLUMNS, dtype=object)
    classes = current["kind"].map(_kind_class)
    # 1. the latest resolution settles a record
    resolution = (current[classes == "resolution"].sort_values(["created_at", "decision_id"], kind="stable")
                  .drop_duplicates("record_id", keep="last"))
    parts = [pd.DataFrame({"record_id": resolution["record_id"], "decision": resolution["decision"],
                           "reason": resolution["reason"], "basis": "resolution",
                           "reviewers": resolution["reviewer"]})]
    settled = set(resolution["record_id"])
    # 2. else the humans: agreed (or single) calls, or a conflict
    humans = current[(classes == "human") & ~current["record_id"].isin(settled)]
    if not humans.empty:
        # a record one person decided is that call (most records: no Python aggregation per record for them)
        alone = ~humans["record_id"].duplicated(keep=False)
        single = humans[alone]
        parts.append(pd.DataFrame({
            "record_id": single["record_id"].to_numpy(),
            "decision": single["decision"].to_numpy(),
            "reason": [r if isinstance(r, str) and r else None for r in single["reason"]],
            "basis": "single",
            "reviewers": single["reviewer"].to_numpy()}))
        settled |= set(single["record_id"])
        several = humans[~alone]
    if not humans.empty and not several.empty:
        by_record = several.groupby("record_id", sort=False)
        agg = by_record.agg(n=("decision", "size"), calls=("decision", "nunique"), decision=("decision", "first"),
                            reviewers=("reviewer", lambda names: ", ".join(sorted(names))),
                            reason=("reason", _joined_reasons))
        conflict = agg["calls"] > 1
        parts.append(pd.DataFrame({
            "record_id": agg.index,
            "decision": agg["decision"].where(~conflict, "conflict").to_numpy(),
            "reason": agg["reason"].where(~conflict, None).to_numpy(),
            "basis": ["conflict" if c else ("single" if n == 1 else "agreed")
                      for c, n in zip(conflict, agg["n"])],
            "reviewers": agg["reviewers"].to_numpy()}))
        settled |= set(agg.index)
    # 3. the rules count only where no human decided
    rules = current[~current["record_id"].isin(settled)].drop_duplicates("record_id", keep="last")
    parts.append(pd.DataFrame({"record_id": rules["record_id"], "decision": rules["decision"],
                               "reason": rules["reason"], "basis": "rules", "reviewers": RULES_REVIEWER}))
    final = pd.concat([p.astype(object) for p in parts if not p.empty], ignore_index=True)
    order = {r: i for i, r in enumerate(pd.unique(current["record_id"]))}
    final = final.sort_values("record_id", key=lambda ids: ids.map(order), kind="stable").reset_index(drop=True)
    final = final.reindex(columns=FINAL_COLUMNS)
    return final.astype(object).where(final.notna(), None)


def _joined_reasons(reasons: pd.Series) -> str | None:
    """The distinct non-empty reason keys of agreeing reviewers, in decision order, '; '-joined."""
    return "; ".join(r for r in dict.fromkeys(reasons) if isinstance(r, str) and r) or None


def included(store: ReviewStore, stage: str = "title-abstract") -> list[str]:
    """Record ids finally included at ``stage`` (resolution > agreed humans > single human > rules), sorted.

    One stage only; the review's include set is :func:`final_included_ids`.
    """
    final = final_decisions(store, stage)
    return sorted(final.loc[final["decision"] == "include", "record_id"])


# -- the review's include set: the one rule every step uses ------------------------------
TITLE_ABSTRACT, FULL_TEXT = STAGES


def final_include_set(title_abstract: pd.DataFrame, full_text: pd.DataFrame) -> tuple[str, set[str]]:
    """THE rule for the review's include set, on resolved decisions of one set of records.

    Once any of the records has a full-text decision, the records included at
    title-abstract AND at full text (a report not yet assessed at full text is
    not included yet, as in the PRISMA diagram); before that, the title-abstract
    includes.  :func:`final_included_ids`, the PRISMA counts and the run's
    manifest all come from here.

    Parameters
    ----------
    title_abstract, full_text : pandas.DataFrame
        Resolved decisions (``record_id``, ``decision``) at each stage, already
        restricted to the records in question (one run's, say).

    Returns
    -------
    stage : str
        ``'full-text'`` or ``'title-abstract'``: the stage whose decisions decide.
    included : set of str
        The included record ids.
    """
    included_ta = set(title_abstract.loc[title_abstract["decision"] == "include", "record_id"])
    if full_text.empty:
        return TITLE_ABSTRACT, included_ta
    return FULL_TEXT, included_ta & set(full_text.loc[full_text["decision"] == "include", "record_id"])


def _restricted(frame: pd.DataFrame, record_ids: set[str] | None) -> pd.DataFrame:
    return frame if record_ids is None else frame[frame["record_id"].isin(record_ids)]


def final_stage(store: ReviewStore, record_ids: Iterable[str] | None = None) -> str:
    """The stage whose decisions make the include set of ``record_ids`` (all records when None).

    See :func:`final_include_set`.
    """
    wanted = None if record_ids is None else set(record_ids)
    return FULL_TEXT if len(_restricted(final_decisions(store, FULL_TEXT), wanted)) else TITLE_ABSTRACT


def final_included_ids(store: ReviewStore, record_ids: Iterable[str] | None = None) -> list[str]:
    """The review's final include set (:func:`final_include_set`), sorted.

    Parameters
    ----------
    store : ReviewStore
        The review store.
    record_ids : iterable of str, optional
        Only these records (one run's); default every record with a decision.
    """
    wanted = None if record_ids is None else set(record_ids)
    _, inc = final_include_set(_restricted(final_decisions(store, TITLE_ABSTRACT), wanted),
                               _restricted(final_decisions(store, FULL_TEXT), wanted))
    return sorted(inc)


# -- CSV exchange -----------------------------------------------------------------------
def export_csv(store: ReviewStore, path: str | os.PathLike, reviewer: str | None = None,
               stage: str | None = None) -> Path:
    """Write the decision history (human, resolution and undo rows) to CSV, atomically.

    Parameters
    ----------
    store : ReviewStore
    path : path-like
        The CSV to write (its folder is created).
    reviewer : str, optional
        Only this reviewer's rows.
    stage : str, optional
        Only this stage.

    Returns
    -------
    pathlib.Path
    """
    frame = _history(store, _check_stage(stage) if stage else None)
    frame = frame[frame["kind"] != "rule"]
    if reviewer is not None:
        reviewer = _check_reviewer(reviewer)
        if reviewer not in set(frame["reviewer"]):
            known = sorted(set(frame["reviewer"]))
            raise InputError(f"reviewer {reviewer!r} has no decisions in {store.path} "
                             f"(reviewers: {', '.join(known) or 'none'}): check the name")
        frame = frame[frame["reviewer"] == reviewer]
    frame = frame.sort_values(["created_at", "decision_id"])[CSV_COLUMNS]
    path = write_safe_csv(frame, path)  # cells that would start a formula get a leading ' (safe_cells)
    logger.info("exported %d decisions to %s", len(frame), path)
    return path


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    path, encoding = check_text_file(path, "decisions", "the CSV written by 'reviewlib decisions export'")
    try:
        with open(path, encoding=encoding, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = [unguard(h.strip()) for h in (reader.fieldnames or [])]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read decisions CSV {path}: {exc}: save it as UTF-8 CSV", source=str(path)) from exc
    rows = [{unguard((k or "").strip()): unguard(v or "").strip() if isinstance(v, str) else "" for k, v in r.items()}
            for r in rows]
    return header, rows


def import_csv(store: ReviewStore, path: str | os.PathLike, reviewer: str | None = None, *,
               reasons: Mapping[str, str] | Iterable[str] | None = None, require_reason: bool = True) -> int:
    """Merge decisions from a CSV into the store; returns the number of rows added.

    Columns: record_id (or pmid), decision, and optionally reviewer, stage
    (default title-abstract), reason, note, kind (human, resolution, undo;
    default human), created_at.  Every row is checked before anything is
    written; the import is one transaction.  Idempotent: a row already in the
    store (same record, reviewer, stage, decision, reason, note, kind and
    time) is skipped; a row without a time is skipped when it equals the
    reviewer's current decision.

    Parameters
    ----------
    store : ReviewStore
    path : path-like
    reviewer : str, optional
        With a reviewer column: import only that reviewer's rows.  Without
        one (or for blank cells): the reviewer the rows belong to.
    reasons : mapping or iterable, optional
        The exclusion-reason vocabulary (default: the store's, see
        :func:`reviewlib.screening.eligibility.vocabulary`).
    require_reason : bool
        Refuse an exclude (human or resolution) without a reason, as the screener
        does (:func:`reason_required`, default True when there is a vocabulary).

    Raises
    ------
    InputError
        One line naming the row (spreadsheet numbering, header = row 1) and
        column of the first bad value; nothing is written.
    """
    path = Path(path)
    if reviewer is not None:
        reviewer = _check_reviewer(reviewer)
    if path.is_file():
        from ..sources.memory import check_fits
        check_fits(path, "decisions CSV")   # far larger than memory: say so before reading it
    header, rows = _read_rows(path)
    if "decision" not in header or not ({"record_id", "pmid"} & set(header)):
        raise InputError(f"decisions CSV {path} needs columns record_id (or pmid) and decision; it has "
                         f"{', '.join(header) or 'no header'}", source=str(path))
    if "reviewer" in header and reviewer is not None:
        present = {r.get("reviewer") for r in rows}
        if reviewer not in present:
            raise InputError(f"decisions CSV {path} has no rows for reviewer {reviewer!r} "
                             f"(it has {', '.join(sorted(p for p in present if p)) or 'none'}): check --reviewer",
                             source=str(path))
    vocab = _vocabulary(store, reasons)
    wanted: list[tuple[int, dict[str, Any]]] = []
    for n, raw in enumerate(rows, start=2):
        def bad(column: str, message: str) -> InputError:
            return InputError(f"decisions CSV {path} row {n} column {column}: {message}; fix the cell and "
                              "import again (nothing was imported)", source=str(path))
        who = raw.get("reviewer") or ""
        if "reviewer" in header and who and reviewer is not None and who != reviewer:
            continue
        who = who or reviewer or ""
        if not who:
            raise bad("reviewer", "empty, and no --reviewer given")
        if who == RULES_REVIEWER:
            raise bad("reviewer", "'rules' rows are not imported (rerun the rules instead)")
        record_id = raw.get("record_id") or (f"pmid:{raw['pmid']}" if raw.get("pmid") else "")
        if not record_id:
            raise bad("record_id", "empty")
        kind = raw.get("kind") or "human"
        if kind not in IMPORT_KINDS:
            raise bad("kind", f"{kind!r} is not one of {', '.join(IMPORT_KINDS)}")
        decision = raw.get("decision", "")
        allowed = ("undo",) if kind == "undo" else HUMAN_DECISIONS
        if decision not in allowed:
            raise bad("decision", f"{decision!r} is not one of {', '.join(allowed)}")
        stage = raw.get("stage") or "title-abstract"
        if stage not in STAGES:
            raise bad("stage", f"{stage!r} is not one of {', '.join(STAGES)}")
        reason = raw.get("reason") or None
        if reason is not None and reason not in vocab:
            raise bad("reason", f"{reason!r} is not one of the exclusion reasons ({', '.join(sorted(vocab))})")
        if kind != "undo" and missing_reason(decision, reason, vocab, require_reason):
            raise bad("reason", f"an exclude needs an exclusion reason, as in the screener (one of "
                                f"{', '.join(sorted(vocab))}); or import with --allow-exclude-without-reason")
        created = raw.get("created_at") or None
        if created is not None:
            try:
                pd.Timestamp(created)
            except ValueError:
                raise bad("created_at", f"{created!r} is not an ISO 8601 time") from None
        wanted.append((n, {"record_id": record_id, "reviewer": who, "stage": stage, "decision": decision,
                           "reason": reason, "note": raw.get("note") or None, "kind": kind,
                           "created_at": created}))
    known = _known_records(store, [w["record_id"] for _, w in wanted])
    for n, w in wanted:
        if w["record_id"] not in known:
            col = "record_id" if "record_id" in header else "pmid"
            raise InputError(f"decisions CSV {path} row {n} column {col}: record {w['record_id']!r} is not in the "
                             f"review store {store.path}; fix the cell and import again (nothing was imported)",
                             source=str(path))
    existing = {tuple(r) for r in store.connection.execute(
        "SELECT record_id, reviewer, stage, decision, reason, note, kind, created_at FROM decisions")}
    current = current_decisions(store)
    now_state = {(r.record_id, r.reviewer, r.stage, _kind_class(r.kind)): (r.decision, r.reason, r.note)
                 for r in current.itertuples(index=False)}
    now = utcnow()
    to_add = []
    for _, w in wanted:
        if w["created_at"] is not None:
            key = tuple(w[c] for c in CSV_COLUMNS)
            if key in existing:
                continue
            existing.add(key)
        else:
            state = (w["record_id"], w["reviewer"], w["stage"], _kind_class(w["kind"]))
            if w["kind"] != "undo" and now_state.get(state) == (w["decision"], w["reason"], w["note"]):
                continue
            now_state[state] = (w["decision"], w["reason"], w["note"])
            w = dict(w, created_at=now)
        to_add.append(tuple(w[c] for c in CSV_COLUMNS))
    with store.transaction() as con:
        con.executemany("INSERT INTO decisions(record_id, reviewer, stage, decision, reason, note, kind, created_at) "
                        "VALUES(?, ?, ?, ?, ?, ?, ?, ?)", to_add)
    logger.info("imported %d decisions from %s (%d already present)", len(to_add), path, len(wanted) - len(to_add))
    return len(to_add)


# -- command line ---------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``reviewlib decisions``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    exp = sub.add_parser("export", help="write decisions to a CSV")
    exp.add_argument("--store", required=True, help="the review store (review.sqlite)")
    exp.add_argument("--out", required=True, help="the CSV file to write")
    exp.add_argument("--reviewer", help="only this reviewer's decisions")
    exp.add_argument("--stage", choices=STAGES, help="only this stage")
    imp = sub.add_parser("import", help="merge decisions from a CSV (idempotent)")
    imp.add_argument("--store", required=True, help="the review store (review.sqlite)")
    imp.add_argument("csv", help="the CSV file to read")
    imp.add_argument("--reviewer", help="only this reviewer's rows, or the reviewer of rows without one")
    imp.add_argument("--allow-exclude-without-reason", action="store_true",
                     help="accept excludes with an empty reason (refused by default, as in the screener)")


def _open_existing(path: str) -> ReviewStore:
    if not Path(path).is_file():
        raise InputError(f"review store not found: {path}: give the review.sqlite of an existing review",
                         source=path)
    return ReviewStore(path)


def run_cli(args: argparse.Namespace) -> int:
    """Run ``reviewlib decisions export|import``; returns the exit code."""
    store = _open_existing(args.store)
    try:
        if args.action == "export":
            out = export_csv(store, args.out, reviewer=args.reviewer, stage=args.stage)
            n = sum(1 for _ in open(out, encoding="utf-8")) - 1
            logger.info("wrote %d decisions to %s", n, out)
        else:
            if args.reviewer is not None:
                _check_reviewer(args.reviewer)
            n = import_csv(store, args.csv, reviewer=args.reviewer,
                           require_reason=not args.allow_exclude_without_reason)
            logger.info("added %d decisions from %s to %s", n, args.csv, args.store)
    finally:
        store.close()
    return 0
