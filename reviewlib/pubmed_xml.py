"""Streaming parser of PubMed efetch XML into the records table.

:func:`read_pubmed_xml` reads a ``PubmedArticleSet`` (what ``efetch db=pubmed
retmode=xml`` returns, possibly gzip-compressed) and returns one row per
``PubmedArticle`` or ``PubmedBookArticle`` with exactly
:data:`reviewlib.records.COLUMNS`.

The parser streams: lxml's ``iterparse`` reports only the end of each record
element, the record is turned into a plain dict, then the element is cleared
and its earlier siblings are deleted, so the XML tree never holds more than one
record and memory does not grow with the number of records (the result table
of course does).  No DTD is loaded and nothing is fetched from the network.

Text inside inline markup (``<i>``, ``<sup>``, ``<sub>``, ``<b>``, ``<u>``,
MathML) is kept: element text is the concatenation of all its descendant text
with runs of whitespace collapsed to one space.

Abstracts: ``abstract_sections`` is a list of ``{"label": str, "text": str}``
(label ``""`` for an unlabelled paragraph); ``abstract`` is the paragraphs
joined by a newline, each written ``"LABEL: text"`` when it has a label.
``CopyrightInformation`` is not part of the abstract.

``DeleteCitation`` elements (PubMed's notice that PMIDs were withdrawn) are
logged and their PMIDs are exposed as ``frame.attrs["deleted_pmids"]``.
"""
from __future__ import annotations

import gzip
import io
import logging
import os
import re
import zlib
from pathlib import Path
from typing import IO, Any, Iterator, Union

import pandas as pd
from lxml import etree

from . import records
from .errors import InputError

logger = logging.getLogger(__name__)

Source = Union[str, os.PathLike, bytes, bytearray, IO[bytes]]

_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")
_SET_TAGS = ("PubmedArticleSet", "PubmedBookArticleSet")
_GZIP_MAGIC = b"\x1f\x8b"

_MONTHS = {name: i for i, name in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_YEAR_RE = re.compile(r"(1[5-9]\d\d|2\d\d\d)")
_MONTH_AFTER_YEAR_RE = re.compile(r"(?:1[5-9]\d\d|2\d\d\d)[\s/-]*([A-Za-z]{3})")

#: Fields of one record in :data:`records.COLUMNS` order (without ``source``).
_FIELDS = [c for c in records.COLUMNS if c != "source"]


class _Prepend:
    """A binary reader that first returns ``head`` and then reads ``raw``."""

    def __init__(self, head: bytes, raw: IO[bytes]):
        self._head = head
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                data, self._head = self._head + self._raw.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            if len(data) < size:
                data += self._raw.read(size - len(data))
            return data
        return self._raw.read(size)


def _source_name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return str(getattr(source, "name", None) or f"<{type(source).__name__}>")


def _open(source: Source) -> tuple[IO[bytes], list[IO[bytes]]]:
    """Return a binary reader of the (decompressed) XML and the handles to close."""
    to_close: list[IO[bytes]] = []
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"PubMed XML file not found: {path}: give the path of an efetch XML "
                             f"file (.xml or .xml.gz)", source=str(path))
        raw: IO[bytes] = open(path, "rb")
        to_close.append(raw)
    elif isinstance(source, (bytes, bytearray)):
        raw = io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        raw = source
    else:
        raise InputError(f"cannot read PubMed XML from a {type(source).__name__}: give a path, "
                         f"bytes or a binary file object", source=_source_name(source))
    head = raw.read(2)
    if isinstance(head, str):
        raise InputError(f"PubMed XML source {_source_name(source)} is a text stream: open the "
                         f"file in binary mode ('rb')", source=_source_name(source))
    stream: IO[bytes] = _Prepend(head, raw)  # type: ignore[assignment]
    if head == _GZIP_MAGIC:
        gz = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[arg-type]
        to_close.append(gz)
        stream = gz
    return stream, to_close


def _text(el: Any) -> str | None:
    """All text under ``el`` (markup kept as text), whitespace collapsed; None if empty."""
    if el is None:
        return None
    text = " ".join("".join(el.itertext()).split())
    return text or None


def _texts(elements: Any) -> list[str]:
    out = []
    for el in elements:
        text = " ".join("".join(el.itertext()).split())
        if text:
            out.append(text)
    return out


def _month_number(value: str | None) -> int | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        month = int(value)
        return month if 1 <= month <= 12 else None
    return _MONTHS.get(value[:3].lower())


