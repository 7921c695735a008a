"""Time `reviewlib run` on the embedded demo snapshot: a cold run and an unchanged rerun.

Each run is the real command (`reviewlib run --offline`, a fresh process) into a temporary results
and reviews folder; the per-notebook times come from the run's manifest.  Runs twice: with one
kernel shared by the four notebooks (the default) and with a kernel per notebook
(`--kernel-per-notebook`), and prints the ratio.

    .venv/bin/python benchmarks/pipeline.py            # both modes
    .venv/bin/python benchmarks/pipeline.py --shared-only

Targets (2 cores): cold run < 60 s, unchanged rerun < 30 s.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REVIEWLIB = Path(sys.executable).with_name("reviewlib")
TARGETS = {"cold": 60.0, "rerun": 30.0}


def run_once(folder: Path, extra: list[str]) -> dict:
    """One `reviewlib run` into ``folder``; returns wall time and the manifest."""
    cmd = [str(REVIEWLIB), "run", "--offline", "--results", str(folder / "results"),
           "--reviews", str(folder / "reviews"), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"reviewlib run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    latest = folder / "results" / "car-t-autoimmune" / "latest"
    manifest = json.loads((latest / "manifest.json").read_text())
    return {"wall": wall, "manifest": manifest}


def report(label: str, runs: dict[str, dict]) -> None:
    print(f"\n{label}")
    names = [n["notebook"] for n in runs["cold"]["manifest"]["notebooks"]]
    print(f"  {'':<16}" + "".join(f"{n[:-6]:>12}" for n in names) + f"{'render':>9}{'total':>9}{'target':>9}")
    for kind in ("cold", "rerun"):
        m = runs[kind]["manifest"]
        times = "".join(f"{n['seconds']:>11.1f}s" for n in m["notebooks"])
        ok = "ok" if runs[kind]["wall"] < TARGETS[kind] else "MISSED"
        print(f"  {kind + ' run':<16}{times}{m.get('render_seconds', 0):>8.1f}s{runs[kind]['wall']:>8.1f}s"
              f"  < {TARGETS[kind]:.0f} s {ok}")


def bench(extra: list[str]) -> dict[str, dict]:
    folder = Path(tempfile.mkdtemp(prefix="reviewlib-bench-"))
    try:
        return {"cold": run_once(folder, extra), "rerun": run_once(folder, extra)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared-only", action="store_true", help="skip the kernel-per-notebook comparison")
    args = parser.parse_args()
    print(f"reviewlib run on the demo snapshot; {os.cpu_count()} cores; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    shared = bench([])
    report("one kernel shared by the notebooks (default)", shared)
    if not args.shared_only:
        per = bench(["--kernel-per-notebook"])
        report("a kernel per notebook", per)
        for kind in ("cold", "rerun"):
            print(f"  {kind}: kernel per notebook / shared kernel = "
                  f"{per[kind]['wall'] / shared[kind]['wall']:.2f}x")


if __name__ == "__main__":
    main()
