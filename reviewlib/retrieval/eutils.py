"""A polite client of NCBI's E-utilities (esearch and efetch on PubMed), written on requests.

Every request goes through one process-wide :class:`~reviewlib.retrieval.ratelimit.RateLimiter`
(3 requests per second, 10 with ``NCBI_API_KEY``) and one reused
:class:`requests.Session`.  Failures that may pass (HTTP 429 and 5xx, connection
errors, truncated or non-XML bodies, transient ``<ERROR>`` bodies) are retried
with exponential backoff and jitter, honouring ``Retry-After`` up to a cap
(``REVIEWLIB_EUTILS_MAX_RETRY_AFTER``, default 120 s; a longer wait stops with a
line saying when to run again).  The retry plumbing is shared with the
ClinicalTrials.gov client (:mod:`reviewlib.retrieval.http`).  An expired
history (``Cannot retrieve history data``) raises
:class:`~reviewlib.errors.HistoryExpiredError` so the caller can re-run esearch.

Configuration comes from the environment:

``REVIEWLIB_EUTILS_URL``
    The endpoint (default ``https://eutils.ncbi.nlm.nih.gov/entrez/eutils/``).
``NCBI_EMAIL``
    Sent with every request (NCBI asks every client for one).
``NCBI_API_KEY``
    Sent with every request; raises the rate to 10 per second.  It never
    appears in logs, error messages or saved files.
``REVIEWLIB_MAX_WAIT``, ``REVIEWLIB_CONNECT_TIMEOUT``, ``REVIEWLIB_READ_TIMEOUT``, ``REVIEWLIB_DEADLINE``
    The cap on any wait before a retry (120 s; a longer ``Retry-After`` stops
    the request with the time to come back; ``REVIEWLIB_EUTILS_MAX_RETRY_AFTER``
    overrides it for E-utilities only), the timeouts of one attempt (10 s to
    connect, 30 s between bytes) and of one request over all its attempts
    (300 s); see :mod:`reviewlib.retrieval.limits`.

The transport and the sleep are plain callables so tests can assert the retry
schedule against a local replay server.
"""
from __future__ import annotations

import logging
import os
import random as _random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import requests
from lxml import etree

from ..errors import ConfigError, EutilsError, HistoryExpiredError
from .http import HttpResponse  # noqa: F401  (re-exported: transports build it)
from . import limits
from .http import (DeadlineExceeded, GaveUp, RetryAfterTooLong, RetryPolicy, Transport,
                   connection_reason)
from .http import Retry as _Retry
from .http import retry_after_seconds as _retry_after
from .http import session_transport as _session_transport
from .http import env_number
from .ratelimit import RateLimiter, shared_limiter

logger = logging.getLogger(__name__)

DEFAULT_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
TOOL = "reviewlib"
#: PubMed's esearch/efetch cannot go past this many records of one search.
MAX_RECORDS = 9999
EMAIL_WARNING = "NCBI_EMAIL is not set: export it, NCBI asks every client for one"

#: XML parser that never downloads a DTD nor expands entities.
XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=True, remove_blank_text=False)

_EXPIRED = re.compile(r"Cannot retrieve history data|Unable to obtain query #", re.I)
#: <ERROR> texts that a retry cannot cure.
_PERMANENT = re.compile(
    r"cannot be larger than 9998|Invalid db name|ID list is empty|Neither query_key nor id|"
    r"Empty term and query_key|Invalid uid|Invalid query_key|Invalid WebEnv|Unknown (parameter|db)",
    re.I)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_SECRET = re.compile(r"(api_key=)[^&\s'\"]+", re.I)


def redact(text: Any) -> str:
    """Return ``text`` as a string with any ``api_key=...`` value replaced by ``***``."""
    return _SECRET.sub(r"\1***", str(text))


_SESSION: requests.Session | None = None


def shared_session() -> requests.Session:
    """The process-wide :class:`requests.Session` (kept-alive connections to NCBI)."""
    global _SESSION
    if _SESSION is None:
        _SESSION = requests.Session()
        _SESSION.headers["User-Agent"] = f"reviewlib (+requests {requests.__version__})"
    return _SESSION


