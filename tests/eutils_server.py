"""A local replay of NCBI's E-utilities (esearch.fcgi and efetch.fcgi) for tests.

It serves real efetch articles (tests/data/eutils/efetch/) over HTTP on
127.0.0.1 (random port) from an :class:`http.server.ThreadingHTTPServer` in a
thread, and behaves like NCBI where reviewlib depends on it:

* GET and POST (form body), ``usehistory=y`` (WebEnv / QueryKey), ``retstart``/``retmax``,
  ``id=`` lists, ``mindate``/``maxdate``/``datetype`` (pdat or edat) filtering;
* the 9,999-record cap: a ``retstart`` beyond 9998 fails with NCBI's message;
* phrases it does not know (``not_found``) come back in ErrorList/WarningList
  as in the real esearch8.xml;
* NCBI's headers (``Content-Type: text/xml; charset=UTF-8``, ``X-RateLimit-Limit``);
* faults on demand from a queue (:meth:`ReplayServer.add_fault`): 429 with NCBI's
  JSON body and ``Retry-After``, 500/502, a truncated body, ``<ERROR>`` in a 200,
  an expired WebEnv, a dropped connection, or a request held until released;
* a log of every request with its arrival time (:attr:`ReplayServer.log`), so
  tests check the rate and that ``tool``/``email`` were sent.

A bigger corpus is made cheaply with :func:`renumbered`: copies of the real
articles with new PMIDs and dates (e.g. 12,000 to exceed the 9,999 cap).
"""
from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from lxml import etree

from stand_in_http import StandInServer

DATA = Path(__file__).resolve().parent / "data" / "eutils"
EFETCH_DIR = DATA / "efetch"
MAX_RETSTART = 9998
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}

XML_HEAD = (b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
            b'1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
            b'<PubmedArticleSet>\n')
ESEARCH_HEAD = ('<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch '
                '20060628//EN" "https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n')
CAP_MESSAGE = ("Search Backend failed: Exception:\n'retstart' cannot be larger than 9998. For PubMed, "
               "ESearch can only retrieve the first 9,999 records matching the query. To obtain more than "
               "9,999 PubMed records, consider using EDirect that contains additional logic to batch PubMed "
               "search results automatically so that an arbitrary number can be retrieved.")
RATE_BODY = json.dumps({"error": "API rate limit exceeded", "count": "11"}).encode()


@dataclass
class Article:
    """One PubmedArticle: its PMID, publication and entrez dates, and its XML bytes."""

    pmid: str
    pdat: dt.date
    edat: dt.date
    xml: bytes


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def _month(text: str | None) -> int:
    if not text:
        return 1
    n = _int(text)
    if n:
        return n
    t = text.strip().lower()
    return MONTHS.get(t[:3]) or SEASONS.get(t) or 1


def _date_of(node) -> dt.date | None:
    if node is None:
        return None
    year = _int(node.findtext("Year"))
    if year is None:
        medline = node.findtext("MedlineDate") or ""
        year = _int(medline[:4])
        if year is None:
            return None
        return dt.date(year, 1, 1)
    month = _month(node.findtext("Month") or node.findtext("Season"))
    day = _int(node.findtext("Day")) or 1
    return dt.date(year, month, day)


def article_from_element(el) -> Article:
    """An :class:`Article` from a PubmedArticle element (dates read from the XML)."""
    pmid = el.findtext("MedlineCitation/PMID").strip()
    pdat = _date_of(el.find("MedlineCitation/Article/Journal/JournalIssue/PubDate")) or dt.date(1900, 1, 1)
    edat = _date_of(el.find("PubmedData/History/PubMedPubDate[@PubStatus='entrez']")) or pdat
    return Article(pmid, pdat, edat, etree.tostring(el, encoding="utf-8"))


def load_articles(folder: Path = EFETCH_DIR) -> list[Article]:
    """Every PubmedArticle of the efetch XML files in ``folder`` (unique by PMID)."""
    seen: dict[str, Article] = {}
    for path in sorted(Path(folder).glob("*.xml")):
        root = etree.parse(str(path), PARSER).getroot()
        for el in root.iter("PubmedArticle"):
            art = article_from_element(el)
            seen.setdefault(art.pmid, art)
    return list(seen.values())


def _set_date(node, date: dt.date) -> None:
    for child in list(node):
        node.remove(child)
    node.text = None
    for tag, value in (("Year", f"{date.year:04d}"), ("Month", f"{date.month:02d}"), ("Day", f"{date.day:02d}")):
        etree.SubElement(node, tag).text = value


