"""Deduplication is not redone while its inputs are unchanged (issue 15).

:func:`deduplicate_cached` is :func:`reviewlib.screening.registrations.deduplicate` followed by
:func:`reviewlib.screening.dedup.save`, with the result kept in the review's cache under a key
that is a content hash of everything the result depends on:

* every value of the records table given (all columns, in order, with their dtypes);
* the registry table (register ids decide which registrations are one study);
* the reviewers' marks in force;
* the fuzzy title threshold;
* the code: the source text of the dedup modules (:data:`CODE_MODULES`), rapidfuzz's version
  and :data:`DEDUP_CACHE_VERSION`.

An unchanged rerun (the same key, and the store's latest saved dedup run the one the cache
describes) reads the result back instead of comparing 100,000 records (~10 s) and re-encoding
every record to see that nothing changed (~5 s).  A changed record, registration, mark,
threshold or dedup code gives another key and the records are deduplicated again.

The cache file (``cache/dedup-<key>.json`` beside the store, written atomically; only the newest
is kept) holds the audit, the uncertain pairs and the counts, and of the unique records only their
input positions and the merged records' rows (a kept record's empty fields are filled from its
group): every other unique record *is* its input row, so the table is rebuilt from the input.
"""
from __future__ import annotations

import hashlib
import json
import logging
import operator
from itertools import chain, repeat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import files_digest, write_text
from ..gcpause import collector_paused
from . import dedup

logger = logging.getLogger(__name__)

#: Bump when the cached results must not be reused (a change of what the cache file holds, say).
DEDUP_CACHE_VERSION = 1
#: Modules whose source text is part of the key: a change to the rules recomputes.
CODE_MODULES = ("reviewlib.screening.dedup", "reviewlib.screening.dedup_match",
                "reviewlib.screening.registrations", "reviewlib.sources.ctgov", "reviewlib.records",
                "reviewlib.screening.dedup_cache")


def _code_digest() -> str:
    import importlib
    import rapidfuzz
    sources = files_digest(Path(importlib.import_module(name).__file__) for name in CODE_MODULES)
    return hashlib.sha256(f"{DEDUP_CACHE_VERSION}:{rapidfuzz.__version__}:{sources}".encode()).hexdigest()


def _update_with_strings(digest: "hashlib._Hash", strings: list) -> None:
    """Each string's UTF-8 bytes and their lengths (so that no two lists give the same bytes)."""
    try:
        encoded = list(map(str.encode, strings))
    except UnicodeEncodeError:                 # a lone surrogate: keep it as Python writes it
        encoded = [s.encode("utf-8", "surrogatepass") for s in strings]
    digest.update(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)).tobytes())
    digest.update(b"".join(encoded))


def _update_with_column(digest: "hashlib._Hash", values: list) -> None:
    """Feed one column's values into ``digest``, unambiguously, without a Python step per value:
    strings or None, lists of strings, lists of ``{str: str}`` dicts (abstract sections); anything
    else by its ``repr`` (exact for plain Python values)."""
    kinds = set(map(type, values))
    if kinds <= {str, type(None)}:
        digest.update(b"s" + bytes(map(operator.is_, repeat(None), values)))
        _update_with_strings(digest, ["" if v is None else v for v in values] if type(None) in kinds else values)
        return
    if kinds <= {list}:
        flat = list(chain.from_iterable(values))
        inner = set(map(type, flat))
        sizes = np.fromiter(map(len, values), dtype=np.int64, count=len(values)).tobytes()
        if inner <= {str}:
            digest.update(b"l" + sizes)
            _update_with_strings(digest, flat)
            return
        if inner <= {dict}:
            parts = [x for d in flat for pair in d.items() for x in pair]
            if set(map(type, parts)) <= {str}:
                digest.update(b"d" + sizes + np.fromiter(map(len, flat), dtype=np.int64, count=len(flat)).tobytes())
                _update_with_strings(digest, parts)
                return
    digest.update(b"r" + repr(values).encode("utf-8", "surrogatepass"))


