"""Figures of the evidence synthesis: forest plots, funnel plots, robvis-style risk-of-bias plots.

* :func:`forest_plot` draws a :class:`~reviewlib.evidence.synthesis.PoolResult`: one row per
  study (a square sized by its weight on its CI), the pooled diamond (its ends are the pooled
  CI), the prediction interval as a bar under it, subgroup panels (a header, the subgroup's
  studies and diamond) with the test for subgroup differences, and the numbers in columns.
  With fewer than three studies no diamond is drawn and the title says why.
* :func:`funnel_plot` draws the funnel for 10 or more studies, with Egger's test in the title.
* :func:`traffic_light_plot` and :func:`summary_plot` follow robvis (McGuinness & Higgins 2021):
  a grid of studies x items coloured by judgement (with a symbol, so colour is not the only
  cue), and stacked bars of the share of studies at each level per item.

Titles state a finding computed from the data.  Drawn elements carry ``gid`` attributes
(``study-ci:<label>``, ``pooled-diamond``, ``prediction-interval``, ``subgroup-diamond:<name>``,
``rob-cell:<study>|<item>``) so tests check what was drawn.  seaborn (the project's plotting
stack) styles the axes; it is imported inside the functions (its import costs seconds).
Give ``notice="Synthetic demo data"`` to label demo figures.
"""
from __future__ import annotations

import logging
import math
import textwrap
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon, Rectangle

from ..errors import InputError
from ..evidence.appraisal import LEVELS, TOOLS
from .figures import GREY, OKABE_ITO, _figure, _finish, save

logger = logging.getLogger(__name__)

__all__ = ["forest_plot", "forest_finding", "funnel_plot", "traffic_light_plot", "summary_plot",
           "rob_finding", "LEVEL_COLORS", "save"]

#: Okabe-Ito colours for the risk-of-bias levels, with robvis' symbols.
LEVEL_COLORS = {"low": OKABE_ITO["bluish green"], "some concerns": OKABE_ITO["yellow"],
                "high": OKABE_ITO["vermillion"], "critical": OKABE_ITO["reddish purple"],
                "unclear": OKABE_ITO["sky blue"], "not applicable": "#D9D9D9"}
LEVEL_SYMBOLS = {"low": "+", "some concerns": "-", "high": "x", "critical": "!", "unclear": "?",
                 "not applicable": ""}
_STUDY = OKABE_ITO["blue"]
_POOLED = "#222222"


def _style():
    import seaborn as sns

    return sns.axes_style("white", {"axes.spines.right": False, "axes.spines.top": False})


# -- forest plot -------------------------------------------------------------------------------
def _fmt_value(result, x: float) -> str:
    if math.isnan(x):
        return "-"
    if result.kind == "proportion":
        return f"{100 * x:.0f}%"
    if result.kind == "RD":
        return f"{x:+.2f}"
    return f"{x:.2f}"


def _interval(result, lo: float, hi: float) -> str:
    return f"[{_fmt_value(result, lo)}, {_fmt_value(result, hi)}]"


def forest_finding(result, outcome: str = "Outcome") -> str:
    """The forest plot's title: the pooled finding with k, patients and I^2, or why nothing was pooled."""
    if not result.poolable:
        return (f"{outcome}: {result.events} events in {result.patients} patients across {result.k} "
                f"{'study' if result.k == 1 else 'studies'}; not pooled ({result.reason.split(':')[0]})")
    label = {"proportion": "", "RR": "risk ratio ", "OR": "odds ratio ", "RD": "risk difference "}[result.kind]
    text = (f"{outcome}: pooled {label}{_fmt_value(result, result.estimate)} "
            f"(95% CI {_fmt_value(result, result.ci_low)} to {_fmt_value(result, result.ci_high)}"
            )
    if not math.isnan(result.pi_low):
        text += f"; prediction interval {_fmt_value(result, result.pi_low)} to {_fmt_value(result, result.pi_high)}"
    text += f") from {result.k} studies, {result.patients:,} patients; I\u00b2 {result.i2:.0f}%"
    if result.subgroups is not None and result.q_between is not None and not math.isnan(result.q_between):
        text += f"; subgroup difference p = {result.q_between_p:.2f}"
    return text


