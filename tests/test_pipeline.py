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
PAGES = ["01-search", "02-screen", "03-extract", "04-report", "05-registry"]
#: The default review's real registry snapshot (315 ClinicalTrials.gov trials of 2026-08-22).
REGISTRY_SNAPSHOT = Path(__file__).resolve().parent.parent / "reviewlib" / "data" / \
    "car-t-autoimmune-registry-2026-08-22.json.gz"


def _snapshot_studies() -> list[dict]:
    """The snapshot's API v2 study objects (a page, or a list of pages)."""
    data = json.loads(gzip.decompress(REGISTRY_SNAPSHOT.read_bytes()))
    return [s for page in (data if isinstance(data, list) else [data]) for s in page["studies"]]


def _registry_ids() -> set[str]:
    """The run's record ids of the snapshot's trials (nct:NCT...), read from the snapshot itself."""
    return {"nct:" + s["protocolSection"]["identificationModule"]["nctId"] for s in _snapshot_studies()}

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
                     "decision_rows": _decision_rows(base), "synthesis_rows": _synthesis_rows(base)}
    return _RUNS["demo"]


def _decision_rows(base: Path) -> int:
    from reviewlib.store import ReviewStore
    with ReviewStore(base / "reviews" / "car-t-autoimmune" / pipeline.STORE_NAME) as store:
        return int(store.connection.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])


def _synthesis_rows(base: Path) -> tuple[int, int]:
    """Outcome values and appraisal judgements in the store (a rerun must append none)."""
    from reviewlib.store import ReviewStore
    with ReviewStore(base / "reviews" / "car-t-autoimmune" / pipeline.STORE_NAME) as store:
        con = store.connection
        return (int(con.execute("SELECT COUNT(*) FROM extractions WHERE field LIKE 'outcome:%'").fetchone()[0]),
                int(con.execute("SELECT COUNT(*) FROM appraisals").fetchone()[0]))


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
            "manifest": json.loads((latest / "manifest.json").read_text()), "decision_rows": _decision_rows(base),
            "synthesis_rows": _synthesis_rows(base)}


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
    # the registry notebook reads what screening wrote: it ran beside extraction and the report
    assert [n.get("beside") for n in m["notebooks"]] == [None] * (len(PAGES) - 1) + ["02-screen.ipynb"]
    assert "NCBI_API_KEY" not in json.dumps(m["parameters"])


def test_counts_and_pmid_hash_match_the_snapshot(demo_run):
    m = demo_run["result"].manifest
    pmids = _pmids(demo_run["tree"])
    ncts = _registry_ids()
    assert len(ncts) == 315
    assert m["counts"]["identified"] == len(pmids) and m["counts"]["identified_registers"] == 315
    assert m["pmids"]["n_matched"] == len(pmids) + 315          # both sources are the run's records
    expected = hashlib.sha256("\n".join(sorted(set(pmids) | ncts)).encode()).hexdigest()
    assert m["pmids"]["matched_sha256"] == expected
    saved = json.loads((demo_run["result"].run_dir / "pmids.json").read_text())
    assert {i for i in saved["included"] if not i.startswith("nct:")} <= set(_demo_included())
    assert {i for i in saved["included"] if i.startswith("nct:")} == ncts    # the curated registry list
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
    # + the 315 registrations, included at both stages by the registry curation (never by the demo reviewer)
    assert counts["included_title_abstract"] == counts["assessed_full_text"] == len(sought) + 315
    assert counts["excluded_full_text"] == len(dropped)
    expected = dropped["exclusion_reason"].replace("", "no-data").value_counts().to_dict()
    assert counts["excluded_full_text_reasons"] == expected
    assert counts["included"] == int((sought["relevant"] == 1).sum()) + 315 == m["pmids"]["n_included"]
    saved = json.loads((demo_run["result"].run_dir / "pmids.json").read_text())
    assert set(saved["included"]) == set(sought.loc[sought["relevant"] == 1, "pmid"]) | _registry_ids()
    # the PRISMA diagram's full-text boxes come from the same decisions
    pr = counts["prisma"]
    assert pr["full_text_stage"] is True
    assert (pr["assessed"], pr["excluded_full_text"], pr["included"]) == \
        (len(sought) + 315, len(dropped), counts["included"])
    assert pr["identified"]["ClinicalTrials.gov (offline snapshot)"] == 315 and pr["included_registrations"] == 315
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
    # the evidence tables hold the published studies; the registrations have their own page
    assert len(pmids) == demo_run["result"].manifest["counts"]["included"] - 315
    assert {"registrations", "reports"} <= set(studies.columns)
    assert not {kinds[p] for p in pmids} & {"review", "preclinical", "car-treg", "no-data"}
    assert {kinds[p] for p in pmids} == {"clinical"}
    screen = lhtml.document_fromstring((run_dir / "02-screen.html").read_bytes()).text_content()
    assert "Full-text assessment" in screen and "reports excluded at full text" in screen


