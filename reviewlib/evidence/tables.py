"""Evidence tables: one row per included study, and summaries that show where evidence is thin.

:func:`study_table` joins the current extracted values (machine or verified, see
:func:`reviewlib.evidence.extraction.current_values`) with the included records.  Each field keeps
a ``<field>_status`` column ('machine' or 'verified').

Reports of the same cohort
--------------------------
Two reports are flagged as the same cohort when a reviewer says so (field
``duplicate_of`` set to the PMID or record id of the primary report), or when all of these
hold: the same first author (surname and initials; case, accents and punctuation ignored),
publication years at most one apart, at least one disease in common, the same target (both reported), and compatible
patient numbers (the smaller is at least half the larger, or one is not reported).  In each
group the primary report is the one with most patients (then the latest, then the lowest
PMID); the others get ``duplicate_of`` (the primary's PMID) and ``counted = False``.
Summaries count studies and patients over counted reports only, so a cohort is counted once.

Summaries (:func:`summary_tables`) keep every value of the protocol's vocabulary, zero
cells as 0 and a "not reported" row, so gaps show; each row says how many of its studies
have all the values it uses verified by a reviewer (``verified``) and how many rest at
least partly on machine extraction (``machine``).

Patients are counted once
-------------------------
A study of several diseases (a "basket" study) counts as a study of each of its diseases,
but its patients are split, never repeated (:func:`allocate_patients`): by the per-disease
breakdown (a field of kind ``breakdown``, e.g. "asthma: 8; COPD: 3; bronchiectasis: 4") when
it is known, names only the study's diseases and adds up to at most ``n_patients``;
patients it does not place (no breakdown, an inconsistent one, or the rest of a partial one)
go to the row ``mixed, split not reported``.  So in every patients table the rows add up to
the Total, which is the sum of ``n_patients`` over counted studies (a study without
``n_patients`` adds 0).  The same holds for interventions and regimens: a study
listing several puts its patients in ``mixed, split not reported``.
"""
from __future__ import annotations

import html
import logging
import os
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from ..errors import InputError
from ..safe_cells import write_csv as write_safe_csv, write_xlsx
from .extraction import NOT_REPORTED, ROLES, STATUS_VERIFIED, Schema, SchemaRef, load_schema, parse_breakdown

__all__ = [
    "split_values",
    "study_table",
    "unique_labels",
    "flag_same_cohort",
    "with_status",
    "breakdown_column",
    "allocate_patients",
    "patients_by",
    "summary_tables",
    "gaps",
    "gap_specs",
    "gap_facts",
    "GAP_KINDS",
    "table_specs",
    "TABLE_KINDS",
    "role_field",
    "report_section",
    "export_csv",
    "export_xlsx",
    "interactive",
    "to_html",
    "STUDY_INFO",
    "GROUP_COLUMNS",
    "MIXED",
]


logger = logging.getLogger(__name__)

STUDY_INFO = ["study", "record_id", "pmid", "first_author", "year", "title", "journal"]
GROUP_COLUMNS = ["cohort_id", "duplicate_of", "duplicate_rule", "counted"]
#: Row (or column) holding the patients of multi-valued studies whose split is not reported.
MIXED = "mixed, split not reported"


# -- helpers ---------------------------------------------------------------------------
def split_values(value: Any) -> list[str]:
    """The values of a "; "-joined cell (``[NOT_REPORTED]`` when empty)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return [NOT_REPORTED]
    parts = [p.strip() for p in str(value).split(";") if p.strip()]
    return parts or [NOT_REPORTED]


def _number(value: Any) -> float | None:
    try:
        x = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return None if pd.isna(x) else x


def _first_listed(authors: Any) -> str:
    """The first name of an author list (a list, or a "; "-joined string); "" when there is none."""
    if isinstance(authors, str):
        authors = [a for a in authors.split(";") if a.strip()]
    if not isinstance(authors, (list, tuple)) or not authors:
        return ""
    return str(authors[0])


def _author_key(authors: Any) -> str:
    """The first author as compared for cohorts: surname and initials, case, accents and
    punctuation ignored ("Müller F." -> "muller f")."""
    name = unicodedata.normalize("NFKD", _first_listed(authors)).encode("ascii", "ignore").decode("ascii")
    return " ".join(re.sub(r"[^a-z' -]", " ", name.lower()).split())


def _schema(schema: Schema | Any | None, frame: pd.DataFrame | None = None) -> Schema | None:
    if isinstance(schema, Schema):
        return schema
    if schema is not None:
        return load_schema(schema)
    attrs = getattr(frame, "attrs", {}) if frame is not None else {}
    ref = attrs.get("extraction_schema")
    return ref.schema if isinstance(ref, SchemaRef) else None



def role_field(role: str, table: pd.DataFrame | None = None, schema: Schema | None = None,
               required: bool = True) -> str | None:
    """The field that plays ``role`` (see :data:`reviewlib.evidence.extraction.ROLES`) in this review.

    The engine names no field of any review: it asks the protocol's
    ``extraction: roles`` (carried by a :func:`study_table` in its attrs).

    Raises
    ------
    InputError
        ``required`` and the protocol names no field for the role.
    """
    schema = schema if schema is not None else _schema(None, table)
    name = schema.role(role) if schema is not None else None
    if name is None and required:
        raise InputError(f"no field plays the role {role!r} ({ROLES.get(role, 'unknown role')}): name it under "
                         "the protocol's extraction: roles, and build the table with "
                         "evidence.study_table(values, records, protocol)")
    return name


def _vocabulary(field: str, frame: pd.DataFrame, schema: Schema | None) -> list[str]:
    """The protocol's values of a field (then any other value seen), "not reported" last."""
    values: list[str] = []
    if schema is not None and field in schema.fields:
        values = [v for v in schema.fields[field].allowed if v != NOT_REPORTED]
    if field in frame:
        for cell in frame[field]:
            values += [v for v in split_values(cell) if v not in values and v != NOT_REPORTED]
    return values + [NOT_REPORTED]


