"""Link publications and registrations of the same study by NCT id.

Three kinds of evidence, each a row of the links table (``record_id``,
``nct_id``, ``how``):

``pubmed databank``
    PubMed's own ``DataBankList`` (DataBankName ``ClinicalTrials.gov``,
    ``AccessionNumber``) in efetch XML: :func:`links_from_pubmed_xml`.  The
    records table does not keep it, so it is read from the raw XML (the
    review's cache holds every batch).
``title`` / ``abstract``
    An NCT id written in a record's title or abstract (``NCT02149199``,
    ``NCT 02149199``): :func:`links_from_records`.
``registry reference``
    A PMID in the trial's own ``referencesModule`` (with its type:
    ``registry reference (RESULT)``, ``... (BACKGROUND)``, ``... (DERIVED)``):
    :func:`links_from_trials`.

:func:`link_table` gathers them; :func:`trial_publications` says, per trial,
which records report it (for "how many registered trials have any
publication yet").  ``record_id`` follows the store: ``pmid:<PMID>``.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
from lxml import etree

from ..atomic import file_digest
from ..errors import InputError

logger = logging.getLogger(__name__)

LINK_COLUMNS = ["record_id", "nct_id", "how"]
#: An NCT id in free text: 'NCT' and 8 digits, optionally one space or hyphen between (normalised away).
NCT_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])NCT[ \-]?(\d{8})(?!\d)", re.I)
#: Found in the lower-cased JSON of every stored record with an NCT id in its title or abstract (and in
#: a few more): the records worth decoding.
_NCT_HINT = re.compile(r"nct[ \-]?\d")


def may_hold_nct_id(text: str) -> bool:
    """False when ``text`` certainly holds no NCT id :data:`NCT_IN_TEXT` would find (a fast prefilter)."""
    return _NCT_HINT.search(text.lower()) is not None

_PARSER_KW = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


def find_nct_ids(text: Any) -> list[str]:
    """NCT ids written in ``text``, normalised (``NCT`` + 8 digits), unique, in order of appearance."""
    if not isinstance(text, str) or not text:
        return []
    out: list[str] = []
    for m in NCT_IN_TEXT.finditer(text):
        nct = "NCT" + m.group(1)
        if nct not in out:
            out.append(nct)
    return out


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in LINK_COLUMNS})


def _frame(rows: Iterable[tuple[str, str, str]]) -> pd.DataFrame:
    rows = list(dict.fromkeys(rows))
    return pd.DataFrame(rows, columns=LINK_COLUMNS) if rows else _empty()


def links_from_records(records: pd.DataFrame) -> pd.DataFrame:
    """Links from NCT ids written in records' titles and abstracts (a records table, ``record_id`` or ``pmid``)."""
    if not len(records):
        return _empty()
    # only the records whose title or abstract holds "NCT" at all are read one by one (a few in a thousand)
    mentions = pd.Series(False, index=records.index)
    for field in ("title", "abstract"):
        if field in records:
            mentions |= records[field].astype(object).where(records[field].map(type).eq(str), "") \
                .str.contains("nct", case=False, regex=False)
    columns = [c for c in ("record_id", "pmid", "source", "title", "abstract") if c in records]
    rows = []
    for rec in records.loc[mentions, columns].to_dict("records"):
        rid = rec.get("record_id") or (f"pmid:{rec['pmid']}" if rec.get("pmid") else None)
        if not rid or rec.get("source") == "ctgov":     # a registration does not report itself
            continue
        for field in ("title", "abstract"):
            for nct in find_nct_ids(rec.get(field)):
                rows.append((rid, nct, field))
    return _frame(rows)


def _xml_bytes(source: Any) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), "the efetch XML"
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"PubMed XML file not found: {path}: give an efetch XML file (.xml or .xml.gz)",
                             source=str(path))
        data, name = path.read_bytes(), str(path)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data, name


