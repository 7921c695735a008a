"""A sliding-window rate limiter shared by every E-utilities request of the process.

NCBI allows 3 requests per second per client (10 with an API key) and answers
HTTP 429 beyond that.  :class:`RateLimiter` guarantees that no more than
``max_calls`` calls of :meth:`RateLimiter.acquire` fall in any window of
``period`` seconds (a sliding window, not fixed one-second buckets).  It takes
``clock`` and ``sleep`` callables so tests can check it without waiting.

:func:`shared_limiter` returns the one limiter of the process; every
:class:`reviewlib.retrieval.eutils.EutilsClient` uses it unless given another.  On POSIX
it is a :class:`FileRateLimiter`, whose window is kept in a small lock file, so
that all of a user's processes together keep to NCBI's rate: a fetch rerun the
moment after another was killed, or two fetches in two terminals, share it.
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from ..errors import ConfigError

try:  # POSIX only; elsewhere the shared limiter is per process
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

logger = logging.getLogger(__name__)

#: Requests per second NCBI allows without and with an API key.
RATE_WITHOUT_KEY = 3
RATE_WITH_KEY = 10
#: Safety margin added to the window: requests arrive at NCBI a little jittered.
DEFAULT_PERIOD = 1.05


class RateLimiter:
    """At most ``max_calls`` acquisitions in any sliding window of ``period`` seconds.

    Parameters
    ----------
    max_calls : int
        Calls allowed per window (3 for NCBI without key, 10 with).
    period : float
        Window length in seconds.
    clock : callable, optional
        Returns the current time in seconds (default :func:`time.monotonic`).
    sleep : callable, optional
        Sleeps the given seconds (default :func:`time.sleep`).

    Examples
    --------
    >>> t = [0.0]
    >>> limiter = RateLimiter(2, 1.0, clock=lambda: t[0], sleep=lambda s: t.__setitem__(0, t[0] + s))
    >>> [limiter.acquire() for _ in range(3)]
    [0.0, 0.0, 1.0]
    """

    def __init__(self, max_calls: int = RATE_WITHOUT_KEY, period: float = DEFAULT_PERIOD, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if max_calls < 1 or period <= 0:
            raise ValueError(f"rate limiter needs max_calls >= 1 and period > 0, got {max_calls}, {period}")
        self.max_calls = int(max_calls)
        self.period = float(period)
        self.clock = clock
        self.sleep = sleep
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def set_rate(self, max_calls: int) -> None:
        """Change the allowed calls per window (keeps the history of recent calls)."""
        with self._lock:
            self.max_calls = int(max_calls)

    def acquire(self) -> float:
        """Wait until one more call fits in the window, then record it.

        Returns
        -------
        float
            The seconds spent waiting.
        """
        waited = 0.0
        with self._lock:
            while True:
                now = self.clock()
                # (a tolerance of 1 ns: float rounding must not turn a sleep into a spin)
                while self._times and now - self._times[0] >= self.period - 1e-9:
                    self._times.popleft()
                if len(self._times) < self.max_calls:
                    self._times.append(now)
                    return waited
                delay = self.period - (now - self._times[0])
                if delay > 0:
                    self.sleep(delay)
                    waited += delay

    def __repr__(self) -> str:
        return f"RateLimiter(max_calls={self.max_calls}, period={self.period})"


class FileRateLimiter(RateLimiter):
    """A :class:`RateLimiter` whose window is shared by every process that uses the same file.

    The times of recent calls live in ``path`` (one float per line), read and
    rewritten under an exclusive ``flock``; the lock is released before sleeping.
    Times are wall-clock (``time.time``) so that processes agree on them.  A
    damaged file, or times in the future (a clock set back), are ignored.

    Parameters
    ----------
    path : path-like
        The shared file; created if missing.
    max_calls, period, clock, sleep
        As for :class:`RateLimiter` (``clock`` defaults to :func:`time.time`).
    """

    def __init__(self, path: str | os.PathLike, max_calls: int = RATE_WITHOUT_KEY,
                 period: float = DEFAULT_PERIOD, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        super().__init__(max_calls, period, clock=clock, sleep=sleep)
        self.path = Path(path)

    def _read(self, fh) -> list[float]:
        fh.seek(0)
        times = []
        for line in fh.read().decode("ascii", "replace").split():
            try:
                times.append(float(line))
            except ValueError:
                continue
        return times

    def acquire(self) -> float:
        """Wait until one more call fits in the shared window, then record it; returns the seconds waited."""
        waited = 0.0
        with self._lock:
            while True:
                with self._open() as fh:
                    fcntl.flock(fh, fcntl.LOCK_EX)
                    now = self.clock()
                    recent = sorted(t for t in self._read(fh) if 0 <= now - t < self.period - 1e-9)
                    if len(recent) < self.max_calls:
                        recent.append(now)
                        fh.seek(0)
                        fh.truncate()
                        fh.write("".join(f"{t:.6f}\n" for t in recent).encode("ascii"))
                        fh.flush()
                        return waited
                    delay = self.period - (now - recent[-self.max_calls])
                if delay > 0:
                    self.sleep(delay)
                    waited += delay

    def check(self) -> None:
        """Raise :class:`~reviewlib.errors.ConfigError` now if the rate file cannot be used."""
        with self._open():
            pass

    def _open(self):
        try:
            return open(self.path, "a+b")
        except OSError as exc:
            from ..oserrors import describe
            raise ConfigError(f"cannot use the NCBI rate file ({describe(exc)}): set REVIEWLIB_RATE_FILE to a "
                              "file in a folder you can write to, e.g. ~/.cache/reviewlib-ncbi-rate") from exc

    def __repr__(self) -> str:
        return f"FileRateLimiter({str(self.path)!r}, max_calls={self.max_calls}, period={self.period})"


def shared_rate_file() -> Path:
    """The file that the user's processes share their NCBI request times through.

    ``REVIEWLIB_RATE_FILE`` if set, else ``reviewlib-ncbi-rate-<uid>`` in the temporary folder.
    """
    env = os.environ.get("REVIEWLIB_RATE_FILE")
    if env:
        return Path(env)
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"reviewlib-ncbi-rate-{uid}"


_SHARED: RateLimiter | None = None
_SHARED_LOCK = threading.Lock()


def shared_limiter(with_api_key: bool = False) -> RateLimiter:
    """The process-wide limiter for NCBI: 3 requests per second, 10 with an API key.

    On POSIX it shares its window with the user's other processes through
    :func:`shared_rate_file` (see :class:`FileRateLimiter`).

    Parameters
    ----------
    with_api_key : bool
        Whether the caller sends an API key; the shared limiter is set to that
        caller's allowance (one process normally uses one key or none).
    """
    global _SHARED
    rate = RATE_WITH_KEY if with_api_key else RATE_WITHOUT_KEY
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = (FileRateLimiter(shared_rate_file(), rate, DEFAULT_PERIOD) if fcntl is not None
                       else RateLimiter(rate, DEFAULT_PERIOD))
        elif _SHARED.max_calls != rate:
            logger.debug("shared NCBI rate limiter set to %d requests per second", rate)
            _SHARED.set_rate(rate)
        return _SHARED
