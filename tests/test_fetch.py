"""fetch_pubmed, run_search and the ``reviewlib fetch`` CLI against the local replay server.

In-process tests use a permissive rate limiter and a recording sleep to stay
fast; the CLI tests run the real ``.venv/bin/reviewlib`` as a subprocess with
the real limiter (3 requests per second) and check it against the server's log.
"""
from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from eutils_server import load_articles, renumbered
from reviewlib.errors import EutilsError, InputError
from reviewlib.retrieval.eutils import EutilsClient
from reviewlib.retrieval.fetch import fetch_pubmed, parse_date, run_search
from reviewlib.protocol import load_protocol
from reviewlib.retrieval.ratelimit import RateLimiter
from reviewlib.records import COLUMNS, read_csv
from reviewlib.store import ReviewStore

ROOT = Path(__file__).resolve().parent.parent
REVIEWLIB = ROOT / ".venv" / "bin" / "reviewlib"
if not REVIEWLIB.exists():                              # e.g. CI installing into another environment
    REVIEWLIB = Path(sys.executable).parent / "reviewlib"
API_KEY = "feedc0ffee0123456789abcdef0123456789"
EMAIL = "reviewer@example.org"


def make_client(server, **kwargs) -> EutilsClient:
    sleeps: list[float] = []
    kwargs.setdefault("email", EMAIL)
    kwargs.setdefault("max_attempts", 3)
    client = EutilsClient(server.url, sleep=sleeps.append, limiter=RateLimiter(1000, 1.0), backoff_base=0.001,
                          **kwargs)
    client.sleeps = sleeps
    return client


@pytest.fixture
def store(tmp_path):
    with ReviewStore(tmp_path / "review" / "review.sqlite") as s:
        yield s


def efetch_starts(server) -> list[int]:
    return [int(r["params"]["retstart"]) for r in server.requests("efetch")]


# -- fetch_pubmed --------------------------------------------------------------------------
def test_every_record_lands_in_cache_and_store_batch_by_batch(eutils_server, store):
    result = fetch_pubmed("lupus", store, batch_size=10, client=make_client(eutils_server), progress=False)
    corpus = {a.pmid for a in eutils_server.articles}
    assert (result.count, result.n_records, result.translation) == (28, 28, "lupus[All Fields]")
    assert set(store.records(result.search_id)["pmid"]) == corpus
    assert efetch_starts(eutils_server) == [0, 10, 20]
    assert [r["params"]["retmax"] for r in eutils_server.requests("efetch")] == ["10", "10", "8"]
    batches = store.batches(result.search_id)
    assert sorted(batches["n_records"]) == [8, 10, 10]
    for row in batches.itertuples():
        raw = (store.folder / row.path).read_bytes()
        assert row.path.startswith("cache/") and hashlib.sha256(raw).hexdigest() == row.sha256
    assert not list((store.folder / "cache").rglob("*.tmp"))
    search = store.searches().iloc[-1]
    assert search["status"] == "complete" and search["completed_at"]
    assert search["count"] == 28 and search["slices"] == [{"mindate": None, "maxdate": None, "count": 28}]


def test_rerun_reuses_a_complete_search_and_refresh_runs_it_again(eutils_server, store):
    client = make_client(eutils_server)
    first = fetch_pubmed("lupus", store, batch_size=20, client=client, progress=False)
    n_requests = len(eutils_server.log)
    again = fetch_pubmed("lupus", store, batch_size=20, client=client, progress=False)
    assert again.reused and again.search_id == first.search_id and again.n_records == 28
    assert len(eutils_server.log) == n_requests
    fresh = fetch_pubmed("lupus", store, batch_size=20, client=client, progress=False, refresh=True)
    assert fresh.search_id != first.search_id and fresh.n_records == 28
    assert len(store.records()) == 28        # same records, linked to both searches


