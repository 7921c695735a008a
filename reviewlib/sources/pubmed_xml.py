"""Streaming parser of PubMed efetch XML into the records table.

:func:`read_pubmed_xml` reads a ``PubmedArticleSet`` (what ``efetch db=pubmed
retmode=xml`` returns, possibly gzip-compressed) and returns one row per
``PubmedArticle`` or ``PubmedBookArticle`` with exactly
:data:`reviewlib.records.COLUMNS`.

The parser streams: lxml's ``iterparse`` reports only the end of each record
element, the record is turned into a plain dict, then the element is cleared
and its earlier siblings are deleted, so the XML tree never holds more than one
record and memory does not grow with the number of records (the result table
of course does).  No DTD is loaded, no entity is resolved and nothing is
fetched from the network.  ``<ReferenceList>`` elements (cited references,
often two thirds of an efetch file, used by no column) are dropped from the
byte stream before lxml sees it.

Text inside inline markup (``<i>``, ``<b>``, ``<u>``, MathML) is kept: element
text is the concatenation of all its descendant text with runs of whitespace
collapsed to one space.  Superscripts and subscripts keep their meaning:
``10<sup>6</sup>`` becomes ``10⁶`` and ``P<sub>trend</sub>`` ``P_trend``
(Unicode where the characters have a super/subscript form, else ``^``/``_``;
see :mod:`reviewlib.sources.inline`), so a dose never reads "106".

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
import json
import logging
import os
import re
import zlib
from pathlib import Path
from typing import IO, Any, Iterator, Union

import pandas as pd
from lxml import etree

from .. import records
from ..errors import InputError
from ..settings import process_count
from .inline import subscript, superscript

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


#: Elements no column reads, dropped from the byte stream before lxml sees them (fewer bytes to
#: parse and far fewer elements to build: at 100,000 baseline records about a third of the parse).
#: Nothing inside them is used: ``_article`` and ``_book_article`` never look below these names.
SKIPPED_ELEMENTS = (
    "ReferenceList",            # cited references, often two thirds of a recent efetch file
    "History",                  # PubmedData's received/accepted/pubmed/medline dates
    "ChemicalList", "SupplMeshList", "GeneSymbolList", "PersonalNameSubjectList",
    "CommentsCorrectionsList", "GrantList", "InvestigatorList", "DataBankList",
    "AffiliationInfo", "Identifier",   # inside Author: only the names are read
    "CitationSubset", "GeneralNote", "OtherAbstract", "OtherID", "NumberOfReferences", "CoiStatement",
    "Pagination",
    # MedlineCitation's dates and journal details, PubmedData's status, an author's suffix, the
    # abstract's copyright line (scale5a: a fifth of the elements left of a baseline record)
    "DateCompleted", "DateRevised", "ISSN", "Volume", "Issue", "Country", "NlmUniqueID", "ISSNLinking",
    "PublicationStatus", "Suffix", "CopyrightInformation",
)


def _skip_pattern(tags: tuple[str, ...]) -> re.Pattern[bytes]:
    """Whole elements named in ``tags``: an empty one, or one whose content holds no element of the
    same name (such an outer one is kept, and its inner one dropped: nothing in either is read)."""
    names = b"|".join(re.escape(t.encode("ascii")) for t in tags)
    return re.compile(rb"<(" + names + rb")(?=[\s/>])[^>]*?(?:/>|>[^<]*(?:<(?!\1[\s/>]|/\1\s*>)[^<]*)*</\1\s*>)")


_SKIP_RE = _skip_pattern(SKIPPED_ELEMENTS)


def _drop_skipped(data: bytes) -> bytes:
    """``data`` without the :data:`SKIPPED_ELEMENTS` (an XML document held whole in memory).

    One ``re.sub`` in C, where :class:`_SkipElements` (for a stream) loops in Python over every
    element it drops.  An element left open is left in place, so a document cut short inside
    one is still seen as cut short."""
    return _SKIP_RE.sub(b"", data)


class _SkipElements:
    """A binary reader that removes the elements named in ``tags`` from the XML bytes.

    XML text cannot contain a literal ``<`` (it is escaped as ``&lt;``), so the open and
    close tags found here are real tags; an element nested in one of the same name is
    counted.  A file cut short inside a skipped element is still seen as cut short by the
    parser.
    """

    _CHUNK = 1 << 16

    def __init__(self, raw: IO[bytes], tags: tuple[str, ...] = SKIPPED_ELEMENTS):
        self._raw = raw
        names = [t.encode("ascii") for t in tags]
        self._open = re.compile(rb"<(" + b"|".join(re.escape(n) for n in names) + rb")[\s/>]")
        self._same = {n: re.compile(rb"<(/?)" + re.escape(n) + rb"[\s/>]") for n in names}
        self._keep = max(len(n) for n in names) + 3      # bytes kept back: a tag may straddle chunks
        self._buf = b""
        self._skipping: bytes | None = None
        self._depth = 0
        self._eof = False
        self._pending = b""

    def _fill(self) -> None:
        data = self._raw.read(self._CHUNK)
        if data:
            self._buf += data
        else:
            self._eof = True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = [self._pending]
            while True:
                chunk = self._produce()
                if not chunk:
                    break
                chunks.append(chunk)
            self._pending = b""
            return b"".join(chunks)
        while len(self._pending) < size:
            chunk = self._produce()
            if not chunk:
                break
            self._pending += chunk
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def _produce(self) -> bytes:
        out: list[bytes] = []
        while not out:
            if not self._eof:
                self._fill()
            buf = self._buf
            if not buf:
                return b""
            limit = len(buf) if self._eof else len(buf) - self._keep   # a match from here may be cut
            pos = 0
            while True:
                if self._skipping is None:
                    match = self._open.search(buf, pos)
                    if match is None or match.start() >= limit:
                        end = max(limit, pos) if match is None else match.start()
                        out.append(buf[pos:end])
                        pos = end
                        break
                    out.append(buf[pos:match.start()])
                    end = buf.find(b">", match.start())
                    if end < 0:                      # the open tag is cut by the chunk's end
                        pos = match.start()
                        break
                    pos = end + 1
                    if buf[end - 1:end] != b"/":     # <ReferenceList/> opens nothing
                        self._skipping, self._depth = match.group(1), 1
                else:
                    match = self._same[self._skipping].search(buf, pos)
                    if match is None or match.start() >= limit:
                        pos = max(pos, limit) if match is None else match.start()
                        break
                    end = buf.find(b">", match.start())
                    if end < 0:
                        pos = match.start()
                        break
                    if match.group(1):
                        self._depth -= 1
                        if self._depth == 0:
                            self._skipping = None
                    elif buf[end - 1:end] != b"/":
                        self._depth += 1
                    pos = end + 1
            self._buf = buf[pos:]
            if self._eof and self._buf and pos == 0:
                out.append(self._buf)  # nothing more will come: hand over what is left
                self._buf = b""
            out = [chunk for chunk in out if chunk]
            if self._eof and not self._buf and not out:
                return b""
        return b"".join(out)


def _SkipReferenceLists(raw: IO[bytes]) -> _SkipElements:
    """A reader that drops only ``<ReferenceList>`` elements (what the parser skipped before issue 15)."""
    return _SkipElements(raw, ("ReferenceList",))


def _source_name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return str(getattr(source, "name", None) or f"<{type(source).__name__}>")


def _open(source: Source, skip: bool = True) -> tuple[IO[bytes], list[IO[bytes]]]:
    """Return a binary reader of the (decompressed) XML and the handles to close.

    ``skip``: drop :data:`SKIPPED_ELEMENTS` from the bytes (what the parser reads); False gives
    the decompressed document as it is."""
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
    if not skip:
        return stream, to_close
    return _SkipElements(stream), to_close  # type: ignore[return-value]


def _inline(el: Any) -> str:
    """The text under ``el`` with its inline markup dropped, but ``<sup>``/``<sub>`` written as
    Unicode super/subscripts or an explicit ``^``/``_`` form (:mod:`reviewlib.sources.inline`):
    ``10<sup>6</sup>`` is ``10⁶``, never ``106``."""
    if len(el) == 0:
        return el.text or ""
    parts = [el.text or ""]
    for child in el:
        tag = child.tag if isinstance(child.tag, str) else None  # comments and PIs have no str tag
        if tag in ("sup", "sub"):
            inner = "".join(child.itertext())
            word_next = bool(child.tail) and (child.tail[0].isalnum() or child.tail[0] == "_")
            parts.append(superscript(inner, word_next) if tag == "sup" else subscript(inner, word_next))
        elif tag is not None:
            parts.append(_inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _text(el: Any) -> str | None:
    """All text under ``el`` (markup kept as text), whitespace collapsed; None if empty."""
    if el is None:
        return None
    text = " ".join(_inline(el).split())
    return text or None


def _texts(elements: Any) -> list[str]:
    out = []
    for el in elements:
        text = " ".join(_inline(el).split())
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
    year_text = month_text = day_text = medline = None
    for child in el:
        tag = child.tag
        if tag == "Year":
            year_text = child.text
        elif tag == "Month":
            month_text = child.text
        elif tag == "Day":
            day_text = child.text
        elif tag == "MedlineDate":
            medline = child.text
    if year_text and year_text.strip().isdigit():
        year = int(year_text)
        month = _month_number(month_text)
        if month is None:
            return year, f"{year:04d}"
        if day_text and day_text.strip().isdigit() and 1 <= int(day_text) <= 31:
            return year, f"{year:04d}-{month:02d}-{int(day_text):02d}"
        return year, f"{year:04d}-{month:02d}"
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
        text = " ".join(_inline(part).split())
        label = (part.get("Label") or "").strip()
        if text or label:
            sections.append({"label": label, "text": text})
    if not sections:
        return None, []
    abstract = "\n".join(f"{s['label']}: {s['text']}" if s["label"] else s["text"] for s in sections)
    return abstract, sections


def _authors(author_list: Any) -> list[str]:
    """``"Surname Initials"`` per ``Author`` (initials from ``ForeName`` if missing); collective names as given."""
    if author_list is None:
        return []
    out = []
    for author in author_list:
        if author.tag != "Author":
            continue
        last = initials = fore = collective = None
        for child in author:
            tag = child.tag
            if tag == "LastName":
                last = child.text
            elif tag == "Initials":
                initials = child.text
            elif tag == "ForeName":
                fore = child.text
            elif tag == "CollectiveName":
                collective = child
        if last:
            if not initials:
                initials = "".join(p[0] for p in (fore or "").replace("-", " ").split() if p[:1].isalpha())
            out.append(f"{last.strip()} {initials.strip()}".strip())
        elif collective is not None:
            name = _text(collective)
            if name:
                out.append(name)
    return out


_MESH_TERMS = etree.XPath("MeshHeading/DescriptorName/text()", smart_strings=False)
_MESH_MAJOR = etree.XPath("MeshHeading[DescriptorName/@MajorTopicYN='Y' or QualifierName/@MajorTopicYN='Y']"
                          "/DescriptorName/text()", smart_strings=False)


def _mesh(heading_list: Any) -> tuple[list[str], list[str]]:
    """MeSH descriptor names, and those that are major (descriptor or any qualifier).

    Two compiled XPaths walk the headings in C (a Python loop over every heading and
    qualifier was a fifth of the parse at 100,000 records)."""
    if heading_list is None:
        return [], []
    return ([name.strip() for name in _MESH_TERMS(heading_list)],
            [name.strip() for name in _MESH_MAJOR(heading_list)])


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
    """One ``PubmedArticle`` element -> dict of record fields (one pass over the children)."""
    citation = pubmed_data = None
    for child in elem:
        tag = child.tag
        if tag == "MedlineCitation":
            citation = child
        elif tag == "PubmedData":
            pubmed_data = child
    pmid = article = mesh_list = medline_ta = None
    keywords: list[str] = []
    for child in citation:
        tag = child.tag
        if tag == "PMID":
            pmid = child.text
        elif tag == "Article":
            article = child
        elif tag == "MeshHeadingList":
            mesh_list = child
        elif tag == "KeywordList":
            keywords.extend(_texts(child))
        elif tag == "MedlineJournalInfo":
            medline_ta = child.findtext("MedlineTA")
    journal = title_el = vernacular = abstract_el = author_list = type_list = None
    languages: list[str] = []
    elocation_doi = None
    for child in article:
        tag = child.tag
        if tag == "Journal":
            journal = child
        elif tag == "ArticleTitle":
            title_el = child
        elif tag == "Abstract":
            abstract_el = child
        elif tag == "AuthorList":
            author_list = child
        elif tag == "Language":
            if child.text:
                languages.append(child.text.strip())
        elif tag == "PublicationTypeList":
            type_list = child
        elif tag == "ELocationID":
            if elocation_doi is None and child.get("EIdType") == "doi" and child.text:
                elocation_doi = child.text.strip()
        elif tag == "VernacularTitle":
            vernacular = child
    journal_title = journal_abbrev = pub_date_el = None
    if journal is not None:
        for child in journal:
            tag = child.tag
            if tag == "Title":
                journal_title = _text(child)
            elif tag == "ISOAbbreviation":
                journal_abbrev = child.text
            elif tag == "JournalIssue":
                pub_date_el = child.find("PubDate")
    ids: dict[str, str] = {}
    if pubmed_data is not None:
        _ids(pubmed_data.find("ArticleIdList"), ids)
    abstract, sections = _abstract(abstract_el)
    year, pub_date = parse_pub_date(pub_date_el)
    if year is None:
        year, pub_date = parse_pub_date(article.find("ArticleDate"))
    mesh_terms, mesh_major = _mesh(mesh_list)
    return {
        "pmid": (pmid or "").strip() or None,
        "doi": ids.get("doi") or elocation_doi,
        "pmcid": ids.get("pmc"),
        "title": _text(title_el) or _text(vernacular),
        "abstract": abstract,
        "abstract_sections": sections,
        "authors": _authors(author_list),
        "journal": journal_title,
        "journal_abbrev": (journal_abbrev or medline_ta or "").strip() or None,
        "year": year,
        "pub_date": pub_date,
        "language": languages,
        "publication_types": _texts(type_list) if type_list is not None else [],
        "mesh_terms": mesh_terms,
        "mesh_major": mesh_major,
        "keywords": keywords,
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


def _log_deleted(name: str, pmids: list[str]) -> None:
    logger.info("%s: DeleteCitation for %d PMID(s): %s", name, len(pmids), ", ".join(pmids[:20]))


class _Parse:
    """State of one streaming parse: yields record dicts, collects deleted PMIDs."""

    def __init__(self, source: Source, log_deleted: bool = True):
        self.source = source
        self.name = _source_name(source)
        self.deleted_pmids: list[str] = []
        self.deleted_groups: list[list[str]] = []     # the PMIDs of each DeleteCitation, in order
        self._log_deleted = log_deleted

    def _fail(self, what: str, exc: BaseException | None = None) -> InputError:
        detail = f" ({' '.join(str(exc).split())})" if exc is not None else ""
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
                            self.deleted_groups.append(pmids)
                            if self._log_deleted:
                                _log_deleted(self.name, pmids)
                    except (AttributeError, TypeError) as exc:
                        raise self._fail(f"a <{tag}> lacks a required element", exc) from exc
                    elem.clear(keep_tail=False)
                    while elem.getprevious() is not None:
                        del elem.getparent()[0]
                root = context.root
            except etree.XMLSyntaxError as exc:
                raise self._fail("it is not well-formed XML or was cut short", exc) from exc
            except (OSError, EOFError, zlib.error) as exc:
                raise self._fail("it could not be read, or its gzip data is damaged or was cut short",
                                 exc) from exc
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


#: Environment variable: how many worker processes parse a large snapshot file (1: in this process).
PARSE_WORKERS_ENV = "REVIEWLIB_PARSE_WORKERS"
#: Decompressed bytes of XML per piece handed to a worker; a document no larger is parsed here.
PARALLEL_CHUNK_BYTES = 8 << 20

_RECORD_START_RE = re.compile(rb"<(?:PubmedArticle|PubmedBookArticle|DeleteCitation)[\s/>]")
_ROOT_OPEN_RE = re.compile(rb"<(PubmedArticleSet|PubmedBookArticleSet)[\s>]")
_RECORD_ENDS = (b"</PubmedArticle>", b"</PubmedBookArticle>", b"</DeleteCitation>")


def parse_workers(workers: int | None = None) -> int:
    """The number of processes :func:`read_pubmed_xml` parses a large file with.

    ``workers`` when given, else :data:`PARSE_WORKERS_ENV` from the environment, else
    ``min(2, cpu_count)``; at least 1."""
    if workers is None:
        return process_count(PARSE_WORKERS_ENV, min(2, os.cpu_count() or 1), "parse a large snapshot")
    return max(1, int(workers))


def _parse_piece(data: bytes, encode: bool | str = False) -> tuple[str, Any, list[list[str]]]:
    """Worker: parse one piece (a complete ``PubmedArticleSet`` document) into column lists.

    ``encode``: also a ``"json"`` list, each record as the review store writes it (see
    :func:`read_pubmed_xml_encoded`); ``"rows"``: only a ``"rows"`` list, each record as the store's
    row ``(record_id, pmid, doi, json)`` (see :func:`read_pubmed_xml_store_rows`), no columns.
    Never raises (an exception may not survive pickling): ``("error", message, [])`` instead, and
    the caller parses the whole file in its own process, which reports the problem as it always has."""
    try:
        parse, deleted_groups = _piece_records(data)
        to_json = json.JSONEncoder(ensure_ascii=False).encode      # ReviewStore.add_records' encoder
        if encode == "rows":
            from ..store import record_id_for
            rows = []
            for record in parse:           # its keys are _FIELDS in records.COLUMNS order ...
                record["source"] = "pubmed"    # ... where source is last
                rows.append((record_id_for(record), record["pmid"], record["doi"], to_json(record)))
            return "ok", {"rows": rows}, deleted_groups
        columns: dict[str, list[Any]] = {name: [] for name in _FIELDS}
        appenders = [(columns[name].append, name) for name in _FIELDS]
        encoded: list[str] = []
        for record in parse:
            for append, name in appenders:
                append(record[name])
            if encode:
                row = {name: record[name] for name in _FIELDS}     # records.COLUMNS order ...
                row["source"] = "pubmed"                           # ... where source is last
                encoded.append(to_json(row))
        if encode:
            columns["json"] = encoded
        return "ok", columns, deleted_groups
    except BaseException as exc:  # noqa: BLE001 - reported to the caller, which parses serially
        return "error", f"{type(exc).__name__}: {exc}", []


_RECORD_TAG_SET = frozenset(_RECORD_TAGS)


def _piece_records(data: bytes) -> tuple[Iterator[dict[str, Any]], list[list[str]]]:
    """The records of a piece (a whole document in memory) and the PMIDs of each ``DeleteCitation``.

    The piece, without its skipped elements (:func:`_drop_skipped`), is parsed whole into a tree
    whose root's children are the records (a piece is at most a few MB): in a worker that is a
    quarter cheaper than the streaming parse.  A piece whose records are not all the root's
    children (or whose root is not a ``PubmedArticleSet``) is read by the streaming parse
    (:class:`_Parse`), which finds records at any depth and reports what is wrong."""
    body = _drop_skipped(data)
    root = etree.fromstring(body, etree.XMLParser(
        no_network=True, resolve_entities=False, load_dtd=False, dtd_validation=False, huge_tree=True,
        remove_comments=True))
    elements = [child for child in root if child.tag in _RECORD_TAG_SET]
    if root.tag not in _SET_TAGS or len(elements) != len(_RECORD_START_RE.findall(body)):
        parse = _Parse(data, log_deleted=False)
        return iter(parse), parse.deleted_groups
    groups: list[list[str]] = []

    def walk() -> Iterator[dict[str, Any]]:
        for elem in elements:
            tag = elem.tag
            if tag == "PubmedArticle":
                yield _article(elem)
            elif tag == "PubmedBookArticle":
                yield _book_article(elem)
            else:
                groups.append(_texts(elem.iterchildren("PMID")))
    return walk(), groups


def _pieces(stream: IO[bytes], chunk_bytes: int) -> Iterator[bytes] | None:
    """Cut a decompressed efetch document into complete documents of whole records (or None).

    Each piece is the document's head (everything before its first record: declaration, DOCTYPE,
    the root's open tag) plus whole records cut after a record's end tag, closed by the root's end
    tag; the last piece carries the document's own end.  None: the document fits one piece, or its
    head is not what the cut needs (the caller parses it whole, and reports any problem)."""
    first = stream.read(chunk_bytes)
    if len(first) < chunk_bytes:
        return None
    start = _RECORD_START_RE.search(first)
    if start is None:
        return None
    head = first[:start.start()]
    roots = list(_ROOT_OPEN_RE.finditer(head))
    if len(roots) != 1:
        return None
    close = b"</" + roots[0].group(1) + b">\n"

    def cut() -> Iterator[bytes]:
        # Each read is searched once, for its own last record end; the bytes after it wait for the
        # next piece.  Nothing is appended to a growing buffer and no miss scans a whole piece
        # (the three end tags' rfind over every buffer, and the copies, were 7 of the parent's 15
        # CPU s at 100,000 records).
        tail = first[start.start():]             # the start of the records not yet handed out
        while True:
            data = stream.read(chunk_bytes)
            if not data:
                yield head + tail                # the document's own end (or whatever is left of it)
                return
            end = _last_record_end(data)
            if end <= 0:
                tail += data                     # no record ends in it yet: read on
                continue
            if (b"<!" in tail or data.find(b"<!", 0, end) >= 0
                    or (tail.endswith(b"<") and data.startswith(b"!"))):
                raise _CannotCut()               # a comment or CDATA could hide an end tag: not cut here
            yield b"".join((head, tail, memoryview(data)[:end], close))
            tail = data[end:]
    return cut()


def _last_record_end(data: bytes) -> int:
    """The offset just after the last record end tag in ``data`` (-1 without one).

    The common end tag is looked for first; the others only after it, so a file of journal
    articles is never scanned whole for a book's or a deletion's end tag."""
    best = -1
    from_ = 0
    for tag in _RECORD_ENDS:
        at = data.rfind(tag, from_)
        if at >= 0:
            best = max(best, at + len(tag))
            from_ = max(from_, at + len(tag))
    return best


class _CannotCut(Exception):
    """The document cannot be cut into pieces safely: parse it whole."""


def _read_parallel(path: Path, workers: int, chunk_bytes: int,
                   encode: bool | str = False) -> tuple[dict[str, list[Any]], list[list[str]]] | None:
    """Parse a large efetch file in ``workers`` processes; None when it must be parsed here instead.

    The pieces are parsed in order and their columns joined in order, so the table is the one
    :func:`read_pubmed_xml` builds in one process.  Anything unusual (a damaged gzip stream, a piece
    that does not parse) gives None: the caller parses the whole file serially, which then gives
    the same table or the same error as before."""
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    fields = ["rows"] if encode == "rows" else _FIELDS + ["json"] if encode else _FIELDS
    columns: dict[str, list[Any]] = {name: [] for name in fields}
    deleted: list[list[str]] = []
    stream, to_close = _open(path, skip=False)
    try:
        try:
            pieces = _pieces(stream, chunk_bytes)
        except (OSError, EOFError, zlib.error):
            return None
        if pieces is None:
            return None
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            pending: deque = deque()

            def take() -> bool:
                try:
                    status, cols, groups = pending.popleft().result()
                except BrokenProcessPool as exc:   # a worker died (killed for memory, say): parse it here
                    logger.warning("%s: a parse worker ended abruptly (%s); parsing the file in this process",
                                   path, exc)
                    return False
                if status != "ok":
                    logger.debug("%s: a piece did not parse in a worker (%s); parsing the file whole", path, cols)
                    return False
                for name in fields:
                    columns[name].extend(cols[name])
                deleted.extend(groups)
                return True

            try:
                for piece in pieces:
                    pending.append(pool.submit(_parse_piece, piece, encode))
                    if len(pending) > 2 * workers and not take():   # a few pieces in flight: memory stays flat
                        return None
            except (_CannotCut, OSError, EOFError, zlib.error):
                for future in pending:
                    future.cancel()
                return None
            while pending:
                if not take():
                    for future in pending:
                        future.cancel()
                    return None
    finally:
        for handle in reversed(to_close):
            handle.close()
    return columns, deleted


def read_pubmed_xml(source: Source, workers: int | None = None) -> pd.DataFrame:
    """Read PubMed efetch XML into a records table.

    Parameters
    ----------
    source : path, bytes or binary file object
        A ``PubmedArticleSet`` document (``efetch db=pubmed retmode=xml``),
        plain or gzip-compressed.
    workers : int, optional
        Processes that parse a file (a path) of more than :data:`PARALLEL_CHUNK_BYTES` of XML,
        each a piece of whole records; the table is the same as parsed in one process.
        Default: :func:`parse_workers` (``REVIEWLIB_PARSE_WORKERS``, else 2).  Smaller
        documents, bytes and file objects are parsed in this process.

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
    return _read(source, workers, encode=False)[0]