def renumbered(templates: list[Article], n: int, *, first_pmid: int = 80_000_001,
               start: dt.date = dt.date(2000, 1, 1), end: dt.date = dt.date(2023, 12, 31),
               seed: int = 7) -> list[Article]:
    """``n`` copies of real articles with new PMIDs (from ``first_pmid``) and dates spread over [start, end].

    The PMID (MedlineCitation and ArticleIdList), the journal issue's PubDate and
    the entrez date are rewritten in the XML, so a client sees consistent records.
    """
    rng = random.Random(seed)
    span = (end - start).days
    patterns = []
    for t in templates:
        el = etree.fromstring(t.xml, PARSER)
        el.find("MedlineCitation/PMID").text = "@@PMID@@"
        for aid in el.findall("PubmedData/ArticleIdList/ArticleId[@IdType='pubmed']"):
            aid.text = "@@PMID@@"
        pub = el.find("MedlineCitation/Article/Journal/JournalIssue/PubDate")
        if pub is not None:
            _set_date(pub, dt.date(1111, 1, 1))
        ent = el.find("PubmedData/History/PubMedPubDate[@PubStatus='entrez']")
        if ent is not None:
            _set_date(ent, dt.date(2222, 2, 2))
        patterns.append(etree.tostring(el, encoding="utf-8"))
    out = []
    for i in range(n):
        pdat = start + dt.timedelta(days=rng.randrange(span + 1))
        edat = min(end, pdat + dt.timedelta(days=rng.randrange(60)))
        pmid = str(first_pmid + i)
        xml = patterns[i % len(patterns)]
        xml = (xml.replace(b"@@PMID@@", pmid.encode())
               .replace(b"<Year>1111</Year><Month>01</Month><Day>01</Day>",
                        f"<Year>{pdat.year:04d}</Year><Month>{pdat.month:02d}</Month><Day>{pdat.day:02d}</Day>".encode())
               .replace(b"<Year>2222</Year><Month>02</Month><Day>02</Day>",
                        f"<Year>{edat.year:04d}</Year><Month>{edat.month:02d}</Month><Day>{edat.day:02d}</Day>".encode()))
        out.append(Article(pmid, pdat, edat, xml))
    return out


def parse_ncbi_date(text: str, upper: bool = False) -> dt.date:
    """NCBI's YYYY, YYYY/MM or YYYY/MM/DD; ``upper`` gives the end of a year or month."""
    parts = [int(p) for p in text.replace("-", "/").split("/") if p]
    if len(parts) == 1:
        return dt.date(parts[0], 12, 31) if upper else dt.date(parts[0], 1, 1)
    if len(parts) == 2:
        if upper:
            nxt = dt.date(parts[0] + (parts[1] == 12), parts[1] % 12 + 1, 1)
            return nxt - dt.timedelta(days=1)
        return dt.date(parts[0], parts[1], 1)
    return dt.date(parts[0], parts[1], parts[2])


@dataclass
class Fault:
    """One fault to inject: ``kind`` in rate-limit, status, truncated, error, expired, disconnect, hold.

    ``endpoint`` ('esearch' or 'efetch', None for any) and ``when`` (a predicate on
    the request's params) choose which request it hits; the first matching fault
    is used once.
    """

    kind: str
    endpoint: str | None = None
    status: int = 500
    retry_after: str | None = "1"
    message: str = "Search Backend failed: Database is not supported: pubmed"
    when: Callable[[dict], bool] | None = None
    release: threading.Event = field(default_factory=threading.Event)
    reached: threading.Event = field(default_factory=threading.Event)


