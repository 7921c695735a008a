"""Following the README in JupyterLab (open a notebook, run it, save) never leaves git dirty.

A real Jupyter server, started with the project's own config (notebooks/jupyter-config/, as ``make run``
installs it), saves notebooks through its contents API, exactly as JupyterLab's Save and autosave
do.  The notebook it saves is 02-screen.ipynb, committed into a scratch git repository.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from reviewlib.notebook_saving import is_tracked, strip_outputs, strip_tracked_outputs

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "02-screen.ipynb"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is needed: the rule is 'tracked by git'")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path) -> Path:
    """A scratch checkout with 02-screen.ipynb committed under notebooks/."""
    repo = tmp_path / "checkout"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copy(NOTEBOOK, repo / "notebooks" / NOTEBOOK.name)
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")   # the project's (it ignores .ipynb_checkpoints/)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "notebook")
    return repo


def _as_run(notebook: dict) -> dict:
    """The notebook as JupyterLab holds it after Run All: outputs, counts, widget state, kernel info."""
    ran = copy.deepcopy(notebook)
    count = 0
    for cell in ran["cells"]:
        if cell["cell_type"] == "code":
            count += 1
            cell["execution_count"] = count
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": f"output of cell {count}\n"},
                               {"output_type": "display_data", "metadata": {},
                                "data": {"text/html": "<b>Screening status</b>", "text/plain": "status"}}]
            cell["metadata"]["execution"] = {"iopub.status.busy": "2026-12-01T10:00:00.000Z"}
    ran["metadata"]["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python",
                                        "codemirror_mode": {"name": "ipython", "version": 3},
                                        "file_extension": ".py", "nbconvert_exporter": "python",
                                        "pygments_lexer": "ipython3"}
    ran["metadata"]["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    ran["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                                "version_minor": 0}}
    return ran


def test_strip_outputs_gives_back_the_tracked_notebook():
    tracked = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    ran = _as_run(tracked)
    ran["metadata"]["kernelspec"] = tracked["metadata"]["kernelspec"]   # (kept by strip_tracked_outputs)
    stripped = strip_outputs(ran)
    assert nbformat.writes(nbformat.from_dict(stripped)) + "\n" == NOTEBOOK.read_text(encoding="utf-8")


def test_hook_leaves_an_untracked_copy_alone(repo):
    copy_path = repo / "notebooks" / "my-copy.ipynb"
    copy_path.write_text("{}", encoding="utf-8")
    ran = _as_run(json.loads(NOTEBOOK.read_text(encoding="utf-8")))
    model = {"type": "notebook", "content": copy.deepcopy(ran)}
    strip_tracked_outputs(model, str(copy_path))
    assert model["content"] == ran
    assert not is_tracked(copy_path) and is_tracked(repo / "notebooks" / NOTEBOOK.name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyter_server(repo, tmp_path):
    """A real Jupyter server on 127.0.0.1 over ``repo``, configured only by the project's jupyter-config/."""
    port, token = _free_port(), "reviewlib-test-token"
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(ROOT / "notebooks" / "jupyter-config"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "user-config"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}",
                             "--ip=127.0.0.1", f"--IdentityProvider.token={token}",
                             f"--ServerApp.root_dir={repo}", "--ServerApp.port_retries=0", "--allow-root"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.close()
                pytest.fail("the Jupyter server did not start:\n" + (tmp_path / "server.log").read_text())
            time.sleep(0.2)
    try:
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _put(base: str, token: str, path: str, notebook: dict) -> None:
    body = json.dumps({"type": "notebook", "format": "json", "content": notebook}).encode()
    req = urllib.request.Request(f"{base}/api/contents/{path}", data=body, method="PUT",
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as answer:
        assert answer.status in (200, 201)


@pytest.mark.slow
def test_saving_a_run_notebook_in_jupyter_leaves_git_clean(repo, jupyter_server):
    base, token = jupyter_server
    tracked = repo / "notebooks" / NOTEBOOK.name
    before = tracked.read_bytes()
    ran = _as_run(json.loads(before))
    _put(base, token, f"notebooks/{NOTEBOOK.name}", ran)
    assert _git(repo, "status", "--porcelain") == "", _git(repo, "diff")
    assert tracked.read_bytes() == before
    # a copy of one's own keeps what the run showed
    _put(base, token, "notebooks/my-copy.ipynb", ran)
    saved = json.loads((repo / "notebooks" / "my-copy.ipynb").read_text(encoding="utf-8"))
    assert sum(len(c.get("outputs", [])) for c in saved["cells"]) > 0
    # an edit to a tracked notebook is still saved (only what running added is dropped)
    edited = copy.deepcopy(ran)
    edited["cells"][0]["source"] = "".join(edited["cells"][0]["source"]) + "\n\nA note of mine."
    _put(base, token, f"notebooks/{NOTEBOOK.name}", edited)
    assert "A note of mine." in tracked.read_text(encoding="utf-8")
    assert '"output_type"' not in tracked.read_text(encoding="utf-8")
