"""The HTTP plumbing shared by reviewlib's web clients (E-utilities, ClinicalTrials.gov).

One job: send a request through a plain-callable transport and decide, for each
failure, whether to retry and how long to wait.  The clients on top of it only
say what a good answer looks like.

* :class:`HttpResponse` and :data:`Transport`: what a transport returns and its
  signature ``transport(method, url, params, timeout) -> HttpResponse``; the
  default :func:`session_transport` is one reused :class:`requests.Session`.
* :func:`retry_after_seconds`: ``Retry-After`` as seconds (delta or HTTP date).
* :class:`RetryPolicy`: exponential backoff with jitter, ``Retry-After`` honoured
  up to a cap (a longer wait stops with a :class:`RetryAfterTooLong` that says
  when to come back), and a total deadline over all attempts.
* :class:`Retry`: raised by a client's per-attempt check to ask for another try.
* :func:`connection_reason`: a short reason for a failed connection.

The sleep and the clock are plain callables so tests assert the retry schedule
without waiting.
"""
from __future__ import annotations

import datetime as dt
import email.utils
import logging
import os
import random as _random
import re
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import requests

from ..errors import ConfigError

logger = logging.getLogger(__name__)

#: Longest ``Retry-After`` honoured by default, in seconds; a server asking for more is not waited for.
DEFAULT_MAX_RETRY_AFTER = 120.0


@dataclass
class HttpResponse:
    """What a transport returns: status, headers (case-insensitive mapping) and body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes


#: A transport: ``transport(method, url, params, timeout) -> HttpResponse``; ``timeout`` is seconds or a
#: ``(connect, read)`` pair.  It raises ``OSError`` or ``requests.RequestException`` when the connection fails.
Transport = Callable[[str, str, dict, "float | tuple[float, float]"], HttpResponse]


def env_number(name: str, default: float) -> float:
    """A non-negative number from environment variable ``name`` (``default`` when unset).

    Raises
    ------
    ConfigError
        The value is not a number, or is negative: one line naming the variable.
    """
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number: unset it or give e.g. {default:g}") from None
    if number < 0:
        raise ConfigError(f"{name}={value!r} is negative: give e.g. {default:g}")
    return number


def session_transport(session: requests.Session | None = None, user_agent: str | None = None) -> Transport:
    """A transport on one reused :class:`requests.Session` (a new one if not given).

    GET sends ``params`` in the query string, POST as a form body.
    """
    if session is None:
        session = requests.Session()
        session.headers["User-Agent"] = user_agent or f"reviewlib (+requests {requests.__version__})"

    def transport(method: str, url: str, params: dict, timeout) -> HttpResponse:
        if method == "POST":
            resp = session.post(url, data=params, timeout=timeout)
        else:
            resp = session.get(url, params=params, timeout=timeout)
        return HttpResponse(resp.status_code, resp.headers, resp.content)

    transport.session = session  # type: ignore[attr-defined]
    return transport


def retry_after_seconds(headers: Mapping[str, str] | None, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` in seconds (a number, or an HTTP date relative to ``now()``); None if absent or unreadable."""
    value = headers.get("Retry-After") if headers else None
    if not value:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


