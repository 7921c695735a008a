"""Spreadsheet-safe cells: no text from PubMed or a reviewer becomes a live formula.

Text in a review (titles, author names, reviewer notes) is untrusted.  A CSV
cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
run as a formula by Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``
leaks data, ``=cmd|' /C calc'!A0`` runs a program).  Following OWASP's advice on
CSV injection, every CSV the workbench writes goes through :func:`write_csv`,
which prefixes such a string cell with a single quote (``'``); every workbook
goes through :func:`write_xlsx`, whose cells hold strings, never formulas.

Readers of those files call :func:`unguard_frame` (or :func:`read_csv`), so a
file read back gives the original text.  The guard is reversible: a string
that itself starts with ``'`` followed by a trigger character or another
``'`` gets one more quote, so stripping exactly one quote is always right.

Only strings are guarded.  Numbers stay numbers, and a string that is a plain
number (``-1.5``) is left as it is: a spreadsheet reads it as that number, not
as a formula.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from .atomic import write_with

#: First characters that make a spreadsheet treat a cell as a formula (OWASP).
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: The prefix that makes a spreadsheet show the rest as text.
QUOTE = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def needs_guard(text: str) -> bool:
    """True if ``text`` would start a formula (or is an already-quoted string that must stay distinct)."""
    if not text:
        return False
    if text[0] in TRIGGERS:
        return _PLAIN_NUMBER.fullmatch(text) is None
    return text[0] == QUOTE and len(text) > 1 and (text[1] in TRIGGERS or text[1] == QUOTE)


def guard(value: Any) -> Any:
    """Return ``value`` safe for a spreadsheet cell: a string that starts a formula gets a leading ``'``.

    Parameters
    ----------
    value : object
        A cell value; anything but a string is returned unchanged.
    """
    if isinstance(value, str) and needs_guard(value):
        return QUOTE + value
    return value


def unguard(value: Any) -> Any:
    """Undo :func:`guard`: ``"'=SUM(A1)"`` gives ``"=SUM(A1)"``; other values are returned unchanged."""
    if isinstance(value, str) and len(value) > 1 and value[0] == QUOTE and needs_guard(value[1:]):
        return value[1:]
    return value


def _text_columns(frame: pd.DataFrame) -> list:
    return [c for c in frame.columns
            if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c].dtype)]


def _map_strings(frame: pd.DataFrame, fn) -> pd.DataFrame:
    out = frame.copy()
    for col in _text_columns(out):
        out[col] = pd.Series([fn(v) for v in out[col]], index=out.index, dtype=out[col].dtype)
    out.columns = [fn(c) for c in out.columns]
    return out


def guard_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every string cell (and column name) passed through :func:`guard`."""
    return _map_strings(frame, guard)


def unguard_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every string cell (and column name) passed through :func:`unguard`."""
    return _map_strings(frame, unguard)


def _has_carriage_return(frame: pd.DataFrame) -> bool:
    if any(isinstance(c, str) and "\r" in c for c in frame.columns):
        return True
    return any(isinstance(v, str) and "\r" in v
               for col in _text_columns(frame) for v in frame[col])


def write_csv(frame: pd.DataFrame, path: str | os.PathLike, **to_csv: Any) -> Path:
    """Write ``frame`` to CSV atomically with formula-starting strings guarded.

    Parameters
    ----------
    frame : pandas.DataFrame
    path : path-like
        Destination; its folder is created if missing.
    **to_csv
        Passed to :meth:`pandas.DataFrame.to_csv` (default ``index=False``, UTF-8).

    Returns
    -------
    pathlib.Path
    """
    to_csv.setdefault("index", False)
    encoding = to_csv.pop("encoding", "utf-8")
    safe = guard_frame(frame)
    if "lineterminator" not in to_csv and _has_carriage_return(safe):
        # the csv module quotes only the characters of its line terminator: with "\n" a cell holding
        # "\r" is written bare and splits the row when read back; "\r\n" makes it quote such cells
        to_csv["lineterminator"] = "\r\n"

    def write(tmp):
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            safe.to_csv(fh, **to_csv)
    return write_with(Path(path), write)


def read_csv(path: str | os.PathLike, **read_csv: Any) -> pd.DataFrame:
    """Read a CSV written by :func:`write_csv` back to its original text (``pandas.read_csv`` options pass through)."""
    return unguard_frame(pd.read_csv(path, **read_csv))


def harden_sheet(worksheet) -> int:
    """Make every cell of an openpyxl ``worksheet`` a literal: formulas become strings.

    openpyxl stores a string that starts with ``=`` as a formula; this turns it
    back into a string cell.  Strings that start any formula character are also
    given Excel's quote-prefix style, so editing the cell keeps it text.
    Returns the number of cells changed.
    """
    changed = 0
    for row in worksheet.iter_rows():
        for cell in row:
            value = cell.value
            if cell.data_type == "f":
                cell.data_type = "s"
            if isinstance(value, str) and value and value[0] in TRIGGERS and _PLAIN_NUMBER.fullmatch(value) is None:
                cell.quotePrefix = True
                changed += 1
    return changed


def write_xlsx(sheets: Mapping[str, pd.DataFrame], path: str | os.PathLike) -> Path:
    """Write one sheet per frame to a workbook, atomically; every text cell is a string, never a formula.

    Parameters
    ----------
    sheets : mapping of str to pandas.DataFrame
        Sheet name (already valid for Excel) to table.
    path : path-like
        The ``.xlsx`` file.
    """
    def write(tmp):
        with pd.ExcelWriter(tmp, engine="openpyxl") as xl:
            for name, table in sheets.items():
                table.to_excel(xl, sheet_name=name, index=False)
                harden_sheet(xl.sheets[name])
    return write_with(Path(path), write)


def read_sheet(path: str | os.PathLike, kind: str, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a filled-in review sheet (CSV or XLSX, as written by an ``export_sheet``) as strings, unguarded.

    Parameters
    ----------
    path : path-like
        The sheet.
    kind : str
        What the sheet is, for messages ("extraction sheet", "appraisal sheet"...).
    required : tuple of str
        Columns the sheet must have.

    Raises
    ------
    InputError
        One line: missing file, a directory, a binary file given as CSV, unreadable, or a missing column.
    """
    from .errors import InputError
    from .textfiles import check_text_file
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{kind} {path} is a directory, not a file: give the file written by export_sheet",
                         source=str(path))
    if not path.is_file():
        raise InputError(f"{kind} not found: {path}: give the file written by export_sheet", source=str(path))
    encoding = "utf-8"
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        path, encoding = check_text_file(path, kind, "the CSV or XLSX written by export_sheet")
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            frame = pd.read_excel(path, sheet_name=0, dtype=str, engine="openpyxl").fillna("")
        else:
            frame = unguard_frame(pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding))
    except Exception as exc:  # openpyxl and pandas raise many kinds
        raise InputError(f"cannot read {kind} {path}: {exc}; save it as CSV (UTF-8) or XLSX",
                         source=str(path)) from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(f"{kind} {path} has no column {', '.join(missing)}: start from the sheet "
                         "written by export_sheet", source=str(path))
    return frame