def session_transport(session: requests.Session | None = None) -> Transport:
    """The default transport: one reused :class:`requests.Session` (default :func:`shared_session`).

    GET sends ``params`` in the query string, POST as a form body.
    """
    return _session_transport(session or shared_session())


@dataclass
class ESearchResult:
    """One esearch answer.

    Attributes
    ----------
    count : int
        Records matching the query (and date range).
    translation : str
        PubMed's ``QueryTranslation``: how it understood the query.
    webenv, query_key : str or None
        The history-server handle (``usehistory=y``).
    ids : list of str
        The PMIDs returned (only ``retmax`` of them).
    errors : list of str
        ``ErrorList`` items, e.g. ``"PhraseNotFound: abcXYZ"``.
    warnings : list of str
        ``WarningList`` items, e.g. ``"OutputMessage: No items found."``.
    """

    count: int
    translation: str
    webenv: str | None = None
    query_key: str | None = None
    ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        """Every ErrorList and WarningList item, for the user to see."""
        return self.errors + self.warnings


def parse_xml(body: bytes) -> etree._Element:
    """Parse an E-utilities body safely (no DTD download, no entities); raises ``etree.XMLSyntaxError``."""
    return etree.fromstring(body, XML_PARSER)


def parse_esearch(body: bytes) -> ESearchResult:
    """Parse an esearch XML body into an :class:`ESearchResult`."""
    root = parse_xml(body)
    count = root.findtext("Count")
    def items(tag: str) -> list[str]:
        out = []
        for parent in root.findall(tag):
            for child in parent:
                if isinstance(child.tag, str):
                    out.append(f"{child.tag}: {(child.text or '').strip()}")
        return out
    return ESearchResult(
        count=int(count) if count and count.strip().isdigit() else 0,
        translation=(root.findtext("QueryTranslation") or "").strip(),
        webenv=(root.findtext("WebEnv") or None),
        query_key=(root.findtext("QueryKey") or None),
        ids=[i.text.strip() for i in root.iter("Id") if i.text],
        errors=items("ErrorList"),
        warnings=items("WarningList"))


