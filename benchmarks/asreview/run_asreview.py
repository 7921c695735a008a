"""Run ASReview LAB's simulation (its own code, in its own venv) and print the label sequence as JSON.

Run with the ASReview venv's python (see benchmarks/asreview/README.md), never the project's:

    benchmarks/asreview/.venv/bin/python benchmarks/asreview/run_asreview.py simulate DATA.csv \
        --prior-idx 12 40 --seed 0 [--ai elas_u4]
    benchmarks/asreview/.venv/bin/python benchmarks/asreview/run_asreview.py retrain DATA.csv \
        --labelled 1000 [--repeat 5]

``simulate`` mirrors ``asreview simulate DATA.csv --prior-idx I E --seed S --ai AI`` (same calls as
asreview.simulation.cli._cli_simulate: the TopDown cycle until both classes are labelled, then the AI's
cycle, retraining after every record, stopping at the last relevant record) and prints
``{"labels": [...], "record_ids": [...], "seconds": t, "asreview": version, "ai": name}``
with the label sequence after the priors.

``retrain`` times one retrain of the AI's classifier (balancer weights + fit on the labelled rows +
ranking of the unlabelled rows) on the feature matrix of DATA.csv, after the feature extraction that
ASReview does once per simulation, and prints ``{"seconds": [...], "n": N, "labelled": L}``.

DATA.csv has the columns title, abstract, label_included (ASReview's own column names).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _load(path):
    from asreview import load_dataset

    db = load_dataset(path, dataset_id="benchmark")
    return db


def _cycle(ai: str):
    from asreview.learner import ActiveLearningCycle
    from asreview.models.models import get_ai_config

    return ActiveLearningCycle.from_meta(get_ai_config(ai)["value"])


def simulate(args) -> dict:
    import asreview
    from asreview.learner import ActiveLearningCycle
    from asreview.models.queriers import TopDown
    from asreview.models.stoppers import IsFittable, LastRelevant
    from asreview.simulation.simulate import Simulate

    np.random.seed(args.seed)
    db = _load(args.dataset)
    start = time.perf_counter()
    cycles = [ActiveLearningCycle(querier=TopDown(), stopper=IsFittable()), _cycle(args.ai)]
    sim = Simulate(db.input.get_df(), db.input["included"], cycles, stopper=LastRelevant(), print_progress=False)
    sim.label(list(args.prior_idx))
    sim.review()
    seconds = time.perf_counter() - start
    res = sim._results.dropna(axis=0, subset="training_set")
    return {"labels": [int(v) for v in res["label"]], "record_ids": [int(v) for v in res["record_id"]],
            "seconds": seconds, "asreview": asreview.__version__, "ai": args.ai}


def retrain(args) -> dict:
    db = _load(args.dataset)
    cycle = _cycle(args.ai)
    X = cycle.transform(db.input.get_df())
    y = np.asarray(db.input["included"], dtype=int)
    rng = np.random.default_rng(0)
    labelled = np.sort(rng.choice(len(y), size=args.labelled, replace=False))
    if len(set(y[labelled].tolist())) < 2:
        labelled = np.concatenate([labelled, np.flatnonzero(y == 1)[:1], np.flatnonzero(y == 0)[:1]])
    pool = np.setdiff1d(np.arange(len(y)), labelled)
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        cycle.fit(X[labelled], y[labelled])
        cycle.rank(X[pool])
        times.append(time.perf_counter() - t)
    return {"seconds": times, "n": int(len(y)), "labelled": int(len(labelled)), "features": int(X.shape[1]),
            "ai": args.ai}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("simulate")
    s.add_argument("dataset")
    s.add_argument("--prior-idx", type=int, nargs="+", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--ai", default="elas_u4")
    r = sub.add_parser("retrain")
    r.add_argument("dataset")
    r.add_argument("--labelled", type=int, default=1000)
    r.add_argument("--repeat", type=int, default=5)
    r.add_argument("--ai", default="elas_u4")
    args = parser.parse_args(argv)
    out = simulate(args) if args.command == "simulate" else retrain(args)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
