"""A notebook whose metadata says ``reviewlib.after`` runs beside the later notebooks (reviewlib.side_notebooks).

Real papermill runs of small notebooks (a parameters cell and a line or two) in the pipeline's executor:
the side notebook runs in its own worker process and kernel, the manifest says it ran beside, a failure
on either line fails the run with that notebook's cell, and a failed main line stops the worker.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

from reviewlib import pipeline, side_notebooks
from reviewlib.errors import PipelineError

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "notebooks" / "car-t-autoimmune.yaml"
PARAMS = 'run_name = "interactive"\noutput_dir = ""\n'


def _alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _notebook(path: Path, code: str, after: str | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if after:
        nb.metadata["reviewlib"] = {"after": after}
    nbformat.write(nb, str(path))
    return path


def _folder(tmp_path: Path, codes: dict[str, str], after: dict[str, str] | None = None) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in pipeline.run_notebooks(pipeline.load_protocol(PROTOCOL)):
        stem = Path(name).stem
        _notebook(folder / name, codes.get(stem, f"open(output_dir + '/{stem}.done', 'w').write('x')"),
                  (after or {}).get(stem))
    return folder


def _plan(tmp_path: Path, folder: Path):
    return pipeline.prepare_run(PROTOCOL, results_dir=tmp_path / "results", reviews_dir=tmp_path / "reviews",
                                notebooks=folder, force=True)


def test_side_notebook_runs_beside_and_is_reported_in_order(tmp_path):
    pid = "import os\nopen(output_dir + '/{}.pid', 'w').write(str(os.getpid()))"
    folder = _folder(tmp_path, {"04-report": pid.format("04"), "05-registry": pid.format("05")},
                     after={"05-registry": "02-screen"})
    assert side_notebooks.run_after(folder / "05-registry.ipynb") == "02-screen"
    assert side_notebooks.run_after(folder / "04-report.ipynb") is None
    plan = _plan(tmp_path, folder)
    timings = pipeline.execute_run(plan)
    assert [t["notebook"] for t in timings] == [s.name for s in plan.sources]      # the notebooks' order
    assert timings[-1]["beside"] == "02-screen.ipynb" and "beside" not in timings[2]
    # the main line shares one kernel; the side notebook had its own
    assert (plan.run_dir / "04.pid").read_text() != (plan.run_dir / "05.pid").read_text()
    assert all((plan.run_dir / f"{s}.done").is_file() for s in ("01-search", "02-screen", "03-extract"))
    executed = nbformat.read(str(plan.run_dir / "05-registry.ipynb"), as_version=4)
    assert executed.cells[-1].execution_count is not None


def test_a_side_notebook_that_comes_next_anyway_runs_in_line(tmp_path):
    folder = _folder(tmp_path, {}, after={"05-registry": "04-report"})
    plan = _plan(tmp_path, folder)
    timings = pipeline.execute_run(plan)
    assert [t.get("beside") for t in timings] == [None] * 5 and len(plan.sources) == 5


def test_a_failing_side_notebook_fails_the_run_naming_its_cell(tmp_path):
    folder = _folder(tmp_path, {"05-registry": "raise ValueError('the registry cell broke')"},
                     after={"05-registry": "02-screen"})
    plan = _plan(tmp_path, folder)
    with pytest.raises(PipelineError) as info:
        pipeline.execute_run(plan)
    exc = info.value
    assert exc.notebook == "05-registry.ipynb" and exc.ename == "ValueError" and exc.cell == 1
    assert "the registry cell broke" in str(exc) and "05-registry.ipynb" in str(exc)
    manifest = json.loads((plan.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"]["notebook"] == "05-registry.ipynb"
    assert (plan.run_dir / "04-report.done").is_file()                # the main line finished
    failed = nbformat.read(str(plan.run_dir / "05-registry.ipynb"), as_version=4)
    assert any(o.get("output_type") == "error" for o in failed.cells[-1].outputs)   # kept, with its error


def test_a_failing_main_line_stops_the_side_notebook(tmp_path):
    folder = _folder(tmp_path, {
        "05-registry": "import os, time\nopen(output_dir + '/05.pid', 'w').write(str(os.getpid()))\ntime.sleep(600)",
        "03-extract": ("import os, time\nfor _ in range(600):\n    if os.path.exists(output_dir + '/05.pid'):\n"
                       "        break\n    time.sleep(0.1)\nraise RuntimeError('extraction broke')")},
        after={"05-registry": "02-screen"})
    plan = _plan(tmp_path, folder)
    with pytest.raises(PipelineError) as info:
        pipeline.execute_run(plan)
    assert info.value.notebook == "03-extract.ipynb" and "extraction broke" in str(info.value)
    kernel_pid = int((plan.run_dir / "05.pid").read_text())
    for _ in range(200):                                          # the side notebook's kernel was stopped
        if not _alive(kernel_pid):
            break
        time.sleep(0.1)
    assert not _alive(kernel_pid)
    assert json.loads((plan.run_dir / "manifest.json").read_text())["error"]["notebook"] == "03-extract.ipynb"