# -- the study table ----------------------------------------------------------------------
def study_table(values: pd.DataFrame, records: pd.DataFrame | None = None,
                protocol: Any = None, include_evidence: bool = False) -> pd.DataFrame:
    """One row per included study: its record, current values and their status, cohort flags.

    Parameters
    ----------
    values : pandas.DataFrame
        :func:`reviewlib.evidence.extraction.current_values` (or :func:`reviewlib.evidence.extraction.extract`).
    records : pandas.DataFrame, optional
        The included records (``record_id`` or ``pmid``, ``title``, ``authors``, ``year``...);
        only studies in it are kept.  All extracted studies otherwise.
    protocol : Protocol, Schema or str, optional
        For the field order and vocabulary; remembered in ``frame.attrs`` for the summaries.
    include_evidence : bool
        Keep the ``<field>_evidence`` and ``<field>_confidence`` columns.

    Returns
    -------
    pandas.DataFrame
        study ("Author Year"), record_id, pmid, first_author, year, title, journal, the fields,
        ``<field>_status`` per field, cohort_id, duplicate_of, duplicate_rule, counted.
    """
    schema = _schema(protocol, values)
    vals = values.copy()
    if "record_id" not in vals and "pmid" in vals:
        vals["record_id"] = ["pmid:" + str(p) for p in vals["pmid"]]
    fields = [n for n in schema.names if schema.fields[n].kind != "reference"] if schema is not None else [c for c in vals.columns if c not in ("record_id", "pmid")
                                                      and c not in GROUP_COLUMNS
                                                      and not re.search(r"_(evidence|confidence|status|reviewer|note)$", c)]
    for f in fields:
        if f not in vals:
            vals[f] = NOT_REPORTED
        if f"{f}_status" not in vals:
            vals[f"{f}_status"] = "machine"
    if records is not None:
        recs = records.copy()
        if "record_id" not in recs:
            recs["record_id"] = ["pmid:" + str(p) for p in recs["pmid"]]
        recs = recs.drop_duplicates("record_id")
        keep = [c for c in ("record_id", "pmid", "title", "authors", "year", "journal") if c in recs]
        frame = recs[keep].merge(vals.drop(columns=[c for c in ("pmid",) if c in vals and "pmid" in keep]),
                                 on="record_id", how="inner")
        missing = len(recs) - len(frame)
        if missing:
            logger.warning("%d included record(s) have no extracted values yet: run extraction", missing)
    else:
        frame = vals
    for c in ("title", "authors", "year", "journal", "pmid"):
        if c not in frame:
            frame[c] = None
    frame["first_author"] = [_first_author(a) for a in frame["authors"]]
    frame["year"] = pd.to_numeric(frame["year"], errors="coerce").astype("Int64")
    frame["study"] = unique_labels([f"{a or 'Anonymous'} {y if pd.notna(y) else 'n.d.'}" for a, y in
                                    zip(frame["first_author"], frame["year"])])
    frame = flag_same_cohort(frame, schema)
    cols = STUDY_INFO + fields + [f"{f}_status" for f in fields]
    if include_evidence:
        cols += [c for f in fields for c in (f"{f}_evidence", f"{f}_confidence") if c in frame]
    cols += GROUP_COLUMNS
    out = frame[[c for c in cols if c in frame]].reset_index(drop=True)
    if schema is not None:
        out.attrs["extraction_schema"] = SchemaRef(schema)
    return out


_INITIALS = re.compile(r"^(?:[A-Z][a-z]?\.?-?){1,4}$")


def _first_author(authors: Any) -> str:
    """The first author's surname, particles kept: "Müller F." -> "Müller", "de Vries A" -> "de Vries",
    "van der Berg JH" -> "van der Berg", "Smith, John" -> "Smith"."""
    first = _first_listed(authors).strip()
    if not first:
        return ""
    if "," in first:
        return first.split(",")[0].strip()
    words = first.split()
    while len(words) > 1 and _INITIALS.match(words[-1]):
        words.pop()
    return " ".join(words)


def unique_labels(labels: Iterable[str]) -> list[str]:
    """Study labels made unique in order: a label shared by several studies gets a, b, c...
    ("Liu 2023", "Liu 2023" -> "Liu 2023a", "Liu 2023b"); a label used once is kept."""
    labels = [str(x) for x in labels]
    counts = Counter(labels)
    seen: Counter = Counter()
    out = []
    for label in labels:
        if counts[label] == 1:
            out.append(label)
            continue
        i = seen[label]
        seen[label] += 1
        suffix = ""
        while True:      # a, b, ..., z, aa, ab ...
            suffix = chr(ord("a") + i % 26) + suffix
            i = i // 26 - 1
            if i < 0:
                break
        out.append(label + suffix)
    return out


