"""The prioritiser's TF-IDF fit: scikit-learn's TfidfVectorizer, the FastTfidfVectorizer of a git revision, and
this tree's, on the same records in the same run (issue 15).  Prints CPU seconds, peak RSS growth and ratios,
and checks the three matrices are the same.

    nice .venv/bin/python benchmarks/tfidf_fit.py /tmp/reviewlib-scale/records-10000.xml.gz [--before bb355c3]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _module_at(revision: str):
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:reviewlib/screening/tfidf.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "tfidf_before.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("tfidf_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fit(name: str, make, texts, which: str) -> None:
    """Fit in a child process (so each peak is its own), print CPU s and peak growth."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        base = _peak_mb()
        c0 = time.process_time()
        X = make().fit_transform(texts)
        cpu = time.process_time() - c0
        import hashlib
        digest = hashlib.sha256(X.indptr.tobytes() + X.indices.tobytes() + X.data.tobytes()).hexdigest()[:16]
        os.write(write, f"{cpu} {_peak_mb() - base} {X.shape[1]} {X.nnz} {digest}".encode())
        os._exit(0)
    os.close(write)
    out = os.read(read, 1000).decode().split()
    os.waitpid(pid, 0)
    cpu, grow = float(out[0]), float(out[1])
    print(f"  {name:<44} CPU {cpu:6.2f} s  peak +{grow:6.0f} MB  {out[2]} terms, {out[3]} non-zeros, matrix {out[4]}")
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("records", help="a PubMed XML file (.xml or .xml.gz), e.g. benchmarks/scale.py's input")
    parser.add_argument("--before", default="main", help="git revision of the FastTfidfVectorizer to compare")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from reviewlib.screening import tfidf
    from reviewlib.screening.prioritise import record_texts
    from reviewlib.sources.pubmed_xml import read_pubmed_xml
    texts = record_texts(read_pubmed_xml(args.records))
    settings = dict(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_df=0.95, strip_accents="unicode",
                    dtype=np.float32)
    before = _module_at(args.before)
    print(f"TF-IDF fit of {len(texts)} records (the prioritiser's settings); load {os.getloadavg()[0]:.1f}")
    stock = _fit("scikit-learn TfidfVectorizer", lambda: TfidfVectorizer(**settings), texts, "stock")
    old = _fit(f"FastTfidfVectorizer at {args.before}", lambda: before.FastTfidfVectorizer(**settings), texts, "old")
    new = _fit("FastTfidfVectorizer (this tree)", lambda: tfidf.FastTfidfVectorizer(**settings), texts, "new")
    print(f"  ratio: this tree {stock / new:.2f}x faster than scikit-learn, {old / new:.2f}x than {args.before}; "
          f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
