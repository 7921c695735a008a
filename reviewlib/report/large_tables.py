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


_FORMULA_FIRST = frozenset(FORMULA_STARTS)     # each start is one character


def _safe_cells(values: list) -> list:
    """:func:`neutralise` of each value, lists and tuples joined with ``"; "`` first.

    Plain strings are checked inline (a call per cell, and iterating the Series, were most of
    writing the 100,000-row records overview)."""
    out = []
    append = out.append
    for v in values:
        if type(v) is str:
            append("'" + v if v[:1] in _FORMULA_FIRST else v)
        elif isinstance(v, (list, tuple)):
            append(neutralise("; ".join(map(str, v))))
        else:
            append(neutralise(v))
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "table"


def write_full_table(frame: pd.DataFrame, name: str, target: str | Path) -> Path:
    """Write ``frame`` to ``target/<slug of name>.csv`` (atomically, formula cells neutralised)."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{_slug(name)}.csv"
    cells = _text_cells(frame)
    if cells is not None:
        return write_with(path, lambda tmp: _write_rows(tmp, [str(c) for c in frame.columns], cells))
    safe = frame.copy()
    for col in safe.columns:
        if safe[col].dtype == object or pd.api.types.is_string_dtype(safe[col]):
            safe[col] = _safe_cells(safe[col].tolist())
    return write_with(path, lambda tmp: safe.to_csv(tmp, index=False, encoding="utf-8"))


def _text_cells(frame: pd.DataFrame) -> list[list[str]] | None:
    """Each column's CSV text as :func:`write_full_table` writes it through ``to_csv`` (formula cells
    neutralised, lists joined), when every cell is text, missing, a list or tuple, or in an Int64
    column; else None (``to_csv`` writes the table).  pandas formats such cells one by one in
    Python (0.9 s for the 100,000-row records overview); the csv module writes the same bytes."""
    columns = []
    for col in frame.columns:
        series = frame[col]
        values = series.tolist()
        if isinstance(series.dtype, pd.Int64Dtype):
            columns.append(["" if v is pd.NA else str(v) for v in values])
            continue
        if not (series.dtype == object or pd.api.types.is_string_dtype(series)):
            return None
        text = []
        append = text.append
        for v in values:
            if type(v) is str:
                append("'" + v if v[:1] in _FORMULA_FIRST else v)
            elif v is None or v is pd.NA or (type(v) is float and v != v):
                append("")
            elif isinstance(v, (list, tuple)):
                append(neutralise("; ".join(map(str, v))))
            else:
                return None
        columns.append(text)
    return columns


def _write_rows(path: Path, header: list[str], columns: list[list[str]]) -> None:
    import csv
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(zip(*columns))


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
