"""`reviewlib run` end to end: real papermill runs of the four notebooks on the demo snapshot.

One full run per session (``demo_run``) on a copy of the demo protocol whose snapshot has one included
record's title replaced by an XSS probe, with a sentinel NCBI_API_KEY in the environment.  Then a
rerun on a snapshot missing one included record (living-review comparison), and a run of a broken
protocol (PipelineError naming notebook and cell).
"""
from __future__ import annotations

import contextlib
import copy
import gzip
import io
import hashlib
import json
import os
import subprocess
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from lxml import etree
from lxml import html as lhtml

from reviewlib import cli, pipeline
from reviewlib.report import notebook as report
from reviewlib.errors import PipelineError
from reviewlib.protocol import load_protocol

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "notebooks" / "car-t-autoimmune.yaml"
SNAPSHOT = ROOT / "reviewlib" / "data" / "car-t-autoimmune-snapshot.xml.gz"
SENTINEL_KEY = "sentinel-KEY-123abc"
XSS = "<script>alert(1)</script>"
PAGES = ["01-search", "02-screen", "03-extract", "04-report"]

_RUNS: dict[str, object] = {}


def _snapshot_tree():
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(gzip.decompress(SNAPSHOT.read_bytes()), parser).getroottree()


def _demo_included() -> list[str]:
    """The demo reviewer's final includes (at full text, of its title-abstract includes)."""
    from reviewlib.demo.snapshot import demo_decisions
    d = demo_decisions(stage="full-text")
    return [str(p) for p in d.loc[d["decision"] == "include", "pmid"]]


