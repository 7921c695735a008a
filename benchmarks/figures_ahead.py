"""The synthesis figures of a review drawn one by one against drawn ahead in two processes
(``figure_cache.draw_ahead``), on the same review in the same run (issue 15, notebook 04 cold).

    nice .venv/bin/python benchmarks/figures_ahead.py --protocol PROTOCOL --review-dir REVIEWS/REVIEW --run-name RUN

(a review a ``reviewlib run`` made).  Each way starts from an empty figure cache of its own; prints
wall seconds, this process's CPU seconds and the second process's, the ratio of wall seconds,
and whether every PNG is byte-identical (it must be).  The wall ratio needs two free cores: give
the load average beside it.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _cpu() -> tuple[float, float]:
    me, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, ch.ru_utime + ch.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--review-dir", required=True)
    parser.add_argument("--run-name", required=True)
    args = parser.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import IPython.display

    from reviewlib import evidence, pipeline, report
    from reviewlib.evidence import extraction
    from reviewlib.report import figure_cache, living
    from reviewlib.report import synthesis_report as synthesis
    from reviewlib.screening import registrations

    IPython.display.display = lambda *a, **k: None
    work = Path(tempfile.mkdtemp(prefix="figures-ahead-"))
    ctx = pipeline.open_review(args.protocol, review_dir=args.review_dir, output_dir=str(work / "out"),
                               run_name=args.run_name, offline=True)
    included, _ = registrations.split_sources(living.run_included_records(ctx.store, ctx.run_name))
    table = evidence.study_table(extraction.current_values(ctx.store, ctx.protocol), included, ctx.protocol)
    found = synthesis.synthesize_review(ctx.store, table, included, ctx.protocol, demo=ctx.synthetic,
                                        folder=work / "out", gaps=report.gaps(table, ctx.protocol))
    notice = report.figure_notice(ctx)
    synthesis.show_forest_plots(found, work / "warm", notice=notice)      # imports (seaborn...) paid once
    results = {}
    for way, rows in (("one by one", "0"), ("ahead, two processes", "1")):
        os.environ[figure_cache.PARALLEL_ROWS_ENV] = rows
        folder, cache = work / way.replace(" ", "_") / "figures", work / way.replace(" ", "_") / "cache"
        c0, w0 = _cpu(), time.perf_counter()
        names = synthesis.show_forest_plots(found, folder, notice=notice, cache_dir=cache)
        names += synthesis.show_risk_of_bias(found, folder, notice=notice, cache_dir=cache)
        names += report.show_evidence_figures(table, ctx.protocol, folder, notice=notice, cache_dir=cache)
        c1, w1 = _cpu(), time.perf_counter()
        results[way] = (w1 - w0, c1[0] - c0[0], c1[1] - c0[1], {p.name: p.read_bytes() for p in folder.glob("*.png")})
        print(f"{way}: {len(names)} figures, wall {w1 - w0:.2f} s, CPU {c1[0] - c0[0]:.2f} s here + "
              f"{c1[1] - c0[1]:.2f} s in the second process")
    (a, _, _, pa), (b, _, _, pb) = results.values()
    print(f"wall ratio one by one / ahead: {a / b:.2f}x; PNGs byte-identical: {pa == pb} ({len(pa)} files); "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
