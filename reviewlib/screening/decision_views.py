"""What is derived from the decision log, kept in the store until the log changes (issue 15).

:func:`reviewlib.screening.decisions.current_decisions` and
:func:`~reviewlib.screening.decisions.final_decisions` replay the log: at 100,000 rule decisions
that is 1.5-2 s, and every notebook of a run (each a new store object, some a new process) did it
again although nothing had been decided since.  The frames they derive are now kept in the store
itself (table ``decision_views``), each under the state of the log it was derived from
(:func:`log_state`); a frame is served only while that state is the log's state now.

The log stays append-only and the source of truth; a view is a copy of what a replay of the log
gives, never the other way round.  The state of the log of one stage is

* the largest ``decision_id`` of the stage's rows: ids are ``AUTOINCREMENT`` (never reused), so
  every append, by any connection or process, gives the stage a larger one;
* a marker that triggers renew on any ``UPDATE`` or ``DELETE`` of a decisions row (the library
  never does either; someone editing the file by hand might): then no view is served again;
* :data:`VIEWS_VERSION`, bumped when the replay's code changes what it derives.

Because the views live in the same file as the log, a store copied, restored from a backup or made
afresh carries its own views (a cache beside the store could outlive the store it describes).
Frames are stored column by column (distinct values as JSON, codes as ``int32``; no pickle, which
would run code from the file).
"""
from __future__ import annotations

import json
import logging
import sqlite3
import struct
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: Bump when the replay (``decisions._replay``, ``final_decisions``) derives something else.
VIEWS_VERSION = 1
#: Meta key renewed by the triggers on any rewrite of a decisions row.
META_REWRITTEN = "decisions.rewritten"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS decision_views (
    view TEXT PRIMARY KEY,             -- 'current:title-abstract', 'final:full-text', 'current:*'
    log_state TEXT NOT NULL,           -- the state of the log it was derived from (log_state)
    data BLOB NOT NULL                 -- the frame, column by column (encode_frame)
);
-- the largest decision id of a stage in a few page reads (the state a view is kept under)
CREATE INDEX IF NOT EXISTS decisions_stage ON decisions(stage);
-- the log is append-only; should a row ever be changed or removed, no view derived before is served
CREATE TRIGGER IF NOT EXISTS decisions_rewritten_update AFTER UPDATE ON decisions BEGIN
    INSERT OR REPLACE INTO meta(key, value) VALUES('{META_REWRITTEN}', lower(hex(randomblob(16))));
END;
CREATE TRIGGER IF NOT EXISTS decisions_rewritten_delete AFTER DELETE ON decisions BEGIN
    INSERT OR REPLACE INTO meta(key, value) VALUES('{META_REWRITTEN}', lower(hex(randomblob(16))));
END;
"""

_READY = "_decision_views_ready"


def _ensure(store) -> None:
    if not store.__dict__.get(_READY):
        store.ensure_schema(SCHEMA)
        store.__dict__[_READY] = True


def log_state(store, stage: str | None) -> str:
    """The state of the log of ``stage`` (every stage when None): changes with every append to it,
    and with any rewrite of any row."""
    _ensure(store)
    con = store.connection
    if stage is None:
        top = con.execute("SELECT MAX(decision_id) FROM decisions").fetchone()[0]
    else:
        top = con.execute("SELECT MAX(decision_id) FROM decisions WHERE stage=?", (stage,)).fetchone()[0]
    marker = con.execute("SELECT value FROM meta WHERE key=?", (META_REWRITTEN,)).fetchone()
    return f"{VIEWS_VERSION}:{top}:{marker[0] if marker else ''}"


def read(store, view: str, state: str) -> pd.DataFrame | None:
    """The frame kept as ``view`` when it was derived from the log in ``state``, else None."""
    _ensure(store)
    row = store.connection.execute("SELECT log_state, data FROM decision_views WHERE view=?", (view,)).fetchone()
    if row is None or row[0] != state:
        return None
    try:
        return decode_frame(bytes(row[1]))
    except (ValueError, KeyError, TypeError, struct.error) as exc:   # a damaged row: derive it again
        logger.warning("decision view %s unreadable (%s): replaying the log", view, exc)
        return None


def write(store, view: str, state: str, frame: pd.DataFrame) -> bool:
    """Keep ``frame`` as ``view``, derived from the log in ``state``, unless the log moved on meanwhile
    (then a later reader derives it again).  Returns whether it was kept."""
    data = encode_frame(frame)
    if data is None:
        return False
    _ensure(store)
    try:
        with store.transaction() as con:
            # checked inside the write transaction: no append can slip in between the check and the write
            if log_state(store, _stage_of(view)) != state:
                return False
            con.execute("INSERT OR REPLACE INTO decision_views(view, log_state, data) VALUES(?, ?, ?)",
                        (view, state, data))
    except sqlite3.OperationalError as exc:   # a read-only or busy store: the view is only not kept
        logger.info("decision view %s not kept: %s", view, exc)
        return False
    return True


def _stage_of(view: str) -> str | None:
    stage = view.split(":", 1)[1]
    return None if stage == "*" else stage


# -- frames as bytes --------------------------------------------------------------------------
_MAGIC = b"RLDV1"


def encode_frame(frame: pd.DataFrame) -> bytes | None:
    """The frame's columns as bytes: int64 columns as they are, columns of strings and None as their
    distinct strings (JSON) and an ``int32`` code per row (-1 for None).  None for anything else."""
    if not len(frame):                             # nothing to replay: derived again at no cost
        return None
    header: dict[str, Any] = {"n": len(frame), "columns": []}
    blocks = []
    for name in frame.columns:
        column = frame[name]
        if column.dtype == np.int64:
            header["columns"].append([str(name), "i8", None])
            blocks.append(column.to_numpy().astype("<i8").tobytes())
            continue
        values = column.tolist()
        if column.dtype != object or not all(v is None or type(v) is str for v in values):
            return None
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        header["columns"].append([str(name), "s", list(uniques)])
        blocks.append(codes.astype("<i4").tobytes())
    head = json.dumps(header, ensure_ascii=False).encode("utf-8")
    return _MAGIC + struct.pack("<Q", len(head)) + head + b"".join(blocks)


def decode_frame(data: bytes) -> pd.DataFrame:
    """The frame :func:`encode_frame` encoded."""
    if not data.startswith(_MAGIC):
        raise ValueError("not a decision view")
    (size,) = struct.unpack_from("<Q", data, len(_MAGIC))
    start = len(_MAGIC) + 8
    header = json.loads(data[start:start + size].decode("utf-8"))
    offset, n = start + size, header["n"]
    columns = {}
    for name, kind, uniques in header["columns"]:
        if kind == "i8":
            columns[name] = pd.Series(np.frombuffer(data, dtype="<i8", count=n, offset=offset).astype(np.int64))
            offset += 8 * n
        else:
            codes = np.frombuffer(data, dtype="<i4", count=n, offset=offset)
            offset += 4 * n
            table = np.empty(len(uniques) + 1, dtype=object)
            table[:len(uniques)] = uniques
            table[-1] = None                       # code -1
            columns[name] = pd.Series(table[codes], dtype=object, copy=False)   # not inferred as str
    if offset != len(data):
        raise ValueError("decision view of the wrong length")
    return pd.DataFrame(columns, columns=[c[0] for c in header["columns"]])
