"""Notebook 01 (search) cold, old code against new, on the same input in the same run (issue 15).

Each round runs the code cells of ``notebooks/01-search.ipynb`` of two source trees (``--old``: a git
revision, exported with ``git archive`` into a temporary folder, default ``main``; new: this checkout),
each in a fresh Python process on an empty review folder (a cold search: parse the snapshot, ingest
it into a new store, the registry search, the overview tables), with the parameters
``reviewlib run`` injects (``interactive=False``).  It prints each cell's CPU seconds (the process's
own and its worker processes'), wall seconds, the peak RSS, and the ratio old / new of the totals.

    nice .venv/bin/python benchmarks/scale_search.py --size 10000
    nice .venv/bin/python benchmarks/scale_search.py --size 100000 --old main --repeat 1

The inputs are ``benchmarks/scale.py``'s (``$TMPDIR/reviewlib-scale/records-N.xml.gz`` and
``records-N-protocol.yaml``): build them with ``benchmarks/scale.py`` first.  On a shared machine
quote CPU seconds; wall seconds depend on the load average printed beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from peer import export_revision, short_revision

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import json, os, resource, sys, time
tree, protocol, review_dir, output_dir = sys.argv[1:5]
sys.path.insert(0, tree)
os.chdir(tree)
import matplotlib
matplotlib.use("Agg")
from IPython.display import display

def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime

nb = json.load(open(os.path.join(tree, "notebooks", "01-search.ipynb"), encoding="utf-8"))
cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
namespace = {"display": display, "__name__": "__main__"}
injected = dict(protocol=protocol, review_dir=review_dir, output_dir=output_dir, run_name="bench",
                offline=True, interactive=False)
rows = []
out, sys.stdout = sys.stdout, open(os.devnull, "w")
try:
    for k, cell in enumerate(cells):
        source = "\n".join(line for line in "".join(cell["source"]).splitlines()
                           if not line.lstrip().startswith(("%", "!")))
        (s0, c0), t0 = cpu(), time.perf_counter()
        exec(compile(source, f"cell {k + 1}", "exec"), namespace)
        (s1, c1), t1 = cpu(), time.perf_counter()
        if k == 0:
            namespace.update(injected)
        first = next((line for line in source.splitlines() if line.strip() and not line.startswith("#")), "")
        rows.append([k + 1, s1 - s0, c1 - c0, t1 - t0, first[:70]])
finally:
    sys.stdout = out
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"cells": rows, "peak_mb": peak}))
'''


def _export(rev: str, into: Path) -> Path:
    """The source tree of git revision ``rev`` (git archive), in ``into``."""
    return export_revision(rev, into)


def _run(tree: Path, protocol: Path, work: Path) -> dict:
    review, output = work / "reviews", work / "out"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(protocol), str(review), str(output)],
                          check=True, capture_output=True, text=True, env=env, cwd=str(tree))
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--old", default="main", help="git revision of the old code (default main)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--inputs", type=Path,
                        default=Path(os.environ.get("TMPDIR", "/tmp")) / "reviewlib-scale")
    args = parser.parse_args()
    protocol = args.inputs / f"records-{args.size}-protocol.yaml"
    if not protocol.is_file():
        sys.exit(f"{protocol} not found: build the inputs with benchmarks/scale.py --sizes {args.size}")
    head = short_revision()
    old_rev = short_revision(args.old, check=True)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    totals: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="scale-search-") as tmp:
        old_tree = _export(args.old, Path(tmp) / "old")
        for r in range(args.repeat):
            for label, tree in (("old", old_tree), ("new", ROOT)):
                result = _run(tree, protocol, Path(tmp) / f"{label}-{r}")
                print(f"{label} ({old_rev if label == 'old' else head + ' (working tree)'}), {args.size} records, "
                      f"round {r + 1}: cell, CPU s (this process + workers), wall s; peak RSS "
                      f"{result['peak_mb']:.0f} MB")
                for k, own, workers, wall, first in result["cells"]:
                    print(f"  {k:>2}  {own:7.2f} + {workers:6.2f}  {wall:7.2f}  {first}")
                cpu = sum(c[1] + c[2] for c in result["cells"])
                wall = sum(c[3] for c in result["cells"])
                print(f"  total CPU {cpu:.1f} s, wall {wall:.1f} s")
                totals[label].append((cpu, wall))
    best = {k: (min(c for c, _ in v), min(w for _, w in v)) for k, v in totals.items()}
    print(f"notebook 01 cold at {args.size}: CPU s old {best['old'][0]:.1f} / new {best['new'][0]:.1f} = "
          f"{best['old'][0] / best['new'][0]:.2f}x; wall s old {best['old'][1]:.1f} / new {best['new'][1]:.1f} = "
          f"{best['old'][1] / best['new'][1]:.2f}x (best of {args.repeat}); load average {load} -> "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
