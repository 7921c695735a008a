"""Deduplication of a review's records across sources (PubMed, MEDLINE, RIS, OpenAlex).

Records of one study reach a review several times: the same PubMed entry from
two searches, a reference-manager export (RIS) without the PMID, a MEDLINE file.
:func:`deduplicate` merges them in three passes, each a documented rule:

``pmid``
    Same PMID (exact, digits only).
``doi``
    Same DOI after normalisation (:func:`normalise_doi`: lower case, no
    ``https://doi.org/``, ``doi.org/`` or ``doi:`` prefix, trimmed).
``fuzzy-title``
    Same study by bibliographic match: normalised titles (:func:`normalise_title`:
    lower case, accents and punctuation stripped, whitespace collapsed) with a
    rapidfuzz ``fuzz.ratio`` >= :data:`FUZZY_THRESHOLD` (95 by default), years
    within one of each other (or missing), the same first-author surname
    (:func:`first_author_surname`, when both records have authors), the same
    numbers in both titles ("phase 1" / "phase 2", "part I" / "part II" never
    merge), and no conflicting DOIs.  Two records with different PMIDs (PubMed's
    own duplicate citations) merge only under a stricter test: ratio >=
    :data:`PMID_CONFLICT_THRESHOLD` (98), the same year and the same first
    author.  A ratio of 95 tolerates hyphens, case and a changed short word in
    a title of about 100 characters.

Fuzzy matching is blocked, never all-pairs: records are compared only with
records of the same first-author surname (or, for records without authors, the
same first title word) in the same or the next publication year, with
``rapidfuzz.process.cdist`` inside each block, so 10,000 records dedup in about
a second on one core (tests/test_dedup.py runs such a set).

The kept record of each group is chosen by :func:`choose_kept`: prefer a
record with a PMID, then one with an abstract, then the most complete (most
non-empty fields), then the earliest (first in the input order).  Its empty
fields are filled from the group's other records (a DOI from the RIS copy, for
instance); nothing it has is overwritten.

The audit table lists every merged group: one row per member with the rule and
score (100 for identifier matches, the title ratio for fuzzy ones) of the link
that joined it to its group and the record it was matched to.  ``n_removed``
(members minus groups) is the PRISMA "duplicates removed" count.
"""
from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz import fuzz
from rapidfuzz.process import cdist

from ..records import COLUMNS, conform
from ..store import record_id_for, utcnow

logger = logging.getLogger(__name__)

#: Minimum rapidfuzz ``fuzz.ratio`` (0-100) between normalised titles for a fuzzy match.
FUZZY_THRESHOLD = 95.0
#: Stricter ratio for records whose PMIDs differ (PubMed's duplicate citations).
PMID_CONFLICT_THRESHOLD = 98.0
#: Rule names, strongest first.
RULES = ("pmid", "doi", "fuzzy-title")
#: Words skipped when taking a title's first word as a blocking key.
_STOP = {"a", "an", "the", "of", "on", "in", "and", "for", "to"}
_DOI_PREFIX = re.compile(r"^(?:https?://)?(?:dx\.)?(?:doi\.org/)|^doi:\s*", re.IGNORECASE)
_NON_WORD = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACE = re.compile(r"\s+")
_INITIALS = re.compile(r"^[A-Z]{1,4}$")
_NUMBERS = re.compile(r"\b(?:\d+|[ivx]{1,4})\b")