def read_pubmed_xml_encoded(source: Source, workers: int | None = None) -> tuple[pd.DataFrame, list[str] | None]:
    """:func:`read_pubmed_xml`, and each record's JSON as the review store writes it, when the file
    was parsed in worker processes (they encode it there, beside the parse); else None.

    The JSON of row ``i`` is what :meth:`reviewlib.store.ReviewStore.add_records` would write for
    it (``json_rows`` of the table, the same encoder: ``tests/test_pubmed_xml_parallel.py``), so the
    store can take it instead of encoding 100,000 records again in this process.
    """
    return _read(source, workers, encode=True)


def read_pubmed_xml_store_rows(source: Source, workers: int | None = None
                               ) -> tuple[pd.DataFrame | None, list[tuple[str, str | None, str | None, str]] | None]:
    """Each record as the review store writes it, when the file was parsed in worker processes;
    else the records table.

    Returns
    -------
    tuple
        ``(None, rows)``: the workers parsed the file, ``rows[i]`` is record ``i``'s
        ``(record_id, pmid, doi, json)`` exactly as :meth:`reviewlib.store.ReviewStore.add_records`
        would write it for row ``i`` of :func:`read_pubmed_xml`'s table
        (:meth:`~reviewlib.store.ReviewStore.add_encoded_records` takes them).  No table is built
        (the parent decoding every field of 100,000 records and conforming them twice only for the
        store to take five of them).  ``(frame, None)``: it was parsed here (small, not a path, one
        worker, or anything unusual), as :func:`read_pubmed_xml` reads it.

    Raises
    ------
    reviewlib.errors.InputError
        As :func:`read_pubmed_xml`.
    """
    frame, rows = _read(source, workers, encode="rows")
    return (None, rows) if rows is not None else (frame, None)


