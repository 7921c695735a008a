"""`reviewlib run meijboom-2021`: the second example review, a replication of published screening.

One real run per module (``meijboom_run``: ``cli.main(["run", "meijboom-2021", "--offline", ...])``
into tmp_path, papermill executing notebooks/replicate-screening.ipynb on the packaged SYNERGY data,
reviewlib/data/meijboom-2021/).  The figures on the page are checked against an independent
``simulation.replicate`` call and the dataset's own labels.csv.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest
from lxml import html as lhtml

from reviewlib import cli, pipeline
from reviewlib.report import notebook as report
from reviewlib.screening import simulation
from reviewlib.errors import ConfigError
from reviewlib.report.living import RunSets
from reviewlib.protocol import load_protocol

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "notebooks" / "meijboom-2021.yaml"
LABELS = ROOT / "reviewlib" / "data" / "meijboom-2021" / "labels.csv"
PAGE = "replicate-screening"


@pytest.fixture(scope="module")
def meijboom_run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("replication")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["run", "meijboom-2021", "--offline", "--results", str(base / "results"),
                         "--reviews", str(base / "reviews")])
    run_dir = pipeline.latest_run(base / "results" / "meijboom-2021")
    return {"base": base, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "run_dir": run_dir,
            "manifest": json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))}


def _facts(page: Path) -> dict[str, str]:
    """The rows of every facts table on a page: header text -> cell text."""
    doc = lhtml.parse(str(page)).getroot()
    return {row.xpath("string(th)").strip(): row.xpath("string(td)").strip()
            for row in doc.xpath("//table[contains(@class, 'reviewlib-facts')]//tr")}


def _published_labels() -> dict[str, int]:
    with LABELS.open(encoding="utf-8", newline="") as fh:
        return {row["openalex_id"].rstrip("/").rsplit("/", 1)[-1]: int(row["label_included"])
                for row in csv.DictReader(fh)}


def test_run_is_complete_real_data_with_its_source(meijboom_run):
    m = meijboom_run["manifest"]
    assert meijboom_run["code"] == 0
    assert m["status"] == "complete" and m["kind"] == "replication"
    assert m["synthetic"] is False and m["notice"] is None and m["mode"] == "offline"
    assert "SYNERGY dataset v1" in m["data_source"] and "CC0" in m["data_source"]
    assert m["protocol"]["sha256"] == load_protocol(PROTOCOL).sha256
    assert m["versions"]["reviewlib"] and m["versions"]["scikit-learn"] and m["versions"]["papermill"]
    assert [n["notebook"] for n in m["notebooks"]] == [f"{PAGE}.ipynb"]
    assert set(m["parameters"]) <= set(pipeline.notebook_parameters(ROOT / "notebooks" / f"{PAGE}.ipynb"))


def test_counts_are_the_published_dataset(meijboom_run):
    counts = meijboom_run["manifest"]["counts"]
    assert counts["identified"] == 882 and counts["included"] == 37
    assert counts["identified"] - counts["duplicates_removed"] == counts["screened"]
    prisma = counts["prisma"]
    assert prisma["identified_total"] == 882 and prisma["included"] == 37
    assert prisma["screened"] - prisma["excluded_screening"] == prisma["included"]


def test_record_set_hash_is_the_labelled_openalex_ids(meijboom_run):
    labels = _published_labels()
    pm = meijboom_run["manifest"]["pmids"]
    assert pm["n_included"] == 37
    assert pm["included_sha256"] == RunSets.digest(w for w, y in labels.items() if y == 1)
    saved = json.loads((meijboom_run["run_dir"] / "pmids.json").read_text(encoding="utf-8"))
    assert set(saved["matched"]) <= set(labels) and len(saved["matched"]) == meijboom_run["manifest"]["counts"]["screened"]


def test_recall_curve_and_prisma_figures_are_saved_and_on_the_index(meijboom_run):
    run_dir, m = meijboom_run["run_dir"], meijboom_run["manifest"]
    for name in ("recall_curve", "prisma"):
        for ext in ("png", "svg"):
            assert (run_dir / "figures" / f"{name}.{ext}").stat().st_size > 1000
    assert m["figures"] == ["figures/prisma.png", "figures/recall_curve.png"]
    index = (run_dir / "index.html").read_text(encoding="utf-8")
    assert 'src="figures/recall_curve.png"' in index


def test_pages_load_nothing_from_another_host_and_carry_no_synthetic_notice(meijboom_run):
    run_dir = meijboom_run["run_dir"]
    pages = [run_dir / f"{PAGE}.html", run_dir / "index.html", run_dir.parent / "index.html"]
    for page in pages:
        assert report.external_references(page) == [], page
        assert "reviewlib-synthetic-notice" not in page.read_text(encoding="utf-8")


def test_page_shows_the_wss_that_replicate_computes(meijboom_run):
    expected = simulation.replicate(PROTOCOL, seed=0)
    facts = _facts(meijboom_run["run_dir"] / f"{PAGE}.html")
    wss = next(v for k, v in facts.items() if k.startswith("WSS@95"))
    rrf = next(v for k, v in facts.items() if k.startswith("RRF@10"))
    assert wss == f"{expected.simulation.wss95:.3f}"
    assert rrf == f"{expected.simulation.rrf10:.1f}%"
    assert meijboom_run["manifest"]["replication"]["simulation"]["wss95"] == round(expected.simulation.wss95, 6)
    index = _facts(meijboom_run["run_dir"] / "index.html")
    assert index["WSS@95 / RRF@10"].startswith(f"{expected.simulation.wss95:.3f} /")
    assert index["Data source"] == meijboom_run["manifest"]["data_source"]


def test_cli_says_what_ran_and_where_the_html_is(meijboom_run):
    out = meijboom_run["stdout"]
    assert "882 records identified, 37 included" in out and "WSS@95" in out
    # the path the README names (results/<review>/latest/index.html), which leads to this run's index
    shown = next(line for line in out.splitlines() if line.startswith("HTML: ")).split()[1]
    assert shown.endswith("meijboom-2021/latest/index.html")
    assert Path(shown).resolve() == (meijboom_run["run_dir"] / "index.html").resolve()
    assert f"latest -> {meijboom_run['run_dir'].name}" in out


def test_replication_needs_no_review_store(meijboom_run):
    assert not (meijboom_run["base"] / "reviews" / "meijboom-2021" / pipeline.STORE_NAME).exists()


# -- which notebooks run (no papermill) ----------------------------------------------
def test_screening_data_without_snapshot_runs_the_replication_offline_only():
    meijboom, car_t = load_protocol(PROTOCOL), load_protocol("car-t-autoimmune")
    assert pipeline.run_notebooks(meijboom, offline=True) == (pipeline.REPLICATION_NOTEBOOK,)
    assert pipeline.run_notebooks(meijboom, offline=False) == pipeline.NOTEBOOKS
    # the default protocol searches a register too: its registry page runs after the four
    assert pipeline.run_notebooks(car_t, offline=True) == pipeline.NOTEBOOKS + (pipeline.REGISTRY_NOTEBOOK,)


def test_protocol_with_screening_data_and_a_snapshot_is_an_ordinary_review(tmp_path):
    text = (ROOT / "notebooks" / "car-t-autoimmune.yaml").read_text(encoding="utf-8")
    path = tmp_path / "car-t-autoimmune.yaml"
    path.write_text(text + "\nscreening_data:\n  csv: labels.csv\n  label_column: label\n", encoding="utf-8")
    assert pipeline.run_notebooks(load_protocol(path), offline=True) == \
        pipeline.NOTEBOOKS + (pipeline.REGISTRY_NOTEBOOK,)


def test_replication_refuses_a_parameter_its_notebook_does_not_take(tmp_path):
    with pytest.raises(ConfigError, match="unknown parameter 'reviewer'.*seed"):
        pipeline.run_review("meijboom-2021", parameters={"reviewer": "alice"}, results_dir=tmp_path / "results",
                            reviews_dir=tmp_path / "reviews")
    assert not (tmp_path / "results").exists()


def test_replication_notebook_parameters_hold_no_secret():
    params = pipeline.notebook_parameters(ROOT / "notebooks" / f"{PAGE}.ipynb")
    assert {"protocol", "output_dir", "run_name", "offline", "seed"} <= set(params)
    assert not any("key" in p.lower() or "email" in p.lower() for p in params)


def test_open_replication_refuses_a_protocol_without_screening_data(tmp_path):
    with pytest.raises(ConfigError, match="no screening_data section"):
        pipeline.open_replication("car-t-autoimmune", output_dir=tmp_path)