class ReplayServer(StandInServer):
    """The replay server; use as a context manager or call :meth:`start`/:meth:`stop`.

    Parameters
    ----------
    articles : list of Article, optional
        The corpus every query matches (default: the real fixtures).
    not_found : iterable of str
        Words PubMed does not know: reported as PhraseNotFound and dropped from the query.
    """

    handler_attr = "replay"
    url_path = "/entrez/eutils/"

    def __init__(self, articles: list[Article] | None = None, not_found=("abcXYZ",)):
        super().__init__()
        self.set_corpus(articles if articles is not None else load_articles())
        self.not_found = {w.lower() for w in not_found}
        self.history: dict[str, dict[str, list[str]]] = {}

    # -- set-up -------------------------------------------------------------
    def set_corpus(self, articles: list[Article]) -> None:
        """Replace the corpus (sorted like PubMed: most recently added first)."""
        self.articles = sorted(articles, key=lambda a: (a.edat, int(a.pmid)), reverse=True)
        self.by_pmid = {a.pmid: a for a in self.articles}

    def add_fault(self, kind: str, endpoint: str | None = None, **kwargs) -> Fault:
        """Queue a fault (see :class:`Fault`) and return it (``hold`` faults: set ``.release``)."""
        return self._queue(Fault(kind, endpoint, **kwargs))

    def expire_history(self) -> None:
        """Forget every WebEnv, as NCBI does after a while."""
        with self._lock:
            self.history.clear()

    # -- inspection ------------------------------------------------------------
    def requests(self, endpoint: str | None = None) -> list[dict]:
        """Logged requests (optionally of one endpoint), oldest first."""
        with self._lock:
            return [r for r in self.log if endpoint is None or r["endpoint"] == endpoint]

    # -- behaviour -------------------------------------------------------------
    def _take_fault(self, endpoint: str, params: dict) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if (f.endpoint in (None, endpoint)) and (f.when is None or f.when(params)):
                    self.faults.remove(f)
                    return f
        return None

    def _match(self, term: str, params: dict) -> tuple[list[Article], list[str], list[str], str]:
        words = term.split()
        missing = [w for w in words if w.lower() in self.not_found]
        kept = [w for w in words if w.lower() not in self.not_found]
        errors = [f"<PhraseNotFound>{w}</PhraseNotFound>" for w in missing]
        found = list(self.articles) if kept else []
        translation = " ".join(f"{w}[All Fields]" for w in kept) or f"({term}[All Fields])"
        mindate, maxdate = params.get("mindate"), params.get("maxdate")
        if mindate and maxdate:
            lo, hi = parse_ncbi_date(mindate), parse_ncbi_date(maxdate, upper=True)
            datetype = params.get("datetype", "pdat")
            key = "edat" if datetype in ("edat", "mdat") else "pdat"
            found = [a for a in found if lo <= getattr(a, key) <= hi]
            label = "Date - Entry" if key == "edat" else "Date - Publication"
            translation += f" AND {mindate}:{maxdate}[{label}]"
        warnings = ["<OutputMessage>No items found.</OutputMessage>"] if not found else []
        return found, errors, warnings, translation

    def esearch(self, params: dict) -> tuple[int, bytes]:
        term = params.get("term", "").strip()
        if not term:
            return 200, (ESEARCH_HEAD + "<eSearchResult><ERROR>Empty term and query_key - nothing todo"
                         "</ERROR></eSearchResult>\n").encode()
        retstart = int(params.get("retstart", 0) or 0)
        retmax = min(int(params.get("retmax", 20) or 0), 10000)
        if retstart > MAX_RETSTART:
            return 200, (ESEARCH_HEAD + f"<eSearchResult><ERROR>{_esc(CAP_MESSAGE)}</ERROR></eSearchResult>\n").encode()
        found, errors, warnings, translation = self._match(term, params)
        ids = [a.pmid for a in found]
        history = ""
        if params.get("usehistory") == "y":
            with self._lock:
                webenv = params.get("WebEnv") or f"MCID_{uuid.uuid4().hex[:24]}"
                keys = self.history.setdefault(webenv, {})
                query_key = str(len(keys) + 1)
                keys[query_key] = ids
            history = f"<QueryKey>{query_key}</QueryKey><WebEnv>{webenv}</WebEnv>"
        shown = "".join(f"<Id>{i}</Id>\n" for i in ids[retstart:retstart + retmax])
        body = (f"<eSearchResult><Count>{len(ids)}</Count><RetMax>{len(ids[retstart:retstart + retmax])}</RetMax>"
                f"<RetStart>{retstart}</RetStart>{history}<IdList>\n{shown}</IdList><TranslationSet/>"
                f"<QueryTranslation>{_esc(translation)}</QueryTranslation>")
        if errors:
            body += "<ErrorList>" + "".join(errors) + "</ErrorList>"
        if warnings:
            body += "<WarningList>" + "".join(warnings) + "</WarningList>"
        return 200, (ESEARCH_HEAD + body + "</eSearchResult>\n").encode()

    def efetch(self, params: dict) -> tuple[int, bytes]:
        if params.get("id"):
            ids = [i.strip() for i in params["id"].split(",") if i.strip()]
            return 200, self._articles_xml(ids)
        webenv, query_key = params.get("WebEnv"), params.get("query_key")
        if not (webenv and query_key):
            return 200, b"<eFetchResult><ERROR>ID list is empty! Possibly it has no correct IDs.</ERROR></eFetchResult>\n"
        retstart = int(params.get("retstart", 0) or 0)
        retmax = min(int(params.get("retmax", 20) or 0), 10000)
        with self._lock:
            ids = self.history.get(webenv, {}).get(query_key)
        if ids is None:
            return 200, self.expired_body(params)
        if retstart > MAX_RETSTART:
            return 200, f"<eFetchResult><ERROR>{_esc(CAP_MESSAGE)}</ERROR></eFetchResult>\n".encode()
        return 200, self._articles_xml(ids[retstart:min(retstart + retmax, MAX_RETSTART + 1)])

    @staticmethod
    def expired_body(params: dict) -> bytes:
        return (f"<eFetchResult><ERROR>Cannot retrieve history data. query_key: {params.get('query_key', 1)}, "
                f"WebEnv: {params.get('WebEnv', '')}, retstart: {params.get('retstart', 0)}, "
                f"retmax: {params.get('retmax', 20)}</ERROR></eFetchResult>\n").encode()

    def _articles_xml(self, ids: list[str]) -> bytes:
        parts = [XML_HEAD]
        for i in ids:
            art = self.by_pmid.get(i)
            if art is not None:
                parts.append(art.xml)
                parts.append(b"\n")
        parts.append(b"</PubmedArticleSet>\n")
        return b"".join(parts)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Handler(BaseHTTPRequestHandler):
    replay: ReplayServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self._serve(parse_qs(urlsplit(self.path).query))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = self.rfile.read(length).decode("utf-8") if length else ""
        params = parse_qs(urlsplit(self.path).query)
        params.update(parse_qs(form))
        self._serve(params)

    def _serve(self, raw: dict) -> None:
        replay = self.replay
        params = {k: v[-1] for k, v in raw.items()}
        endpoint = urlsplit(self.path).path.rsplit("/", 1)[-1].replace(".fcgi", "")
        entry = {"time": time.monotonic(), "wall": time.time(), "method": self.command,
                 "endpoint": endpoint, "params": params, "peer": self.client_address}
        with replay._lock:
            replay.log.append(entry)
        fault = replay._take_fault(endpoint, params)
        entry["fault"] = fault.kind if fault else None
        limit = "10" if params.get("api_key") else "3"
        if fault and fault.kind == "hold":
            fault.reached.set()
            fault.release.wait(60)
        if fault and fault.kind == "disconnect":
            self.close_connection = True
            return
        if fault and fault.kind == "rate-limit":
            headers = {"Content-Type": "application/json"}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            return self._send(429, RATE_BODY, headers, limit)
        if fault and fault.kind == "status":
            return self._send(fault.status, f"<html><body><h1>{fault.status} Server Error</h1></body></html>".encode(),
                              {"Content-Type": "text/html"}, limit)
        if fault and fault.kind == "error":
            root = "eSearchResult" if endpoint == "esearch" else "eFetchResult"
            return self._send(200, f"<{root}><ERROR>{_esc(fault.message)}</ERROR></{root}>\n".encode(), {}, limit)
        if fault and fault.kind == "expired":
            return self._send(200, replay.expired_body(params), {}, limit)
        if endpoint == "esearch":
            status, body = replay.esearch(params)
        elif endpoint == "efetch":
            status, body = replay.efetch(params)
        else:
            status, body = 404, b"<html>unknown E-utility</html>"
        if fault and fault.kind == "truncated":
            body = body[: max(1, len(body) // 2)]
        entry["status"] = status
        self._send(status, body, {}, limit)

    def _send(self, status: int, body: bytes, headers: dict, limit: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", headers.pop("Content-Type", "text/xml; charset=UTF-8"))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-RateLimit-Limit", limit)
        self.send_header("Access-Control-Expose-Headers", "X-RateLimit-Limit,X-RateLimit-Remaining")
        self.send_header("Cache-Control", "private")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


ReplayServer.handler = _Handler


def main() -> None:  # pragma: no cover - manual use: python tests/eutils_server.py
    with ReplayServer() as server:
        print(f"replay E-utilities at {server.url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    main()
