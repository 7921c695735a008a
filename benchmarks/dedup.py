"""Benchmark: reviewlib's deduplication against bib-dedupe, side by side on hand-labelled sets.

For each labelled set (a folder with ``records_pre_merged.csv`` and ``merged_record_ids.csv``, the
layout of bib-dedupe's benchmark data), the same records go to

* reviewlib: the BibTeX-like rows are mapped to reviewlib's records table (:func:`to_records`) and
  ``reviewlib.screening.dedup.deduplicate`` runs in this process;
* the naive baseline: records with identical normalised titles are one (:func:`run_naive`);
* bib-dedupe: ``prep -> block -> match -> cluster -> merge`` in its own venv
  (``benchmarks/bibdedupe/.venv``, bib-dedupe pinned in ``benchmarks/bibdedupe/requirements.txt``,
  created on first use), so its dependencies never enter reviewlib's environment.  It runs with
  ``cpu=1``, as reviewlib runs on one core.

Both outputs (the IDs each tool keeps) are scored by :func:`score`, a transcription of bib-dedupe's
``DedupeBenchmarker.compare_dedupe_id`` (bib_dedupe/dedupe_benchmark.py): counts are on records,
a true singleton removed is a false positive, a true group of k records of which m are kept gives
TP k-m and FN m-1, and a true group of which none is kept gives TP k-1 and one FP.  sensitivity =
TP/(TP+FN), precision = TP/(TP+FP).  Time is wall-clock of the dedup call itself (imports and CSV
reading excluded) on the shared 2-core machine; the load average is printed with it.

    .venv/bin/python benchmarks/dedup.py                        # the four sets in ../shared/data/dedup
    .venv/bin/python benchmarks/dedup.py --skip-bibdedupe       # reviewlib only
    .venv/bin/python benchmarks/dedup.py --scale 100000         # + speed and memory at 100,000 records
    .venv/bin/python benchmarks/dedup.py --sets special_cases --show-errors

The sets are development data: no held-out labelled set exists in ../shared/data.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reviewlib.errors import InputError  # noqa: E402
from reviewlib.records import conform  # noqa: E402
from reviewlib.screening import dedup  # noqa: E402

SHARED = Path(os.environ.get("REVIEWLIB_SHARED_DATA", ROOT.parent / "shared" / "data"))
SETS = ("cytology_screening", "respiratory", "digital_work", "special_cases")
BD_DIR = ROOT / "benchmarks" / "bibdedupe"
BD_VENV = BD_DIR / ".venv"
BD_PY = BD_VENV / "bin" / "python"
BD_RUNNER = BD_DIR / "run_bibdedupe.py"
REQUIRED = ("ID", "title", "author", "year")
#: BibTeX entry types -> the publication type reviewlib's records table carries.
ENTRY_KINDS = {"inproceedings": "Conference Paper", "proceedings": "Congress", "incollection": "Book Chapter",
               "book": "Book", "techreport": "Technical Report"}


# -- loading ---------------------------------------------------------------------
def load_labelled_set(folder: Path) -> tuple[pd.DataFrame, list[list[str]]]:
    """A labelled set: its records (as given) and its true duplicate groups (lists of IDs).

    Raises
    ------
    InputError
        One line naming the file and what is wrong with it, when a file is missing or misshapen.
    """
    folder = Path(folder)
    records_path, groups_path = folder / "records_pre_merged.csv", folder / "merged_record_ids.csv"
    for path in (records_path, groups_path):
        if not path.is_file():
            raise InputError(f"labelled set {folder}: {path.name} is missing; a set needs records_pre_merged.csv "
                             "and merged_record_ids.csv (bib-dedupe's benchmark layout)", source=str(path))
    try:
        records = pd.read_csv(records_path, dtype=str, keep_default_na=False)
        groups_frame = pd.read_csv(groups_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"labelled set {folder}: cannot read it as CSV ({str(exc).splitlines()[0]}); "
                         "give UTF-8 CSV files with a header row", source=str(folder)) from exc
    missing = [c for c in REQUIRED if c not in records.columns]
    if missing:
        raise InputError(f"labelled set {records_path}: column(s) {', '.join(missing)} missing (has "
                         f"{', '.join(records.columns[:8])}); give bib-dedupe's records_pre_merged.csv layout",
                         source=str(records_path))
    if "merged_ids" not in groups_frame.columns:
        raise InputError(f"labelled set {groups_path}: no 'merged_ids' column (has {', '.join(groups_frame.columns)});"
                         " give one true group per line, IDs joined with ';'", source=str(groups_path))
    if records["ID"].duplicated().any():
        dup = records.loc[records["ID"].duplicated(), "ID"].iloc[0]
        raise InputError(f"labelled set {records_path}: ID {dup!r} occurs twice; IDs must be unique",
                         source=str(records_path))
    groups = [[i.strip() for i in text.split(";") if i.strip()] for text in groups_frame["merged_ids"]]
    known = set(records["ID"])
    for line, group in enumerate(groups, start=2):
        unknown = [i for i in group if i not in known]
        if unknown:
            raise InputError(f"labelled set {groups_path} line {line}: ID {unknown[0]!r} is not in "
                             "records_pre_merged.csv; fix the group or the records file", source=str(groups_path))
    return records, [g for g in groups if len(g) > 1]


def _authors(text: str) -> list[str]:
    return [a.strip() for a in text.replace("\n", " ").split(" and ") if a.strip()] if text else []


def to_records(bib: pd.DataFrame) -> pd.DataFrame:
    """BibTeX-like rows -> reviewlib's records table (+ volume, issue, pages), ``record_id`` = ID."""
    def col(name: str) -> pd.Series:
        return bib[name] if name in bib.columns else pd.Series([""] * len(bib), index=bib.index)

    journal = col("journal").where(col("journal").str.strip() != "", col("booktitle"))
    issue = col("number").where(col("number").str.strip() != "", col("issue"))
    kinds = [[ENTRY_KINDS[e.lower()]] if e.lower() in ENTRY_KINDS else ["Journal Article"] if e else []
             for e in col("ENTRYTYPE")]
    frame = pd.DataFrame({
        "doi": col("doi"), "title": col("title"), "abstract": col("abstract"),
        "authors": [_authors(a) for a in col("author")], "journal": journal,
        "year": pd.to_numeric(col("year"), errors="coerce"), "publication_types": kinds,
        "source": "bib", "volume": col("volume"), "issue": issue, "pages": col("pages"),
    })
    for c in ("doi", "title", "abstract", "journal", "volume", "issue", "pages"):
        frame[c] = frame[c].where(frame[c].str.strip() != "", None)
    out = conform(frame)
    out.insert(0, "record_id", bib["ID"].tolist())
    return out


