"""No endless waits (issue 13): capped Retry-After and backoff, timeouts and a deadline from the environment.

Real HTTP to the replay server (tests/eutils_server.py); sleeps go to a recorder
and the deadline's clock is advanced by that recorder, so nothing really waits
except the hold fault's read timeout (under a second).
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reviewlib.errors import ConfigError, EutilsError
from reviewlib.retrieval import limits
from reviewlib.retrieval.eutils import EutilsClient
from reviewlib.retrieval.ratelimit import RateLimiter

EMAIL = "reviewer@example.org"


class FakeTime:
    """A sleep that records its calls and moves a fake monotonic clock on by them."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.calls: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def client_for(server, t: FakeTime, **kwargs) -> EutilsClient:
    kwargs.setdefault("limiter", RateLimiter(1000, 1.0))
    kwargs.setdefault("random", lambda: 0.5)
    return EutilsClient(server.url, email=EMAIL, sleep=t.sleep, clock=t.clock, **kwargs)


def test_defaults_and_environment(monkeypatch):
    for name in ("REVIEWLIB_MAX_WAIT", "REVIEWLIB_CONNECT_TIMEOUT", "REVIEWLIB_READ_TIMEOUT", "REVIEWLIB_DEADLINE"):
        monkeypatch.delenv(name, raising=False)
    assert limits.max_wait() == 120.0
    assert limits.timeouts() == (10.0, 30.0, 300.0)
    monkeypatch.setenv("REVIEWLIB_MAX_WAIT", "5")
    monkeypatch.setenv("REVIEWLIB_READ_TIMEOUT", "2.5")
    assert limits.max_wait() == 5.0 and limits.timeouts().per_attempt == (10.0, 2.5)
    monkeypatch.setenv("REVIEWLIB_READ_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match=r"REVIEWLIB_READ_TIMEOUT='soon' is not a number of seconds"):
        limits.timeouts()
    monkeypatch.setenv("REVIEWLIB_READ_TIMEOUT", "0")
    with pytest.raises(ConfigError, match="must be a positive number"):
        limits.timeouts()


def test_retry_after_of_a_day_is_not_waited_for_and_says_when_to_retry(eutils_server, monkeypatch):
    monkeypatch.delenv("REVIEWLIB_MAX_WAIT", raising=False)
    monkeypatch.delenv("REVIEWLIB_EUTILS_MAX_RETRY_AFTER", raising=False)
    eutils_server.add_fault("rate-limit", "esearch", retry_after="86400")
    t = FakeTime()
    client = client_for(eutils_server, t)
    with pytest.raises(EutilsError) as err:
        client.esearch("lupus")
    message = str(err.value)
    assert t.calls == []                                   # not one second slept
    assert len(eutils_server.log) == 1                     # and no second request
    assert "asks to wait 86400 s" in message and "more than the 120 s this client waits; REVIEWLIB_MAX_WAIT" in message
    assert re.search(r"run the same command again after \d{4}-\d\d-\d\d \d\d:\d\d UTC", message)
    assert "\n" not in message


def test_retry_after_within_the_cap_is_honoured_and_backoff_is_capped(eutils_server):
    eutils_server.add_fault("rate-limit", "esearch", retry_after="90")
    t = FakeTime()
    client = client_for(eutils_server, t, max_retry_after=20, backoff_base=64, backoff_max=600, deadline=1000)
    with pytest.raises(EutilsError, match="asks to wait 90 s"):
        client.esearch("lupus")                              # 90 > the 20 s cap given to the client
    eutils_server.log.clear()
    eutils_server.add_fault("status", "esearch", status=503)
    eutils_server.add_fault("status", "esearch", status=502)
    assert client.esearch("lupus").count == 28
    assert t.calls == [15.0, 15.0]        # 64 s and 128 s ceilings cut to the 20 s cap, then jittered (0.5)


def test_deadline_stops_retries_that_would_end_past_it(eutils_server):
    for _ in range(4):
        eutils_server.add_fault("status", "efetch", status=500)
    t = FakeTime()
    client = client_for(eutils_server, t, backoff_base=4, max_attempts=6, deadline=10, max_retry_after=5,
                        timeout=(1.0, 1.0))
    found = client.esearch("lupus")
    with pytest.raises(EutilsError) as err:
        client.efetch(found.webenv, found.query_key, 0, 5)
    assert t.calls == [3.0, 3.75]         # 4 s then 8 s ceilings, cut to 5 s; the third wait would pass 10 s
    assert "within the 10 s deadline (REVIEWLIB_DEADLINE; last: HTTP 500)" in str(err.value)
    assert sum(1 for r in eutils_server.log if r["endpoint"] == "efetch") == 3


def test_the_general_cap_applies_to_eutils_unless_its_own_is_set(monkeypatch):
    monkeypatch.setenv("REVIEWLIB_MAX_WAIT", "30")
    monkeypatch.delenv("REVIEWLIB_EUTILS_MAX_RETRY_AFTER", raising=False)
    assert EutilsClient("http://127.0.0.1:9/").max_retry_after == 30.0
    monkeypatch.setenv("REVIEWLIB_EUTILS_MAX_RETRY_AFTER", "45")
    assert EutilsClient("http://127.0.0.1:9/").max_retry_after == 45.0


def test_a_server_that_never_answers_costs_the_read_timeout_per_attempt(eutils_server, monkeypatch):
    monkeypatch.setenv("REVIEWLIB_READ_TIMEOUT", "0.4")
    holds = [eutils_server.add_fault("hold", "esearch") for _ in range(2)]
    t = FakeTime()
    client = client_for(eutils_server, t, max_attempts=2, backoff_base=0.01)
    assert client.timeout == (10.0, 0.4)
    started = time.monotonic()
    try:
        with pytest.raises(EutilsError, match=r"failed 2 times \(last: connection error: timed out\)"):
            client.esearch("lupus")
    finally:
        for h in holds:
            h.release.set()
    assert time.monotonic() - started < 30                  # not 2 x 120 s (generous bound, machine is shared)
    assert all(h.reached.is_set() for h in holds)


def test_fetch_command_with_a_day_long_retry_after_is_one_line(eutils_server, tmp_path):
    eutils_server.add_fault("rate-limit", "esearch", retry_after="86400")
    env = {"REVIEWLIB_EUTILS_URL": eutils_server.url, "NCBI_EMAIL": EMAIL, "PATH": "/usr/bin:/bin",
           "REVIEWLIB_RATE_FILE": str(tmp_path / "rate"), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "reviewlib", "fetch", "lupus[tiab]", "--out", str(tmp_path / "out"),
                           "--no-progress"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("reviewlib fetch: error: NCBI asks to wait 86400 s") and "REVIEWLIB_MAX_WAIT" in lines[-1]
