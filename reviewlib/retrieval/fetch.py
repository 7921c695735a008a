"""Search PubMed and fetch every matching record into a review store, resumably.

:func:`fetch_pubmed` runs esearch (``usehistory=y``), splits a query matching
more than 9,999 records into publication-date slices (halving the date range,
as NCBI's EDirect does), then fetches each slice in batches through the history
server.  Every batch's raw XML lands in the review's cache
(``<store folder>/cache/search-<id>/``) atomically as it arrives, with a row in
the store's ``batches`` table, and its records go into the store; a fetch that
is killed resumes, when run again, without refetching finished batches.  The
search is marked ``complete`` only when every batch is in.

:func:`run_search` runs a protocol's search, online or from its offline snapshot.
The ``reviewlib fetch`` command is :func:`configure_parser` / :func:`run_cli`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..atomic import file_digest, write_bytes
from ..errors import EutilsError, HistoryExpiredError, InputError
from .eutils import MAX_RECORDS, EutilsClient
from ..records import write_csv
from ..store import ReviewStore

logger = logging.getLogger(__name__)

DATETYPES = ("pdat", "edat", "mdat")
#: The widest publication-date range searched when a query must be split by date.
EARLIEST = dt.date(1700, 1, 1)
#: How many times a slice's expired history is renewed before giving up.
MAX_HISTORY_RENEWALS = 3
_DATE = re.compile(r"^\s*(\d{4})(?:[/.-](\d{1,2}))?(?:[/.-](\d{1,2}))?\s*$")


@dataclass
class SearchResult:
    """What a search brought in.

    Attributes
    ----------
    search_id : int
        The search's row in the store's ``searches`` table.
    count : int
        Records PubMed said match (the snapshot's record count offline).
    translation : str
        PubMed's QueryTranslation (offline: a note that it is a snapshot).
    warnings : list of str
        Every ErrorList/WarningList item (e.g. ``"PhraseNotFound: abcXYZ"``) and
        any shortfall noticed while fetching.
    n_records : int
        Records of this search now in the store.
    """

    search_id: int
    count: int
    translation: str
    warnings: list[str]
    n_records: int
    errors: list[str] = field(default_factory=list)
    slices: list[dict] = field(default_factory=list)
    source: str = "pubmed"
    query: str = ""
    reused: bool = False


@dataclass
class _Slice:
    mindate: str | None
    maxdate: str | None
    count: int
    webenv: str | None = None
    query_key: str | None = None

    @property
    def label(self) -> str:
        return f"{self.mindate}-{self.maxdate}" if self.mindate else "all"

    def as_dict(self) -> dict:
        return {"mindate": self.mindate, "maxdate": self.maxdate, "count": self.count}


# -- dates ----------------------------------------------------------------------
def parse_date(value: str | dt.date | None, *, upper: bool = False, name: str = "date") -> dt.date | None:
    """Parse YYYY, YYYY/MM or YYYY/MM/DD (``-`` also accepted) into a date.

    ``upper`` gives the last day of a bare year or month (for ``maxdate``).

    Raises
    ------
    InputError
        If the value is not such a date.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    m = _DATE.match(str(value))
    bad = InputError(f"bad {name} {value!r}: use YYYY, YYYY/MM or YYYY/MM/DD (e.g. 2019/01/31)", source=str(value))
    if not m:
        raise bad
    year, month, day = int(m.group(1)), m.group(2), m.group(3)
    try:
        if month is None:
            return dt.date(year, 12, 31) if upper else dt.date(year, 1, 1)
        month = int(month)
        if day is None:
            if upper:
                return dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
            return dt.date(year, month, 1)
        return dt.date(year, month, int(day))
    except ValueError:
        raise bad from None


def ncbi_date(date: dt.date) -> str:
    """A date as E-utilities wants it: YYYY/MM/DD."""
    return f"{date.year:04d}/{date.month:02d}/{date.day:02d}"


def _latest(today: dt.date | None = None) -> dt.date:
    today = today or dt.date.today()
    return dt.date(today.year + 2, 12, 31)   # issues are dated up to a year or so ahead


# -- the cache ------------------------------------------------------------------
def _atomic_write(path: Path, data: bytes) -> None:
    write_bytes(path, data, fsync=True)   # a batch in the cache is complete or absent


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_copy(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` through a temporary file, synced before the rename."""
    from ..atomic import atomic_path
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())


def _copy_beside(source: Path, target: Path) -> Callable[[], None]:
    """Start :func:`_atomic_copy` in a thread (the copy and its sync are disk work: 1.7 s for a
    127 MB snapshot on a loaded machine, beside the parse instead of after it); returns the function
    that waits for it and raises what it raised."""
    import threading
    failed: list[BaseException] = []

    def copy() -> None:
        try:
            _atomic_copy(source, target)
        except BaseException as exc:  # noqa: BLE001 - raised by the waiter, in the caller's thread
            failed.append(exc)

    from ..atomic import atomic_path  # noqa: F401 - imported here, not in the thread
    thread = threading.Thread(target=copy, name="reviewlib-snapshot-copy", daemon=True)
    thread.start()

    def wait() -> None:
        thread.join()
        if failed:
            raise failed[0]
    return wait


def _batch_key(sl: _Slice, retstart: int, retmax: int) -> str:
    # The slice's count is part of the key: if PubMed's count changed, positions shifted
    # and the old batches no longer tell which positions are covered.
    return f"{sl.label}#{sl.count}:{retstart}+{retmax}"


def _covered(store: ReviewStore, search_id: int, sl: _Slice) -> list[tuple[int, int]]:
    """Position ranges of ``sl`` already safely in the cache (file present, hash right)."""
    out = []
    prefix = f"{sl.label}#{sl.count}:"
    for row in store.batches(search_id).itertuples():
        if not row.batch_key.startswith(prefix):
            continue
        start, _, size = row.batch_key[len(prefix):].partition("+")
        path = store.folder / (row.path or "")
        if not row.path or not path.is_file() or _sha256(path.read_bytes()) != row.sha256:
            logger.warning("cached batch %s of search %d is missing or damaged; fetching it again",
                           row.batch_key, search_id)
            continue
        out.append((int(start), min(int(start) + int(size), sl.count)))
    return out


def _gaps(covered: list[tuple[int, int]], total: int, batch_size: int) -> list[tuple[int, int]]:
    """Batches (retstart, retmax) that cover [0, total) minus the covered ranges."""
    total = min(total, MAX_RECORDS)
    todo, pos = [], 0
    for start, end in sorted(covered) + [(total, total)]:
        while pos < min(start, total):
            size = min(batch_size, start - pos)
            todo.append((pos, size))
            pos += size
        pos = max(pos, end)
    return todo


# -- parsing --------------------------------------------------------------------
def _read_records(source: Any, default_source: str) -> pd.DataFrame:
    from ..sources.pubmed_xml import read_pubmed_xml
    frame = read_pubmed_xml(source)
    if "source" in frame:
        frame["source"] = frame["source"].where(frame["source"].notna(), default_source)
    return frame


def _read_snapshot(path: Path) -> tuple[pd.DataFrame | None, list[tuple] | None]:
    """A snapshot's records as the store writes them, ``(None, rows)``, when worker processes parsed
    it (:func:`reviewlib.sources.pubmed_xml.read_pubmed_xml_store_rows`: every record's ``source``
    is ``"pubmed"``, so there is no default to fill in); else its records table, ``(frame, None)``."""
    from ..sources.pubmed_xml import read_pubmed_xml_store_rows
    frame, rows = read_pubmed_xml_store_rows(path)
    if frame is not None and frame["source"].isna().any():     # never from the parser
        frame["source"] = frame["source"].where(frame["source"].notna(), "snapshot")
    return frame, rows


# -- search and fetch -------------------------------------------------------------
def _find_search(store: ReviewStore, source: str, query: str, mindate, maxdate, datetype) -> dict | None:
    row = store.connection.execute(
        "SELECT * FROM searches WHERE source=? AND query=? AND mindate IS ? AND maxdate IS ? AND datetype IS ? "
        "ORDER BY search_id DESC LIMIT 1", (source, query, mindate, maxdate, datetype)).fetchone()
    return dict(row) if row else None


def _result_from_row(store: ReviewStore, row: dict, reused: bool = False) -> SearchResult:
    n = store.connection.execute("SELECT COUNT(*) FROM record_sources WHERE search_id=?",
                                 (row["search_id"],)).fetchone()[0]
    return SearchResult(search_id=row["search_id"], count=int(row["count"] or 0),
                        translation=row["translation"] or "", warnings=json.loads(row["warnings"]),
                        n_records=int(n), errors=json.loads(row["errors"]), slices=json.loads(row["slices"]),
                        source=row["source"], query=row["query"] or "", reused=reused)


def _split(client: EutilsClient, term: str, lo: dt.date, hi: dt.date, datetype: str, count: int,
           found=None) -> list[_Slice]:
    """Date slices of [lo, hi] each matching at most 9,999 records (halving the range)."""
    if count <= MAX_RECORDS:
        return [_Slice(ncbi_date(lo), ncbi_date(hi), count, getattr(found, "webenv", None),
                       getattr(found, "query_key", None))]
    if lo >= hi:
        raise EutilsError(f"the query matches {count} records dated {ncbi_date(lo)} ({datetype}), more than the "
                          f"{MAX_RECORDS} E-utilities return for one search, and a day cannot be split: "
                          "narrow the query")
    mid = lo + (hi - lo) // 2
    logger.info("%d records between %s and %s: splitting at %s", count, ncbi_date(lo), ncbi_date(hi),
                ncbi_date(mid))
    out: list[_Slice] = []
    for a, b in ((lo, mid), (mid + dt.timedelta(days=1), hi)):
        part = client.esearch(term, mindate=ncbi_date(a), maxdate=ncbi_date(b), datetype=datetype,
                             log_messages=False)
        if part.count:
            out.extend(_split(client, term, a, b, datetype, part.count, part))
    return out


def _renew(client: EutilsClient, term: str, sl: _Slice, datetype: str) -> int:
    """Run the slice's esearch again (new WebEnv); returns the new count."""
    if sl.mindate:
        found = client.esearch(term, mindate=sl.mindate, maxdate=sl.maxdate, datetype=datetype,
                              log_messages=False)
    else:
        found = client.esearch(term, log_messages=False)
    sl.webenv, sl.query_key = found.webenv, found.query_key
    return found.count


def _progress_bar(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, unit="rec", desc=desc,
                disable=None if enabled else True, leave=False)


def check_arguments(query: str, *, mindate: str | None = None, maxdate: str | None = None,
                    datetype: str = "pdat", batch_size: int = 500, since: str | None = None):
    """Check a fetch's arguments before anything is created; returns ``(query, lo, hi)``.

    Raises
    ------
    InputError
        An empty query, an unknown datetype, a batch size out of range, a date
        that is not ``YYYY[/MM[/DD]]``, mindate after maxdate, a bad --since date.
    """
    query = " ".join(str(query or "").split())
    if not query:
        raise InputError("the PubMed query is empty: give a query, e.g. 'statin[tiab] AND \"heart failure\"[tiab]'")
    if datetype not in DATETYPES:
        raise InputError(f"bad datetype {datetype!r}: use one of {', '.join(DATETYPES)}", source=str(datetype))
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_RECORDS:
        raise InputError(f"bad batch size {batch_size!r}: use a whole number from 1 to {MAX_RECORDS}",
                         source=str(batch_size))
    lo = parse_date(mindate, name="mindate")
    hi = parse_date(maxdate, upper=True, name="maxdate")
    if lo and hi and lo > hi:
        raise InputError(f"mindate {mindate} is after maxdate {maxdate}: swap them")
    if since and since != "last":
        parse_date(since, name="since date")
    return query, lo, hi


def query_warnings(query: str) -> list[str]:
    """Warnings about a query's brackets and quotes, each naming the (1-based) character position.

    PubMed does not refuse ``(statin OR asthma`` or ``"heart failure[tiab]``: it guesses, and the search
    is silently another one.  Parentheses inside quotes are ignored, as PubMed does.
    """
    out: list[str] = []
    opened: list[int] = []
    quote: int | None = None
    for i, ch in enumerate(query, start=1):
        if ch == '"':
            quote = i if quote is None else None
        elif quote is None and ch == "(":
            opened.append(i)
        elif quote is None and ch == ")":
            if opened:
                opened.pop()
            else:
                out.append(f"the query has a ')' at position {i} with no '(' before it: check its brackets")
    if quote is not None:
        out.append(f"the query opens a quote at position {quote} and never closes it: add the closing '\"'")
    for i in opened:
        out.append(f"the query has a '(' at position {i} that is never closed: add the ')'")
    return out


def fetch_pubmed(query: str, store: ReviewStore, *, mindate: str | None = None, maxdate: str | None = None,
                 datetype: str = "pdat", batch_size: int = 500, since: str | None = None,
                 client: EutilsClient | None = None, progress: bool = True,
                 refresh: bool = False) -> SearchResult:
    """Search PubMed and fetch every matching record into ``store`` and its cache.

    Parameters
    ----------
    query : str
        A PubMed query.
    store : ReviewStore
        The review's store; raw batches go to ``store.folder / "cache"``.
    mindate, maxdate : str, optional
        Date range (YYYY, YYYY/MM or YYYY/MM/DD) on ``datetype``.
    datetype : {"pdat", "edat", "mdat"}
        Publication, entrez (added to PubMed) or modification date.
    batch_size : int
        Records per efetch request (1 to 9,999; default 500).
    since : str, optional
        Incremental update: only records added to PubMed (``edat``) since this
        date; ``"last"`` means since the last complete run of the same query.
        A ``mindate``/``maxdate`` range is then kept as a ``[dp]`` clause of the query.
    client : EutilsClient, optional
        Default: a client configured from the environment.
    progress : bool
        Show a tqdm progress bar (only on a terminal).
    refresh : bool
        Run again even if an identical search is already complete (default: reuse it).

    Returns
    -------
    SearchResult

    Raises
    ------
    InputError
        A bad date, datetype, batch size or empty query.
    EutilsError
        E-utilities kept failing; run again to resume.
    """
    query, lo, hi = check_arguments(query, mindate=mindate, maxdate=maxdate, datetype=datetype,
                                    batch_size=batch_size, since=since)
    for warning in query_warnings(query):
        logger.warning("%s", warning)
    term = query
    if since:
        if since == "last":
            previous = store.connection.execute(
                "SELECT completed_at FROM searches WHERE source='pubmed' AND status='complete' AND "
                "(query=? OR query LIKE ?) ORDER BY search_id DESC LIMIT 1", (query, f"({query}) AND %")).fetchone()
            if not previous or not previous[0]:
                raise InputError(f"--since last: no complete search of this query in {store.path}: "
                                 "run the full search first")
            since_date = dt.date.fromisoformat(previous[0][:10])
        else:
            since_date = parse_date(since, name="since date")
        if lo or hi:
            tag = {"pdat": "dp", "edat": "edat", "mdat": "mhda"}[datetype]
            term = f"({query}) AND ({ncbi_date(lo or EARLIEST)}:{ncbi_date(hi or _latest())}[{tag}])"
        lo, hi, datetype = since_date, None, "edat"
    client = client or EutilsClient()
    min_s = ncbi_date(lo) if lo else None
    max_s = ncbi_date(hi) if hi else None

    row = _find_search(store, "pubmed", term, min_s, max_s, datetype)
    if row and row["status"] == "complete" and not refresh:
        logger.info("search %d of this query is complete; reusing it (--refresh or refresh=True runs it again)",
                    row["search_id"])
        return _result_from_row(store, row, reused=True)
    eff_lo = lo or (EARLIEST if hi else None)
    eff_hi = hi or (_latest() if lo else None)
    top = None
    if row and row["status"] != "complete":
        search_id = row["search_id"]
        result = _result_from_row(store, row)
        slices = [_Slice(s["mindate"], s["maxdate"], int(s["count"])) for s in result.slices]
        warnings, errors, translation, count = result.warnings, result.errors, result.translation, result.count
        logger.info("resuming search %d (%d records, %d slice(s))", search_id, count, len(slices))
    else:
        top = client.esearch(term, mindate=ncbi_date(eff_lo) if eff_lo else None,
                             maxdate=ncbi_date(eff_hi) if eff_hi else None, datetype=datetype)
        warnings, errors, translation, count = top.messages, top.errors, top.translation, top.count
        search_id = store.add_search("pubmed", term, translation=translation, count=count, mindate=min_s,
                                     maxdate=max_s, datetype=datetype, warnings=warnings, errors=errors,
                                     status="started")
        slices = []
    if count and not slices:     # a new search, or one killed before its slices were saved
        if count <= MAX_RECORDS:
            sl = _Slice(ncbi_date(eff_lo) if eff_lo else None, ncbi_date(eff_hi) if eff_hi else None, count)
            if top is not None:
                sl.webenv, sl.query_key = top.webenv, top.query_key
            slices = [sl]
        else:
            slices = _split(client, term, eff_lo or EARLIEST, eff_hi or _latest(), datetype, count)
            total = sum(s.count for s in slices)
            if total != count:
                note = (f"the date slices hold {total} records but PubMed counts {count} "
                        f"(records without a {datetype} date in range cannot be reached by date)")
                logger.warning(note)
                warnings = warnings + [note]
        store.update_search(search_id, slices=[s.as_dict() for s in slices], warnings=warnings)
        logger.info("search %d: %d records in %d slice(s): %s", search_id, count, len(slices), translation)

    listed = sum(s.count for s in slices)
    _fetch_slices(client, store, search_id, term, datetype, slices, batch_size, progress)
    if sum(s.count for s in slices) != listed:     # PubMed changed while a resumed fetch ran
        count += sum(s.count for s in slices) - listed

    n = store.connection.execute("SELECT COUNT(*) FROM record_sources WHERE search_id=?", (search_id,)).fetchone()[0]
    expected = sum(min(s.count, MAX_RECORDS) for s in slices)
    if n < expected:
        note = f"fetched {n} of the {expected} records PubMed listed (some may have been deleted or merged)"
        logger.warning(note)
        if note not in warnings:
            warnings = warnings + [note]
    store.update_search(search_id, status="complete", warnings=warnings, count=count,
                        slices=[s.as_dict() for s in slices])
    return SearchResult(search_id=search_id, count=count, translation=translation, warnings=warnings,
                        n_records=int(n), errors=errors, slices=[s.as_dict() for s in slices],
                        source="pubmed", query=term)


def _fetch_slices(client: EutilsClient, store: ReviewStore, search_id: int, term: str, datetype: str,
                  slices: list[_Slice], batch_size: int, progress: bool) -> None:
    cache = Path("cache") / f"search-{search_id}"
    plans = [(sl, _gaps(_covered(store, search_id, sl), sl.count, batch_size)) for sl in slices]
    total = sum(min(sl.count, MAX_RECORDS) for sl in slices)
    todo = sum(size for _, gaps in plans for _, size in gaps)
    bar = _progress_bar(total, total - todo, progress, f"search {search_id}")
    try:
        for sl, gaps in plans:
            renewals = 0
            queue = list(gaps)
            while queue:
                retstart, retmax = queue[0]
                if not sl.webenv:
                    new = _renew(client, term, sl, datetype)
                    if new != sl.count:
                        logger.warning("slice %s now matches %d records, not %d: fetching it whole again",
                                       sl.label, new, sl.count)
                        sl.count = new
                        queue = _gaps(_covered(store, search_id, sl), sl.count, batch_size)
                        bar.total = sum(min(s.count, MAX_RECORDS) for s in slices)
                        continue
                try:
                    body = client.efetch(sl.webenv, sl.query_key, retstart, retmax)
                except HistoryExpiredError:
                    renewals += 1
                    if renewals > MAX_HISTORY_RENEWALS:
                        raise
                    logger.warning("NCBI history expired at record %d of slice %s; searching again",
                                   retstart, sl.label)
                    sl.webenv = None
                    continue
                frame = _read_records(body, "pubmed")
                n = len(frame)
                expected = min(retmax, sl.count - retstart)
                if n < expected:
                    logger.warning("batch %d+%d of slice %s brought %d records, %d expected",
                                   retstart, retmax, sl.label, n, expected)
                safe_label = sl.label.replace("/", "")
                rel = cache / f"{safe_label}-c{sl.count}-{retstart:07d}-{retmax}.xml"
                _atomic_write(store.folder / rel, body)
                store.add_records(frame, search_id=search_id)
                store.add_batch(search_id, _batch_key(sl, retstart, retmax), n, _sha256(body), rel.as_posix())
                queue.pop(0)
                bar.update(expected)
    finally:
        bar.close()


# -- protocols ----------------------------------------------------------------------
def load_snapshot(path: str | os.PathLike, store: ReviewStore, *, query: str | None = None,
                  synthetic: bool = False) -> SearchResult:
    """Load an offline snapshot (efetch XML, gzip allowed) as one search with source='snapshot'.

    Idempotent: a file whose hash was already loaded into ``store`` is not loaded twice.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"snapshot file not found: {path}: regenerate it with 'python -m reviewlib.demo.snapshot'",
                         source=str(path))
    from ..sources.memory import check_fits
    check_fits(path, "snapshot")          # far larger than memory: say so now, not be killed half-way
    digest = file_digest(path)            # streamed: the file is never held in memory whole
    row = store.connection.execute(
        "SELECT s.* FROM searches s JOIN batches b USING(search_id) WHERE s.source='snapshot' "
        "AND b.sha256=? AND s.status='complete' ORDER BY s.search_id DESC LIMIT 1", (digest,)).fetchone()
    if row:
        logger.info("snapshot %s (sha256 %s) already loaded as search %d", path.name, digest[:12], row["search_id"])
        return _result_from_row(store, dict(row), reused=True)
    rel = Path("cache") / f"snapshot-{digest[:16]}{''.join(path.suffixes[-2:]) or '.xml'}"
    copied = _copy_beside(path, store.folder / rel) if not (store.folder / rel).is_file() else None
    try:
        try:
            frame, rows = _read_snapshot(path)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"cannot read snapshot {path}: {exc}: give a (gzipped) PubMed efetch XML file",
                             source=str(path)) from exc
    except BaseException:
        if copied is not None:             # a snapshot that does not read leaves no copy behind
            try:
                copied()
            except OSError:
                pass
            (store.folder / rel).unlink(missing_ok=True)
        raise
    if copied is not None:
        copied()                            # the copy is complete (synced) before the store names it
    n = len(rows) if rows is not None else len(frame)
    note = (f"offline snapshot {path.name} (sha256 {digest[:12]}), not a live PubMed search"
            + ("; SYNTHETIC demo data" if synthetic else ""))
    search_id = store.add_search("snapshot", query, translation=note, count=n, status="started")
    if rows is not None:
        store.add_encoded_records(rows, search_id=search_id)
    else:
        store.add_records(frame, search_id=search_id)
    del rows, frame
    store.add_batch(search_id, f"snapshot:{path.name}", n, digest, rel.as_posix())
    store.update_search(search_id, status="complete")
    row = store.connection.execute("SELECT * FROM searches WHERE search_id=?", (search_id,)).fetchone()
    return _result_from_row(store, dict(row))


def run_search(protocol, store: ReviewStore, *, offline: bool, mindate: str | None = None,
               maxdate: str | None = None, client: EutilsClient | None = None,
               batch_size: int | None = None, since: str | None = None,
               progress: bool = False) -> SearchResult:
    """Run a protocol's search into ``store``.

    Parameters
    ----------
    protocol : reviewlib.protocol.Protocol
    store : ReviewStore
    offline : bool
        Load ``protocol.snapshot_path()`` (gzip efetch XML) as one search with
        source='snapshot' instead of querying PubMed; idempotent.
    mindate, maxdate : str, optional
        Override the protocol's ``search.mindate``/``search.maxdate``.
    client : EutilsClient, optional
    batch_size : int, optional
        Override ``search.batch_size`` (default 500).
    since : str, optional
        Online only: fetch just the records added to PubMed since this date
        (or ``"last"``: since the last complete run); see :func:`fetch_pubmed`.
    progress : bool
        Show a progress bar when online.
    """
    settings = protocol.search
    if offline:
        path = protocol.snapshot_path()
        if path is None:
            from ..errors import ProtocolError
            raise ProtocolError(f"protocol {protocol.path} has no search.snapshot to run offline: "
                                "add one or run online", source=str(protocol.path))
        return load_snapshot(path, store, query=protocol.query, synthetic=protocol.synthetic)
    return fetch_pubmed(protocol.query, store,
                        mindate=mindate or _opt(settings.get("mindate")),
                        maxdate=maxdate or _opt(settings.get("maxdate")),
                        datetype=str(settings.get("datetype") or "pdat"),
                        batch_size=int(batch_size or settings.get("batch_size") or 500),
                        since=since, client=client, progress=progress)


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


# -- the command line ---------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``reviewlib fetch``."""
    parser.add_argument("query", help="the PubMed query (quote it)")
    parser.add_argument("--out", required=True, type=Path,
                        help="folder for records.csv, review.sqlite and cache/ (run again to resume)")
    parser.add_argument("--mindate", help="earliest date, YYYY[/MM[/DD]]")
    parser.add_argument("--maxdate", help="latest date, YYYY[/MM[/DD]]")
    parser.add_argument("--datetype", choices=DATETYPES, default="pdat",
                        help="date the range applies to: pdat (publication, default), edat (added to PubMed)")
    parser.add_argument("--since", help="only records added to PubMed since this date (YYYY[/MM[/DD]] or 'last')")
    parser.add_argument("--batch-size", type=int, default=500, help="records per efetch request (default 500)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--refresh", action="store_true", help="search again even if this search is complete")


def run_cli(args: argparse.Namespace) -> int:
    """Run ``reviewlib fetch``; returns the exit code."""
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file: give a folder", source=str(out))
    # everything that can be refused is checked before the store exists: a refused fetch leaves nothing
    check_arguments(args.query, mindate=args.mindate, maxdate=args.maxdate, datetype=args.datetype,
                    batch_size=args.batch_size, since=args.since)
    client = EutilsClient()
    if hasattr(client.limiter, "check"):  # the shared rate file (REVIEWLIB_RATE_FILE) must be usable
        client.limiter.check()
    with ReviewStore(out / "review.sqlite") as store:
        result = fetch_pubmed(args.query, store, mindate=args.mindate, maxdate=args.maxdate,
                              datetype=args.datetype, batch_size=args.batch_size, since=args.since,
                              client=client, progress=not args.no_progress, refresh=args.refresh)
        records = store.records().drop(columns=["record_id"])
    records = records[records["pmid"].isna() | ~records["pmid"].duplicated()]
    path = write_csv(records, out / "records.csv")
    verb = "reused" if result.reused else "fetched"
    print(f"{verb} search {result.search_id}: {result.count} records match, {result.n_records} in this search; "
          f"{len(records)} unique records in {path}")
    print(f"PubMed translation: {result.translation}")
    if result.reused:   # a fresh search has logged its warnings already
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
    return 0
