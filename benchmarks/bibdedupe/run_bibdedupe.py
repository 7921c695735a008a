"""Run bib-dedupe on one records_pre_merged.csv inside its own venv (benchmarks/bibdedupe/.venv).

    benchmarks/bibdedupe/.venv/bin/python benchmarks/bibdedupe/run_bibdedupe.py IN.csv OUT.json

Writes {"kept_ids": [...], "seconds": float, "version": str, "n_maybe": int}: the IDs bib-dedupe's
merge keeps, and the time of prep + block + match + cluster + merge (imports excluded), as in
bib-dedupe's own evaluation (notebooks/evaluation.py).
"""
import json
import sys
import time
from importlib.metadata import version

import pandas as pd
from bib_dedupe.bib_dedupe import block, cluster, match, merge, prep

records = pd.read_csv(sys.argv[1])  # as bib-dedupe's DedupeBenchmarker reads it
start = time.perf_counter()
prepared = prep(records, verbosity_level=0, cpu=1)
blocked = block(prepared, verbosity_level=0, cpu=1)
matched = match(blocked, verbosity_level=0, cpu=1)
groups = cluster(matched, verbosity_level=0)
merged = merge(records, duplicate_id_sets=groups, verbosity_level=0)
seconds = time.perf_counter() - start
n_maybe = int((matched["duplicate_label"] == "maybe").sum()) if "duplicate_label" in matched else 0
with open(sys.argv[2], "w") as fh:
    json.dump({"kept_ids": merged["ID"].tolist(), "seconds": seconds, "version": version("bib-dedupe"),
               "n_maybe": n_maybe}, fh)