AUDIT_COLUMNS = ["group_id", "record_id", "kept", "rule", "score", "matched_to", "source", "row", "title"]

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
    title TEXT
);
CREATE TABLE IF NOT EXISTS dedup_records (
    run_id INTEGER NOT NULL REFERENCES dedup_runs(run_id),
    position INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
);
"""


@dataclass
class DedupResult:
    """The outcome of :func:`deduplicate`.

    Attributes
    ----------
    records : pandas.DataFrame
        The unique records (records table columns, ``record_id`` first), in input order.
    audit : pandas.DataFrame
        One row per member of every merged group: group_id, record_id, kept (bool),
        rule ('pmid', 'doi', 'fuzzy-title'; None for the kept record), score (0-100),
        matched_to (record_id of the member it matched), source, row (input position), title.
    n_removed : int
        Records removed as duplicates (PRISMA "duplicates removed").
    n_input : int
        Records given.
    threshold : float
        The fuzzy title threshold used.
    """

    records: pd.DataFrame
    audit: pd.DataFrame
    n_removed: int
    n_input: int = 0
    threshold: float = FUZZY_THRESHOLD
    groups: int = field(default=0)

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
    """A DOI in comparable form: lower case, no resolver or ``doi:`` prefix, trimmed.

    Examples
    --------
    >>> normalise_doi(" https://doi.org/10.1056/NEJMoa2308917 ")
    '10.1056/nejmoa2308917'
    >>> normalise_doi("doi: 10.1/ABC.")
    '10.1/abc'
    """
    if doi is None or (isinstance(doi, float) and np.isnan(doi)):
        return None
    text = str(doi).strip()
    for _ in range(2):
        text = _DOI_PREFIX.sub("", text).strip()
    text = text.rstrip(".").lower()
    return text if text.startswith("10.") else (text or None)


def _ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


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


def _clean_id(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    return text or None


def _completeness(row: dict[str, Any]) -> int:
    n = 0
    for col in COLUMNS:
        v = row.get(col)
        if isinstance(v, list):
            n += bool(v)
        elif v is not None and not (isinstance(v, float) and np.isnan(v)) and v is not pd.NA and str(v).strip():
            n += 1
    return n


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


def _fuzzy_pairs(titles: list[str], years: list[int | None], surnames: list[str],
                 pmids: list[str | None], dois: list[str | None], threshold: float):
    """Yield (i, j, score) for fuzzy title matches, comparing only within blocks."""
    by_author: dict[str, dict[Any, list[int]]] = defaultdict(lambda: defaultdict(list))
    by_token: dict[str, dict[Any, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, title in enumerate(titles):
        if not title:
            continue
        token = next((w for w in title.split() if w not in _STOP), title.split()[0])
        by_token[token][years[i]].append(i)
        if surnames[i]:
            by_author[surnames[i]][years[i]].append(i)
    seen: set[tuple[int, int]] = set()

    def compare(left: list[int], right: list[int], same: bool):
        if not left or not right:
            return
        scores = cdist([titles[i] for i in left], [titles[j] for j in right], scorer=fuzz.ratio,
                       score_cutoff=threshold, dtype=np.float32)
        for a, b in zip(*np.nonzero(scores)):
            i, j = left[a], right[b]
            if i == j or (same and i > j):
                continue
            pair = (min(i, j), max(i, j))
            if pair in seen:
                continue
            seen.add(pair)
            yield pair[0], pair[1], float(scores[a, b])

    def blocks(index: dict[str, dict[Any, list[int]]]):
        for by_year in index.values():
            known = sorted(y for y in by_year if y is not None)
            for y in known:
                yield by_year[y], by_year[y], True
                if y + 1 in by_year:
                    yield by_year[y], by_year[y + 1], False
            if None in by_year:
                everyone = [i for ids in by_year.values() for i in ids]
                yield by_year[None], everyone, False

    for left, right, same in blocks(by_author):
        yield from compare(left, right, same)
    # records without authors are compared with everyone sharing their title's first word
    for by_year in by_token.values():
        missing = {y: [i for i in ids if not surnames[i]] for y, ids in by_year.items()}
        if not any(missing.values()):
            continue
        for y, ids in missing.items():
            if not ids:
                continue
            if y is None:
                right = [i for v in by_year.values() for i in v]
            else:
                right = [i for yy in (y - 1, y, y + 1, None) for i in by_year.get(yy, [])]
            yield from compare(ids, right, False)


def _numbers(title: str) -> set[str]:
    return set(_NUMBERS.findall(title))


def _compatible(i: int, j: int, score: float, titles, years, surnames, pmids, dois) -> bool:
    if years[i] is not None and years[j] is not None and abs(years[i] - years[j]) > 1:
        return False
    if surnames[i] and surnames[j] and surnames[i] != surnames[j]:
        return False
    if dois[i] and dois[j] and dois[i] != dois[j]:
        return False
    if _numbers(titles[i]) != _numbers(titles[j]):
        return False
    if pmids[i] and pmids[j] and pmids[i] != pmids[j]:
        return _strict(i, j, score, years, surnames)
    return True


def _strict(i: int, j: int, score: float, years, surnames) -> bool:
    """The test two records with different PMIDs must pass to merge."""
    return (score >= PMID_CONFLICT_THRESHOLD and years[i] is not None and years[i] == years[j]
            and bool(surnames[i]) and surnames[i] == surnames[j])


def deduplicate(records: pd.DataFrame, threshold: float = FUZZY_THRESHOLD) -> DedupResult:
    """Merge duplicate records across sources.

    Parameters
    ----------
    records : pandas.DataFrame
        A records table (:data:`reviewlib.records.COLUMNS`), possibly the
        concatenation of several readers' output; a ``record_id`` column is used
        when present, else computed with :func:`reviewlib.store.record_id_for`.
    threshold : float
        Minimum ``fuzz.ratio`` (0-100) of normalised titles for a fuzzy match.

    Returns
    -------
    DedupResult
        Unique records, the audit of merged groups and the number removed.

    Examples
    --------
    >>> result = deduplicate(records)          # doctest: +SKIP
    >>> result.n_removed, result.audit.head()  # doctest: +SKIP
    """
    has_id = "record_id" in records.columns
    frame = conform(records.drop(columns=["record_id"]) if has_id else records)
    n = len(frame)
    rows = frame.to_dict("records")
    ids = list(records["record_id"]) if has_id else [record_id_for(r) for r in rows]
    pmids = [_clean_id(r.get("pmid")) for r in rows]
    dois = [normalise_doi(r.get("doi")) for r in rows]
    titles = [normalise_title(r.get("title")) for r in rows]
    years = [None if pd.isna(r.get("year")) else int(r.get("year")) for r in rows]
    surnames = [first_author_surname(r.get("authors")) for r in rows]

    uf = _UnionFind(n)
    edges: dict[int, list[tuple[int, str, float]]] = defaultdict(list)
    # identifiers held by each group (by root), so a fuzzy link never joins two groups whose
    # PMIDs or DOIs conflict, even through a third record that has neither
    ident: dict[int, tuple[set, set]] = {i: ({pmids[i]} - {None}, {dois[i]} - {None}) for i in range(n)}

    def conflict(i: int, j: int, score: float) -> bool:
        (pa, da), (pb, db) = ident[uf.find(i)], ident[uf.find(j)]
        if da and db and not da & db:
            return True
        if not (pa and pb) or pa & pb:
            return False
        # two PubMed citations merge only directly, never through a record without a PMID
        direct = pmids[i] is not None and pmids[j] is not None and len(pa) == len(pb) == 1
        return not (direct and _strict(i, j, score, years, surnames))

    def link(i: int, j: int, rule: str, score: float) -> None:
        ri, rj = uf.find(i), uf.find(j)
        if uf.union(i, j):
            root = uf.find(i)
            other = rj if root == ri else ri
            ident[root][0].update(ident[other][0])
            ident[root][1].update(ident[other][1])
            del ident[other]
            edges[i].append((j, rule, score))
            edges[j].append((i, rule, score))

    for rule, keys in (("pmid", pmids), ("doi", dois)):
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key is None:
                continue
            if key in first:
                link(first[key], i, rule, 100.0)
            else:
                first[key] = i
    n_fuzzy = 0
    for i, j, score in _fuzzy_pairs(titles, years, surnames, pmids, dois, threshold):
        if _compatible(i, j, score, titles, years, surnames, pmids, dois) and not conflict(i, j, score):
            link(i, j, "fuzzy-title", round(score, 1))
            n_fuzzy += 1

    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[uf.find(i)].append(i)

    keep_rows: list[int] = []
    merged: list[dict[str, Any]] = []
    audit_rows: list[dict[str, Any]] = []
    group_no = 0
    for root in sorted(groups):
        members = groups[root]
        if len(members) == 1:
            keep_rows.append(members[0])
            merged.append(rows[members[0]])
            continue
        group_no += 1
        kept = members[choose_kept([rows[m] for m in members], members)]
        keep_rows.append(kept)
        merged.append(_fill_from(rows[kept], [rows[m] for m in members if m != kept]))
        # breadth-first from the kept record: each member's rule is the link that reached it
        via: dict[int, tuple[int | None, str | None, float | None]] = {kept: (None, None, None)}
        queue = [kept]
        while queue:
            cur = queue.pop(0)
            for nxt, rule, score in edges[cur]:
                if nxt not in via:
                    via[nxt] = (cur, rule, score)
                    queue.append(nxt)
        for m in sorted(members):
            parent, rule, score = via[m]
            audit_rows.append({"group_id": group_no, "record_id": ids[m], "kept": m == kept, "rule": rule,
                               "score": score, "matched_to": ids[parent] if parent is not None else None,
                               "source": rows[m].get("source"), "row": m, "title": rows[m].get("title")})

    order = np.argsort(keep_rows, kind="stable")
    unique = conform(pd.DataFrame([merged[k] for k in order], columns=frame.columns)) if merged else frame.iloc[:0]
    unique.insert(0, "record_id", [ids[keep_rows[k]] for k in order])
    audit = pd.DataFrame(audit_rows, columns=AUDIT_COLUMNS)
    audit["kept"] = audit["kept"].astype(bool)
    audit["score"] = audit["score"].astype(float)
    n_removed = n - len(keep_rows)
    logger.info("dedup: %d records -> %d unique (%d duplicates removed in %d groups; %d fuzzy links)",
                n, len(keep_rows), n_removed, group_no, n_fuzzy)
    return DedupResult(records=unique, audit=audit, n_removed=n_removed, n_input=n, threshold=threshold,
                       groups=group_no)


def _fill_from(kept: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    """The kept record with its empty fields filled from the others (first non-empty wins)."""
    out = dict(kept)
    for col in COLUMNS:
        if col == "source":
            continue
        if _completeness({col: out.get(col)}):
            continue
        for other in others:
            if _completeness({col: other.get(col)}):
                out[col] = other[col]
                break
    return out


# -- persistence --------------------------------------------------------------
def _json_value(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def save(store, result: DedupResult) -> int:
    """Save a deduplication result in the review store (one transaction); returns its run id.

    The latest saved run is what :func:`load` returns and what PRISMA counts.
    """
    store.ensure_schema(SCHEMA)
    cols = [c for c in result.records.columns if c != "record_id"]
    with store.transaction() as con:
        cur = con.execute("INSERT INTO dedup_runs(n_input, n_unique, n_removed, threshold, created_at) "
                          "VALUES(?, ?, ?, ?, ?)", (result.n_input, len(result.records), result.n_removed,
                                                    result.threshold, utcnow()))
        run_id = int(cur.lastrowid)
        con.executemany(
            "INSERT INTO dedup_audit VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, int(r.group_id), r.record_id, int(bool(r.kept)), r.rule,
              None if pd.isna(r.score) else float(r.score), r.matched_to, r.source,
              None if pd.isna(r.row) else int(r.row), r.title)
             for r in result.audit.itertuples(index=False)])
        con.executemany(
            "INSERT INTO dedup_records VALUES(?, ?, ?, ?)",
            [(run_id, pos, rid, json.dumps({c: _json_value(v) for c, v in zip(cols, vals)}, ensure_ascii=False))
             for pos, (rid, *vals) in enumerate(result.records[["record_id"] + cols].itertuples(index=False))])
    logger.info("dedup: saved run %d (%d removed) in %s", run_id, result.n_removed, store.path)
    return run_id


def load(store) -> DedupResult | None:
    """The latest deduplication result saved in the store, or None if none was saved."""
    store.ensure_schema(SCHEMA)
    con = store.connection
    run = con.execute("SELECT * FROM dedup_runs ORDER BY run_id DESC LIMIT 1").fetchone()
    if run is None:
        return None
    audit = pd.read_sql_query(
        "SELECT group_id, record_id, kept, rule, score, matched_to, source, row, title FROM dedup_audit "
        "WHERE run_id=? ORDER BY group_id, row", con, params=(run["run_id"],))
    audit["kept"] = audit["kept"].astype(bool)
    audit["score"] = audit["score"].astype(float)
    rows = con.execute("SELECT record_id, data FROM dedup_records WHERE run_id=? ORDER BY position",
                       (run["run_id"],)).fetchall()
    if rows:
        records = conform(pd.DataFrame([json.loads(r["data"]) for r in rows]))
        records.insert(0, "record_id", [r["record_id"] for r in rows])
    else:
        records = conform(pd.DataFrame({c: [] for c in COLUMNS}))
        records.insert(0, "record_id", pd.Series([], dtype=object))
    return DedupResult(records=records, audit=audit, n_removed=int(run["n_removed"]), n_input=int(run["n_input"]),
                       threshold=float(run["threshold"]), groups=int(audit["group_id"].nunique()))


def screening_records(store) -> pd.DataFrame:
    """The store's records without those the latest saved deduplication removed.

    This is the set a reviewer screens.  Without a saved result, every record.
    """
    records = store.records()
    result = load(store)
    if result is None:
        return records
    removed = result.removed_ids
    return records[~records["record_id"].isin(removed)].reset_index(drop=True)