# -- scoring ---------------------------------------------------------------------
def score(all_ids: list[str], kept_ids: set[str], true_groups: list[list[str]]) -> dict:
    """bib-dedupe's compare_dedupe_id: TP/FP/FN/TN on records, then sensitivity and precision."""
    in_group = {i for g in true_groups for i in g}
    tp = fp = fn = tn = 0
    for i in all_ids:
        if i not in in_group:
            if i in kept_ids:
                tn += 1
            else:
                fp += 1
    for group in true_groups:
        kept = sum(1 for i in group if i in kept_ids)
        if kept == 0:
            fp += 1
            tp += len(group) - 1
        else:
            tn += 1
            fn += kept - 1
            tp += len(group) - kept
    return {"TP": tp, "FP": fp, "FN": fn, "TN": tn,
            "sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
            "precision": tp / (tp + fp) if tp + fp else float("nan")}


def errors(all_ids, kept_ids, true_groups, removed_groups: list[list[str]]) -> tuple[list, list]:
    """(false merges, missed duplicates) as lists of ID lists, for --show-errors."""
    truth = {}
    for n, g in enumerate(true_groups):
        for i in g:
            truth[i] = n
    false = [g for g in removed_groups if len({truth.get(i, ("single", i)) for i in g}) > 1]
    missed = [[i for i in g if i in kept_ids] for g in true_groups if sum(i in kept_ids for i in g) > 1]
    return false, missed


