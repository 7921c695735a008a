"""Notebook 01's steps one by one, old code against new, on the same input in the same run (issue 15).

For each source tree (``--old``: a git revision exported with ``git archive``, default ``main``; new:
this checkout), in a fresh Python process on a fresh store:

* ``cut``: the notebook's process decompressing the snapshot and cutting it into pieces;
* ``pieces``: the workers' work, done here one piece after another (so it is this process's CPU):
  the old tree's ``_parse_piece(piece, True)`` (columns and JSON), the new tree's ``"rows"``;
* ``read``: the snapshot's read as ``load_snapshot`` does it (the process's own CPU, then its
  workers'), ``store``: writing what it read into the store;
* ``overview``: notebook 01's overview (``records_view.record_columns`` of its columns,
  ``report.records_overview`` and the full table's CSV).

It prints CPU seconds per step and the ratio old / new.  On a shared machine quote CPU seconds; the
load average is printed beside them.

    nice .venv/bin/python benchmarks/search_steps.py --size 10000 --old main
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
import json, resource, sys, tempfile, time
from pathlib import Path
snapshot, work = sys.argv[1], Path(sys.argv[2])
from reviewlib.sources import pubmed_xml as px
from reviewlib.store import ReviewStore
from reviewlib import records_view, report
from reviewlib.report import large_tables

def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime

out = {}
def step(name, run):
    (s0, c0) = cpu()
    result = run()
    (s1, c1) = cpu()
    out[name] = [s1 - s0, c1 - c0]
    return result

def cut():
    stream, to_close = px._open(snapshot, skip=False)
    pieces = list(px._pieces(stream, px.PARALLEL_CHUNK_BYTES))
    for handle in to_close:
        handle.close()
    return pieces
pieces = step("cut", cut)
rows_mode = hasattr(px, "read_pubmed_xml_store_rows")
step("pieces", lambda: [px._parse_piece(p, "rows" if rows_mode else True) for p in pieces])
del pieces
store = ReviewStore(work / "review.sqlite")
search_id = store.add_search("snapshot", "q", count=0, status="started")
if rows_mode:
    frame, rows = step("read", lambda: px.read_pubmed_xml_store_rows(snapshot))
    step("store", lambda: store.add_encoded_records(rows, search_id=search_id) if rows is not None
         else store.add_records(frame, search_id=search_id))
else:
    frame, encoded = step("read", lambda: px.read_pubmed_xml_encoded(snapshot))
    step("store", lambda: store.add_records(frame, search_id=search_id, encoded=encoded))
    del encoded
frame = rows = None

def overview():
    shown = records_view.record_columns(store, records_view.OVERVIEW_COLUMNS, search_id=search_id)
    table = report.records_overview(shown)
    large_tables.write_full_table(table, "records", work / "tables")
    return len(table)
out["n"] = step("overview", overview)
out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
'''

STEPS = ["cut", "pieces", "read", "store", "overview"]


def _run(tree: Path, snapshot: Path, work: Path) -> dict:
    work.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(snapshot), str(work)], check=True,
                          capture_output=True, text=True, env=env, cwd=str(tree))
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--old", default="main", help="git revision of the old code (default main)")
    parser.add_argument("--inputs", type=Path,
                        default=Path(os.environ.get("TMPDIR", "/tmp")) / "reviewlib-scale")
    args = parser.parse_args()
    snapshot = args.inputs / f"records-{args.size}.xml.gz"
    if not snapshot.is_file():
        sys.exit(f"{snapshot} not found: build the inputs with benchmarks/scale.py --sizes {args.size}")
    head = short_revision()
    old_rev = short_revision(args.old, check=True)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="search-steps-") as tmp:
        old_tree = export_revision(args.old, Path(tmp) / "old")
        old = _run(old_tree, snapshot, Path(tmp) / "old-work")
        new = _run(ROOT, snapshot, Path(tmp) / "new-work")
    print(f"notebook 01's steps at {args.size} records ({old['n']} in the overview): CPU s, this process + "
          f"its workers; old {old_rev}, new {head} (working tree)")
    print(f"  {'step':<10} {'old':>16} {'new':>16} {'old/new':>8}")
    for name in STEPS:
        o, n = sum(old[name]), sum(new[name])
        print(f"  {name:<10} {old[name][0]:7.2f} + {old[name][1]:6.2f} {new[name][0]:7.2f} + {new[name][1]:6.2f} "
              f"{o / n if n else float('nan'):7.2f}x")
    print(f"  peak RSS of this benchmark process (it holds every piece at once): old {old['peak_mb']:.0f} MB, new {new['peak_mb']:.0f} MB; load average "
          f"{load} -> " + " ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