def _read(source: Source, workers: int | None, encode: bool | str) -> tuple[pd.DataFrame | None, list | None]:
    name = _source_name(source)
    parallel = None
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        n_workers = parse_workers(workers)
        if n_workers > 1:
            parallel = _read_parallel(Path(source), n_workers, PARALLEL_CHUNK_BYTES, encode=encode)
    encoded = None
    if parallel is not None:
        columns, groups = parallel
        for pmids in groups:
            _log_deleted(name, pmids)
        if encode == "rows":
            logger.debug("%s: %d PubMed records", name, len(columns["rows"]))
            return None, columns["rows"]
        encoded = columns.pop("json", None)
        deleted = [p for pmids in groups for p in pmids]
    else:
        parse = _Parse(source)
        columns = {field: [] for field in _FIELDS}
        appenders = [(columns[field].append, field) for field in _FIELDS]
        for record in parse:
            for append, field in appenders:
                append(record[field])
        deleted = parse.deleted_pmids
    n = len(columns["pmid"])
    columns["source"] = ["pubmed"] * n  # type: ignore[assignment]
    frame = records.conform(pd.DataFrame(columns, columns=records.COLUMNS))
    frame.attrs["deleted_pmids"] = list(deleted)
    logger.debug("%s: %d PubMed records", name, n)
    return frame, encoded
