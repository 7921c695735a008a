"""Benchmark: reviewlib.read_pubmed_xml against Bio.Entrez.read on the same efetch file.

Builds a PubmedArticleSet of N records (default 5,000) by re-numbering the real
efetch articles in tests/data/pubmed/efetch, in a temporary folder, then prints

* parse-only: records/s of ``iter_pubmed_xml`` (one dict per record) and of
  ``Bio.Entrez.read(handle)`` (the whole document as nested dicts), and their ratio;
* to-table: records/s of ``read_pubmed_xml`` (the records DataFrame) and of
  ``Bio.Entrez.read`` followed by converting its result into the same DataFrame,
  and their ratio;
* peak memory (tracemalloc peak and peak RSS, in a fresh child process each) at
  N and 4N records.

Times are the best of ``--repeat`` rounds, tasks run round-robin; CPU time
(``time.process_time``) is the figure to quote on a shared machine, wall time is
printed beside it.

Usage::

    .venv/bin/python benchmarks/parse.py            # N = 5000
    .venv/bin/python benchmarks/parse.py --n 2000 --repeat 1
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from Bio import Entrez  # noqa: E402

from reviewlib import records# noqa: E402
from reviewlib.sources.pubmed_xml import iter_pubmed_xml, parse_medline_date, read_pubmed_xml  # noqa: E402

FIXTURES = ROOT / "tests" / "data" / "pubmed" / "efetch"
HEADER = ('<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January '
          '2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n')
ARTICLE_RE = re.compile(r"<PubmedArticle>.*?</PubmedArticle>", re.S)
PMID_RE = re.compile(r'<PMID Version="(\d+)">\d+</PMID>')


def build(path: Path, n: int) -> Path:
    """Write a PubmedArticleSet of ``n`` real articles, re-numbered 1..n."""
    articles = []
    for fixture in sorted(FIXTURES.rglob("*.xml")):
        articles.extend(ARTICLE_RE.findall(fixture.read_text(encoding="utf-8")))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(HEADER)
        for i in range(n):
            body = articles[i % len(articles)]
            fh.write(PMID_RE.sub(f'<PMID Version="\\1">{i + 1}</PMID>', body, count=1))
            fh.write("\n")
        fh.write("</PubmedArticleSet>\n")
    return path


def _s(value) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def entrez_to_table(doc) -> pd.DataFrame:
    """Convert Bio.Entrez.read's PubmedArticleSet into the records table (the peer's to-table path)."""
    rows = []
    for art in doc["PubmedArticle"]:
        citation = art["MedlineCitation"]
        article = citation["Article"]
        journal = article.get("Journal", {})
        ids = {str(i.attributes.get("IdType")): str(i) for i in art.get("PubmedData", {}).get("ArticleIdList", [])}
        doi = ids.get("doi") or next((str(e) for e in article.get("ELocationID", [])
                                      if e.attributes.get("EIdType") == "doi"), None)
        sections = [{"label": t.attributes.get("Label", ""), "text": _s(t) or ""}
                    for t in article.get("Abstract", {}).get("AbstractText", [])]
        abstract = "\n".join(f"{s['label']}: {s['text']}" if s["label"] else s["text"] for s in sections) or None
        pub_date = journal.get("JournalIssue", {}).get("PubDate", {})
        if "Year" in pub_date:
            year, date = int(pub_date["Year"]), str(pub_date["Year"])
        else:
            year, date = parse_medline_date(pub_date.get("MedlineDate"))
        authors = []
        for a in article.get("AuthorList", []):
            if "LastName" in a:
                authors.append(f"{a['LastName']} {a.get('Initials', '')}".strip())
            elif "CollectiveName" in a:
                authors.append(_s(a["CollectiveName"]))
        mesh, major = [], []
        for h in citation.get("MeshHeadingList", []):
            d = h["DescriptorName"]
            mesh.append(str(d))
            if d.attributes.get("MajorTopicYN") == "Y" or any(
                    q.attributes.get("MajorTopicYN") == "Y" for q in h.get("QualifierName", [])):
                major.append(str(d))
        rows.append({
            "pmid": str(citation["PMID"]), "doi": doi, "pmcid": ids.get("pmc"),
            "title": _s(article.get("ArticleTitle")), "abstract": abstract, "abstract_sections": sections,
            "authors": authors, "journal": _s(journal.get("Title")),
            "journal_abbrev": _s(journal.get("ISOAbbreviation")), "year": year, "pub_date": date,
            "language": [str(x) for x in article.get("Language", [])],
            "publication_types": [str(x) for x in article.get("PublicationTypeList", [])],
            "mesh_terms": mesh, "mesh_major": major,
            "keywords": [_s(k) for kl in citation.get("KeywordList", []) for k in kl],
            "source": "pubmed",
        })
    return records.conform(pd.DataFrame(rows, columns=records.COLUMNS))


def entrez_read(path: Path):
    with open(path, "rb") as handle:
        return Entrez.read(handle)


TASKS = {
    "ours-parse": lambda p: sum(1 for _ in iter_pubmed_xml(p)),
    "entrez-parse": lambda p: len(entrez_read(p)["PubmedArticle"]),
    "ours-table": lambda p: len(read_pubmed_xml(p)),
    "entrez-table": lambda p: len(entrez_to_table(entrez_read(p))),
}


def best_times(path: Path, repeat: int) -> dict[str, tuple[float, float, int]]:
    """Best CPU time (process_time) and best wall time of each task over ``repeat`` rounds.

    The tasks run round-robin (ours, peer, ours, peer...) so that a burst of load
    from other processes on a shared machine hits both sides alike.
    """
    cpu: dict[str, list[float]] = {t: [] for t in TASKS}
    wall: dict[str, list[float]] = {t: [] for t in TASKS}
    counts: dict[str, int] = {}
    for _ in range(repeat):
        for task in TASKS:
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            counts[task] = TASKS[task](path)
            cpu[task].append(time.process_time() - start_cpu)
            wall[task].append(time.perf_counter() - start_wall)
    return {t: (min(cpu[t]), min(wall[t]), counts[t]) for t in TASKS}


def peak_rss() -> int:
    """This process's peak resident set size in bytes (VmHWM; ru_maxrss survives exec, VmHWM does not)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_peak(task: str, path: Path) -> tuple[int, int]:
    """Peak traced memory and peak RSS (bytes) of one task in a fresh Python process."""
    out = subprocess.run([sys.executable, __file__, "--child", task, str(path)],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    return result["peak"], result["rss"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="records in the 1x file (default 5000)")
    parser.add_argument("--repeat", type=int, default=3, help="timing repetitions, best kept (default 3)")
    parser.add_argument("--child", nargs=2, metavar=("TASK", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tracemalloc.start()
        TASKS[args.child[0]](Path(args.child[1]))
        peak = tracemalloc.get_traced_memory()[1]
        rss = peak_rss()
        print(json.dumps({"peak": peak, "rss": rss}))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        one = build(Path(tmp) / "set_1x.xml", args.n)
        four = build(Path(tmp) / "set_4x.xml", 4 * args.n)
        print(f"input: {args.n} records, {one.stat().st_size / 1e6:.1f} MB "
              f"(real efetch articles re-numbered); best of {args.repeat}")
        print(f"  {'task':13s} {'CPU s':>8s} {'rec/s CPU':>10s} {'wall s':>8s} {'rec/s wall':>10s}")
        cpu_rate, wall_rate = {}, {}
        for task, (cpu, wall, count) in best_times(one, args.repeat).items():
            assert count == args.n, (task, count)
            cpu_rate[task], wall_rate[task] = count / cpu, count / wall
            print(f"  {task:13s} {cpu:8.3f} {cpu_rate[task]:10.0f} {wall:8.3f} {wall_rate[task]:10.0f}")
        for label, ours, peer, what in (
                ("parse-only", "ours-parse", "entrez-parse", "iter_pubmed_xml / Bio.Entrez.read"),
                ("to-table", "ours-table", "entrez-table", "read_pubmed_xml / Bio.Entrez.read + DataFrame")):
            print(f"{label:10s} ratio ({what}): CPU {cpu_rate[ours] / cpu_rate[peer]:.1f}x, "
                  f"wall {wall_rate[ours] / wall_rate[peer]:.1f}x")
        print("peak memory (tracemalloc peak / process max RSS; a fresh process each):")
        for task, sizes in (("ours-parse", (one, four)), ("ours-table", (one, four)), ("entrez-parse", (one,))):
            cells = []
            for path, n in zip(sizes, (args.n, 4 * args.n)):
                peak, rss = child_peak(task, path)
                cells.append((n, peak, rss))
            text = "   ".join(f"{n:6d} rec: {peak / 1e6:8.1f} MB / {rss / 1e6:7.1f} MB" for n, peak, rss in cells)
            growth = f"   traced x{cells[1][1] / cells[0][1]:.2f}" if len(cells) == 2 else ""
            print(f"  {task:13s} {text}{growth}")
        print("(ours-table grows with N because the result table does; the XML tree does not: see ours-parse)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
