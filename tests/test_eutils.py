"""The E-utilities client against the local replay server (tests/eutils_server.py).

Backoff sleeps go to a recorder (so the retry schedule is asserted without
waiting); the HTTP requests are real, to a real server on 127.0.0.1.
"""
from __future__ import annotations

import logging
import socket

import pytest
import requests

from reviewlib.errors import ConfigError, EutilsError, HistoryExpiredError
from reviewlib.retrieval.eutils import (EMAIL_WARNING, EutilsClient, HttpResponse, count_articles, parse_esearch,
                              redact, session_transport)
from reviewlib.retrieval.ratelimit import RateLimiter

API_KEY = "feedc0ffee0123456789abcdef0123456789"
EMAIL = "reviewer@example.org"


class SleepRecorder:
    """A sleep that records its arguments instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make_client(server, sleep=None, **kwargs) -> EutilsClient:
    kwargs.setdefault("email", EMAIL)
    kwargs.setdefault("limiter", RateLimiter(1000, 1.0))   # rate is tested on its own below
    kwargs.setdefault("backoff_base", 0.01)
    kwargs.setdefault("random", lambda: 0.5)
    return EutilsClient(server.url if hasattr(server, "url") else server, sleep=sleep or SleepRecorder(),
                        **kwargs)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/entrez/eutils/"


# -- esearch --------------------------------------------------------------------------
def test_esearch_keeps_count_translation_and_history(eutils_server):
    found = make_client(eutils_server).esearch("lupus")
    assert found.count == len(eutils_server.articles) == 28
    assert found.translation == "lupus[All Fields]"
    assert found.webenv.startswith("MCID_") and found.query_key == "1"
    params = eutils_server.requests("esearch")[0]["params"]
    assert params["usehistory"] == "y" and params["db"] == "pubmed" and params["term"] == "lupus"


def test_phrase_not_found_is_returned_and_logged_never_dropped(eutils_server, caplog):
    caplog.set_level(logging.WARNING, logger="reviewlib.retrieval.eutils")
    found = make_client(eutils_server).esearch("abcXYZ")
    assert found.count == 0
    assert found.errors == ["PhraseNotFound: abcXYZ"]
    assert found.warnings == ["OutputMessage: No items found."]
    assert found.messages == ["PhraseNotFound: abcXYZ", "OutputMessage: No items found."]
    assert "PhraseNotFound: abcXYZ" in caplog.text and "No items found." in caplog.text


def test_real_esearch8_body_parses_error_and_warning_lists(data_dir):
    found = parse_esearch((data_dir / "eutils" / "esearch" / "esearch8.xml").read_bytes())
    assert (found.count, found.translation) == (0, "(abcXYZ[All Fields])")
    assert found.errors == ["PhraseNotFound: abcXYZ"]
    assert found.warnings == ["OutputMessage: No items found."]
    real = parse_esearch((data_dir / "eutils" / "esearch" / "esearch2.xml").read_bytes())
    assert (real.count, real.query_key, real.webenv) == (42249, "1", "MCID_6927d6e7fee3e90f880ec190")
    assert len(real.ids) == 100 and real.translation.endswith("[Date - Entry]")


def test_date_range_is_sent_and_filters(eutils_server):
    client = make_client(eutils_server)
    found = client.esearch("lupus", mindate="2021/01/01", maxdate="2021/12/31", datetype="pdat")
    expected = [a for a in eutils_server.articles if a.pdat.year == 2021]
    assert found.count == len(expected) > 0
    params = eutils_server.requests("esearch")[-1]["params"]
    assert (params["mindate"], params["maxdate"], params["datetype"]) == ("2021/01/01", "2021/12/31", "pdat")


# -- efetch ----------------------------------------------------------------------------
def test_efetch_through_history_server_pages_with_retstart(eutils_server):
    client = make_client(eutils_server)
    found = client.esearch("lupus")
    first = client.efetch(found.webenv, found.query_key, 0, 10)
    last = client.efetch(found.webenv, found.query_key, 20, 10)
    assert count_articles(first) == 10 and count_articles(last) == 8
    req = eutils_server.requests("efetch")[-1]
    assert req["method"] == "GET"
    assert req["params"]["WebEnv"] == found.webenv and req["params"]["retstart"] == "20"


def test_efetch_ids_posts_the_id_list(eutils_server):
    ids = [a.pmid for a in eutils_server.articles[:5]] + ["1"]   # an unknown PMID is skipped, as NCBI does
    body = make_client(eutils_server).efetch_ids(ids)
    assert count_articles(body) == 5
    req = eutils_server.requests("efetch")[-1]
    assert req["method"] == "POST" and req["params"]["id"] == ",".join(ids)


def test_retstart_beyond_the_9999_cap_fails_at_once(eutils_server):
    client = make_client(eutils_server)
    found = client.esearch("lupus")
    with pytest.raises(EutilsError, match="cannot be larger than 9998"):
        client.efetch(found.webenv, found.query_key, 9999, 500)
    assert len(eutils_server.requests("efetch")) == 1   # not retried: a retry cannot cure it
    assert client.sleep.calls == []


# -- politeness: tool, email, rate -------------------------------------------------------
def test_tool_and_email_sent_with_every_request(eutils_server):
    client = make_client(eutils_server)
    found = client.esearch("lupus")
    client.efetch(found.webenv, found.query_key, 0, 3)
    client.efetch_ids([eutils_server.articles[0].pmid])
    assert len(eutils_server.log) == 3
    for req in eutils_server.log:
        assert req["params"]["tool"] == "reviewlib"
        assert req["params"]["email"] == EMAIL


def test_missing_email_warns_once_with_what_to_do(eutils_server, monkeypatch, caplog):
    monkeypatch.delenv("NCBI_EMAIL", raising=False)
    caplog.set_level(logging.WARNING, logger="reviewlib.retrieval.eutils")
    client = make_client(eutils_server, email=None)
    client.esearch("lupus")
    client.esearch("lupus")
    assert caplog.text.count(EMAIL_WARNING) == 1
    assert "email" not in eutils_server.log[0]["params"]
    assert eutils_server.log[0]["params"]["tool"] == "reviewlib"


def test_shared_rate_of_three_per_second_is_never_exceeded(eutils_server, monkeypatch):
    monkeypatch.delenv("NCBI_API_KEY", raising=False)
    a = EutilsClient(eutils_server.url, email=EMAIL)            # both use the process-wide limiter
    b = EutilsClient(eutils_server.url, email=EMAIL)
    for i in range(5):
        a.esearch("lupus")
        b.esearch("vasculitis")
    assert len(eutils_server.log) == 10
    assert eutils_server.max_in_window(1.0) <= 3


def test_api_key_allows_ten_per_second_and_is_sent(eutils_server, monkeypatch):
    monkeypatch.setenv("NCBI_API_KEY", API_KEY)
    client = EutilsClient(eutils_server.url, email=EMAIL)
    for _ in range(22):
        client.esearch("lupus")
    assert client.limiter.max_calls == 10
    assert eutils_server.max_in_window(1.0) <= 10
    assert all(r["params"]["api_key"] == API_KEY for r in eutils_server.log)
    assert API_KEY not in repr(client)
    monkeypatch.delenv("NCBI_API_KEY")
    EutilsClient(eutils_server.url)   # resets the shared limiter to 3/s for later tests


# -- retries -----------------------------------------------------------------------------
def test_retry_schedule_honours_retry_after_then_backs_off_exponentially(eutils_server):
    eutils_server.add_fault("rate-limit", "esearch", retry_after="7")
    eutils_server.add_fault("status", "esearch", status=500)
    eutils_server.add_fault("status", "esearch", status=502)
    client = make_client(eutils_server, backoff_base=0.1, random=lambda: 0.5)
    found = client.esearch("lupus")
    assert found.count == 28
    # attempt n waits min(max, base*2**n) scaled by 0.5 + 0.5*random: 0.075, 0.15, 0.3; Retry-After 7 wins
    assert client.sleep.calls == pytest.approx([7.0, 0.15, 0.3])
    assert [r["fault"] for r in eutils_server.log] == ["rate-limit", "status", "status", None]


def test_retry_after_above_the_cap_stops_at_once_saying_when_to_run_again(eutils_server, monkeypatch):
    eutils_server.add_fault("rate-limit", "esearch", retry_after="86400")
    client = make_client(eutils_server)
    with pytest.raises(EutilsError) as info:
        client.esearch("lupus")
    message = str(info.value)
    assert "NCBI asks to wait 86400 s" in message and "more than the 120 s" in message
    assert "run the same command again after" in message and "UTC" in message and "\n" not in message
    assert client.sleep.calls == [] and len(eutils_server.log) == 1
    monkeypatch.setenv("REVIEWLIB_EUTILS_MAX_RETRY_AFTER", "100000")      # a larger cap is honoured
    eutils_server.add_fault("rate-limit", "esearch", retry_after="86400")
    client = make_client(eutils_server)
    assert client.esearch("lupus").count == 28 and client.sleep.calls == [86400.0]


def test_rate_limit_json_body_is_ncbis(eutils_server):
    eutils_server.add_fault("rate-limit", "esearch", retry_after="2")
    resp = requests.get(eutils_server.url + "esearch.fcgi", params={"db": "pubmed", "term": "x"}, timeout=10)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "2"
    assert resp.json() == {"error": "API rate limit exceeded", "count": "11"}
    assert resp.headers["X-RateLimit-Limit"] == "3"


def test_rate_limit_json_with_http_200_is_retried(eutils_server):
    calls = []
    real = session_transport()

    def transport(method, url, params, timeout):
        calls.append(url)
        if len(calls) == 1:
            return HttpResponse(200, {"Content-Type": "application/json"},
                                b'{"error":"API rate limit exceeded","api-key":"1.2.3.4","count":"4","limit":"3"}')
        return real(method, url, params, timeout)

    client = make_client(eutils_server, transport=transport)
    assert client.esearch("lupus").count == 28
    assert len(calls) == 2 and len(client.sleep.calls) == 1


def test_truncated_and_dropped_responses_are_retried(eutils_server):
    client = make_client(eutils_server)
    found = client.esearch("lupus")
    eutils_server.add_fault("truncated", "efetch")
    eutils_server.add_fault("disconnect", "efetch")
    body = client.efetch(found.webenv, found.query_key, 0, 10)
    assert count_articles(body) == 10
    assert [r["fault"] for r in eutils_server.requests("efetch")] == ["truncated", "disconnect", None]
    assert len(client.sleep.calls) == 2


def test_error_in_a_200_is_an_error(eutils_server):
    client = make_client(eutils_server)
    eutils_server.add_fault("error", "esearch", message="Search Backend failed: read timeout")
    assert client.esearch("lupus").count == 28          # transient: retried
    eutils_server.add_fault("error", "esearch", message="Invalid db name specified: nothing")
    with pytest.raises(EutilsError, match="Invalid db name"):
        client.esearch("lupus")                         # permanent: reported at once
    assert [r["fault"] for r in eutils_server.log] == ["error", None, "error"]


def test_gives_up_after_max_attempts_naming_the_endpoint(eutils_server):
    for _ in range(3):
        eutils_server.add_fault("status", "esearch", status=503)
    client = make_client(eutils_server, max_attempts=3)
    with pytest.raises(EutilsError) as info:
        client.esearch("lupus")
    assert info.value.status == 503
    assert info.value.url == eutils_server.url + "esearch.fcgi"
    assert "failed 3 times" in str(info.value) and eutils_server.url in str(info.value)
    assert len(client.sleep.calls) == 2 and len(eutils_server.log) == 3


def test_expired_webenv_raises_history_expired(eutils_server):
    client = make_client(eutils_server)
    found = client.esearch("lupus")
    eutils_server.expire_history()
    with pytest.raises(HistoryExpiredError, match="Cannot retrieve history data"):
        client.efetch(found.webenv, found.query_key, 0, 10)
    assert len(eutils_server.requests("efetch")) == 1


def test_unreachable_endpoint_with_api_key_never_leaks_the_key(caplog):
    caplog.set_level(logging.DEBUG)
    url = closed_port_url()
    client = EutilsClient(url, email=EMAIL, api_key=API_KEY, sleep=SleepRecorder(), max_attempts=3,
                          limiter=RateLimiter(1000, 1.0))
    with pytest.raises(EutilsError) as info:
        client.esearch("lupus")
    err = info.value
    assert url + "esearch.fcgi" in str(err) and "connection error" in str(err)
    assert len(client.sleep.calls) == 2
    for text in (str(err), err.url or "", err.body or "", caplog.text, repr(client)):
        assert API_KEY not in text
    assert "api_key" not in caplog.text or "api_key=***" in caplog.text


def test_redact_strips_api_key_from_urls():
    assert redact(f"http://x/efetch.fcgi?db=pubmed&api_key={API_KEY}&id=1") == \
        "http://x/efetch.fcgi?db=pubmed&api_key=***&id=1"


def test_endpoint_from_environment_and_bad_endpoint(monkeypatch, eutils_server):
    monkeypatch.setenv("REVIEWLIB_EUTILS_URL", eutils_server.url.rstrip("/"))
    client = EutilsClient(email=EMAIL, limiter=RateLimiter(1000, 1.0))
    assert client.base_url == eutils_server.url
    assert client.esearch("lupus").count == 28
    monkeypatch.setenv("REVIEWLIB_EUTILS_URL", "eutils.ncbi.nlm.nih.gov")
    with pytest.raises(ConfigError, match="REVIEWLIB_EUTILS_URL"):
        EutilsClient()
    monkeypatch.setenv("REVIEWLIB_EUTILS_ATTEMPTS", "many")
    with pytest.raises(ConfigError, match="REVIEWLIB_EUTILS_ATTEMPTS"):
        EutilsClient(eutils_server.url)


def test_clients_share_one_session_and_keep_the_connection(eutils_server):
    a, b = make_client(eutils_server), make_client(eutils_server)
    assert a.transport.session is b.transport.session
    for _ in range(3):
        a.esearch("lupus")
    b.esearch("lupus")
    assert len({r["peer"] for r in eutils_server.log}) == 1   # one kept-alive connection for all four
