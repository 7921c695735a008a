"""The current screening decisions, kept up to date from the append-only log without replaying it.

:func:`reviewlib.screening.decisions.current_decisions` replays the whole decision history every
time it is called: at 100,000 stored decisions that is seconds, twice per screener click.
:class:`DecisionState` replays the log once, then applies only the rows appended since (read by
``decision_id``), with the same rules as the replay: a decision is pushed on the stack of its
record, reviewer, stage and kind class; an undo pops the decision it names.  The log in the
store stays the source of truth: a row that sorts before what was already applied (an import
with older timestamps, say) makes the state replay the log again, so the state always equals a
full replay (a test checks this after random decisions and undos).
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

import pandas as pd

from ..errors import InputError
from ..store import ReviewStore
from .decisions import CURRENT_COLUMNS, RULES_REVIEWER, _UNDO_NOTE, _check_reviewer, _check_stage, _kind_class

logger = logging.getLogger(__name__)

_COLUMNS = ("decision_id", "record_id", "reviewer", "stage", "decision", "reason", "note", "kind", "created_at")


def _sort_key(row: dict[str, Any]) -> tuple[str, int]:
    return (row["created_at"], row["decision_id"])


class DecisionState:
    """The effective decisions of a store at one stage (or all stages), maintained incrementally.

    Parameters
    ----------
    store : ReviewStore
        The review store; its ``decisions`` table is read, never written, except by :meth:`undo_last`.
    stage : str, optional
        Only this stage's decisions (as ``current_decisions(store, stage=...)``).

    Examples
    --------
    >>> state = DecisionState(store, "title-abstract")      # doctest: +SKIP
    >>> state.sync()                                        # doctest: +SKIP
    >>> state.current("ana")                                # doctest: +SKIP
    """

    def __init__(self, store: ReviewStore, stage: str | None = None):
        self.store = store
        self.stage = _check_stage(stage) if stage is not None else None
        self.replays = 0
        self._changes: dict[str, int] = {}
        self._rebuild()

    # -- reading the log ----------------------------------------------------------------
    def _rows_after(self, last_id: int) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM decisions WHERE decision_id > ?"
        params: list[Any] = [last_id]
        if self.stage is not None:
            sql += " AND stage = ?"
            params.append(self.stage)
        cur = self.store.connection.execute(sql + " ORDER BY decision_id", params)
        return [dict(zip(_COLUMNS, tuple(r))) for r in cur.fetchall()]

    def _rebuild(self) -> None:
        self._stacks: dict[tuple, list[dict[str, Any]]] = {}
        self._by_reviewer: dict[str, set[tuple]] = {}
        self._by_record: dict[str, set[tuple]] = {}
        self._reviewers: set[str] = set()
        self._max_key: tuple[str, int] | None = None
        self._last_id = 0
        rows = self._rows_after(0)
        self.replays += 1
        self._apply_all(rows)

    def _apply_all(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self._last_id = max(self._last_id, max(r["decision_id"] for r in rows))
        for row in sorted(rows, key=_sort_key):
            self._apply(row)
            self._max_key = _sort_key(row)

    def _apply(self, row: dict[str, Any]) -> None:
        """One row of the history, as :func:`reviewlib.screening.decisions._replay` treats it."""
        self._reviewers.add(row["reviewer"])
        self._changes[row["reviewer"]] = self._changes.get(row["reviewer"], 0) + 1
        if row["kind"] == "undo":
            note = row.get("note")
            match = _UNDO_NOTE.match(note) if isinstance(note, str) else None
            target_class = _kind_class(match.group(1)) if match else "human"
            stack = self._stacks.get((row["record_id"], row["reviewer"], row["stage"], target_class))
            if not stack:
                return
            pos = None
            if match:
                pos = next((i for i in range(len(stack) - 1, -1, -1)
                            if stack[i]["created_at"] == match.group(2)), None)
            stack.pop(len(stack) - 1 if pos is None else pos)
            return
        key = (row["record_id"], row["reviewer"], row["stage"], _kind_class(row["kind"]))
        stack = self._stacks.get(key)
        if stack is None:
            stack = self._stacks[key] = []
            self._by_reviewer.setdefault(row["reviewer"], set()).add(key)
            self._by_record.setdefault(row["record_id"], set()).add(key)
        stack.append(row)

    def sync(self) -> int:
        """Apply the rows appended to the log since the last sync; returns how many.

        Rows that sort (``created_at``, ``decision_id``) before a row already applied cannot be
        applied on top: the log is then replayed from the start, so the state always equals a replay.
        """
        rows = self._rows_after(self._last_id)
        if not rows:
            return 0
        if self._max_key is not None and min(_sort_key(r) for r in rows) < self._max_key:
            logger.info("decision state: %d rows dated before the latest applied one: replaying the log", len(rows))
            self._rebuild()
            return len(rows)
        self._apply_all(rows)
        return len(rows)

    # -- the current state ----------------------------------------------------------------
    def _tops(self, keys: Iterable[tuple], ordered: bool = True) -> list[dict[str, Any]]:
        tops = [self._stacks[k][-1] for k in keys if self._stacks[k]]
        if ordered:
            tops.sort(key=_sort_key)
        return tops

    def current_rows(self, reviewer: str | None = None, record_id: str | None = None,
                     ordered: bool = True) -> list[dict[str, Any]]:
        """The current decisions (rows as dicts, in history order), of one reviewer and/or record.

        ``ordered=False`` leaves them in no particular order (sorting 100,000 rows is most of the cost).
        """
        if reviewer is not None and record_id is not None:
            keys: Iterable[tuple] = self._by_reviewer.get(reviewer, set()) & self._by_record.get(record_id, set())
        elif reviewer is not None:
            keys = self._by_reviewer.get(reviewer, ())
        elif record_id is not None:
            keys = self._by_record.get(record_id, ())
        else:
            keys = self._stacks
        return self._tops(keys, ordered)

    def current(self, reviewer: str | None = None) -> pd.DataFrame:
        """What ``current_decisions(store, stage=self.stage, reviewer=reviewer)`` returns (not blind)."""
        if reviewer is not None:
            reviewer = _check_reviewer(reviewer, allow_rules=True)
        return frame_of(self.current_rows(reviewer))

    def version(self, reviewer: str) -> tuple[int, int]:
        """A key that changes whenever ``reviewer``'s current decisions may have changed (a row of theirs
        applied, or the log replayed): what a cache of something derived from them is keyed by."""
        return (self.replays, self._changes.get(reviewer, 0))

    def reviewers(self) -> set[str]:
        """Everyone with a row in the log (at this stage), undo rows included."""
        return set(self._reviewers)

    # -- writing ------------------------------------------------------------------------
    def undo_last(self, reviewer: str) -> dict[str, Any] | None:
        """:func:`reviewlib.screening.decisions.undo_last` from this state: appends an 'undo' row
        revoking the reviewer's most recent effective decision; returns the undone row, or None."""
        reviewer = _check_reviewer(reviewer)
        self.sync()
        if reviewer not in self._reviewers:
            known = sorted(self._reviewers - {RULES_REVIEWER})
            raise InputError(f"reviewer {reviewer!r} has no decisions{' at ' + self.stage if self.stage else ''} "
                             f"to undo (reviewers: {', '.join(known) or 'none'}): check the name")
        mine = [r for r in self.current_rows(reviewer) if r["kind"] != "undo"]
        if not mine:
            return None
        last = mine[-1]
        self.store.append_decision(last["record_id"], reviewer, last["stage"], "undo", None,
                                   f"undoes {last['kind']} decision of {last['created_at']} ({last['decision']})",
                                   kind="undo")
        logger.info("undid %s's %s on %s", reviewer, last["decision"], last["record_id"])
        self.sync()
        return {k: last[k] for k in CURRENT_COLUMNS}


def frame_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Current-decision rows as the frame :func:`reviewlib.screening.decisions.current_decisions` gives."""
    frame = pd.DataFrame(rows, columns=CURRENT_COLUMNS) if rows else pd.DataFrame(columns=CURRENT_COLUMNS)
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.astype({"decision_id": "int64"})
