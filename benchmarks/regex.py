"""Protocol regexes: Python's re against google-re2 on the same patterns and the same text, in one run.

Inputs: every pattern the default protocol (notebooks/car-t-autoimmune.yaml) compiles
(eligibility rules, extraction fields with {NUM} expanded, outcome words), and the title and abstract
sentences of the embedded demo snapshot (reviewlib/data/car-t-autoimmune-snapshot.xml.gz).

It prints, for the patterns RE2 accepts:
  * compile time, re vs re2 (re's cache purged, so both really compile);
  * time to search every sentence with every pattern, re vs re2, and their ratio;
  * how many (pattern, sentence) pairs give a different first match span (semantics);
then extract() on the demo records with every protocol pattern on re (the peer, as before) and with
reviewlib.user_regex (RE2 where it can run the pattern), and whether their outputs are identical;
and, for the issue's catastrophic pattern ``^(a+)+$`` on ``"a" * n + "!"``, the time of each engine as
n grows (re's grows about 2x per extra character; n stops at 24 so the run stays short).

Run:  .venv/bin/python benchmarks/regex.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import re2  # noqa: E402

from reviewlib.evidence import extraction as ex  # noqa: E402
from reviewlib.evidence import outcomes  # noqa: E402
from reviewlib.screening import eligibility as el  # noqa: E402
from reviewlib.sources.pubmed_xml import read_pubmed_xml  # noqa: E402


def protocol_patterns() -> list[str]:
    """Every pattern text the default protocol compiles (through re.compile, spied on)."""
    seen: list[str] = []
    real = re.compile

    def spy(pattern, flags=0):
        if isinstance(pattern, str):
            seen.append(pattern)
        return real(pattern, flags)
    re.compile = spy
    try:
        ex.load_schema("car-t-autoimmune")
        el.load_rules("car-t-autoimmune")
        outcomes.load_outcomes("car-t-autoimmune")
    finally:
        re.compile = real
    return list(dict.fromkeys(seen))


def sentences() -> list[str]:
    records = read_pubmed_xml(ROOT / "reviewlib" / "data" / "car-t-autoimmune-snapshot.xml.gz")
    out = []
    for title, abstract in zip(records["title"], records["abstract"]):
        for text in (title or "", abstract or ""):
            out.extend(s for s in re.split(r"(?<=[.!?])\s+", text) if s)
    return out


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    patterns = protocol_patterns()
    opts = re2.Options()
    opts.case_sensitive = False
    opts.log_errors = False
    ok, refused = [], []
    for p in patterns:
        try:
            re2.compile(p, opts)
            ok.append(p)
        except re2.error:
            refused.append(p)
    texts = sentences()
    print(f"load average {os.getloadavg()[0]:.1f}; {len(patterns)} protocol patterns, RE2 accepts {len(ok)}, "
          f"refuses {len(refused)} (look-around); {len(texts)} demo sentences")

    def compile_re():
        re.purge()
        return [re.compile(p, re.IGNORECASE) for p in ok]

    def compile_re2():
        re2.purge()
        return [re2.compile(p, opts) for p in ok]
    t_re, t_re2 = best(compile_re, args.rounds), best(compile_re2, args.rounds)
    print(f"compile {len(ok)} patterns:  re {t_re * 1000:8.1f} ms   re2 {t_re2 * 1000:8.1f} ms   "
          f"re2/re {t_re2 / t_re:5.2f}")
    c_re, c_re2 = compile_re(), compile_re2()

    def search(compiled):
        return [[(m.span() if m else None) for m in (p.search(s) for s in texts)] for p in compiled]
    t_re, t_re2 = best(lambda: search(c_re), args.rounds), best(lambda: search(c_re2), args.rounds)
    print(f"search {len(ok)} x {len(texts)}:  re {t_re:8.2f} s    re2 {t_re2:8.2f} s    re2/re {t_re2 / t_re:5.2f}")
    a, b = search(c_re), search(c_re2)
    diff = sum(x != y for pa, pb in zip(a, b) for x, y in zip(pa, pb))
    print(f"different first-match spans: {diff} of {len(ok) * len(texts)} (pattern, sentence) pairs")

    records = read_pubmed_xml(ROOT / "reviewlib" / "data" / "car-t-autoimmune-snapshot.xml.gz")
    from reviewlib import user_regex

    def plain_re(pattern, flags=re.IGNORECASE):
        return re.compile(pattern, flags)

    def any_re(patterns, flags=re.IGNORECASE):
        return re.compile("|".join(f"(?:{p.pattern})" for p in patterns) or r"(?!)", flags)

    def run(engine):
        saved = (ex.compile_pattern, ex.any_of, ex._breakdown_regexes_of)
        if engine == "re":
            ex.compile_pattern, ex.any_of = plain_re, any_re
        ex._breakdown_regexes_of.cache_clear()
        try:
            schema = ex.load_schema("car-t-autoimmune")
            t = time.perf_counter()
            out = ex.extract(records, schema)
            return time.perf_counter() - t, out
        finally:
            ex.compile_pattern, ex.any_of, _ = saved
    runs = {e: [run(e) for _ in range(args.rounds)] for e in ("re", "user_regex")}
    t_re, t_u = (min(t for t, _ in runs[e]) for e in ("re", "user_regex"))
    same = runs["re"][0][1].equals(runs["user_regex"][0][1])
    print(f"extract() on {len(records)} demo records:  re {t_re:6.2f} s   user_regex {t_u:6.2f} s   "
          f"ratio {t_u / t_re:5.2f}   outputs identical: {same}")

    print("catastrophic ^(a+)+$ on 'a'*n + '!':")
    bad_re, bad_re2 = re.compile(r"^(a+)+$"), re2.compile(r"^(a+)+$")
    for n in (16, 20, 22, 24):
        text = "a" * n + "!"
        t1 = best(lambda: bad_re.search(text), 1)
        t2 = best(lambda: bad_re2.search(text), 1)
        print(f"  n={n:3d}  re {t1:9.4f} s   re2 {t2 * 1e6:7.1f} us")
    text = "a" * 100_000 + "!"
    print(f"  n=100000  re2 {best(lambda: bad_re2.search(text), 1) * 1000:.2f} ms (re: not run, it would not end)")


if __name__ == "__main__":
    main()
