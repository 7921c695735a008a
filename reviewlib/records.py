"""The records table: one schema shared by every reader.

Every reader (PubMed XML, MEDLINE, RIS, OpenAlex) returns a DataFrame with
exactly :data:`COLUMNS`, in that order.  List-valued columns hold Python lists;
``abstract_sections`` holds a list of ``{"label": str, "text": str}`` dicts.
In CSV files lists are joined with ``"; "`` and ``abstract_sections`` is JSON.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from .errors import InputError
from .textfiles import check_text_file
from .safe_cells import unguard_frame, write_csv as write_safe_csv

#: Columns of the records table, in order.
COLUMNS: list[str] = [
    "pmid", "doi", "pmcid", "title", "abstract", "abstract_sections", "authors",
    "journal", "journal_abbrev", "year", "pub_date", "language", "publication_types",
    "mesh_terms", "mesh_major", "keywords", "source",
]
#: Columns that hold lists of strings.
LIST_COLUMNS: list[str] = ["authors", "language", "publication_types", "mesh_terms",
                           "mesh_major", "keywords"]
#: Columns that hold plain strings (None when absent).
STRING_COLUMNS: list[str] = ["pmid", "doi", "pmcid", "title", "abstract", "journal",
                             "journal_abbrev", "pub_date", "source"]
LIST_SEPARATOR = "; "


def empty_records() -> pd.DataFrame:
    """Return an empty records table with the right columns and dtypes."""
    return conform(pd.DataFrame({c: [] for c in COLUMNS}))


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly :data:`COLUMNS` and their dtypes.

    Missing columns are added (lists empty, strings None); extra columns are
    kept after the standard ones so readers may carry more.
    """
    frame = frame.copy()
    n = len(frame)
    for col in COLUMNS:
        if col not in frame.columns:
            if col in LIST_COLUMNS or col == "abstract_sections":
                frame[col] = [[] for _ in range(n)]
            else:
                frame[col] = None
    for col in LIST_COLUMNS + ["abstract_sections"]:
        frame[col] = [v if isinstance(v, list) else [] for v in frame[col]]
    for col in STRING_COLUMNS:
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    frame["year"] = pd.to_numeric(frame["year"], errors="coerce").astype("Int64")
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[COLUMNS + extra].reset_index(drop=True)


def to_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Flatten list columns for CSV: lists joined with ``"; "``, sections as JSON."""
    out = frame.copy()
    for col in LIST_COLUMNS:
        if col in out:
            out[col] = [LIST_SEPARATOR.join(v) if isinstance(v, list) else v for v in out[col]]
    if "abstract_sections" in out:
        out["abstract_sections"] = [json.dumps(v, ensure_ascii=False) if isinstance(v, list) and v else ""
                                    for v in out["abstract_sections"]]
    return out


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a records table to CSV atomically (temp file, then rename).

    Text cells that would start a spreadsheet formula are guarded with a
    leading ``'`` (see :mod:`reviewlib.safe_cells`); :func:`read_csv` removes it.

    Parameters
    ----------
    frame : pandas.DataFrame
        A records table.
    path : path-like
        Destination; its folder is created if missing.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    return write_safe_csv(to_csv_frame(frame), path)


def read_csv(path: str | os.PathLike, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a records CSV written by :func:`write_csv` back into a records table.

    Parameters
    ----------
    path : path-like
        The CSV file.
    required : tuple of str
        Columns that must be present; a missing one raises :class:`InputError`.
    """
    path, encoding = check_text_file(path, "records", "the path of a CSV written by 'reviewlib fetch'",
                                     compressed_ok=True)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
    except pd.errors.EmptyDataError:
        raise InputError(f"records CSV {path} is empty: give a CSV with a header row", source=str(path)) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read records CSV {path} ({reason}): check it is a UTF-8 CSV with a header row",
                         source=str(path)) from exc
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise InputError(f"records file {path} has no column {', '.join(missing)}: "
                         f"it needs at least {', '.join(required)}", source=str(path))
    raw = unguard_frame(raw).replace({"": None})
    for col in LIST_COLUMNS:
        if col in raw:
            raw[col] = [[s for s in v.split(LIST_SEPARATOR) if s] if isinstance(v, str) else [] for v in raw[col]]
    if "abstract_sections" in raw:
        raw["abstract_sections"] = [json.loads(v) if isinstance(v, str) and v.startswith("[") else []
                                    for v in raw["abstract_sections"]]
    return conform(raw)
