"""Retrain time of reviewlib's logistic model at 10,000 records with cheaper character n-gram feature sets.

Same synthesised records and labelled rows as benchmarks/screening.py's retrain timing (Meijboom 2021
repeated with perturbed text; 5,000 labelled): TF-IDF word 1-2 grams alone, and word 1-2 grams plus
character (char_wb) n-grams, uncapped or capped by max_features.  A retrain is the fit on the labelled
rows plus scoring every record; the budget is 0.5 s.

    PYTHONPATH=$PWD nice -n 10 /work/main/.venv/bin/python benchmarks/screening_features_timing.py
"""
from pathlib import Path
import sys, time, statistics, warnings
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from screening import synthesise, labelled_rows
from screening_grid import development_sets
from reviewlib.screening.prioritise import record_texts
big = synthesise(development_sets()["synergy_meijboom_2021"], 10_000)
texts = record_texts(big)
y = big["label_included"].to_numpy()
word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_df=0.95, strip_accents="unicode", dtype=np.float32).fit_transform(texts)
configs = {"word": None, "char35": ((3, 5), None), "char35_20k": ((3, 5), 20000), "char44_20k": ((4, 4), 20000), "char44": ((4,4), None)}
lab = labelled_rows(len(y), 5000, y)
matrices = {}
for name, cfg in configs.items():
    if cfg is None:
        matrices[name] = word
    else:
        ch = TfidfVectorizer(analyzer="char_wb", ngram_range=cfg[0], sublinear_tf=True, min_df=2, max_df=0.95,
                             max_features=cfg[1], strip_accents="unicode", dtype=np.float32).fit_transform(texts)
        matrices[name] = sparse.csr_matrix(sparse.hstack([word, ch]) / np.sqrt(2.0), dtype=np.float32)
w = np.where(y[lab] == 1, 5.0, 1.0)
w *= len(w) / w.sum()
times = {name: [] for name in matrices}
for _ in range(5):            # round-robin, so a burst of load on the shared machine hits every variant alike
    for name, X in matrices.items():
        t = time.perf_counter()
        clf = LogisticRegression(C=1.0, solver="liblinear", dual=True, max_iter=1000, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X[lab], y[lab], sample_weight=w)
        clf.decision_function(X)
        times[name].append(time.perf_counter() - t)
base = statistics.median(times["word"])
for name, X in matrices.items():
    med = statistics.median(times[name])
    print(f"{name}: {X.shape[1]} features, nnz/row {X.nnz / X.shape[0]:.0f}, retrain median {med:.3f} s "
          f"(ratio to word {med / base:.2f})", flush=True)
