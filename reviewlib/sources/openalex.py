"""Read OpenAlex Work JSON into the records table.

OpenAlex (https://openalex.org) serves bibliographic records as "Work" JSON
objects.  The SYNERGY screening datasets ship their records that way, zipped.
:func:`read_openalex` accepts one Work, a list of Works, an API page
(``{"results": [...]}``), a folder of such files, or a ``.zip`` of them, and
returns the records table of :mod:`reviewlib.records` plus an ``openalex_id``
column.

OpenAlex does not store abstracts as text: ``abstract_inverted_index`` maps
each word to the positions where it occurs, and :func:`rebuild_abstract` puts
the words back in order.
"""
from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from ..errors import InputError
from ..records import conform

logger = logging.getLogger(__name__)

#: Lower-case particles that belong to a surname ("van der Berg", "de Souza").
SURNAME_PARTICLES = frozenset({"van", "von", "der", "den", "de", "del", "della", "da", "das", "do", "dos",
                               "di", "du", "la", "le", "ten", "ter", "zu", "al", "el", "bin", "ibn", "st", "st."})

_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)", re.IGNORECASE)
_TRAILING_DIGITS = re.compile(r"(\d+)/?$")


def rebuild_abstract(inverted_index: dict[str, list[int]] | None) -> str | None:
    """Rebuild an abstract from OpenAlex's ``abstract_inverted_index``.

    Parameters
    ----------
    inverted_index : dict of str to list of int, or None
        Each word mapped to the 0-based positions where it occurs.

    Returns
    -------
    str or None
        The words joined by single spaces in position order, or None when the
        index is missing or empty.

    Examples
    --------
    >>> rebuild_abstract({"world": [1], "hello": [0, 2]})
    'hello world hello'
    """
    if not inverted_index:
        return None
    positions: dict[int, str] = {}
    for word, where in inverted_index.items():
        for pos in where or ():
            positions[int(pos)] = word
    if not positions:
        return None
    text = " ".join(positions[p] for p in sorted(positions))
    return text.strip() or None


def author_name(display_name: str | None) -> str | None:
    """Turn "Pedro M. A. Miranda" into "Miranda PMA" (MEDLINE style "Surname Initials").

    The last word is taken as the surname, together with any lower-case
    particles before it ("Jan van der Berg" -> "van der Berg J").  A single
    word (a consortium, a mononym) is returned unchanged.
    """
    if not display_name or not str(display_name).strip():
        return None
    words = str(display_name).replace(",", " ").split()
    if len(words) == 1:
        return words[0]
    start = len(words) - 1
    while start > 1 and words[start - 1].lower() in SURNAME_PARTICLES:
        start -= 1
    surname = " ".join(words[start:])
    initials = ""
    for given in words[:start]:
        for part in given.split("-"):
            letters = [ch for ch in part if ch.isalpha()]
            if letters:
                initials += letters[0].upper()
    return f"{surname} {initials}".strip()


def _strip_doi(value: str | None) -> str | None:
    if not value:
        return None
    return _DOI_PREFIX.sub("", str(value).strip()) or None


def _trailing_id(value: str | None, prefix: str = "") -> str | None:
    if not value:
        return None
    match = _TRAILING_DIGITS.search(str(value).strip())
    return f"{prefix}{match.group(1)}" if match else None


def work_to_record(work: dict[str, Any]) -> dict[str, Any]:
    """Map one OpenAlex Work to a row of the records table (plus ``openalex_id``)."""
    ids = work.get("ids") or {}
    location = work.get("primary_location") or {}
    source = (location.get("source") or {}) if isinstance(location, dict) else {}
    journal = source.get("display_name") or (work.get("host_venue") or {}).get("display_name")
    authors = [author_name((a.get("author") or {}).get("display_name")) for a in work.get("authorships") or []]
    keywords = [k.get("display_name") or k.get("keyword") for k in work.get("keywords") or [] if isinstance(k, dict)]
    if not keywords:
        keywords = [c.get("display_name") for c in work.get("concepts") or [] if isinstance(c, dict)]
    mesh = work.get("mesh") or []
    language = work.get("language")
    openalex_id = work.get("id") or ids.get("openalex")
    return {
        "pmid": _trailing_id(ids.get("pmid")),
        "doi": _strip_doi(work.get("doi") or ids.get("doi")),
        "pmcid": _trailing_id(ids.get("pmcid"), prefix="PMC"),
        "title": (work.get("title") or work.get("display_name") or None),
        "abstract": rebuild_abstract(work.get("abstract_inverted_index")),
        "authors": [a for a in authors if a],
        "journal": journal,
        "year": work.get("publication_year"),
        "pub_date": work.get("publication_date"),
        "language": [language] if language else [],
        "publication_types": [work["type"]] if work.get("type") else [],
        "mesh_terms": sorted({m.get("descriptor_name") for m in mesh if m.get("descriptor_name")}),
        "mesh_major": sorted({m.get("descriptor_name") for m in mesh
                              if m.get("is_major_topic") and m.get("descriptor_name")}),
        "keywords": [k for k in keywords if k],
        "source": "openalex",
        "openalex_id": _strip_openalex(openalex_id),
    }


