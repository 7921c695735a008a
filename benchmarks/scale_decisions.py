"""Notebooks 02-05's rule, decision and included-record cells, a git revision's library against this tree's, on
copies of the same review in the same run (issue 15, scale5c).

Each side gets its own copy of a review as notebook 01 left it (``--review-dir``, never changed), then runs
the code cells of notebooks 02, 03, 04 and 05 on it in that order, each notebook in a fresh process
(``benchmarks/scale_cells.py`` of that side's tree, on this tree's notebooks), and the CPU and wall seconds of
the cells below are summed; the peak RSS is the largest of any notebook's process.  Both sides run cold
(nothing of notebook 02 cached: rules, dedup and the prioritiser are computed by both).

    nice .venv/bin/python benchmarks/scale_decisions.py --protocol /tmp/reviewlib-scale/records-10000-protocol.yaml \\
        --review-dir REVIEWS_AFTER_01/car-t-autoimmune --run-name RUN_ID [--before main]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from peer import export_revision

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("02-screen", "03-extract", "04-report", "05-registry")
#: (notebook, the first line of the cell): the cells this work is about.
CELLS = [("02-screen", "rules = eligibility.load_rules"),
         ("02-screen", "current = decisions.current_decisions"),
         ("02-screen", "fig = figures.screening_progress"),
         ("02-screen", "sought = living.run_included_records"),
         ("02-screen", "full_text = living.run_full_text_assessment"),
         ("02-screen", "included = living.run_included"),
         ("03-extract", "included, registered = registrations.split_sources"),
         ("04-report", "included, registered = registrations.split_sources"),
         ("04-report", "counts = living.run_prisma_counts"),
         ("04-report", "changes = living.compare_with_previous"),
         ("04-report", "living.save_run_state"),
         ("05-registry", "included = living.run_included_records")]
#: Beside them: the screening-status cell (its first replay of the log, with the prioritiser's TF-IDF).
OTHER = [("02-screen", "screening_store = ctx.store")]


def _library_at(revision: str, into: Path) -> Path:
    return export_revision(revision, into, "reviewlib", "notebooks", "benchmarks", "pyproject.toml")


def _run(library: Path, args, scratch: Path) -> tuple[dict, float]:
    review = scratch / "review"
    shutil.copytree(args.review_dir, review)
    cells: dict[tuple[str, str], tuple[float, float]] = {}
    peak = 0.0
    for notebook in NOTEBOOKS:
        out = subprocess.run([sys.executable, str(library / "benchmarks/scale_cells.py"),
                              str(ROOT / "notebooks" / f"{notebook}.ipynb"), "--protocol", args.protocol,
                              "--review-dir", str(review), "--output-dir", str(scratch / "out"),
                              "--run-name", args.run_name],
                             capture_output=True, text=True, check=True,
                             env=dict(os.environ, PYTHONPATH=str(library))).stdout
        for line in out.splitlines():
            m = re.match(r"\s+\d+\s+([\d.]+)\s+([\d.]+)\s+RSS \d+ kB, peak (\d+) kB\s+(.*)", line)
            if m:
                peak = max(peak, int(m.group(3)) / 1024)
                for nb, first in CELLS + OTHER:
                    if nb == notebook and m.group(4).startswith(first):
                        cells[(nb, first)] = (float(m.group(1)), float(m.group(2)))
    shutil.rmtree(review)
    return cells, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--review-dir", required=True, help="a review as notebook 01 left it (copied, never changed)")
    parser.add_argument("--run-name", required=True)
    parser.add_argument("--before", default="main")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        before, peak_before = _run(_library_at(args.before, tmp / "peer"), args, tmp / "before")
        after, peak_after = _run(ROOT, args, tmp / "after")
    print(f"notebooks 02-05, rule/decision/included cells: {args.before} against this tree "
          f"(load {load:.1f} -> {os.getloadavg()[0]:.1f}); CPU s (wall s)")
    total = [0.0, 0.0, 0.0, 0.0]
    for key in CELLS + OTHER:
        (b, bw), (a, aw) = before.get(key, (0.0, 0.0)), after.get(key, (0.0, 0.0))
        if key in CELLS:
            total = [total[0] + b, total[1] + bw, total[2] + a, total[3] + aw]
        label = f"{key[0]}: {key[1]}" + ("  [beside: TF-IDF]" if key in OTHER else "")
        print(f"  {label:<68} {b:7.2f} ({bw:6.2f}) -> {a:7.2f} ({aw:6.2f})   {b / a if a else float('nan'):5.2f}x")
    print(f"  {'total of the cells above (without the one beside)':<68} {total[0]:7.2f} ({total[1]:6.2f}) -> "
          f"{total[2]:7.2f} ({total[3]:6.2f})   {total[0] / total[2]:5.2f}x")
    print(f"  {'peak RSS of any notebook process, MB':<68} {peak_before:7.0f} -> {peak_after:7.0f}")


if __name__ == "__main__":
    main()