def test_run_folder_has_notebooks_pages_figures_and_latest(demo_run):
    run_dir = demo_run["result"].run_dir
    for page in PAGES:
        nb = nbformat.read(run_dir / f"{page}.ipynb", as_version=4)
        assert nb.metadata["papermill"]["parameters"]["run_name"] == run_dir.name
        assert 1000 < (run_dir / f"{page}.html").stat().st_size < 5_000_000, page    # issue 15: pages under 5 MB
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


def test_registry_page_shows_the_315_real_trials_labelled_real(demo_run):
    run_dir = demo_run["result"].run_dir
    m = demo_run["result"].manifest
    proto = load_protocol(demo_run["protocol"])
    assert m["registry_notice"] == " ".join(proto.section("registry")["notice"].split())
    assert "REAL" in m["registry_notice"] and "synthetic" not in m["registry_notice"].lower()
    page = lhtml.document_fromstring((run_dir / "05-registry.html").read_bytes())
    text = page.text_content()
    assert m["registry_notice"] in " ".join(text.split())
    assert "315 registered trials included" in text and "median enrollment of 18" in text
    assert "crs_grade" not in text          # a column no registration has a value in is left out
    assert "What the registry cannot tell" in text
    index = lhtml.document_fromstring((run_dir / "index.html").read_bytes())
    assert index.get_element_by_id("reviewlib-registry-notice").text_content() == m["registry_notice"]
    imgs = {i.get("src") for i in index.iter("img")}
    assert {"figures/registry_start_year.png", "figures/registry_enrollment.png"} <= imgs
    trials = pd.read_csv(run_dir / "tables" / "registry-trials.csv", dtype=str)
    assert len(trials) == 315 and set("nct:" + trials["nct_id"]) == _registry_ids()
    assert trials["n_patients_evidence"].str.startswith("ClinicalTrials.gov enrollment: ").all()
    # the PRISMA diagram's identification box: Databases and Registers, counted from the store
    assert m["counts"]["prisma"]["registers"] == ["ClinicalTrials.gov (offline snapshot)"]
    screen = " ".join(lhtml.document_fromstring((run_dir / "02-screen.html").read_bytes()).text_content().split())
    assert "Recorded 315 inclusions of registry curation (ptjeong monitor)" in screen


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


def test_rerun_appends_no_outcome_value_and_no_demo_judgement(rerun, demo_run):
    assert rerun["synthesis_rows"] == demo_run["synthesis_rows"]
    assert min(demo_run["synthesis_rows"]) > 0


