"""Benchmark: reviewlib's prioritised screening against ASReview LAB's, side by side.

For each dataset and seed, both tools start from the same priors (one included and one excluded
record, drawn by reviewlib.screening.simulation.draw_priors with the seed and handed to ASReview as
--prior-idx), and both label sequences are scored with the same metric code
(reviewlib.screening.simulation.wss / rrf; priors excluded, as ASReview does).  ASReview runs its own code,
in its own venv (benchmarks/asreview/.venv), with its default model (ELAS u4 in ASReview 2/3).
Then one retrain (classifier fit on the labelled rows + ranking of the rest) is timed at 10,000
records for both.

Datasets: Cohen et al. 2006 antihistamines (label_abstract_screening) and SYNERGY Meijboom 2021.

    .venv/bin/python benchmarks/screening.py                 # 5 seeds, both datasets, both tools
    .venv/bin/python benchmarks/screening.py --seeds 2 --skip-asreview

The ASReview venv is created on first use (python3 -m venv benchmarks/asreview/.venv &&
benchmarks/asreview/.venv/bin/pip install -r benchmarks/asreview/requirements.txt).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reviewlib.screening.prioritise import Prioritiser  # noqa: E402
from reviewlib.screening.simulation import draw_priors, load_dataset, rrf, simulate, synergy_dataset, wss  # noqa: E402

SHARED = Path(os.environ.get("REVIEWLIB_SHARED_DATA", ROOT.parent / "shared" / "data"))
TESTDATA = ROOT / "tests" / "data" / "screening_sets"
PACKAGED = ROOT / "reviewlib" / "data" / "meijboom-2021"
ASR_DIR = ROOT / "benchmarks" / "asreview"
ASR_VENV = ASR_DIR / ".venv"
ASR_PY = ASR_VENV / "bin" / "python"
RUNNER = ASR_DIR / "run_asreview.py"


def datasets() -> dict[str, pd.DataFrame]:
    """name -> frame with title, abstract, label_included (int)."""
    cohen_csv = TESTDATA / "cohen2006_antihistamines" / "Antihistamines.csv"
    cohen = load_dataset(cohen_csv, "label_abstract_screening")
    meijboom = synergy_dataset(PACKAGED / "works_1.zip", PACKAGED / "labels.csv")
    out = {}
    for name, frame, col in (("cohen2006_antihistamines", cohen, "label_abstract_screening"),
                             ("synergy_meijboom_2021", meijboom, "label_included")):
        out[name] = pd.DataFrame({"title": frame["title"].fillna(""), "abstract": frame["abstract"].fillna(""),
                                  "label_included": frame[col].astype(int)})
    return out


def ensure_asreview() -> str | None:
    """Create the ASReview venv if needed; return None when ready, else the reason it is not."""
    if ASR_PY.exists():
        probe = subprocess.run([str(ASR_PY), "-c", "import asreview; print(asreview.__version__)"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            return None
    print(f"creating {ASR_VENV} and installing asreview (one time)...", flush=True)
    venv.create(ASR_VENV, with_pip=True)
    proc = subprocess.run([str(ASR_VENV / "bin" / "pip"), "install", "-q", "-r", str(ASR_DIR / "requirements.txt")],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return "pip install asreview failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return None


def run_asreview(csv: Path, priors: list[int], seed: int, ai: str) -> dict:
    cmd = [str(ASR_PY), str(RUNNER), "simulate", str(csv), "--prior-idx", *map(str, priors), "--seed", str(seed),
           "--ai", ai]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ASReview failed: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def synthesise(frame: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` records made by repeating ``frame`` with perturbed text (each word dropped with p=0.15)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        src = frame.iloc[i % len(frame)]
        def perturb(text: str) -> str:
            words = str(text).split()
            if i < len(frame) or not words:
                return " ".join(words)
            keep = rng.random(len(words)) > 0.15
            return " ".join(w for w, k in zip(words, keep) if k)
        rows.append({"title": perturb(src["title"]), "abstract": perturb(src["abstract"]),
                     "label_included": int(src["label_included"])})
    return pd.DataFrame(rows)


def labelled_rows(n: int, size: int, y: np.ndarray) -> np.ndarray:
    """The labelled rows of the retrain timing (same rule as run_asreview.py retrain)."""
    rng = np.random.default_rng(0)
    labelled = np.sort(rng.choice(n, size=size, replace=False))
    if len(set(y[labelled].tolist())) < 2:
        labelled = np.concatenate([labelled, np.flatnonzero(y == 1)[:1], np.flatnonzero(y == 0)[:1]])
    return labelled


def time_ours(frame: pd.DataFrame, size: int, repeat: int) -> dict:
    start = time.perf_counter()
    p = Prioritiser(frame.assign(_row=range(len(frame))), seed=0, id_column="_row")
    vectorise = time.perf_counter() - start
    y = frame["label_included"].to_numpy(dtype=int)
    labelled = labelled_rows(len(frame), size, y)
    pool = np.setdiff1d(np.arange(len(frame)), labelled)
    times = []
    for i in range(repeat):
        p._fit_key = None  # force a real retrain each time
        t = time.perf_counter()
        p.fit_indices(labelled, y[labelled])
        p.rank_indices(pool)
        times.append(time.perf_counter() - t)
    return {"seconds": times, "vectorise": vectorise, "labelled": int(len(labelled)), "features": p.X.shape[1]}


def fmt(values: list[float], spec: str) -> str:
    return " ".join(format(v, spec) for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--ai", default="elas_u4", help="ASReview model (default: its default, elas_u4)")
    parser.add_argument("--skip-asreview", action="store_true")
    parser.add_argument("--records", type=int, default=10_000, help="records for the retrain timing")
    parser.add_argument("--labelled", type=int, nargs="+", default=[1000, 5000],
                        help="labelled records for the retrain timing")
    parser.add_argument("--json-out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    problem = None if args.skip_asreview else ensure_asreview()
    if problem:
        print(f"ASReview unavailable: {problem}")
    use_asr = not args.skip_asreview and problem is None
    if use_asr:
        version = subprocess.run([str(ASR_PY), "-c", "import asreview; print(asreview.__version__)"],
                                 capture_output=True, text=True).stdout.strip()
        print(f"ASReview LAB {version} (model {args.ai}) from {ASR_VENV}")
    report: dict = {"seeds": args.seeds, "asreview_ai": args.ai, "datasets": {}, "retrain": {}}
    data = datasets()
    with tempfile.TemporaryDirectory() as tmp:
        for name, frame in data.items():
            csv = Path(tmp) / f"{name}.csv"
            frame.to_csv(csv, index=False)
            y = frame["label_included"].to_numpy()
            rows = {"ours": {"wss95": [], "rrf10": [], "seconds": []}, "asreview": {"wss95": [], "rrf10": [], "seconds": []}}
            print(f"\n{name}: {len(frame)} records, {int(y.sum())} included", flush=True)
            for seed in range(args.seeds):
                priors = draw_priors(y, seed)
                ours = simulate(frame, "label_included", seed, priors=priors)
                rows["ours"]["wss95"].append(ours.wss95)
                rows["ours"]["rrf10"].append(ours.rrf10)
                rows["ours"]["seconds"].append(ours.seconds)
                line = f"  seed {seed} priors {priors}: reviewlib WSS@95 {ours.wss95:.3f} RRF@10 {ours.rrf10:5.1f}"
                if use_asr:
                    res = run_asreview(csv, priors, seed, args.ai)
                    seq = res["labels"] + [0] * (len(frame) - len(priors) - len(res["labels"]))
                    assert sum(seq) == int(y.sum() - y[priors].sum()), "ASReview stopped before the last relevant"
                    rows["asreview"]["wss95"].append(wss(seq))
                    rows["asreview"]["rrf10"].append(rrf(seq))
                    rows["asreview"]["seconds"].append(res["seconds"])
                    line += f" | ASReview WSS@95 {wss(seq):.3f} RRF@10 {rrf(seq):5.1f}"
                print(line, flush=True)
            report["datasets"][name] = rows

        print(f"\nRetrain time at {args.records:,} records (synthesised from Meijboom 2021, perturbed copies)")
        big = synthesise(data["synergy_meijboom_2021"], args.records)
        big_csv = Path(tmp) / "synthetic.csv"
        big.to_csv(big_csv, index=False)
        for size in args.labelled:
            ours = time_ours(big, size, repeat=5)
            entry = {"ours": ours}
            line = (f"  {size:>5} labelled: reviewlib median {statistics.median(ours['seconds']):.3f} s "
                    f"(TF-IDF once: {ours['vectorise']:.1f} s, {ours['features']:,} features)")
            if use_asr:
                proc = subprocess.run([str(ASR_PY), str(RUNNER), "retrain", str(big_csv), "--labelled", str(size),
                                       "--repeat", "5", "--ai", args.ai], capture_output=True, text=True)
                if proc.returncode != 0:
                    raise RuntimeError(proc.stderr[-400:])
                asr = json.loads(proc.stdout.strip().splitlines()[-1])
                entry["asreview"] = asr
                line += f" | ASReview median {statistics.median(asr['seconds']):.3f} s"
            report["retrain"][str(size)] = entry
            print(line, flush=True)

    print("\nSummary (mean over seeds; WSS@95 as a fraction, RRF@10 in %)")
    print(f"| dataset | tool | WSS@95 mean | WSS@95 per seed | RRF@10 mean | RRF@10 per seed |")
    print("|---|---|---|---|---|---|")
    for name, rows in report["datasets"].items():
        for tool in ("ours", "asreview"):
            r = rows[tool]
            if not r["wss95"]:
                continue
            label = "reviewlib" if tool == "ours" else f"ASReview {args.ai}"
            print(f"| {name} | {label} | {np.mean(r['wss95']):.3f} | {fmt(r['wss95'], '.3f')} | "
                  f"{np.mean(r['rrf10']):.1f} | {fmt(r['rrf10'], '.1f')} |")
    for size, entry in report["retrain"].items():
        ours = statistics.median(entry["ours"]["seconds"])
        text = f"retrain at {args.records:,} records, {size} labelled: reviewlib {ours:.3f} s"
        if "asreview" in entry:
            asr = statistics.median(entry["asreview"]["seconds"])
            text += f", ASReview {asr:.3f} s (ratio ours/ASReview {ours / asr:.2f})"
        print(text)
    if use_asr:
        for name, rows in report["datasets"].items():
            ok = np.mean(rows["ours"]["wss95"]) >= np.mean(rows["asreview"]["wss95"])
            print(f"{name}: reviewlib WSS@95 {'>=' if ok else '<'} ASReview's")
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