def parse_pub_date(el: Any) -> tuple[int | None, str | None]:
    """Year and ISO date (best precision) of a ``PubDate`` element.

    Handles ``Year``/``Month``/``Day`` (month as number or name), ``Season``
    (year only) and ``MedlineDate`` such as ``"2019 Nov-Dec"`` or
    ``"1998 Dec-1999 Jan"`` (first year, first month).

    Returns
    -------
    tuple
        ``(year, pub_date)``; either may be None.
    """
    if el is None:
        return None, None
    year_text = el.findtext("Year")
    if year_text and year_text.strip().isdigit():
        year = int(year_text)
        month = _month_number(el.findtext("Month"))
        if month is None:
            return year, f"{year:04d}"
        day_text = el.findtext("Day")
        if day_text and day_text.strip().isdigit() and 1 <= int(day_text) <= 31:
            return year, f"{year:04d}-{month:02d}-{int(day_text):02d}"
        return year, f"{year:04d}-{month:02d}"
    medline = el.findtext("MedlineDate")
    if medline:
        return parse_medline_date(medline)
    return None, None


def parse_medline_date(value: str | None) -> tuple[int | None, str | None]:
    """Year and ISO date of a free-text date such as ``"2019 Nov-Dec"``.

    Parameters
    ----------
    value : str or None
        PubMed's ``MedlineDate`` or MEDLINE's ``DP`` field.

    Returns
    -------
    tuple
        ``(year, "YYYY-MM" or "YYYY")``, or ``(None, None)`` without a year.
    """
    if not value:
        return None, None
    match = _YEAR_RE.search(value)
    if not match:
        return None, None
    year = int(match.group(1))
    rest = value[match.start():]
    month_match = _MONTH_AFTER_YEAR_RE.match(rest)
    month = _month_number(month_match.group(1)) if month_match else None
    if month is None:
        return year, f"{year:04d}"
    day_match = re.match(r"(?:1[5-9]\d\d|2\d\d\d)\s+[A-Za-z]{3}\s+(\d{1,2})(?!\d)", rest)
    if day_match and 1 <= int(day_match.group(1)) <= 31:
        return year, f"{year:04d}-{month:02d}-{int(day_match.group(1)):02d}"
    return year, f"{year:04d}-{month:02d}"


def _abstract(abstract_el: Any) -> tuple[str | None, list[dict[str, str]]]:
    if abstract_el is None:
        return None, []
    sections = []
    for part in abstract_el.iterchildren("AbstractText"):
        text = " ".join("".join(part.itertext()).split())
        label = (part.get("Label") or "").strip()
        if text or label:
            sections.append({"label": label, "text": text})
    if not sections:
        return None, []
    abstract = "\n".join(f"{s['label']}: {s['text']}" if s["label"] else s["text"] for s in sections)
    return abstract, sections


def _authors(author_list: Any) -> list[str]:
    if author_list is None:
        return []
    out = []
    for author in author_list.iterchildren("Author"):
        last = author.findtext("LastName")
        if last:
            initials = author.findtext("Initials")
            if not initials:
                fore = author.findtext("ForeName") or ""
                initials = "".join(p[0] for p in fore.replace("-", " ").split() if p[:1].isalpha())
            out.append(f"{last} {initials}".strip())
            continue
        collective = _text(author.find("CollectiveName"))
        if collective:
            out.append(collective)
    return out


def _mesh(heading_list: Any) -> tuple[list[str], list[str]]:
    if heading_list is None:
        return [], []
    terms, major = [], []
    for heading in heading_list.iterchildren("MeshHeading"):
        descriptor = heading.find("DescriptorName")
        if descriptor is None or not descriptor.text:
            continue
        name = descriptor.text.strip()
        terms.append(name)
        if descriptor.get("MajorTopicYN") == "Y" or any(
                q.get("MajorTopicYN") == "Y" for q in heading.iterchildren("QualifierName")):
            major.append(name)
    return terms, major


def _ids(id_list: Any, into: dict[str, str]) -> None:
    if id_list is None:
        return
    for article_id in id_list.iterchildren("ArticleId"):
        kind = article_id.get("IdType")
        if kind and kind not in into and article_id.text:
            into[kind] = article_id.text.strip()


def _keywords(parent: Any) -> list[str]:
    out: list[str] = []
    for keyword_list in parent.iterchildren("KeywordList"):
        out.extend(_texts(keyword_list.iterchildren("Keyword")))
    return out