def flag_same_cohort(frame: pd.DataFrame, schema: Schema | None = None) -> pd.DataFrame:
    """Add cohort_id, duplicate_of, duplicate_rule and counted (see the module docstring for the rule).

    The reviewer's note is the field playing the ``same_study`` role; the automatic rule compares
    the fields playing ``population``, ``intervention`` and ``sample_size`` (it is skipped when the
    protocol names no population and intervention).
    """
    schema = schema if schema is not None else _schema(None, frame)
    note = role_field("same_study", frame, schema, required=False)
    population = role_field("population", frame, schema, required=False)
    intervention = role_field("intervention", frame, schema, required=False)
    size = role_field("sample_size", frame, schema, required=False)
    frame = frame.copy().reset_index(drop=True)
    n = len(frame)
    parent = list(range(n))
    rule = [""] * n

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        parent[find(i)] = find(j)

    ids = {str(r): i for i, r in enumerate(frame.get("record_id", []))}
    pmids = {str(p): i for i, p in enumerate(frame.get("pmid", [])) if p is not None and str(p)}
    # explicit reviewer notes
    if note and note in frame:
        for i, ref in enumerate(frame[note]):
            ref = "" if ref is None or (isinstance(ref, float) and pd.isna(ref)) else str(ref).strip()
            if not ref:
                continue
            j = pmids.get(ref.removeprefix("pmid:"), ids.get(ref))
            if j is not None and j != i:
                union(i, j)
                rule[i] = rule[j] = "reviewer note"
    # the automatic rule
    surnames = [_author_key(a) for a in frame.get("authors", [None] * n)]
    years = [int(y) if pd.notna(y) else None for y in frame.get("year", [None] * n)]
    diseases = [set(split_values(v)) - {NOT_REPORTED} for v in frame.get(population, [None] * n)]
    targets = [str(v) if v is not None else NOT_REPORTED for v in frame.get(intervention, [None] * n)]
    counts = [_number(v) for v in frame.get(size, [None] * n)]
    for i in range(n if population and intervention else 0):
        for j in range(i + 1, n):
            if not surnames[i] or surnames[i] != surnames[j]:
                continue
            if years[i] is None or years[j] is None or abs(years[i] - years[j]) > 1:
                continue
            if not diseases[i] & diseases[j]:
                continue
            if targets[i] == NOT_REPORTED or targets[i] != targets[j]:
                continue
            a, b = counts[i], counts[j]
            if a is not None and b is not None and min(a, b) < 0.5 * max(a, b):
                continue
            union(i, j)
            for k in (i, j):
                rule[k] = rule[k] or f"same first author, year +-1, {population}, {intervention} and n"
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    cohort = [""] * n
    dup_of: list[str] = [""] * n
    counted = [True] * n
    for members in groups.values():
        if len(members) < 2:
            continue
        primary = max(members, key=lambda k: (counts[k] or -1, years[k] or 0,
                                              -int(re.sub(r"\D", "", str(frame.at[k, "pmid"]) or "0") or 0)))
        label = str(frame.at[primary, "pmid"] or frame.at[primary, "record_id"])
        for k in members:
            cohort[k] = f"cohort:{label}"
            if k != primary:
                dup_of[k] = label
                counted[k] = False
    frame["cohort_id"] = cohort
    frame[GROUP_COLUMNS[1]] = dup_of
    frame["duplicate_rule"] = rule
    frame["counted"] = counted
    return frame


def with_status(table: pd.DataFrame, fields: Iterable[str] | None = None) -> pd.DataFrame:
    """A display copy of a study table where each value reads "atorvastatin (verified)" or "atorvastatin (machine)"."""
    out = table.copy()
    fields = list(fields) if fields is not None else [c[:-7] for c in out.columns if c.endswith("_status")]
    for f in fields:
        if f in out and f"{f}_status" in out:
            out[f] = [f"{v} ({s})" for v, s in zip(out[f], out[f"{f}_status"])]
            out = out.drop(columns=f"{f}_status")
    return out


# -- summaries ----------------------------------------------------------------------------
def _counted(table: pd.DataFrame) -> pd.DataFrame:
    if "counted" in table:
        return table[table["counted"].astype(bool)].copy()
    return table.copy()


def _verified(row: Mapping[str, Any], fields: Iterable[str]) -> bool:
    return all(row.get(f"{f}_status", "machine") == STATUS_VERIFIED for f in fields)


def _explode(frame: pd.DataFrame, field: str) -> pd.DataFrame:
    out = frame.copy()
    out[f"_{field}"] = [split_values(v) for v in out[field]] if field in out else [[NOT_REPORTED]] * len(out)
    return out.explode(f"_{field}")


def _having(frame: pd.DataFrame, field: str, value: str) -> pd.DataFrame:
    """The rows whose ``field`` lists ``value`` (a row-wise mask: an empty table stays a table)."""
    cells = frame[field] if field in frame else [NOT_REPORTED] * len(frame)
    return frame.loc[pd.Series([value in split_values(v) for v in cells], index=frame.index, dtype=bool)]


def _patients(frame: pd.DataFrame, schema: Schema | None = None) -> pd.Series:
    """Each study's patients (the ``sample_size`` role's field; 0 when not reported)."""
    size = role_field("sample_size", frame, schema)
    return pd.Series([_number(v) or 0 for v in frame.get(size, [None] * len(frame))],
                     index=frame.index, dtype=float)


def breakdown_column(table: pd.DataFrame, field: str, schema: Schema | None = None) -> str | None:
    """The column holding the per-value breakdown of ``field`` (a protocol field of kind
    ``breakdown`` with ``of: field``, else ``n_by_<field>`` if the table has it), or None."""
    schema = schema if schema is not None else _schema(None, table)
    if schema is not None:
        for f in schema.fields.values():
            if f.kind == "breakdown" and f.source == field and f.name in table:
                return f.name
    name = f"n_by_{field}"
    return name if name in table else None


