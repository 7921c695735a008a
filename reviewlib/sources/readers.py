"""Readers of bibliographic export files into the records table.

* :func:`read_medline` reads PubMed's "Save > PubMed format" text (MEDLINE
  tags, parsed with ``Bio.Medline``); ``source`` is ``"medline"``.
* :func:`read_ris` reads RIS exports from Embase, Scopus, Web of Science,
  Ovid and reference managers (parsed with ``rispy``); ``source`` is ``"ris"``.

Both return exactly :data:`reviewlib.records.COLUMNS`, shaped like
:func:`reviewlib.read_pubmed_xml`'s table: authors as ``"Surname Initials"``,
``abstract`` as ``"LABEL: text"`` paragraphs joined by newlines when the
abstract is structured, ``year`` as Int64 and ``pub_date`` ISO at the best
precision the file gives.

RIS vendors disagree on tags; the reader takes, in order of preference:

==========  ==================================================================
column      RIS tags
==========  ==================================================================
title       TI, T1 (Embase), ST
abstract    AB, N2 (Embase)
year, date  DA, Y1 (Embase ``2020//``), PY; ``2020/03/15/``, ``JAN 2020``...
journal     JF (Embase), T2 (Scopus, WoS), JO, then J2/JA
abbrev      JA (Embase), J2 (Scopus), JI/J9 (WoS), JO when a full name exists
doi         DO (a ``https://doi.org/`` prefix is removed)
pmid        AN when it is a PubMed id (digits, at most 8, not from Embase;
            ``WOS:``/``L...`` accessions are not), or ``PMID: n`` /
            ``PubMed ID: n`` written in AN, C2, C5, M1 or N1
language    LA (names mapped to PubMed's codes: English -> eng)
keywords    KW (one per tag, or ``;``-separated)
pub. types  M3 (Embase/Scopus document type)
authors     AU, A1 (names normalised to "Surname Initials")
==========  ==================================================================
"""
from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .. import records
from ..textfiles import check_text_file, read_text
from ..errors import InputError
from .inline import render_tags
from .pubmed_xml import parse_medline_date

logger = logging.getLogger(__name__)

_LANGUAGES = {
    "english": "eng", "french": "fre", "german": "ger", "spanish": "spa", "italian": "ita",
    "portuguese": "por", "dutch": "dut", "russian": "rus", "chinese": "chi", "japanese": "jpn",
    "korean": "kor", "polish": "pol", "turkish": "tur", "swedish": "swe", "danish": "dan",
    "norwegian": "nor", "finnish": "fin", "czech": "cze", "hungarian": "hun", "greek": "gre",
    "hebrew": "heb", "arabic": "ara", "persian": "per", "croatian": "hrv", "serbian": "srp",
    "romanian": "rum", "ukrainian": "ukr", "slovak": "slo", "slovenian": "slv", "lithuanian": "lit",
}
#: A label at the start of a structured-abstract paragraph, as MEDLINE and RIS flatten them.
_KNOWN_LABELS = (r"Background|Backgrounds?\(s\)|Introduction|Context|Objectives?|Objective\(s\)|Aims?|Aim\(s\)|"
                 r"Purpose|Design|Setting|Participants|Patients|Interventions?|Methods?|Method\(s\)|"
                 r"Main outcome measures?|Results?|Result\(s\)|Findings|Discussion|Interpretation|"
                 r"Conclusions?|Conclusion\(s\)|Limitations|Significance|Funding|Case presentation|"
                 r"Trial registration|Registration")
_LABEL_RE = re.compile(r"(?:^|(?<=[.?!)\]]\s))((?:[A-Z][A-Z0-9 ,&/()'-]{2,60})|(?:" + _KNOWN_LABELS + r")):\s+")
_DOI_RE = re.compile(r"10\.\d{4,9}/\S+")
_PMID_TEXT_RE = re.compile(r"\b(?:PMID|PubMed\s*ID)\s*[:=]?\s*(\d{1,9})\b", re.I)
_YEAR_RE = re.compile(r"(1[5-9]\d\d|2\d\d\d)")


def _check_file(path: str | os.PathLike, kind: str, what: str) -> Path:
    # missing, a directory, or gzip/ZIP/binary: one line each (reviewlib.textfiles)
    path = check_text_file(path, kind, f"the path of {what}")[0]
    from .memory import check_fits
    check_fits(path, f"{kind} file")      # far larger than memory: say so before reading it
    return path