def test_failed_batch_is_never_cached_and_a_rerun_fetches_only_what_is_missing(eutils_server, store):
    at_10 = lambda p: p.get("retstart") == "10"       # noqa: E731
    for kind in ("truncated", "status", "truncated"):   # three bad answers: the client gives up
        eutils_server.add_fault(kind, "efetch", when=at_10)
    client = make_client(eutils_server)
    with pytest.raises(EutilsError, match="efetch.fcgi"):
        fetch_pubmed("lupus", store, batch_size=10, client=client, progress=False)
    search = store.searches().iloc[-1]
    assert search["status"] == "started"
    assert list(store.batches(int(search["search_id"]))["batch_key"]) == ["all#28:0+10"]
    assert len(list((store.folder / "cache").rglob("*.xml"))) == 1
    assert not list((store.folder / "cache").rglob("*.tmp"))
    before = len(eutils_server.requests("efetch"))

    result = fetch_pubmed("lupus", store, batch_size=10, client=client, progress=False)
    assert result.search_id == search["search_id"] and result.n_records == 28
    assert efetch_starts(eutils_server)[before:] == [10, 20]
    assert store.searches().iloc[-1]["status"] == "complete"


def test_resume_refetches_a_cached_batch_whose_file_was_damaged(eutils_server, store):
    eutils_server.add_fault("status", "efetch", when=lambda p: p.get("retstart") == "20")
    eutils_server.add_fault("status", "efetch", when=lambda p: p.get("retstart") == "20")
    eutils_server.add_fault("status", "efetch", when=lambda p: p.get("retstart") == "20")
    client = make_client(eutils_server)
    with pytest.raises(EutilsError):
        fetch_pubmed("lupus", store, batch_size=10, client=client, progress=False)
    damaged = sorted((store.folder / "cache").rglob("*-0000000-10.xml"))[0]
    damaged.write_bytes(damaged.read_bytes()[:100])
    before = len(eutils_server.requests("efetch"))
    result = fetch_pubmed("lupus", store, batch_size=10, client=client, progress=False)
    assert sorted(efetch_starts(eutils_server)[before:]) == [0, 20]
    assert result.n_records == 28


def test_more_than_9999_records_are_split_by_publication_date(eutils_server, store):
    small = sorted(load_articles(), key=lambda a: len(a.xml))[:4]
    corpus = renumbered(small, 10_500, start=dt.date(2000, 1, 1), end=dt.date(2023, 12, 31))
    eutils_server.set_corpus(corpus)
    result = fetch_pubmed("lupus", store, batch_size=5000, client=make_client(eutils_server), progress=False)
    assert result.count == 10_500 and result.n_records == 10_500
    assert set(store.records()["pmid"]) == {a.pmid for a in corpus}
    slices = result.slices
    assert len(slices) >= 2 and all(s["count"] <= 9999 for s in slices)
    assert sum(s["count"] for s in slices) == 10_500
    bounds = [(parse_date(s["mindate"]), parse_date(s["maxdate"])) for s in slices]
    for (_, end), (start, _) in zip(bounds, bounds[1:]):
        assert start == end + dt.timedelta(days=1)       # contiguous, no overlap
    assert max(efetch_starts(eutils_server)) <= 9998
    sliced = [r["params"] for r in eutils_server.requests("esearch") if "mindate" in r["params"]]
    assert sliced and all(p["datetype"] == "pdat" for p in sliced)


def test_expired_webenv_mid_fetch_reruns_esearch_and_carries_on(eutils_server, store):
    eutils_server.add_fault("expired", "efetch", when=lambda p: p.get("retstart") == "10")
    result = fetch_pubmed("lupus", store, batch_size=10, client=make_client(eutils_server), progress=False)
    assert result.n_records == 28
    assert len(eutils_server.requests("esearch")) == 2
    assert efetch_starts(eutils_server) == [0, 10, 10, 20]
    webenvs = [r["params"]["WebEnv"] for r in eutils_server.requests("efetch")]
    assert webenvs[0] == webenvs[1] != webenvs[2] == webenvs[3]


def test_date_range_keeps_only_records_in_it(eutils_server, store):
    result = fetch_pubmed("lupus", store, mindate="2021", maxdate="2021", client=make_client(eutils_server),
                          progress=False)
    expected = {a.pmid for a in eutils_server.articles if a.pdat.year == 2021}
    assert set(store.records(result.search_id)["pmid"]) == expected
    params = eutils_server.requests("esearch")[0]["params"]
    assert (params["mindate"], params["maxdate"], params["datetype"]) == ("2021/01/01", "2021/12/31", "pdat")


