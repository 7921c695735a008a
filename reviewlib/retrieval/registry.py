"""Search ClinicalTrials.gov and fetch every matching study into a review store, resumably.

:func:`fetch_registry` is the registry's twin of
:func:`reviewlib.fetch.fetch_pubmed`.  It asks ``/studies`` for pages of 1,000
(the API's cap) and follows ``nextPageToken`` to the last page.  Every page's
raw JSON lands in the review's cache (``<store folder>/cache/registry-<id>/``)
atomically as it arrives, and is recorded in the store's ``registry_pages``
table with the token that asked for it and the token it gave for the next
page; its studies go into the ``trials`` table (one row per NCT id, linked to
the search through ``trial_sources``).  A search killed (even with SIGKILL)
and run again continues from the last complete page: it re-asks at most the
one page that was in flight.  The search (a ``searches`` row with
source='ctgov') is marked ``complete`` only after the last page, and the
studies received are checked against the first page's ``totalCount``.

:func:`load_registry_snapshot` loads an offline file of API v2 JSON (the
default review's registry snapshot) the same way, idempotently.
:func:`run_registry_search` runs a protocol's ``registry:`` section (online or
offline).  :meth:`ReviewStore.trials` reads the registry table back; the ``reviewlib registry``
command is :func:`configure_parser` / :func:`run_cli`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..atomic import write_bytes
from ..errors import InputError
from ..store import ReviewStore
from .fetch import SearchResult
from ..sources.ctgov import empty_trials, read_ctgov, write_trials_csv
from ..errors import CtgovError
from .ctgov import MAX_PAGE_SIZE, STATUSES, CtgovClient, search_params

logger = logging.getLogger(__name__)

SOURCE = "ctgov"
SNAPSHOT_SOURCE = "ctgov-snapshot"

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def trials(store: ReviewStore, search_id: int | None = None) -> pd.DataFrame:
    """The registry table of the store (one row per NCT id), or one search's trials (:meth:`ReviewStore.trials`)."""
    return store.trials(search_id)


def _n_trials(store: ReviewStore, search_id: int) -> int:
    return int(store.connection.execute("SELECT COUNT(*) FROM trial_sources WHERE search_id=?",
                                        (search_id,)).fetchone()[0])


def _describe(params: dict) -> str:
    shown = {k: v for k, v in params.items() if k not in ("countTotal", "pageSize", "format")}
    return " ".join(f"{k}={v}" for k, v in shown.items())


def _result(store: ReviewStore, search_id: int, reused: bool = False) -> SearchResult:
    row = dict(store.connection.execute("SELECT * FROM searches WHERE search_id=?", (search_id,)).fetchone())
    return SearchResult(search_id=search_id, count=int(row["count"] or 0), translation=row["translation"] or "",
                        warnings=json.loads(row["warnings"]), n_records=_n_trials(store, search_id),
                        errors=json.loads(row["errors"]), slices=[], source=row["source"],
                        query=row["query"] or "", reused=reused)


def _valid_prefix(store: ReviewStore, search_id: int) -> list[dict]:
    """The pages of a search from the first one that are safely cached (file present, hash right), in order."""
    out = []
    for row in store.registry_pages(search_id).to_dict("records"):
        path = store.folder / row["path"]
        if row["page_no"] != len(out) + 1:
            break
        if not path.is_file() or _sha256(path.read_bytes()) != row["sha256"]:
            logger.warning("cached page %d of registry search %d is missing or damaged; asking for it again",
                           row["page_no"], search_id)
            break
        out.append(row)
    return out


