"""The ClinicalTrials.gov API v2 client against the local stand-in (tests/ctgov_server.py) serving real bodies.

In-process tests inject a recording sleep (the retry schedule) and, where the
rate is not the point, a permissive limiter; the rate tests use the real
default limiter (1 request per second, a FileRateLimiter on a private file)
and check it against the server's log of arrival times.
"""
from __future__ import annotations

import json

import pytest

from ctgov_server import CtgovServer, error_body, load_studies, nct_of, renumbered, small_studies
from reviewlib.errors import ConfigError, ReviewlibError
from reviewlib.retrieval.ratelimit import FileRateLimiter, RateLimiter
from reviewlib.retrieval.ctgov import (CtgovClient, CtgovError, ctgov_limiter, rate_window, search_params)
from reviewlib.retrieval.http import RetryPolicy, retry_after_seconds


@pytest.fixture
def server():
    with CtgovServer() as s:
        yield s


@pytest.fixture(autouse=True)
def _private_ctgov_env(tmp_path, monkeypatch):
    """Each test's default limiter shares its window through a file of its own, not the user's."""
    monkeypatch.setenv("REVIEWLIB_CTGOV_RATE_FILE", str(tmp_path / "ctgov-rate"))
    for name in ("REVIEWLIB_CTGOV_URL", "REVIEWLIB_CTGOV_RATE", "REVIEWLIB_CTGOV_ATTEMPTS",
                 "REVIEWLIB_CTGOV_BACKOFF", "REVIEWLIB_CTGOV_MAX_RETRY_AFTER", "REVIEWLIB_CTGOV_DEADLINE",
                 "REVIEWLIB_CTGOV_CONNECT_TIMEOUT", "REVIEWLIB_CTGOV_READ_TIMEOUT", "REVIEWLIB_MAX_WAIT",
                 "REVIEWLIB_CONNECT_TIMEOUT", "REVIEWLIB_READ_TIMEOUT", "REVIEWLIB_DEADLINE"):
        monkeypatch.delenv(name, raising=False)


def fast_client(server, **kwargs) -> CtgovClient:
    sleeps: list[float] = []
    kwargs.setdefault("backoff_base", 1.0)
    client = CtgovClient(server.url, sleep=sleeps.append, limiter=RateLimiter(1000, 1.0), random=lambda: 0.5,
                         **kwargs)
    client.sleeps = sleeps
    return client


REAL_IDS = {nct_of(s) for s in load_studies()[0]}


# -- paging ---------------------------------------------------------------------------------
def test_pages_follow_next_page_token_until_none_and_match_total_count(server):
    client = fast_client(server)
    studies = client.search(search_params(None, cond="ALL", page_size=10))
    ids = [nct_of(s) for s in studies]
    assert len(ids) == len(set(ids)) == len(REAL_IDS) == 28 and set(ids) == REAL_IDS
    log = server.requests("studies")
    assert [r["params"].get("pageToken") is None for r in log] == [True, False, False]
    assert all(r["params"]["pageSize"] == "10" and r["params"]["query.cond"] == "ALL" for r in log)


def test_page_size_above_1000_is_capped_silently_and_the_client_asks_for_1000(tmp_path):
    corpus = renumbered(small_studies(), 2500)
    with CtgovServer(corpus) as server:
        client = fast_client(server)
        first = client.page(search_params(None, cond="ALL", page_size=5000))
        assert len(first["studies"]) == 1000 and first["totalCount"] == 2500 and first["nextPageToken"]
        second = client.page(search_params(None, cond="ALL", page_size=5000), first["nextPageToken"])
        assert "totalCount" not in second                 # only the first page carries it
        assert search_params("x")["pageSize"] == "1000" and search_params("x")["countTotal"] == "true"


def test_many_page_search_under_every_fault_gets_each_study_exactly_once():
    corpus = renumbered(small_studies(), 2500)
    with CtgovServer(corpus) as server:
        server.add_fault("rate-limit", retry_after="7")
        server.add_fault("status", status=502, when=lambda p: "pageToken" in p)
        server.add_fault("truncated", when=lambda p: "pageToken" in p)
        server.add_fault("disconnect", when=lambda p: "pageToken" in p)
        server.add_fault("non-json", when=lambda p: "pageToken" in p)
        server.add_fault("status", status=500, retry_after=None,
                         when=lambda p: p.get("pageToken") == CtgovServer.token_for(2000))
        sleeps: list[float] = []
        client = CtgovClient(server.url, sleep=sleeps.append, random=lambda: 0.5, backoff_base=2.0)
        client.sleeps = sleeps                   # backoff recorded, not slept; the real 1/s limiter waits
        studies = client.search(search_params(None, cond="ALL"))
        ids = [nct_of(s) for s in studies]
        assert len(ids) == len(set(ids)) == 2500 and set(ids) == {nct_of(s) for s in corpus}
        assert server.max_in_window(1.0) == 1                   # no rate violation, retries included
        faults = [r["fault"] for r in server.log]
        assert faults.count(None) == 3 and len(faults) == 9     # 3 pages, 6 failed attempts retried
        # page 1: 429 (Retry-After 7 beats the 1.5 s backoff); page 2: 502, truncated, disconnect, non-JSON,
        # then page 3: a 500 -- each request's backoff starts again at 2 s * 2**n * (0.5 + 0.5 * 0.5)
        assert client.sleeps == [7.0, 1.5, 3.0, 6.0, 12.0, 1.5]