def _rows(result) -> list[dict[str, Any]]:
    """The plot's rows top to bottom: studies, subgroup headers and diamonds, the overall diamond."""
    rows: list[dict[str, Any]] = []
    studies = result.studies
    if result.subgroups is not None and "subgroup" in studies:
        sub = result.subgroups.set_index("subgroup")
        for name in result.subgroups["subgroup"]:
            rows.append({"kind": "header", "label": f"{name}"})
            for s in studies[studies["subgroup"] == name].to_dict("records"):
                rows.append({"kind": "study", **s})
            g = sub.loc[name]
            rows.append({"kind": "subgroup", "label": f"Subtotal ({int(g['k'])} {'study' if int(g['k']) == 1 else 'studies'})", "name": name,
                         "estimate": g["estimate"], "ci_low": g["ci_low"], "ci_high": g["ci_high"],
                         "poolable": bool(g["poolable"]), "i2": g["i2"]})
    else:
        for s in studies.to_dict("records"):
            rows.append({"kind": "study", **s})
    rows.append({"kind": "overall", "label": "Overall" if result.poolable else "Not pooled"})
    return rows


def forest_plot(result, *, outcome: str = "Outcome", title: str | None = None, notice: str | None = None,
                xlabel: str | None = None):
    """Draw a forest plot of a pooled result.

    Parameters
    ----------
    result : PoolResult
        From :func:`~reviewlib.evidence.synthesis.pool_proportions` or ``pool_ratios`` (with
        ``subgroups=`` for panels).
    outcome : str
        The outcome's name, for the title.
    title : str, optional
        Overrides the computed finding.
    notice : str, optional
        A label under the figure, e.g. "Synthetic demo data".
    xlabel : str, optional
        The axis label (default from the measure).
    """
    rows = _rows(result)
    n = len(rows)
    height = 1.4 + 0.28 * (n + 1)
    two_arm = "events_ctrl" in result.studies
    with _style(), matplotlib.rc_context({"font.size": 9}):
        fig = _figure(11.5 if two_arm else 10.5, height)
        grid = fig.add_gridspec(1, 4, width_ratios=[2.4, 2.0 if two_arm else 1.0, 4.2, 2.3], wspace=0.02)
        left, mid, ax, right = (fig.add_subplot(grid[0, i]) for i in range(4))
    for side in (left, mid, right):
        side.set_axis_off()
        side.set_ylim(-1.0, n + 0.5)
        side.set_xlim(0, 1)
    ax.set_ylim(-1.0, n + 0.5)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ratio = result.kind in ("RR", "OR")
    if ratio:
        ax.set_xscale("log")
        ax.axvline(1.0, color=GREY, lw=0.8, zorder=0)
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10,
                                                                   20, 50, 100]))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    elif result.kind == "RD":
        ax.axvline(0.0, color=GREY, lw=0.8, zorder=0)
    else:
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    ax.set_xlabel(xlabel or {"proportion": "Proportion of patients (95% CI)", "RR": "Risk ratio (log scale)",
                             "OR": "Odds ratio (log scale)", "RD": "Risk difference"}[result.kind])
    wmax = float(result.studies["weight"].max()) if len(result.studies) else 1.0
    count_header = "Events / N" if not two_arm else "Treated | Control"
    left.text(0.0, n, "Study", fontweight="bold", va="center")
    mid.text(1.0, n, count_header, fontweight="bold", va="center", ha="right")
    right.text(0.0, n, "Estimate [95% CI]", fontweight="bold", va="center")
    right.text(1.0, n, "Weight", fontweight="bold", va="center", ha="right")
    for i, row in enumerate(rows):
        y = n - 1 - i
        kind = row["kind"]
        if kind == "header":
            left.text(0.0, y, row["label"], fontweight="bold", va="center", gid=f"subgroup-header:{row['label']}")
            ax.axhline(y + 0.5, color="#DDDDDD", lw=0.6, zorder=0)
            continue
        if kind == "study":
            lo, hi, est = row["ci_low"], row["ci_high"], row["value"]
            ax.add_line(Line2D([lo, hi], [y, y], color=_STUDY, lw=1.2, gid=f"study-ci:{row['label']}"))
            size = 4 + 10 * math.sqrt(max(row["weight"], 0) / wmax)
            if not (ratio and est <= 0):
                ax.plot([est], [y], marker="s", color=_STUDY, markersize=size, linestyle="none",
                        gid=f"study-point:{row['label']}")
            counts = f"{row['events']:,}/{row['n']:,}"
            if "events_ctrl" in row:
                counts += f" | {row['events_ctrl']:,}/{row['n_ctrl']:,}"
            left.text(0.0, y, ("  " if result.subgroups is not None else "") + str(row["label"]), va="center")
            mid.text(1.0, y, counts, va="center", ha="right")
            right.text(0.0, y, f"{_fmt_value(result, est)} {_interval(result, lo, hi)}", va="center")
            right.text(1.0, y, f"{row['weight']:.1f}%", va="center", ha="right")
            continue
        if kind == "subgroup":
            left.text(0.0, y, "  " + row["label"], va="center", style="italic")
            if row["poolable"]:
                _diamond(ax, row["estimate"], row["ci_low"], row["ci_high"], y, gid=f"subgroup-diamond:{row['name']}",
                         color=OKABE_ITO["sky blue"])
                right.text(0.0, y, f"{_fmt_value(result, row['estimate'])} "
                                   f"{_interval(result, row['ci_low'], row['ci_high'])}", va="center", style="italic")
            else:
                right.text(0.0, y, "not pooled (< 3 studies)", va="center", style="italic", color="#555555")
            continue
        # overall
        ax.axhline(y + 0.5, color="#999999", lw=0.8, zorder=0)
        left.text(0.0, y, row["label"], fontweight="bold", va="center")
        mid.text(1.0, y, f"{result.events:,}/{result.patients:,}", va="center", ha="right", fontweight="bold")
        if result.poolable:
            _diamond(ax, result.estimate, result.ci_low, result.ci_high, y, gid="pooled-diamond", color=_POOLED)
            if not math.isnan(result.pi_low):
                ax.add_line(Line2D([result.pi_low, result.pi_high], [y - 0.38, y - 0.38], color=_POOLED, lw=2.2,
                                   solid_capstyle="butt", alpha=0.55, gid="prediction-interval"))
            right.text(0.0, y, f"{_fmt_value(result, result.estimate)} "
                               f"{_interval(result, result.ci_low, result.ci_high)}", va="center", fontweight="bold")
            right.text(1.0, y, "100%", va="center", ha="right", fontweight="bold")
        else:
            right.text(0.0, y, "too few studies", va="center", color="#555555")
    if ratio:
        values = np.concatenate([result.studies["ci_low"], result.studies["ci_high"], [result.pi_low, result.pi_high]])
        values = values[np.isfinite(values) & (values > 0)]
        if len(values):
            ax.set_xlim(min(values.min(), 0.9) / 1.2, max(values.max(), 1.1) * 1.2)
    elif result.kind == "RD":
        values = np.concatenate([result.studies["ci_low"], result.studies["ci_high"], [result.pi_low, result.pi_high]])
        values = values[np.isfinite(values)]
        if len(values):
            pad = 0.05 * (values.max() - values.min() + 1e-9)
            ax.set_xlim(min(values.min(), 0) - pad, max(values.max(), 0) + pad)
    method = {"REML": "random effects (REML)", "DL": "random effects (DerSimonian-Laird)",
              "PM": "random effects (Paule-Mandel)", "FE": "fixed effect", "MH": "Mantel-Haenszel"}[result.method]
    foot = f"Pooled by {method}" + (", Hartung-Knapp CI" if result.hartung_knapp else "")
    if result.kind == "proportion":
        foot += f" on the {result.scale} scale; study CIs exact (Clopper-Pearson)"
    if result.poolable and not math.isnan(result.pi_low):
        foot += "; the bar under the diamond is the 95% prediction interval"
    if result.studies["corrected"].any():
        n_corr = int(result.studies["corrected"].sum())
        foot += f"; 0.5 added to {n_corr} {'study' if n_corr == 1 else 'studies'} with a zero cell"
    if result.subgroups is not None and result.q_between is not None and not math.isnan(result.q_between):
        foot += (f". Test for subgroup differences: Q = {result.q_between:.2f}, df = {result.q_between_df}, "
                 f"p = {result.q_between_p:.3f}")
    return _finish(fig, ax, title or forest_finding(result, outcome), notice, footnote=foot)