def _write_protocol(folder: Path, tree, text: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SNAPSHOT.name).write_bytes(gzip.compress(etree.tostring(tree, xml_declaration=True, encoding="utf-8")))
    path = folder / PROTOCOL.name
    path.write_text(text if text is not None else PROTOCOL.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def _pmids(tree) -> list[str]:
    return [el.text for el in tree.getroot().iterfind("PubmedArticle/MedlineCitation/PMID")]


def _article(tree, pmid: str):
    return next(a for a in tree.getroot().iterfind("PubmedArticle") if a.findtext("MedlineCitation/PMID") == pmid)


def demo_run_once(tmp_path_factory) -> dict:
    """Run the pipeline once per session (shared with test_browser.py)."""
    if "demo" in _RUNS:
        return _RUNS["demo"]
    base = tmp_path_factory.mktemp("pipeline")
    tree = _snapshot_tree()
    xss_pmid = _demo_included()[0]
    title = _article(tree, xss_pmid).find("MedlineCitation/Article/ArticleTitle")
    for child in list(title):
        title.remove(child)
    title.text = f"{XSS} CAR-T cells in refractory lupus"
    protocol = _write_protocol(base / "protocol-xss", tree)
    old = os.environ.get("NCBI_API_KEY")
    os.environ["NCBI_API_KEY"] = SENTINEL_KEY
    try:
        result = pipeline.run_review(protocol, offline=True, results_dir=base / "results", reviews_dir=base / "reviews")
    finally:
        if old is None:
            os.environ.pop("NCBI_API_KEY", None)
        else:
            os.environ["NCBI_API_KEY"] = old
    _RUNS["demo"] = {"base": base, "result": result, "tree": tree, "xss_pmid": xss_pmid, "protocol": protocol,
                     "decision_rows": _decision_rows(base)}
    return _RUNS["demo"]


def _decision_rows(base: Path) -> int:
    from reviewlib.store import ReviewStore
    with ReviewStore(base / "reviews" / "car-t-autoimmune" / pipeline.STORE_NAME) as store:
        return int(store.connection.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> dict:
    return demo_run_once(tmp_path_factory)


@pytest.fixture(scope="session")
def rerun(demo_run) -> dict:
    """A second run whose snapshot lost one included record (and gained nothing)."""
    base = demo_run["base"]
    tree = copy.deepcopy(demo_run["tree"])
    included = demo_run["result"].manifest and json.loads((demo_run["result"].run_dir / "pmids.json").read_text())
    dropped = included["included"][1]
    art = _article(tree, dropped)
    art.getparent().remove(art)
    protocol = _write_protocol(base / "protocol-dropped", tree)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["run", str(protocol), "--offline", "--results", str(base / "results"),
                         "--reviews", str(base / "reviews")])
    latest = pipeline.latest_run(base / "results" / "car-t-autoimmune")
    return {"code": code, "dropped": dropped, "run_dir": latest, "stdout": out.getvalue(), "stderr": err.getvalue(),
            "manifest": json.loads((latest / "manifest.json").read_text()), "decision_rows": _decision_rows(base)}


# -- the first run -----------------------------------------------------------------
def test_manifest_records_the_run(demo_run):
    m = json.loads((demo_run["result"].run_dir / "manifest.json").read_text())
    proto = load_protocol(demo_run["protocol"])
    assert m["status"] == "complete"
    assert m["protocol"]["sha256"] == proto.sha256 == hashlib.sha256(demo_run["protocol"].read_bytes()).hexdigest()
    assert m["query"] == proto.query and "chimeric antigen receptor" in m["query"]
    assert "snapshot" in m["translation"]
    assert m["synthetic"] is True and m["mode"] == "offline"
    from reviewlib.report import synthetic_notice
    from reviewlib.protocol import load_protocol as _load
    SYNTHETIC_NOTICE = synthetic_notice(_load("car-t-autoimmune"))
    assert m["notice"] == SYNTHETIC_NOTICE
    assert m["versions"]["reviewlib"] and m["versions"]["papermill"] and m["versions"]["pandas"]
    if (ROOT / ".git").exists():  # the commit the run used (HEAD may have moved since: it is an ancestor)
        assert len(m["git_commit"]) == 40
        assert subprocess.run(["git", "merge-base", "--is-ancestor", m["git_commit"], "HEAD"], cwd=ROOT).returncode == 0
        assert isinstance(m["git_dirty"], bool)
    assert m["started_at"] <= m["finished_at"]
    assert [n["notebook"] for n in m["notebooks"]] == [f"{p}.ipynb" for p in PAGES]
    assert "NCBI_API_KEY" not in json.dumps(m["parameters"])


def test_counts_and_pmid_hash_match_the_snapshot(demo_run):
    m = demo_run["result"].manifest
    pmids = _pmids(demo_run["tree"])
    assert m["counts"]["identified"] == len(pmids) == m["pmids"]["n_matched"]
    expected = hashlib.sha256("\n".join(sorted(set(pmids))).encode()).hexdigest()
    assert m["pmids"]["matched_sha256"] == expected
    saved = json.loads((demo_run["result"].run_dir / "pmids.json").read_text())
    assert set(saved["included"]) <= set(_demo_included())
    assert m["counts"]["included"] == len(saved["included"]) == m["pmids"]["n_included"] > 0
    assert m["counts"]["duplicates_removed"] >= 0
    assert m["counts"]["prisma"]["included"] == m["pmids"]["n_included"]


def _demo_truth_sets() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The demo reviewer's title-abstract includes among non-duplicate records, and those it excludes at full text."""
    from reviewlib.demo.snapshot import truth
    t = truth()
    sought = t[(t["duplicate_of"] == "") & (t["demo_decision"] == "include")]
    return sought, sought[sought["relevant"] != 1]


def test_manifest_counts_include_the_full_text_stage(demo_run):
    m = demo_run["result"].manifest
    counts = m["counts"]
    sought, dropped = _demo_truth_sets()
    assert len(dropped) > 0
    assert counts["final_stage"] == "full-text"
    assert counts["included_title_abstract"] == counts["assessed_full_text"] == len(sought)
    assert counts["excluded_full_text"] == len(dropped)
    expected = dropped["exclusion_reason"].replace("", "no-data").value_counts().to_dict()
    assert counts["excluded_full_text_reasons"] == expected
    assert counts["included"] == int((sought["relevant"] == 1).sum()) == m["pmids"]["n_included"]
    saved = json.loads((demo_run["result"].run_dir / "pmids.json").read_text())
    assert set(saved["included"]) == set(sought.loc[sought["relevant"] == 1, "pmid"])
    # the PRISMA diagram's full-text boxes come from the same decisions
    pr = counts["prisma"]
    assert pr["full_text_stage"] is True
    assert (pr["assessed"], pr["excluded_full_text"], pr["included"]) == (len(sought), len(dropped), counts["included"])
    assert pr["excluded_full_text_reasons"] == expected
    index = (demo_run["result"].run_dir / "index.html").read_text(encoding="utf-8")
    assert "excluded at full text" in index


def test_study_table_holds_no_report_excluded_at_full_text(demo_run):
    from reviewlib.demo.snapshot import truth
    run_dir = demo_run["result"].run_dir
    studies = pd.read_csv(run_dir / "tables" / "studies.csv", dtype=str)
    key = "pmid" if "pmid" in studies.columns else "PMID"
    kinds = truth().set_index("pmid")["kind"]
    pmids = [p.removeprefix("pmid:") for p in studies[key]]
    assert len(pmids) == demo_run["result"].manifest["counts"]["included"]
    assert not {kinds[p] for p in pmids} & {"review", "preclinical", "car-treg", "no-data"}
    assert {kinds[p] for p in pmids} == {"clinical"}
    screen = lhtml.document_fromstring((run_dir / "02-screen.html").read_bytes()).text_content()
    assert "Full-text assessment" in screen and "reports excluded at full text" in screen


def test_run_folder_has_notebooks_pages_figures_and_latest(demo_run):
    run_dir = demo_run["result"].run_dir
    for page in PAGES:
        nb = nbformat.read(run_dir / f"{page}.ipynb", as_version=4)
        assert nb.metadata["papermill"]["parameters"]["run_name"] == run_dir.name
        assert (run_dir / f"{page}.html").stat().st_size > 1000
    assert (run_dir / "figures" / "prisma.png").is_file() and (run_dir / "figures" / "prisma.svg").is_file()
    for figure in ("screening_progress", "recall_curve", "evidence_map", "patients_by_lymphodepletion",
                   "publications_by_year", "sample_size"):
        assert (run_dir / "figures" / f"{figure}.png").stat().st_size > 10_000, figure
    studies = pd.read_csv(run_dir / "tables" / "studies.csv")
    workbook = pd.read_excel(run_dir / "tables" / "evidence-tables.xlsx", sheet_name=None)
    assert len(workbook["studies"]) == len(studies) > 0 and len(workbook) >= 5   # one sheet per table
    assert pipeline.latest_run(run_dir.parent) == run_dir.resolve()
    index = lhtml.document_fromstring((run_dir / "index.html").read_bytes())
    links = {a.get("href") for a in index.iter("a")}
    assert {f"{p}.html" for p in PAGES} <= links
    assert "figures/prisma.png" in {i.get("src") for i in index.iter("img")}
    top = lhtml.document_fromstring((run_dir.parent / "index.html").read_bytes())
    assert f"{run_dir.name}/01-search.html" in {a.get("href") for a in top.iter("a")}
    assert not [p.name for p in run_dir.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def _html_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.html"))


def test_every_page_is_offline_safe(demo_run):
    files = _html_files(demo_run["base"] / "results")
    assert len(files) >= 6
    for path in files:
        assert report.external_references(path) == [], path


def test_every_page_carries_the_synthetic_notice_at_the_top(demo_run):
    from reviewlib.report import synthetic_notice
    from reviewlib.protocol import load_protocol as _load
    SYNTHETIC_NOTICE = synthetic_notice(_load("car-t-autoimmune"))
    for path in _html_files(demo_run["base"] / "results"):
        doc = lhtml.document_fromstring(path.read_bytes())
        header = doc.body.xpath(".//header[@class='reviewlib-header']")
        assert header, path
        assert header[0].get_element_by_id("reviewlib-synthetic-notice").text_content() == SYNTHETIC_NOTICE


def test_untrusted_title_is_escaped_on_every_page(demo_run):
    shown = set()
    for path in _html_files(demo_run["base"] / "results"):
        data = path.read_bytes()
        assert report.injected_scripts(data, "alert(1)") == [], path
        doc = lhtml.document_fromstring(data)
        if any(XSS in (t or "") for el in doc.iter() if el.tag not in ("script", "style")
               for t in (el.text, el.tail)):
            shown.add(path.stem)
        elif b"&lt;script&gt;alert(1)" in data:  # inside an itables data block, rendered as text
            shown.add(path.stem)
    assert {"01-search", "02-screen", "03-extract"} <= shown


def test_no_secret_in_any_output(demo_run):
    assert report.find_secrets(demo_run["base"], [SENTINEL_KEY]) == []
    assert not any("secret" in w for w in demo_run["result"].manifest["warnings"])


def test_first_run_has_nothing_to_compare(demo_run):
    living = demo_run["result"].manifest["living"]
    assert living["first_run"] is True and living["dropped_included"] == []


# -- the rerun (living review) -----------------------------------------------------------
def test_rerun_reports_the_included_study_that_dropped_out(rerun, demo_run):
    assert rerun["code"] == 0
    m = rerun["manifest"]
    first = demo_run["result"].run_dir.name
    assert m["living"]["previous_run"] == first
    assert m["living"]["dropped_included"] == [rerun["dropped"]]
    assert m["living"]["gone"] == [rerun["dropped"]] and m["living"]["new"] == []
    assert any(rerun["dropped"] in w and "dropped out" in w for w in m["warnings"])
    # why it dropped: its record no longer matches (the snapshot lost it), said once per study
    assert m["living"]["dropped_causes"] == {rerun["dropped"]: "no longer matched by the query (the query, its "
                                                               "date range or the record changed)"}
    for page in ["index"] + PAGES:
        doc = lhtml.document_fromstring((rerun["run_dir"] / f"{page}.html").read_bytes())
        assert rerun["dropped"] in doc.get_element_by_id("reviewlib-living-alarm").text_content()
        assert len(doc.find_class("reviewlib-alarm")) == 1, page  # the banner once per page
    index = lhtml.document_fromstring((rerun["run_dir"] / "index.html").read_bytes())
    causes = index.get_element_by_id("reviewlib-dropped-causes").text_content()
    assert rerun["dropped"] in causes and "no longer matched by the query" in causes
    top = (rerun["run_dir"].parent / "index.html").read_text(encoding="utf-8")
    assert first in top and rerun["run_dir"].name in top


def test_rerun_adds_no_decision_rows(rerun, demo_run):
    from reviewlib.demo.snapshot import truth
    t = truth()
    assert rerun["dropped"] not in set(t["duplicate_of"])  # no duplicate of it steps in to be screened anew
    assert rerun["manifest"]["counts"]["excluded_full_text"] == demo_run["result"].manifest["counts"]["excluded_full_text"]
    assert rerun["decision_rows"] == demo_run["decision_rows"] > 0


def test_rerun_moves_latest_and_cli_prints_the_html(rerun):
    assert pipeline.latest_run(rerun["run_dir"].parent) == rerun["run_dir"]
    assert rerun["manifest"]["status"] == "complete"
    assert f"HTML: {(rerun['run_dir'] / 'index.html').resolve()}" in rerun["stdout"]
    assert "WARNING" in rerun["stderr"] and rerun["dropped"] in rerun["stderr"]


# -- failures -------------------------------------------------------------------------
def test_failing_notebook_names_notebook_and_cell_and_keeps_the_partial_notebook(demo_run, tmp_path):
    base = demo_run["base"]
    broken = PROTOCOL.read_text(encoding="utf-8").replace("snapshot: car-t-autoimmune-snapshot.xml.gz",
                                                          "snapshot: no-such-snapshot.xml.gz")
    assert "no-such-snapshot" in broken
    protocol = tmp_path / "broken" / "car-t-autoimmune.yaml"
    protocol.parent.mkdir()
    protocol.write_text(broken, encoding="utf-8")
    results = base / "results"
    latest_before = pipeline.latest_run(results / "car-t-autoimmune")
    with pytest.raises(PipelineError) as info:
        pipeline.run_review(protocol, results_dir=results, reviews_dir=base / "reviews")
    exc = info.value
    assert exc.notebook == "01-search.ipynb" and exc.ename == "ProtocolError"
    assert "01-search.ipynb" in str(exc) and f"cell {exc.cell + 1} of" in str(exc) and "no-such-snapshot" in str(exc)
    source = nbformat.read(ROOT / "notebooks" / "01-search.ipynb", as_version=4)
    assert "pipeline.search" in source.cells[exc.cell].source  # the cell as the reader sees it in JupyterLab
    run_dir = Path(str(exc).rsplit("the partly executed notebook is ", 1)[1]).parent
    nb = nbformat.read(run_dir / "01-search.ipynb", as_version=4)
    failed = [c for c in nb.cells if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.outputs)]
    assert [c.source for c in failed] == [source.cells[exc.cell].source]
    assert not (run_dir / "02-screen.ipynb").exists()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"]["notebook"] == "01-search.ipynb"
    assert not (run_dir / "index.html").exists()
    assert pipeline.latest_run(results / "car-t-autoimmune") == latest_before


def test_secret_as_parameter_is_refused(tmp_path):
    from reviewlib.errors import ConfigError
    with pytest.raises(ConfigError, match="environment"):
        pipeline.run_review(PROTOCOL, parameters={"api_key": SENTINEL_KEY}, results_dir=tmp_path)
    assert not any(tmp_path.rglob("*.ipynb"))


def test_unknown_parameter_is_refused_before_anything_runs(tmp_path):
    from reviewlib.errors import ConfigError
    with pytest.raises(ConfigError, match="unknown parameter 'sede'"):
        pipeline.run_review(PROTOCOL, parameters={"sede": 3}, results_dir=tmp_path)


def test_parameters_are_read_as_yaml_scalars():
    assert pipeline.parse_parameters([["seed", "7"], ["offline", "false"], ["reviewer", "ana"],
                                      ["mindate", "2020/01/01"], ["since", "null"]]) == {
        "seed": 7, "offline": False, "reviewer": "ana", "mindate": "2020/01/01", "since": None}


def test_every_notebook_has_a_parameters_cell_without_secrets():
    for page in PAGES:
        params = pipeline.notebook_parameters(ROOT / "notebooks" / f"{page}.ipynb")
        assert {"protocol", "review_dir", "output_dir", "run_name", "offline"} <= set(params)
        assert not any("key" in p.lower() or "email" in p.lower() for p in params)


def test_latest_falls_back_to_a_file_where_symlinks_fail(tmp_path, monkeypatch):
    first, second = tmp_path / "run-1", tmp_path / "run-2"
    first.mkdir(), second.mkdir()
    pipeline._point_latest(tmp_path, first)
    assert (tmp_path / "latest").is_symlink() and pipeline.latest_run(tmp_path) == first.resolve()

    def no_symlinks(*args, **kwargs):
        raise OSError("symlinks not supported here")
    monkeypatch.setattr(os, "symlink", no_symlinks)
    pipeline._point_latest(tmp_path, second)
    assert (tmp_path / "latest").is_file() and pipeline.latest_run(tmp_path) == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "run-1", "run-2"]


