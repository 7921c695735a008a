"""fetch_registry and the ``reviewlib registry`` CLI against the stand-in ClinicalTrials.gov API.

In-process tests use a permissive limiter and a recording sleep; the CLI tests
run the real console script as a subprocess with the real limiter (1 request
per second through a private rate file) and check it against the server's log.
"""
from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ctgov_server import CtgovServer, load_studies, nct_of
from reviewlib.errors import CtgovError, InputError
from reviewlib.retrieval.ctgov import CtgovClient
from reviewlib.retrieval.ratelimit import RateLimiter
from reviewlib.retrieval.registry import fetch_registry
from reviewlib.sources.ctgov import TRIAL_COLUMNS, read_trials_csv
from reviewlib.store import ReviewStore

ROOT = Path(__file__).resolve().parent.parent
REVIEWLIB = ROOT / ".venv" / "bin" / "reviewlib"
if not REVIEWLIB.exists():
    REVIEWLIB = Path(sys.executable).parent / "reviewlib"
REAL_IDS = {nct_of(s) for s in load_studies()[0]}


@pytest.fixture
def server():
    with CtgovServer() as s:
        yield s


@pytest.fixture
def store(tmp_path):
    with ReviewStore(tmp_path / "review" / "review.sqlite") as s:
        yield s


def make_client(server, **kwargs) -> CtgovClient:
    sleeps: list[float] = []
    kwargs.setdefault("max_attempts", 3)
    client = CtgovClient(server.url, sleep=sleeps.append, limiter=RateLimiter(1000, 1.0), backoff_base=0.001,
                         **kwargs)
    client.sleeps = sleeps
    return client


def tokens_asked(server) -> list[str | None]:
    return [r["params"].get("pageToken") for r in server.requests("studies")]


