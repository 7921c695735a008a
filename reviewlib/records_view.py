"""A few columns of the stored records, read without decoding whole records (issue 15).

A page that shows five columns of 100,000 records need not decode every record's JSON (abstracts,
sections, MeSH terms) into a full records table: SQLite's ``json_extract`` picks the columns out
in C (1.5 s at 100,000 records, where reading and decoding the whole table took 6 s).  The values
and dtypes are those of the same columns of :meth:`reviewlib.store.ReviewStore.records` and
:func:`reviewlib.report.living.run_records` (``tests/test_records_view.py``).
"""
from __future__ import annotations

import json
from typing import Sequence

import pandas as pd

from .errors import InputError
from .records import COLUMNS, LIST_COLUMNS
from .store import ReviewStore

_JSON_COLUMNS = frozenset(LIST_COLUMNS + ["abstract_sections"])
#: Columns read from a part of a record: ``first_author`` is ``authors[0]`` (None without authors), all
#: that notebook 01's overview shows of the authors (decoding every author list of 100,000 records was
#: a fifth of its overview cell).
DERIVED_COLUMNS = {"first_author": "$.authors[0]"}
#: The list columns whose items are strings (``abstract_sections`` holds objects).
_STRING_LIST_COLUMNS = frozenset(LIST_COLUMNS)


def _records_sql(search_id: int | None, columns: str) -> str:
    """:meth:`ReviewStore.records`' rows and order; a search's records are picked through
    ``record_sources`` first (a join scanned every record for a search of 315: 0.14 s at 100,000)."""
    if search_id is None:
        return f"SELECT {columns} FROM records r ORDER BY r.rowid"
    return (f"SELECT {columns} FROM records r WHERE r.record_id IN "
            "(SELECT record_id FROM record_sources WHERE search_id=?) ORDER BY r.rowid")


def _string_lists(texts: Sequence[str | None]) -> list[list[str]]:
    """``json.loads`` of each JSON array of strings that ``json_extract`` gave (None: ``[]``).

    SQLite writes an extracted array compactly (``["a","b"]``).  A JSON string without a backslash
    holds no quote, so such an array is its text between ``["`` and ``"]`` split at ``","``; that
    it held only strings is checked by its quotes (two per item).  Anything else (escapes, numbers,
    nulls, objects) is decoded by ``json.loads``.  Authors and publication types of 100,000
    records: 0.84 s decoded one by one, about a fifth of that split."""
    out: list[list[str]] = []
    append = out.append
    loads = json.loads
    for text in texts:
        if text is None or text == "[]":
            append([])
        elif text[:2] == '["' and text[-2:] == '"]' and "\\" not in text:
            items = text[2:-2].split('","')
            append(items if text.count('"') == 2 * len(items) else loads(text))
        else:
            append(loads(text))
    return out


def record_columns(store: ReviewStore, columns: Sequence[str], search_id: int | None = None) -> pd.DataFrame:
    """``record_id`` and ``columns`` of the store's records (of ``search_id``), in store order.

    Parameters
    ----------
    store : ReviewStore
    columns : sequence of str
        Names in :data:`reviewlib.records.COLUMNS`, or of :data:`DERIVED_COLUMNS`.
    search_id : int, optional
        Only the records found by that search (as :meth:`ReviewStore.records`).

    Returns
    -------
    pandas.DataFrame
        The same rows, values and dtypes as ``store.records(search_id)[["record_id", *columns]]``
        (a derived column: object values, None where the record has none).

    Raises
    ------
    InputError
        A name is not a records column.
    """
    unknown = [c for c in columns if c not in COLUMNS and c not in DERIVED_COLUMNS]
    if unknown:
        raise InputError(f"not records column(s): {', '.join(unknown)}: choose from "
                         f"{', '.join(COLUMNS + list(DERIVED_COLUMNS))}", source="columns")
    picked = ", ".join(["r.record_id"] + [f"json_extract(r.data, '{DERIVED_COLUMNS.get(c, '$.' + c)}')"
                                          for c in columns])
    cur = store.connection.cursor()
    cur.row_factory = None
    rows = cur.execute(_records_sql(search_id, picked), () if search_id is None else (search_id,)).fetchall()
    values = list(zip(*rows)) if rows else [()] * (len(columns) + 1)
    data: dict[str, object] = {"record_id": list(values[0])}     # inferred, as ReviewStore.records does
    for col, column in zip(columns, values[1:]):
        if col in _STRING_LIST_COLUMNS:
            data[col] = pd.Series(_string_lists(column), dtype=object)
        elif col in _JSON_COLUMNS:
            data[col] = pd.Series([json.loads(v) if v is not None else [] for v in column], dtype=object)
        elif col == "year":
            data[col] = pd.to_numeric(pd.Series(list(column), dtype=object), errors="coerce").astype("Int64")
        else:
            data[col] = pd.Series(list(column), dtype=object)
    return pd.DataFrame(data)


def run_record_columns(store: ReviewStore, run_name: str, columns: Sequence[str]) -> pd.DataFrame:
    """``record_id`` and ``columns`` of a run's records: the rows of
    :func:`reviewlib.report.living.run_records`, each record once, at its last search."""
    from .report.living import union_of_searches
    return union_of_searches(store, run_name, lambda search_id: record_columns(store, columns, search_id=search_id))


#: The columns notebook 01's overview shows (:func:`reviewlib.report.records_overview`, records per year).
OVERVIEW_COLUMNS = ["pmid", "year", "first_author", "title", "journal", "journal_abbrev", "publication_types"]
