"""A polite client of the ClinicalTrials.gov API v2 (``/studies`` search and ``/studies/{nctId}``).

Searches ask for the largest page the API gives (it silently caps ``pageSize``
at 1,000), follow ``nextPageToken`` until there is none, and check that the
studies received equal the ``totalCount`` the first page reported (the API
gives it only with ``countTotal=true`` and only on the first page).

Politeness: ClinicalTrials.gov publishes no rate limit (third parties report
about 50 requests a minute; robots.txt asks for a 1 s crawl delay), so by
default at most one request per second, shared by every process of the user
through a :class:`~reviewlib.ratelimit.FileRateLimiter` of its own file.
Failures that may pass (HTTP 429 and 5xx, dropped connections, timeouts,
truncated or non-JSON bodies) are retried with exponential backoff and jitter,
honouring ``Retry-After`` up to a cap; a longer ``Retry-After`` stops at once
with one line saying when to try again.  The API's 400 and 404 answers are
plain-text messages: they become a :class:`CtgovError` quoting the message and
saying what to do.

Configuration from the environment (arguments override it):

``REVIEWLIB_CTGOV_URL``
    The endpoint (default ``https://clinicaltrials.gov/api/v2/``).
``REVIEWLIB_CTGOV_RATE``
    Requests per second (default 1; e.g. 0.5 for one every two seconds).
``REVIEWLIB_CTGOV_RATE_FILE``
    The file the user's processes share their request times through
    (default ``reviewlib-ctgov-rate-<uid>`` in the temporary folder).
``REVIEWLIB_CTGOV_ATTEMPTS``, ``REVIEWLIB_CTGOV_BACKOFF``
    Attempts per request (default 6) and the first backoff in seconds (default 2).
``REVIEWLIB_CTGOV_MAX_RETRY_AFTER``
    Longest ``Retry-After`` waited for, in seconds (default ``REVIEWLIB_MAX_WAIT``, 120).
``REVIEWLIB_CTGOV_DEADLINE``
    Seconds allowed for one request over all its attempts (default ``REVIEWLIB_DEADLINE``, 300).
``REVIEWLIB_CTGOV_CONNECT_TIMEOUT``, ``REVIEWLIB_CTGOV_READ_TIMEOUT``
    Seconds to connect and to wait for data on a connection (defaults ``REVIEWLIB_CONNECT_TIMEOUT``,
    10, and ``REVIEWLIB_READ_TIMEOUT``, 30: :mod:`reviewlib.retrieval.limits`, shared with the
    E-utilities client); a server that accepts and never answers is a timed-out attempt, retried like a 503.

The transport and the sleep are plain callables so tests can assert the retry
schedule against the local stand-in server (tests/ctgov_server.py).
"""
from __future__ import annotations

import json
import logging
import os
import random as _random
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import requests

from ..errors import ConfigError, CtgovError
from . import limits
from .ratelimit import DEFAULT_PERIOD, FileRateLimiter, RateLimiter, fcntl
from .http import (env_number, DeadlineExceeded, GaveUp, HttpResponse, Retry, RetryAfterTooLong,
                   RetryPolicy, Transport, connection_reason, retry_after_seconds, session_transport)

logger = logging.getLogger(__name__)

DEFAULT_URL = "https://clinicaltrials.gov/api/v2/"
#: The API coerces any larger pageSize down to this.
MAX_PAGE_SIZE = 1000
#: Requests per second by default (robots.txt: Crawl-delay 1).
DEFAULT_RATE = 1.0
#: ``overallStatus`` values of API v2.0.5 (``Status`` enum).
STATUSES = ("ACTIVE_NOT_RECRUITING", "COMPLETED", "ENROLLING_BY_INVITATION", "NOT_YET_RECRUITING", "RECRUITING",
            "SUSPENDED", "TERMINATED", "WITHDRAWN", "AVAILABLE", "NO_LONGER_AVAILABLE",
            "TEMPORARILY_NOT_AVAILABLE", "APPROVED_FOR_MARKETING", "WITHHELD", "UNKNOWN")
