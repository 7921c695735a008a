"""An offline rerun with nothing changed makes no new run (``reviewlib.run_inputs``); any change runs again.

Real ``reviewlib run`` runs (papermill, the real store) on a copy of the demo protocol whose snapshot
keeps its first 60 articles (a quicker run), then the fingerprint's parts changed one at a time.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from lxml import etree

from reviewlib import cli, pipeline, run_inputs
from reviewlib.protocol import load_protocol
from reviewlib.screening import decisions
from reviewlib.store import ReviewStore

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "notebooks" / "car-t-autoimmune.yaml"
SNAPSHOT = ROOT / "reviewlib" / "data" / "car-t-autoimmune-snapshot.xml.gz"


def _small_protocol(folder: Path, keep: int = 60) -> Path:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(gzip.decompress(SNAPSHOT.read_bytes()), parser)
    for article in root.findall("PubmedArticle")[keep:]:
        root.remove(article)
    folder.mkdir(parents=True)
    (folder / SNAPSHOT.name).write_bytes(gzip.compress(etree.tostring(root, xml_declaration=True, encoding="utf-8")))
    path = folder / PROTOCOL.name
    shutil.copyfile(PROTOCOL, path)
    return path


def _run(protocol: Path, base: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["run", str(protocol), "--offline", "--results", str(base / "results"),
                         "--reviews", str(base / "reviews"), *extra])
    return code, out.getvalue()


def _runs(base: Path) -> list[str]:
    return sorted(p.name for p in (base / "results" / "car-t-autoimmune").iterdir()
                  if p.is_dir() and not p.is_symlink())


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("run-inputs")
    protocol = _small_protocol(base / "protocol")
    code, out = _run(protocol, base)
    assert code == 0, out
    (run_dir,) = [base / "results" / "car-t-autoimmune" / r for r in _runs(base)]
    return {"base": base, "protocol": protocol, "run_dir": run_dir,
            "manifest": json.loads((run_dir / "manifest.json").read_text())}


def _fingerprint(first_run: dict, **change) -> dict:
    """The fingerprint the next run would compute, with one part changed."""
    proto = load_protocol(change.get("protocol", first_run["protocol"]))
    notebooks = change.get("notebooks", [ROOT / "notebooks" / n for n in first_run["manifest"]["inputs"]["notebooks"]])
    params = dict({"review_dir": str((first_run["base"] / "reviews" / "car-t-autoimmune").resolve())},
                  **change.get("parameters", {}))
    store = change.get("store", first_run["base"] / "reviews" / "car-t-autoimmune" / pipeline.STORE_NAME)
    return run_inputs.fingerprint(proto, notebooks, params, store, offline=change.get("offline", True),
                                  versions=change.get("versions", pipeline.package_versions()))


def test_the_run_records_what_it_read(first_run):
    inputs = first_run["manifest"]["inputs"]
    assert inputs["offline"] is True and inputs["protocol"] == load_protocol(first_run["protocol"]).sha256
    snapshot = first_run["protocol"].parent / SNAPSHOT.name
    assert inputs["protocol_files"][SNAPSHOT.name] == run_inputs.file_digest(snapshot)
    assert "car-t-autoimmune-registry-2026-08-22.json.gz" in inputs["protocol_files"]   # found in the package data
    assert list(inputs["notebooks"]) == ["01-search.ipynb", "02-screen.ipynb", "03-extract.ipynb",
                                         "04-report.ipynb", "05-registry.ipynb"]
    assert "run_name" not in inputs["parameters"] and "output_dir" not in inputs["parameters"]
    assert inputs["store"] == run_inputs.store_digest(first_run["base"] / "reviews" / "car-t-autoimmune"
                                                      / pipeline.STORE_NAME)
    assert _fingerprint(first_run) == inputs   # what the next run computes, before anything changed


def test_the_manifest_has_the_kernels_memory_after_each_notebook(first_run):
    rows = first_run["manifest"]["notebooks"]
    assert [r["notebook"] for r in rows] == list(first_run["manifest"]["inputs"]["notebooks"])
    assert all(0 < r["rss_mb"] <= r["peak_mb"] for r in rows)
    shared = [r["peak_mb"] for r in rows if not r.get("beside")]
    assert shared == sorted(shared)          # one kernel for the main line: its peak only grows
    assert [r["notebook"] for r in rows if r.get("beside")] == ["05-registry.ipynb"]   # its own kernel


def test_an_unchanged_rerun_makes_no_new_run_and_says_which_run_is_current(first_run):
    before = _runs(first_run["base"])
    code, out = _run(first_run["protocol"], first_run["base"])
    assert code == 0
    assert f"nothing changed since run {first_run['run_dir'].name}" in out and "--force" in out
    assert _runs(first_run["base"]) == before
    latest = pipeline.latest_run(first_run["run_dir"].parent)
    assert latest == first_run["run_dir"]


@pytest.mark.parametrize("part", ["parameter", "notebook", "snapshot", "versions", "online"])
def test_each_input_that_changes_makes_the_run_run(first_run, tmp_path, part):
    results = first_run["run_dir"].parent
    assert run_inputs.current_run(results, _fingerprint(first_run)) == first_run["run_dir"]
    if part == "parameter":
        changed = _fingerprint(first_run, parameters={"seed": 8})
    elif part == "notebook":
        folder = tmp_path / "notebooks"
        shutil.copytree(ROOT / "notebooks", folder)
        nb = folder / "03-extract.ipynb"
        nb.write_text(nb.read_text(encoding="utf-8").replace("extraction", "extraction ", 1), encoding="utf-8")
        changed = _fingerprint(first_run, notebooks=[folder / n for n in first_run["manifest"]["inputs"]["notebooks"]])
    elif part == "snapshot":
        protocol = tmp_path / "p" / PROTOCOL.name
        shutil.copytree(first_run["protocol"].parent, protocol.parent)
        snap = protocol.parent / SNAPSHOT.name
        snap.write_bytes(gzip.compress(gzip.decompress(snap.read_bytes()).replace(b"CAR", b"CAr", 1)))
        changed = _fingerprint(first_run, protocol=protocol)
        assert changed["protocol"] == first_run["manifest"]["inputs"]["protocol"]   # same YAML, other snapshot
    elif part == "versions":
        changed = _fingerprint(first_run, versions=dict(pipeline.package_versions(), pandas="0.0.1"))
    else:
        changed = _fingerprint(first_run, offline=False)
    assert changed != first_run["manifest"]["inputs"]
    assert run_inputs.current_run(results, changed) is None


def test_code_digest_follows_every_file_but_the_bytecode_cache(tmp_path):
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "templates.html").write_text("<p>{{ x }}</p>")
    first = run_inputs.tree_digest(tmp_path)
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert run_inputs.tree_digest(tmp_path) == first
    (tmp_path / "pkg" / "templates.html").write_text("<p>{{ y }}</p>")
    assert run_inputs.tree_digest(tmp_path) != first


def test_a_reviewers_decision_makes_the_next_run_run_and_force_runs_anyway(first_run):
    base, store_path = first_run["base"], first_run["base"] / "reviews" / "car-t-autoimmune" / pipeline.STORE_NAME
    with ReviewStore(store_path) as store:
        record_id = store.records()["record_id"].iloc[0]
        decisions.record_decision(store, record_id, "alice", "maybe", note="check the full text")
    assert run_inputs.current_run(first_run["run_dir"].parent, _fingerprint(first_run)) is None
    before = _runs(base)
    code, out = _run(first_run["protocol"], base)
    assert code == 0 and "nothing changed" not in out
    new = [r for r in _runs(base) if r not in before]
    assert len(new) == 1
    manifest = json.loads((base / "results" / "car-t-autoimmune" / new[0] / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["inputs"]["store"] != first_run["manifest"]["inputs"]["store"]
    code, out = _run(first_run["protocol"], base)          # now current again
    assert code == 0 and f"nothing changed since run {new[0]}" in out and len(_runs(base)) == len(before) + 1
    # forced (the steps of run_review, as the CLI's --force does), with a reviewer deciding while it runs
    plan = pipeline.prepare_run(first_run["protocol"], results_dir=base / "results", reviews_dir=base / "reviews",
                                force=True)
    assert plan.current is None and plan.run_dir.name not in before
    timings = pipeline.execute_run(plan)
    with ReviewStore(store_path) as store:
        decisions.record_decision(store, record_id, "bob", "include")
    pipeline.publish_run(plan, timings)
    pipeline.record_run(plan)
    pipeline.point_latest(plan)
    manifest = json.loads((plan.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and "inputs" not in manifest   # bob's decision may not be in its pages
    assert run_inputs.current_run(first_run["run_dir"].parent, _fingerprint(first_run)) is None


def test_only_rows_a_reviewer_wrote_count_as_written_meanwhile(tmp_path):
    path = tmp_path / "review.sqlite"
    with ReviewStore(path) as store:
        store.add_records(pd.DataFrame([{"record_id": "pmid:1", "pmid": "1", "title": "CAR-T in lupus"}]))
        marks = run_inputs.reviewer_marks(path)
        digest = run_inputs.store_digest(path)
        store.connection.execute("INSERT INTO decisions (record_id, reviewer, stage, decision, kind, created_at) "
                                 "VALUES ('pmid:1', 'rules', 'title-abstract', 'exclude', 'rule', 'now')")
        store.connection.commit()
        assert run_inputs.reviewer_rows_since(path, marks, {"rules"}) == 0       # the run's own rule decision
        decisions.record_decision(store, "pmid:1", "alice", "include")
        assert run_inputs.reviewer_rows_since(path, marks, {"rules"}) == 1
        assert run_inputs.reviewer_rows_since(path, marks, {"rules", "alice"}) == 0
    assert run_inputs.store_digest(path) != digest
    assert run_inputs.reviewer_marks(tmp_path / "none.sqlite") == {}


def test_a_run_whose_pages_are_gone_is_not_current(first_run, tmp_path):
    copy = tmp_path / "results" / "car-t-autoimmune"
    shutil.copytree(first_run["run_dir"], copy / first_run["run_dir"].name)
    inputs = first_run["manifest"]["inputs"]
    assert run_inputs.current_run(copy, inputs) == copy / first_run["run_dir"].name
    (copy / first_run["run_dir"].name / "04-report.html").unlink()
    assert run_inputs.current_run(copy, inputs) is None


def test_a_kernel_holding_more_than_the_limit_is_restarted_and_the_run_is_the_same(first_run, tmp_path, monkeypatch):
    monkeypatch.setenv("REVIEWLIB_KERNEL_RESTART_MB", "1")    # every kernel holds more than 1 MB
    result = pipeline.run_review(first_run["protocol"], results_dir=tmp_path / "results",
                                 reviews_dir=tmp_path / "reviews")
    rows = result.manifest["notebooks"]
    main_line = [r for r in rows if not r.get("beside")]     # the side notebook has a kernel of its own anyway
    assert [bool(r.get("fresh_kernel")) for r in main_line] == [False] + [True] * (len(main_line) - 1)
    assert len(main_line) == len(rows) - 1 and len(main_line) >= 4
    assert all(r["rss_mb"] > 0 for r in rows)
    same = json.loads((first_run["run_dir"] / "pmids.json").read_text())
    assert json.loads((result.run_dir / "pmids.json").read_text()) == same
    assert result.manifest["counts"] == first_run["manifest"]["counts"]


@pytest.mark.parametrize("value", ["lots", "0", "-5"])
def test_a_kernel_limit_that_is_not_a_positive_number_is_refused(monkeypatch, value):
    from reviewlib.errors import ConfigError
    monkeypatch.setenv("REVIEWLIB_KERNEL_RESTART_MB", value)
    with pytest.raises(ConfigError, match="REVIEWLIB_KERNEL_RESTART_MB.*positive number of megabytes"):
        pipeline.kernel_restart_mb()