def allocate_patients(table: pd.DataFrame, field: str, breakdown: str | None = "auto",
                      schema: Schema | None = None) -> pd.DataFrame:
    """Split each study's patients over the values of ``field`` so that each patient counts once.

    Parameters
    ----------
    table : pandas.DataFrame
        Study rows (``field``, ``n_patients``, optionally the breakdown column).  Rows are
        taken as given (filter counted reports first).
    field : str
        The field whose values share the patients (e.g. the population role's field).
    breakdown : str, None or "auto"
        The breakdown column ("auto": :func:`breakdown_column`; None: no breakdown).

    Returns
    -------
    pandas.DataFrame
        One row per study and part: ``row`` (the study's index label in ``table``), ``value``
        (a value of ``field`` or :data:`MIXED`), ``patients``, ``split`` ('single' for a
        study with one value, 'breakdown', or 'unsplit' for patients in :data:`MIXED`).
        For every study the parts add up to its ``n_patients`` (0 when not reported: a
        study of several values with no patient count has no row).
    """
    schema = schema if schema is not None else _schema(None, table)
    col = breakdown_column(table, field, schema) if breakdown == "auto" else breakdown
    rows = []
    cells = table[field] if field in table else pd.Series([NOT_REPORTED] * len(table), index=table.index)
    counts = _patients(table, schema)
    parts_of = table[col] if col and col in table else pd.Series([None] * len(table), index=table.index)
    for idx, cell, n, raw in zip(table.index, cells, counts, parts_of):
        values = list(dict.fromkeys(split_values(cell)))
        n = int(n)
        if len(values) == 1:
            rows.append((idx, values[0], n, "single"))
            continue
        parts = parse_breakdown(raw) or {}
        lookup = {v.lower(): v for v in values}
        named = {lookup.get(k.lower()): k_n for k, k_n in parts.items()}
        if parts and None not in named and sum(named.values()) <= n:
            for v, k_n in named.items():
                rows.append((idx, v, int(k_n), "breakdown"))
            if n - sum(named.values()):
                rows.append((idx, MIXED, n - sum(named.values()), "unsplit"))
        elif n:
            if parts:
                logger.info("study %s: breakdown %r does not fit %s = %r and n = %d: its patients are "
                            "counted as '%s'", idx, raw, field, cell, n, MIXED)
            rows.append((idx, MIXED, n, "unsplit"))
    return pd.DataFrame(rows, columns=["row", "value", "patients", "split"])


def _count_rows(frame: pd.DataFrame, by: str, vocabulary: list[str], used: tuple[str, ...],
                mixed: bool | None = None, schema: Schema | None = None) -> pd.DataFrame:
    """studies, patients, verified, machine per value of ``by`` (exploded), every value kept;
    patients counted once (:func:`allocate_patients`), with a :data:`MIXED` row when needed
    (``mixed=True``: always)."""
    ex = _explode(frame, by)
    ex["_verified"] = [_verified(r, used) for r in ex.to_dict("records")]
    alloc = allocate_patients(frame, by, schema=schema)
    per = alloc.groupby("value")["patients"].sum()
    rows = []
    for v in vocabulary:
        sub = ex[ex[f"_{by}"] == v]
        rows.append({by: v, "studies": len(sub), "patients": int(per.get(v, 0)),
                     "verified": int(sub["_verified"].sum()), "machine": int(len(sub) - sub["_verified"].sum())})
    unsplit = alloc[alloc["split"] == "unsplit"]
    if mixed or (mixed is None and len(unsplit)):
        sub = frame.loc[list(dict.fromkeys(unsplit["row"]))]
        ver = int(sum(_verified(r, used) for r in sub.to_dict("records")))
        rows.append({by: MIXED, "studies": len(sub), "patients": int(unsplit["patients"].sum()),
                     "verified": ver, "machine": len(sub) - ver})
    return pd.DataFrame(rows)


def patients_by(table: pd.DataFrame, rows: str, columns: str,
                row_values: list[str] | None = None, column_values: list[str] | None = None,
                schema: Schema | None = None) -> pd.DataFrame:
    """Patients per ``rows`` x ``columns`` value, each patient counted once.

    A study's patients are split over ``rows`` by :func:`allocate_patients` (its breakdown);
    a study with several ``columns`` values puts them in a :data:`MIXED` column (added only
    when used).  The :data:`MIXED` row is always there (0 when every split is known).  A
    Total row and column close the table: rows and columns add up to the Total, the sum of
    ``n_patients`` (counted reports only if ``table`` has ``counted``).
    """
    frame = _counted(table)
    schema = schema if schema is not None else _schema(None, table)
    rv = list(row_values) if row_values is not None else _vocabulary(rows, frame, schema)
    cv = list(column_values) if column_values is not None else _vocabulary(columns, frame, schema)
    alloc = allocate_patients(frame, rows, schema=schema)
    col_of = {r.row: r.value for r in allocate_patients(frame, columns, breakdown=None, schema=schema).itertuples()}
    used_cols = set(col_of.values())
    cols = cv + ([MIXED] if MIXED in used_cols and MIXED not in cv else [])
    index = rv + ([MIXED] if MIXED not in rv else [])
    for v in set(alloc["value"]) - set(index):  # values outside the vocabulary (hand-built tables)
        index.insert(len(index) - 1, v)
    for v in used_cols - set(cols):
        cols.append(v)
    out = pd.DataFrame(0, index=index, columns=cols, dtype=int)
    for r in alloc.itertuples():
        out.loc[r.value, col_of[r.row]] += int(r.patients)
    out["Total"] = out.sum(axis=1)
    out.loc["Total"] = out.sum(axis=0)
    out.index.name = rows
    return out.astype(int)


#: The kinds of summary table a protocol can declare under ``report: tables`` (see :func:`summary_tables`).
TABLE_KINDS = ("crosstab", "designs", "counts", "profile", "composition")


