"""The review store: one embedded SQLite database per review.

It holds a review's whole state: searches (query, NCBI's translation, count,
date slices), raw batches fetched, records, screening decisions and extracted
values, and the trial register's pages and trials (``registry_pages``,
``trials``, ``trial_sources``).  Decisions and corrections are append-only: a change of mind appends a
row, the current value is derived, the history stays.

The database runs in WAL mode with ``synchronous=FULL``; every write is its own
transaction, so a decision acknowledged by :meth:`ReviewStore.append_decision`
survives the process being killed the next instant.
"""
from __future__ import annotations

import hashlib
import json
import operator
import sqlite3
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from .errors import StoreError
from .gcpause import collector_paused
from .records import COLUMNS, conform, empty_records

SCHEMA_VERSION = 1
#: Meta key changed by every write of records (what ``ReviewStore.records`` keeps a read by).
RECORDS_VERSION = "records_version"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS searches (
    search_id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,              -- 'pubmed', 'snapshot', 'ris:<file>', ...
    query TEXT,
    translation TEXT,
    count INTEGER,
    mindate TEXT,
    maxdate TEXT,
    datetype TEXT,
    warnings TEXT NOT NULL DEFAULT '[]',  -- JSON list of strings
    errors TEXT NOT NULL DEFAULT '[]',    -- JSON list of strings
    slices TEXT NOT NULL DEFAULT '[]',    -- JSON list of {mindate, maxdate, count}
    status TEXT NOT NULL DEFAULT 'started',  -- 'started' until every batch is in, then 'complete'
    created_at TEXT NOT NULL,
    completed_at TEXT
);
CREATE TABLE IF NOT EXISTS batches (
    search_id INTEGER NOT NULL REFERENCES searches(search_id),
    batch_key TEXT NOT NULL,           -- e.g. '2019/01/01-2019/12/31:500' (slice and retstart)
    n_records INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT,                         -- the raw XML in the review's cache, relative to the store
    fetched_at TEXT NOT NULL,
    PRIMARY KEY (search_id, batch_key)
);
CREATE TABLE IF NOT EXISTS records (
    record_id TEXT PRIMARY KEY,        -- 'pmid:123', or 'doi:...'/'hash:...' for records without PMID
    pmid TEXT,
    doi TEXT,
    data TEXT NOT NULL,                -- the record's row as JSON (all COLUMNS)
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_pmid ON records(pmid);
CREATE TABLE IF NOT EXISTS record_sources (
    record_id TEXT NOT NULL REFERENCES records(record_id),
    search_id INTEGER NOT NULL REFERENCES searches(search_id),
    PRIMARY KEY (record_id, search_id)
);
CREATE TABLE IF NOT EXISTS decisions (
    decision_id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    reviewer TEXT NOT NULL,            -- a person, or 'rules' for protocol rules
    stage TEXT NOT NULL,               -- 'title-abstract' or 'full-text'
    decision TEXT NOT NULL,            -- 'include', 'exclude', 'maybe' / 'unsure'
    reason TEXT,
    note TEXT,
    kind TEXT NOT NULL DEFAULT 'human',   -- 'human', 'rule', 'resolution', 'import'
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_record ON decisions(record_id, stage);
CREATE TABLE IF NOT EXISTS extractions (
    extraction_id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT,
    evidence TEXT,
    confidence REAL,
    method TEXT NOT NULL,              -- 'machine' or 'reviewer'
    reviewer TEXT,
    note TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS extractions_record ON extractions(record_id, field);
-- The trial register (ClinicalTrials.gov): searches are rows of `searches` with source 'ctgov' (or
-- 'ctgov-snapshot'); these tables are created when missing, so older stores gain them when opened.
CREATE TABLE IF NOT EXISTS registry_pages (
    search_id INTEGER NOT NULL REFERENCES searches(search_id),
    page_no INTEGER NOT NULL,          -- 1 for the first page
    page_token TEXT,                   -- the pageToken that asked for it (NULL for the first page)
    next_page_token TEXT,              -- the nextPageToken it gave (NULL on the last page)
    n_studies INTEGER NOT NULL,
    total_count INTEGER,               -- totalCount (first page only)
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,                -- the raw JSON in the review's cache, relative to the store
    fetched_at TEXT NOT NULL,
    PRIMARY KEY (search_id, page_no)
);
CREATE TABLE IF NOT EXISTS trials (
    nct_id TEXT PRIMARY KEY,
    data TEXT NOT NULL,                -- the registry row (reviewlib.sources.ctgov.TRIAL_COLUMNS) as JSON
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trial_sources (
    nct_id TEXT NOT NULL REFERENCES trials(nct_id),
    search_id INTEGER NOT NULL REFERENCES searches(search_id),
    PRIMARY KEY (nct_id, search_id)
);
CREATE TABLE IF NOT EXISTS appraisals (
    appraisal_id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    tool TEXT NOT NULL,                -- a key of reviewlib.evidence.appraisal.TOOLS
    item TEXT NOT NULL,                -- the tool's item or domain ('1'..'10', 'D1'..'D7', 'overall')
    answer TEXT,                       -- one of the tool's answers (NULL on undo rows)
    support TEXT,                      -- the reviewer's reason or quote
    reviewer TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'human',   -- 'human', 'resolution', 'undo'
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS appraisals_record ON appraisals(record_id, tool, item);
CREATE TABLE IF NOT EXISTS grade_overrides (
    override_id INTEGER PRIMARY KEY AUTOINCREMENT,
    outcome TEXT NOT NULL,
    domain TEXT NOT NULL,              -- a GRADE domain of reviewlib.evidence.certainty.DOMAINS
    downgrade INTEGER,                 -- 0, 1 or 2 levels; NULL withdraws the reviewer's override
    reason TEXT,
    reviewer TEXT NOT NULL,
    created_at TEXT NOT NULL
);
-- reviewers' deduplication marks (issue 12): append-only; a withdrawal is its own row
CREATE TABLE IF NOT EXISTS dedup_marks (
    mark_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('not-duplicates', 'duplicates', 'withdraw')),
    record_ids TEXT NOT NULL,          -- JSON list of record ids (empty for a withdrawal)
    withdraws INTEGER REFERENCES dedup_marks(mark_id),
    reviewer TEXT NOT NULL,
    note TEXT,
    created_at TEXT NOT NULL
);
"""


def utcnow() -> str:
    """Current UTC time as an ISO 8601 string with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def record_id_for(row: dict[str, Any]) -> str:
    """The store's identity for a record: its PMID, else its DOI, else its NCT id (a registration,
    ``nct:NCT...``), else a content hash."""
    pmid = row.get("pmid")
    if pmid:
        return f"pmid:{pmid}"
    doi = row.get("doi")
    if doi:
        return f"doi:{str(doi).lower()}"
    nct = row.get("nct_id")
    if isinstance(nct, str) and nct.strip():
        return f"nct:{nct.strip().upper()}"
    import hashlib
    key = "|".join(str(row.get(k) or "") for k in ("title", "year", "journal"))
    return "hash:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and pd.isna(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


#: Types a records column may hold that :func:`_jsonable` leaves as they are.
_PLAIN_TYPES = frozenset({str, list, dict, int, bool, type(None)})


def json_rows(frame: pd.DataFrame, columns: Sequence[str] = COLUMNS) -> Iterator[dict[str, Any]]:
    """Each row of ``frame[columns]`` as a dict of JSON-ready values (:func:`_jsonable` of each).

    Column by column (``tolist`` in C, :func:`_jsonable` only on a column holding anything else
    than plain values): ``to_dict("records")`` and a function call per cell were 2.7 s at 100,000
    records, this 0.8 s (and 9 of ``dedup.save``'s 11 s before it used this)."""
    lists = []
    for col in columns:
        values = frame[col].tolist()
        if not all(type(v) in _PLAIN_TYPES for v in values):
            values = [_jsonable(v) for v in values]
        lists.append(values)
    for values in zip(*lists):
        yield dict(zip(columns, values))


def content_hash(data: str) -> str:
    """The sha256 (hex) of a record's stored JSON text: the key of its content (``records.data``,
    ``record_contents``, a saved deduplication's references)."""
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


def decode_json(text: str) -> Any:
    """``json.loads(text)``, by orjson when it can (twice as fast on a record's JSON; the same objects:
    ``tests/test_store.py``); what orjson refuses (NaN, integers beyond 64 bits) goes to :mod:`json`."""
    try:
        return _orjson_loads(text)
    except ValueError:
        return json.loads(text)


try:
    from orjson import loads as _orjson_loads
except ImportError:                     # pragma: no cover - orjson is a dependency
    _orjson_loads = json.loads


#: Records tables read, shared by every :class:`ReviewStore` on one file in this process:
#: ``{resolved path: {(search_id, records_version): (table, sha256 of each row's stored JSON)}}``,
#: for the last file read only.
_RECORDS_MEMO: dict[str, dict] = {}


def _records_memo(path: Path) -> dict:
    key = str(Path(path).resolve())
    memo = _RECORDS_MEMO.get(key)
    if memo is None:
        _RECORDS_MEMO.clear()                # another store: what was read from the last one is let go
        memo = _RECORDS_MEMO[key] = {}
    return memo


class ReviewStore:
    """A review's SQLite database.

    Parameters
    ----------
    path : path-like
        The database file; created with its folder if missing.

    Examples
    --------
    >>> store = ReviewStore("reviews/statins/review.sqlite")     # doctest: +SKIP
    >>> store.records().shape                                  # doctest: +SKIP
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"review store {self.path} is a directory, not a file: give the review.sqlite "
                             "inside it, or a new file name")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists()
        self._created = not existed
        try:
            self.connection = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                              check_same_thread=False)
            self.connection.row_factory = sqlite3.Row
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=FULL")
            self.connection.execute("PRAGMA foreign_keys=ON")
            self.connection.executescript(SCHEMA)
            if self.get_meta("schema_version") is None:
                self.set_meta("schema_version", str(SCHEMA_VERSION))
        except sqlite3.DatabaseError as exc:
            if not existed:  # a store this call began and could not finish (full disk, read-only folder)
                self._discard_new()
            if isinstance(exc, sqlite3.OperationalError):
                from .oserrors import describe_sqlite
                raise StoreError(describe_sqlite(exc, str(self.path))) from exc
            raise StoreError(f"cannot open review store {self.path}: {exc}; "
                             "is it a reviewlib store? move it aside to start afresh") from exc

    def _discard_new(self) -> None:
        """Close and remove a store file (and its WAL) this process just created and could not set up."""
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - best effort: the connection may never have opened
            pass
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    # -- plumbing ---------------------------------------------------------
    @property
    def folder(self) -> Path:
        """The folder holding the store (and the review's cache)."""
        return self.path.parent

    @property
    def cache_dir(self) -> Path:
        """The review's cache, beside the store: raw fetches, and what is kept by content (TF-IDF,
        dedup, figures, extraction, trial links)."""
        return self.folder / "cache"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on exit, rolled back on error."""
        con = self.connection
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def ensure_schema(self, sql: str) -> None:
        """Run ``CREATE ... IF NOT EXISTS`` statements a module needs for its own tables."""
        self.connection.executescript(sql)

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()

    def __enter__(self) -> "ReviewStore":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        # a store this block created and left empty because the block failed (a refused fetch) is not kept
        discard = exc_type is not None and getattr(self, "_created", False) and self._is_empty()
        self.close()
        if discard:
            self._discard_new()

    def _is_empty(self) -> bool:
        try:
            con = self.connection
            return not any(con.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
                           for t in ("searches", "records", "decisions", "extractions", "trials"))
        except sqlite3.Error:
            return False

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.connection.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row["value"] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as con:
            con.execute("INSERT INTO meta(key, value) VALUES(?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    # -- searches and batches --------------------------------------------
    def add_search(self, source: str, query: str | None = None, **fields: Any) -> int:
        """Record a search; returns its ``search_id``.

        Keyword fields: translation, count, mindate, maxdate, datetype, warnings,
        errors, slices (lists are stored as JSON), status.
        """
        row = {"source": source, "query": query, "created_at": utcnow()}
        row.update(self._search_fields(fields))
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.transaction() as con:
            cur = con.execute(f"INSERT INTO searches({cols}) VALUES({marks})", tuple(row.values()))
            return int(cur.lastrowid)

    def update_search(self, search_id: int, **fields: Any) -> None:
        """Update fields of a search (same keywords as :meth:`add_search`)."""
        row = self._search_fields(fields)
        if fields.get("status") == "complete" and "completed_at" not in row:
            row["completed_at"] = utcnow()
        if not row:
            return
        sets = ", ".join(f"{k}=?" for k in row)
        with self.transaction() as con:
            con.execute(f"UPDATE searches SET {sets} WHERE search_id=?", (*row.values(), search_id))

    @staticmethod
    def _search_fields(fields: dict[str, Any]) -> dict[str, Any]:
        allowed = {"translation", "count", "mindate", "maxdate", "datetype", "warnings",
                   "errors", "slices", "status", "completed_at", "query", "source"}
        unknown = set(fields) - allowed
        if unknown:
            raise TypeError(f"unknown search fields: {sorted(unknown)}")
        return {k: json.dumps(v) if k in ("warnings", "errors", "slices") else v for k, v in fields.items()}

    def searches(self) -> pd.DataFrame:
        """All searches, oldest first, JSON columns decoded."""
        frame = pd.read_sql_query("SELECT * FROM searches ORDER BY search_id", self.connection)
        for col in ("warnings", "errors", "slices"):
            frame[col] = [json.loads(v) for v in frame[col]]
        return frame

    def add_batch(self, search_id: int, batch_key: str, n_records: int, sha256: str,
                  path: str | None = None) -> None:
        """Note that a batch is safely in the cache (idempotent)."""
        with self.transaction() as con:
            con.execute("INSERT OR REPLACE INTO batches VALUES(?, ?, ?, ?, ?, ?)",
                        (search_id, batch_key, n_records, sha256, path, utcnow()))

    def batches(self, search_id: int) -> pd.DataFrame:
        """The batches fetched for a search."""
        return pd.read_sql_query("SELECT * FROM batches WHERE search_id=? ORDER BY batch_key",
                                 self.connection, params=(search_id,))

    # -- records ----------------------------------------------------------
    def add_records(self, frame: pd.DataFrame, search_id: int | None = None,
                    encoded: Sequence[str] | None = None) -> int:
        """Insert or refresh records (one transaction); link them to ``search_id``.

        Returns the number of records written.  A record already in the store
        (same PMID, else DOI) is updated in place, keeping ``first_seen``.

        ``encoded``: each row's JSON exactly as written here, computed elsewhere (the parse's worker
        processes, :func:`reviewlib.sources.pubmed_xml.read_pubmed_xml_encoded`); ignored unless
        there is one per row and ``frame`` has only the records columns.
        """
        frame = conform(frame)
        now = utcnow()
        rows = []
        ncts = list(frame["nct_id"]) if "nct_id" in frame else [None] * len(frame)   # registrations
        encode = json.JSONEncoder(ensure_ascii=False).encode      # what json.dumps(rec, ensure_ascii=False) makes
        if encoded is not None and len(encoded) == len(frame) and list(frame.columns) == COLUMNS:
            keys = json_rows(frame, ["pmid", "doi", "title", "year", "journal"])   # what the id is made of
            for rec, data in zip(keys, encoded):
                rows.append((record_id_for(rec), rec["pmid"], rec["doi"], data, now, now))
        else:
            for rec, nct in zip(json_rows(frame), ncts):
                rows.append((record_id_for({**rec, "nct_id": nct}), rec.get("pmid"), rec.get("doi"),
                             encode(rec), now, now))
        return self._write_records(rows, search_id)

    def add_encoded_records(self, rows: Sequence[tuple[str, str | None, str | None, str]],
                            search_id: int | None = None) -> int:
        """:meth:`add_records` of records given as the store writes them: ``(record_id, pmid, doi, json)``
        each (computed elsewhere: the parse's worker processes,
        :func:`reviewlib.sources.pubmed_xml.read_pubmed_xml_store_rows`, which make them as
        :meth:`add_records` would from the records table).  Returns the number of records written."""
        now = utcnow()
        return self._write_records([(rid, pmid, doi, data, now, now) for rid, pmid, doi, data in rows], search_id)

    def _write_records(self, rows: list[tuple], search_id: int | None) -> int:
        """Write ``(record_id, pmid, doi, data, first_seen, last_seen)`` rows in one transaction."""
        with self.transaction() as con:
            con.executemany(
                "INSERT INTO records(record_id, pmid, doi, data, first_seen, last_seen) "
                "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(record_id) DO UPDATE SET "
                "data=excluded.data, doi=excluded.doi, last_seen=excluded.last_seen", rows)
            if search_id is not None:
                con.executemany("INSERT OR IGNORE INTO record_sources VALUES(?, ?)",
                                [(r[0], search_id) for r in rows])
            # what records() read before is stale now (in every process that reads this store)
            con.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET "
                        "value=excluded.value", (RECORDS_VERSION, uuid.uuid4().hex))
        return len(rows)

    def records(self, search_id: int | None = None) -> pd.DataFrame:
        """The records table, in insertion order, with a ``record_id`` column first.

        Parameters
        ----------
        search_id : int, optional
            Only the records found by that search.

        Notes
        -----
        While no record is written (by :meth:`add_records`, which marks every write with a new
        ``records_version`` in the store's meta table, in this process or another), asking again
        gives a copy of the table read before instead of decoding every record anew (seconds at
        100,000 records; a notebook asks several times).  The table is kept for the file, not for
        this object: the notebooks of a run share one kernel and each opens the store anew.
        """
        key = (search_id, self.get_meta(RECORDS_VERSION))
        memo = _records_memo(self.path)
        if key[1] is not None and key in memo:
            return memo[key][0].copy()
        for old in [k for k in memo if k[1] != key[1]]:
            del memo[old]                         # records were written: what was read before is stale
        read = None
        if memo:
            # the same records as a table already read (one search found them all, say): that table
            ids = self.record_ids(search_id)
            read = next((m for m in memo.values() if len(m[0]) == len(ids) and m[0]["record_id"].tolist() == ids),
                        None)
        if read is None:
            hashes: list[str] = []
            read = (self._read_records(search_id, hashes), hashes)
        if key[1] is not None:
            memo[key] = read
        return read[0].copy()

    def stored_content_hashes(self, frame: pd.DataFrame) -> tuple[str | None, list[str | None]]:
        """Which rows of ``frame`` are, value for value, records as the store holds them now.

        Returns
        -------
        (str or None, list)
            The store's records version (meta ``records_version``) the answer holds for, and for
            each row of ``frame`` the sha256 (hex) of the stored JSON (``records.data``) the row
            was decoded from, when the row holds the very values :meth:`records` decoded from it
            at that version; None for every other row (a value changed or filled in, a row that
            was not read through :meth:`records`, or ``frame`` has other columns than
            ``record_id`` + :data:`COLUMNS`).

        Notes
        -----
        A caller can keep a reference to a record's stored content (by this hash) instead of
        encoding and storing the row again (``dedup.save``: 100,000 rows, seconds).  The test is
        identity of each cell with the table :meth:`records` decoded (its copies share their
        cells' objects, as they always did), so it costs milliseconds; a cell assigned anew is
        a changed row.  A write of records changes the version: check it in the transaction
        that relies on the answer.
        """
        n = len(frame)
        version = self.get_meta(RECORDS_VERSION)
        out: list[str | None] = [None] * n
        if version is None or not n or list(frame.columns) != ["record_id", *COLUMNS]:
            return version, out
        entries = [m for k, m in _records_memo(self.path).items() if k[1] == version]
        if not entries:
            return version, out
        ids = frame["record_id"].tolist()
        cells: dict[str, list] = {}               # frame's columns as lists, made once for every table
        for table, hashes in entries:
            if len(hashes) != len(table) or list(table.columns) != ["record_id", *COLUMNS]:
                continue
            where = dict(zip(table["record_id"].tolist(), range(len(table))))
            rows = [i for i, (r, h) in enumerate(zip(ids, out)) if h is None and r in where]
            if not rows:
                continue
            at = [where[ids[i]] for i in rows]
            k = len(rows)
            every = k == n                        # usually: each row of frame is a row of this table
            take_rows = None if every else (operator.itemgetter(*rows) if k > 1 else (lambda v: (v[rows[0]],)))
            take_at = operator.itemgetter(*at) if k > 1 else (lambda v: (v[at[0]],))
            same = np.ones(k, dtype=bool)
            for col in COLUMNS:
                mine, theirs = frame[col], table[col]
                if mine.dtype != theirs.dtype:
                    same[:] = False
                    break
                if mine.dtype == object:      # the very objects decoded: one identity test per cell, in C
                    if col not in cells:
                        cells[col] = mine.tolist()
                    values = cells[col] if every else take_rows(cells[col])
                    decoded = take_at(theirs.tolist())
                    if not all(map(operator.is_, values, decoded)):
                        same &= np.fromiter(map(operator.is_, values, decoded), dtype=bool, count=k)
                else:                         # year (Int64): equal values, or both missing
                    a_na, b_na = mine.isna().to_numpy()[rows], theirs.isna().to_numpy()[at]
                    a = mine.fillna(0).to_numpy(dtype=np.int64)[rows]
                    b = theirs.fillna(0).to_numpy(dtype=np.int64)[at]
                    same &= (a_na == b_na) & (a_na | (a == b))
            for j in np.flatnonzero(same).tolist():
                out[rows[j]] = hashes[at[j]]
        return version, out

    @staticmethod
    def _records_sql(search_id: int | None, columns: str) -> str:
        if search_id is None:
            return f"SELECT {columns} FROM records r ORDER BY r.rowid"
        return (f"SELECT {columns} FROM records r JOIN record_sources s USING(record_id) "
                "WHERE s.search_id=? ORDER BY r.rowid")

    def record_ids(self, search_id: int | None = None) -> list[str]:
        """The ``record_id`` column of :meth:`records` (same order), read without decoding any record."""
        cur = self.connection.cursor()
        cur.row_factory = None                    # plain tuples: 100,000 ids in milliseconds
        return [r[0] for r in cur.execute(self._records_sql(search_id, "r.record_id"),
                                          () if search_id is None else (search_id,))]

    def records_by_id(self, record_ids: Iterable[str]) -> pd.DataFrame:
        """The records table of ``record_ids`` only (store order), decoding only those records."""
        wanted = list(dict.fromkeys(record_ids))
        rows = []
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            rows += self.connection.execute(
                f"SELECT rowid, record_id, data FROM records WHERE record_id IN ({','.join('?' * len(chunk))})",
                chunk).fetchall()
        return self._decode([(r[1], r[2]) for r in sorted(rows, key=lambda r: r[0])])

    def records_matching(self, keep: Callable[[str], bool]) -> pd.DataFrame:
        """The records whose stored JSON text ``keep`` accepts (store order), decoding only those: a
        prefilter for a search over the text of a large review (the JSON holds every field)."""
        cur = self.connection.cursor()
        cur.row_factory = None
        rows = [(rid, data) for rid, data in cur.execute("SELECT record_id, data FROM records ORDER BY rowid")
                if keep(data)]
        return self._decode(rows)

    def _read_records(self, search_id: int | None, hashes: list | None = None) -> pd.DataFrame:
        """The records table as stored; ``hashes``, when given, gets the sha256 (hex) of each row's
        stored JSON (what :meth:`stored_content_hashes` answers with)."""
        cur = self.connection.cursor()
        cur.row_factory = None                    # plain tuples
        rows = cur.execute(self._records_sql(search_id, "r.record_id, r.data"),
                           () if search_id is None else (search_id,)).fetchall()
        if hashes is not None:
            hashes.extend(content_hash(data) for _, data in rows)
        return self._decode(rows)

    @staticmethod
    @collector_paused()
    def _decode(rows: list) -> pd.DataFrame:
        """The records table of ``(record_id, data)`` rows (tuples or :class:`sqlite3.Row`)."""
        if not rows:
            frame = empty_records()
            frame.insert(0, "record_id", pd.Series([], dtype=object))
            return frame
        frame = conform(pd.DataFrame(list(map(decode_json, [r[1] for r in rows]))))
        frame.insert(0, "record_id", [r[0] for r in rows])
        return frame

    def record_sources(self) -> pd.DataFrame:
        """Which search found which record (for PRISMA's identified-per-source counts)."""
        return pd.read_sql_query(
            "SELECT rs.record_id, rs.search_id, s.source FROM record_sources rs "
            "JOIN searches s USING(search_id) ORDER BY rs.search_id, rs.record_id", self.connection)

    # -- decisions (append-only) -----------------------------------------
    def append_decision(self, record_id: str, reviewer: str, stage: str, decision: str,
                        reason: str | None = None, note: str | None = None,
                        kind: str = "human", created_at: str | None = None) -> int:
        """Append one decision in its own transaction; returns its id once durable."""
        with self.transaction() as con:
            cur = con.execute(
                "INSERT INTO decisions(record_id, reviewer, stage, decision, reason, note, kind, created_at) "
                "VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                (record_id, reviewer, stage, decision, reason, note, kind, created_at or utcnow()))
            return int(cur.lastrowid)

    def decisions(self) -> pd.DataFrame:
        """Every decision ever made, oldest first (the full history)."""
        return pd.read_sql_query("SELECT * FROM decisions ORDER BY decision_id", self.connection)

    # -- extracted values (append-only) ----------------------------------
    def append_extractions(self, rows: list[dict[str, Any]]) -> int:
        """Append extracted or corrected values in one transaction.

        Each row has record_id, field, value, and optionally evidence,
        confidence, method ('machine' default, or 'reviewer'), reviewer, note.
        """
        now = utcnow()
        params = [(r["record_id"], r["field"], r.get("value"), r.get("evidence"), r.get("confidence"),
                   r.get("method", "machine"), r.get("reviewer"), r.get("note"), r.get("created_at", now))
                  for r in rows]
        with self.transaction() as con:
            con.executemany(
                "INSERT INTO extractions(record_id, field, value, evidence, confidence, method, reviewer, "
                "note, created_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)", params)
        return len(params)

    def extractions(self) -> pd.DataFrame:
        """Every extracted or corrected value, oldest first."""
        return pd.read_sql_query("SELECT * FROM extractions ORDER BY extraction_id", self.connection)

    # -- the trial register ------------------------------------------------
    @staticmethod
    def _trial_rows(frame: pd.DataFrame) -> list[tuple[str, str]]:
        from .sources.ctgov import TRIAL_COLUMNS, conform_trials
        frame = conform_trials(frame)
        return [(rec["nct_id"], json.dumps({k: _jsonable(rec[k]) for k in TRIAL_COLUMNS}, ensure_ascii=False))
                for rec in frame[TRIAL_COLUMNS].to_dict("records")]

    @staticmethod
    def _write_trials(con: sqlite3.Connection, rows: list[tuple[str, str]], search_id: int | None) -> None:
        now = utcnow()
        con.executemany("INSERT INTO trials(nct_id, data, first_seen, last_seen) VALUES(?, ?, ?, ?) "
                        "ON CONFLICT(nct_id) DO UPDATE SET data=excluded.data, last_seen=excluded.last_seen",
                        [(nct, data, now, now) for nct, data in rows])
        if search_id is not None:
            con.executemany("INSERT OR IGNORE INTO trial_sources VALUES(?, ?)", [(r[0], search_id) for r in rows])

    def add_trials(self, frame: pd.DataFrame, search_id: int | None = None) -> int:
        """Insert or refresh registry rows (one per NCT id, keeping ``first_seen``); link them to ``search_id``."""
        rows = self._trial_rows(frame)
        with self.transaction() as con:
            self._write_trials(con, rows, search_id)
        return len(rows)

    def add_registry_page(self, search_id: int, page_no: int, *, page_token: str | None,
                          next_page_token: str | None, trials: pd.DataFrame, n_studies: int,
                          total_count: int | None, sha256: str, path: str) -> None:
        """Record one registry page and its trials in one transaction (the page's JSON is already cached).

        The first page's ``total_count`` becomes the search's ``count``; a last page (no
        ``next_page_token``) drops any later pages a previous run recorded.
        """
        rows = self._trial_rows(trials)
        with self.transaction() as con:
            self._write_trials(con, rows, search_id)
            con.execute("INSERT OR REPLACE INTO registry_pages VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (search_id, page_no, page_token, next_page_token, n_studies, total_count, sha256, path,
                         utcnow()))
            if next_page_token is None:
                con.execute("DELETE FROM registry_pages WHERE search_id=? AND page_no>?", (search_id, page_no))
            if total_count is not None:
                con.execute("UPDATE searches SET count=? WHERE search_id=?", (int(total_count), search_id))

    def registry_pages(self, search_id: int) -> pd.DataFrame:
        """The pages fetched for a registry search, in order (absent tokens and counts are None)."""
        frame = pd.read_sql_query("SELECT * FROM registry_pages WHERE search_id=? ORDER BY page_no",
                                  self.connection, params=(search_id,))
        for col in ("page_token", "next_page_token", "total_count"):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
        return frame

    def trials(self, search_id: int | None = None) -> pd.DataFrame:
        """The registry table (:data:`reviewlib.sources.ctgov.TRIAL_COLUMNS`), one row per NCT id in
        insertion order; or only the trials a search found."""
        from .sources.ctgov import conform_trials, empty_trials
        if search_id is None:
            cur = self.connection.execute("SELECT data FROM trials ORDER BY rowid")
        else:
            cur = self.connection.execute("SELECT t.data FROM trials t JOIN trial_sources s USING(nct_id) "
                                          "WHERE s.search_id=? ORDER BY t.rowid", (search_id,))
        rows = [json.loads(r[0]) for r in cur.fetchall()]
        return conform_trials(pd.DataFrame(rows)) if rows else empty_trials()

    def trial_sources(self) -> pd.DataFrame:
        """Which registry search found which trial (for PRISMA's "Registers (n)")."""
        return pd.read_sql_query(
            "SELECT ts.nct_id, ts.search_id, s.source FROM trial_sources ts "
            "JOIN searches s USING(search_id) ORDER BY ts.search_id, ts.nct_id", self.connection)

    # -- risk-of-bias judgements (append-only) -----------------------------
    def append_appraisals(self, rows: list[tuple]) -> list[int]:
        """Append judgements ``(record_id, tool, item, answer, support, reviewer, kind, created_at)``
        in one transaction; returns their ids once durable (see :mod:`reviewlib.evidence.appraisal`)."""
        ids = []
        with self.transaction() as con:
            for row in rows:
                cur = con.execute("INSERT INTO appraisals(record_id, tool, item, answer, support, reviewer, kind, "
                                  "created_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?)", row)
                ids.append(int(cur.lastrowid))
        return ids

    def appraisals(self) -> pd.DataFrame:
        """Every risk-of-bias judgement ever appended, oldest first (the full history)."""
        return pd.read_sql_query("SELECT * FROM appraisals ORDER BY appraisal_id", self.connection)

    # -- GRADE overrides (append-only) ---------------------------------------
    def append_grade_override(self, outcome: str, domain: str, downgrade: int | None, reason: str | None,
                              reviewer: str) -> int:
        """Append a reviewer's GRADE override (see :mod:`reviewlib.evidence.certainty`); returns its id."""
        with self.transaction() as con:
            cur = con.execute("INSERT INTO grade_overrides(outcome, domain, downgrade, reason, reviewer, created_at) "
                              "VALUES(?, ?, ?, ?, ?, ?)", (outcome, domain, downgrade, reason, reviewer, utcnow()))
            return int(cur.lastrowid)

    def grade_overrides(self) -> pd.DataFrame:
        """Every GRADE override ever appended, oldest first."""
        return pd.read_sql_query("SELECT * FROM grade_overrides ORDER BY override_id", self.connection)

    # -- deduplication marks (append-only) ------------------------------
    def append_dedup_mark(self, kind: str, record_ids: list[str], reviewer: str, note: str | None = None,
                          withdraws: int | None = None) -> int:
        """Append one reviewer's deduplication mark in its own transaction; returns its id once durable."""
        with self.transaction() as con:
            cur = con.execute(
                "INSERT INTO dedup_marks(kind, record_ids, withdraws, reviewer, note, created_at) "
                "VALUES(?, ?, ?, ?, ?, ?)", (kind, json.dumps(list(record_ids)), withdraws, reviewer, note, utcnow()))
            return int(cur.lastrowid)

    def dedup_marks(self) -> pd.DataFrame:
        """Every deduplication mark ever made, oldest first (the full history)."""
        return pd.read_sql_query("SELECT * FROM dedup_marks ORDER BY mark_id", self.connection)
