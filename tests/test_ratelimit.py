"""The sliding-window rate limiter, checked on a fake clock (no waiting), and shared by processes."""
from __future__ import annotations

import random
import subprocess
import sys
import threading

import pytest

from reviewlib.retrieval.eutils import EutilsClient
from reviewlib.retrieval.ratelimit import FileRateLimiter, RateLimiter, shared_limiter


class FakeClock:
    """A clock that only moves when the limiter sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.lock = threading.Lock()
        self.local = threading.local()   # the last time each thread read: its acquisition time

    def __call__(self) -> float:
        self.local.last = self.now
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)
            self.now += seconds


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window - 1e-6:   # float sums like 1.7 - 0.7
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_three_free_calls_then_the_fourth_waits_for_the_oldest_to_leave_the_window():
    clock = FakeClock()
    limiter = RateLimiter(3, 1.0, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire() for _ in range(4)]
    assert waits == [0.0, 0.0, 0.0, 1.0]
    assert clock.sleeps == [1.0]
    assert clock.now == 1.0


def test_window_slides_instead_of_resetting_each_whole_second():
    # Three calls at t=0.9; a fixed one-second bucket would allow a fourth at t=1.1.
    clock = FakeClock()
    limiter = RateLimiter(3, 1.0, clock=clock, sleep=clock.sleep)
    clock.now = 0.9
    for _ in range(3):
        limiter.acquire()
    clock.now = 1.1
    waited = limiter.acquire()
    assert waited == pytest.approx(0.8)
    assert clock.now == pytest.approx(1.9)


def test_no_window_ever_holds_more_than_the_allowance_under_irregular_calls():
    clock = FakeClock()
    limiter = RateLimiter(3, 1.0, clock=clock, sleep=clock.sleep)
    rng = random.Random(3)
    stamps = []
    for _ in range(200):
        clock.now += rng.choice([0.0, 0.0, 0.05, 0.3, 0.7, 1.2])
        limiter.acquire()
        stamps.append(clock.now)
    assert max_in_window(stamps, 1.0) == 3
    assert max_in_window(stamps, 0.999) <= 3


def test_threads_sharing_one_limiter_stay_within_ten_per_window():
    clock = FakeClock()
    limiter = RateLimiter(10, 1.0, clock=clock, sleep=clock.sleep)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(15):
            limiter.acquire()
            with lock:
                stamps.append(clock.local.last)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 60
    assert max_in_window(stamps, 1.0) == 10


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        RateLimiter(0, 1.0)
    with pytest.raises(ValueError):
        RateLimiter(3, 0)


def test_shared_limiter_is_one_object_set_to_3_or_10_per_second(monkeypatch):
    monkeypatch.setenv("NCBI_EMAIL", "reviewer@example.org")
    monkeypatch.delenv("NCBI_API_KEY", raising=False)
    plain = EutilsClient("http://127.0.0.1:9/")
    assert plain.limiter is shared_limiter()
    assert plain.limiter.max_calls == 3
    keyed = EutilsClient("http://127.0.0.1:9/", api_key="0123456789abcdef0123456789abcdef0123")
    assert keyed.limiter is plain.limiter
    assert keyed.limiter.max_calls == 10
    shared_limiter(with_api_key=False)   # leave the process-wide limiter as found


# -- shared by processes through a file ------------------------------------------------------
def test_file_limiters_on_one_file_share_one_window(tmp_path):
    clock = FakeClock()
    path = tmp_path / "rate"
    first = FileRateLimiter(path, 3, 1.0, clock=clock, sleep=clock.sleep)
    second = FileRateLimiter(path, 3, 1.0, clock=clock, sleep=clock.sleep)   # another process's view
    assert [first.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert second.acquire() == pytest.approx(1.0)      # the window is full of the first one's calls
    assert clock.now == pytest.approx(1.0)
    assert path.read_text().split() == ["1.000000"]    # calls out of the window are dropped from the file


def test_file_limiter_ignores_a_damaged_file_and_future_times(tmp_path):
    clock = FakeClock()
    clock.now = 100.0
    path = tmp_path / "rate"
    path.write_text("not a time\n\x00garbage\n500.0\n500.0\n500.0\n")   # 500: a clock that was set back
    limiter = FileRateLimiter(path, 3, 1.0, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]


WORKER = """
import sys, time
from reviewlib.retrieval.ratelimit import FileRateLimiter
limiter = FileRateLimiter(sys.argv[1], 3, 1.0)
for _ in range(4):
    limiter.acquire()
    print(repr(time.time()), flush=True)
"""


def test_processes_together_keep_to_the_rate(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "rate")], stdout=subprocess.PIPE,
                              text=True) for _ in range(3)]
    times = sorted(float(line) for p in procs for line in p.communicate(timeout=60)[0].split())
    assert len(times) == 12 and all(p.returncode == 0 for p in procs)
    # any 4 consecutive calls span at least the window: never more than 3 in one second, across processes
    assert min(b - a for a, b in zip(times, times[3:])) >= 1.0 - 0.02


def test_shared_limiter_uses_the_configured_file(tmp_path, monkeypatch):
    import reviewlib.retrieval.ratelimit as ratelimit
    monkeypatch.setattr(ratelimit, "_SHARED", None)
    monkeypatch.setenv("REVIEWLIB_RATE_FILE", str(tmp_path / "shared-rate"))
    limiter = shared_limiter()
    assert isinstance(limiter, FileRateLimiter) and limiter.path == tmp_path / "shared-rate"
    limiter.acquire()
    assert len((tmp_path / "shared-rate").read_text().split()) == 1