def links_from_pubmed_xml(sources: Any) -> pd.DataFrame:
    """Links from PubMed's ``DataBankList`` (ClinicalTrials.gov accession numbers) in efetch XML.

    DataBankLists are rare (a few articles in a thousand), so the decompressed bytes are scanned
    for them and only the articles holding one are parsed (:func:`_scan_databank_articles`); a file
    the scan cannot vouch for (cut short, another encoding, entity declarations, a DataBankList
    outside an article) is parsed whole, streamed, as before.  Either way the links are the same,
    in document order.

    Parameters
    ----------
    sources : path, bytes, or an iterable of those
        efetch XML (gzip allowed), e.g. every batch in the review's cache.

    Raises
    ------
    InputError
        A file that is missing, cut short or not well-formed XML where the scan reads it (one line
        naming it).  Every article is checked by :func:`reviewlib.sources.pubmed_xml.read_pubmed_xml`,
        which reads the same files first.
    """
    if isinstance(sources, (str, os.PathLike, bytes, bytearray)):
        sources = [sources]
    rows = []
    for source in sources:
        stream, name = _xml_stream(source)
        with stream:
            scanned = _scan_databank_articles(stream)
        if scanned is not None:
            for article in scanned:
                rows.extend(_article_links(article))
            continue
        stream, name = _xml_stream(source)
        try:
            with stream:
                # streamed (a 100,000-record snapshot is over a gigabyte of XML): each article is dropped
                # once parsed, and Python sees only the rare DataBank elements, in document order
                for _, el in etree.iterparse(stream, events=("end",), tag=("DataBank", "PubmedArticle"),
                                             **_PARSER_KW):
                    if el.tag == "PubmedArticle":
                        el.clear()
                        while el.getprevious() is not None:
                            del el.getparent()[0]
                        continue
                    rows.extend(_databank_links(el))
        except etree.XMLSyntaxError as exc:
            raise InputError(f"{name} is not well-formed PubMed XML ({exc}): fetch it again", source=name) from None
    return _frame(rows)


def _databank_links(el: Any) -> list[tuple[str, str, str]]:
    """The links of one ``DataBank`` element: only PubmedArticle/MedlineCitation/Article/DataBankList/DataBank."""
    citation = _ancestor(el, ("DataBankList", "Article", "MedlineCitation"))
    if citation is None or (citation.getparent() is None or citation.getparent().tag != "PubmedArticle"):
        return []
    pmid = (citation.getparent().findtext("MedlineCitation/PMID") or "").strip()
    if not pmid or (el.findtext("DataBankName") or "").strip().lower() != "clinicaltrials.gov":
        return []
    return [(f"pmid:{pmid}", nct, "pubmed databank")
            for acc in el.iterfind("AccessionNumberList/AccessionNumber")
            for nct in find_nct_ids((acc.text or "").strip())]


def _article_links(article: Any) -> list[tuple[str, str, str]]:
    """The links of one parsed ``PubmedArticle`` (its DataBank elements in document order)."""
    return [row for el in article.iter("DataBank") for row in _databank_links(el)]


_ARTICLE_START = re.compile(rb"<PubmedArticle[\s>]")
_ARTICLE_END = b"</PubmedArticle>"
_DATABANK_LIST = b"<DataBankList"
_SCAN_CHUNK = 1 << 24
_SAFE_ENCODING = re.compile(rb"""encoding\s*=\s*["'](?:utf-8|us-ascii|ascii)["']""", re.I)


def _scan_databank_articles(stream: Any) -> list[Any] | None:
    """The parsed ``PubmedArticle`` elements of ``stream`` that hold a ``<DataBankList``, or None
    when the scan cannot vouch for the file (the caller then parses it whole).

    The bytes are read in chunks and cut into top-level ``<PubmedArticle>...</PubmedArticle>``
    spans; only the spans holding ``<DataBankList`` are parsed.  None when the head declares an
    encoding other than UTF-8/ASCII, an entity or a namespace, when ``<DataBankList`` occurs outside a span,
    when a span does not parse, or when the document does not end with ``</PubmedArticleSet>``
    (cut short).
    """
    parser = etree.XMLParser(**_PARSER_KW)
    found: list[Any] = []
    buffer = b""
    head_checked = False
    while True:
        chunk = stream.read(_SCAN_CHUNK)
        buffer += chunk
        if not head_checked and (len(buffer) >= 4096 or not chunk):
            head = buffer[:4096]
            if not buffer.lstrip().startswith(b"<") or b"<!ENTITY" in head or b"xmlns" in head or (
                    b"encoding" in head.split(b"?>", 1)[0] and not _SAFE_ENCODING.search(head.split(b"?>", 1)[0])):
                return None
            head_checked = True
        pos = 0
        while True:
            start = _ARTICLE_START.search(buffer, pos)
            if start is None:
                break
            end = buffer.find(_ARTICLE_END, start.end())
            if end < 0:
                break
            if buffer.find(_DATABANK_LIST, pos, start.start()) >= 0:     # outside any article
                return None
            end += len(_ARTICLE_END)
            if buffer.find(_DATABANK_LIST, start.start(), end) >= 0:
                try:
                    found.append(etree.fromstring(buffer[start.start():end], parser))
                except etree.XMLSyntaxError:
                    return None
            pos = end
        if not chunk:
            tail = buffer[pos:]
            if _DATABANK_LIST in tail or not tail.rstrip().endswith(b"</PubmedArticleSet>"):
                return None
            return found
        # keep what is not finished: an open article, or the gap after the last one (a DataBankList
        # there, or a start tag cut at the chunk's end, is seen with the next chunk)
        start = _ARTICLE_START.search(buffer, pos)
        keep = start.start() if start is not None else max(pos, len(buffer) - 64)
        if buffer.find(_DATABANK_LIST, pos, keep) >= 0:
            return None
        buffer = buffer[keep:]