# -- the two tools -----------------------------------------------------------------
def run_reviewlib(records: pd.DataFrame) -> tuple[set[str], float, dedup.DedupResult]:
    start = time.perf_counter()
    result = dedup.deduplicate(records)
    seconds = time.perf_counter() - start
    return set(result.records["record_id"]), seconds, result


def run_naive(records: pd.DataFrame) -> tuple[set[str], float]:
    """The naive baseline: records whose normalised titles are identical (and not empty) are one."""
    start = time.perf_counter()
    seen: set[str] = set()
    kept: set[str] = set()
    for rid, title in zip(records["record_id"], records["title"]):
        key = dedup.normalise_title(title)
        if key and key in seen:
            continue
        seen.add(key)
        kept.add(rid)
    return kept, time.perf_counter() - start


def ensure_bibdedupe() -> None:
    """Create benchmarks/bibdedupe/.venv with the pinned bib-dedupe on first use."""
    if BD_PY.is_file():
        return
    print(f"creating {BD_VENV} (bib-dedupe from {BD_DIR / 'requirements.txt'}) ...", file=sys.stderr)
    venv.create(BD_VENV, with_pip=True)
    subprocess.run([str(BD_PY), "-m", "pip", "install", "-q", "-r", str(BD_DIR / "requirements.txt")], check=True)


def run_bibdedupe(csv_path: Path) -> tuple[set[str], float, dict]:
    ensure_bibdedupe()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        subprocess.run([str(BD_PY), str(BD_RUNNER), str(csv_path), str(out)], check=True,
                       stdout=subprocess.DEVNULL)
        info = json.loads(out.read_text())
    return set(info["kept_ids"]), float(info["seconds"]), info


# -- speed at scale ------------------------------------------------------------------
def _copy_tag(k: int) -> str:
    """The tag of copy k: 'q' and its number, so titles of two copies also differ in their digits."""
    return f"q{k}"


def padded(frames: list[pd.DataFrame], n: int) -> pd.DataFrame:
    """The real sets concatenated, then copies until n records.  Copy k renames every ID, tags every word of
    the title and of every author name and the journal and DOI with a copy tag ('q<k>'), and adds 1000*k to
    the volumes' numbers, so each copy keeps the real sets' duplicate structure and block sizes but matches
    nothing in another copy (the removed count grows with the copies)."""
    base = pd.concat(frames, ignore_index=True)
    out, k = [], 0
    while sum(len(f) for f in out) < n:
        if k == 0:
            out.append(base)
        else:
            tag = _copy_tag(k)
            copy = base.copy()
            copy["record_id"] = [f"{r}-c{k}" for r in copy["record_id"]]
            copy["title"] = [None if t is None else " ".join(tag + w for w in t.split()) for t in copy["title"]]
            copy["authors"] = [[" ".join(tag + w if w[:1].isalpha() and w not in (",",) else w
                                         for w in a.replace(",", " ,").split()).replace(" ,", ",")
                                for a in al] for al in copy["authors"]]
            copy["journal"] = [None if j is None else tag + " " + j for j in copy["journal"]]
            copy["doi"] = [None if d is None else d + tag for d in copy["doi"]]
            copy["volume"] = [re.sub(r"^\d+", lambda m: str(int(m.group(0)) + 1000 * k), v) if isinstance(v, str)
                              else v for v in copy["volume"]]
            out.append(copy)
        k += 1
    return pd.concat(out, ignore_index=True).iloc[:n].reset_index(drop=True)


_SCALE_CHILD = """
import pickle, resource, sys, time
sys.path.insert(0, {root!r})
from reviewlib.screening import dedup
frame = pickle.load(open({path!r}, "rb"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start, cpu = time.perf_counter(), time.process_time()
result = dedup.deduplicate(frame)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(seconds, before, after, result.n_removed, cpu)
"""