# -- online, against the E-utilities replay server (tests/eutils_server.py) ---------------
@pytest.fixture(scope="module")
def online_run(tmp_path_factory):
    """One online run of the default protocol against the local replay of E-utilities, key in the environment."""
    from eutils_server import ReplayServer
    base = tmp_path_factory.mktemp("online")
    saved = {k: os.environ.get(k) for k in ("NCBI_API_KEY", "NCBI_EMAIL", "REVIEWLIB_EUTILS_URL")}
    with ReplayServer() as server:
        os.environ.update(NCBI_API_KEY=SENTINEL_KEY, NCBI_EMAIL="reviewer@example.org",
                          REVIEWLIB_EUTILS_URL=server.url)
        try:
            result = pipeline.run_review(PROTOCOL, offline=False, results_dir=base / "results",
                                         reviews_dir=base / "reviews")
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        requests = server.requests()
    return {"base": base, "result": result, "requests": requests}


def test_online_run_uses_the_key_but_never_writes_it(online_run):
    sent = [r for r in online_run["requests"] if SENTINEL_KEY in json.dumps(r["params"])]
    assert sent, "the key should reach E-utilities"
    assert report.find_secrets(online_run["base"], [SENTINEL_KEY]) == []
    assert not any("secret" in w for w in online_run["result"].manifest["warnings"])