def table_specs(source: Any) -> list[dict[str, Any]]:
    """The summary tables a protocol declares (``report: tables``), checked.

    ``source`` is a protocol, an extraction :class:`~reviewlib.evidence.extraction.Schema` (which
    keeps the protocol's ``report`` section) or a :func:`study_table` (which keeps its schema).

    Each entry is a mapping with ``kind`` (one of :data:`TABLE_KINDS`) and ``title``, and the fields
    its kind needs: ``crosstab`` (``rows``, ``columns``; ``patients_title`` adds the patients table),
    ``designs`` (none: the ``study_design``, ``comparator`` and ``sample_size`` roles), ``counts``
    (``field``; ``comparator_column``: a column of controlled studies), ``profile`` (``by``, and
    ``fields``: each ``{field, show: values|levels|grade, label, at_least}``), ``composition``
    (``by``, ``fields``).
    """
    return declared_entries(source, "tables", "tables (kind, title, fields)", TABLE_KINDS, ("title",),
                            "a kind (one of {kinds}) and a title")


def declared_entries(source: Any, section: str, what: str, kinds: Iterable[str], needs: tuple[str, ...],
                     needs_text: str) -> list[dict[str, Any]]:
    """The entries of ``report: <section>`` (tables, figures, gaps), each checked for a known ``kind``
    and the keys in ``needs``; one line naming the entry otherwise (``needs_text`` says what it needs,
    ``{kinds}`` filled with the known kinds)."""
    specs = report_section(source).get(section) or []
    if not isinstance(specs, list):
        raise InputError(f"protocol report: {section} must be a list of {what}")
    kinds = list(kinds)
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or spec.get("kind") not in kinds or not all(spec.get(k) for k in needs):
            raise InputError(f"protocol report: {section} entry {i + 1} ({spec!r}) needs "
                             + needs_text.format(kinds=", ".join(kinds)))
    return list(specs)


def report_section(source: Any) -> dict[str, Any]:
    """The protocol's ``report`` section from a protocol, a schema or a study table ({} if none)."""
    if isinstance(source, pd.DataFrame):
        schema = _schema(None, source)
    elif isinstance(source, Schema):
        schema = source
    elif source is None:
        return {}
    else:
        from ..protocol import Protocol, load_protocol
        protocol = source if isinstance(source, Protocol) else load_protocol(source)
        return dict(protocol.section("report") or {})  # a protocol without extraction draws no evidence
    return dict(schema.report) if schema is not None else {}


def summary_tables(table: pd.DataFrame, protocol: Any = None) -> dict[str, pd.DataFrame]:
    """The summary tables the protocol declares (``report: tables``), which answer where the evidence is thin.

    Parameters
    ----------
    table : pandas.DataFrame
        A :func:`study_table`.
    protocol : Protocol, optional
        Declares the tables (``report: tables``, see :func:`table_specs`) and the vocabulary
        (else the schema remembered by :func:`study_table`; with no protocol, no table is declared).

    Returns
    -------
    dict of str -> pandas.DataFrame
        One entry per declared table, by title, in the protocol's order.  Every value of the
        protocol's vocabulary is kept (0 when empty), "not reported" too; studies count in each
        of their values, patients once (:func:`allocate_patients`: a study of several values is
        split by its breakdown, the rest goes to a :data:`MIXED` row), cohorts reported twice once.
    """
    schema = _schema(protocol, table)
    frame = _counted(table)
    out: dict[str, pd.DataFrame] = {}
    for spec in table_specs(schema):
        kind = spec["kind"]
        if kind == "crosstab":
            out.update(_crosstab(frame, spec, schema))
        elif kind == "designs":
            out[spec["title"]] = _designs(frame, schema)
        elif kind == "counts":
            out[spec["title"]] = _value_counts(frame, spec, schema)
        elif kind == "profile":
            out[spec["title"]] = _profile(frame, spec, schema)
        else:
            out[spec["title"]] = _composition(frame, spec, schema)
    return out


def _crosstab(frame: pd.DataFrame, spec: Mapping[str, Any], schema: Schema | None) -> dict[str, pd.DataFrame]:
    """Studies (and, with ``patients_title``, patients) per ``rows`` x ``columns`` value, with Totals."""
    rows, columns = str(spec["rows"]), str(spec["columns"])
    if rows not in frame or columns not in frame:
        return {}
    rv, cv = _vocabulary(rows, frame, schema), _vocabulary(columns, frame, schema)
    ex = _explode(_explode(frame, rows), columns)
    studies = pd.DataFrame(0, index=rv, columns=cv, dtype=int)
    for (r, c), sub in ex.groupby([f"_{rows}", f"_{columns}"]):
        studies.loc[r, c] = len(sub)
    out = {}
    if spec.get("patients_title"):
        by_row, by_col = _explode(frame, rows), _explode(frame, columns)
        studies["Total"] = [int((by_row[f"_{rows}"] == r).sum()) for r in studies.index]
        studies.loc["Total"] = [int((by_col[f"_{columns}"] == c).sum()) for c in cv] + [len(frame)]
    studies.index.name = rows
    out[str(spec["title"])] = studies.reset_index()
    if spec.get("patients_title"):
        out[str(spec["patients_title"])] = patients_by(frame, rows, columns, rv, cv, schema).reset_index()
    return out