def _article(elem: Any) -> dict[str, Any]:
    """One ``PubmedArticle`` element -> dict of record fields."""
    citation = elem.find("MedlineCitation")
    article = citation.find("Article")
    journal = article.find("Journal")
    ids: dict[str, str] = {}
    pubmed_data = elem.find("PubmedData")
    if pubmed_data is not None:
        _ids(pubmed_data.find("ArticleIdList"), ids)
    doi = ids.get("doi")
    if not doi:
        for loc in article.iterchildren("ELocationID"):
            if loc.get("EIdType") == "doi" and loc.text:
                doi = loc.text.strip()
                break
    abstract, sections = _abstract(article.find("Abstract"))
    issue = journal.find("JournalIssue") if journal is not None else None
    year, pub_date = parse_pub_date(issue.find("PubDate") if issue is not None else None)
    if year is None:
        year, pub_date = parse_pub_date(article.find("ArticleDate"))
    title = _text(article.find("ArticleTitle")) or _text(article.find("VernacularTitle"))
    mesh_terms, mesh_major = _mesh(citation.find("MeshHeadingList"))
    journal_abbrev = journal.findtext("ISOAbbreviation") if journal is not None else None
    if not journal_abbrev:
        journal_abbrev = citation.findtext("MedlineJournalInfo/MedlineTA")
    pub_types = article.find("PublicationTypeList")
    return {
        "pmid": (citation.findtext("PMID") or "").strip() or None,
        "doi": doi,
        "pmcid": ids.get("pmc"),
        "title": title,
        "abstract": abstract,
        "abstract_sections": sections,
        "authors": _authors(article.find("AuthorList")),
        "journal": _text(journal.find("Title")) if journal is not None else None,
        "journal_abbrev": journal_abbrev or None,
        "year": year,
        "pub_date": pub_date,
        "language": _texts(article.iterchildren("Language")),
        "publication_types": _texts(pub_types.iterchildren("PublicationType")) if pub_types is not None else [],
        "mesh_terms": mesh_terms,
        "mesh_major": mesh_major,
        "keywords": _keywords(citation),
    }


def _book_article(elem: Any) -> dict[str, Any]:
    """One ``PubmedBookArticle`` element -> dict of record fields.

    ``title`` is the chapter's ``ArticleTitle`` (or the ``BookTitle`` for a
    whole book); ``journal`` is the ``BookTitle`` for a chapter and the
    publisher's name for a whole book.  Authors are the ``Type="authors"``
    list, falling back to the editors when a book has no authors.
    """
    document = elem.find("BookDocument")
    book = document.find("Book")
    ids: dict[str, str] = {}
    _ids(document.find("ArticleIdList"), ids)
    book_data = elem.find("PubmedBookData")
    if book_data is not None:
        _ids(book_data.find("ArticleIdList"), ids)
    book_title = _text(book.find("BookTitle")) if book is not None else None
    chapter_title = _text(document.find("ArticleTitle"))
    publisher = book.findtext("Publisher/PublisherName") if book is not None else None
    author_lists = list(document.iterchildren("AuthorList"))
    if book is not None:
        author_lists += list(book.iterchildren("AuthorList"))
    chosen = next((al for al in author_lists if al.get("Type", "authors") == "authors"), None)
    if chosen is None and author_lists:
        chosen = author_lists[0]
    abstract, sections = _abstract(document.find("Abstract"))
    year, pub_date = parse_pub_date(book.find("PubDate") if book is not None else None)
    pub_types = _texts(document.iterchildren("PublicationType"))
    type_list = document.find("PublicationTypeList")
    if type_list is not None:
        pub_types += _texts(type_list.iterchildren("PublicationType"))
    return {
        "pmid": (document.findtext("PMID") or "").strip() or None,
        "doi": ids.get("doi"),
        "pmcid": ids.get("pmc"),
        "title": chapter_title or book_title,
        "abstract": abstract,
        "abstract_sections": sections,
        "authors": _authors(chosen),
        "journal": book_title if chapter_title else (publisher or book_title),
        "journal_abbrev": None,
        "year": year,
        "pub_date": pub_date,
        "language": _texts(document.iterchildren("Language")),
        "publication_types": pub_types,
        "mesh_terms": [],
        "mesh_major": [],
        "keywords": _keywords(document),
    }