def _ancestor(el: Any, tags: tuple[str, ...]) -> Any:
    """The element reached from ``el`` through parents tagged ``tags`` in turn (None if the chain differs)."""
    for tag in tags:
        el = el.getparent()
        if el is None or el.tag != tag:
            return None
    return el


def _xml_stream(source: Any) -> tuple[Any, str]:
    """A binary stream of efetch XML (gunzipped as it is read) and its name for messages."""
    if isinstance(source, (bytes, bytearray)):
        data, name = _xml_bytes(source)
        return io.BytesIO(data), name
    path = Path(source)
    if not path.is_file():
        raise InputError(f"PubMed XML file not found: {path}: give an efetch XML file (.xml or .xml.gz)",
                         source=str(path))
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    return (gzip.open(path, "rb") if gzipped else open(path, "rb")), str(path)


def links_from_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Links from the registry's own references with PMIDs (``reference_pmids`` / ``reference_types``)."""
    rows = []
    for t in trials.to_dict("records"):
        types = list(t.get("reference_types") or [])
        for i, pmid in enumerate(t.get("reference_pmids") or []):
            kind = types[i] if i < len(types) and types[i] else None
            how = f"registry reference ({kind})" if kind else "registry reference"
            rows.append((f"pmid:{str(pmid).strip()}", t["nct_id"], how))
    return _frame(rows)


def link_table(records: pd.DataFrame | None = None, trials: pd.DataFrame | None = None,
               pubmed_xml: Any = None) -> pd.DataFrame:
    """Every link found, one row per (record_id, nct_id, how), sorted.

    Parameters
    ----------
    records : DataFrame, optional
        A records table (its titles and abstracts are searched for NCT ids).
    trials : DataFrame, optional
        The registry table (its references with PMIDs).
    pubmed_xml : path, bytes or iterable, optional
        Raw efetch XML (its DataBankList).
    """
    parts = []
    if records is not None:
        parts.append(links_from_records(records))
    if trials is not None:
        parts.append(links_from_trials(trials))
    if pubmed_xml is not None:
        parts.append(links_from_pubmed_xml(pubmed_xml))
    parts = [p for p in parts if not p.empty]
    if not parts:
        return _empty()
    out = pd.concat(parts, ignore_index=True).drop_duplicates()
    return out.sort_values(LINK_COLUMNS).reset_index(drop=True)


