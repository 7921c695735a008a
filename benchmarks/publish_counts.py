"""The manifest's stage counts (``pipeline.stage_counts``) of a finished run: a git revision's code against this
checkout's, on the same review in the same run (issue 15: at 100k records they were the largest part of
publishing a run, done in ``reviewlib run``'s own process after the notebooks).

    nice .venv/bin/python benchmarks/publish_counts.py --base /tmp/lead100 --old bb355c3

``--base`` is a folder holding ``results/`` and ``reviews/`` of a ``reviewlib run --results BASE/results
--reviews BASE/reviews`` (e.g. of ``$TMPDIR/reviewlib-scale/records-100000-protocol.yaml``, built by
``benchmarks/scale.py``).  Each tree runs in a fresh process; the script prints CPU seconds, the ratio, and
whether both trees give the same counts.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from peer import export_revision

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import glob, json, sys, time
from pathlib import Path
from reviewlib import pipeline
from reviewlib.report import living
from reviewlib.store import ReviewStore
base = sys.argv[1]
run_dir = Path(sorted(glob.glob(base + "/results/*/2*/"))[-1])
with ReviewStore(glob.glob(base + "/reviews/*/" + pipeline.STORE_NAME)[0]) as store:
    sets, search = living.load_sets(run_dir), pipeline._search_facts(store, run_dir.name)
    prisma = json.loads((run_dir / living.COUNTS_FILE).read_text())
    t = time.process_time()
    counts = pipeline.stage_counts(store, run_dir.name, search, sets, prisma_counts=prisma)
    print(json.dumps({"cpu": time.process_time() - t, "counts": counts}, sort_keys=True, default=str))
'''


def _measure(tree: Path, base: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(base)], check=True, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tree)}, cwd=str(tree))
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="folder with results/ and reviews/ of a run")
    parser.add_argument("--old", default="main", help="git revision to compare against (default: main)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = export_revision(args.old, Path(tmp) / "old")
        old, new = _measure(old_tree, args.base), _measure(ROOT, args.base)
    print(f"stage_counts CPU s: {args.old} {old['cpu']:.2f}, this checkout {new['cpu']:.2f}, "
          f"ratio {old['cpu'] / new['cpu']:.1f}x; same counts: {old['counts'] == new['counts']}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
