"""Notebook 02's first two steps on a cold review: records reload, dedup, rules (issue 15, task scale4b).

Cold: the review store as notebook 01 leaves it (records ingested, nothing deduplicated, no rule
outcome kept, no rule decision), in a fresh process (no records table in memory).  The steps are
notebook 02's cells "records + dedup" and "rules", timed one library call at a time:

* ``living.run_records`` (the records table read back from the store),
* ``dedup_cache.deduplicate_cached`` (deduplicate, save, keep the cache),
* ``rule_cache.apply_rules_cached`` and ``eligibility.save_rule_decisions``.

Each repeat works on a fresh copy of ``--store`` (the folder holding ``review.sqlite`` after notebook
01 ran: ``benchmarks/scale_cells.py notebooks/01-search.ipynb --review-dir FOLDER ...`` on an empty
folder makes one).  ``--peer PATH`` runs the same steps with the reviewlib checkout at PATH in a
subprocess on another copy (main, say), so the ratio old / new is of the same input in the same run;
both print a digest of the dedup result and the rule decisions, which must be equal.

    nice .venv/bin/python benchmarks/scale_dedup_rules_cold.py --store /tmp/cold10k/pristine \\
        --protocol $TMPDIR/reviewlib-scale/records-10000-protocol.yaml --run-name RUN_ID [--peer /work/main]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peer import fresh_review_copy   # benchmarks/peer.py (this script's folder)

ROOT = Path(__file__).resolve().parent.parent


def _steps(store_dir: Path, protocol: str, run_name: str, profile: bool) -> dict:
    import cProfile
    import pstats
    from reviewlib import pipeline
    from reviewlib.report import living
    from reviewlib.screening import dedup, dedup_cache, eligibility, rule_cache
    ctx = pipeline.open_review(protocol, review_dir=str(store_dir), output_dir=str(store_dir / "out"),
                               run_name=run_name, offline=True)
    times, prof = {}, cProfile.Profile()

    def timed(name, fn):
        c0, t0 = time.process_time(), time.perf_counter()
        if profile:
            prof.enable()
        out = fn()
        if profile:
            prof.disable()
        times[name] = (time.process_time() - c0, time.perf_counter() - t0)
        return out

    records = timed("run_records", lambda: living.run_records(ctx.store, ctx.run_name))
    deduped = timed("deduplicate_cached", lambda: dedup_cache.deduplicate_cached(
        ctx.store, records, ctx.store.trials(), marks=dedup.current_marks(ctx.store)))
    rules = eligibility.load_rules(ctx.protocol)
    proposed = timed("apply_rules_cached", lambda: rule_cache.apply_rules_cached(ctx.store, deduped.records, rules))
    timed("save_rule_decisions", lambda: eligibility.save_rule_decisions(ctx.store, proposed, rules))
    digest = hashlib.sha256()
    digest.update(deduped.records["record_id"].to_json().encode())
    digest.update(deduped.audit.to_json().encode())
    digest.update(deduped.uncertain.to_json().encode())
    digest.update(proposed.to_json().encode())
    rows = ctx.store.connection.execute("SELECT record_id, stage, decision, reason, reviewer FROM decisions "
                                        "ORDER BY rowid").fetchall()
    digest.update(json.dumps([list(r) for r in rows]).encode())
    if profile:
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
    import resource
    return {"times": times, "digest": digest.hexdigest(), "n": len(records), "removed": int(deduped.n_removed),
            "rows": len(rows), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="folder of review.sqlite after notebook 01")
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--run-name", required=True)
    parser.add_argument("--peer", type=Path, help="another reviewlib checkout to run on the same input")
    parser.add_argument("--profile", action="store_true", help="cProfile's top functions on stderr")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)   # the peer's answer
    args = parser.parse_args()
    if not args.json:                 # the peer imports its own checkout (PYTHONPATH)
        sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as folder:
        if args.json:
            import reviewlib
            assert Path(reviewlib.__file__).resolve().is_relative_to(Path.cwd().resolve()), reviewlib.__file__
            print(json.dumps(_steps(fresh_review_copy(args.store, Path(folder)), args.protocol, args.run_name, False)))
            return
        peer = None
        if args.peer:
            env = dict(os.environ, PYTHONPATH=str(args.peer))
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--store", str(args.store),
                                  "--protocol", args.protocol, "--run-name", args.run_name, "--json"],
                                 env=env, cwd=args.peer, check=True, capture_output=True, text=True).stdout
            peer = json.loads(out.strip().splitlines()[-1])
        mine = _steps(fresh_review_copy(args.store, Path(folder)), args.protocol, args.run_name, args.profile)
    print(f"{mine['n']} records, {mine['removed']} duplicates removed, {mine['rows']} decision rows; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"  {'step':<22} {'CPU s':>8} {'wall s':>8}" + (f" {'peer CPU s':>11} {'peer wall s':>11} {'ratio CPU':>9}"
                                                         if peer else ""))
    total, peer_total = 0.0, 0.0
    for name, (cpu, wall) in mine["times"].items():
        total += cpu
        line = f"  {name:<22} {cpu:8.2f} {wall:8.2f}"
        if peer:
            pc, pw = peer["times"][name]
            peer_total += pc
            line += f" {pc:11.2f} {pw:11.2f} {pc / max(cpu, 1e-9):8.1f}x"
        print(line)
    print(f"  {'total':<22} {total:8.2f}" + (f" {'':>8} {peer_total:11.2f} {'':>11} {peer_total / total:8.1f}x"
                                             if peer else ""))
    print(f"  peak RSS of the process: {mine['peak_mb']:.0f} MB" + (f" (peer {peer['peak_mb']:.0f} MB)" if peer else ""))
    if peer:
        same = peer["digest"] == mine["digest"]
        print(f"  results equal to the peer's (dedup records, audit, uncertain pairs, rule outcomes, decisions): {same}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
