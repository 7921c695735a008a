"""What a run's pages are made from, as content hashes: the check behind "nothing changed since run X".

An offline run reads only things on this machine: the protocol and the data files it names (snapshot,
registry snapshot, demo decisions, labels), the notebooks, reviewlib's own code and data, the versions of
the libraries it draws with, the notebook parameters and the review store.  :func:`fingerprint` hashes
each of them; :func:`record_run` keeps the fingerprint in the run's manifest (``inputs``), taken once the
run has written everything it writes to the store.  When the next offline run finds the same fingerprint
as the newest complete run (:func:`current_run`), its pages are the pages that run would make again, so
``reviewlib run`` says so and makes no copy (``--force`` runs the notebooks anyway).  Any reviewer
decision, mark or correction changes the store's bytes and so the fingerprint.

An online run asks PubMed, whose answer is not on this machine: it always runs.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .atomic import file_digest, files_digest

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
#: Parameters that name this run rather than what it reads (a new run id each time).
RUN_OWN_PARAMETERS = ("run_name", "output_dir")


def store_digest(store_path: str | Path) -> str:
    """The review store's content: its file and, when SQLite left one, its write-ahead log.

    ``"absent"`` when there is no store yet (a first run, or a replication, which has none).
    """
    path = Path(store_path)
    if not path.is_file():
        return "absent"
    parts = [file_digest(path)]
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size:
        parts.append("wal:" + file_digest(wal))
    return "+".join(parts)


def _package_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            yield path


def tree_digest(root: str | Path) -> str:
    """One hash of every file under ``root`` (relative names and bytes), ``__pycache__`` left out."""
    return files_digest(_package_files(Path(root)), root)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def protocol_files(protocol: Any) -> dict[str, str]:
    """Digest of every data file the protocol names, found where the protocol looks for them.

    Any string value of the protocol that names a file next to the protocol or in the package data
    counts (snapshot, registry snapshot, demo decisions, screening labels ...).
    """
    from .protocol import PACKAGE_DATA
    found: dict[str, str] = {}
    for text in set(_strings(protocol.raw)):
        if not text or len(text) > 300 or "\n" in text:
            continue
        for base in (Path(protocol.path).parent, PACKAGE_DATA):
            candidate = base / text
            try:
                if candidate.is_file():
                    found[text] = file_digest(candidate)
                    break
            except (OSError, ValueError):  # a pattern or sentence that is not a usable path
                break
    return dict(sorted(found.items()))


def fingerprint(protocol: Any, notebooks: Iterable[Path], parameters: Mapping[str, Any],
                store_path: str | Path | None, *, offline: bool, versions: Mapping[str, str]) -> dict[str, Any]:
    """The content hashes of everything an offline run reads.

    Parameters
    ----------
    protocol : reviewlib.protocol.Protocol
    notebooks : iterable of path
        The notebooks the run executes, in order.
    parameters : mapping
        The notebook parameters; the run's own id and output folder are left out.
    store_path : path-like or None
        The review store; None leaves it out (``"store"``), for :func:`current_run` to hash only when
        everything else matched (the store is the one large input: 700 MB at 100,000 records).
    offline : bool
    versions : mapping
        Library versions (``pipeline.package_versions()``).

    Returns
    -------
    dict
        JSON-ready; two fingerprints are equal when the runs read the same things.
    """
    found = {
        "offline": bool(offline),
        "protocol": protocol.sha256,
        "protocol_files": protocol_files(protocol),
        "notebooks": {Path(nb).name: file_digest(nb) for nb in notebooks},
        "code": tree_digest(PACKAGE_DIR),
        "versions": dict(sorted(versions.items())),
        "parameters": {k: _plain(v) for k, v in sorted(parameters.items()) if k not in RUN_OWN_PARAMETERS},
    }
    if store_path is not None:
        found["store"] = store_digest(store_path)
    return found


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def current_run(results_root: str | Path, inputs: Mapping[str, Any],
                store_path: str | Path | None = None) -> Path | None:
    """The newest complete run whose recorded inputs equal ``inputs``, if its pages are all still there.

    Only the newest complete run counts: an older one with the same inputs is not current when a later
    run (say on another snapshot) came after it.  An online fingerprint never matches.  ``inputs``
    without its ``"store"`` is completed from ``store_path``, hashed only when the rest matched.
    """
    from . import runstate
    if not inputs.get("offline"):
        return None
    runs = [(d, m) for d, m in runstate.listed_runs(Path(results_root)) if m.get("status") == "complete"]
    if not runs:
        return None
    run_dir, manifest = runs[-1]
    recorded, wanted = dict(manifest.get("inputs") or {}), dict(inputs)
    if "store" not in wanted and store_path is not None and \
            {k: v for k, v in recorded.items() if k != "store"} == wanted:
        wanted["store"] = store_digest(store_path)
    if recorded != wanted:
        return None
    pages = [run_dir / "index.html"] + [run_dir / (Path(nb).stem + ".html") for nb in inputs["notebooks"]]
    missing = [p.name for p in pages if not p.is_file()]
    if missing:
        logger.info("run %s read the same inputs but its %s is gone: running again", run_dir.name, missing[0])
        return None
    return run_dir


#: The tables a reviewer writes to; a row counts when its reviewer is not one of the run's own authors
#: (the rules, the demo's scripted reviewer and appraiser, the registry curation), extractions only when
#: a reviewer (not the machine) wrote them.
REVIEWER_TABLES = {"decisions": "1", "extractions": "method = 'reviewer'", "appraisals": "1",
                   "grade_overrides": "1", "dedup_marks": "1"}


def _read_only(store_path: Path):
    import sqlite3
    return sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=30)


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def reviewer_marks(store_path: str | Path) -> dict[str, int]:
    """The last row id of each table a reviewer writes to (read-only: the store's bytes stay as they are)."""
    path = Path(store_path)
    if not path.is_file():
        return {}
    con = _read_only(path)
    try:
        names = _tables(con)
        return {t: int(con.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {t}").fetchone()[0])
                for t in REVIEWER_TABLES if t in names}
    finally:
        con.close()


def reviewer_rows_since(store_path: str | Path, marks: Mapping[str, int], run_authors: Iterable[str]) -> int:
    """How many rows a reviewer (not the run itself) added after ``marks`` (:func:`reviewer_marks`).

    A decision made in the screener while a run ran is in the store the run leaves, but perhaps not
    in its pages; a run that saw one does not record its inputs, so the next run runs.

    Parameters
    ----------
    store_path : path-like
    marks : mapping
        From :func:`reviewer_marks` as the run began.
    run_authors : iterable of str
        The reviewer names the run writes under itself (``pipeline.run_authors``).
    """
    path = Path(store_path)
    if not path.is_file():
        return 0
    authors = sorted(set(run_authors))
    placeholders = ",".join("?" for _ in authors) or "NULL"
    con = _read_only(path)
    try:
        names = _tables(con)
        return sum(int(con.execute(f"SELECT COUNT(*) FROM {t} WHERE rowid > ? AND {where} AND "
                                   f"COALESCE(reviewer, '') NOT IN ({placeholders})",
                                   (int(marks.get(t, 0)), *authors)).fetchone()[0])
                   for t, where in REVIEWER_TABLES.items() if t in names)
    finally:
        con.close()