def _designs(frame: pd.DataFrame, schema: Schema | None) -> pd.DataFrame:
    """Studies, patients and median patients per design, whether each design is controlled, a Total row."""
    design = role_field("study_design", frame, schema)
    comparator = role_field("comparator", frame, schema, required=False)
    designs = _count_rows(frame, design, _vocabulary(design, frame, schema), (design,), mixed=False, schema=schema)
    if comparator and schema is not None and comparator in schema.fields and schema.fields[comparator].kind == "derived":
        f = schema.fields[comparator]
        designs.insert(1, comparator, [f.mapping.get(d, f.otherwise if d != NOT_REPORTED else NOT_REPORTED)
                                       for d in designs[design]])
    elif comparator and comparator in frame:
        designs.insert(1, comparator, [
            "; ".join(sorted(set(frame.loc[frame[design] == d, comparator].astype(str)))) or "-"
            for d in designs[design]])
    size = role_field("sample_size", frame, schema)
    sizes = [[_number(v) for v in _having(frame, design, d)[size]] if size in frame else []
             for d in designs[design]]
    designs["median patients"] = [float(pd.Series([s for s in ss if s is not None]).median())
                                  if any(s is not None for s in ss) else None for ss in sizes]
    total = {design: "Total", "studies": len(frame), "patients": int(_patients(frame, schema).sum()),
             "verified": int(designs["verified"].sum()), "machine": int(designs["machine"].sum())}
    if comparator and comparator in designs:
        n_ctrl = int((frame.get(comparator, pd.Series(dtype=str)).astype(str) == "yes").sum())
        total[comparator] = f"{n_ctrl} {comparator}"
    return pd.concat([designs, pd.DataFrame([total])], ignore_index=True)


def _value_counts(frame: pd.DataFrame, spec: Mapping[str, Any], schema: Schema | None) -> pd.DataFrame:
    """Studies, patients, verified and machine per value of ``field``; optionally controlled studies."""
    field = str(spec["field"])
    out = _count_rows(frame, field, _vocabulary(field, frame, schema), (field,), schema=schema)
    comparator = role_field("comparator", frame, schema, required=False) if spec.get("comparator_column") else None
    if comparator and comparator in frame:
        out[f"{comparator} studies"] = [int(((frame[field].astype(str) == r)
                                              & (frame[comparator].astype(str) == "yes")).sum())
                                         for r in out[field]]
    return out


def _profile(frame: pd.DataFrame, spec: Mapping[str, Any], schema: Schema | None) -> pd.DataFrame:
    """Per value of ``by``: studies, patients and a summary of each listed field; a MIXED row closes it.

    A field shown as ``values`` (multi-valued) gets a column per value; ``levels`` (one value per
    study) a column "<field> <value>" per value; ``grade`` (a number) "<label> reported",
    "<label> >= <at_least>" and "highest <label>".
    """
    by = str(spec["by"])
    shown = [f if isinstance(f, dict) else {"field": f, "show": "levels"} for f in spec.get("fields") or []]
    ex = _explode(frame, by)
    per_value = allocate_patients(frame, by, schema=schema).groupby("value")["patients"].sum()
    numeric = []
    rows = []
    for v in _vocabulary(by, frame, schema):
        sub = ex[ex[f"_{by}"] == v]
        row: dict[str, Any] = {by: v, "studies": len(sub), "patients": int(per_value.get(v, 0))}
        for f in shown:
            name, how = str(f["field"]), f.get("show", "levels")
            if name not in sub:
                continue
            if how == "values":
                for o in _vocabulary(name, frame, schema):
                    row[o if o != NOT_REPORTED else f"{name} not reported"] = int(
                        sum(o in split_values(x) for x in sub[name]))
            elif how == "grade":
                label, at_least = str(f.get("label") or name), f.get("at_least", 3)
                grades = [_number(x) for x in sub[name]]
                row[f"{label} reported"] = sum(g is not None for g in grades)
                row[f"{label} >= {at_least}"] = sum(g is not None and g >= at_least for g in grades)
                known = [g for g in grades if g is not None]
                row[f"highest {label}"] = max(known) if known else None
                numeric.append(f"highest {label}")
            else:
                for level in _vocabulary(name, frame, schema):
                    row[f"{name} {level}"] = int((sub[name].astype(str) == level).sum())
        used = (by,) + tuple(str(f["field"]) for f in shown if str(f["field"]) in sub)
        row["verified"] = int(sum(_verified(r, used) for r in sub.to_dict("records")))
        row["machine"] = len(sub) - row["verified"]
        rows.append(row)
    out = pd.DataFrame(rows)
    unsplit = allocate_patients(frame, by, schema=schema)
    unsplit = unsplit[unsplit["split"] == "unsplit"]
    mixed_row = {c: pd.NA for c in out.columns}
    mixed_row.update({by: MIXED, "studies": len(set(unsplit["row"])), "patients": int(unsplit["patients"].sum())})
    out = pd.concat([out, pd.DataFrame([mixed_row])], ignore_index=True)
    for c in out.columns[1:]:
        out[c] = pd.to_numeric(out[c], errors="coerce") if c in numeric else out[c].astype("Int64")
    return out


def _composition(frame: pd.DataFrame, spec: Mapping[str, Any], schema: Schema | None) -> pd.DataFrame:
    """Per value of ``by``: studies, patients and the count of each value of each listed field."""
    by = str(spec["by"])
    fields = [str(f) for f in spec.get("fields") or []]
    per_value = allocate_patients(frame, by, breakdown=None, schema=schema).groupby("value")["patients"].sum()
    vocab = {f: _vocabulary(f, frame, schema) for f in fields}
    rows = []
    for v in _vocabulary(by, frame, schema):
        sub = _having(frame, by, v)
        row = {by: v, "studies": len(sub), "patients": int(per_value.get(v, 0))}
        for f in fields:
            if f in frame:
                for value in vocab[f]:
                    row[f"{f}: {value}"] = int((sub[f].astype(str) == value).sum())
        row["verified"] = int(sum(_verified(r, (by, *fields)) for r in sub.to_dict("records")))
        row["machine"] = len(sub) - row["verified"]
        rows.append(row)
    return pd.DataFrame(rows)