def _diamond(ax, est: float, lo: float, hi: float, y: float, *, gid: str, color: str) -> Polygon:
    poly = Polygon([(lo, y), (est, y + 0.32), (hi, y), (est, y - 0.32)], closed=True, facecolor=color,
                   edgecolor=color, gid=gid, zorder=3)
    ax.add_patch(poly)
    return poly


# -- funnel plot --------------------------------------------------------------------------------
def funnel_plot(result, *, outcome: str = "Outcome", notice: str | None = None):
    """Funnel plot (study value against its standard error, transformed scale) with Egger's test.

    Raises
    ------
    InputError
        With fewer than 10 studies (the reason is in the message).
    """
    data = result.funnel_data()
    if data is None:
        raise InputError(f"{outcome}: no funnel plot: {result.small_study_reason}")
    egger = result.egger()
    with _style():
        fig = _figure(6.5, 5)
        ax = fig.add_subplot(1, 1, 1)
    se_max = float(data["se"].max()) * 1.05
    grid = np.linspace(0, se_max, 50)
    ax.plot(result.estimate_t - 1.96 * grid, grid, color=GREY, ls="--", lw=0.8, gid="funnel-limit")
    ax.plot(result.estimate_t + 1.96 * grid, grid, color=GREY, ls="--", lw=0.8)
    ax.axvline(result.estimate_t, color=_POOLED, lw=0.8)
    ax.scatter(data["yi"], data["se"], color=_STUDY, zorder=3, gid="funnel-studies")
    ax.set_ylim(se_max, 0)
    ax.set_ylabel("Standard error")
    ax.set_xlabel({"proportion": f"Proportion ({result.scale} scale)", "RR": "log risk ratio",
                   "OR": "log odds ratio", "RD": "risk difference"}[result.kind])
    return _finish(fig, ax, f"{outcome}: {egger.sentence()}", notice)


