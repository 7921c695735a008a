"""What every stand-in web server of the tests shares: a real HTTP server on 127.0.0.1, a queue of
faults to inject, a log of the requests it was sent, and the politeness checks over that log.

:class:`eutils_server.ReplayServer` (NCBI E-utilities) and :class:`ctgov_server.CtgovServer`
(ClinicalTrials.gov API v2) subclass it with their endpoints and corpora.
"""
from __future__ import annotations

import collections
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StandInServer:
    """Start with :meth:`start` (or ``with``), point a client at :attr:`url`, inspect :attr:`log`.

    Subclasses set ``handler`` (their request handler class), ``handler_attr`` (the name under which
    the handler finds this server) and ``url_path`` (the API's base path), and implement
    ``requests(kind=None)`` over their log entries, each of which has a monotonic ``time``.
    """

    handler: type[BaseHTTPRequestHandler]
    handler_attr = "stand_in"
    url_path = "/"

    def __init__(self) -> None:
        self.faults: collections.deque = collections.deque()
        self.log: list[dict] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _queue(self, fault: Any) -> Any:
        with self._lock:
            self.faults.append(fault)
        return fault

    def start(self):
        handler = type("Handler", (self.handler,), {self.handler_attr: self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            for f in self.faults:
                f.release.set()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give the client (ends with '/')."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{self.url_path}"

    def requests(self, kind: str | None = None) -> list[dict]:  # pragma: no cover - subclasses answer
        raise NotImplementedError

    def _times(self, since: int) -> list[float]:
        return sorted(r["time"] for r in self.requests()[since:])

    def max_in_window(self, window: float = 1.0, since: int = 0) -> int:
        """The most requests that arrived within any ``window`` seconds (sliding).

        ``since`` skips the first requests of the log, to look at one process's run.
        """
        times = self._times(since)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def min_gap(self, since: int = 0) -> float:
        """The shortest time between two consecutive requests (inf with fewer than two)."""
        times = self._times(since)
        return min((b - a for a, b in zip(times, times[1:])), default=float("inf"))
