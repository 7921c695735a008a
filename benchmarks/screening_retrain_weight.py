"""Retrain time of the default NB-scaled logistic at 10,000 records: include weight 20 (the default since
issue 14's sixth round) against weight 5 (before), same matrix, same labelled rows, same run.

    nice -n 10 .venv/bin/python benchmarks/screening_retrain_weight.py

Records: Meijboom 2021 synthesised to 10,000 (benchmarks/screening.py synthesise); labelled rows as in
benchmarks/screening.py's retrain timing; one retrain = fit on the labelled rows + ranking of the rest.
"""
import statistics, sys, time
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import numpy as np
from screening import synthesise, labelled_rows
from screening_grid import development_sets
from reviewlib.screening.prioritise import Prioritiser
big = synthesise(development_sets()["synergy_meijboom_2021"], 10_000)
p = Prioritiser(big.assign(_row=range(len(big))), seed=0, id_column="_row")
y = big["label_included"].to_numpy(dtype=int)
for size in (1000, 5000):
    lab = labelled_rows(len(big), size, y); pool = np.setdiff1d(np.arange(len(big)), lab)
    out = {}
    for rep in range(3):
        for w in (5.0, 20.0):
            p.relevant_weight = w; p._fit_key = None
            t = time.perf_counter(); p.fit_indices(lab, y[lab]); p.rank_indices(pool)
            out.setdefault(w, []).append(time.perf_counter() - t)
    m = {w: statistics.median(v) for w, v in out.items()}
    print(f"{size} labelled: weight 5 median {m[5.0]:.3f} s, weight 20 median {m[20.0]:.3f} s (ratio 20/5 {m[20.0]/m[5.0]:.2f})", flush=True)