#: The API's nctId pattern (OpenAPI v2.0.5).
NCT_PATTERN = re.compile(r"^[Nn][Cc][Tt]0*[1-9]\d{0,7}$")


# -- configuration -----------------------------------------------------------------
def ctgov_rate_file() -> Path:
    """The file the user's processes share their ClinicalTrials.gov request times through."""
    env = os.environ.get("REVIEWLIB_CTGOV_RATE_FILE")
    if env:
        return Path(env)
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"reviewlib-ctgov-rate-{uid}"


def rate_window(rate: float) -> tuple[int, float]:
    """``(max_calls, period)`` for ``rate`` requests per second (1 -> one call per 1.05 s window)."""
    if rate <= 0:
        raise ConfigError(f"ClinicalTrials.gov rate {rate!r} must be above 0 requests per second: give e.g. 1")
    if rate >= 1:
        return int(rate), DEFAULT_PERIOD
    return 1, DEFAULT_PERIOD / rate


_SHARED: dict[tuple, RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def ctgov_limiter(rate: float | None = None, path: str | os.PathLike | None = None) -> RateLimiter:
    """The process-wide ClinicalTrials.gov limiter (a :class:`FileRateLimiter` on POSIX).

    Parameters
    ----------
    rate : float, optional
        Requests per second (default ``REVIEWLIB_CTGOV_RATE`` or 1).
    path : path-like, optional
        The shared file (default :func:`ctgov_rate_file`).
    """
    rate = float(rate if rate is not None else env_number("REVIEWLIB_CTGOV_RATE", DEFAULT_RATE))
    calls, period = rate_window(rate)
    file = Path(path) if path is not None else ctgov_rate_file()
    key = (calls, period, str(file))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = (FileRateLimiter(file, calls, period) if fcntl is not None
                            else RateLimiter(calls, period))
        return _SHARED[key]


# -- search parameters ---------------------------------------------------------------
def search_params(term: str | None = None, *, cond: str | None = None, intr: str | None = None,
                  status: Sequence[str] | str | None = None, advanced: str | None = None,
                  page_size: int = MAX_PAGE_SIZE, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``/studies`` parameters of a search (without ``pageToken``).

    Parameters
    ----------
    term : str, optional
        ``query.term`` (Essie syntax, e.g. ``'statin AND "heart failure"'``).
    cond, intr : str, optional
        ``query.cond`` (conditions) and ``query.intr`` (interventions).
    status : str or sequence of str, optional
        ``filter.overallStatus`` values, e.g. ``["RECRUITING", "COMPLETED"]``
        (sent upper-case, joined with ``|``; the API checks them).
    advanced : str, optional
        ``filter.advanced``, e.g. ``"AREA[StartDate]RANGE[2020-01-01,MAX]"``.
    page_size : int
        Studies per page (the API caps it at 1,000).
    extra : mapping, optional
        Any other API parameter, passed as given.

    Raises
    ------
    CtgovError
        If no query or filter is given at all.
    """
    params: dict[str, str] = {}
    for key, value in (("query.term", term), ("query.cond", cond), ("query.intr", intr),
                       ("filter.advanced", advanced)):
        value = " ".join(str(value or "").split())
        if value:
            params[key] = value
    if status:
        values = [status] if isinstance(status, str) else list(status)
        values = [v.strip().upper() for s in values for v in re.split(r"[|,]", str(s)) if v.strip()]
        if values:
            params["filter.overallStatus"] = "|".join(values)
    if extra:
        params.update({str(k): str(v) for k, v in extra.items()})
    if not params:
        raise CtgovError("the registry search is empty: give a query (e.g. 'statin heart failure'), --cond, --intr, "
                         "--status or filter.advanced")
    params["countTotal"] = "true"
    params["pageSize"] = str(int(page_size))
    params["format"] = "json"
    return params


# -- the client --------------------------------------------------------------------------
def _advice(message: str) -> str:
    m = message.lower()
    if "unknown area name" in m:
        return "check the AREA[...] names (https://clinicaltrials.gov/data-api/about-api/search-areas)"
    if "unknown parameter" in m:
        return "remove or correct that parameter (see https://clinicaltrials.gov/data-api/api)"
    if "overallstatus" in m:
        return f"use statuses from: {', '.join(STATUSES)}"
    if "pagetoken" in m:
        return "give the nextPageToken of the page before, with the same query"
    if "nctid" in m or "filter.ids" in m or "incorrect format" in m:
        return "an NCT id is 'NCT' and 8 digits, e.g. NCT04146051"
    if "not found" in m:
        return "check the NCT id on https://clinicaltrials.gov (it may have been withdrawn or renamed)"
    if "parsing query" in m or "mismatched input" in m:
        return "check the query syntax (AND/OR/NOT upper-case, brackets and quotes balanced)"
    return "check the query and REVIEWLIB_CTGOV_URL"


class CtgovClient:
    """A client of the ClinicalTrials.gov API v2.

    Parameters
    ----------
    base_url : str, optional
        The endpoint; default ``REVIEWLIB_CTGOV_URL`` or ``https://clinicaltrials.gov/api/v2/``.
    transport : callable, optional
        ``transport(method, url, params, timeout) -> HttpResponse``; default a
        :class:`requests.Session`.
    sleep : callable, optional
        Used for backoff between retries (default :func:`time.sleep`).
    limiter : RateLimiter, optional
        Default :func:`ctgov_limiter` (``rate`` per second, shared by the user's processes).
    rate : float, optional
        Requests per second for the default limiter (default ``REVIEWLIB_CTGOV_RATE`` or 1).
    max_attempts : int, optional
        Attempts per request (default ``REVIEWLIB_CTGOV_ATTEMPTS`` or 6).
    backoff_base, backoff_max : float, optional
        The n-th retry waits ``min(backoff_max, backoff_base * 2**n)`` s jittered
        between half and all of it, or ``Retry-After`` if longer (base default
        ``REVIEWLIB_CTGOV_BACKOFF`` or 2 s; max 60 s).
    max_retry_after : float, optional
        Longest ``Retry-After`` waited for (default ``REVIEWLIB_CTGOV_MAX_RETRY_AFTER``, else
        ``REVIEWLIB_MAX_WAIT`` or 120 s).
    connect_timeout, read_timeout : float, optional
        Seconds to connect and to wait for each read of an answer (default
        ``REVIEWLIB_CTGOV_CONNECT_TIMEOUT``, else ``REVIEWLIB_CONNECT_TIMEOUT`` or 10;
        ``REVIEWLIB_CTGOV_READ_TIMEOUT``, else ``REVIEWLIB_READ_TIMEOUT`` or 30).
    deadline : float, optional
        Seconds for one request over all its attempts (default ``REVIEWLIB_CTGOV_DEADLINE``, else
        ``REVIEWLIB_DEADLINE`` or 300).
    random, clock : callable, optional
        Jitter source in [0, 1) and monotonic clock (for tests).

    Examples
    --------
    >>> client = CtgovClient()                                                # doctest: +SKIP
    >>> studies = client.search(search_params("statin", cond="heart failure"))         # doctest: +SKIP
    >>> study = client.study("NCT04146051")                                   # doctest: +SKIP
    """

    def __init__(self, base_url: str | None = None, *, transport: Transport | None = None,
                 sleep: Callable[[float], None] = time.sleep, limiter: RateLimiter | None = None,
                 rate: float | None = None, max_attempts: int | None = None,
                 backoff_base: float | None = None, backoff_max: float = 60.0,
                 max_retry_after: float | None = None, connect_timeout: float | None = None,
                 read_timeout: float | None = None, deadline: float | None = None,
                 random: Callable[[], float] = _random.random, clock: Callable[[], float] = time.monotonic):
        url = base_url or os.environ.get("REVIEWLIB_CTGOV_URL") or DEFAULT_URL
        if not re.match(r"^https?://[^/\s]+", url):
            raise ConfigError(f"ClinicalTrials.gov endpoint {url!r} is not an http(s) URL: "
                              f"set REVIEWLIB_CTGOV_URL to e.g. {DEFAULT_URL}")
        self.base_url = url if url.endswith("/") else url + "/"
        self.transport = transport or session_transport()
        self.limiter = limiter or ctgov_limiter(rate)
        shared = limits.timeouts()          # every client's limits (REVIEWLIB_DEADLINE, ...), then ctgov's own
        self.policy = RetryPolicy(
            max_attempts=max(1, int(max_attempts if max_attempts is not None
                                    else env_number("REVIEWLIB_CTGOV_ATTEMPTS", 6))),
            backoff_base=float(backoff_base if backoff_base is not None
                               else env_number("REVIEWLIB_CTGOV_BACKOFF", 2.0)),
            backoff_max=backoff_max,
            max_retry_after=float(max_retry_after if max_retry_after is not None
                                  else env_number("REVIEWLIB_CTGOV_MAX_RETRY_AFTER", limits.max_wait())),
            deadline=float(deadline if deadline is not None
                           else env_number("REVIEWLIB_CTGOV_DEADLINE", shared.deadline)),
            sleep=sleep, clock=clock, random=random)
        self.timeout = (
            float(connect_timeout if connect_timeout is not None
                  else env_number("REVIEWLIB_CTGOV_CONNECT_TIMEOUT", shared.connect)),
            float(read_timeout if read_timeout is not None
                  else env_number("REVIEWLIB_CTGOV_READ_TIMEOUT", shared.read)))

    def __repr__(self) -> str:
        return f"CtgovClient(base_url={self.base_url!r}, limiter={self.limiter!r})"

    @property
    def sleep(self) -> Callable[[float], None]:
        return self.policy.sleep

    # -- plumbing ------------------------------------------------------------------
    def request(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``base_url + path`` with rate limiting and retries; return the parsed JSON.

        See :meth:`request_body` for the errors.
        """
        return self.request_body(path, params)[1]

    def request_body(self, path: str, params: Mapping[str, Any] | None = None) -> tuple[bytes, Any]:
        """GET ``base_url + path`` with rate limiting and retries; return the body bytes and parsed JSON.

        Raises
        ------
        CtgovError
            A 400/404 (the API's own message, with what to do), or failures that
            retries did not cure (with when to try again if the server said).
        """
        url = self.base_url + path.lstrip("/")
        sent = {k: str(v) for k, v in (params or {}).items() if v is not None}
        label = f"ClinicalTrials.gov {path}"
        try:
            return self.policy.run(lambda: self._attempt(url, sent), before=self.limiter.acquire, label=label)
        except RetryAfterTooLong as exc:
            when = exc.retry_at()
            raise CtgovError(f"ClinicalTrials.gov asks to wait {exc.seconds:.0f} s before the next request "
                             f"(more than the {exc.cap:.0f} s this client waits; REVIEWLIB_CTGOV_MAX_RETRY_AFTER): "
                             f"run the same command again after {when} to resume", url=url,
                             status=exc.last.status, retry_at=when) from None
        except DeadlineExceeded as exc:
            reason = exc.last.reason if exc.last else "?"
            raise CtgovError(f"{url} gave no good answer within {exc.deadline:.0f} s (last: {reason}): check the "
                             "network and REVIEWLIB_CTGOV_URL, then run the same command again to resume",
                             url=url, status=exc.last.status if exc.last else None) from None
        except GaveUp as exc:
            body = exc.last.body[:300].decode("utf-8", "replace") if exc.last.body else None
            raise CtgovError(f"{url} failed {exc.attempts} times (last: {exc.last.reason}): check the network "
                             "and REVIEWLIB_CTGOV_URL, then run the same command again to resume",
                             url=url, status=exc.last.status, body=body) from None

    def _attempt(self, url: str, params: dict) -> Any:
        logger.debug("GET %s %s", url, params)
        try:
            resp: HttpResponse = self.transport("GET", url, params, self.timeout)
        except (OSError, requests.RequestException) as exc:
            raise Retry(f"connection error: {connection_reason(exc)}") from None
        body = resp.body or b""
        status = resp.status
        if status == 429:
            raise Retry("HTTP 429 too many requests", status, body, retry_after_seconds(resp.headers))
        if status >= 500 or status == 408:
            raise Retry(f"HTTP {status}", status, body, retry_after_seconds(resp.headers))
        if 400 <= status < 500:            # 400 and 404 are plain-text messages for the user
            message = " ".join(body[:2000].decode("utf-8", "replace").split())[:300] or f"HTTP {status}"
            raise CtgovError(f"ClinicalTrials.gov answered HTTP {status} to {url}: {message}: {_advice(message)}",
                             url=url, status=status, body=message)
        if status != 200:
            raise Retry(f"HTTP {status}", status, body)
        try:
            return body, json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise Retry(f"truncated or non-JSON body ({len(body)} bytes: {exc})", status, body) from None

    # -- the API -----------------------------------------------------------------------
    def page(self, params: Mapping[str, str], page_token: str | None = None) -> dict:
        """One ``/studies`` page: ``{"studies": [...], "nextPageToken"?, "totalCount"?}``."""
        return self.page_body(params, page_token)[1]

    def page_body(self, params: Mapping[str, str], page_token: str | None = None) -> tuple[bytes, dict]:
        """One ``/studies`` page as ``(body bytes, parsed page)`` (the bytes are what the cache keeps)."""
        sent = dict(params)
        if page_token:
            sent["pageToken"] = page_token
        body, data = self.request_body("studies", sent)
        if not isinstance(data, dict) or not isinstance(data.get("studies"), list):
            raise CtgovError(f"ClinicalTrials.gov answered {self.base_url}studies with JSON that is not a page of "
                             "studies (no 'studies' list): check REVIEWLIB_CTGOV_URL points at the API v2",
                             url=self.base_url + "studies")
        return body, data

    def pages(self, params: Mapping[str, str], page_token: str | None = None) -> Iterator[tuple[str | None, dict]]:
        """Yield ``(token that asked for it, page)`` from ``page_token`` (None: the first page) to the last."""
        token = page_token
        seen: set[str] = set()
        while True:
            data = self.page(params, token)
            yield token, data
            token = data.get("nextPageToken") or None
            if token is None:
                return
            if token in seen:
                raise CtgovError(f"ClinicalTrials.gov returned page token {token!r} twice: the search would loop; "
                                 "run it again later", url=self.base_url + "studies")
            seen.add(token)

    def search(self, params: Mapping[str, str]) -> list[dict]:
        """Every study of a search (all pages), checked against ``totalCount``.

        Raises
        ------
        CtgovError
            If the studies received differ from the ``totalCount`` of the first page.
        """
        studies: list[dict] = []
        total = None
        for token, data in self.pages(params):
            if token is None:
                total = data.get("totalCount")
            studies.extend(data["studies"])
        check_total(len(studies), total, self.base_url + "studies")
        return studies

    def study(self, nct_id: str) -> dict:
        """One study by NCT id (``/studies/{nctId}``); the API's 400/404 message becomes a :class:`CtgovError`."""
        nct = str(nct_id).strip()
        return self.request(f"studies/{nct}", {"format": "json"})


def check_total(received: int, total: int | None, url: str) -> None:
    """Raise :class:`CtgovError` unless ``received`` equals the search's ``totalCount`` (if it gave one)."""
    if total is not None and int(total) != received:
        raise CtgovError(f"ClinicalTrials.gov counted {total} studies for the search but {received} arrived: the "
                         "registry may have changed while paging; run the search again with --refresh", url=url)