def _read_text(path: Path, kind: str) -> str:
    # UTF-8 (BOM or not), UTF-16/32 by their BOM or by their zero bytes; older exports (Ovid,
    # EndNote) are often Windows-1252, the fallback for text that is not UTF-8
    _, encoding = check_text_file(path, kind, "a text export")
    return read_text(path, f"{kind} file", encoding)


def split_labelled_abstract(text: str | None) -> tuple[str | None, list[dict[str, str]]]:
    """Split a flat abstract into labelled sections when it starts with a label.

    ``"BACKGROUND: a. METHODS: b."`` becomes two sections.  An abstract that
    does not start with an upper-case label is one unlabelled section.

    Returns
    -------
    tuple
        ``(abstract, sections)`` in the records table's convention: the
        abstract is ``"LABEL: text"`` paragraphs joined by newlines.
    """
    if not text:
        return None, []
    text = " ".join(text.split())
    if not text:
        return None, []
    matches = list(_LABEL_RE.finditer(text))
    if not matches or matches[0].start() != 0:
        return text, [{"label": "", "text": text}]
    sections = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        sections.append({"label": match.group(1).strip(), "text": text[match.end():end].strip()})
    abstract = "\n".join(f"{s['label']}: {s['text']}" for s in sections)
    return abstract, sections


def author_name(name: str) -> str | None:
    """Normalise an author name to PubMed's ``"Surname Initials"``.

    ``"Smith, John A."`` -> ``"Smith JA"``; ``"Smith J.A."`` -> ``"Smith JA"``;
    ``"Smith JA"`` stays; ``"de Hoon, Michiel"`` -> ``"de Hoon M"``.  A name
    without a recognisable given name (a collective name) is kept as given.
    """
    name = " ".join(str(name or "").split()).strip(" ,;")
    if not name:
        return None
    if "," in name:
        surname, _, given = name.partition(",")
        given = given.strip()
        parts = [p for p in re.split(r"[\s.\-]+", given) if p]
        if not parts:
            return surname.strip()
        initials = "".join(p if (p.isupper() and len(p) <= 3) else p[0].upper() for p in parts)
        return f"{surname.strip()} {initials}"
    tokens = name.split(" ")
    last = tokens[-1]
    compact = last.replace(".", "").replace("-", "")
    if len(tokens) > 1 and compact.isalpha() and compact.isupper() and len(compact) <= 4:
        return f"{' '.join(tokens[:-1])} {compact}"
    return name