def fetch_registry(query: str | None, store: ReviewStore, *, cond: str | None = None, intr: str | None = None,
                   status: Sequence[str] | str | None = None, advanced: str | None = None,
                   page_size: int = MAX_PAGE_SIZE, client: CtgovClient | None = None,
                   refresh: bool = False) -> SearchResult:
    """Search ClinicalTrials.gov and fetch every matching study into ``store`` and its cache.

    Parameters
    ----------
    query : str, optional
        ``query.term`` (Essie syntax), e.g. ``'statin OR "HMG-CoA reductase inhibitor"'``.
    store : ReviewStore
        The review's store; raw pages go to ``store.folder / "cache" / "registry-<search id>"``.
    cond, intr : str, optional
        ``query.cond`` and ``query.intr``.
    status : str or sequence of str, optional
        ``filter.overallStatus`` values (e.g. ``["RECRUITING", "COMPLETED"]``).
    advanced : str, optional
        ``filter.advanced`` (``AREA[...]``, ``RANGE[...]``).
    page_size : int
        Studies per page (1 to 1,000; the API caps larger values at 1,000 silently).
    client : CtgovClient, optional
        Default: a client configured from the environment (1 request per second).
    refresh : bool
        Search again even if an identical search is complete (default: reuse it).

    Returns
    -------
    SearchResult
        ``source='ctgov'``; ``count`` is the registry's totalCount, ``n_records``
        the distinct trials of this search now in the store.

    Raises
    ------
    InputError
        An empty search or a bad page size, before any request.
    CtgovError
        The API refused the search (its message, with what to do) or kept failing; run again to resume.
    """
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InputError(f"bad registry page size {page_size!r}: use a whole number from 1 to {MAX_PAGE_SIZE}",
                         source=str(page_size))
    try:
        params = search_params(query, cond=cond, intr=intr, status=status, advanced=advanced, page_size=page_size)
    except CtgovError as exc:
        raise InputError(str(exc)) from None
    key = json.dumps(params, sort_keys=True)
    row = store.connection.execute("SELECT * FROM searches WHERE source=? AND query=? ORDER BY search_id DESC "
                                   "LIMIT 1", (SOURCE, key)).fetchone()
    if row and row["status"] == "complete" and not refresh:
        logger.info("registry search %d is complete; reusing it (--refresh searches again)", row["search_id"])
        return _result(store, row["search_id"], reused=True)
    client = client or CtgovClient()
    if row and row["status"] != "complete" and not refresh:
        search_id = row["search_id"]
        done = _valid_prefix(store, search_id)
        logger.info("resuming registry search %d after %d complete page(s)", search_id, len(done))
    else:
        search_id = store.add_search(SOURCE, key, translation=f"ClinicalTrials.gov API v2 /studies {_describe(params)}",
                                     status="started")
        done = []
    cache = Path("cache") / f"registry-{search_id}"
    total = int(row["count"]) if done and row["count"] is not None else None
    if done and done[-1]["next_page_token"] is None:
        token, page_no = None, None          # every page is in: only the final checks are left
    else:
        token = done[-1]["next_page_token"] if done else None
        page_no = len(done) + 1
    resumed_token = token
    while page_no is not None:
        try:
            body, page = client.page_body(params, token)
        except CtgovError as exc:
            if exc.status == 400 and token is not None and token == resumed_token:
                raise CtgovError(f"{exc} (the page token saved by the interrupted run may have expired: "
                                 "--refresh, or refresh=True, starts the search afresh)", url=exc.url,
                                 status=exc.status, body=exc.body) from None
            raise
        frame = read_ctgov(page) if page["studies"] else empty_trials()
        rel = cache / f"page-{page_no:05d}.json"
        write_bytes(store.folder / rel, body, fsync=True)       # the page is complete in the cache or absent
        next_token = page.get("nextPageToken") or None
        if page_no == 1:
            total = page.get("totalCount")
        store.add_registry_page(search_id, page_no, page_token=token, next_page_token=next_token, trials=frame,
                                n_studies=len(page["studies"]),
                                total_count=page.get("totalCount") if page_no == 1 else None,
                                sha256=_sha256(body), path=rel.as_posix())
        logger.info("registry search %d: page %d, %d studies%s", search_id, page_no, len(page["studies"]),
                    f" of {total}" if total is not None else "")
        if next_token is None:
            break
        if next_token == token:
            raise CtgovError(f"ClinicalTrials.gov returned page token {token!r} again: the search would loop; "
                             "run it again later")
        token, page_no = next_token, page_no + 1

    pages = store.registry_pages(search_id)
    received = int(pages["n_studies"].sum())
    n = _n_trials(store, search_id)
    warnings = list(json.loads(store.connection.execute("SELECT warnings FROM searches WHERE search_id=?",
                                                        (search_id,)).fetchone()[0]))
    if total is None:
        total = next((t for t in pages["total_count"] if t is not None), None)
    if total is not None and (received != int(total) or n != int(total)):
        note = (f"ClinicalTrials.gov counted {int(total)} studies but {received} arrived in {len(pages)} page(s) "
                f"({n} distinct): the registry changed while paging; --refresh searches again")
        logger.warning(note)
        warnings.append(note)
    store.update_search(search_id, status="complete", count=int(total) if total is not None else n,
                        warnings=warnings)
    return _result(store, search_id)