def _update_with_frame(digest: "hashlib._Hash", frame: pd.DataFrame | None) -> None:
    """Feed every value of ``frame`` (columns, dtypes, values in order) into ``digest``."""
    if frame is None:
        digest.update(b"<none>")
        return
    digest.update(repr((list(map(str, frame.columns)), [str(t) for t in frame.dtypes], len(frame))).encode())
    for col in frame.columns:
        _update_with_column(digest, frame[col].tolist())
        digest.update(b"\x00")


def input_key(records: pd.DataFrame, trials: pd.DataFrame | None = None, marks: pd.DataFrame | None = None,
              threshold: float = dedup.FUZZY_THRESHOLD, stored: list[str | None] | None = None) -> str:
    """The content hash (sha256 hex) that names a deduplication result of these inputs.

    ``stored``: for each row of ``records``, the sha256 of the stored JSON it is, value for value
    (:meth:`reviewlib.store.ReviewStore.stored_content_hashes`).  When every row has one, the records
    are keyed by their ids and those hashes (a decoded record *is* its JSON: the same content, the
    same key) instead of feeding every value in (3 s at 100,000 records); otherwise by their values.
    """
    digest = hashlib.sha256(_code_digest().encode())
    digest.update(repr(float(threshold)).encode())
    if stored is not None and len(stored) == len(records) and len(records) and all(stored) \
            and "record_id" in records.columns:
        digest.update(b"stored-json" + repr((list(map(str, records.columns)),
                                             [str(t) for t in records.dtypes], len(records))).encode())
        _update_with_strings(digest, records["record_id"].tolist())
        _update_with_strings(digest, list(stored))
    else:
        _update_with_frame(digest, records)
    for part in (trials, marks):
        _update_with_frame(digest, part)
    return digest.hexdigest()


# -- a DataFrame to JSON and back, dtypes and None/NaN kept ----------------------
def _plain(value: Any) -> Any:
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _frame_json(frame: pd.DataFrame) -> dict[str, Any]:
    return {"columns": list(frame.columns), "dtypes": [str(t) for t in frame.dtypes],
            "values": [[_plain(v) for v in frame[c].tolist()] for c in frame.columns]}


def _frame_back(data: dict[str, Any]) -> pd.DataFrame:
    columns = {}
    for name, dtype, values in zip(data["columns"], data["dtypes"], data["values"]):
        columns[name] = (pd.Series(values, dtype=object) if dtype == "object"
                         else pd.Series(pd.array(values, dtype=dtype)))
    return pd.DataFrame(columns, columns=data["columns"])


def _cache_path(store, key: str) -> Path:
    return store.cache_dir / f"dedup-{key[:32]}.json"