def test_default_client_keeps_to_one_request_per_second(server, tmp_path):
    server.add_fault("status", status=503)
    client = CtgovClient(server.url, sleep=lambda s: None, backoff_base=0.0)   # the real default limiter
    assert isinstance(client.limiter, FileRateLimiter) and client.limiter.path == tmp_path / "ctgov-rate"
    assert (client.limiter.max_calls, client.limiter.period) == (1, 1.05)
    studies = client.search(search_params(None, cond="ALL", page_size=10))
    assert len(studies) == 28 and len(server.log) == 4
    assert server.max_in_window(1.0) == 1 and server.min_gap() >= 1.0


def test_two_clients_share_the_users_window_through_the_rate_file(server, tmp_path):
    a = CtgovClient(server.url, limiter=FileRateLimiter(tmp_path / "shared", 1, 1.05))
    b = CtgovClient(server.url, limiter=FileRateLimiter(tmp_path / "shared", 1, 1.05))
    for _ in range(2):
        a.study("NCT02552212")
        b.study("NCT02552212")
    assert server.max_in_window(1.0) == 1


def test_rate_is_configurable_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REVIEWLIB_CTGOV_RATE", "0.5")
    limiter = ctgov_limiter()
    assert (limiter.max_calls, limiter.period) == (1, 2.1)
    assert rate_window(3) == (3, 1.05)
    monkeypatch.setenv("REVIEWLIB_CTGOV_RATE", "fast")
    with pytest.raises(ConfigError, match="REVIEWLIB_CTGOV_RATE='fast' is not a number"):
        ctgov_limiter()
    with pytest.raises(ConfigError, match="above 0"):
        rate_window(0)


def test_endpoint_comes_from_reviewlib_ctgov_url(server, monkeypatch):
    monkeypatch.setenv("REVIEWLIB_CTGOV_URL", server.url.rstrip("/"))
    client = CtgovClient(limiter=RateLimiter(1000, 1.0))
    assert client.base_url == server.url
    assert nct_of(client.study("NCT06008288")) == "NCT06008288"
    monkeypatch.setenv("REVIEWLIB_CTGOV_URL", "clinicaltrials.gov")
    with pytest.raises(ConfigError, match="not an http"):
        CtgovClient()


# -- Retry-After, timeouts, deadline ------------------------------------------------------------
def test_retry_after_above_the_cap_stops_at_once_saying_when_to_come_back(server):
    server.add_fault("rate-limit", retry_after="3600")
    client = fast_client(server)
    with pytest.raises(CtgovError) as info:
        client.study("NCT02552212")
    message = str(info.value)
    assert "asks to wait 3600 s" in message and "120 s" in message and "run the same command again after" in message
    assert "UTC" in message and info.value.retry_at and info.value.status == 429
    assert len(server.log) == 1 and client.sleeps == []
    assert "\n" not in message


def test_retry_after_cap_is_configurable(server, monkeypatch):
    monkeypatch.setenv("REVIEWLIB_CTGOV_MAX_RETRY_AFTER", "600")
    monkeypatch.setenv("REVIEWLIB_DEADLINE", "900")          # a 300 s wait needs a deadline beyond it
    server.add_fault("rate-limit", retry_after="300")
    client = fast_client(server)
    client.study("NCT02552212")
    assert client.sleeps == [300.0]


def test_the_limits_every_client_shares_apply_unless_ctgov_has_its_own(monkeypatch):
    """REVIEWLIB_READ_TIMEOUT, REVIEWLIB_DEADLINE, ... (retrieval/limits.py) hold for ClinicalTrials.gov too."""
    defaults = CtgovClient("http://127.0.0.1:9/")
    assert defaults.timeout == (10.0, 30.0) and defaults.policy.deadline == 300.0
    assert defaults.policy.max_retry_after == 120.0
    for name, value in (("REVIEWLIB_CONNECT_TIMEOUT", "4"), ("REVIEWLIB_READ_TIMEOUT", "7"),
                        ("REVIEWLIB_DEADLINE", "50"), ("REVIEWLIB_MAX_WAIT", "20")):
        monkeypatch.setenv(name, value)
    shared = CtgovClient("http://127.0.0.1:9/")
    assert shared.timeout == (4.0, 7.0) and shared.policy.deadline == 50.0 and shared.policy.max_retry_after == 20.0
    monkeypatch.setenv("REVIEWLIB_CTGOV_READ_TIMEOUT", "2")
    assert CtgovClient("http://127.0.0.1:9/").timeout == (4.0, 2.0)


