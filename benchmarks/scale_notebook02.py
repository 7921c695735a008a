"""Notebook 02's screening cells, a git revision's library against this tree's, on the same review in the same
run (issue 15): CPU seconds of the screening-status / static-summary / prioritiser cell and of the screening
progress + replay cell, and the peak RSS, each from ``benchmarks/scale_cells.py`` in a fresh process.

The review's cached prioritiser TF-IDF (``cache/tfidf-*.npz``) is removed before each run, so both fit it
(a cold run); the dedup and rule caches are read back by both, as in an unchanged rerun.

    nice .venv/bin/python benchmarks/scale_notebook02.py --protocol /tmp/reviewlib-scale/records-10000-protocol.yaml \\
        --review-dir REVIEWS/car-t-autoimmune --run-name RUN_ID [--before main]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from peer import export_revision

ROOT = Path(__file__).resolve().parent.parent
CELLS = {"status, summary, prioritiser": "screening_store = ctx.store",
         "progress figure, replay": "fig = figures.screening_progress"}


def _library_at(revision: str, into: Path) -> Path:
    return export_revision(revision, into, "reviewlib", "notebooks", "benchmarks", "pyproject.toml")


def _cells(library: Path, args) -> dict[str, tuple[float, float]]:
    for cached in (Path(args.review_dir) / "cache").glob("tfidf-*.npz"):
        cached.unlink()
    # that tree's scale_cells.py (it imports the reviewlib beside it), on this tree's notebook 02
    out = subprocess.run([sys.executable, str(library / "benchmarks/scale_cells.py"), str(ROOT / "notebooks/02-screen.ipynb"),
                          "--protocol", args.protocol, "--review-dir", args.review_dir,
                          "--output-dir", tempfile.mkdtemp(), "--run-name", args.run_name],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(library))).stdout
    found, peak = {}, 0.0
    for line in out.splitlines():
        m = re.match(r"\s+\d+\s+([\d.]+)\s+([\d.]+)\s+RSS \d+ kB, peak (\d+) kB\s+(.*)", line)
        if m:
            peak = max(peak, int(m.group(3)) / 1024)
            for name, first in CELLS.items():
                if m.group(4).startswith(first):
                    found[name] = (float(m.group(1)), float(m.group(2)))
    found["peak RSS MB"] = (peak, peak)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--review-dir", required=True)
    parser.add_argument("--run-name", required=True)
    parser.add_argument("--before", default="main")
    args = parser.parse_args()
    before = _cells(_library_at(args.before, Path(tempfile.mkdtemp())), args)
    after = _cells(ROOT, args)
    print(f"notebook 02 cells: {args.before} against this tree; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for name in list(CELLS) + ["peak RSS MB"]:
        (b, bw), (a, aw) = before[name], after[name]
        unit = "" if name.startswith("peak") else f" CPU s (wall {bw:.2f} -> {aw:.2f})"
        print(f"  {name:<30} {b:8.2f} -> {a:8.2f}{unit}   ratio {b / a:.2f}x")


if __name__ == "__main__":
    main()
