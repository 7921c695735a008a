"""Per-cell CPU seconds and RSS of one review notebook, run in this process (issue 15: where a run's time goes).

``reviewlib run`` executes each notebook in a kernel, out of a profiler's reach; this runs the code
cells of one notebook here, with the parameters the pipeline injects (``interactive=False``), on a
review a run already made, and prints each cell's CPU and wall seconds and the process's RSS and
peak RSS after it (``--profile``: and cProfile's top functions).  It writes to the review store as
the notebook does, like an unchanged rerun of that notebook.

    nice .venv/bin/python benchmarks/scale_cells.py notebooks/02-screen.ipynb \\
        --protocol $TMPDIR/reviewlib-scale/records-100000-protocol.yaml \\
        --review-dir REVIEWS/car-t-autoimmune --output-dir /tmp/cells --run-name RUN_ID [--profile]

(``REVIEWS`` and ``RUN_ID``: the ``--reviews`` folder and the run id of a ``reviewlib run``.)
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss() -> str:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return f"RSS {status['VmRSS'].strip()}, peak {status['VmHWM'].strip()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--review-dir", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--run-name", required=True)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import matplotlib
    matplotlib.use("Agg")
    from IPython.display import display
    cells = [c for c in json.loads(args.notebook.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    namespace = {"display": display, "__name__": "__main__"}
    injected = dict(protocol=args.protocol, review_dir=args.review_dir, output_dir=args.output_dir,
                    run_name=args.run_name, offline=True, interactive=False)
    profile = cProfile.Profile()
    rows = []
    out, sys.stdout = sys.stdout, open(os.devnull, "w")       # the cells' displays
    try:
        for k, cell in enumerate(cells):
            source = "\n".join(line for line in "".join(cell["source"]).splitlines()
                               if not line.lstrip().startswith(("%", "!")))
            c0, t0 = time.process_time(), time.perf_counter()
            if args.profile:
                profile.enable()
            exec(compile(source, f"cell {k + 1}", "exec"), namespace)
            if args.profile:
                profile.disable()
            if k == 0:                                        # the parameters cell: papermill's injection
                namespace.update(injected)
            first = next((line for line in source.splitlines() if line.strip()), "")
            rows.append((k + 1, time.process_time() - c0, time.perf_counter() - t0, _rss(), first[:80]))
    finally:
        sys.stdout = out
    print(f"{args.notebook.name}: cell, CPU s, wall s, memory after it, first line")
    for k, cpu, wall, rss, first in rows:
        print(f"  {k:>2}  {cpu:7.2f}  {wall:7.2f}  {rss}  {first}")
    print(f"  total CPU {sum(r[1] for r in rows):.1f} s; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.profile:
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(40)
        print(text.getvalue())


if __name__ == "__main__":
    main()