@pytest.mark.parametrize("kwargs, message", [
    ({"mindate": "2019-13-01"}, "bad mindate '2019-13-01'"),
    ({"maxdate": "last year"}, "bad maxdate"),
    ({"mindate": "2022", "maxdate": "2020"}, "after maxdate"),
    ({"datetype": "xdat"}, "bad datetype"),
    ({"batch_size": 0}, "bad batch size"),
    ({"since": "yesterday"}, "bad since date"),
])
def test_bad_input_is_one_clear_error_before_any_request(eutils_server, store, kwargs, message):
    with pytest.raises(InputError, match=message) as info:
        fetch_pubmed("lupus", store, client=make_client(eutils_server), progress=False, **kwargs)
    assert "\n" not in str(info.value)
    assert eutils_server.log == []


def test_since_fetches_only_records_added_since_a_date(eutils_server, store):
    client = make_client(eutils_server)
    full = fetch_pubmed("lupus", store, client=client, progress=False)
    today = dt.date.today()
    real = list(eutils_server.articles)
    added = renumbered(real[:3], 5, first_pmid=99_000_001, start=today, end=today)
    eutils_server.set_corpus(real + added)

    update = fetch_pubmed("lupus", store, since="last", client=client, progress=False)
    assert update.search_id != full.search_id
    assert set(store.records(update.search_id)["pmid"]) == {a.pmid for a in added}
    params = eutils_server.requests("esearch")[-1]["params"]
    assert params["datetype"] == "edat" and params["mindate"] == today.strftime("%Y/%m/%d")
    assert len(store.records()) == 33
    by_date = fetch_pubmed("lupus", store, since="2024/03/01", client=client, progress=False)
    expected = {a.pmid for a in real + added if a.edat >= dt.date(2024, 3, 1)}
    assert set(store.records(by_date.search_id)["pmid"]) == expected


def test_phrase_not_found_reaches_the_result_and_the_store(eutils_server, store, caplog):
    caplog.set_level(logging.WARNING)
    result = fetch_pubmed("lupus abcXYZ", store, client=make_client(eutils_server), progress=False)
    assert "PhraseNotFound: abcXYZ" in result.warnings and result.n_records == 28
    assert "PhraseNotFound: abcXYZ" in store.searches().iloc[-1]["warnings"]
    assert "abcXYZ" in caplog.text


def test_api_key_never_lands_in_logs_or_saved_files(eutils_server, store, caplog):
    caplog.set_level(logging.DEBUG)
    eutils_server.add_fault("status", "efetch", status=502)
    eutils_server.add_fault("expired", "efetch")
    client = make_client(eutils_server, api_key=API_KEY)
    fetch_pubmed("lupus", store, batch_size=10, client=client, progress=False)
    assert all(r["params"]["api_key"] == API_KEY for r in eutils_server.log)   # it was sent...
    assert {r["method"] for r in eutils_server.log} == {"POST"}                # in the body, not the URL
    assert API_KEY not in caplog.text                                          # ...and never shown
    store.connection.execute("PRAGMA wal_checkpoint(FULL)")
    for path in store.folder.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_progress_bar_stays_quiet_off_a_terminal(eutils_server, store, capsys):
    fetch_pubmed("lupus", store, batch_size=10, client=make_client(eutils_server), progress=True)
    assert "rec" not in capsys.readouterr().err


# -- run_search ------------------------------------------------------------------------------
def write_protocol(folder: Path, **search) -> Path:
    lines = ["review:", "  name: test-review", "search:", "  query: lupus"]
    lines += [f"  {k}: {v!r}" if isinstance(v, str) else f"  {k}: {v}" for k, v in search.items()]
    path = folder / "protocol.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_offline_snapshot_is_one_search_loaded_once(tmp_path, data_dir, store):
    articles = load_articles(data_dir / "eutils" / "efetch")
    xml = b'<?xml version="1.0" ?>\n<PubmedArticleSet>\n' + b"\n".join(a.xml for a in articles) + b"\n</PubmedArticleSet>\n"
    (tmp_path / "snap.xml.gz").write_bytes(gzip.compress(xml))
    protocol = load_protocol(write_protocol(tmp_path, snapshot="snap.xml.gz", synthetic=True))
    result = run_search(protocol, store, offline=True)
    assert result.source == "snapshot" and result.n_records == result.count == len(articles)
    assert "offline snapshot snap.xml.gz" in result.translation and "SYNTHETIC" in result.translation
    assert set(store.records(result.search_id)["pmid"]) == {a.pmid for a in articles}
    again = run_search(protocol, store, offline=True)
    assert again.search_id == result.search_id and again.reused
    assert len(store.searches()) == 1
    assert store.record_sources()["source"].eq("snapshot").all()