# -- risk of bias (robvis style) ----------------------------------------------------------------
def _prepare_rob(final: pd.DataFrame, labels: dict[str, str] | None, tool: str | None) -> tuple[pd.DataFrame, str]:
    if final is None or final.empty:
        raise InputError("no risk-of-bias judgements to plot: appraise the studies first")
    tools = list(dict.fromkeys(final["tool"]))
    if tool is None:
        if len(tools) > 1:
            raise InputError(f"judgements from several tools ({', '.join(tools)}): draw one tool at a time (tool=...)")
        tool = tools[0]
    if tool not in TOOLS:
        raise InputError(f"appraisal tool {tool!r} is not one of {', '.join(TOOLS)}")
    frame = final[final["tool"] == tool].copy()
    if frame.empty:
        raise InputError(f"no judgements with tool {tool!r} to plot")
    frame["study"] = [labels.get(r, r) if labels else r for r in frame["record_id"]]
    return frame, tool


def rob_finding(final: pd.DataFrame, tool: str, labels: dict[str, str] | None = None) -> str:
    """A title for the risk-of-bias plots: how many studies have a high-risk judgement, and the
    item most often not low."""
    frame, tool = _prepare_rob(final, labels, tool)
    t = TOOLS[tool]
    k = frame["record_id"].nunique()
    bad = frame[frame["level"].isin(["high", "critical"])]["record_id"].nunique()
    concern = frame[~frame["level"].isin(["low", "not applicable"])]
    worst = concern.groupby("item")["record_id"].nunique().sort_values(ascending=False)
    text = f"{t.name}: {bad} of {k} {'study has' if k == 1 else 'studies have'} a high-risk judgement"
    if len(worst):
        item = worst.index[0]
        question = t.question(item)
        text += (f"; '{question.rstrip('?')}' ({item}) is not low-risk in {int(worst.iloc[0])} of {k}")
    return text


