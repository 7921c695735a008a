"""Notebooks that run beside the others: a notebook that reads only what an earlier one wrote starts when that
one is done, in a process and kernel of its own, while the run goes on with the next notebooks.

A notebook says so in its metadata, ``"reviewlib": {"after": "02-screen"}``: it needs ``02-screen`` and the
notebooks before it, nothing after.  ``reviewlib run`` then starts it in a worker process
(``python -m reviewlib.side_notebooks``, which runs it with papermill like :mod:`reviewlib.pipeline` does)
as soon as ``02-screen`` is done, unless it would be next anyway, and waits for it after the last notebook.
On a 2-core machine the registry notebook (05) so runs beside extraction and the report (03, 04).
A failure in either line fails the run with the failing notebook's cell and error; the other line is stopped.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import PipelineError

logger = logging.getLogger(__name__)

__all__ = ["run_after", "SideRun"]


def run_after(path: Path) -> str | None:
    """The notebook (stem) that ``path`` declares it needs, from its ``reviewlib.after`` metadata, or None."""
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, json.JSONDecodeError):
        return None   # pipeline.notebook_parameters reports an unreadable notebook
    after = (meta.get("reviewlib") or {}).get("after")
    return str(after) if after else None


class SideRun:
    """One notebook executing in a worker process; :meth:`wait` gives its timing or raises its failure."""

    def __init__(self, source: Path, executed: Path, parameters: dict[str, Any], cwd: Path, *, timeout: int,
                 kernel_name: str, shared_kernel: bool, beside: str):
        self.source, self.beside = source, beside
        fd, name = tempfile.mkstemp(prefix="reviewlib-side-", suffix=".json")
        os.close(fd)
        self.result_path = Path(name)
        job = {"source": str(source), "executed": str(executed), "parameters": parameters, "cwd": str(cwd),
               "timeout": timeout, "kernel_name": kernel_name, "shared_kernel": shared_kernel,
               "result": str(self.result_path)}
        # its own session: stopping it stops its kernel too
        self.process = subprocess.Popen([sys.executable, "-m", "reviewlib.side_notebooks"], stdin=subprocess.PIPE,
                                        start_new_session=True, text=True)
        self.process.stdin.write(json.dumps(job, default=str))
        self.process.stdin.close()

    def wait(self, timeout: float) -> dict[str, Any]:
        """The notebook's timing row (``beside`` names the notebook it started after); PipelineError if it failed."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise PipelineError(f"notebook {self.source.name} did not finish within {timeout:.0f} s: it was stopped",
                                notebook=self.source.name, ename="TimeoutError") from None
        try:
            result = json.loads(self.result_path.read_text(encoding="utf-8") or "{}")
        except (OSError, json.JSONDecodeError):
            result = {}
        finally:
            self.result_path.unlink(missing_ok=True)
        if "error" in result:
            e = result["error"]
            raise PipelineError(e.get("message") or f"notebook {self.source.name} failed", notebook=e.get("notebook"),
                                cell=e.get("cell"), ename=e.get("ename"), evalue=e.get("evalue"))
        if code != 0 or "timing" not in result:
            raise PipelineError(f"notebook {self.source.name} could not be executed: its worker process ended with "
                                f"exit code {code}", notebook=self.source.name, ename="WorkerExit", evalue=str(code))
        return {**result["timing"], "beside": self.beside}

    def stop(self) -> None:
        """Stop the worker and its kernel (the run failed elsewhere)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.result_path.unlink(missing_ok=True)


def main() -> int:
    """Worker: execute the notebook described on stdin (JSON) and write its timing or its error."""
    job = json.loads(sys.stdin.read())
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from . import pipeline
    result: dict[str, Any]
    kernel = pipeline._Kernel(bool(job["shared_kernel"]), job["kernel_name"])
    try:
        t = time.perf_counter()
        pipeline._execute(kernel, Path(job["source"]), Path(job["executed"]), job["parameters"], Path(job["cwd"]),
                          int(job["timeout"]))
        result = {"timing": {"notebook": Path(job["source"]).name, "seconds": round(time.perf_counter() - t, 2),
                             **kernel.memory()}}
    except PipelineError as exc:
        result = {"error": pipeline._notebook_error(exc)}
    finally:
        kernel.shutdown()
    Path(job["result"]).write_text(json.dumps(result, default=str), encoding="utf-8")
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