def test_rerun_moves_latest_and_cli_prints_the_html(rerun):
    assert pipeline.latest_run(rerun["run_dir"].parent) == rerun["run_dir"]
    assert rerun["manifest"]["status"] == "complete"
    # the path the README names (results/<review>/latest/index.html), which leads to this run's index
    shown = next(line for line in rerun["stdout"].splitlines() if line.startswith("HTML: ")).split()[1]
    assert shown.endswith("car-t-autoimmune/latest/index.html")
    assert Path(shown).resolve() == (rerun["run_dir"] / "index.html").resolve()
    assert f"latest -> {rerun['run_dir'].name}" in rerun["stdout"]
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
    """One online run of the default protocol against the local replay of E-utilities, key in the environment,
    and the ClinicalTrials.gov stand-in serving the snapshot's 315 real studies (its query simplified to one word
    the stand-in matches: it is not Essie)."""
    from ctgov_server import CtgovServer
    from eutils_server import ReplayServer
    base = tmp_path_factory.mktemp("online")
    text = PROTOCOL.read_text(encoding="utf-8")
    start = text.index("registry:\n  query:")
    end = text.index("  # REAL records", start)
    protocol = base / "protocol-online" / PROTOCOL.name
    protocol.parent.mkdir()
    protocol.write_text(text[:start] + "registry:\n  query: CAR\n" + text[end:], encoding="utf-8")
    studies = _snapshot_studies()
    saved = {k: os.environ.get(k) for k in ("NCBI_API_KEY", "NCBI_EMAIL", "REVIEWLIB_EUTILS_URL",
                                            "REVIEWLIB_CTGOV_URL", "REVIEWLIB_CTGOV_RATE_FILE")}
    with ReplayServer() as server, CtgovServer(studies) as registry:
        os.environ.update(NCBI_API_KEY=SENTINEL_KEY, NCBI_EMAIL="reviewer@example.org",
                          REVIEWLIB_EUTILS_URL=server.url, REVIEWLIB_CTGOV_URL=registry.url,
                          REVIEWLIB_CTGOV_RATE_FILE=str(base / "ctgov-rate"))
        try:
            result = pipeline.run_review(protocol, offline=False, results_dir=base / "results",
                                         reviews_dir=base / "reviews")
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        requests = server.requests()
        registry_requests = registry.requests()
    return {"base": base, "result": result, "requests": requests, "registry_requests": registry_requests,
            "protocol": protocol, "n_registry": sum("car" in json.dumps(s).lower() for s in studies)}


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
    assert m["counts"]["identified"] + m["counts"]["identified_registers"] == m["pmids"]["n_matched"]
    assert m["counts"]["identified"] > 0
    for path in _html_files(online_run["base"] / "results"):
        assert "reviewlib-synthetic-notice" not in path.read_text(encoding="utf-8"), path
        assert report.external_references(path) == [], path


def test_online_run_searches_the_register_and_counts_its_records(online_run):
    m = online_run["result"].manifest
    searches = [r for r in online_run["registry_requests"] if r["path"] == "studies"]
    assert searches and all(r["params"].get("query.term") == "CAR" for r in searches)
    n = online_run["n_registry"]
    assert n > 0
    assert m["search"]["registry"]["source"] == "ctgov" and m["counts"]["identified_registers"] == n
    assert m["counts"]["prisma"]["identified"]["ClinicalTrials.gov"] == n
    assert m["counts"]["prisma"]["registers"] == ["ClinicalTrials.gov"]
    assert m["registry_notice"] and "fetched from the API v2" in m["registry_notice"]
    # online no curation is recorded: the registrations are screened like every record (rules propose, people decide)
    from reviewlib.store import ReviewStore
    with ReviewStore(online_run["base"] / "reviews" / "car-t-autoimmune" / pipeline.STORE_NAME) as store:
        d = store.decisions()
    regs = d[d["record_id"].str.startswith("nct:")]
    assert len(regs) and set(regs["reviewer"]) == {"rules"}


