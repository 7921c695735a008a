"""Deduplication of a review's records across sources (PubMed, MEDLINE, RIS, OpenAlex, BibTeX exports).

Records of one study reach a review several times: the same PubMed entry from two searches, a
reference-manager export without the PMID, a database copy with "[Review] [45 refs]" after its
title.  :func:`deduplicate` merges them on evidence, never on one field
(:mod:`reviewlib.screening.dedup_match` holds the rules):

* candidate pairs come from blocks (first-author surname, the title's first and last significant
  words, first author + volume + first page, a shared DOI or PMID) compared with rapidfuzz, never
  all pairs, so 100,000 records take seconds;
* each pair is judged on DOI, PMID, title, authors (reversed name order understood), year,
  journal, volume, pages and record kind (article / conference paper / erratum / editorial):
  ``duplicate`` (merged), ``uncertain`` (listed in ``result.uncertain`` for a person, never
  merged) or different;
* a *hard conflict* (different DOIs, kinds, volumes or first pages, years more than one apart,
  different numbers in the titles, a reviewer's "not duplicates" mark) keeps two records apart,
  and is checked between every member of two groups before they are joined, so a chain of
  near matches never merges two records that conflict;
* reviewers' marks (:func:`mark_not_duplicates`, :func:`mark_duplicates`, stored append-only in
  the store's ``dedup_marks`` table) win over every rule in every later run: pass
  ``marks=current_marks(store)``, or call :func:`run`.

Rule names in the audit: ``pmid`` (same PMID), ``doi`` (same DOI, titles agreeing),
``fuzzy-title`` (bibliographic evidence), ``reviewer`` (a reviewer's mark).

The kept record of each group is chosen by :func:`choose_kept`: prefer a record with a PMID, then
one with an abstract, then the most complete (most non-empty fields), then the earliest (first
in the input order).  Its empty fields are filled from the group's other records (a DOI from the
RIS copy, for instance); nothing it has is overwritten.

The audit table lists every merged group: one row per member with the rule, score (100 for
identifier matches, the title ratio otherwise), the record it was matched to and the reasons of
that link in words.  ``n_removed`` (members minus groups) is the PRISMA "duplicates removed"
count.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import InputError, StoreError
from ..records import COLUMNS, LIST_COLUMNS, STRING_COLUMNS, conform
from ..store import RECORDS_VERSION, content_hash, decode_json, json_rows, record_id_for, utcnow
from . import dedup_match
from .dedup_match import ascii_fold as _ascii_fold

logger = logging.getLogger(__name__)

#: Title ratio (rapidfuzz ``fuzz.ratio``, 0-100, of cleaned titles) that is a title match on its own.
FUZZY_THRESHOLD = dedup_match.STRONG_TITLE
#: Rule names, strongest first.
RULES = ("pmid", "doi", "fuzzy-title", "reviewer")
_NON_WORD = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACE = re.compile(r"\s+")
_INITIALS = re.compile(r"^[A-Z]{1,4}$")

AUDIT_COLUMNS = ["group_id", "record_id", "kept", "rule", "score", "matched_to", "source", "row", "title", "reasons"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS dedup_runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    n_input INTEGER NOT NULL,
    n_unique INTEGER NOT NULL,
    n_removed INTEGER NOT NULL,
    threshold REAL NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dedup_audit (
    run_id INTEGER NOT NULL REFERENCES dedup_runs(run_id),
    group_id INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    kept INTEGER NOT NULL,
    rule TEXT,
    score REAL,
    matched_to TEXT,
    source TEXT,
    row INTEGER,
    title TEXT,
    reasons TEXT
);
CREATE TABLE IF NOT EXISTS dedup_uncertain (
    run_id INTEGER NOT NULL REFERENCES dedup_runs(run_id),
    record_id_1 TEXT NOT NULL,
    record_id_2 TEXT NOT NULL,
    score REAL,
    reasons TEXT
);
CREATE TABLE IF NOT EXISTS dedup_records (
    run_id INTEGER NOT NULL REFERENCES dedup_runs(run_id),
    position INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
);
"""
#: Content-addressed record copies (issue 15): a saved run's ``dedup_records.data`` holds
#: ``CONTENT_REF + <content hash>`` (sha256 of the record's JSON).  The JSON itself is stored once:
#: in ``record_contents`` when it is not the record's stored JSON (a kept record filled from its
#: group, a record changed by the caller); otherwise it *is* ``records.data`` of that record_id, and
#: the triggers below copy it into ``record_contents`` before a later search replaces (or anything
#: deletes) that row, so every saved run reads back as it was saved.  ``dedup_digests`` lets
#: :func:`save` see that nothing changed.
CONTENT_SCHEMA = """
CREATE TABLE IF NOT EXISTS record_contents (
    content_hash TEXT PRIMARY KEY,     -- sha256 of data
    data TEXT NOT NULL                 -- a record's row as JSON (all columns but record_id)
);
CREATE TABLE IF NOT EXISTS dedup_digests (
    run_id INTEGER PRIMARY KEY REFERENCES dedup_runs(run_id),
    digest TEXT NOT NULL               -- sha256 over the run's counts, audit and (record_id, content hash) list
);
CREATE INDEX IF NOT EXISTS dedup_records_record ON dedup_records(record_id);
CREATE TRIGGER IF NOT EXISTS dedup_contents_before_update BEFORE UPDATE OF data ON records
WHEN NEW.data IS NOT OLD.data BEGIN
    INSERT OR IGNORE INTO record_contents(content_hash, data)
    SELECT DISTINCT substr(d.data, 8), OLD.data FROM dedup_records d
    WHERE d.record_id = OLD.record_id AND substr(d.data, 1, 7) = 'sha256:'
      AND NOT EXISTS (SELECT 1 FROM record_contents c WHERE c.content_hash = substr(d.data, 8));
END;
CREATE TRIGGER IF NOT EXISTS dedup_contents_before_delete BEFORE DELETE ON records BEGIN
    INSERT OR IGNORE INTO record_contents(content_hash, data)
    SELECT DISTINCT substr(d.data, 8), OLD.data FROM dedup_records d
    WHERE d.record_id = OLD.record_id AND substr(d.data, 1, 7) = 'sha256:'
      AND NOT EXISTS (SELECT 1 FROM record_contents c WHERE c.content_hash = substr(d.data, 8));
END;
"""
#: Prefix of a ``dedup_records.data`` value that names a row of ``record_contents``.
CONTENT_REF = "sha256:"


