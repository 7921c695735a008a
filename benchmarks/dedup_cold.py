"""Notebook 02's records + dedup + save cell on a cold review, this checkout against a git revision (task scale5b).

Cold: the review store as notebook 01 leaves it (records ingested, nothing deduplicated), in a fresh
process each.  Timed one library call at a time, as the cell makes them:

* ``living.run_records`` (the records table decoded from the store),
* ``dedup_cache.deduplicate_cached`` (deduplicate, save, keep the cache),

then the same call again (``rerun_read_back``: what an unchanged rerun does, the key and the result read
back from the cache; not in the cell total), then the store's size after a WAL checkpoint.  ``--old REV`` exports that revision (``git archive``,
benchmarks/peer.py) and runs the same steps with it in a subprocess on another fresh copy of the same
store, so old / new is of the same input in the same run.  Both print a digest of what a later step sees:
the dedup result (unique records, audit, uncertain pairs), ``dedup.load`` of the store, and the saved
``dedup_records`` rows (record ids and content hashes, which key the rule cache): they must be equal.

    nice .venv/bin/python benchmarks/dedup_cold.py --store /tmp/p1/reviews-after01/car-t-autoimmune \\
        --protocol $TMPDIR/reviewlib-scale/records-100000-protocol.yaml --run-name R1 --old main
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peer import fresh_review_copy   # benchmarks/peer.py (this script's folder)

ROOT = Path(__file__).resolve().parent.parent


def _frame_digest(digest, frame) -> None:
    digest.update(repr(list(frame.columns)).encode())
    digest.update(frame.to_json(orient="values", default_handler=str).encode())


def _steps(store_dir: Path, protocol: str, run_name: str) -> dict:
    from reviewlib import pipeline
    from reviewlib.report import living
    from reviewlib.screening import dedup, dedup_cache
    ctx = pipeline.open_review(protocol, review_dir=str(store_dir), output_dir=str(store_dir / "out"),
                               run_name=run_name, offline=True)
    times = {}

    def timed(name, fn):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        times[name] = (time.process_time() - c0, time.perf_counter() - t0)
        return out

    records = timed("run_records", lambda: living.run_records(ctx.store, ctx.run_name))
    deduped = timed("deduplicate_cached", lambda: dedup_cache.deduplicate_cached(
        ctx.store, records, ctx.store.trials(), marks=dedup.current_marks(ctx.store)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # an unchanged rerun of the cell's dedup call: the inputs' key, then the result read back from the cache
    again = timed("rerun_read_back", lambda: dedup_cache.deduplicate_cached(
        ctx.store, records, ctx.store.trials(), marks=dedup.current_marks(ctx.store)))
    assert again.records["record_id"].tolist() == deduped.records["record_id"].tolist()
    digest = hashlib.sha256()
    for frame in (deduped.records, deduped.audit, deduped.uncertain):
        _frame_digest(digest, frame)
    loaded = dedup.load(ctx.store)
    for frame in (loaded.records, loaded.audit, loaded.uncertain):
        _frame_digest(digest, frame)
    digest.update(json.dumps([loaded.n_removed, loaded.n_input, loaded.groups]).encode())
    con = ctx.store.connection
    digest.update(json.dumps([list(r) for r in con.execute(
        "SELECT position, record_id, data FROM dedup_records ORDER BY run_id, position")]).encode())
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (store_dir / "review.sqlite").stat().st_size / 1e6
    return {"times": times, "digest": digest.hexdigest(), "n": len(records), "removed": int(deduped.n_removed),
            "peak_mb": peak, "store_mb": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="folder of review.sqlite after notebook 01")
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--run-name", required=True)
    parser.add_argument("--old", help="a git revision to run on the same input (main, say)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)   # the peer's answer
    args = parser.parse_args()
    if args.json:                     # the peer imports its own checkout (PYTHONPATH = cwd)
        import reviewlib
        assert Path(reviewlib.__file__).resolve().is_relative_to(Path.cwd().resolve()), reviewlib.__file__
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(_steps(fresh_review_copy(args.store, Path(folder)), args.protocol, args.run_name)))
        return
    sys.path.insert(0, str(ROOT))
    load_before = os.getloadavg()
    peer = None
    with tempfile.TemporaryDirectory() as folder:
        if args.old:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from peer import export_revision
            checkout = export_revision(args.old, Path(folder) / "old")
            env = dict(os.environ, PYTHONPATH=str(checkout))
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--store", str(args.store),
                                  "--protocol", args.protocol, "--run-name", args.run_name, "--json"],
                                 env=env, cwd=checkout, check=True, capture_output=True, text=True).stdout
            peer = json.loads(out.strip().splitlines()[-1])
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--store", str(args.store),
                              "--protocol", args.protocol, "--run-name", args.run_name, "--json"],
                             env=env, cwd=ROOT, check=True, capture_output=True, text=True).stdout
        mine = json.loads(out.strip().splitlines()[-1])
    print(f"{mine['n']} records, {mine['removed']} duplicates removed; load average "
          f"{' '.join(f'{x:.1f}' for x in load_before)} -> {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    head = f"  {'step':<20} {'CPU s':>7} {'wall s':>7}"
    if peer:
        head += f" {'old CPU s':>10} {'old wall s':>10} {'old/new CPU':>11} {'old/new wall':>12}"
    print(head)
    totals = [0.0, 0.0, 0.0, 0.0]
    for name, (cpu, wall) in mine["times"].items():
        if name != "rerun_read_back":      # not part of the cold cell
            totals[0] += cpu
            totals[1] += wall
        line = f"  {name:<20} {cpu:7.2f} {wall:7.2f}"
        if peer:
            pc, pw = peer["times"][name]
            if name != "rerun_read_back":
                totals[2] += pc
                totals[3] += pw
            line += f" {pc:10.2f} {pw:10.2f} {pc / max(cpu, 1e-9):10.2f}x {pw / max(wall, 1e-9):11.2f}x"
        print(line)
    line = f"  {'cell total':<20} {totals[0]:7.2f} {totals[1]:7.2f}"
    if peer:
        line += (f" {totals[2]:10.2f} {totals[3]:10.2f} {totals[2] / totals[0]:10.2f}x"
                 f" {totals[3] / totals[1]:11.2f}x")
    print(line)
    print(f"  peak RSS {mine['peak_mb']:.0f} MB" + (f" (old {peer['peak_mb']:.0f} MB)" if peer else ""))
    print(f"  store after the cell {mine['store_mb']:.1f} MB" + (f" (old {peer['store_mb']:.1f} MB)" if peer else ""))
    if peer:
        same = peer["digest"] == mine["digest"]
        print(f"  results equal to the old revision's (dedup result, dedup.load, dedup_records): {same}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