def _strip_openalex(value: str | None) -> str | None:
    if not value:
        return None
    return str(value).rstrip("/").rsplit("/", 1)[-1]


def _works_in(document: Any, origin: str) -> Iterator[dict[str, Any]]:
    if isinstance(document, dict) and isinstance(document.get("results"), list):
        document = document["results"]
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list):
        raise InputError(f"{origin} is not OpenAlex Work JSON (expected an object or a list of objects): "
                         "give a file saved from the OpenAlex API", source=origin)
    for item in document:
        if not isinstance(item, dict) or not (item.get("id") or item.get("title") or item.get("display_name")):
            raise InputError(f"{origin} holds an item that is not an OpenAlex Work (no id or title): "
                             "give a file saved from the OpenAlex API", source=origin)
        yield item


def _parse(data: bytes, origin: str) -> Iterator[dict[str, Any]]:
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{origin} is not valid JSON ({exc}): give OpenAlex Work JSON files", source=origin) from exc
    yield from _works_in(document, origin)


def _iter_works(path: Path) -> Iterator[dict[str, Any]]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".json", ".zip"))
        if not files:
            raise InputError(f"folder {path} holds no .json or .zip file: give OpenAlex Work JSON", source=str(path))
        for f in files:
            yield from _iter_works(f)
    elif path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                names = sorted(n for n in archive.namelist() if n.lower().endswith(".json")
                               and not n.startswith("__MACOSX/"))
                if not names:
                    raise InputError(f"zip {path} holds no .json file: give a zip of OpenAlex Work JSON",
                                     source=str(path))
                for name in names:
                    yield from _parse(archive.read(name), f"{path}!{name}")
        except zipfile.BadZipFile as exc:
            raise InputError(f"{path} is not a readable zip ({exc}): download it again", source=str(path)) from exc
    else:
        yield from _parse(path.read_bytes(), str(path))


def read_openalex(path: str | os.PathLike) -> pd.DataFrame:
    """Read OpenAlex Work JSON into a records table.

    Parameters
    ----------
    path : path-like
        A ``.json`` file (one Work, a list of Works, or an API page with
        ``results``), a folder of such files (searched recursively), or a
        ``.zip`` of them.

    Returns
    -------
    pandas.DataFrame
        :data:`reviewlib.records.COLUMNS` plus ``openalex_id`` (e.g.
        ``W2345220764``), one row per Work in file order, ``source='openalex'``.
        ``pmid`` comes from ``ids.pmid``, ``doi`` without its ``https://doi.org/``
        prefix, the abstract is rebuilt from ``abstract_inverted_index``,
        authors are "Surname Initials", the journal is
        ``primary_location.source.display_name``, keywords are OpenAlex
        keywords or, failing those, concepts, and MeSH terms come from ``mesh``.

    Raises
    ------
    InputError
        If the path is missing or holds something other than OpenAlex JSON.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"OpenAlex file not found: {path}: give a Work JSON file, a folder or a .zip of them",
                         source=str(path))
    if path.is_file():
        from .memory import check_fits
        check_fits(path, "OpenAlex file")     # far larger than memory: say so before reading it
    rows = [work_to_record(w) for w in _iter_works(path)]
    logger.info("read %d OpenAlex works from %s", len(rows), path)
    if not rows:
        frame = pd.DataFrame({"openalex_id": pd.Series([], dtype=object)})
    else:
        frame = pd.DataFrame(rows)
    frame = conform(frame)
    frame["openalex_id"] = frame["openalex_id"].astype(object)
    return frame