def test_retry_after_as_http_date():
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=lambda: 1445412470.0) == 10.0
    assert retry_after_seconds({"Retry-After": "soon"}) is None and retry_after_seconds({}) is None


def test_server_that_never_answers_times_out_and_is_retried(server, monkeypatch):
    monkeypatch.setenv("REVIEWLIB_CTGOV_READ_TIMEOUT", "0.3")
    never = server.add_fault("hold")
    client = fast_client(server)
    assert client.timeout == (10.0, 0.3)
    try:
        study = client.study("NCT02552212")
    finally:
        never.release.set()
    assert nct_of(study) == "NCT02552212" and len(server.log) == 2 and client.sleeps == [0.75]


def test_total_deadline_stops_retrying_with_one_line():
    clock = [0.0]
    policy_sleeps: list[float] = []

    def sleep(s: float) -> None:
        policy_sleeps.append(s)
        clock[0] += s

    with CtgovServer() as server:
        for _ in range(6):
            server.add_fault("status", status=500)
        client = CtgovClient(server.url, sleep=sleep, clock=lambda: clock[0], limiter=RateLimiter(1000, 1.0),
                             random=lambda: 0.5, backoff_base=2.0, deadline=5.0)
        with pytest.raises(CtgovError, match=r"no good answer within 5 s \(last: HTTP 500\)"):
            client.study("NCT02552212")
    assert policy_sleeps == [1.5, 3.0]          # the next wait (6 s) would end past the deadline


def test_persistent_failure_names_the_url_and_what_to_do(server):
    for _ in range(3):
        server.add_fault("disconnect")
    client = fast_client(server, max_attempts=3)
    with pytest.raises(CtgovError) as info:
        client.study("NCT02552212")
    message = str(info.value)
    assert message.startswith(f"{server.url}studies/NCT02552212 failed 3 times (last: connection error")
    assert "run the same command again to resume" in message and client.sleeps == [0.75, 1.5]


def test_retry_policy_backoff_is_capped_and_jittered():
    policy = RetryPolicy(backoff_base=1.0, backoff_max=10.0, random=lambda: 0.0)
    assert [policy.backoff(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.backoff(0, retry_after=30.0) == 30.0


# -- the API's plain-text errors ------------------------------------------------------------------
@pytest.mark.parametrize("call, recorded, advice", [
    (lambda c: c.study("NCT99999999"), "404_studies_NCT99999999", "check the NCT id"),
    (lambda c: c.study("ABC123"), "400_studies_malformed_nctId", "'NCT' and 8 digits"),
    (lambda c: c.search(search_params(None, cond="lupus", extra={"bogusParam": "1"})),
     "400_unknown_parameter", "remove or correct that parameter"),
    (lambda c: c.search(search_params(None, cond="lupus", advanced="AREA[X]1")),
     "400_filter_advanced_unknown_area", "check the AREA[...] names"),
])
def test_plain_text_400_and_404_become_one_line_with_the_apis_message(server, call, recorded, advice):
    client = fast_client(server)
    with pytest.raises(CtgovError) as info:
        call(client)
    message = str(info.value)
    assert error_body(recorded) in message and advice in message and "\n" not in message
    assert isinstance(info.value, ReviewlibError) and info.value.body == error_body(recorded)
    assert len(server.log) == 1 and client.sleeps == []           # never retried


def test_unknown_status_is_the_apis_message_with_the_valid_values(server):
    client = fast_client(server)
    with pytest.raises(CtgovError) as info:
        client.search(search_params(None, cond="lupus", status=["recruiting", "NOT_A_STATUS"]))
    assert "Invalid value in parameter `overallStatus`: `NOT_A_STATUS`" in str(info.value)
    assert "RECRUITING" in str(info.value).split("use statuses from:")[1]
    assert server.log[0]["params"]["filter.overallStatus"] == "RECRUITING|NOT_A_STATUS"


def test_single_study_is_the_recorded_body(server):
    client = fast_client(server)
    study = client.study("NCT02552212")
    recorded = json.loads((server.bodies["NCT02552212"]))
    assert study == recorded and study["protocolSection"]["designModule"]["phases"] == ["PHASE3"]


def test_status_filter_and_query_params_reach_the_api(server):
    client = fast_client(server)
    studies = client.search(search_params("spondyloarthritis", cond="ALL", intr="certolizumab",
                                          status="COMPLETED|WITHDRAWN", advanced="AREA[Phase]PHASE3"))
    assert [nct_of(s) for s in studies] == ["NCT02552212"]
    params = server.log[0]["params"]
    assert params["query.term"] == "spondyloarthritis" and params["query.intr"] == "certolizumab"
    assert params["filter.overallStatus"] == "COMPLETED|WITHDRAWN" and params["filter.advanced"] == "AREA[Phase]PHASE3"


def test_empty_search_is_refused_before_any_request():
    with pytest.raises(CtgovError, match="the registry search is empty"):
        search_params(None, cond="  ")