def traffic_light_plot(final: pd.DataFrame, *, tool: str | None = None, labels: dict[str, str] | None = None,
                       title: str | None = None, notice: str | None = None):
    """robvis-style traffic-light plot: one row per study, one column per item/domain.

    Parameters
    ----------
    final : pandas.DataFrame
        :func:`reviewlib.evidence.appraisal.final_judgements` (record_id, tool, item, answer, level).
    tool : str, optional
        Which tool's judgements (needed when several tools were used).
    labels : dict, optional
        record_id -> study label.
    """
    frame, tool = _prepare_rob(final, labels, tool)
    t = TOOLS[tool]
    items = [i for i in t.item_keys if i in set(frame["item"])]
    studies = list(dict.fromkeys(frame["study"]))
    cell = {(r["study"], r["item"]): r["level"] for r in frame.to_dict("records")}
    width = 2.6 + 0.55 * len(items)
    height = 1.6 + 0.32 * len(studies)
    with _style():
        fig = _figure(max(6.0, width), height)
        ax = fig.add_subplot(1, 1, 1)
    for yi, study in enumerate(studies):
        for xi, item in enumerate(items):
            level = cell.get((study, item))
            if level is None:
                continue
            y = len(studies) - 1 - yi
            # add_artist, not add_patch: the same drawing (limits are set below), without add_patch's update of the
            # data limits, which walks the patch's path each time (5 of the 10 s of 500 studies' plot)
            ax.add_artist(Rectangle((xi - 0.42, y - 0.42), 0.84, 0.84, facecolor=LEVEL_COLORS.get(level, GREY),
                                    edgecolor="white", gid=f"rob-cell:{study}|{item}"))
            ax.text(xi, y, LEVEL_SYMBOLS.get(level, "?"), ha="center", va="center", fontsize=9, fontweight="bold",
                    color="#222222")
    ax.set_xlim(-0.6, len(items) - 0.4)
    ax.set_ylim(-0.6, len(studies) - 0.4)
    ax.set_xticks(range(len(items)), [("Overall" if i == "overall" else i) for i in items])
    ax.set_yticks(range(len(studies)), list(reversed(studies)))
    ax.xaxis.tick_top()
    for side in ("left", "bottom", "top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    used = [lv for lv in LEVELS if lv in set(frame["level"])]
    ax.legend(handles=[Patch(facecolor=LEVEL_COLORS[lv], label=f"{LEVEL_SYMBOLS[lv]} {lv}".strip()) for lv in used],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    key = "; ".join(f"{i}: {t.question(i)}" for i in items)
    return _finish(fig, ax, title or rob_finding(final, tool, labels), notice, footnote=key)


def summary_plot(final: pd.DataFrame, *, tool: str | None = None, labels: dict[str, str] | None = None,
                 weights: dict[str, float] | None = None, title: str | None = None, notice: str | None = None):
    """robvis-style summary plot: per item, the share of studies (or of weight) at each level."""
    frame, tool = _prepare_rob(final, labels, tool)
    t = TOOLS[tool]
    items = [i for i in t.item_keys if i in set(frame["item"])]
    if weights:
        frame["w"] = [float(weights.get(r, 0.0)) for r in frame["record_id"]]
    else:
        frame["w"] = 1.0
    with _style():
        fig = _figure(8.5, 1.8 + 0.45 * len(items))
        ax = fig.add_subplot(1, 1, 1)
    for yi, item in enumerate(items):
        sub = frame[frame["item"] == item]
        total = sub["w"].sum()
        start = 0.0
        y = len(items) - 1 - yi
        for level in LEVELS:
            share = float(sub.loc[sub["level"] == level, "w"].sum() / total) if total else 0.0
            if share <= 0:
                continue
            ax.barh(y, share, left=start, color=LEVEL_COLORS[level], edgecolor="white", height=0.7,
                    gid=f"rob-bar:{item}|{level}")
            start += share
    ax.set_yticks(range(len(items)), [textwrap.fill(textwrap.shorten("Overall" if i == "overall" else
                                                                      f"{i}. {t.question(i)}", 90, placeholder="..."), 46)
                                      for i in reversed(items)], fontsize=8)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("Share of studies" + (" (weighted)" if weights else ""))
    used = [lv for lv in LEVELS if lv in set(frame["level"])]
    ax.legend(handles=[Patch(facecolor=LEVEL_COLORS[lv], label=lv) for lv in used], loc="upper center",
              bbox_to_anchor=(0.5, -0.18), ncol=len(used), frameon=False, fontsize=8)
    return _finish(fig, ax, title or rob_finding(final, tool, labels), notice)