def _latest_run(store) -> tuple[int, str | None] | None:
    dedup._ensure_schema(store)
    store.ensure_schema(dedup.CONTENT_SCHEMA)
    row = store.connection.execute("SELECT r.run_id, d.digest FROM dedup_runs r LEFT JOIN dedup_digests d "
                                   "USING(run_id) ORDER BY r.run_id DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), row[1])


def _read(store, key: str) -> dict[str, Any] | None:
    path = _cache_path(store, key)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("dedup: cache %s unreadable (%s): deduplicating again", path, exc)
        return None
    if data.get("key") != key or data.get("version") != DEDUP_CACHE_VERSION:
        return None
    return data


def _rebuild(records: pd.DataFrame, data: dict[str, Any]) -> dedup.DedupResult:
    positions = data["positions"]
    merged = {int(k): row for k, row in data["merged_rows"].items()}
    columns = {}
    for col in data["record_columns"]:
        source = records[col]
        values = source.tolist()
        picked = [merged[i][col] if i in merged else values[p] for i, p in enumerate(positions)]
        if isinstance(source.dtype, np.dtype) and source.dtype == object:
            columns[col] = pd.Series(picked, dtype=object)
        else:
            columns[col] = pd.Series(pd.array(picked, dtype=source.dtype))
    unique = pd.DataFrame(columns, columns=data["record_columns"])
    return dedup.DedupResult(records=unique, audit=_frame_back(data["audit"]), n_removed=data["n_removed"],
                             n_input=data["n_input"], threshold=data["threshold"], groups=data["groups"],
                             uncertain=_frame_back(data["uncertain"]))


def _write(store, key: str, records: pd.DataFrame, result: dedup.DedupResult, run: tuple[int, str | None]) -> None:
    position = {rid: i for i, rid in enumerate(records["record_id"])}
    out_ids = result.records["record_id"].tolist()
    positions = [position[r] for r in out_ids]
    group_kept = set(result.audit.loc[result.audit["kept"].astype(bool), "record_id"])
    cols = list(result.records.columns)
    merged = {}
    for i, rid in enumerate(out_ids):
        if rid in group_kept:   # its empty fields may have been filled from its group: keep the row itself
            merged[str(i)] = {c: _plain(result.records[c].iat[i]) for c in cols}
    data = {"version": DEDUP_CACHE_VERSION, "key": key, "run_id": run[0], "run_digest": run[1],
            "record_columns": cols, "positions": positions, "merged_rows": merged,
            "audit": _frame_json(result.audit), "uncertain": _frame_json(result.uncertain),
            "n_removed": int(result.n_removed), "n_input": int(result.n_input),
            "threshold": float(result.threshold), "groups": int(result.groups)}
    path = _cache_path(store, key)
    try:
        write_text(path, json.dumps(data, ensure_ascii=False, allow_nan=True))
        for old in store.cache_dir.glob("dedup-*.json"):
            if old != path:
                old.unlink(missing_ok=True)   # the cache does not grow run by run
    except OSError as exc:
        logger.warning("dedup: could not keep the result in %s (%s)", path, exc)


def _cacheable(records: pd.DataFrame) -> bool:
    ids = records["record_id"] if "record_id" in records.columns else None
    return ids is not None and len(records) > 0 and ids.notna().all() and ids.is_unique


@collector_paused()
def deduplicate_cached(store, records: pd.DataFrame, trials: pd.DataFrame | None = None,
                       marks: pd.DataFrame | None = None,
                       threshold: float = dedup.FUZZY_THRESHOLD) -> dedup.DedupResult:
    """Deduplicate ``records`` and save the result in ``store``, or read it back when nothing changed.

    Parameters
    ----------
    store : ReviewStore
        The review store: the result is saved there (:func:`reviewlib.screening.dedup.save`), and
        kept in its folder's ``cache/``.
    records : pandas.DataFrame
        The run's records, ``record_id`` first (unique ids; otherwise nothing is cached).
    trials, marks, threshold
        As for :func:`reviewlib.screening.registrations.deduplicate`.

    Returns
    -------
    DedupResult
        Equal to ``registrations.deduplicate(records, trials, threshold, marks)``; the store's
        latest saved dedup run is this result.
    """
    from .registrations import deduplicate
    if not _cacheable(records):
        result = deduplicate(records, trials, threshold=threshold, marks=marks)
        dedup.save(store, result)
        return result
    stored = store.stored_content_hashes(records)[1]      # rows as stored: keyed by their stored JSON
    key = input_key(records, trials, marks, threshold, stored=stored)
    data = _read(store, key)
    latest = _latest_run(store)
    if data is not None and latest is not None and [data["run_id"], data["run_digest"]] == list(latest):
        logger.info("dedup: inputs unchanged (key %s): result of run %d read back", key[:12], latest[0])
        return _rebuild(records, data)
    result = deduplicate(records, trials, threshold=threshold, marks=marks)
    run_id = dedup.save(store, result)
    latest = _latest_run(store)
    if latest is not None and latest[0] == run_id:
        _write(store, key, records, result, latest)
    return result


__all__ = ["deduplicate_cached", "input_key", "DEDUP_CACHE_VERSION"]
