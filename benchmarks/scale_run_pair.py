"""A cold ``reviewlib run`` of this checkout against a git revision's, alternately, on the same input.

This machine's speed drifts (a fixed Python loop took 2.6 to 3.4 CPU s within minutes), so the whole
run of two versions is compared pair by pair: A (this checkout) then B (the revision, exported with
``git archive``), A, B, ..., each a cold run (fresh results and reviews folders) of the same protocol,
offline.  Each run's wall seconds, CPU seconds (every process of the run: ``RUSAGE_CHILDREN``), and
notebook seconds (from the manifest) are printed, then each pair's ratio A / B and the medians.

    nice .venv/bin/python benchmarks/scale_run_pair.py --protocol $TMPDIR/reviewlib-scale/records-100000-protocol.yaml --old 7da929f --pairs 2

The revision runs with this checkout's virtual environment, its own code and notebooks first on
``PYTHONPATH`` (the kernels and worker processes it starts inherit it).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peer import export_revision, short_revision   # benchmarks/peer.py (this script's folder)

ROOT = Path(__file__).resolve().parent.parent


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cold_run(tree: Path, protocol: str, work: Path) -> dict:
    """One cold run of the reviewlib in ``tree``: wall s, CPU s of all its processes, notebook s."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    for name in ("results", "reviews"):
        subprocess.run(["rm", "-rf", str(work / name)], check=True)
    cmd = [sys.executable, "-m", "reviewlib", "run", protocol, "--offline", "--results", str(work / "results"),
           "--reviews", str(work / "reviews")]
    t0, c0 = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if proc.returncode != 0:
        raise SystemExit(f"run of {tree} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    manifest = json.loads(next((work / "results").glob("*/latest/manifest.json")).read_text())
    return {"wall": wall, "cpu": cpu,
            "notebooks": {nb["notebook"][:2]: round(nb["seconds"], 1) for nb in manifest["notebooks"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", required=True, help="a protocol YAML (its snapshot is the input)")
    parser.add_argument("--old", required=True, help="the git revision to compare against (B)")
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    commit = short_revision()
    print(f"A = this checkout ({commit}), B = {args.old}; {args.pairs} pairs; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    ratios: dict[str, list[float]] = {"wall": [], "cpu": []}
    runs: dict[str, list[dict]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory(prefix="reviewlib-pair-") as tmp:
        tmp = Path(tmp)
        old_tree = export_revision(args.old, tmp / "old")
        for i in range(args.pairs):
            for label, tree in (("A", ROOT), ("B", old_tree)):
                r = cold_run(tree, args.protocol, tmp / f"work-{label}")
                runs[label].append(r)
                print(f"pair {i + 1} {label}: wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s, notebooks {r['notebooks']}",
                      flush=True)
            for key in ratios:
                ratios[key].append(runs["A"][-1][key] / runs["B"][-1][key])
            print(f"pair {i + 1} A/B: wall {ratios['wall'][-1]:.3f}, CPU {ratios['cpu'][-1]:.3f}", flush=True)
    for label in ("A", "B"):
        print(f"median {label}: wall {statistics.median(r['wall'] for r in runs[label]):.1f} s, "
              f"CPU {statistics.median(r['cpu'] for r in runs[label]):.1f} s")
    print(f"median ratio A/B: wall {statistics.median(ratios['wall']):.3f}, CPU {statistics.median(ratios['cpu']):.3f}; "
          f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
