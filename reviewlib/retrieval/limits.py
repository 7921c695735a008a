"""How long reviewlib's web clients may wait: one place for every client (E-utilities, registries).

Settings come from the environment, so a user can tune them without code:

``REVIEWLIB_MAX_WAIT`` (default 120 s)
    The longest single wait before a retry.  A backoff is cut to it; a server
    asking (``Retry-After``) for longer is not waited for: the request stops
    with one line that says when to run the command again.
``REVIEWLIB_CONNECT_TIMEOUT`` (default 10 s)
    Seconds to open a connection.
``REVIEWLIB_READ_TIMEOUT`` (default 30 s)
    Seconds to wait for the server between bytes of an answer.  A server that
    accepts and never answers costs this long per attempt, not for ever.
``REVIEWLIB_DEADLINE`` (default 300 s)
    Seconds one request may take over all its attempts and waits; a retry that
    would end past it is not made.

Clients call :func:`max_wait` and :func:`timeouts` when they are created.
"""
from __future__ import annotations

import datetime as dt
import os
import time
from typing import NamedTuple

from ..errors import ConfigError

DEFAULT_MAX_WAIT = 120.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_DEADLINE = 300.0


class Timeouts(NamedTuple):
    """Connect and read timeouts of one attempt, and the deadline of one request (all seconds)."""

    connect: float
    read: float
    deadline: float

    @property
    def per_attempt(self) -> tuple[float, float]:
        """``(connect, read)``, as :mod:`requests` takes it."""
        return (self.connect, self.read)


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number of seconds: unset it or give e.g. {default:g}") from None
    if not number > 0 or number == float("inf"):
        raise ConfigError(f"{name}={value!r} must be a positive number of seconds: give e.g. {default:g}")
    return number


def max_wait() -> float:
    """The longest wait before a retry, in seconds (``REVIEWLIB_MAX_WAIT``, default 120)."""
    return _seconds("REVIEWLIB_MAX_WAIT", DEFAULT_MAX_WAIT)


def timeouts() -> Timeouts:
    """Connect and read timeouts and the per-request deadline from the environment (see module docs)."""
    return Timeouts(_seconds("REVIEWLIB_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT),
                    _seconds("REVIEWLIB_READ_TIMEOUT", DEFAULT_READ_TIMEOUT),
                    _seconds("REVIEWLIB_DEADLINE", DEFAULT_DEADLINE))


def retry_time(seconds: float, now: float | None = None) -> str:
    """When ``seconds`` from now is, for a user: ``"14:05 UTC"``, with the date if not today."""
    now = time.time() if now is None else now
    when = dt.datetime.fromtimestamp(now + seconds, dt.timezone.utc)
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    return when.strftime("%H:%M UTC" if when.date() == today else "%Y-%m-%d %H:%M UTC")
