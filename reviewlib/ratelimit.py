"""A sliding-window rate limiter shared by every E-utilities request of the process.

NCBI allows 3 requests per second per client (10 with an API key) and answers
HTTP 429 beyond that.  :class:`RateLimiter` guarantees that no more than
``max_calls`` calls of :meth:`RateLimiter.acquire` fall in any window of
``period`` seconds (a sliding window, not fixed one-second buckets).  It takes
``clock`` and ``sleep`` callables so tests can check it without waiting.

:func:`shared_limiter` returns the one limiter of the process; every
:class:`reviewlib.eutils.EutilsClient` uses it unless given another.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable

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


_SHARED: RateLimiter | None = None
_SHARED_LOCK = threading.Lock()


def shared_limiter(with_api_key: bool = False) -> RateLimiter:
    """The process-wide limiter for NCBI: 3 requests per second, 10 with an API key.

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
            _SHARED = RateLimiter(rate, DEFAULT_PERIOD)
        elif _SHARED.max_calls != rate:
            logger.debug("shared NCBI rate limiter set to %d requests per second", rate)
            _SHARED.set_rate(rate)
        return _SHARED