def _dedupe(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for v in values:
        if v and v not in seen:
            seen[v] = None
    return list(seen)


def _frame(rows: list[dict[str, Any]], source: str) -> pd.DataFrame:
    fields = [c for c in records.COLUMNS if c != "source"]
    columns: dict[str, list[Any]] = {f: [row.get(f) for row in rows] for f in fields}
    columns["source"] = [source] * len(rows)
    return records.conform(pd.DataFrame(columns, columns=records.COLUMNS))


# ----------------------------------------------------------------------------------- MEDLINE

def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _tagged(values: list[str], tag: str) -> str | None:
    for value in values:
        value = value.strip()
        if value.endswith(f"[{tag}]"):
            return value[: -len(tag) - 2].strip()
    return None


def _medline_mesh(headings: list[str]) -> tuple[list[str], list[str]]:
    terms, major = [], []
    for heading in headings:
        descriptor = heading.split("/")[0].strip()
        name = descriptor.lstrip("*").strip()
        if not name:
            continue
        terms.append(name)
        if "*" in heading:
            major.append(name)
    return _dedupe(terms), _dedupe(major)


def _medline_row(rec: dict[str, Any]) -> dict[str, Any]:
    abstract, sections = split_labelled_abstract(rec.get("AB"))
    year, pub_date = parse_medline_date(rec.get("DP"))
    authors = _as_list(rec.get("AU"))
    if not authors:
        authors = [a for a in (author_name(n) for n in _as_list(rec.get("FAU"))) if a]
    authors += _as_list(rec.get("CN"))
    ids = _as_list(rec.get("LID")) + _as_list(rec.get("AID"))
    mesh_terms, mesh_major = _medline_mesh(_as_list(rec.get("MH")))
    title = rec.get("TI") or rec.get("BTI")
    return {
        "pmid": (rec.get("PMID") or "").strip() or None,
        "doi": _tagged(ids, "doi"),
        "pmcid": (rec.get("PMC") or "").strip() or None,
        "title": " ".join(title.split()) if title else None,
        "abstract": abstract,
        "abstract_sections": sections,
        "authors": authors,
        "journal": rec.get("JT") or None,
        "journal_abbrev": rec.get("TA") or None,
        "year": year,
        "pub_date": pub_date,
        "language": _as_list(rec.get("LA")),
        "publication_types": _as_list(rec.get("PT")),
        "mesh_terms": mesh_terms,
        "mesh_major": mesh_major,
        "keywords": _as_list(rec.get("OT")),
    }


def read_medline(path: str | os.PathLike) -> pd.DataFrame:
    """Read a PubMed-format (MEDLINE) text file into a records table.

    Parameters
    ----------
    path : path-like
        A file written by PubMed's "Save > Format: PubMed" (``.txt`` or ``.nbib``).

    Returns
    -------
    pandas.DataFrame
        One row per citation, :data:`reviewlib.records.COLUMNS`, ``source``
        ``"medline"``.  MeSH headings starred anywhere (``*Descriptor`` or
        ``Descriptor/*qualifier``) are in ``mesh_major``; collective names (CN)
        follow the personal authors.

    Raises
    ------
    reviewlib.errors.InputError
        If the file is missing, empty, or has a citation without a PMID.
    """
    from Bio import Medline

    path = _check_file(path, "MEDLINE", "a file saved from PubMed with Format: PubMed")
    text = _read_text(path, "MEDLINE")
    rows = []
    for number, rec in enumerate(Medline.parse(io.StringIO(text)), start=1):
        if not rec.get("PMID"):
            raise InputError(f"MEDLINE file {path}: citation {number} has no 'PMID-' line; it is not a "
                             f"PubMed-format file: save it again from PubMed with Format: PubMed",
                             source=str(path))
        rows.append(_medline_row(rec))
    if not rows:
        raise InputError(f"MEDLINE file {path} holds no citation ('PMID- ' lines): save it again from "
                         f"PubMed with Format: PubMed", source=str(path))
    logger.debug("%s: %d MEDLINE records", path, len(rows))
    return _frame(rows, "medline")


# --------------------------------------------------------------------------------------- RIS

def _first(entry: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = entry.get(key)
        if isinstance(value, list):
            value = next((v for v in value if v and str(v).strip()), None)
        if value and str(value).strip():
            return " ".join(str(value).split())
    return None


def _unknown(entry: dict[str, Any], tag: str) -> str | None:
    values = (entry.get("unknown_tag") or {}).get(tag) or []
    return next((" ".join(v.split()) for v in values if v and v.strip()), None)


def _ris_date(entry: dict[str, Any]) -> tuple[int | None, str | None]:
    best: tuple[int | None, str | None] = (None, None)
    for key in ("date", "publication_year", "year"):
        value = _first(entry, key)
        if not value:
            continue
        if re.match(r"^\d{4}-\d{1,2}(?:-\d{1,2})?$", value):  # ISO 2020-03-15
            value = value.replace("-", "/")
        slash = re.match(r"^\s*(\d{4})(?:/(\d{1,2})?(?:/(\d{1,2})?)?)?", value)
        if slash and ("/" in value or value.strip().isdigit()):
            year = int(slash.group(1))
            month = int(slash.group(2)) if slash.group(2) and 1 <= int(slash.group(2)) <= 12 else None
            day = int(slash.group(3)) if month and slash.group(3) and 1 <= int(slash.group(3)) <= 31 else None
            date = f"{year:04d}" + (f"-{month:02d}" if month else "") + (f"-{day:02d}" if day else "")
            found: tuple[int | None, str | None] = (year, date)
        else:
            # "JAN 2020", "2020 Jan 15", "Mar 15 2020": move the year first for parse_medline_date.
            match = _YEAR_RE.search(value)
            if not match:
                continue
            reordered = f"{match.group(1)} {value[:match.start()]} {value[match.end():]}"
            found = parse_medline_date(" ".join(reordered.split()))
            if found[0] is not None:
                words = value[:match.start()].split()
                if len(words) == 2 and words[1].isdigit():  # "Mar 15 2020"
                    found = parse_medline_date(f"{match.group(1)} {words[0]} {words[1]}")
        if found[0] is not None and (best[0] is None or (found[0] == best[0]
                                                         and len(found[1] or "") > len(best[1] or ""))):
            best = found
    return best


def _ris_pmid(entry: dict[str, Any]) -> str | None:
    database = " ".join(str(entry.get(k) or "") for k in ("name_of_database", "database_provider")).lower()
    candidates: list[str] = []
    for key in ("accession_number", "custom2", "custom5", "note", "notes"):
        value = entry.get(key)
        candidates.extend(_as_list(value))
    for value in candidates:
        match = _PMID_TEXT_RE.search(value)
        if match:
            return match.group(1)
    accession = (entry.get("accession_number") or "").strip()
    if accession.isdigit() and len(accession) <= 8 and "embase" not in database:
        return accession.lstrip("0") or None
    return None


def _ris_doi(entry: dict[str, Any]) -> str | None:
    value = _first(entry, "doi")
    if not value:
        return None
    match = _DOI_RE.search(value)
    return match.group(0).rstrip(".") if match else None


def _split_values(values: list[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        out.extend(p.strip() for p in re.split(r";", value) if p.strip())
    return out


def _ris_row(entry: dict[str, Any]) -> dict[str, Any]:
    # some exporters (Scopus, Web of Science) keep PubMed's <sup>/<sub> as literal tags: 10^6, not 106
    abstract, sections = split_labelled_abstract(render_tags(_first(entry, "abstract", "notes_abstract")))
    year, pub_date = _ris_date(entry)
    full = _first(entry, "alternate_title3", "secondary_title", "journal_name")
    abbrev = (_first(entry, "alternate_title2", "alternate_title1")
              or _unknown(entry, "JI") or _unknown(entry, "J9"))
    journal_name = _first(entry, "journal_name")
    if not abbrev and journal_name and full and journal_name != full:
        abbrev = journal_name
    if not full:
        full = abbrev
    names = _as_list(entry.get("authors")) + _as_list(entry.get("first_authors"))
    authors = _dedupe(a for a in (author_name(n) for n in names) if a)
    languages = [_LANGUAGES.get(lang.lower(), lang) for lang in
                 _split_values([v for v in _as_list(entry.get("language"))]) if lang]
    return {
        "pmid": _ris_pmid(entry),
        "doi": _ris_doi(entry),
        "pmcid": None,
        "title": render_tags(_first(entry, "title", "primary_title", "short_title")),
        "abstract": abstract,
        "abstract_sections": sections,
        "authors": authors,
        "journal": full,
        "journal_abbrev": abbrev,
        "year": year,
        "pub_date": pub_date,
        "language": _dedupe(languages),
        "publication_types": _dedupe(_split_values(_as_list(entry.get("type_of_work")))),
        "mesh_terms": [],
        "mesh_major": [],
        "keywords": _dedupe(_split_values(_as_list(entry.get("keywords")))),
    }


def read_ris(path: str | os.PathLike) -> pd.DataFrame:
    """Read an RIS export (Embase, Scopus, Web of Science, Ovid...) into a records table.

    Parameters
    ----------
    path : path-like
        An ``.ris`` file (UTF-8, with or without byte-order mark; Windows-1252
        is accepted too).

    Returns
    -------
    pandas.DataFrame
        One row per reference, :data:`reviewlib.records.COLUMNS`, ``source``
        ``"ris"``.  See the module docstring for which tag fills which column.

    Raises
    ------
    reviewlib.errors.InputError
        If the file is missing, holds no reference, or a reference lacks its
        closing ``ER  -`` line (a file cut short).
    """
    import rispy

    path = _check_file(path, "RIS", "an RIS export (.ris)")
    text = _read_text(path, "RIS")
    starts = len(re.findall(r"^\s*TY  -", text, flags=re.M))
    try:
        entries = rispy.loads(text, list_tags=list(rispy.LIST_TYPE_TAGS) + ["LA", "M3"])
    except Exception as exc:  # rispy raises plain IOError/ValueError on malformed input
        raise InputError(f"cannot read RIS file {path} ({exc}): export it again in RIS format",
                         source=str(path)) from exc
    if starts == 0 or not entries:
        raise InputError(f"RIS file {path} holds no reference (no 'TY  - ' line): export it again "
                         f"in RIS format", source=str(path))
    if len(entries) != starts:
        raise InputError(f"RIS file {path} has {starts} references ('TY  - ') but {len(entries)} complete "
                         f"ones ('ER  - '): it was cut short; export it again", source=str(path))
    rows = [_ris_row(entry) for entry in entries]
    logger.debug("%s: %d RIS records", path, len(rows))
    return _frame(rows, "ris")