def scale(frames: list[pd.DataFrame], sizes: list[int]) -> None:
    print(f"\nSpeed at scale (real sets padded with tagged copies; one process per size; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    print(f"{'records':>9} {'wall s':>8} {'CPU s':>7} {'RSS before MB':>14} {'RSS peak MB':>12} {'dedup MB':>9} "
          f"{'removed':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"pad{n}.pkl"
            padded(frames, n).to_pickle(path)
            out = subprocess.run([sys.executable, "-c", _SCALE_CHILD.format(root=str(ROOT), path=str(path))],
                                 check=True, capture_output=True, text=True).stdout.split()
            seconds, before, after, removed = float(out[0]), int(out[1]) / 1024, int(out[2]) / 1024, int(out[3])
            cpu = float(out[4])
            print(f"{n:>9,} {seconds:>8.2f} {cpu:>7.2f} {before:>14.0f} {after:>12.0f} {after - before:>9.0f} "
                  f"{removed:>8,}   (load {os.getloadavg()[0]:.2f})")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "dedup", help="folder holding the labelled sets")
    parser.add_argument("--sets", nargs="*", default=list(SETS))
    parser.add_argument("--skip-bibdedupe", action="store_true")
    parser.add_argument("--show-errors", action="store_true", help="print reviewlib's false merges and misses")
    parser.add_argument("--scale", type=int, nargs="*", default=None,
                        help="also time reviewlib on padded sets of these sizes (e.g. 25000 50000 100000)")
    args = parser.parse_args(argv)
    try:
        loaded = {name: load_labelled_set(args.data / name) for name in args.sets}
    except InputError as exc:
        print(f"benchmarks/dedup.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores; "
          f"counted as bib-dedupe's compare_dedupe_id (on records removed)")
    header = (f"{'set':<20} {'records':>7} {'dups':>5} | {'tool':<10} {'sensitivity':>11} {'false merges':>12} "
              f"{'precision':>9} {'TP':>5} {'FN':>4} {'time s':>7}")
    print(header)
    print("-" * len(header))
    frames = []
    for name, (bib, groups) in loaded.items():
        records = to_records(bib)
        frames.append(records)
        all_ids = bib["ID"].tolist()
        n_dups = sum(len(g) - 1 for g in groups)
        kept, seconds, result = run_reviewlib(records)
        s = score(all_ids, kept, groups)
        uncertain = len(result.uncertain) if hasattr(result, "uncertain") else 0
        print(f"{name:<20} {len(bib):>7,} {n_dups:>5} | {'reviewlib':<10} {s['sensitivity']:>11.3f} {s['FP']:>12} "
              f"{s['precision']:>9.3f} {s['TP']:>5} {s['FN']:>4} {seconds:>7.2f}"
              + (f"  ({uncertain} pairs for a person)" if uncertain else ""))
        nkept, nseconds = run_naive(records)
        b = score(all_ids, nkept, groups)
        print(f"{'':<20} {'':>7} {'':>5} | {'same title':<10} {b['sensitivity']:>11.3f} {b['FP']:>12} "
              f"{b['precision']:>9.3f} {b['TP']:>5} {b['FN']:>4} {nseconds:>7.2f}  (naive baseline)")
        if not args.skip_bibdedupe:
            bkept, bseconds, info = run_bibdedupe(args.data / name / "records_pre_merged.csv")
            b = score(all_ids, bkept, groups)
            print(f"{'':<20} {'':>7} {'':>5} | {'bib-dedupe':<10} {b['sensitivity']:>11.3f} {b['FP']:>12} "
                  f"{b['precision']:>9.3f} {b['TP']:>5} {b['FN']:>4} {bseconds:>7.2f}"
                  f"  ({info['n_maybe']} maybe pairs; {bseconds / max(seconds, 1e-9):.1f}x reviewlib's time)")
        if args.show_errors:
            removed = result.audit.groupby("group_id")["record_id"].apply(list).tolist() if len(result.audit) else []
            false, missed = errors(all_ids, kept, groups, removed)
            by_id = records.set_index("record_id")
            for label, items in (("FALSE MERGE", false), ("MISSED", missed)):
                for ids in items:
                    print(f"  {label}:")
                    for i in ids:
                        r = by_id.loc[i]
                        print(f"    {i} {r['year']} | {r['title']} | {'; '.join(r['authors'][:2])} | {r['journal']} "
                              f"{r['volume']}({r['issue']}) {r['pages']} | {r['doi']}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
    if args.scale:
        scale(frames, args.scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