def load_registry_snapshot(path: str | os.PathLike, store: ReviewStore, *, query: str | None = None,
                           note: str = "") -> SearchResult:
    """Load an offline file of API v2 study JSON (gzip allowed) as one search with source='ctgov-snapshot'.

    Idempotent: a file whose hash was already loaded into ``store`` is not loaded twice.
    ``note`` is added to the search's description (e.g. the snapshot's date and provenance).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"registry snapshot not found: {path}: regenerate it with "
                         "'python -m reviewlib.sources.ctgov_snapshot'", source=str(path))
    data = path.read_bytes()
    digest = _sha256(data)
    row = store.connection.execute(
        "SELECT s.search_id FROM searches s JOIN registry_pages p USING(search_id) WHERE s.source=? "
        "AND p.sha256=? AND s.status='complete' ORDER BY s.search_id DESC LIMIT 1",
        (SNAPSHOT_SOURCE, digest)).fetchone()
    if row:
        logger.info("registry snapshot %s (sha256 %s) already loaded as search %d", path.name, digest[:12],
                    row["search_id"])
        return _result(store, row["search_id"], reused=True)
    frame = read_ctgov(path)
    description = f"offline registry snapshot {path.name} (sha256 {digest[:12]}), not a live search"
    if note:
        description += f"; {note}"
    search_id = store.add_search(SNAPSHOT_SOURCE, query, translation=description, count=len(frame),
                                 status="started")
    rel = Path("cache") / f"registry-snapshot-{digest[:16]}{''.join(path.suffixes[-2:]) or '.json'}"
    if not (store.folder / rel).is_file():
        write_bytes(store.folder / rel, data, fsync=True)
    store.add_registry_page(search_id, 1, page_token=None, next_page_token=None, trials=frame, n_studies=len(frame),
                            total_count=len(frame), sha256=digest, path=rel.as_posix())
    store.update_search(search_id, status="complete")
    return _result(store, search_id)


# -- protocols ----------------------------------------------------------------------
#: Keys a protocol's ``registry:`` section may have.
REGISTRY_KEYS = {"query", "cond", "intr", "status", "advanced", "page_size", "snapshot", "snapshot_note"}


def registry_settings(section: Any, where: str = "the protocol") -> dict[str, Any]:
    """Check a protocol's ``registry:`` section and return it with defaults.

    The section (beside ``search:``)::

        registry:
          query: 'statin OR "HMG-CoA reductase inhibitor"'   # query.term (Essie syntax)
          cond: '"heart failure" OR cardiomyopathy'         # query.cond
          intr: null                                        # query.intr
          status: [RECRUITING, COMPLETED]                   # filter.overallStatus (default: any)
          advanced: AREA[StartDate]RANGE[2015-01-01,MAX]    # filter.advanced
          snapshot: car-t-autoimmune-registry-2026-08-22.json.gz   # offline: API v2 JSON pages
          snapshot_note: REAL registry records as listed on 2026-08-22

    Raises
    ------
    ProtocolError
        Unknown keys, wrong types, or neither a query nor a snapshot (one line naming the protocol).
    """
    from ..errors import ProtocolError
    if section is None or section == {}:
        return {}
    if not isinstance(section, dict):
        raise ProtocolError(f"{where}: registry: must be a mapping (query, cond, intr, status, advanced, snapshot)",
                            source=where)
    unknown = sorted(set(section) - REGISTRY_KEYS)
    if unknown:
        raise ProtocolError(f"{where}: registry.{unknown[0]} is not a registry setting: use "
                            f"{', '.join(sorted(REGISTRY_KEYS))}", source=where)
    out = dict(section)
    status = out.get("status")
    if isinstance(status, str):
        status = [status]
    if status is not None and not (isinstance(status, list) and all(isinstance(v, str) for v in status)):
        raise ProtocolError(f"{where}: registry.status must be a list of statuses, e.g. [RECRUITING, COMPLETED]",
                            source=where)
    bad = [v for v in (status or []) if v.strip().upper() not in STATUSES]
    if bad:
        raise ProtocolError(f"{where}: registry.status {bad[0]!r} is not a ClinicalTrials.gov status: use "
                            f"{', '.join(STATUSES)}", source=where)
    out["status"] = [v.strip().upper() for v in status or []]
    for key in ("query", "cond", "intr", "advanced", "snapshot", "snapshot_note"):
        if out.get(key) is not None and not isinstance(out[key], str):
            raise ProtocolError(f"{where}: registry.{key} must be text", source=where)
    size = out.get("page_size", MAX_PAGE_SIZE)
    if not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise ProtocolError(f"{where}: registry.page_size {size!r} must be a whole number from 1 to "
                            f"{MAX_PAGE_SIZE}", source=where)
    out["page_size"] = size
    if not any(out.get(k) for k in ("query", "cond", "intr", "advanced", "snapshot")) and not out["status"]:
        raise ProtocolError(f"{where}: registry: has neither a query (query, cond, intr, status, advanced) nor a "
                            "snapshot: give one, or remove the section", source=where)
    return out


def run_registry_search(protocol, store: ReviewStore, *, offline: bool,
                        client: CtgovClient | None = None) -> SearchResult | None:
    """Run a protocol's ``registry:`` search into ``store`` (None if the protocol has no such section).

    Offline, the section's ``snapshot`` (API v2 JSON, gzip allowed; resolved next to the
    protocol, then in the package data) is loaded with :func:`load_registry_snapshot`;
    online, :func:`fetch_registry` runs the query (resumable, reused when complete).

    Raises
    ------
    ProtocolError
        A malformed section, or offline with no snapshot.
    """
    from ..errors import ProtocolError
    from ..protocol import PACKAGE_DATA
    settings = registry_settings(protocol.section("registry"), f"protocol {protocol.path}")
    if not settings:
        return None
    if offline:
        snap = settings.get("snapshot")
        if not snap:
            raise ProtocolError(f"protocol {protocol.path} has no registry.snapshot to run offline: add one or run "
                                "online", source=str(protocol.path))
        for base in (Path(protocol.path).parent, PACKAGE_DATA):
            if (base / snap).is_file():
                return load_registry_snapshot(base / snap, store, query=settings.get("query"),
                                              note=settings.get("snapshot_note") or "")
        raise ProtocolError(f"protocol {protocol.path}: registry snapshot {snap!r} not found next to the protocol "
                            f"or in {PACKAGE_DATA}: rebuild it with 'python -m reviewlib.sources.ctgov_snapshot'",
                            source=str(protocol.path))
    return fetch_registry(settings.get("query"), store, cond=settings.get("cond"), intr=settings.get("intr"),
                          status=settings.get("status") or None, advanced=settings.get("advanced"),
                          page_size=settings["page_size"], client=client)


# -- the command line ---------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``reviewlib registry``."""
    parser.add_argument("query", nargs="?", default=None,
                        help="the ClinicalTrials.gov query (query.term, Essie syntax; quote it)")
    parser.add_argument("--out", required=True, type=Path,
                        help="folder for trials.csv, review.sqlite and cache/ (run again to resume)")
    parser.add_argument("--cond", help="conditions to search (query.cond), e.g. 'asthma OR COPD'")
    parser.add_argument("--intr", help="interventions to search (query.intr), e.g. 'statin'")
    parser.add_argument("--status", nargs="+", metavar="S",
                        help=f"overall statuses to keep (filter.overallStatus): {', '.join(STATUSES[:5])}, ...")
    parser.add_argument("--advanced", help="filter.advanced, e.g. 'AREA[StartDate]RANGE[2020-01-01,MAX]'")
    parser.add_argument("--page-size", type=int, default=MAX_PAGE_SIZE,
                        help=f"studies per request (default and API maximum {MAX_PAGE_SIZE})")
    parser.add_argument("--refresh", action="store_true", help="search again even if this search is complete")


def run_cli(args: argparse.Namespace) -> int:
    """Run ``reviewlib registry``; returns the exit code."""
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file: give a folder", source=str(out))
    with ReviewStore(out / "review.sqlite") as store:
        result = fetch_registry(args.query, store, cond=args.cond, intr=args.intr, status=args.status,
                                advanced=args.advanced, page_size=args.page_size, refresh=args.refresh)
        table = store.trials()
    path = write_trials_csv(table, out / "trials.csv")
    verb = "reused" if result.reused else "fetched"
    print(f"{verb} registry search {result.search_id}: {result.count} studies match, {result.n_records} in this "
          f"search; {len(table)} trials in {path}")
    if result.reused:
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
    return 0