def test_online_run_is_real_data_without_notice(online_run):
    m = online_run["result"].manifest
    assert m["mode"] == "online" and m["synthetic"] is False and m["notice"] is None
    assert m["incremental"] is False and m["since"] is None
    assert m["translation"] and "snapshot" not in m["translation"]
    assert m["counts"]["identified"] == m["pmids"]["n_matched"] > 0
    for path in _html_files(online_run["base"] / "results"):
        assert "reviewlib-synthetic-notice" not in path.read_text(encoding="utf-8"), path
        assert report.external_references(path) == [], path


def test_online_rerun_fetches_only_what_was_added_since_the_last_run(online_run):
    """The pipeline asks for an incremental search; the search goes out with datetype=edat from that date."""
    from eutils_server import ReplayServer
    m = online_run["result"].manifest
    proto = load_protocol(PROTOCOL)
    since = pipeline.incremental_since(m, proto, offline=False)
    assert since == m["started_at"][:10].replace("-", "/")
    assert pipeline.incremental_since(m, proto, offline=False, full_search=True) is None
    assert pipeline.incremental_since(m, proto, offline=True) is None
    assert pipeline.incremental_since(dict(m, protocol={"sha256": "changed"}), proto, offline=False) is None
    review_dir = online_run["base"] / "reviews" / proto.name
    with ReplayServer() as server:
        os.environ["REVIEWLIB_EUTILS_URL"] = server.url
        try:
            ctx = pipeline.open_review(PROTOCOL, review_dir=review_dir, output_dir=online_run["base"] / "out",
                                       run_name="rerun", offline=False)
            pipeline.search(ctx, offline=False, since=since)
        finally:
            os.environ.pop("REVIEWLIB_EUTILS_URL", None)
        searches = [r["params"] for r in server.requests("esearch")]
    assert searches and all(p.get("datetype") == "edat" for p in searches)
    assert all(since in json.dumps(p.get("mindate")) for p in searches)
    from reviewlib.report import living
    ids = living.run_search_ids(ctx.store, "rerun")
    assert len(ids) == 2  # the previous full search, then the incremental one
    assert set(living.run_records(ctx.store, "rerun")["record_id"]) >= \
        {f"pmid:{p}" for p in json.loads((online_run["result"].run_dir / "pmids.json").read_text())["matched"]}


def test_parameters_the_pipeline_sets_are_refused_with_the_option_to_use(tmp_path):
    from reviewlib.errors import ConfigError
    with pytest.raises(ConfigError, match="--results"):
        pipeline.run_review(PROTOCOL, parameters={"output_dir": str(tmp_path)}, results_dir=tmp_path)