#: The kinds of gap statement a protocol can declare under ``report: gaps`` (see :func:`gaps`).
GAP_KINDS = ("sample_size", "controlled_trials", "regimen", "compared", "subsets")

_GAP_DEFAULTS = {
    "sample_size": {"small_median_below": 20, "small_study_below": 10},
    "controlled_trials": {"rare_below": 0.2},
    "regimen": {"none_value": "none"},
    "compared": {},
    "subsets": {"values": [], "min_share": 0.2},
}


def gap_specs(source: Any) -> list[dict[str, Any]]:
    """The gap statements a protocol declares (``report: gaps``), checked, with their defaults filled in.

    Each entry has a ``kind`` (one of :data:`GAP_KINDS`), a ``statement`` (said when the data show the
    gap) and an ``otherwise`` (said when they do not), both ``str.format`` templates over the numbers
    :func:`gap_facts` computes for that kind, and the kind's settings:
    ``sample_size`` (``small_median_below``, ``small_study_below``: thresholds in patients),
    ``controlled_trials`` (``rare_below``: the share of controlled studies below which they are rare),
    ``regimen`` (``field``, ``none_value``), ``compared`` (``field``, optional ``detail``),
    ``subsets`` (``field``, ``values``: the values that count, e.g. the subset of interest, ``min_share``).
    An optional ``when_none`` sentence replaces ``statement`` when nothing was counted (no controlled
    study, no study of the subset).
    """
    specs = declared_entries(source, "gaps", "gap statements (kind, statement, otherwise)", GAP_KINDS,
                             ("statement", "otherwise"), "a kind (one of {kinds}), a statement and an otherwise sentence")
    out = []
    for i, spec in enumerate(specs):
        if spec["kind"] in ("regimen", "compared", "subsets") and not spec.get("field"):
            raise InputError(f"protocol report: gaps entry {i + 1} ({spec['kind']}) needs a field")
        out.append({**_GAP_DEFAULTS[spec["kind"]], **spec})
    return out


def _is_yes(value: Any) -> bool:
    return str(value).strip().lower() in ("yes", "true", "1")


def gap_facts(table: pd.DataFrame, spec: Mapping[str, Any], schema: Schema | None = None) -> tuple[bool, dict[str, Any]]:
    """Whether the data show the gap a spec of :func:`gap_specs` describes, and the numbers for its sentences.

    Returns
    -------
    shown : bool
        True when the data show the gap (by the spec's thresholds), False otherwise.
    facts : dict
        ``n`` (studies) and, by kind: ``sample_size``: patients, median, min, max, small (studies
        below ``small_study_below``), reported, threshold; ``controlled_trials``: controlled_studies, share,
        populations (those of the controlled studies); ``regimen``: given, none, not_reported,
        controlled_studies, controlled_without, controlled_with; ``compared``: by_value ("A 3, B 2"), values,
        detail_not_reported, head_to_head (controlled studies of two or more values); ``subsets``:
        with_values, not_reported, single (populations resting on one study).
    """
    schema = schema if schema is not None else _schema(None, table)
    frame = _counted(table)
    n = len(frame)
    facts: dict[str, Any] = {"n": n}
    comparator = role_field("comparator", frame, schema, required=False)
    ctrl = frame[frame[comparator].map(_is_yes)] if comparator and comparator in frame else frame.iloc[0:0]
    population = role_field("population", frame, schema, required=False)
    kind = spec["kind"]
    if kind == "sample_size":
        size = role_field("sample_size", frame, schema)
        sizes = [x for x in (_number(v) for v in frame.get(size, [])) if x is not None]
        if not sizes:
            return True, {**facts, "patients": 0, "median": "n.r.", "min": "n.r.", "max": "n.r.", "small": 0,
                          "reported": 0, "threshold": spec["small_median_below"],
                          "small_below": spec["small_study_below"]}
        median = float(pd.Series(sizes).median())
        facts.update(patients=int(sum(sizes)), median=f"{median:g}", min=f"{min(sizes):g}", max=f"{max(sizes):g}",
                     small=sum(s < spec["small_study_below"] for s in sizes), reported=len(sizes),
                     threshold=spec["small_median_below"], small_below=spec["small_study_below"])
        return median < spec["small_median_below"], facts
    if kind == "controlled_trials":
        pops = sorted({d for v in ctrl.get(population, []) for d in split_values(v)} - {NOT_REPORTED}) \
            if population else []
        facts.update(controlled_studies=len(ctrl), share=f"{(len(ctrl) / n if n else 0):.0%}",
                     populations=", ".join(pops) or "population not reported")
        return (len(ctrl) / n if n else 0) < spec["rare_below"], facts
    field = str(spec["field"])
    if field not in frame:
        raise InputError(f"protocol report: gap {kind!r} names field {field!r}, which the study table lacks: "
                         "declare it under extraction.fields")
    if kind == "regimen":
        values = frame[field].astype(str)
        none = int((values == spec["none_value"]).sum())
        nr = int((values == NOT_REPORTED).sum())
        c_values = ctrl[field].astype(str) if len(ctrl) else pd.Series(dtype=str)
        without = int((c_values == spec["none_value"]).sum())
        with_ = int(len(c_values) - without - int((c_values == NOT_REPORTED).sum()))
        facts.update(given=n - none - nr, none=none, not_reported=nr, controlled_studies=len(ctrl),
                     controlled_without=without, controlled_with=with_)
        return not (without and with_), facts  # established only by controlled studies with and without it
    if kind == "compared":
        counts = pd.Series([v for cell in frame[field] for v in split_values(cell)]).value_counts()
        detail = spec.get("detail")
        head = int(sum(len(set(split_values(v)) - {NOT_REPORTED}) > 1 for v in ctrl[field])) if len(ctrl) else 0
        facts.update(by_value=", ".join(f"{v} {c}" for v, c in counts.items()), values=len(counts),
                     detail_not_reported=int((frame[detail].astype(str) == NOT_REPORTED).sum())
                     if detail and detail in frame else 0, head_to_head=head)
        return head == 0, facts
    wanted = set(spec.get("values") or [])
    cells = frame[field].astype(str)
    pops = pd.Series([d for v in frame.get(population, []) for d in split_values(v)]).value_counts() \
        if population else pd.Series(dtype=int)
    single = [d for d, c in pops.items() if c == 1 and d != NOT_REPORTED]
    with_values = int(sum(bool(set(split_values(v)) & wanted) for v in cells))
    facts.update(with_values=with_values, not_reported=int((cells == NOT_REPORTED).sum()), single=len(single))
    return bool(single) or (with_values / n if n else 0) < spec["min_share"], facts


