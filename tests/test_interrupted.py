"""Interrupted runs (issue 13): a folder left by a killed run is marked, listed as such, never complete."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reviewlib import runstate
from reviewlib.report import living

ROOT = Path(__file__).resolve().parents[1]
HOLDER = """
import json, sys, time
from pathlib import Path
from reviewlib import runstate
run = Path(sys.argv[1]); run.mkdir(parents=True)
lock = runstate.begin(run)
(run / "manifest.json").write_text(json.dumps({"status": "running", "run_id": run.name, "started_at": sys.argv[2]}))
print("ready", flush=True)
time.sleep(120)
"""


def _hold(run_dir: Path, started: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), started], stdout=subprocess.PIPE,
                            text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_killed_run_is_marked_interrupted_and_a_live_one_is_left_alone(tmp_path):
    root = tmp_path / "results" / "review"
    killed = _hold(root / "20260101T000000Z", "2026-01-01T00:00:00+00:00")
    alive = _hold(root / "20260101T000100Z", "2026-01-01T00:01:00+00:00")
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert runstate.mark_stale_runs(root) == ["20260101T000000Z"]
        manifest = json.loads((root / "20260101T000000Z" / "manifest.json").read_text())
        assert manifest["status"] == "interrupted" and "interrupted_noticed_at" in manifest
        assert runstate.status_of(root / "20260101T000100Z", {"status": "running"}) == "running"
        assert living.complete_runs(root) == []
        assert living.previous_run(root) is None                   # never taken for a complete run
    finally:
        alive.kill()
        alive.wait(timeout=30)
    assert runstate.mark_stale_runs(root) == ["20260101T000100Z"]


def test_the_small_failure_marker_is_written_in_reserved_space(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lock = runstate.begin(run)
    assert (run / ".status").stat().st_size == runstate.MARKER_BYTES
    (run / "manifest.json").write_text(json.dumps({"status": "running"}))
    assert runstate.mark_failed_small(run, {"message": "x" * 10_000, "notebook": "02-screen.ipynb"})
    assert (run / ".status").stat().st_size == runstate.MARKER_BYTES
    lock.release()
    assert runstate.status_of(run, {"status": "running"}) == "failed"
    assert runstate.mark_stale_runs(tmp_path) == ["run"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"]["notebook"] == "02-screen.ipynb"


def _run(*args: str, results: Path, reviews: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "reviewlib", "run", "--offline", "--results", str(results),
                             "--reviews", str(reviews), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"],
                                            "HOME": os.environ.get("HOME", "/root")}, **popen)


@pytest.mark.slow
def test_a_run_killed_mid_way_is_listed_as_interrupted_by_the_next_run(tmp_path):
    results, reviews = tmp_path / "results", tmp_path / "reviews"
    root = results / "car-t-autoimmune"
    killed = _run(results=results, reviews=reviews)
    deadline = time.monotonic() + 240
    while not list(root.glob("*/01-search.ipynb")) and time.monotonic() < deadline:
        time.sleep(0.2)
    killed.kill()                                                   # SIGKILL the run
    killed.wait(timeout=60)
    (killed_id,) = [p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    proc = _run(results=results, reviews=reviews)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    manifest = json.loads((root / killed_id / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert f"run {killed_id} was interrupted" in err
    latest = (root / "latest").resolve().name
    assert latest != killed_id
    index = (root / "index.html").read_text()
    assert killed_id in index and "interrupted" in index
    new_manifest = json.loads((root / latest / "manifest.json").read_text())
    assert (new_manifest.get("living") or {}).get("previous_run") != killed_id   # never the previous complete run


@pytest.mark.slow
def test_a_full_disk_during_a_run_leaves_it_failed_and_no_complete_looking_notebook(tmp_path):
    from test_os_errors import tmpfs
    reviews = tmp_path / "reviews"
    with tmpfs(tmp_path / "small", size="3m") as small:
        proc = _run(results=small, reviews=reviews)
        out, err = proc.communicate(timeout=900)
        assert proc.returncode != 0
        lines = [l for l in err.splitlines() if ": error: " in l]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert "no space left" in lines[0] or "disk is full" in lines[0] or "No space left" in lines[0]
        (run,) = [p for p in (small / "car-t-autoimmune").iterdir() if p.is_dir() and not p.is_symlink()]
        assert runstate.status_of(run, json.loads((run / "manifest.json").read_text())) == "failed"
        for nb in run.glob("*.ipynb"):
            json.loads(nb.read_text())                     # every .ipynb left is whole JSON
        assert not (small / "car-t-autoimmune" / "latest").exists()
        assert living.complete_runs(small / "car-t-autoimmune") == []