@dataclass
class DedupResult:
    """The outcome of :func:`deduplicate`.

    Attributes
    ----------
    records : pandas.DataFrame
        The unique records (records table columns, ``record_id`` first), in input order.
    audit : pandas.DataFrame
        One row per member of every merged group: group_id, record_id, kept (bool),
        rule ('pmid', 'doi', 'fuzzy-title', 'reviewer'; None for the kept record), score (0-100),
        matched_to (record_id of the member it matched), source, row (input position), title,
        reasons (the evidence of that link, in words).
    n_removed : int
        Records removed as duplicates (PRISMA "duplicates removed").
    n_input : int
        Records given.
    threshold : float
        The fuzzy title threshold used.
    groups : int
        Merged groups.
    uncertain : pandas.DataFrame
        Pairs that look close but are not proven duplicates, for a person to decide
        (record_id_1, record_id_2, score, reasons, title_1, title_2); never merged.
    """

    records: pd.DataFrame
    audit: pd.DataFrame
    n_removed: int
    n_input: int = 0
    threshold: float = FUZZY_THRESHOLD
    groups: int = field(default=0)
    uncertain: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=UNCERTAIN_COLUMNS))

    @property
    def removed_ids(self) -> set[str]:
        """Record ids that were removed and are not also the id of a kept record."""
        if self.audit.empty:
            return set()
        kept = set(self.audit.loc[self.audit["kept"].astype(bool), "record_id"])
        return set(self.audit.loc[~self.audit["kept"].astype(bool), "record_id"]) - kept

    def summary(self) -> pd.DataFrame:
        """Counts of removed records per rule (for the report)."""
        removed = self.audit[~self.audit["kept"].astype(bool)] if not self.audit.empty else self.audit
        counts = removed.groupby("rule").size() if len(removed) else pd.Series(dtype=int)
        return pd.DataFrame({"rule": list(RULES), "removed": [int(counts.get(r, 0)) for r in RULES]})


# -- normalisation ----------------------------------------------------------
def normalise_doi(doi: Any) -> str | None:
    """A DOI in comparable form (see :func:`reviewlib.screening.dedup_match.normalise_doi`).

    Examples
    --------
    >>> normalise_doi(" https://doi.org/10.1056/NEJMoa2308917 ")
    '10.1056/nejmoa2308917'
    >>> normalise_doi("doi: 10.1/ABC.")
    '10.1/abc'
    """
    return dedup_match.normalise_doi(doi)


def normalise_title(title: Any) -> str:
    """A title in comparable form: lower case, accents and punctuation stripped, spaces collapsed.

    Examples
    --------
    >>> normalise_title("[Statins in Sjögren's disease].")
    'statins in sjogren s disease'
    """
    if not isinstance(title, str):
        return ""
    text = _ascii_fold(title).lower()
    text = _NON_WORD.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def first_author_surname(authors: Any) -> str:
    """The first author's surname, normalised, from PubMed/MEDLINE ("de Hoon MJ") or RIS ("de Hoon, Michiel").

    Examples
    --------
    >>> first_author_surname(["de Hoon MJ", "Imoto S"])
    'de hoon'
    >>> first_author_surname(["Müller, Fabian"])
    'muller'
    """
    if not isinstance(authors, (list, tuple)) or not authors:
        return ""
    first = str(authors[0]).strip()
    if not first:
        return ""
    if "," in first:
        surname = first.split(",", 1)[0]
    else:
        parts = first.split()
        surname = " ".join(parts[:-1]) if len(parts) > 1 and _INITIALS.match(parts[-1]) else first
    return normalise_title(surname)