def gaps(table: pd.DataFrame, protocol: Any = None) -> list[str]:
    """One sentence per question the review asks of its evidence, its verdict chosen from the data.

    The protocol declares the questions (``report: gaps``, see :func:`gap_specs`): for each, the
    sentence said when the data show the gap and the one said when they do not, and the thresholds
    that decide (e.g. "small" = median below 20 patients).

    Parameters
    ----------
    table : pandas.DataFrame
        A :func:`study_table`.
    protocol : Protocol, optional
        Declares the gap statements; default the schema the study table carries.
    """
    frame = _counted(table) if table is not None else pd.DataFrame()
    if frame is None or not len(frame):
        return ["No study is included yet: there is no evidence to describe."]
    schema = _schema(protocol, table)
    out = []
    for spec in gap_specs(schema):
        shown, facts = gap_facts(table, spec, schema)
        template = spec["statement"] if shown else spec["otherwise"]
        if shown and spec.get("when_none") and facts.get("controlled_studies", facts.get("with_values")) == 0:
            template = spec["when_none"]
        try:
            out.append(str(template).format(**facts))
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(f"protocol report: gap {spec['kind']!r}: sentence {template!r} uses {exc} which "
                             f"this kind does not compute (it has: {', '.join(sorted(facts))})") from exc
    return out


# -- exports ----------------------------------------------------------------------------
def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "table"


def export_csv(tables: Mapping[str, pd.DataFrame] | pd.DataFrame, folder: str | os.PathLike,
               name: str = "studies") -> list[Path]:
    """Write each table to ``folder/<name>.csv`` (atomically); returns the paths."""
    if isinstance(tables, pd.DataFrame):
        tables = {name: tables}
    folder = Path(folder)
    return [write_safe_csv(t, folder / f"{_slug(k)}.csv") for k, t in tables.items()]  # no live formulas


def export_xlsx(tables: Mapping[str, pd.DataFrame], path: str | os.PathLike) -> Path:
    """Write the tables to one workbook, one sheet per table (names cut to 31 characters)."""
    used: set[str] = set()
    sheets = {}
    for key, t in tables.items():
        sheet = re.sub(r"[\[\]:*?/\\]", "-", key)[:31] or "table"
        base, i = sheet, 2
        while sheet.lower() in used:
            sheet = f"{base[:28]}-{i}"
            i += 1
        used.add(sheet.lower())
        sheets[sheet] = t
    return write_xlsx(sheets, path)  # every text cell a string, never a formula


def _offline_library() -> str:
    """The DataTables bundle and itables' init code, embedded (no network)."""
    from itables import javascript as js
    init = js.read_package_file("html/init_datatables.html")
    connected_import = "import { set_or_remove_dark_class } from '" + js.UNPKG_DT_BUNDLE_URL_NO_VERSION + "';"
    local_import = "const { set_or_remove_dark_class } = await window." + js._itables_underscore_version() + ";"
    init = init.replace(connected_import, local_import)
    return init + js.generate_init_offline_itables_html(js.opt.dt_bundle)


def interactive(frame: pd.DataFrame, caption: str | None = None, include_library: bool = True,
                **options: Any) -> str:
    """An interactive (sortable, searchable) HTML table that works offline.

    Uses itables with the DataTables JavaScript embedded (``connected=False``): the HTML
    loads nothing from the network.  Cell text is HTML-escaped (PubMed text is untrusted).

    Parameters
    ----------
    frame : pandas.DataFrame
    caption : str, optional
        Escaped too.
    include_library : bool
        Embed the DataTables bundle (once per page is enough; False for later tables).
    **options
        Passed to :func:`itables.to_html_datatable` (e.g. ``pageLength``); ``allow_html``
        is refused.

    Returns
    -------
    str
        HTML to write into a page or display with IPython.
    """
    from itables import to_html_datatable
    if options.pop("allow_html", False):
        raise ValueError("allow_html is refused: PubMed text must stay escaped")
    clean = frame.copy()
    clean.columns = [str(c) for c in clean.columns]
    for c in clean.columns:
        if clean[c].dtype == object:
            clean[c] = [None if v is None else (v if isinstance(v, (int, float, bool)) else str(v))
                        for v in clean[c]]
    table = to_html_datatable(clean, caption=html.escape(caption) if caption else None, connected=False,
                              **options)
    return (_offline_library() if include_library else "") + table


def to_html(frame: pd.DataFrame, caption: str | None = None) -> str:
    """A static HTML table, every cell escaped (for pages without JavaScript)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table class=\"reviewlib-evidence\">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