class EutilsClient:
    """A client of NCBI's E-utilities.

    Parameters
    ----------
    base_url : str, optional
        The endpoint; default ``REVIEWLIB_EUTILS_URL`` or NCBI's.
    email, api_key : str, optional
        Default ``NCBI_EMAIL`` and ``NCBI_API_KEY`` from the environment.
    transport : callable, optional
        ``transport(method, url, params, timeout) -> HttpResponse``; default a
        :class:`requests.Session`.
    sleep : callable, optional
        Used for backoff between retries (default :func:`time.sleep`).
    limiter : RateLimiter, optional
        Default the process-wide :func:`~reviewlib.retrieval.ratelimit.shared_limiter`.
    max_attempts : int, optional
        Attempts per request before giving up (default ``REVIEWLIB_EUTILS_ATTEMPTS`` or 6).
    backoff_base, backoff_max : float, optional
        The n-th retry waits ``min(backoff_max, backoff_base * 2**n)`` seconds,
        jittered between half and all of it, or ``Retry-After`` if longer
        (``backoff_base`` default ``REVIEWLIB_EUTILS_BACKOFF`` or 1 second).
    max_retry_after : float, optional
        Longest wait before a retry (default ``REVIEWLIB_EUTILS_MAX_RETRY_AFTER``, else
        ``REVIEWLIB_MAX_WAIT``, else 120 s): backoff is cut to it, and a longer
        ``Retry-After`` stops at once with a line saying when to run again.
    random : callable, optional
        Returns a float in [0, 1) for the jitter (default :func:`random.random`).
    timeout : float or (float, float), optional
        Seconds per HTTP attempt, or ``(connect, read)``; default
        ``REVIEWLIB_CONNECT_TIMEOUT`` and ``REVIEWLIB_READ_TIMEOUT`` (10 s, 30 s).
    deadline : float, optional
        Seconds one request may take over all attempts and waits (default
        ``REVIEWLIB_DEADLINE`` or 300 s).
    clock : callable, optional
        Monotonic seconds, for the deadline (default :func:`time.monotonic`).

    Examples
    --------
    >>> client = EutilsClient()                                          # doctest: +SKIP
    >>> found = client.esearch('statin[tiab] AND "heart failure"[tiab]')          # doctest: +SKIP
    >>> xml = client.efetch(found.webenv, found.query_key, 0, 500)       # doctest: +SKIP
    """

    def __init__(self, base_url: str | None = None, *, email: str | None = None,
                 api_key: str | None = None, transport: Transport | None = None,
                 sleep: Callable[[float], None] = time.sleep, limiter: RateLimiter | None = None,
                 max_attempts: int | None = None, backoff_base: float | None = None,
                 backoff_max: float = 60.0, max_retry_after: float | None = None,
                 random: Callable[[], float] = _random.random,
                 timeout: float | tuple[float, float] | None = None, deadline: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        url = base_url or os.environ.get("REVIEWLIB_EUTILS_URL") or DEFAULT_URL
        if not re.match(r"^https?://[^/\s]+", url):
            raise ConfigError(f"E-utilities endpoint {redact(url)!r} is not an http(s) URL: "
                              "set REVIEWLIB_EUTILS_URL to e.g. https://eutils.ncbi.nlm.nih.gov/entrez/eutils/")
        self.base_url = url if url.endswith("/") else url + "/"
        self.email = email if email is not None else (os.environ.get("NCBI_EMAIL") or None)
        self._api_key = api_key if api_key is not None else (os.environ.get("NCBI_API_KEY") or None)
        self.transport = transport or session_transport()
        self.sleep = sleep
        self.limiter = limiter or shared_limiter(with_api_key=bool(self._api_key))
        self.max_attempts = max(1, int(max_attempts if max_attempts is not None
                                       else env_number("REVIEWLIB_EUTILS_ATTEMPTS", 6)))
        self.backoff_base = float(backoff_base if backoff_base is not None
                                  else env_number("REVIEWLIB_EUTILS_BACKOFF", 1.0))
        self.backoff_max = backoff_max
        self.max_retry_after = float(max_retry_after if max_retry_after is not None
                                     else env_number("REVIEWLIB_EUTILS_MAX_RETRY_AFTER", limits.max_wait()))
        self.random = random
        env = limits.timeouts()
        self.timeout = timeout if timeout is not None else env.per_attempt
        self.deadline = float(deadline if deadline is not None else env.deadline)
        self.clock = clock
        self._warned_email = False
        if self.email and not _EMAIL.fullmatch(self.email):
            logger.warning("NCBI_EMAIL %r is not an e-mail address: NCBI may block clients without a working "
                           "one; export NCBI_EMAIL=you@example.org", self.email)

    def __repr__(self) -> str:
        return (f"EutilsClient(base_url={self.base_url!r}, email={self.email!r}, "
                f"api_key={'***' if self._api_key else None})")

    @property
    def has_api_key(self) -> bool:
        """Whether an API key is sent (the key itself is never exposed)."""
        return bool(self._api_key)

    # -- plumbing ------------------------------------------------------------
    def _params(self, params: Mapping[str, Any]) -> dict[str, str]:
        out = {k: str(v) for k, v in params.items() if v is not None}
        out["tool"] = TOOL
        if self.email:
            out["email"] = self.email
        elif not self._warned_email:
            logger.warning(EMAIL_WARNING)
            self._warned_email = True
        if self._api_key:
            out["api_key"] = self._api_key
        return out

    @property
    def effective_deadline(self) -> float:
        """The deadline, but never shorter than one wait the cap allows plus one attempt: a cap raised
        on purpose (``REVIEWLIB_EUTILS_MAX_RETRY_AFTER=100000``) is honoured."""
        per_attempt = sum(self.timeout) if isinstance(self.timeout, tuple) else float(self.timeout)
        return max(self.deadline, self.max_retry_after + per_attempt)

    @property
    def policy(self) -> RetryPolicy:
        """The retry policy from the client's current settings (see :class:`~reviewlib.retrieval.http.RetryPolicy`)."""
        return RetryPolicy(max_attempts=self.max_attempts, backoff_base=self.backoff_base,
                           backoff_max=min(self.backoff_max, self.max_retry_after),  # no wait past the cap
                           max_retry_after=self.max_retry_after, deadline=self.effective_deadline,
                           sleep=self.sleep, clock=self.clock, random=self.random)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        return self.policy.backoff(attempt, retry_after)

    def request(self, endpoint: str, params: Mapping[str, Any], *, method: str = "GET",
                root_tags: tuple[str, ...] = ()) -> bytes:
        """Send one E-utilities request with rate limiting and retries; return the XML body.

        Parameters
        ----------
        endpoint : str
            E.g. ``"esearch.fcgi"``.
        params : mapping
            Query parameters (tool, email and api_key are added).
        method : {"GET", "POST"}
        root_tags : tuple of str
            Root elements a good answer has (e.g. ``("PubmedArticleSet",)``);
            any other well-formed XML is treated as a transient error.

        Raises
        ------
        HistoryExpiredError
            The WebEnv expired; re-run esearch.
        EutilsError
            The request kept failing, or NCBI answered with an error a retry cannot cure.
        """
        url = self.base_url + endpoint
        sent = self._params(params)
        if self._api_key:
            method = "POST"     # the key travels in the body, never in a URL that something may log
        shown = {k: v for k, v in sent.items() if k != "api_key"}

        def attempt() -> bytes:
            logger.debug("%s %s %s", method, url, shown)
            return self._attempt(method, url, sent, root_tags)

        try:
            return self.policy.run(attempt, before=self.limiter.acquire, label=endpoint)
        except RetryAfterTooLong as exc:
            when = exc.retry_at()
            raise EutilsError(
                f"NCBI asks to wait {exc.seconds:.0f} s before the next request to {url} (more than the "
                f"{exc.cap:.0f} s this client waits; REVIEWLIB_MAX_WAIT): run the same command "
                f"again after {when} to resume", url=url, status=exc.last.status) from None
        except DeadlineExceeded as exc:
            reason = f"; last: {redact(exc.last.reason)}" if exc.last else ""
            raise EutilsError(
                f"{endpoint} at {url} gave no good answer within the {exc.deadline:.0f} s deadline "
                f"(REVIEWLIB_DEADLINE{reason}): check the network, then run the same command again to resume",
                url=url, status=exc.last.status if exc.last else None) from None
        except GaveUp as exc:
            last = exc.last
            body = last.body[:300].decode("utf-8", "replace") if last.body else None
            raise EutilsError(
                f"{endpoint} at {url} failed {self.max_attempts} times (last: {redact(last.reason)}): "
                "check the network and REVIEWLIB_EUTILS_URL, then run the same command again to resume",
                url=url, status=last.status, body=redact(body) if body else None) from None

    def _attempt(self, method: str, url: str, params: dict, root_tags: tuple[str, ...]) -> bytes:
        try:
            resp = self.transport(method, url, params, self.timeout)
        except (OSError, requests.RequestException) as exc:
            raise _Retry(f"connection error: {_connection_reason(exc)}") from None
        body = resp.body or b""
        status = resp.status
        text_start = body[:2000].decode("utf-8", "replace")
        if _EXPIRED.search(text_start) and "<PubmedArticle" not in text_start:
            raise HistoryExpiredError(f"NCBI history expired at {url}: {redact(_first_line(text_start))}",
                                      url=url, status=status, body=redact(text_start[:300]))
        if status == 429 or (text_start.lstrip().startswith("{") and "rate limit" in text_start.lower()):
            raise _Retry(f"HTTP {status} rate limit exceeded", status, body, _retry_after(resp.headers))
        if status >= 500 or status == 408:
            raise _Retry(f"HTTP {status}", status, body, _retry_after(resp.headers))
        if status != 200:
            raise EutilsError(f"{url} answered HTTP {status}: {redact(_first_line(text_start))}: "
                              "check the query and REVIEWLIB_EUTILS_URL", url=url, status=status,
                              body=redact(text_start[:300]))
        try:
            root = parse_xml(body)
        except etree.XMLSyntaxError as exc:
            raise _Retry(f"truncated or non-XML body ({len(body)} bytes: {exc})", status, body) from None
        error = root.find("ERROR") if root.tag != "ERROR" else root
        if error is not None:
            message = " ".join("".join(error.itertext()).split())
            if _PERMANENT.search(message):
                raise EutilsError(f"NCBI refused the request to {url}: {redact(message)}", url=url,
                                  status=status, body=redact(text_start[:300]))
            raise _Retry(f"<ERROR> {message}", status, body)
        if root_tags and root.tag not in root_tags:
            raise _Retry(f"unexpected XML root <{root.tag}>", status, body)
        return body

    # -- the E-utilities -------------------------------------------------------
    def esearch(self, term: str, *, db: str = "pubmed", mindate: str | None = None,
                maxdate: str | None = None, datetype: str | None = None, usehistory: bool = True,
                retmax: int = 0, retstart: int = 0, sort: str | None = None,
                log_messages: bool = True) -> ESearchResult:
        """Run esearch (``usehistory=y`` by default) and parse the answer.

        Every ErrorList/WarningList item (e.g. a phrase not found) is returned in
        the result and logged as a warning (at debug level if not ``log_messages``,
        e.g. for the date slices of a search already reported).  Long terms are sent by POST.
        """
        params = {"db": db, "term": term, "retmode": "xml", "retmax": retmax, "retstart": retstart,
                  "usehistory": "y" if usehistory else None, "sort": sort}
        if mindate or maxdate:
            params.update(mindate=mindate, maxdate=maxdate, datetype=datetype or "pdat")
        method = "POST" if len(term) > 1500 else "GET"
        body = self.request("esearch.fcgi", params, method=method, root_tags=("eSearchResult",))
        result = parse_esearch(body)
        for message in result.messages:
            logger.log(logging.WARNING if log_messages else logging.DEBUG,
                       "PubMed says about the query %r: %s", _short(term), message)
        return result

    def efetch(self, webenv: str, query_key: str, retstart: int, retmax: int, *,
               db: str = "pubmed") -> bytes:
        """Fetch ``retmax`` records from the history server, starting at ``retstart``; returns XML."""
        params = {"db": db, "query_key": query_key, "WebEnv": webenv, "retstart": retstart,
                  "retmax": retmax, "retmode": "xml"}
        return self.request("efetch.fcgi", params, root_tags=("PubmedArticleSet",))

    def efetch_ids(self, ids: list[str] | tuple[str, ...], *, db: str = "pubmed") -> bytes:
        """Fetch records by PMID (HTTP POST, so long ID lists fit); returns XML."""
        ids = [str(i).strip() for i in ids if str(i).strip()]
        if not ids:
            raise EutilsError("efetch_ids needs at least one PMID", url=self.base_url + "efetch.fcgi")
        params = {"db": db, "id": ",".join(ids), "retmode": "xml"}
        return self.request("efetch.fcgi", params, method="POST", root_tags=("PubmedArticleSet",))


def _connection_reason(exc: BaseException) -> str:
    """A short reason for a failed connection, e.g. ``[Errno 111] Connection refused`` (API key redacted)."""
    return redact(connection_reason(exc))


class _RedactFilter(logging.Filter):
    """Strips api_key values from records of loggers that print URLs (urllib3)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "api_key" in str(record.msg) or any("api_key" in str(a) for a in (record.args or ())):
            record.msg = redact(record.getMessage())
            record.args = None
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactFilter())


def _first_line(text: str) -> str:
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(text.split())[:200]


def _short(term: str, n: int = 80) -> str:
    term = " ".join(term.split())
    return term if len(term) <= n else term[: n - 3] + "..."


def count_articles(body: bytes) -> int:
    """Number of PubmedArticle and PubmedBookArticle elements in an efetch body."""
    root = parse_xml(body)
    return sum(1 for el in root if el.tag in ("PubmedArticle", "PubmedBookArticle"))
