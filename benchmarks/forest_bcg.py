"""Rebuild benchmarks/figures/forest_bcg.png: the README's forest plot (metafor's dat.bcg, risk ratio,
REML, subgroups by allocation; tests/data/synthesis/dat_bcg.csv, from R's metafor package, GPL >= 2).

    PYTHONPATH=. python benchmarks/forest_bcg.py [OUT.png]
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from reviewlib.evidence.synthesis import pool_ratios
from reviewlib.report import figures, synthesis_figures as sf

ROOT = Path(__file__).resolve().parent.parent


def main(out: Path) -> Path:
    bcg = pd.read_csv(ROOT / "tests" / "data" / "synthesis" / "dat_bcg.csv")
    labels = [f"{a} {y}" for a, y in zip(bcg.author, bcg.year)]
    res = pool_ratios(bcg.tpos, bcg.tpos + bcg.tneg, bcg.cpos, bcg.cpos + bcg.cneg, measure="RR", method="REML",
                      labels=labels, subgroups=bcg.alloc)
    print(res.summary())
    fig = sf.forest_plot(res, outcome="Tuberculosis, BCG vaccine vs control (dat.bcg)")
    fig.savefig(out, format="png", dpi=figures.DPI, facecolor="white", metadata={"Software": None})
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "benchmarks" / "figures" / "forest_bcg.png"))
