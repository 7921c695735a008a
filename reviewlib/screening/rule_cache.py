"""Rules are not redone for records that did not change (issue 15).

:func:`apply_rules_cached` keeps each record's rule outcome keyed by the record's content hash
(the one :func:`reviewlib.screening.dedup.save` stores it under) and the eligibility section's
hash (:attr:`Rules.digest`): an unchanged rerun reads every outcome back, a changed record or
protocol is evaluated again.  Only outcomes of the current section are kept.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Mapping

import pandas as pd

from ..gcpause import collector_paused
from ..settings import process_count
from .eligibility import Rules, apply_rules

logger = logging.getLogger(__name__)

#: Bump when the rules' code changes what a record gets (the cached outcomes are then recomputed).
RULES_CODE_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_results (
    rules_digest TEXT NOT NULL,        -- sha256 of the eligibility section (and RULES_CODE_VERSION)
    content_hash TEXT NOT NULL,        -- sha256 of the record's content (dedup's record_contents)
    decision TEXT NOT NULL,
    reasons TEXT NOT NULL,             -- JSON list
    fired TEXT NOT NULL,               -- JSON list
    PRIMARY KEY (rules_digest, content_hash)
);
"""


#: Environment variable: how many processes apply the rules to a large table (1: all in this one).
RULE_WORKERS_ENV = "REVIEWLIB_RULE_WORKERS"
#: Records to evaluate below which the rules run in this process only (a fork costs more than it saves).
PARALLEL_RULES_MIN = 30_000


def rule_workers(workers: int | None = None) -> int:
    """Processes :func:`apply_rules_cached` evaluates a large table with: ``workers`` when given, else
    :data:`RULE_WORKERS_ENV`, else 1; at least 1.

    One by default: on the shared 2-core machine (load 4-6) two processes took longer than one
    (100k records: 21.9 against 14.6-17.5 s wall); ``REVIEWLIB_RULE_WORKERS=2`` splits the table
    where a core is free (not yet measured on an idle machine)."""
    if workers is None:
        return process_count(RULE_WORKERS_ENV, 1, "apply the screening rules")
    return max(1, int(workers))


#: What a forked worker evaluates: (records, rules), set just before the fork (never pickled).
_SPLIT: tuple | None = None


def _outcome(records: pd.DataFrame, rules: Rules) -> tuple[list, list, list]:
    """:func:`apply_rules`' decision, reasons and fired columns, as lists."""
    frame = apply_rules(records, rules)
    return frame["decision"].tolist(), frame["reasons"].tolist(), frame["fired"].tolist()


def _apply_part(start: int, stop: int) -> tuple[list, list, list]:
    """Worker: the rules' outcome lists for rows ``start:stop`` of the table set before the fork."""
    records, rules = _SPLIT
    return _outcome(records.iloc[start:stop], rules)


def _work(start: int, stop: int) -> tuple[list, list, list]:
    """What a worker is handed (by name: the function it calls is looked up in the forked worker)."""
    return _apply_part(start, stop)