# -- the algorithm ------------------------------------------------------------
class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[max(ra, rb)] = min(ra, rb)
        return True


def _links_from(kept: int, edges: Mapping[int, list[tuple]], blank: tuple = ()) -> dict[int, tuple]:
    """Breadth-first from the kept record of a group: ``{member: (the member it was reached from, *that
    edge's data)}``, so each member's rule is the link that reached it; the kept one maps to
    ``(None, *blank)``.  ``edges[i]`` lists ``(j, *data)`` for every link of ``i``."""
    via: dict[int, tuple] = {kept: (None, *blank)}
    queue = [kept]
    while queue:
        cur = queue.pop(0)
        for nxt, *data in edges.get(cur, ()):
            if nxt not in via:
                via[nxt] = (cur, *data)
                queue.append(nxt)
    return via


def _clean_id(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    return text or None


def _completeness(row: dict[str, Any]) -> int:
    return sum(_has(row.get(col)) for col in COLUMNS)


def choose_kept(rows: list[dict[str, Any]], positions: list[int]) -> int:
    """Index (into ``positions``) of the record a group keeps.

    Preference: a record with a PMID, then one with an abstract, then the most
    complete (most non-empty fields), then the earliest in the input.
    """
    def key(k: int) -> tuple:
        row = rows[k]
        return (0 if _clean_id(row.get("pmid")) else 1,
                0 if _clean_id(row.get("abstract")) else 1,
                -_completeness(row),
                positions[k])
    return min(range(len(rows)), key=key)


class _Rows:
    """Row dicts on demand from column lists (no DataFrame.to_dict of the whole table)."""

    def __init__(self, columns: dict[str, list], n: int):
        self.columns, self.n = columns, n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {c: v[i] for c, v in self.columns.items()}

    def __len__(self) -> int:
        return self.n


def _pair_rule(i: int, j: int, f) -> str:
    if f.pmids[i] and f.pmids[i] == f.pmids[j]:
        return "pmid"
    if f.dois[i] and f.dois[i] == f.dois[j]:
        return "doi"
    return "fuzzy-title"


UNCERTAIN_COLUMNS = ["record_id_1", "record_id_2", "score", "reasons", "title_1", "title_2"]


def deduplicate(records: pd.DataFrame, threshold: float = FUZZY_THRESHOLD,
                marks: "pd.DataFrame | None" = None) -> DedupResult:
    """Merge duplicate records across sources, on evidence (see :mod:`reviewlib.screening.dedup_match`).

    Parameters
    ----------
    records : pandas.DataFrame
        A records table (:data:`reviewlib.records.COLUMNS`), possibly the
        concatenation of several readers' output; a ``record_id`` column is used
        when present, else computed with :func:`reviewlib.store.record_id_for`.
        Optional ``volume``, ``issue`` and ``pages`` columns are used as evidence.
    threshold : float
        Title ratio (0-100) that is a title match on its own (default 95).
    marks : pandas.DataFrame, optional
        Reviewers' marks (:func:`current_marks`): pairs to keep apart and records to merge.
        They win over every rule.

    Returns
    -------
    DedupResult
        Unique records, the audit of merged groups (with each link's reasons), the pairs
        left for a person (``uncertain``) and the number removed.

    Examples
    --------
    >>> result = deduplicate(records, marks=current_marks(store))   # doctest: +SKIP
    >>> result.n_removed, result.audit.head(), result.uncertain       # doctest: +SKIP
    """
    has_id = "record_id" in records.columns
    frame = records.drop(columns=["record_id"]) if has_id else records
    frame = frame.reset_index(drop=True) if _conformed(frame) else conform(frame)
    n = len(frame)
    columns = {c: frame[c].tolist() for c in frame.columns}
    rows = _Rows(columns, n)
    ids = list(records["record_id"]) if has_id else [record_id_for(rows[i]) for i in range(n)]
    f = dedup_match.features(frame)
    position: dict[str, list[int]] = defaultdict(list)
    for i, rid in enumerate(ids):
        position[rid].append(i)
    apart, together = _mark_pairs(marks, position)

    uf = _UnionFind(n)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    pmid_sets: dict[int, set] = {i: ({f.pmids[i]} - {None}) for i in range(n)}
    edges: dict[int, list[tuple[int, str, float, str]]] = defaultdict(list)

    def blocked(i: int, j: int, direct_pmid_twins: bool) -> str | None:
        ri, rj = uf.find(i), uf.find(j)
        pa, pb = pmid_sets[ri], pmid_sets[rj]
        if pa and pb and not pa & pb and not (direct_pmid_twins and len(pa) == len(pb) == 1):
            return "the groups hold different PMIDs"
        for a in members[ri]:
            for b in members[rj]:
                if (min(a, b), max(a, b)) in apart:
                    return "a reviewer marked them not duplicates"
                if f.pmids[a] and f.pmids[a] == f.pmids[b]:
                    continue
                why = dedup_match.hard_conflict(a, b, f)
                if why:
                    return f"{why} ({ids[a]} / {ids[b]})"
        return None

    def link(i: int, j: int, rule: str, score: float, reasons: str) -> None:
        ri, rj = uf.find(i), uf.find(j)
        if uf.union(i, j):
            root = uf.find(i)
            other = rj if root == ri else ri
            members[root].extend(members.pop(other))
            pmid_sets[root] |= pmid_sets.pop(other)
            edges[i].append((j, rule, score, reasons))
            edges[j].append((i, rule, score, reasons))

    for i, j in together:
        link(i, j, "reviewer", 100.0, "merged by a reviewer's mark")
    proven, uncertain = [], []
    for i, j, _ in dedup_match.candidate_pairs(f):
        if (i, j) in apart:
            continue
        verdict, reasons, ratio = dedup_match.judge(i, j, f, strong=threshold)
        if verdict == "duplicate":
            proven.append((i, j, _pair_rule(i, j, f), round(ratio, 1), reasons))
        elif verdict == "uncertain":
            uncertain.append((i, j, round(ratio, 1), reasons))
    order = {"pmid": 0, "doi": 1, "fuzzy-title": 2}
    proven.sort(key=lambda p: (order[p[2]], -p[3], p[0], p[1]))
    n_fuzzy = 0
    for i, j, rule, score, reasons in proven:
        if uf.find(i) == uf.find(j):
            continue
        why = blocked(i, j, direct_pmid_twins=bool(f.pmids[i] and f.pmids[j]))
        if why:
            uncertain.append((i, j, score, f"{reasons}; not merged: {why}"))
            continue
        link(i, j, rule, 100.0 if rule in ("pmid", "doi") else score, reasons)
        n_fuzzy += rule == "fuzzy-title"
    uncertain_rows = [{"record_id_1": ids[i], "record_id_2": ids[j], "score": s, "reasons": r,
                       "title_1": columns["title"][i], "title_2": columns["title"][j]}
                      for i, j, s, r in sorted(uncertain) if uf.find(i) != uf.find(j)]

    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[uf.find(i)].append(i)

    keep_rows: list[int] = []
    filled: dict[int, dict[str, Any]] = {}
    audit_rows: list[dict[str, Any]] = []
    group_no = 0
    for root in sorted(groups):
        group = groups[root]
        if len(group) == 1:
            keep_rows.append(group[0])
            continue
        group_no += 1
        kept = group[choose_kept([rows[m] for m in group], group)]
        keep_rows.append(kept)
        filled[kept] = _fill_from(rows[kept], [rows[m] for m in group if m != kept])
        via = _links_from(kept, edges, blank=(None, None, None))
        for m in sorted(group):
            parent, rule, score, reasons = via[m]
            audit_rows.append({"group_id": group_no, "record_id": ids[m], "kept": m == kept, "rule": rule,
                               "score": score, "matched_to": ids[parent] if parent is not None else None,
                               "source": columns["source"][m], "row": m, "title": columns["title"][m],
                               "reasons": reasons})

    kept_sorted = sorted(keep_rows)
    out_columns = {c: [filled[k][c] if k in filled else values[k] for k in kept_sorted]
                   for c, values in columns.items()}
    unique = _table_like(frame, out_columns) if kept_sorted else frame.iloc[:0]
    unique.insert(0, "record_id", [ids[k] for k in kept_sorted])
    audit = pd.DataFrame(audit_rows, columns=AUDIT_COLUMNS)
    audit["kept"] = audit["kept"].astype(bool)
    audit["score"] = audit["score"].astype(float)
    n_removed = n - len(keep_rows)
    logger.info("dedup: %d records -> %d unique (%d duplicates removed in %d groups; %d fuzzy links; "
                "%d uncertain pairs left for a person)", n, len(keep_rows), n_removed, group_no, n_fuzzy,
                len(uncertain_rows))
    return DedupResult(records=unique, audit=audit, n_removed=n_removed, n_input=n, threshold=threshold,
                       groups=group_no, uncertain=pd.DataFrame(uncertain_rows, columns=UNCERTAIN_COLUMNS))


def _conformed(frame: pd.DataFrame) -> bool:
    """``conform(frame)`` would change nothing but the index: the records columns first, lists in the list
    columns, strings or None in the string columns, year Int64 (a table the store or a reader made)."""
    if list(frame.columns[:len(COLUMNS)]) != COLUMNS or str(frame["year"].dtype) != "Int64":
        return False
    for col in LIST_COLUMNS + ["abstract_sections"]:
        if frame[col].dtype != object or not set(map(type, frame[col].tolist())) <= {list}:
            return False
    for col in STRING_COLUMNS:
        if frame[col].dtype != object or not set(map(type, frame[col].tolist())) <= {str, type(None)}:
            return False
    return True


def _table_like(frame: pd.DataFrame, columns: dict[str, list]) -> pd.DataFrame:
    """``conform(pd.DataFrame(columns))`` for values taken from ``frame``, a conformed table (each value is
    one of its cells): the records columns with conform's dtypes (object; year Int64), other columns as
    pandas infers them."""
    out = {}
    for col, values in columns.items():
        if col == "year":
            out[col] = pd.array(values, dtype="Int64")
        elif col in COLUMNS:
            out[col] = pd.Series(values, dtype=object)
        else:
            out[col] = pd.Series(values)
    return pd.DataFrame(out, columns=frame.columns)   # (lists, strings or None, as in frame: conformed)


def _has(v: Any) -> bool:
    if isinstance(v, list):
        return bool(v)
    return v is not None and v is not pd.NA and not (isinstance(v, float) and np.isnan(v)) and bool(str(v).strip())


def _fill_from(kept: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    """The kept record with its empty fields filled from the others (first non-empty wins)."""
    out = dict(kept)
    for col in COLUMNS:
        if col == "source" or _has(out.get(col)):
            continue
        for other in others:
            if _has(other.get(col)):
                out[col] = other[col]
                break
    return out


# -- persistence --------------------------------------------------------------
def _ensure_schema(store) -> None:
    store.ensure_schema(SCHEMA)
    cols = {r["name"] for r in store.connection.execute("PRAGMA table_info(dedup_audit)")}
    if "reasons" not in cols:          # stores written before the audit kept reasons
        store.connection.execute("ALTER TABLE dedup_audit ADD COLUMN reasons TEXT")


def _contents(records: pd.DataFrame, cols: list[str], ids: list[str],
              known: list[str | None]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """({content hash: JSON} of the rows whose hash is not ``known``, [(record_id, content hash)] of every row).

    A known hash (:meth:`ReviewStore.stored_content_hashes`) is the sha256 of the record's stored JSON,
    which is what encoding the row gives (the store wrote it with this encoder from these values)."""
    contents: dict[str, str] = {}
    digests = list(known)
    todo = [i for i, h in enumerate(known) if h is None]
    if todo:
        encode = json.JSONEncoder(ensure_ascii=False).encode      # what json.dumps(row, ensure_ascii=False) makes
        part = records if len(todo) == len(ids) else records.iloc[todo]
        for i, row in zip(todo, json_rows(part, cols)):
            data = encode(row)
            digest = content_hash(data)
            contents[digest] = data
            digests[i] = digest
    return contents, list(zip(ids, digests))


def save(store, result: DedupResult) -> int:
    """Save a deduplication result in the review store (one transaction); returns its run id.

    The latest saved run is what :func:`load` returns and what PRISMA counts.  Each record's
    content is stored once, by its hash (the store's own ``records.data`` for a record unchanged since
    :meth:`ReviewStore.records` decoded it, else ``record_contents``); a result identical to the latest
    saved run (same counts, audit and records) is not saved again: its run id is returned, so an
    unchanged rerun adds nothing to the store.
    """
    _ensure_schema(store)
    store.ensure_schema(CONTENT_SCHEMA)
    cols = [c for c in result.records.columns if c != "record_id"]
    ids = result.records["record_id"].tolist()
    # rows that are the store's records as decoded (most of them): their JSON is records.data already
    version, hashes = store.stored_content_hashes(result.records)
    by_reference = any(h is not None for h in hashes)
    contents, refs = _contents(result.records, cols, ids, hashes)
    audit_rows = [(int(r.group_id), r.record_id, int(bool(r.kept)), r.rule,
                   None if pd.isna(r.score) else float(r.score), r.matched_to, r.source,
                   None if pd.isna(r.row) else int(r.row), r.title, r.reasons)
                  for r in result.audit.itertuples(index=False)]
    uncertain_rows = [(r.record_id_1, r.record_id_2, None if pd.isna(r.score) else float(r.score), r.reasons)
                      for r in result.uncertain.itertuples(index=False)]
    run_digest = hashlib.sha256(json.dumps(
        [result.n_input, len(result.records), result.n_removed, float(result.threshold), cols, audit_rows,
         uncertain_rows, refs], ensure_ascii=False, default=str).encode("utf-8")).hexdigest()
    con = store.connection
    latest = con.execute("SELECT r.run_id, d.digest FROM dedup_runs r LEFT JOIN dedup_digests d USING(run_id) "
                         "ORDER BY r.run_id DESC LIMIT 1").fetchone()
    if latest is not None and latest["digest"] == run_digest:
        logger.info("dedup: result unchanged since run %d, not saved again", latest["run_id"])
        return int(latest["run_id"])
    with store.transaction() as con:
        if by_reference and store.get_meta(RECORDS_VERSION) != version:
            # records were written since they were compared: store every row's JSON as before
            contents, refs = _contents(result.records, cols, ids, [None] * len(ids))
        cur = con.execute("INSERT INTO dedup_runs(n_input, n_unique, n_removed, threshold, created_at) "
                          "VALUES(?, ?, ?, ?, ?)", (result.n_input, len(result.records), result.n_removed,
                                                    result.threshold, utcnow()))
        run_id = int(cur.lastrowid)
        con.execute("INSERT INTO dedup_digests(run_id, digest) VALUES(?, ?)", (run_id, run_digest))
        con.executemany(
            "INSERT INTO dedup_audit(run_id, group_id, record_id, kept, rule, score, matched_to, source, row, "
            "title, reasons) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [(run_id, *row) for row in audit_rows])
        con.executemany("INSERT INTO dedup_uncertain VALUES(?, ?, ?, ?, ?)",
                        [(run_id, *row) for row in uncertain_rows])
        con.executemany("INSERT OR IGNORE INTO record_contents(content_hash, data) VALUES(?, ?)",
                        list(contents.items()))
        con.executemany("INSERT INTO dedup_records VALUES(?, ?, ?, ?)",
                        [(run_id, pos, rid, CONTENT_REF + digest) for pos, (rid, digest) in enumerate(refs)])
    logger.info("dedup: saved run %d (%d removed) in %s", run_id, result.n_removed, store.path)
    return run_id


def saved_counts(store) -> tuple[int, int] | None:
    """(records removed, records kept) by the latest saved deduplication, without reading its records.

    The counts :func:`load` would give as ``n_removed`` and ``len(records)``; None if none was saved.
    """
    _ensure_schema(store)
    run = store.connection.execute("SELECT n_removed, n_unique FROM dedup_runs ORDER BY run_id DESC LIMIT 1").fetchone()
    return None if run is None else (int(run["n_removed"]), int(run["n_unique"]))


def load(store) -> DedupResult | None:
    """The latest deduplication result saved in the store, or None if none was saved."""
    _ensure_schema(store)
    con = store.connection
    run = con.execute("SELECT * FROM dedup_runs ORDER BY run_id DESC LIMIT 1").fetchone()
    if run is None:
        return None
    audit = pd.read_sql_query(
        "SELECT group_id, record_id, kept, rule, score, matched_to, source, row, title, reasons FROM dedup_audit "
        "WHERE run_id=? ORDER BY group_id, row", con, params=(run["run_id"],))
    audit["kept"] = audit["kept"].astype(bool)
    audit["score"] = audit["score"].astype(float)
    uncertain = pd.read_sql_query("SELECT record_id_1, record_id_2, score, reasons FROM dedup_uncertain "
                                  "WHERE run_id=? ORDER BY rowid", con, params=(run["run_id"],))
    store.ensure_schema(CONTENT_SCHEMA)
    # runs saved before content addressing hold the JSON itself; later ones a reference to its content:
    # a row of record_contents, else the record's stored JSON (checked against the hash)
    cur = con.cursor()
    cur.row_factory = None
    rows = cur.execute(
        "SELECT d.record_id, d.data, c.data, r.data FROM dedup_records d "
        "LEFT JOIN record_contents c ON substr(d.data, 1, ?) = ? AND c.content_hash = substr(d.data, ?) "
        "LEFT JOIN records r ON c.data IS NULL AND substr(d.data, 1, ?) = ? AND r.record_id = d.record_id "
        "WHERE d.run_id=? ORDER BY d.position",
        (len(CONTENT_REF), CONTENT_REF, len(CONTENT_REF) + 1, len(CONTENT_REF), CONTENT_REF, run["run_id"])).fetchall()
    texts = []
    for rid, ref, content, stored in rows:
        if content is None and ref.startswith(CONTENT_REF):
            if stored is None or content_hash(stored) != ref[len(CONTENT_REF):]:
                raise StoreError(f"dedup run {run['run_id']} in {store.path}: the content of record {rid} it saved "
                                 "is gone (was the records table changed outside reviewlib?); run the "
                                 "deduplication again (`reviewlib dedup run`)")
            content = stored
        texts.append(ref if content is None else content)
    if rows:
        records = conform(pd.DataFrame(list(map(decode_json, texts))))
        records.insert(0, "record_id", [r[0] for r in rows])
    else:
        records = conform(pd.DataFrame({c: [] for c in COLUMNS}))
        records.insert(0, "record_id", pd.Series([], dtype=object))
    titles = dict(zip(records["record_id"], records["title"]))
    uncertain["title_1"] = uncertain["record_id_1"].map(titles)
    uncertain["title_2"] = uncertain["record_id_2"].map(titles)
    return DedupResult(records=records, audit=audit, n_removed=int(run["n_removed"]), n_input=int(run["n_input"]),
                       threshold=float(run["threshold"]), groups=int(audit["group_id"].nunique()),
                       uncertain=uncertain[UNCERTAIN_COLUMNS])


# -- reviewers' marks ------------------------------------------------------------
#: The record_id prefix of registrations (ClinicalTrials.gov records).
REGISTRATION_PREFIX = "nct:"


def _check_mark(store, record_ids: list[str], reviewer: str) -> list[str]:
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise InputError("dedup mark: no reviewer given; say who decides (e.g. --reviewer ana)")
    ids = list(dict.fromkeys(str(r).strip() for r in record_ids if str(r).strip()))
    if len(ids) < 2:
        raise InputError(f"dedup mark: {len(ids)} record id(s) given ({', '.join(ids) or 'none'}); "
                         "a mark needs two or more records")
    known = {r[0] for r in store.connection.execute("SELECT record_id FROM records")}
    unknown = [r for r in ids if r not in known]
    if unknown:
        raise InputError(f"dedup mark: record {unknown[0]!r} is not in the store {store.path}; "
                         "use the record_id shown in the dedup audit (e.g. pmid:123, doi:10....)", source=unknown[0])
    registrations = [r for r in ids if r.startswith(REGISTRATION_PREFIX)]
    if registrations and len(registrations) < len(ids):
        publication = next(r for r in ids if not r.startswith(REGISTRATION_PREFIX))
        raise InputError(f"dedup mark: {registrations[0]} is a registration and {publication} a publication; a "
                         "publication reports a registered trial, it is not a duplicate of it (the two are linked "
                         "by the trial number): mark registrations with registrations, publications with "
                         "publications", source=registrations[0])
    return ids


def mark_not_duplicates(store, record_ids: list[str], reviewer: str, note: str | None = None) -> int:
    """Record that these records are not duplicates of each other: every later run keeps each pair apart.

    Stored like a decision: attributed, append-only, durable once this returns (its mark id).
    """
    ids = _check_mark(store, record_ids, reviewer)
    mark = store.append_dedup_mark("not-duplicates", ids, reviewer.strip(), note)
    logger.info("dedup: %s marked %s as not duplicates (mark %d)", reviewer, ", ".join(ids), mark)
    return mark


def mark_duplicates(store, record_ids: list[str], reviewer: str, note: str | None = None) -> int:
    """Record that these records are one report: every later run merges them (rule 'reviewer')."""
    ids = _check_mark(store, record_ids, reviewer)
    mark = store.append_dedup_mark("duplicates", ids, reviewer.strip(), note)
    logger.info("dedup: %s marked %s as duplicates (mark %d)", reviewer, ", ".join(ids), mark)
    return mark


def withdraw_mark(store, mark_id: int, reviewer: str, note: str | None = None) -> int:
    """Withdraw an earlier mark (appends a row; the history stays)."""
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise InputError("dedup withdraw: no reviewer given; say who decides (e.g. --reviewer ana)")
    marks = store.dedup_marks()
    if not ((marks["mark_id"] == int(mark_id)) & (marks["kind"] != "withdraw")).any():
        raise InputError(f"dedup withdraw: no mark {mark_id} in {store.path}; list them with `reviewlib dedup marks`")
    return store.append_dedup_mark("withdraw", [], reviewer.strip(), note, withdraws=int(mark_id))


def current_marks(store) -> pd.DataFrame:
    """The marks in force (not withdrawn), oldest first: mark_id, kind, record_ids (list), reviewer, note, created_at."""
    marks = store.dedup_marks()
    withdrawn = set(marks.loc[marks["kind"] == "withdraw", "withdraws"].dropna().astype(int))
    live = marks[(marks["kind"] != "withdraw") & ~marks["mark_id"].isin(withdrawn)].copy()
    live["record_ids"] = [json.loads(v) for v in live["record_ids"]]
    return live.drop(columns=["withdraws"]).reset_index(drop=True)


def _mark_pairs(marks: pd.DataFrame | None, position: dict[str, list[int]]):
    """(pairs kept apart, pairs merged) as position pairs; for one pair the latest mark wins."""
    if marks is None or len(marks) == 0:
        return set(), []
    latest: dict[tuple[str, str], str] = {}
    chains: list[tuple[str, list[str]]] = []
    for kind, ids in zip(marks["kind"], marks["record_ids"]):
        ids = [i for i in ids if i in position]
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                latest[tuple(sorted((ids[a], ids[b])))] = kind
        chains.append((kind, ids))
    apart, together = set(), []
    for (a, b), kind in latest.items():
        for i in position[a]:
            for j in position[b]:
                pair = (min(i, j), max(i, j))
                if kind == "not-duplicates":
                    apart.add(pair)
                else:
                    together.append(pair)
    return apart, sorted(together)


def run(store, records: pd.DataFrame | None = None) -> DedupResult:
    """Deduplicate the store's records (or ``records``) honouring every reviewer's mark, and save the result.

    Publications and registrations are deduplicated as notebook 02 does
    (:func:`reviewlib.screening.registrations.deduplicate`): registrations only among themselves.
    """
    from .registrations import deduplicate as deduplicate_both
    result = deduplicate_both(store.records() if records is None else records, store.trials(),
                              marks=current_marks(store))
    save(store, result)
    return result


def screening_records(store) -> pd.DataFrame:
    """The store's records without those the latest saved deduplication removed.

    This is the set a reviewer screens.  Without a saved result, every record.
    """
    records = store.records()
    removed = _latest_removed_ids(store)
    if removed is None:
        return records
    return records[~records["record_id"].isin(removed)].reset_index(drop=True)


def _latest_removed_ids(store) -> set[str] | None:
    """``load(store).removed_ids`` from the audit table alone (``load`` decodes every record too:
    seconds at 100,000); None without a saved result."""
    _ensure_schema(store)
    con = store.connection
    run = con.execute("SELECT run_id FROM dedup_runs ORDER BY run_id DESC LIMIT 1").fetchone()
    if run is None:
        return None
    rows = con.execute("SELECT record_id, kept FROM dedup_audit WHERE run_id=?", (run["run_id"],)).fetchall()
    kept = {r["record_id"] for r in rows if bool(r["kept"])}
    return {r["record_id"] for r in rows if not bool(r["kept"])} - kept


# -- command line ------------------------------------------------------------------
def configure_parser(parser) -> None:
    """Options of ``reviewlib dedup``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("run", help="deduplicate the store's records (honouring every mark) and save the result")
    p.add_argument("--store", required=True, help="the review store (review.sqlite)")
    p = sub.add_parser("mark", help="mark records as not duplicates (kept apart) or as duplicates (merged)")
    p.add_argument("--store", required=True, help="the review store (review.sqlite)")
    p.add_argument("--reviewer", required=True, help="who decides")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--not-duplicates", dest="kind", action="store_const", const="not-duplicates",
                      help="keep every pair of these records apart in every later run")
    kind.add_argument("--duplicates", dest="kind", action="store_const", const="duplicates",
                      help="merge these records in every later run")
    p.add_argument("--note", help="why (kept with the mark)")
    p.add_argument("record_ids", nargs="+", metavar="RECORD_ID", help="record ids as in the audit (two or more)")
    p = sub.add_parser("withdraw", help="withdraw an earlier mark (the history stays)")
    p.add_argument("--store", required=True, help="the review store (review.sqlite)")
    p.add_argument("--reviewer", required=True, help="who decides")
    p.add_argument("mark_id", type=int, help="the mark's id (see `reviewlib dedup marks`)")
    p = sub.add_parser("marks", help="list the marks in force")
    p.add_argument("--store", required=True, help="the review store (review.sqlite)")
    p = sub.add_parser("uncertain", help="list the pairs the latest run left for a person to decide")
    p.add_argument("--store", required=True, help="the review store (review.sqlite)")


def run_cli(args) -> int:
    """Run ``reviewlib dedup run|mark|withdraw|marks|uncertain``; returns the exit code."""
    from pathlib import Path

    from ..store import ReviewStore
    if not Path(args.store).is_file():
        raise InputError(f"review store not found: {args.store}: give the review.sqlite of an existing review",
                         source=args.store)
    store = ReviewStore(args.store)
    try:
        if args.action == "run":
            result = run(store)
            print(f"{result.n_input} records, {result.n_removed} duplicates removed in {result.groups} groups, "
                  f"{len(result.uncertain)} uncertain pairs left for a person")
        elif args.action == "mark":
            mark = (mark_not_duplicates if args.kind == "not-duplicates" else mark_duplicates)(
                store, args.record_ids, args.reviewer, note=args.note)
            print(f"mark {mark}: {args.kind} {' '.join(args.record_ids)} by {args.reviewer}; "
                  "it holds from the next `reviewlib dedup run` (or review run) on")
        elif args.action == "withdraw":
            mark = withdraw_mark(store, args.mark_id, args.reviewer)
            print(f"mark {args.mark_id} withdrawn (row {mark})")
        elif args.action == "marks":
            for m in current_marks(store).itertuples(index=False):
                print(f"{m.mark_id}\t{m.kind}\t{' '.join(m.record_ids)}\t{m.reviewer}\t{m.created_at}\t{m.note or ''}")
        else:
            result = load(store)
            if result is None:
                raise InputError(f"no deduplication saved in {args.store}; run `reviewlib dedup run --store "
                                 f"{args.store}` first", source=args.store)
            for u in result.uncertain.itertuples(index=False):
                print(f"{u.record_id_1}\t{u.record_id_2}\t{u.score}\t{u.reasons}")
    finally:
        store.close()
    return 0