class _Parse:
    """State of one streaming parse: yields record dicts, collects deleted PMIDs."""

    def __init__(self, source: Source):
        self.source = source
        self.name = _source_name(source)
        self.deleted_pmids: list[str] = []

    def _fail(self, what: str, exc: BaseException | None = None) -> InputError:
        detail = f" ({exc})" if exc is not None else ""
        return InputError(f"cannot read PubMed XML {self.name}: {what}{detail}; give an efetch "
                          f"db=pubmed retmode=xml file (PubmedArticleSet, .xml or .xml.gz) and "
                          f"fetch it again if it was cut short", source=self.name)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        stream, to_close = _open(self.source)
        try:
            context = etree.iterparse(
                stream, events=("end",), tag=_RECORD_TAGS, no_network=True,
                resolve_entities=False, load_dtd=False, dtd_validation=False,
                huge_tree=True, remove_comments=True)
            checked = False
            try:
                for _event, elem in context:
                    if not checked:
                        parent = elem.getparent()
                        root_tag = parent.tag if parent is not None else elem.tag
                        if root_tag not in _SET_TAGS:
                            raise self._fail(f"root element is <{root_tag}>, not <PubmedArticleSet>")
                        checked = True
                    tag = elem.tag
                    try:
                        if tag == "PubmedArticle":
                            yield _article(elem)
                        elif tag == "PubmedBookArticle":
                            yield _book_article(elem)
                        else:
                            pmids = _texts(elem.iterchildren("PMID"))
                            self.deleted_pmids.extend(pmids)
                            logger.info("%s: DeleteCitation for %d PMID(s): %s", self.name,
                                        len(pmids), ", ".join(pmids[:20]))
                    except AttributeError as exc:
                        raise self._fail(f"a <{tag}> lacks a required element", exc) from exc
                    elem.clear(keep_tail=False)
                    while elem.getprevious() is not None:
                        del elem.getparent()[0]
                root = context.root
            except etree.XMLSyntaxError as exc:
                raise self._fail("it is not well-formed XML or was cut short", exc) from exc
            except (OSError, EOFError, zlib.error) as exc:
                raise self._fail("the gzip data is damaged or was cut short", exc) from exc
            if root is None:
                raise self._fail("it is empty")
            if root.tag not in _SET_TAGS:
                error = root.findtext(".//ERROR")
                what = f"root element is <{root.tag}>, not <PubmedArticleSet>"
                if error:
                    what += f"; NCBI said: {error.strip()}"
                raise self._fail(what)
        finally:
            for handle in reversed(to_close):
                handle.close()


def iter_pubmed_xml(source: Source) -> Iterator[dict[str, Any]]:
    """Yield one dict per PubMed record of an efetch XML file, streaming.

    Parameters
    ----------
    source : path, bytes or binary file object
        A ``PubmedArticleSet`` document, plain or gzip-compressed.

    Yields
    ------
    dict
        The record's fields, keyed by :data:`reviewlib.records.COLUMNS`
        (without ``source``).  ``DeleteCitation`` PMIDs are logged, not yielded.

    Raises
    ------
    reviewlib.errors.InputError
        If the source is not well-formed XML, is cut short, or is not a
        ``PubmedArticleSet``.
    """
    yield from _Parse(source)


def read_pubmed_xml(source: Source) -> pd.DataFrame:
    """Read PubMed efetch XML into a records table.

    Parameters
    ----------
    source : path, bytes or binary file object
        A ``PubmedArticleSet`` document (``efetch db=pubmed retmode=xml``),
        plain or gzip-compressed.

    Returns
    -------
    pandas.DataFrame
        One row per ``PubmedArticle``/``PubmedBookArticle`` with exactly
        :data:`reviewlib.records.COLUMNS` (``source`` is ``"pubmed"``).
        ``frame.attrs["deleted_pmids"]`` lists the PMIDs of any
        ``DeleteCitation`` in the file.

    Raises
    ------
    reviewlib.errors.InputError
        If the source is missing, not well-formed XML, cut short, or not a
        ``PubmedArticleSet``.

    Examples
    --------
    >>> frame = read_pubmed_xml("snapshot.xml.gz")  # doctest: +SKIP
    >>> frame[["pmid", "title", "year"]].head()     # doctest: +SKIP
    """
    parse = _Parse(source)
    columns: dict[str, list[Any]] = {name: [] for name in _FIELDS}
    appenders = [(columns[name].append, name) for name in _FIELDS]
    for record in parse:
        for append, name in appenders:
            append(record[name])
    n = len(columns["pmid"])
    columns["source"] = ["pubmed"] * n  # type: ignore[assignment]
    frame = records.conform(pd.DataFrame(columns, columns=records.COLUMNS))
    frame.attrs["deleted_pmids"] = list(parse.deleted_pmids)
    logger.debug("%s: %d PubMed records", parse.name, n)
    return frame
