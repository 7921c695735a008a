"""Practice screening on the demo: a user's clicks never change the demo's results.

The demo review (the synthetic snapshot) is screened by a scripted *demo reviewer*, and its pages,
manifest and figures come from the review store in ``reviews/<review>/review.sqlite``.  A user who
opens 02-screen in JupyterLab to try the screener would, without this module, append real decisions
to that store, and the next ``reviewlib run`` would quietly report them as the demo's.

:func:`practice_store` gives the screener a copy of the store instead
(``reviews/<review>/practice.sqlite``): it holds everything the review holds (records, the rules'
and the demo reviewer's decisions, shown as *Other calls*), and the user's decisions go there only.
Nothing that builds the demo's results reads it.  The copy is made once and then kept, so practice
decisions survive a restart of JupyterLab; ``reset=True`` starts over from the review store, as
does a review store that gained records the copy lacks.
"""
from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from ..store import ReviewStore

logger = logging.getLogger(__name__)

__all__ = ["PRACTICE_NAME", "practice_path", "practice_store", "practice_notice"]

#: The practice copy's file name, beside the review store.
PRACTICE_NAME = "practice.sqlite"


def practice_path(store: ReviewStore) -> Path:
    """Where the practice copy of ``store`` lives: ``practice.sqlite`` in the same folder."""
    return Path(store.path).parent / PRACTICE_NAME


def practice_store(store: ReviewStore, *, reset: bool = False, path: str | os.PathLike | None = None) -> ReviewStore:
    """The practice copy of ``store``, made from it on first use (or when ``reset``).

    Parameters
    ----------
    store : ReviewStore
        The review store (left untouched: it is only read, through SQLite's backup API).
    reset : bool
        Copy the review store again, dropping every practice decision.
    path : path-like, optional
        Where the copy lives (default :func:`practice_path`).

    Returns
    -------
    ReviewStore
        A store on the copy; a screener given it saves there, never in ``store``.
    """
    target = Path(path) if path is not None else practice_path(store)
    if Path(target).resolve() == Path(store.path).resolve():
        raise ValueError(f"the practice copy cannot be the review store itself ({target})")
    if not reset and target.is_file() and _missing_records(store, target):
        logger.warning("the review store has records its practice copy %s lacks: starting the practice over",
                       target)
        reset = True
    if reset or not target.is_file():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        copy = sqlite3.connect(tmp)
        try:
            store.connection.backup(copy)
        finally:
            copy.close()
        for suffix in ("-wal", "-shm"):               # a stale log of an older copy must not replay onto it
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, target)
        logger.info("practice copy of %s made at %s", store.path, target)
    return ReviewStore(target)


def _missing_records(store: ReviewStore, copy_path: Path) -> bool:
    """True when ``store`` holds records the practice copy at ``copy_path`` does not (a new search, say)."""
    ids = {r[0] for r in store.connection.execute("SELECT record_id FROM records")}
    copy = sqlite3.connect(f"file:{copy_path}?mode=ro", uri=True)
    try:
        have = {r[0] for r in copy.execute("SELECT record_id FROM records")}
    except sqlite3.Error:
        return True
    finally:
        copy.close()
    return bool(ids - have)


def practice_notice(practice: ReviewStore, root: str | os.PathLike | None = None) -> str:
    """One line (plain text) that tells the user where their practice decisions go and why.

    Parameters
    ----------
    practice : ReviewStore
        The practice copy (from :func:`practice_store`).
    root : path-like, optional
        Show the copy's path relative to this folder (the checkout) when it is inside it.
    """
    where = Path(practice.path).resolve()
    if root is not None:
        try:
            where = where.relative_to(Path(root).resolve())
        except ValueError:
            pass
    return (f"Practice mode (synthetic demo): your decisions are saved in {where.as_posix()}, a copy of the "
            "demo's review store. The demo's results (reviewlib run, the HTML pages) never read it, so trying "
            "the screener changes nothing in them. Delete that file (or set practice_reset = True) to start over.")
