"""Benchmark: reviewlib's prioritised screening against ASReview LAB's default, side by side, and the stopping rules.

For each dataset and seed, both tools start from the same priors (one included and one excluded
record, drawn by reviewlib.screening.simulation.draw_priors with the seed, an independent draw per
seed, and handed to ASReview as --prior-idx), and both label sequences are scored with the same
metric code (reviewlib.screening.simulation.wss / rrf; priors excluded, as ASReview does).  ASReview
runs its own code, in its own venv (benchmarks/asreview/.venv), with its default model (ELAS u4 in
ASReview 2/3).  Random screening (the naive baseline) has WSS@95 0 and RRF@10 10 in expectation.
Then one retrain (classifier fit on the labelled rows + ranking of the rest) is timed at 10,000
records for both.

Datasets: the eight development sets of benchmarks/screening_grid.py (Cohen et al. 2006
antihistamines + six more drug-class reviews, label_abstract_screening; SYNERGY Meijboom 2021),
read from ../shared/data/screening.  reviewlib's default model was chosen on the mean over these
eight sets (benchmarks/screening_grid.py), so every one of them is marked "tuned on"; sets given
with --extra (e.g. held-out reviews) are not.

Stopping rules, on reviewlib's runs: the old heuristic (max(50, 5 % of N) consecutive irrelevant),
the hypergeometric rule (random sampling once the heuristic fires, stop when recall < 95 % is
rejected at 95 % confidence; reviewlib.screening.stopping) and the ranked rule (buscar's test on
the model's order alone, no random phase; an estimate whose assumption, an order at least as good
as random, nothing checks); the table gives the share of runs whose
recall at the stop (the prior included record counted: the reviewer's recall) reaches 95 %.

    nice -n 10 .venv/bin/python benchmarks/screening.py                 # 5 seeds, 8 sets, both tools
    .venv/bin/python benchmarks/screening.py --seeds 2 --skip-asreview
    .venv/bin/python benchmarks/screening.py --extra name=path/to.csv:label_column ...
    .venv/bin/python benchmarks/screening.py --asreview-from benchmarks/results/screening_5seeds_e572e94.json

--asreview-from reuses ASReview's simulations from an earlier --json-out file instead of running them
again (ASReview's runs are deterministic per set, seed and priors): a set/seed is taken from the file
only when the file holds the same model, seed and priors, else ASReview runs; the output names the file
and how many runs came from it.  The retrain timing always runs both tools in this run.

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

sys.path.insert(0, str(ROOT / "benchmarks"))

from reviewlib.screening.prioritise import Prioritiser  # noqa: E402
from screening_grid import development_sets  # noqa: E402
from reviewlib.screening.simulation import draw_priors, load_dataset, rrf, simulate, synergy_dataset, wss  # noqa: E402

SHARED = Path(os.environ.get("REVIEWLIB_SHARED_DATA", ROOT.parent / "shared" / "data"))
TESTDATA = ROOT / "tests" / "data" / "screening_sets"
PACKAGED = ROOT / "reviewlib" / "data" / "meijboom-2021"
ASR_DIR = ROOT / "benchmarks" / "asreview"
ASR_VENV = ASR_DIR / ".venv"
ASR_PY = ASR_VENV / "bin" / "python"
RUNNER = ASR_DIR / "run_asreview.py"


def datasets(extra: list[str] | None = None) -> tuple[dict[str, pd.DataFrame], set[str]]:
    """name -> frame with title, abstract, label_included (int); and the names reviewlib was tuned on."""
    out = development_sets()
    tuned = set(out)
    for spec in extra or []:
        name, _, rest = spec.partition("=")
        path, _, column = rest.rpartition(":")
        frame = load_dataset(path, column)
        out[name] = pd.DataFrame({"title": frame["title"], "abstract": frame["abstract"],
                                  "label_included": frame[column].astype(int)})
    return out, tuned


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


def time_ours(frame: pd.DataFrame, size: int, repeat: int, features: str = "word") -> dict:
    start = time.perf_counter()
    p = Prioritiser(frame.assign(_row=range(len(frame))), seed=0, id_column="_row", features=features)
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


def reused_asreview(path: Path, ai: str) -> dict[tuple[str, int], dict]:
    """(set, seed) -> ASReview's wss95/rrf10/seconds/priors for that run, from an earlier --json-out file."""
    old = json.loads(path.read_text())
    if old.get("asreview_ai") != ai:
        raise SystemExit(f"--asreview-from {path}: its ASReview model is {old.get('asreview_ai')!r}, not {ai!r}; "
                         "give a file of the same model or drop the flag")
    start = int(old.get("seed_start", 0))
    out = {}
    for name, rows in old["datasets"].items():
        asr = rows["asreview"]
        for i, priors in enumerate(asr.get("priors", [])):
            out[(name, start + i)] = {k: asr[k][i] for k in ("wss95", "rrf10", "seconds")} | {"priors": priors}
    return out