def _evaluate(records: pd.DataFrame, rules: Rules, workers: int) -> tuple[list, list, list]:
    """:func:`apply_rules`' decision, reasons and fired lists; a large table split between this process
    and forked workers (each record's outcome depends on that record only, so the parts joined are
    the whole table's outcome).  A worker that fails or dies leaves its part to this process."""
    n = len(records)
    if workers <= 1 or n < PARALLEL_RULES_MIN:
        return _outcome(records, rules)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    global _SPLIT
    bounds = [n * k // workers for k in range(workers + 1)]
    parts: list = [None] * workers
    _SPLIT = (records, rules)
    try:
        with ProcessPoolExecutor(max_workers=workers - 1, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = {k: pool.submit(_work, bounds[k], bounds[k + 1]) for k in range(1, workers)}
            parts[0] = _apply_part(bounds[0], bounds[1])
            for k, future in futures.items():
                try:
                    parts[k] = future.result()
                except Exception as exc:  # noqa: BLE001 - a worker killed for memory, say: done here instead
                    logger.warning("screening rules: a worker failed (%s); its %d records are evaluated here",
                                   exc, bounds[k + 1] - bounds[k])
    finally:
        _SPLIT = None
    for k in range(1, workers):
        if parts[k] is None:
            parts[k] = _outcome(records.iloc[bounds[k]:bounds[k + 1]], rules)
    return tuple([value for part in parts for value in part[j]] for j in range(3))


def _digest(rules: Rules) -> str:
    return hashlib.sha256(f"{RULES_CODE_VERSION}:{rules.digest}".encode()).hexdigest()


def content_hashes(store, records: pd.DataFrame) -> dict[str, str]:
    """record_id -> content hash, from the latest saved dedup run when it holds exactly ``records``."""
    from . import dedup
    store.ensure_schema(dedup.SCHEMA)
    store.ensure_schema(dedup.CONTENT_SCHEMA)
    con = store.connection.cursor()
    con.row_factory = None                 # plain tuples: sqlite3.Row objects cost more than the read
    run = con.execute("SELECT MAX(run_id) FROM dedup_runs").fetchone()[0]
    if run is None:
        return {}
    rows = con.execute("SELECT record_id, data FROM dedup_records WHERE run_id=? ORDER BY position", (run,)).fetchall()
    if [r[0] for r in rows] != list(records["record_id"]):
        return {}
    ref = dedup.CONTENT_REF
    return {r[0]: r[1][len(ref):] for r in rows if isinstance(r[1], str) and r[1].startswith(ref)}


@collector_paused()
def apply_rules_cached(store, records: pd.DataFrame, rules: Rules,
                       hashes: Mapping[str, str] | None = None, workers: int | None = None) -> pd.DataFrame:
    """:func:`reviewlib.screening.eligibility.apply_rules`, reusing outcomes of unchanged records.

    Parameters
    ----------
    store : ReviewStore
        Where outcomes are kept (table ``rule_results``).
    records : pandas.DataFrame
        With ``record_id``: the records just saved by ``dedup.save`` (their content hashes are
        read from it), or any records with ``hashes`` given.
    rules : Rules
        From :func:`reviewlib.screening.eligibility.load_rules` (its ``digest`` keys the outcomes;
        without one nothing is cached).
    hashes : mapping, optional
        record_id -> content hash.
    workers : int, optional
        Processes that evaluate the records not read back when they are :data:`PARALLEL_RULES_MIN`
        or more (default :func:`rule_workers`: ``REVIEWLIB_RULE_WORKERS``, else 1); the outcome is
        the same.

    Returns
    -------
    pandas.DataFrame
        The same frame as ``apply_rules(records, rules)``.
    """
    if rules.digest is None or "record_id" not in records.columns or not len(records):
        return apply_rules(records, rules)
    store.ensure_schema(SCHEMA)
    hashes = dict(hashes) if hashes is not None else content_hashes(store, records)
    digest = _digest(rules)
    con = store.connection.cursor()
    con.row_factory = None
    decoded: dict[str, list] = {}      # few distinct reason and rule lists: each JSON text decoded once

    def _list(text: str) -> list:
        value = decoded.get(text)
        if value is None:
            value = decoded[text] = json.loads(text)
        return value

    known = {h: (d, _list(r), _list(f)) for h, d, r, f in con.execute(
        "SELECT content_hash, decision, reasons, fired FROM rule_results WHERE rules_digest=?", (digest,))}
    ids = records["record_id"].tolist()
    keys = [hashes.get(rid) for rid in ids]
    todo = [i for i, h in enumerate(keys) if h not in known]
    n = len(ids)
    decisions: list = [None] * n
    reasons: list = [None] * n
    fired: list = [None] * n
    for i, h in enumerate(keys):
        if h in known:
            d, r, f = known[h]
            decisions[i], reasons[i], fired[i] = d, list(r), list(f)
    if todo:
        # every record new (a cold run): the table itself, not a copy of all its rows
        fresh = _evaluate(records if len(todo) == n else records.iloc[todo], rules, rule_workers(workers))
        for i, d, r, f in zip(todo, *fresh):
            decisions[i], reasons[i], fired[i] = d, list(r), list(f)
    texts: dict[tuple, str] = {}       # few distinct lists: each encoded once

    def _json(value: list) -> str:
        key = tuple(value)
        text = texts.get(key)
        if text is None:
            text = texts[key] = json.dumps(value)
        return text
    new_rows = {(keys[i], decisions[i], _json(reasons[i]), _json(fired[i])) for i in todo if keys[i] is not None}
    if new_rows:
        with store.transaction() as c:
            c.executemany("INSERT OR IGNORE INTO rule_results VALUES(?, ?, ?, ?, ?)",
                          [(digest, *row) for row in new_rows])
            c.execute("DELETE FROM rule_results WHERE rules_digest != ?", (digest,))
    logger.info("screening rules: %d records evaluated, %d unchanged read back", len(todo), len(ids) - len(todo))
    frame = pd.DataFrame({"record_id": ids, "decision": decisions, "reasons": reasons, "fired": fired},
                         columns=["record_id", "decision", "reasons", "fired"])
    return frame