def trial_publications(trials: pd.DataFrame, links: pd.DataFrame,
                       record_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Per trial: the records that report it (``nct_id``, ``status``, ``n_reports``, ``record_ids``, ``hows``).

    ``record_ids``: count only links to these records (e.g. the review's PubMed records);
    default every linked record.  A ``registry reference (BACKGROUND)`` is not a report
    of the trial and is not counted.
    """
    keep = set(record_ids) if record_ids is not None else None
    reports = links[~links["how"].eq("registry reference (BACKGROUND)")]
    if keep is not None:
        reports = reports[reports["record_id"].isin(keep)]
    grouped = reports.groupby("nct_id")
    rows = []
    for t in trials.to_dict("records"):
        nct = t["nct_id"]
        if nct in grouped.groups:
            g = grouped.get_group(nct)
            ids = sorted(set(g["record_id"]))
            hows = sorted(set(g["how"]))
        else:
            ids, hows = [], []
        rows.append({"nct_id": nct, "status": t.get("status"), "n_reports": len(ids), "record_ids": ids,
                     "hows": hows})
    return pd.DataFrame(rows, columns=["nct_id", "status", "n_reports", "record_ids", "hows"])


#: Sub-folder of the review's cache holding the DataBankList links read from each efetch file.
LINKS_FOLDER = "links"


@functools.lru_cache(maxsize=1)
def _parser_version() -> str:
    """This module's source: a change to the XML reading is a new cache key."""
    return file_digest(__file__)


def databank_links(paths: Iterable[str | os.PathLike], cache_dir: str | os.PathLike | None) -> pd.DataFrame:
    """:func:`links_from_pubmed_xml` of each file, kept in ``cache_dir/links/`` by the file's content.

    The key is the SHA-256 of the file's bytes and of this module's source, so a changed file (or
    reader) is read again; an unchanged one (the same snapshot on a rerun) costs a hash, not a parse
    of a gigabyte of XML.  Entries are written atomically; one that cannot be read is rebuilt.
    """
    from ..atomic import write_text

    parts = []
    for path in map(Path, paths):
        if cache_dir is None or not path.is_file():
            parts.append(links_from_pubmed_xml(path))
            continue
        key = hashlib.sha256(f"{_parser_version()}:{file_digest(path)}".encode()).hexdigest()
        entry = Path(cache_dir) / LINKS_FOLDER / f"{key}.json"
        try:
            kept = json.loads(entry.read_text(encoding="utf-8"))
            if kept.get("key") == key:
                parts.append(_frame(tuple(r) for r in kept["rows"]))
                continue
        except (OSError, ValueError, KeyError, TypeError):
            pass
        found = links_from_pubmed_xml(path)
        try:
            write_text(entry, json.dumps({"key": key, "source": path.name,
                                          "rows": found[LINK_COLUMNS].values.tolist()}))
        except OSError as exc:
            logger.warning("links cache %s not written (%s): the file is read again next run", entry, exc)
        parts.append(found)
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else _empty()


def review_links(store: Any, records: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every link of a review: its records' titles/abstracts, its trials' references and the cached efetch XML.

    The DataBankList links of each efetch file are kept by the file's content (:func:`databank_links`).

    Parameters
    ----------
    store : reviewlib.store.ReviewStore
        The review store (``trials()``, and ``cache/`` beside it for PubMed's DataBankList).
    records : DataFrame, optional
        Default: every record in the store that could hold an NCT id (only those are decoded:
        :func:`may_hold_nct_id`).
    """
    records = store.records_matching(may_hold_nct_id) if records is None else records
    cache = store.cache_dir
    xml = sorted(p for p in cache.rglob("*.xml*") if p.is_file()) if cache.is_dir() else []
    parts = [links_from_records(records), links_from_trials(store.trials())]
    if xml:
        parts.append(databank_links(xml, cache))
    parts = [p for p in parts if not p.empty]
    if not parts:
        return _empty()
    out = pd.concat(parts, ignore_index=True).drop_duplicates()
    return out.sort_values(LINK_COLUMNS).reset_index(drop=True)


def study_links(table: pd.DataFrame, links: pd.DataFrame, record_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """The study table with, per study, its registration(s) and its reports.

    ``registrations``: the NCT ids linked to the study's record ("; "-joined,
    empty when none); ``reports``: the study's own record and every other
    record (``record_ids``, default every linked record) linked to one of those
    registrations, i.e. the other publications of the same registered trial.
    """
    out = table.copy()
    keep = set(record_ids) if record_ids is not None else None
    reports = links[~links["how"].eq("registry reference (BACKGROUND)")]
    if keep is not None:
        reports = reports[reports["record_id"].isin(keep)]
    by_record = reports.groupby("record_id")["nct_id"].apply(lambda s: sorted(set(s))).to_dict()
    by_trial = reports.groupby("nct_id")["record_id"].apply(lambda s: sorted(set(s))).to_dict()
    regs, reps = [], []
    for rid in out["record_id"]:
        ncts = by_record.get(rid, [])
        if str(rid).startswith("nct:"):
            ncts = sorted(set(ncts) | {str(rid)[4:]})
        regs.append("; ".join(ncts))
        others = sorted({r for n in ncts for r in by_trial.get(n, [])} | {rid})
        reps.append("; ".join(others))
    out["registrations"] = regs
    out["reports"] = reps
    return out
