"""Large tables stay out of the HTML pages: the page shows the first rows, the full table goes to CSV.

A 100,000-record review embedded its records and decisions tables whole in pages 01 and 02
(20 MB each).  :func:`limit` keeps the first :data:`MAX_PAGE_ROWS` rows for the page and writes
the full table, CSV/XLSX-injection-safe, to the run's ``tables/`` folder (set by
:func:`set_folder`, which ``report.init_tables(folder)`` calls), where the page links it.
"""
from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import write_with

logger = logging.getLogger(__name__)

#: Rows of a table shown in a page; a longer table is cut there and written whole to CSV.
MAX_PAGE_ROWS = 500
#: Cell starts that spreadsheet programs read as a formula: such text cells get a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_folder: Path | None = None


def set_folder(folder: str | Path | None) -> None:
    """Where :func:`limit` writes full tables (the run's ``tables/`` folder); None: nowhere."""
    global _folder
    _folder = Path(folder) if folder is not None else None


def folder() -> Path | None:
    """The folder set by :func:`set_folder`."""
    return _folder


def neutralise(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, prefixed with ``'``; others unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "table"


def write_full_table(frame: pd.DataFrame, name: str, target: str | Path) -> Path:
    """Write ``frame`` to ``target/<slug of name>.csv`` (atomically, formula cells neutralised)."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    safe = frame.copy()
    for col in safe.columns:
        if safe[col].dtype == object or pd.api.types.is_string_dtype(safe[col]):
            safe[col] = [neutralise("; ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
                         for v in safe[col]]
    path = target / f"{_slug(name)}.csv"
    return write_with(path, lambda tmp: safe.to_csv(tmp, index=False, encoding="utf-8"))


def limit(frame: pd.DataFrame, caption: str | None, max_rows: int = MAX_PAGE_ROWS) -> tuple[pd.DataFrame, str | None]:
    """The part of ``frame`` a page shows, and the HTML note that says where the rest is.

    Returns ``frame`` itself and None when it has at most ``max_rows`` rows.  Otherwise the first
    ``max_rows`` rows and a note: how many rows are shown of how many, and a link to the full
    table's CSV (written by :func:`write_full_table` when a folder is set).
    """
    if len(frame) <= max_rows:
        return frame, None
    shown = frame.head(max_rows)
    name = caption or "table"
    note = f"The first {max_rows:,} of {len(frame):,} rows are shown"
    if _folder is not None:
        path = write_full_table(frame, name, _folder)
        href = f"{_folder.name}/{path.name}"
        note += (f"; the full table is in <a href=\"{html.escape(href, quote=True)}\">"
                 f"{html.escape(href)}</a> (CSV).")
        logger.info("table %r: %d rows written to %s, %d shown", name, len(frame), path, max_rows)
    else:
        note += "; the full table is in the notebook's DataFrame."
    return shown, f"<p class=\"rl-table-note\">{note}</p>"