def test_online_rerun_fetches_only_what_was_added_since_the_last_run(online_run):
    """The pipeline asks for an incremental search; the search goes out with datetype=edat from that date."""
    from eutils_server import ReplayServer
    m = online_run["result"].manifest
    proto = load_protocol(online_run["protocol"])
    since = pipeline.incremental_since(m, proto, offline=False)
    assert since == m["started_at"][:10].replace("-", "/")
    assert pipeline.incremental_since(m, proto, offline=False, full_search=True) is None
    assert pipeline.incremental_since(m, proto, offline=True) is None
    assert pipeline.incremental_since(dict(m, protocol={"sha256": "changed"}), proto, offline=False) is None
    review_dir = online_run["base"] / "reviews" / proto.name
    with ReplayServer() as server:
        os.environ["REVIEWLIB_EUTILS_URL"] = server.url
        try:
            ctx = pipeline.open_review(online_run["protocol"], review_dir=review_dir, output_dir=online_run["base"] / "out",
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
        {f"pmid:{p}" for p in json.loads((online_run["result"].run_dir / "pmids.json").read_text())["matched"]
         if p.isdigit()}   # this rerun searched PubMed only (pipeline.search); 01-search also calls search_registry


def test_parameters_the_pipeline_sets_are_refused_with_the_option_to_use(tmp_path):
    from reviewlib.errors import ConfigError
    with pytest.raises(ConfigError, match="--results"):
        pipeline.run_review(PROTOCOL, parameters={"output_dir": str(tmp_path)}, results_dir=tmp_path)


# -- the synthesis (issue 10) ---------------------------------------------------------
def test_report_and_index_lead_with_the_summary_of_findings(demo_run):
    from reviewlib.report import synthesis_report as sr
    run_dir = demo_run["result"].run_dir
    summary = json.loads((run_dir / sr.SOF_FILE).read_text())
    assert summary["demo_appraisal"] is True and summary["gaps"]
    reported = [r for r in summary["findings"] if r["studies"]]
    assert len(reported) >= 4
    for r in summary["findings"]:
        if r["poolable"]:      # a pooled value never alone: k, patients, CI, PI, I2 with it
            assert all(w in r["estimate"] for w in ("95% CI", "prediction interval", "studies", "patients", "I²"))
            assert r["certainty"] and r["finding"]
        for s in r["sources"]:
            assert s["evidence"] and s["link"].startswith("https://pubmed.ncbi.nlm.nih.gov/")
        # forest plot per outcome some study reports
        assert (run_dir / "figures" / f"forest_{sr.figure_slug(r['outcome'])}.png").is_file() == bool(r["studies"])
    assert list((run_dir / "figures").glob("rob_summary_*.png")) and list((run_dir / "figures").glob("rob_traffic_light_*.png"))
    for name in ("summary-of-findings.csv", "grade.csv", "outcomes-by-study.csv", "synthesis.xlsx"):
        assert (run_dir / "tables" / name).is_file(), name
    index = (run_dir / "index.html").read_text()
    assert index.index('id="reviewlib-summary-of-findings"') < index.index('id="gaps"') < index.index('id="run-metadata"')
    page = (run_dir / "04-report.html").read_text()
    assert page.index('id="reviewlib-summary-of-findings"') < page.index('id="PRISMA-2020-flow-diagram"')
    for html in (index, page):
        doc = lhtml.document_fromstring(html)
        cells = [td.text_content().strip().lower() for td in doc.iter("td")]
        assert "nan" not in cells and not any(c.startswith("nan ") or "/nan" in c for c in cells)
        assert doc.xpath('//table[@id="reviewlib-summary-of-findings"]//a[starts-with(@href, "https://pubmed")][@title]')
    assert 'id="reviewlib-outcomes-table"' in page and 'id="reviewlib-grade"' in page


def test_demo_appraisals_are_labelled_demo(demo_run):
    from reviewlib.evidence import appraisal
    from reviewlib.store import ReviewStore
    with ReviewStore(demo_run["base"] / "reviews" / "car-t-autoimmune" / pipeline.STORE_NAME) as store:
        hist = appraisal.history(store)
    assert len(hist) and set(hist["reviewer"]) == {appraisal.DEMO_REVIEWER}
    assert hist["support"].str.startswith("demo (scripted from the study table): ").all()