class Retry(Exception):
    """Raised by a per-attempt check: this attempt failed in a way worth retrying.

    Parameters
    ----------
    reason : str
        Short text for logs and the final error, e.g. ``"HTTP 502"``.
    status : int, optional
        HTTP status, if an answer came.
    body : bytes
        The answer's body (its start goes into the final error, for diagnosis).
    retry_after : float, optional
        Seconds the server asked to wait (``Retry-After``).
    """

    def __init__(self, reason: str, status: int | None = None, body: bytes = b"",
                 retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.body = body
        self.retry_after = retry_after


class RetryAfterTooLong(Exception):
    """The server asked to wait longer than the cap (``seconds`` > ``cap``)."""

    def __init__(self, seconds: float, cap: float, last: Retry):
        super().__init__(f"asked to wait {seconds:.0f} s, more than the {cap:.0f} s cap")
        self.seconds = seconds
        self.cap = cap
        self.last = last

    def retry_at(self, now: Callable[[], float] = time.time) -> str:
        """When to try again, as ``HH:MM UTC`` (with the date if not today)."""
        when = dt.datetime.fromtimestamp(now() + self.seconds, dt.timezone.utc)
        today = dt.datetime.fromtimestamp(now(), dt.timezone.utc).date()
        return when.strftime("%H:%M UTC" if when.date() == today else "%Y-%m-%d %H:%M UTC")


class DeadlineExceeded(Exception):
    """The total time allowed for one request (all its attempts) ran out."""

    def __init__(self, deadline: float, last: Retry | None):
        super().__init__(f"no good answer within {deadline:.0f} s")
        self.deadline = deadline
        self.last = last


class GaveUp(Exception):
    """Every attempt failed; ``last`` is the last failure."""

    def __init__(self, attempts: int, last: Retry):
        super().__init__(f"failed {attempts} times (last: {last.reason})")
        self.attempts = attempts
        self.last = last


@dataclass
class RetryPolicy:
    """When and how long to retry.

    The n-th retry (0-based) waits ``min(backoff_max, backoff_base * 2**n)``
    seconds jittered between half and all of it, or the server's
    ``Retry-After`` if longer.  A ``Retry-After`` above ``max_retry_after`` is
    not waited for: :meth:`run` raises :class:`RetryAfterTooLong`.  With a
    ``deadline``, a wait that would end past it raises :class:`DeadlineExceeded`.

    Parameters
    ----------
    max_attempts : int
        Attempts per request, the first included.
    backoff_base, backoff_max : float
        Seconds, see above.
    max_retry_after : float
        The cap on ``Retry-After`` (default :data:`DEFAULT_MAX_RETRY_AFTER`).
    deadline : float, optional
        Seconds allowed for one request over all its attempts and waits.
    sleep, clock, random : callable
        ``sleep(seconds)``, ``clock() -> seconds`` (monotonic), ``random() -> [0, 1)``.
    """

    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    deadline: float | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    random: Callable[[], float] = _random.random

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        delay = ceiling / 2 + self.random() * ceiling / 2
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def run(self, attempt: Callable[[], bytes], *, before: Callable[[], None] | None = None,
            label: str = "request"):
        """Call ``attempt()`` until it returns, retrying on :class:`Retry`.

        ``before()`` runs before every attempt (e.g. the rate limiter's acquire).

        Raises
        ------
        GaveUp, RetryAfterTooLong, DeadlineExceeded
            For the client to turn into its own one-line error.
        """
        start = self.clock()
        last: Retry | None = None
        for n in range(self.max_attempts):
            if n:
                assert last is not None
                if last.retry_after is not None and last.retry_after > self.max_retry_after:
                    raise RetryAfterTooLong(last.retry_after, self.max_retry_after, last)
                delay = self.backoff(n - 1, last.retry_after)
                if self.deadline is not None and self.clock() - start + delay > self.deadline:
                    raise DeadlineExceeded(self.deadline, last)
                logger.warning("%s failed (%s); retry %d of %d in %.1f s", label, last.reason, n,
                               self.max_attempts - 1, delay)
                self.sleep(delay)
            if before is not None:
                before()
            try:
                return attempt()
            except Retry as exc:
                last = exc
        assert last is not None
        if last.retry_after is not None and last.retry_after > self.max_retry_after:
            raise RetryAfterTooLong(last.retry_after, self.max_retry_after, last)
        raise GaveUp(self.max_attempts, last)


def connection_reason(exc: BaseException) -> str:
    """A short reason for a failed connection, e.g. ``[Errno 111] Connection refused``."""
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if m:
        return m.group(0).strip()
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection closed before the whole body arrived"
    short = text if len(text) < 160 else text[:157] + "..."
    return f"{type(exc).__name__}: {short}"
