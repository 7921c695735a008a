"""Synthesis figures: what is drawn (rows, diamond bounds, prediction interval, panels, cells), not pixels."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reviewlib.errors import InputError
from reviewlib.evidence import appraisal
from reviewlib.evidence.synthesis import pool_proportions, pool_ratios
from reviewlib.report import synthesis_figures as sf
from reviewlib.protocol import load_protocol
from reviewlib.store import ReviewStore

BCG = pd.read_csv(Path(__file__).parent / "data" / "synthesis" / "dat_bcg.csv")


def _gids(ax, prefix):
    artists = list(ax.lines) + list(ax.patches)
    return {a.get_gid(): a for a in artists if (a.get_gid() or "").startswith(prefix)}


def _plot_axes(fig):
    return next(ax for ax in fig.axes if _gids(ax, "study-ci:"))


def _bcg(**kw):
    return pool_ratios(BCG.tpos, BCG.tpos + BCG.tneg, BCG.cpos, BCG.cpos + BCG.cneg,
                       labels=BCG.author + " " + BCG.year.astype(str), **kw)


def test_forest_rows_diamond_and_prediction_interval():
    res = _bcg(measure="RR", method="REML")
    fig = sf.forest_plot(res, outcome="Tuberculosis")
    ax = _plot_axes(fig)
    rows = _gids(ax, "study-ci:")
    assert len(rows) == 13
    aronson = rows["study-ci:Aronson 1948"].get_xdata()
    assert tuple(aronson) == pytest.approx((res.studies.ci_low[0], res.studies.ci_high[0]))
    diamond = _gids(ax, "pooled-diamond")["pooled-diamond"].get_xy()
    assert diamond[:, 0].min() == pytest.approx(res.ci_low) and diamond[:, 0].max() == pytest.approx(res.ci_high)
    assert res.estimate in diamond[:, 0]
    pi = _gids(ax, "prediction-interval")["prediction-interval"].get_xdata()
    assert tuple(pi) == pytest.approx((res.pi_low, res.pi_high))
    assert ax.get_xscale() == "log"
    title = fig._suptitle.get_text().replace("\n", " ")
    assert "pooled risk ratio 0.49 (95% CI 0.34 to 0.70" in title and "13 studies" in title and "I\u00b2 92%" in title


def test_forest_subgroup_panels():
    res = _bcg(measure="RR", method="REML", subgroups=BCG.alloc)
    fig = sf.forest_plot(res, outcome="Tuberculosis")
    ax = _plot_axes(fig)
    sub = _gids(ax, "subgroup-diamond:")
    assert set(sub) == {"subgroup-diamond:random", "subgroup-diamond:systematic"}   # 'alternate' has 2 trials
    groups = res.subgroups.set_index("subgroup")
    xs = sub["subgroup-diamond:random"].get_xy()[:, 0]
    assert (xs.min(), xs.max()) == pytest.approx((groups.loc["random", "ci_low"], groups.loc["random", "ci_high"]))
    headers = [t.get_text() for a in fig.axes for t in a.texts if (t.get_gid() or "").startswith("subgroup-header:")]
    assert headers == ["random", "alternate", "systematic"]
    assert "subgroup difference p =" in fig._suptitle.get_text().replace("\n", " ")


def test_forest_with_too_few_studies_draws_no_diamond_and_says_why():
    res = pool_proportions([0, 3], [5, 8], labels=["Liu 2023a", "Liu 2023b"])
    fig = sf.forest_plot(res, outcome="ICANS", notice="Synthetic demo data")
    ax = _plot_axes(fig)
    assert len(_gids(ax, "study-ci:")) == 2 and not _gids(ax, "pooled-diamond")
    assert "not pooled (only 2 studies)" in fig._suptitle.get_text().replace("\n", " ")
    assert any(t.get_text() == "Synthetic demo data" for t in fig.texts)
    # the study's own exact interval contains its observed 0/5
    low, high = _gids(ax, "study-ci:")["study-ci:Liu 2023a"].get_xdata()
    assert low == 0 and high == pytest.approx(0.5218, abs=1e-4)


def test_funnel_plot_needs_ten_studies():
    fig = sf.funnel_plot(_bcg(measure="RR", method="REML"), outcome="Tuberculosis")
    assert "Egger's test (k = 13)" in fig._suptitle.get_text().replace("\n", " ")
    with pytest.raises(InputError, match="need at least 10"):
        sf.funnel_plot(pool_proportions([1, 2, 3], [5, 5, 5]), outcome="CRS")


@pytest.fixture
def judged(tmp_path):
    studies = pd.DataFrame([{"record_id": f"pmid:{i}", "design": "case series", "n_patients": 4 + i,
                             "age_group": "adult", "follow_up_months": 12 if i % 2 else "not reported",
                             "lymphodepletion": "Flu/Cy", "disease": "SLE"} for i in range(1, 6)])
    with ReviewStore(tmp_path / "r.sqlite") as store:
        appraisal.demo_appraise(store, studies, load_protocol("car-t-autoimmune"))
        yield appraisal.final_judgements(store), {f"pmid:{i}": f"Study {i}" for i in range(1, 6)}


def test_traffic_light_cells_match_judgements(judged):
    final, labels = judged
    fig = sf.traffic_light_plot(final, labels=labels)
    ax = fig.axes[0]
    cells = _gids(ax, "rob-cell:")
    assert len(cells) == 5 * 10
    high = final[(final["record_id"] == "pmid:2") & (final["item"] == "8")]["level"].iloc[0]
    assert high == "high"
    assert cells["rob-cell:Study 2|8"].get_facecolor()[:3] == pytest.approx(
        tuple(int(sf.LEVEL_COLORS["high"][i:i + 2], 16) / 255 for i in (1, 3, 5)))
    title = fig._suptitle.get_text().replace("\n", " ")
    assert title.startswith("JBI checklist for case series: 2 of 5 studies have a high-risk judgement")


def test_summary_bars_are_the_shares_of_studies(judged):
    final, labels = judged
    fig = sf.summary_plot(final, labels=labels)
    bars = _gids(fig.axes[0], "rob-bar:")
    assert bars["rob-bar:8|high"].get_width() == pytest.approx(2 / 5)
    assert bars["rob-bar:8|low"].get_width() == pytest.approx(3 / 5)
    for item in [str(i) for i in range(1, 11)]:
        assert sum(b.get_width() for g, b in bars.items() if g.startswith(f"rob-bar:{item}|")) == pytest.approx(1)


def test_rob_plots_refuse_mixed_tools(judged):
    final, labels = judged
    mixed = pd.concat([final, pd.DataFrame([{"record_id": "pmid:9", "tool": "rob2", "item": "D1", "answer": "Low",
                                             "level": "low"}])])
    with pytest.raises(InputError, match="several tools"):
        sf.traffic_light_plot(mixed)
    assert sf.traffic_light_plot(mixed, tool="rob2") is not None


def test_saved_files(tmp_path):
    paths = sf.save(sf.forest_plot(_bcg(measure="OR", method="DL"), outcome="TB"), tmp_path, "forest")
    assert paths["png"].stat().st_size > 0 and paths["svg"].read_text().startswith("<?xml")
