"""Figures drawn ahead in a forked second process (issue 15, notebook 04 cold): the files, pixels and
page embeddings are those drawn one by one in the notebook's process; small batches stay in one
process; a second process that fails costs only time.  Real data: the BCG trials (metafor's dat.bcg,
tests/data/synthesis) pooled and drawn as forest plots."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from reviewlib.evidence.synthesis import pool_ratios
from reviewlib.report import figure_cache
from reviewlib.report import synthesis_figures as sf
from reviewlib.report.synthesis_report import write_png

BCG = pd.read_csv(Path(__file__).parent / "data" / "synthesis" / "dat_bcg.csv")
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="draw_ahead needs os.fork")


def _results():
    """Four different pooled results of the real trials (all, and three leave-some-out subsets)."""
    out = []
    for drop in (None, [0], [1, 2], [3, 4, 5]):
        frame = BCG if drop is None else BCG.drop(index=drop).reset_index(drop=True)
        out.append(pool_ratios(frame.tpos, frame.tpos + frame.tneg, frame.cpos, frame.cpos + frame.cneg,
                               labels=frame.author + " " + frame.year.astype(str), measure="RR", method="REML"))
    return out


def _jobs(results, pid_log=None):
    jobs = []
    for i, res in enumerate(results):
        def draw(res=res, i=i):
            if pid_log is not None:
                pid_log.write_text(pid_log.read_text() + f"{i} {os.getpid()}\n") if pid_log.exists() \
                    else pid_log.write_text(f"{i} {os.getpid()}\n")
            return sf.forest_plot(res, outcome=f"Tuberculosis {i}")
        jobs.append(figure_cache.Pending(f"forest_{i}", figure_cache.figure_key(f"forest_{i}", res, i), draw,
                                         write_png, ("png",), rows=len(res.studies)))
    return jobs


def _show_all(jobs, run: Path, cache: Path):
    return [figure_cache.show_cached(j.draw, run, j.name, key=j.key, cache_dir=cache, save=write_png,
                                     formats=("png",))["png"].read_bytes() for j in jobs]


def test_figures_drawn_ahead_are_byte_identical_and_shown_without_drawing(tmp_path, monkeypatch):
    results = _results()
    monkeypatch.setenv(figure_cache.PARALLEL_ROWS_ENV, "0")        # off: one by one, the reference
    one_by_one = _show_all(_jobs(results), tmp_path / "run1", tmp_path / "cache1")
    monkeypatch.setenv(figure_cache.PARALLEL_ROWS_ENV, "1")
    log = tmp_path / "pids.txt"
    jobs = _jobs(results, log)
    assert figure_cache.draw_ahead(jobs, tmp_path / "cache2") == 2     # two of four went to the child
    drawers = {int(line.split()[0]): int(line.split()[1]) for line in log.read_text().splitlines()}
    assert sorted(drawers) == [0, 1, 2, 3] and len(set(drawers.values())) == 2
    assert os.getpid() in drawers.values()
    log.unlink()
    ahead = _show_all(jobs, tmp_path / "run2", tmp_path / "cache2")
    assert not log.exists()                                        # every figure came from the cache
    assert ahead == one_by_one
    for j in jobs:                                                 # the page embedding was kept as well
        assert (tmp_path / "cache2" / "figures" / f"{j.key}.embed").is_file()
    assert not list((tmp_path / "cache2" / "figures").glob(".ahead-*"))


def test_small_batches_and_cached_figures_start_no_second_process(tmp_path, monkeypatch):
    results = _results()
    monkeypatch.setenv(figure_cache.PARALLEL_ROWS_ENV, str(sum(len(r.studies) for r in results) + 1))
    assert figure_cache.draw_ahead(_jobs(results), tmp_path / "cache") == 0
    assert not (tmp_path / "cache" / "figures").exists()           # nothing drawn ahead: drawn when shown
    monkeypatch.setenv(figure_cache.PARALLEL_ROWS_ENV, "1")
    _show_all(_jobs(results[:3]), tmp_path / "run", tmp_path / "cache")
    assert figure_cache.draw_ahead(_jobs(results), tmp_path / "cache") == 0   # only one is missing
    assert figure_cache.draw_ahead(_jobs(results), None) == 0


def test_a_failing_second_process_leaves_its_figures_to_be_drawn_when_shown(tmp_path, monkeypatch):
    results = _results()
    monkeypatch.setenv(figure_cache.PARALLEL_ROWS_ENV, "1")
    parent = os.getpid()
    jobs = _jobs(results)
    for j in jobs:
        real = j.draw
        j.draw = lambda real=real: real() if os.getpid() == parent else 1 / 0
    assert figure_cache.draw_ahead(jobs, tmp_path / "cache") == 2
    kept = [figure_cache.cached_files(tmp_path / "cache", j.key, ("png",)) is not None for j in jobs]
    assert kept.count(True) == 2                                   # the parent's share only
    monkeypatch.setenv(figure_cache.PARALLEL_ROWS_ENV, "0")
    shown = _show_all(jobs, tmp_path / "run", tmp_path / "cache")
    assert shown == _show_all(_jobs(results), tmp_path / "run1", tmp_path / "cache1")


def test_the_shares_balance_rows_and_keep_order():
    jobs = [figure_cache.Pending(str(i), str(i), None, None, rows=r) for i, r in enumerate([100, 10, 60, 50, 1])]
    mine, theirs = figure_cache._share(jobs)
    assert [j.name for j in mine] == ["0", "1", "4"] and [j.name for j in theirs] == ["2", "3"]
    assert sum(j.rows for j in mine) == 111 and sum(j.rows for j in theirs) == 110