def test_online_run_search_uses_the_protocols_settings(tmp_path, eutils_server, store):
    protocol = load_protocol(write_protocol(tmp_path, mindate="2020/01/01", maxdate="2022/12/31",
                                            datetype="pdat", batch_size=4))
    result = run_search(protocol, store, offline=False, client=make_client(eutils_server))
    expected = {a.pmid for a in eutils_server.articles if 2020 <= a.pdat.year <= 2022}
    assert set(store.records(result.search_id)["pmid"]) == expected
    assert max(int(r["params"]["retmax"]) for r in eutils_server.requests("efetch")) == 4
    params = eutils_server.requests("esearch")[0]["params"]
    assert (params["mindate"], params["maxdate"]) == ("2020/01/01", "2022/12/31")


# -- the CLI, as a real subprocess --------------------------------------------------------------
def cli_env(server_url: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NCBI_", "REVIEWLIB_"))}
    env.update(REVIEWLIB_EUTILS_URL=server_url, NCBI_EMAIL=EMAIL, **extra)
    return env


def run_cli(args: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(REVIEWLIB), "fetch", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_writes_records_csv_store_and_cache_then_reuses(tmp_path, eutils_server):
    out = tmp_path / "review"
    env = cli_env(eutils_server.url)
    done = run_cli(["lupus", "--out", str(out), "--batch-size", "10", "--no-progress"], env)
    assert done.returncode == 0, done.stderr
    records = read_csv(out / "records.csv")
    assert list(records.columns) == COLUMNS
    assert len(records) == records["pmid"].nunique() == 28
    assert set(records["pmid"]) == {a.pmid for a in eutils_server.articles}
    header = (out / "records.csv").read_text().splitlines()[0]
    assert header == ",".join(COLUMNS)
    assert any(len(a) > 1 for a in records["authors"])          # "; "-joined lists come back as lists
    assert (out / "review.sqlite").is_file() and len(list((out / "cache").rglob("*.xml"))) == 3
    assert eutils_server.max_in_window(1.0) <= 3
    assert all(r["params"]["tool"] == "reviewlib" and r["params"]["email"] == EMAIL for r in eutils_server.log)

    n = len(eutils_server.log)
    again = run_cli(["lupus", "--out", str(out), "--batch-size", "10", "--no-progress"], env)
    assert again.returncode == 0 and "reused search 1" in again.stdout
    assert len(eutils_server.log) == n


def test_cli_bad_date_is_one_line_and_exit_2(tmp_path, eutils_server):
    done = run_cli(["lupus", "--out", str(tmp_path / "r"), "--mindate", "2019-13-01"], cli_env(eutils_server.url))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad mindate '2019-13-01'" in lines[0] and "YYYY/MM/DD" in lines[0]
    assert eutils_server.log == []


def test_cli_unreachable_endpoint_names_url_never_the_key(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/entrez/eutils/"
    env = cli_env(url, NCBI_API_KEY=API_KEY, REVIEWLIB_EUTILS_ATTEMPTS="2", REVIEWLIB_EUTILS_BACKOFF="0.01")
    out = tmp_path / "r"
    done = run_cli(["lupus", "--out", str(out), "--no-progress"], env)
    assert done.returncode == 1
    error = [line for line in done.stderr.splitlines() if line.startswith("reviewlib fetch: error:")]
    assert len(error) == 1 and url + "esearch.fcgi" in error[0] and "failed 2 times" in error[0]
    assert "Connection refused" in error[0] and "check the network" in error[0]
    assert "Traceback" not in done.stderr and API_KEY not in done.stderr + done.stdout
    debug = run_cli(["lupus", "--out", str(out), "--no-progress", "--debug"], env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and API_KEY not in debug.stderr
    for path in out.rglob("*"):
        assert not path.is_file() or API_KEY.encode() not in path.read_bytes()


def test_cli_killed_with_sigkill_mid_fetch_resumes_without_refetching(tmp_path, eutils_server):
    out = tmp_path / "review"
    env = cli_env(eutils_server.url, REVIEWLIB_RATE_FILE=str(tmp_path / "ncbi-rate"))
    args = ["lupus", "--out", str(out), "--batch-size", "5", "--no-progress"]
    hold = eutils_server.add_fault("hold", "efetch", when=lambda p: p.get("retstart") == "15")
    proc = subprocess.Popen([str(REVIEWLIB), "fetch", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert hold.reached.wait(60), "the fetch never reached the fourth batch"
        con = sqlite3.connect(out / "review.sqlite", timeout=30)      # batches 0, 5, 10 are in
        try:
            keys = sorted(r[0] for r in con.execute("SELECT batch_key FROM batches"))
            status = con.execute("SELECT status FROM searches").fetchone()[0]
        finally:
            con.close()
        assert keys == ["all#28:0+5", "all#28:10+5", "all#28:5+5"] and status == "started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        hold.release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "records.csv").exists()
    first_run = len(eutils_server.requests("efetch"))

    done = run_cli(args, env)
    assert done.returncode == 0, done.stderr
    assert efetch_starts(eutils_server)[first_run:] == [15, 20, 25]     # finished batches not refetched
    records = read_csv(out / "records.csv")
    assert set(records["pmid"]) == {a.pmid for a in eutils_server.articles} and len(records) == 28
    assert not list((out / "cache").rglob("*.tmp"))
    # the rerun, started the moment after the kill, shares the killed process's window (FileRateLimiter)
    assert eutils_server.max_in_window(1.0) <= 3


def test_default_protocol_loads_its_embedded_snapshot_offline(store):
    protocol = load_protocol("car-t-autoimmune")
    truth = pd.read_csv(protocol.snapshot_path().with_name("car-t-autoimmune-truth.csv"), dtype=str)
    result = run_search(protocol, store, offline=True)
    assert result.source == "snapshot" and result.n_records == truth["pmid"].nunique()
    assert set(store.records(result.search_id)["pmid"]) == set(truth["pmid"])
    assert "SYNTHETIC" in result.translation
    assert run_search(protocol, store, offline=True).search_id == result.search_id


def test_query_matching_nothing_completes_empty_with_ncbis_messages(eutils_server, store):
    result = fetch_pubmed("abcXYZ", store, client=make_client(eutils_server), progress=False)
    assert (result.count, result.n_records) == (0, 0)
    assert result.warnings == ["PhraseNotFound: abcXYZ", "OutputMessage: No items found."]
    assert eutils_server.requests("efetch") == []
    assert store.searches().iloc[-1]["status"] == "complete"


def test_more_than_9999_records_on_one_day_cannot_be_split_and_say_so(eutils_server, store):
    day = dt.date(2020, 1, 1)                  # e.g. year-only publication dates all fall on 1 January
    eutils_server.set_corpus(renumbered(list(eutils_server.articles), 10_000, start=day, end=day))
    with pytest.raises(EutilsError, match="10000 records dated 2020/01/01.*narrow the query"):
        fetch_pubmed("lupus", store, client=make_client(eutils_server), progress=False)
    assert eutils_server.requests("efetch") == []
    assert store.searches().iloc[-1]["status"] == "started"


def test_resume_after_pubmed_grew_refetches_the_shifted_slice_whole(eutils_server, store, caplog):
    for _ in range(3):
        eutils_server.add_fault("status", "efetch", when=lambda p: p.get("retstart") == "10")
    client = make_client(eutils_server)
    with pytest.raises(EutilsError):
        fetch_pubmed("lupus", store, batch_size=10, client=client, progress=False)
    real = list(eutils_server.articles)
    added = renumbered(real[:2], 2, first_pmid=99_100_001, start=dt.date.today(), end=dt.date.today())
    eutils_server.set_corpus(real + added)       # new records come first: every position shifted
    before = len(eutils_server.requests("efetch"))
    caplog.set_level(logging.WARNING)
    result = fetch_pubmed("lupus", store, batch_size=10, client=client, progress=False)
    assert "now matches 30 records, not 28" in caplog.text
    assert efetch_starts(eutils_server)[before:] == [0, 10, 20]
    assert set(store.records(result.search_id)["pmid"]) == {a.pmid for a in real + added}
    assert result.n_records == result.count == 30
    assert store.searches().iloc[-1][["status", "count"]].tolist() == ["complete", 30]