# -- fetch_registry --------------------------------------------------------------------------
def test_every_page_lands_in_cache_and_store_with_the_token_that_asked_for_it(server, store):
    result = fetch_registry(None, store, cond="ALL", page_size=10, client=make_client(server))
    assert result.source == "ctgov" and result.count == 28 and result.n_records == 28 and not result.reused
    pages = store.registry_pages(result.search_id)
    assert list(pages["page_no"]) == [1, 2, 3] and list(pages["n_studies"]) == [10, 10, 8]
    assert pages["page_token"].iloc[0] is None and pages["next_page_token"].iloc[2] is None
    assert list(pages["page_token"].iloc[1:]) == list(pages["next_page_token"].iloc[:2])   # the chain
    assert list(pages["page_token"]) == tokens_asked(server)
    for row in pages.itertuples():
        data = (store.folder / row.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256 and data.startswith(b'{"studies":')
    assert int(pages["total_count"].iloc[0]) == 28 and pages["total_count"].iloc[1:].isna().all()
    table = store.trials(result.search_id)
    assert list(table.columns) == TRIAL_COLUMNS and set(table["nct_id"]) == REAL_IDS
    search = store.searches().iloc[-1]
    assert search["status"] == "complete" and search["source"] == "ctgov" and search["count"] == 28
    assert "query.cond=ALL" in search["translation"]


def test_rerun_reuses_a_complete_search_and_refresh_asks_again(server, store):
    client = make_client(server)
    first = fetch_registry(None, store, cond="ALL", page_size=10, client=client)
    n = len(server.log)
    again = fetch_registry(None, store, cond="ALL", page_size=10, client=client)
    assert again.reused and again.search_id == first.search_id and len(server.log) == n
    fresh = fetch_registry(None, store, cond="ALL", page_size=10, client=client, refresh=True)
    assert not fresh.reused and fresh.search_id != first.search_id and len(server.log) == n + 3
    assert len(store.trials()) == 28                     # one row per NCT id across both searches


def test_failed_page_is_never_recorded_and_a_rerun_asks_only_from_it(server, store):
    for _ in range(3):
        server.add_fault("disconnect", when=lambda p: p.get("pageToken") == CtgovServer.token_for(20))
    with pytest.raises(CtgovError, match="failed 3 times"):
        fetch_registry(None, store, cond="ALL", page_size=10, client=make_client(server))
    search = store.searches().iloc[-1]
    assert search["status"] == "started" and len(store.registry_pages(int(search["search_id"]))) == 2
    assert len(store.trials()) == 20
    before = len(server.log)
    result = fetch_registry(None, store, cond="ALL", page_size=10, client=make_client(server))
    assert tokens_asked(server)[-(len(server.log) - before):] == [CtgovServer.token_for(20)]
    assert result.search_id == int(search["search_id"]) and result.n_records == 28 and result.count == 28


def test_damaged_cached_page_is_asked_for_again_from_its_own_token(server, store):
    for _ in range(3):
        server.add_fault("status", status=503, when=lambda p: p.get("pageToken") == CtgovServer.token_for(20))
    with pytest.raises(CtgovError):
        fetch_registry(None, store, cond="ALL", page_size=10, client=make_client(server))
    sid = int(store.searches().iloc[-1]["search_id"])
    page2 = store.folder / store.registry_pages(sid)["path"].iloc[1]
    page2.write_bytes(page2.read_bytes()[:100])            # damaged on disk
    before = len(server.log)
    fetch_registry(None, store, cond="ALL", page_size=10, client=make_client(server))
    assert tokens_asked(server)[before:] == [CtgovServer.token_for(10), CtgovServer.token_for(20)]
    assert store.searches().iloc[-1]["status"] == "complete"


def test_registry_that_changes_while_paging_is_reported_not_hidden(server, store, caplog):
    def drop_one(params):
        if params.get("pageToken") == CtgovServer.token_for(10) and len(server.studies) == 28:
            server.studies.pop(0)                          # a study already received leaves: page 2 shifts
    server.on_request = drop_one
    result = fetch_registry(None, store, cond="ALL", page_size=10, client=make_client(server))
    assert result.n_records == 27
    assert any("counted 28 studies but 27 arrived in 3 page(s)" in w for w in result.warnings)
    assert "registry changed while paging" in caplog.text


def test_status_and_filters_reach_the_api_and_bad_ones_are_its_one_line(server, store):
    result = fetch_registry("spondyloarthritis", store, intr="certolizumab", status=["completed"],
                            advanced="AREA[Phase]PHASE3", client=make_client(server))
    assert set(store.trials(result.search_id)["nct_id"]) == {"NCT02552212"}
    params = server.requests("studies")[0]["params"]
    assert params["filter.overallStatus"] == "COMPLETED" and params["pageSize"] == "1000"
    with pytest.raises(CtgovError, match="Unknown area name: 'Bogus'.*check the AREA"):
        fetch_registry(None, store, cond="lupus", advanced="AREA[Bogus]x", client=make_client(server))


@pytest.mark.parametrize("kwargs, message", [
    ({"query": None}, "the registry search is empty"),
    ({"query": "lupus", "page_size": 0}, "bad registry page size 0"),
    ({"query": "lupus", "page_size": 5000}, "from 1 to 1000"),
])
def test_bad_input_is_one_clear_error_before_any_request(server, store, kwargs, message):
    with pytest.raises(InputError, match=message):
        fetch_registry(kwargs.pop("query"), store, client=make_client(server), **kwargs)
    assert server.log == []


def test_a_store_made_before_the_registry_tables_gains_them_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.sqlite"
    with ReviewStore(path) as s:
        s.append_decision("pmid:1", "ana", "title_abstract", "include")
    con = sqlite3.connect(path)
    con.executescript("DROP TABLE trial_sources; DROP TABLE trials; DROP TABLE registry_pages;")
    con.close()
    with ReviewStore(path) as s:
        assert len(s.decisions()) == 1 and s.trials().empty and s.trial_sources().empty


# -- the CLI, as a real subprocess ----------------------------------------------------------------
def cli_env(server_url: str, rate_file: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NCBI_", "REVIEWLIB_"))}
    env.update(REVIEWLIB_CTGOV_URL=server_url, REVIEWLIB_CTGOV_RATE_FILE=str(rate_file), **extra)
    return env


def run_cli(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(REVIEWLIB), "registry", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_writes_trials_csv_store_and_cache_then_reuses(tmp_path, server):
    out = tmp_path / "review"
    env = cli_env(server.url, tmp_path / "ctgov-rate")
    done = run_cli(["--cond", "ALL", "--out", str(out), "--page-size", "10"], env)
    assert done.returncode == 0, done.stderr
    header = (out / "trials.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("nct_id,title,") and header.split(",") == TRIAL_COLUMNS
    table = read_trials_csv(out / "trials.csv")
    assert len(table) == table["nct_id"].nunique() == 28 and set(table["nct_id"]) == REAL_IDS
    raw = pd.read_csv(out / "trials.csv", dtype=str, keep_default_na=False).set_index("nct_id")
    assert raw.loc["NCT02552212", "phases"] == "PHASE3"
    assert "; " in raw.loc["NCT06008288", "conditions"]                  # lists joined with "; "
    assert len(list((out / "cache").rglob("page-*.json"))) == 3 and (out / "review.sqlite").is_file()
    assert server.max_in_window(1.0) == 1                                 # 1 request per second by default
    n = len(server.log)
    again = run_cli(["--cond", "ALL", "--out", str(out), "--page-size", "10"], env)
    assert again.returncode == 0 and "reused registry search 1" in again.stdout and len(server.log) == n


def test_cli_api_refusal_is_one_line_with_the_apis_message(tmp_path, server):
    done = run_cli(["lupus", "--out", str(tmp_path / "r"), "--status", "NOT_A_STATUS"],
                   cli_env(server.url, tmp_path / "rate"))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reviewlib registry: error: ClinicalTrials.gov answered HTTP 400")
    assert "Invalid value in parameter `overallStatus`: `NOT_A_STATUS`" in lines[0] and "use statuses from" in lines[0]
    assert not (tmp_path / "r" / "trials.csv").exists()


def test_cli_killed_with_sigkill_mid_search_resumes_from_the_last_complete_page(tmp_path, server):
    out = tmp_path / "review"
    env = cli_env(server.url, tmp_path / "ctgov-rate")
    args = ["--cond", "ALL", "--out", str(out), "--page-size", "10"]
    hold = server.add_fault("hold", when=lambda p: p.get("pageToken") == CtgovServer.token_for(20))
    proc = subprocess.Popen([str(REVIEWLIB), "registry", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert hold.reached.wait(60), "the search never reached its third page"
        con = sqlite3.connect(out / "review.sqlite", timeout=30)
        try:
            pages = con.execute("SELECT page_no, page_token FROM registry_pages ORDER BY page_no").fetchall()
            status = con.execute("SELECT status FROM searches").fetchone()[0]
        finally:
            con.close()
        assert pages == [(1, None), (2, CtgovServer.token_for(10))] and status == "started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        hold.release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "trials.csv").exists()
    first_run = len(server.log)

    done = run_cli(args, env)
    assert done.returncode == 0, done.stderr
    assert tokens_asked(server)[first_run:] == [CtgovServer.token_for(20)]   # pages 1 and 2 not asked again
    table = read_trials_csv(out / "trials.csv")
    assert set(table["nct_id"]) == REAL_IDS and len(table) == 28
    assert not list((out / "cache").rglob("*.tmp")) and len(list((out / "cache").rglob("page-*.json"))) == 3
    # the rerun, started the moment after the kill, shares the killed process's window (FileRateLimiter)
    assert server.max_in_window(1.0) == 1


def test_crash_between_caching_a_page_and_recording_it_re_asks_that_one_page(server, store, monkeypatch):
    real = ReviewStore.add_registry_page

    def crash_on_page_2(self, search_id, page_no, **kwargs):
        if page_no == 2:
            raise KeyboardInterrupt("killed after the page reached the cache")
        return real(self, search_id, page_no, **kwargs)

    monkeypatch.setattr(ReviewStore, "add_registry_page", crash_on_page_2)
    with pytest.raises(KeyboardInterrupt):
        fetch_registry(None, store, cond="ALL", page_size=10, client=make_client(server))
    sid = int(store.searches().iloc[-1]["search_id"])
    assert (store.folder / "cache" / f"registry-{sid}" / "page-00002.json").is_file()     # cached, not recorded
    assert len(store.registry_pages(sid)) == 1
    monkeypatch.setattr(ReviewStore, "add_registry_page", real)
    before = len(server.log)
    result = fetch_registry(None, store, cond="ALL", page_size=10, client=make_client(server))
    assert tokens_asked(server)[before:] == [CtgovServer.token_for(10), CtgovServer.token_for(20)]  # one re-asked
    assert result.n_records == 28 and list(store.registry_pages(sid)["page_no"]) == [1, 2, 3]


# -- a protocol's registry: section ------------------------------------------------------------
PROTOCOL = """review: {name: reg-test}
search: {query: lupus}
registry:
%s
"""


def write_protocol(tmp_path, body: str) -> Path:
    path = tmp_path / "reg-test.yaml"
    path.write_text(PROTOCOL % body, encoding="utf-8")
    return path


def test_protocol_registry_section_runs_online_and_offline(tmp_path, server, store):
    from reviewlib.protocol import load_protocol
    from reviewlib.retrieval.registry import run_registry_search
    protocol = load_protocol(write_protocol(tmp_path, "  cond: ALL\n  status: [completed, withdrawn]\n"
                                            "  snapshot: car-t-autoimmune-registry-2026-08-22.json.gz\n"
                                            "  snapshot_note: REAL registry records"))
    online = run_registry_search(protocol, store, offline=False, client=make_client(server))
    assert online.source == "ctgov" and set(store.trials(online.search_id)["status"]) == {"COMPLETED", "WITHDRAWN"}
    assert server.log[0]["params"]["filter.overallStatus"] == "COMPLETED|WITHDRAWN"
    offline = run_registry_search(protocol, store, offline=True)             # found in the package data
    assert offline.source == "ctgov-snapshot" and offline.n_records == 315 and "REAL" in offline.translation
    plain = load_protocol(write_protocol(tmp_path, "  {}"))
    assert run_registry_search(plain, store, offline=True) is None           # an empty section: no registry


@pytest.mark.parametrize("body, message", [
    ("  cond: lupus\n  sponsor: x", "registry.sponsor is not a registry setting"),
    ("  cond: lupus\n  status: [RECRUTING]", "registry.status 'RECRUTING' is not a ClinicalTrials.gov status"),
    ("  cond: lupus\n  page_size: 5000", "registry.page_size 5000 must be a whole number from 1 to 1000"),
    ("  snapshot_note: x", "has neither a query"),
    ("  cond: lupus", "has no registry.snapshot to run offline"),
])
def test_bad_registry_section_is_one_line_naming_the_protocol(tmp_path, store, body, message):
    from reviewlib.errors import ProtocolError
    from reviewlib.protocol import load_protocol
    from reviewlib.retrieval.registry import run_registry_search
    path = write_protocol(tmp_path, body)
    with pytest.raises(ProtocolError, match=message) as info:
        run_registry_search(load_protocol(path), store, offline=True)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_saved_page_token_the_api_no_longer_takes_says_how_to_start_afresh(server, store):
    for _ in range(3):
        server.add_fault("status", status=503, when=lambda p: p.get("pageToken") == CtgovServer.token_for(10))
    with pytest.raises(CtgovError):
        fetch_registry(None, store, cond="ALL", page_size=10, client=make_client(server))
    sid = int(store.searches().iloc[-1]["search_id"])
    store.connection.execute("UPDATE registry_pages SET next_page_token='expired-token' WHERE search_id=?", (sid,))
    with pytest.raises(CtgovError) as info:
        fetch_registry(None, store, cond="ALL", page_size=10, client=make_client(server))
    assert "Parameter `pageToken` has incorrect format" in str(info.value) and "--refresh" in str(info.value)
    result = fetch_registry(None, store, cond="ALL", page_size=10, client=make_client(server), refresh=True)
    assert result.search_id != sid and result.n_records == 28