def fmt(values: list[float], spec: str) -> str:
    return " ".join(format(v, spec) for v in values)


def print_tables(report: dict, data: dict[str, pd.DataFrame], tuned: set[str], ai: str, seeds: int,
                 use_asr: bool, seed_start: int = 0) -> None:
    """The comparison and stopping tables of ``report`` (also from a saved JSON: --tables-from)."""
    args = argparse.Namespace(ai=ai, seeds=seeds)
    names = list(report["datasets"])
    mark = {n: " (tuned on)" if n in tuned else "" for n in names}
    print(f"\nWSS@95 and RRF@10, mean over seeds {seed_start}..{seed_start + args.seeds - 1} (same priors for both tools; priors not counted). "
          "Random screening: WSS@95 0, RRF@10 10.")
    print(f"| dataset | records | included | reviewlib WSS@95 | ASReview {args.ai} WSS@95 | reviewlib RRF@10 | "
          f"ASReview RRF@10 | reviewlib s/run | ASReview s/run |")
    print("|---|---|---|---|---|---|---|---|---|")
    if report.get("asreview_from"):
        print(f"(ASReview's columns: {report.get('asreview_reused_runs', '?')} runs taken from {report['asreview_from']}, "
              "same model, seeds and priors; the rest run in this run)")
    means = {t: {m: [] for m in ("wss95", "rrf10", "seconds")} for t in ("ours", "asreview")}
    wins = {"wss95": 0, "rrf10": 0}
    for name in names:
        rows = report["datasets"][name]
        frame = data[name]
        cells = []
        for metric, spec in (("wss95", ".3f"), ("rrf10", ".1f"), ("seconds", ".1f")):
            for tool in ("ours", "asreview"):
                vals = rows[tool][metric]
                if vals:
                    means[tool][metric].append(float(np.mean(vals)))
                cells.append(format(np.mean(vals), spec) if vals else "-")
            if metric in wins and rows["asreview"][metric]:
                wins[metric] += np.mean(rows["ours"][metric]) >= np.mean(rows["asreview"][metric])
        print(f"| {name}{mark[name]} | {len(frame)} | {int(frame['label_included'].sum())} | " + " | ".join(cells) + " |")
    avg = []
    for metric, spec in (("wss95", ".3f"), ("rrf10", ".1f"), ("seconds", ".1f")):
        for tool in ("ours", "asreview"):
            avg.append(format(np.mean(means[tool][metric]), spec) if means[tool][metric] else "-")
    print(f"| **mean of {len(names)} sets** | | | " + " | ".join(avg) + " |")
    if use_asr:
        print(f"reviewlib >= ASReview on WSS@95 in {wins['wss95']} of {len(names)} sets, "
              f"on RRF@10 in {wins['rrf10']} of {len(names)}")

    rules = [r for r in ("consecutive_irrelevant", "hypergeometric", "ranked")
             if all(r in report["stopping"][name] for name in names)]
    label = {"consecutive_irrelevant": "heuristic", "hypergeometric": "hypergeometric", "ranked": "ranked (buscar)"}
    print("\nStopping rules on reviewlib's runs: share of runs whose recall at the stop (prior included counted) "
          "reaches 95 %, and records screened at the stop (share of N)")
    print("| dataset | runs | " + " | ".join(f"{label[r]}: runs >= 95 % | {label[r]}: min recall | {label[r]}: screened"
                                            for r in rules) + " |")
    print("|---|---|" + "---|" * (3 * len(rules)))
    totals = {r: [] for r in rules}
    shares = {r: [] for r in rules}
    for name in names:
        cells = []
        for rule in rules:
            runs = report["stopping"][name][rule]
            ok = [r["review_recall"] >= 0.95 - 1e-12 for r in runs]
            totals[rule] += ok
            shares[rule] += [r["screened"] / r["n"] for r in runs]
            cells += [f"{sum(ok)}/{len(ok)}", f"{min(r['review_recall'] for r in runs):.4f}",
                      f"{np.mean([r['screened'] / r['n'] for r in runs]):.0%}"]
        print(f"| {name}{mark[name]} | {len(report['stopping'][name][rules[0]])} | " + " | ".join(cells) + " |")
    promised = {"hypergeometric": "; promised >= 95 %", "ranked": "; 95 % if its assumption held",
                "consecutive_irrelevant": "; no promise"}
    cells = []
    for rule in rules:
        ok = totals[rule]
        cells += [f"{sum(ok)}/{len(ok)} ({sum(ok) / len(ok):.0%}{promised[rule]})", "",
                  f"{np.mean(shares[rule]):.0%}"]
    print(f"| **all** | {len(totals[rules[0]])} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed-start", type=int, default=0,
                        help="first seed (e.g. 5 with --seeds 10: seeds 5-14, for more stopping-rule runs)")
    parser.add_argument("--ai", default="elas_u4", help="ASReview model (default: its default, elas_u4)")
    parser.add_argument("--skip-asreview", action="store_true")
    parser.add_argument("--skip-retrain", action="store_true", help="skip the retrain timing at 10,000 records")
    parser.add_argument("--extra", nargs="*", default=[], help="more sets, as name=path.csv:label_column (not tuned on)")
    parser.add_argument("--only", nargs="+", help="run only these sets (names as printed)")
    parser.add_argument("--retrain-features", nargs="+", default=["word"],
                        help="also time reviewlib's retrain with these feature sets (e.g. word word+char)")
    parser.add_argument("--records", type=int, default=10_000, help="records for the retrain timing")
    parser.add_argument("--labelled", type=int, nargs="+", default=[1000, 5000],
                        help="labelled records for the retrain timing")
    parser.add_argument("--json-out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--tables-from", type=Path, help="print the tables of a saved --json-out file and exit")
    parser.add_argument("--asreview-from", type=Path,
                        help="reuse ASReview's simulations (same model, seed and priors) from this --json-out file")
    args = parser.parse_args(argv)
    if args.tables_from:
        report = json.loads(args.tables_from.read_text())
        all_data, tuned = datasets(args.extra)
        use_asr = any(rows["asreview"]["wss95"] for rows in report["datasets"].values())
        print_tables(report, all_data, tuned, report.get("asreview_ai", args.ai), report["seeds"], use_asr,
                     report.get("seed_start", 0))
        return 0

    problem = None if args.skip_asreview else ensure_asreview()
    if problem:
        print(f"ASReview unavailable: {problem}")
    use_asr = not args.skip_asreview and problem is None
    if use_asr:
        version = subprocess.run([str(ASR_PY), "-c", "import asreview; print(asreview.__version__)"],
                                 capture_output=True, text=True).stdout.strip()
        print(f"ASReview LAB {version} (model {args.ai}) from {ASR_VENV}")
    report: dict = {"seeds": args.seeds, "seed_start": args.seed_start, "asreview_ai": args.ai, "datasets": {}, "retrain": {}, "stopping": {}}
    reused = reused_asreview(args.asreview_from, args.ai) if use_asr and args.asreview_from else {}
    n_reused = 0
    if reused:
        report["asreview_from"] = str(args.asreview_from)
    all_data, tuned = datasets(args.extra)
    data = {k: v for k, v in all_data.items() if not args.only or k in args.only}
    report["tuned_on"] = sorted(tuned)
    with tempfile.TemporaryDirectory() as tmp:
        for name, frame in data.items():
            csv = Path(tmp) / f"{name}.csv"
            frame.to_csv(csv, index=False)
            y = frame["label_included"].to_numpy()
            rows = {tool: {"wss95": [], "rrf10": [], "seconds": [], "priors": []} for tool in ("ours", "asreview")}
            stops = {"consecutive_irrelevant": [], "hypergeometric": [], "ranked": []}
            print(f"\n{name}: {len(frame)} records, {int(y.sum())} included", flush=True)
            for seed in range(args.seed_start, args.seed_start + args.seeds):
                priors = draw_priors(y, seed)
                ours = simulate(frame, "label_included", seed, priors=priors)
                rows["ours"]["wss95"].append(ours.wss95)
                rows["ours"]["rrf10"].append(ours.rrf10)
                rows["ours"]["seconds"].append(ours.seconds)
                rows["ours"]["priors"].append(priors)
                for rule, verdict in ours.stops().items():
                    stops[rule].append({k: verdict[k] for k in ("screened", "recall", "review_recall")}
                                       | {"n": ours.n})
                line = f"  seed {seed} priors {priors}: reviewlib WSS@95 {ours.wss95:.3f} RRF@10 {ours.rrf10:5.1f}"
                earlier = reused.get((name, seed))
                if use_asr and earlier is not None and list(earlier["priors"]) == list(priors):
                    n_reused += 1
                    for k in ("wss95", "rrf10", "seconds", "priors"):
                        rows["asreview"][k].append(earlier[k])
                    line += (f" | ASReview WSS@95 {earlier['wss95']:.3f} RRF@10 {earlier['rrf10']:5.1f} "
                             f"(from {args.asreview_from.name})")
                elif use_asr:
                    res = run_asreview(csv, priors, seed, args.ai)
                    seq = res["labels"] + [0] * (len(frame) - len(priors) - len(res["labels"]))
                    assert sum(seq) == int(y.sum() - y[priors].sum()), "ASReview stopped before the last relevant"
                    rows["asreview"]["wss95"].append(wss(seq))
                    rows["asreview"]["rrf10"].append(rrf(seq))
                    rows["asreview"]["seconds"].append(res["seconds"])
                    rows["asreview"]["priors"].append(priors)
                    line += f" | ASReview WSS@95 {wss(seq):.3f} RRF@10 {rrf(seq):5.1f}"
                h = stops["hypergeometric"][-1]
                c = stops["consecutive_irrelevant"][-1]
                r = stops["ranked"][-1]
                line += (f" | stop: heuristic {c['screened']} recall {c['review_recall']:.3f}, "
                         f"hypergeometric {h['screened']} recall {h['review_recall']:.3f}, "
                         f"ranked {r['screened']} recall {r['review_recall']:.3f}")
                print(line, flush=True)
            report["datasets"][name] = rows
            report["stopping"][name] = stops
            if args.json_out:  # after every set, so an interrupted run keeps what it measured
                args.json_out.parent.mkdir(parents=True, exist_ok=True)
                args.json_out.write_text(json.dumps(report, indent=1, default=float))

        if not args.skip_retrain:
            print(f"\nRetrain time at {args.records:,} records (synthesised from Meijboom 2021, perturbed copies)")
            big = synthesise(all_data["synergy_meijboom_2021"], args.records)
            big_csv = Path(tmp) / "synthetic.csv"
            big.to_csv(big_csv, index=False)
            for size in args.labelled:
                ours = time_ours(big, size, repeat=5)
                entry = {"ours": ours}
                line = (f"  {size:>5} labelled: reviewlib median {statistics.median(ours['seconds']):.3f} s "
                        f"(features once: {ours['vectorise']:.1f} s, {ours['features']:,} features)")
                for feats in args.retrain_features:
                    if feats != "word":
                        other = time_ours(big, size, repeat=3, features=feats)
                        entry[f"ours_{feats}"] = other
                        line += (f" | reviewlib features={feats} median {statistics.median(other['seconds']):.3f} s "
                                 f"({other['features']:,} features)")
                if use_asr:
                    proc = subprocess.run([str(ASR_PY), str(RUNNER), "retrain", str(big_csv), "--labelled",
                                           str(size), "--repeat", "5", "--ai", args.ai], capture_output=True, text=True)
                    if proc.returncode != 0:
                        raise RuntimeError(proc.stderr[-400:])
                    asr = json.loads(proc.stdout.strip().splitlines()[-1])
                    entry["asreview"] = asr
                    line += f" | ASReview median {statistics.median(asr['seconds']):.3f} s"
                report["retrain"][str(size)] = entry
                print(line, flush=True)

    if reused:
        total = sum(len(rows["asreview"]["wss95"]) for rows in report["datasets"].values())
        report["asreview_reused_runs"] = n_reused
        print(f"\nASReview's simulations: {n_reused} of {total} runs taken from {args.asreview_from} "
              f"(same model, seed and priors), {total - n_reused} run now; its retrain timing ran now")
    if report["datasets"]:
        print_tables(report, all_data, tuned, args.ai, args.seeds, use_asr, args.seed_start)
    for size, entry in report["retrain"].items():
        ours = statistics.median(entry["ours"]["seconds"])
        text = f"retrain at {args.records:,} records, {size} labelled: reviewlib {ours:.3f} s"
        if "asreview" in entry:
            asr = statistics.median(entry["asreview"]["seconds"])
            text += f", ASReview {asr:.3f} s (ratio ours/ASReview {ours / asr:.2f})"
        print(text)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
