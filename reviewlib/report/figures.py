"""Figures of a review: the PRISMA 2020 flow diagram and the evidence plots.

Every function returns a :class:`matplotlib.figure.Figure` drawn on the Agg
canvas (no pyplot state, so notebooks and scripts can call them freely) and
:func:`save` writes it as PNG and SVG.  The evidence plots take the evidence
table (one row per included study; multi-valued cells are ``"; "``-joined
strings) as made by ``reviewlib.evidence.tables.study_table``, which carries
the protocol's schema: the fields that play the roles of study design,
comparator and sample size (``extraction: roles``) and the figures the review
draws over which fields (``report: figures``, drawn by :func:`evidence_figures`).
This module names no field of any review.

Titles state a finding computed from the data (the ``*_finding`` functions
return the sentence alone).  Colours follow the Okabe-Ito colour-blind-safe
palette, with a fixed colour per study design so the figures agree.  Give
``notice="Synthetic demo data"`` to print a notice on the figure.
"""
from __future__ import annotations

import io
import logging
import math
import os
import re
import textwrap
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnchoredOffsetbox, DrawingArea, HPacker, TextArea, VPacker
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Patch, Rectangle
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

from ..atomic import atomic_path
from ..errors import InputError
from ..evidence.tables import MIXED, allocate_patients, declared_entries, role_field

logger = logging.getLogger(__name__)

__all__ = [
    "DPI", "ReviewFigure", "OKABE_ITO", "NOT_REPORTED", "normalize_design", "design_rank", "design_colors",
    "prisma_flow", "publications_by_year", "evidence_map", "patients_by_value",
    "sample_size_distribution", "screening_progress", "absent_figure", "save", "evidence_figures", "evidence_figure",
    "figure_specs",
    "FIGURE_KINDS",
    "year_finding", "map_finding", "value_finding", "sample_size_finding", "progress_finding",
]

#: Resolution of saved PNG files (dots per inch).
DPI = 150
#: Size of the evidence map's cell labels ("39 studies, 469 pts"), in points.
MAP_LABEL_PT = 9
#: Axes styles as plain rcParams: seaborn 0.13's "whitegrid" and "white" styles (its colormap aside), so
#: drawing needs no seaborn import (1.5-4.5 s on a loaded 2-core machine).
_STYLE_BASE = {
    "axes.axisbelow": True, "axes.labelcolor": ".15", "grid.color": ".8", "text.color": ".15",
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "lines.solid_capstyle": "round", "patch.edgecolor": "w", "patch.force_edgecolor": True,
    "xtick.bottom": False, "xtick.color": ".15", "ytick.color": ".15", "ytick.left": False,
}
AXES_STYLES = {
    "whitegrid": {**_STYLE_BASE, "axes.edgecolor": ".8", "axes.grid": True},
    "white": {**_STYLE_BASE, "axes.edgecolor": ".15"},
}
#: Seed of the vertical jitter in the sample-size strip plot (the same figure on every run).
JITTER_SEED = 2020
#: The Okabe-Ito colour-blind-safe palette.
OKABE_ITO = {"orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73", "yellow": "#F0E442",
             "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7", "black": "#000000"}
#: The label of a missing value in every figure.
NOT_REPORTED = "not reported"
GREY = "#9E9E9E"
SEPARATOR = ";"

# Canonical designs, weakest to strongest evidence: (label, colour).  The two ends, the designs a reader
# must tell apart at a glance, are the lightest and the darkest colour (case report yellow, randomised
# trial black), not Okabe-Ito's two oranges, which look alike at bubble size.
_DESIGNS: list[tuple[str, str]] = [
    ("case report", OKABE_ITO["yellow"]),
    ("case series", OKABE_ITO["orange"]),
    ("observational", OKABE_ITO["reddish purple"]),
    ("phase 1", OKABE_ITO["sky blue"]),
    ("phase 1/2", OKABE_ITO["bluish green"]),
    ("phase 2", OKABE_ITO["blue"]),
    ("phase 3", OKABE_ITO["vermillion"]),
    ("randomised controlled trial", OKABE_ITO["black"]),
]
_RANK: dict[str, float] = {label: i for i, (label, _) in enumerate(_DESIGNS)}
_COLOR = dict(_DESIGNS)
# Not clinical designs, but a machine-extracted table may carry them: below a case report.
# Colours from Paul Tol's muted (colour-blind-safe) palette, distinct from Okabe-Ito's.
_RANK.update({"preclinical": -0.5, "review": -0.6})
_COLOR.update({"preclinical": "#882255", "review": "#999933"})
#: Colours for designs outside the known vocabulary (Paul Tol muted), then grey.
EXTRA_COLORS = ["#332288", "#44AA99", "#AA4499", "#117733", "#661100", "#DDCC77", "#88CCEE"]
_CONTROLLED_RANK = _RANK["randomised controlled trial"]


# -- values ---------------------------------------------------------------
def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    # 'none' is a value (e.g. no premedication given), not a missing one.
    return isinstance(value, str) and value.strip().lower() in ("", "nan", "na", "n/a", "nr", "not stated",
                                                                NOT_REPORTED)


def _split(value: Any) -> list[str]:
    """The values of a possibly ``"; "``-joined cell; ``[NOT_REPORTED]`` when empty."""
    if isinstance(value, (list, tuple)):
        parts = [str(v).strip() for v in value if not _is_missing(v)]
    elif _is_missing(value):
        parts = []
    else:
        parts = [p.strip() for p in str(value).split(SEPARATOR) if not _is_missing(p)]
    return list(dict.fromkeys(parts)) or [NOT_REPORTED]


def normalize_design(value: Any) -> str:
    """The canonical label of a study design ('phase I/II' -> 'phase 1/2', 'RCT' -> 'randomised controlled trial').

    Unknown designs are returned stripped and lower-cased; missing ones as ``NOT_REPORTED``.
    """
    if _is_missing(value):
        return NOT_REPORTED
    text = " ".join(str(value).lower().replace("_", " ").replace("-", " ").split())
    text = re.sub(r"\s*/\s*", "/", text)
    if "phase" in text:  # roman numerals and sub-phases: 'phase Ib/II' -> 'phase 1/2'
        for roman, digit in (("iii", "3"), ("ii", "2"), ("i", "1")):
            text = re.sub(rf"(?<=[\s/]){roman}(?=[ab]?(?:[\s/]|$))", digit, text)
        text = re.sub(r"(?<=\d)[ab](?=[\s/]|$)", "", text)
    if "random" in text or text in ("rct", "controlled trial") or "placebo" in text:
        return "randomised controlled trial"
    if "phase 3" in text:
        return "phase 3"
    if "phase 1/2" in text or "phase 1 2" in text:
        return "phase 1/2"
    if "phase 2" in text:
        return "phase 2"
    if "phase 1" in text:
        return "phase 1"
    if any(w in text for w in ("preclinical", "animal", "in vitro", "mouse", "murine")):
        return "preclinical"
    if text in ("review", "systematic review", "narrative review", "editorial", "comment", "letter"):
        return "review"
    if "case report" in text or text == "single case":
        return "case report"
    if "series" in text:
        return "case series"
    if any(w in text for w in ("cohort", "registry", "observational", "retrospective")):
        return "observational"
    return text


def design_rank(design: str) -> float:
    """Strength of a (normalized) design: higher is more advanced; unknown 1.5, not reported -1."""
    if design == NOT_REPORTED:
        return -1.0
    return float(_RANK.get(design, 1.5))


def design_colors(designs: Iterable[str]) -> dict[str, str]:
    """A colour per design: fixed Okabe-Ito colours for known designs, grey for not reported."""
    extra = iter(EXTRA_COLORS)
    out = {}
    for d in designs:
        if d in _COLOR:
            out[d] = _COLOR[d]
        elif d == NOT_REPORTED:
            out[d] = GREY
        else:
            out[d] = next(extra, GREY)
    return out


def _ordered_designs(designs: Iterable[str]) -> list[str]:
    return sorted(set(designs), key=lambda d: (design_rank(d), d))


def _study_design(value: Any) -> str:
    """One design per study: the most advanced of the cell's designs."""
    designs = [normalize_design(v) for v in _split(value)]
    return max(designs, key=design_rank)


def _number(value: Any) -> float:
    if _is_missing(value):
        return float("nan")
    if isinstance(value, str) and SEPARATOR in value:
        parts = [pd.to_numeric(p.strip(), errors="coerce") for p in value.split(SEPARATOR)]
        return float(np.nansum(parts)) if not all(pd.isna(parts)) else float("nan")
    return float(pd.to_numeric(value, errors="coerce"))


def _truthy(value: Any) -> bool:
    if _is_missing(value):
        return False
    return str(value).strip().lower() in ("1", "1.0", "true", "yes", "y")


def _prepare(table: pd.DataFrame, needed: Sequence[str], counted_only: bool = True,
             roles: Sequence[str] = ()) -> pd.DataFrame:
    """Check the evidence table and add normalized helper columns (prefixed ``_``).

    ``roles`` (``study_design``, ``sample_size``) must have their fields in the table; whichever
    of the study design, comparator and sample size roles the protocol names become ``_design``,
    ``_controlled`` and ``_n``.  With ``counted_only``, reports that ``evidence.study_table``
    marks ``counted = False`` (further reports of a cohort already counted) are dropped, so a
    cohort counts once; ``frame.attrs['uncounted']`` says how many were dropped.
    """
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"evidence plots need a pandas DataFrame, got {type(table).__name__}: "
                         "pass reviewlib.evidence.tables.study_table(...)")
    design = role_field("study_design", table, required="study_design" in roles)
    comparator = role_field("comparator", table, required=False)
    size = role_field("sample_size", table, required="sample_size" in roles)
    needed = list(needed) + [f for f, r in ((design, "study_design"), (size, "sample_size")) if r in roles]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise InputError(f"evidence table lacks column(s) {', '.join(missing)} (it has: "
                         f"{', '.join(map(str, table.columns)) or 'none'}); pass reviewlib.evidence.tables.study_table(...)")
    frame = table.reset_index(drop=True).copy()
    uncounted = 0
    if counted_only and "counted" in frame:
        keep = [not (v is False or (isinstance(v, str) and v.strip().lower() in ("false", "0", "no")) or v == 0)
                for v in frame["counted"]]
        uncounted = len(frame) - sum(keep)
        frame = frame[keep].reset_index(drop=True)
    frame.attrs["uncounted"] = uncounted
    frame["_study"] = range(len(frame))
    if design and design in frame:
        frame["_design"] = [_study_design(v) for v in frame[design]]
        controlled = [design_rank(d) == _CONTROLLED_RANK for d in frame["_design"]]
        if comparator and comparator in frame:
            controlled = [c or _truthy(v) for c, v in zip(controlled, frame[comparator])]
        frame["_controlled"] = controlled
    if size and size in frame:
        frame["_n"] = [_number(v) for v in frame[size]]
    return frame


def _uncounted_note(table: pd.DataFrame) -> str:
    """Footnote for further reports of an already counted cohort (dropped from counts), or ''."""
    n = _prepare(table, []).attrs["uncounted"]
    if not n:
        return ""
    return (f"{_plural(n, 'further report')} of an already counted cohort "
            f"{'is' if n == 1 else 'are'} not counted again.")


def _explode(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    out = frame.copy()
    out[f"_{column}"] = [_split(v) for v in out[column]]
    return out.explode(f"_{column}", ignore_index=True)


def _fmt(n: float) -> str:
    return f"{int(round(n)):,}" if not pd.isna(n) else "?"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# -- figure plumbing ------------------------------------------------------
class ReviewFigure(Figure):
    """A matplotlib Figure that Jupyter shows as a PNG image whatever the backend.

    The figures are made without pyplot (no global state, nothing to close), so
    IPython's pyplot-inline formatter does not know them; ``_repr_png_`` lets
    ``display(fig)`` (and papermill's saved outputs) carry the image anyway.
    """

    #: Resolution of the image shown in notebooks (the saved PNG uses :data:`DPI`).
    repr_dpi = 100

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=self.repr_dpi, facecolor="white")
        return buffer.getvalue()


def _figure(width: float, height: float) -> Figure:
    fig = ReviewFigure(figsize=(width, height), dpi=100, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _axes(fig: Figure, grid: str = "whitegrid"):
    with matplotlib.rc_context(AXES_STYLES[grid]):
        return fig.add_subplot(1, 1, 1)


def _wrap(text: str, width_in: float, fontsize: float) -> str:
    chars = max(20, int(width_in * 72 / (0.56 * fontsize)))
    return "\n".join(textwrap.fill(p, chars) for p in str(text).split("\n"))


def _finish(fig: Figure, ax, title: str, notice: str | None, footnote: str | None = None) -> Figure:
    """Title (the finding) above everything, footnote and notice below; constrained layout, no overlaps."""
    width, height = fig.get_size_inches()
    title = title[:1].upper() + title[1:]
    fig.suptitle(_wrap(title, width - 0.3, 12 * 1.12), x=0.012, ha="left", fontsize=12, fontweight="bold")
    bottom_lines = []
    if footnote:
        bottom_lines.append(("foot", _wrap(footnote, width - 0.3, 8)))
    if notice:
        bottom_lines.append(("notice", _wrap(notice, width - 0.3, 9 * 1.15)))
    y_in = 0.08
    for kind, text in reversed(bottom_lines):
        style = dict(fontsize=9, color="#B00020", fontweight="bold") if kind == "notice" \
            else dict(fontsize=8, color="#444444")
        fig.text(0.012, y_in / height, text, ha="left", va="bottom", gid=f"reviewlib-{kind}", **style)
        y_in += 0.16 * (text.count("\n") + 1) + 0.05
    bottom = (y_in + 0.05) / height if bottom_lines else 0.0
    fig.set_layout_engine("constrained", rect=(0, min(0.4, bottom), 1, 1 - min(0.4, bottom)), h_pad=0.06, w_pad=0.06)
    return fig


def _empty(title: str, notice: str | None) -> Figure:
    fig = _figure(8, 3)
    ax = _axes(fig, "white")
    ax.axis("off")
    ax.text(0.5, 0.5, "No included studies to plot yet", ha="center", va="center", fontsize=12, color=GREY,
            transform=ax.transAxes)
    return _finish(fig, ax, title, notice)


def save(fig: Figure, folder: str | os.PathLike, name: str) -> dict[str, Path]:
    """Write ``fig`` as ``<folder>/<name>.png`` (150 dpi) and ``<folder>/<name>.svg``, atomically.

    Each file is written to a temporary file in ``folder`` and renamed into
    place, so a reader never sees half a figure.  The SVG carries no date and
    fixed ids, so reruns on the same data give the same bytes.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        A figure from this module.
    folder : path-like
        Destination (created if missing), usually next to the report's HTML.
    name : str
        File stem, e.g. ``'prisma'`` (no folder separators).

    Returns
    -------
    dict
        ``{'png': Path, 'svg': Path}``.

    Raises
    ------
    InputError
        If ``name`` is empty or contains a path separator, or ``fig`` is no Figure.
    """
    if not isinstance(fig, Figure):
        raise InputError(f"plots.save needs a matplotlib Figure, got {type(fig).__name__}")
    if not name or any(sep in name for sep in ("/", "\\", os.sep)) or name.startswith("."):
        raise InputError(f"figure name {name!r} must be a plain file stem like 'prisma' (no folders, "
                         "not starting with '.')")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    with matplotlib.rc_context({"svg.hashsalt": f"reviewlib-{name}", "svg.fonttype": "path"}):
        for fmt in ("png", "svg"):
            final = folder / f"{name}.{fmt}"
            with atomic_path(final, suffix=f".{fmt}.part") as tmp, open(tmp, "wb") as handle:
                metadata = {"Date": None} if fmt == "svg" else {"Software": None}
                fig.savefig(handle, format=fmt, dpi=DPI, facecolor="white", metadata=metadata)
            out[fmt] = final
    logger.info("figure %s written to %s (png, svg)", name, folder)
    return out


# -- PRISMA flow diagram --------------------------------------------------
def _reason_label(key: str, labels: Mapping[str, str] | None) -> str:
    if labels and key in labels:
        return str(labels[key])
    return key.replace("-", " ").replace("_", " ").capitalize()


def prisma_flow(counts, *, reason_labels: Mapping[str, str] | None = None, notice: str | None = None,
                show_notes: bool = True) -> Figure:
    """The PRISMA 2020 flow diagram, drawn from :func:`reviewlib.report.prisma.counts`.

    Parameters
    ----------
    counts : reviewlib.report.prisma.PrismaCounts
        The checked counts (every number on the diagram comes from them).
    reason_labels : mapping, optional
        Exclusion-reason key -> label (the protocol's ``eligibility.exclusion_reasons``);
        keys are humanised otherwise.
    notice : str, optional
        A notice drawn at the foot (e.g. "Synthetic demo data").
    show_notes : bool
        Print ``counts.notes`` (how counts were made) under the diagram.

    Returns
    -------
    matplotlib.figure.Figure
    """
    c = counts
    n = lambda v: f"(n\xa0=\xa0{int(v):,})"  # noqa: E731  (no-break spaces: never wrapped apart)
    width = 10.0
    main_x, main_w = 0.95, 4.15
    side_x, side_w = 5.55, 4.3
    font = 9.5
    line_h = font * 1.38 / 72
    pad = 0.16

    def wrap_lines(lines: list[str], box_w: float) -> list[str]:
        chars = int((box_w - 2 * pad) * 72 / (0.53 * font))
        out = []
        for line in lines:
            indent = line[:len(line) - len(line.lstrip(" "))]
            out.extend(textwrap.wrap(line.strip(), chars - len(indent), initial_indent=indent,
                                     subsequent_indent=indent + "  ", break_on_hyphens=False) or [""])
        return [line.replace("\xa0", " ") for line in out]

    def reasons(title: str, total: int, mapping: Mapping[str, int]) -> list[str]:
        lines = [f"{title} {n(total)}" + (":" if mapping else "")]
        lines += [f"   {_reason_label(k, reason_labels)} {n(v)}" for k, v in mapping.items()]
        return lines

    registers = list(getattr(c, "registers", []) or [])
    sources = [f"   {label} {n(v)}" for label, v in c.identified.items() if label not in registers]
    if registers:        # PRISMA 2020: "Records identified from: Databases (n) / Registers (n)"
        dbs = [k for k in c.identified if k not in registers]
        sources = [f"   Databases {n(c.identified_databases)}: {', '.join(dbs)}" if dbs else "   Databases (n\xa0=\xa00)",
                   f"   Registers {n(c.identified_registers)}: {', '.join(registers)}"]
    sources = sources or ["   (no searches yet)"]
    rows: list[tuple[str, list[str], list[str] | None]] = []
    ident = ["Records identified from:"] + sources
    if len(c.identified) > 1:
        ident.append(f"Total {n(c.identified_total)}")
    removed = ["Records removed before screening:", f"   Duplicate records removed {n(c.duplicates_removed)}"]
    if c.duplicates_removed:
        removed.append(f"   ({c.duplicates_merged_by_store} found by several sources, "
                       f"{c.duplicates_removed_by_dedup} by deduplication)")
    rows.append(("Identification", ident, removed))
    screened = ["Records screened (title and abstract)", n(c.screened)]
    if c.awaiting_screening:
        screened.append(f"{c.awaiting_screening:,} awaiting a decision")
    rows.append(("Screening", screened, reasons("Records excluded", c.excluded_screening,
                                                c.excluded_screening_reasons)))
    rows.append(("Screening", ["Reports sought for retrieval", n(c.sought)],
                 [f"Reports not retrieved or not yet assessed {n(c.not_assessed)}"]))
    assessed = ["Reports assessed for eligibility (full text)", n(c.assessed)]
    if c.awaiting_full_text:
        assessed.append(f"{c.awaiting_full_text:,} awaiting a decision")
    ft_excluded = reasons("Reports excluded", c.excluded_full_text, c.excluded_full_text_reasons)
    if not c.full_text_stage:
        ft_excluded.append("(no full-text screening recorded)")
    rows.append(("Screening", assessed, ft_excluded))
    included = ["Studies included in review", n(c.included), f"Reports of included studies {n(c.included)}"]
    if registers:
        regs = int(getattr(c, "included_registrations", 0))
        included.append(f"({c.included - regs:,} published reports, {regs:,} registrations)")
    rows.append(("Included", included, None))

    laid = []
    for phase, main, side in rows:
        main_l = wrap_lines(main, main_w)
        side_l = wrap_lines(side, side_w) if side else None
        h_main = len(main_l) * line_h + 2 * pad
        h_side = len(side_l) * line_h + 2 * pad if side_l else 0
        laid.append((phase, main_l, side_l, h_main, h_side, max(h_main, h_side)))
    for phase in dict.fromkeys(r[0] for r in laid):  # a phase's band must fit its rotated label
        mine = [i for i, r in enumerate(laid) if r[0] == phase]
        need = len(phase) * 10 * 0.66 / 72 + 0.25
        have = sum(laid[i][5] for i in mine) + 0.42 * (len(mine) - 1)
        if have < need:
            i = mine[-1]
            laid[i] = laid[i][:5] + (laid[i][5] + need - have,)
    gap = 0.42
    title_h = 0.75
    notes = list(c.notes) if show_notes else []
    foot_lines = []
    if notes:
        foot_lines = textwrap.wrap("Notes: " + "; ".join(notes) + ".", int((width - 0.4) * 72 / (0.53 * 7.5)))
    notice_lines = textwrap.wrap(notice, int((width - 0.4) * 72 / (0.64 * 9))) if notice else []
    foot_h = 0.15 + len(foot_lines) * 7.5 * 1.35 / 72 + len(notice_lines) * 9 * 1.4 / 72 + (0.1 if notice else 0)
    height = title_h + sum(r[5] for r in laid) + gap * (len(laid) - 1) + 0.3 + foot_h

    fig = _figure(width, height)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    share = (f"{c.included:,} of {c.identified_total:,} records identified "
             f"({100 * c.included / c.identified_total:.1f}%)" if c.identified_total else "no records yet")
    title = f"PRISMA 2020 flow diagram: {c.included:,} {'study' if c.included == 1 else 'studies'} included, {share}"
    # As the figure's suptitle, so the title is also the image's alt text in the report.
    fig.suptitle(_wrap(title, width - 0.4, 12 * 1.12), x=0.2 / width, y=1 - 0.25 / height, ha="left", va="top",
                 fontsize=12, fontweight="bold")

    y = height - title_h
    centres = []
    phase_spans: dict[str, list[float]] = {}
    for phase, main_l, side_l, h_main, h_side, h_row in laid:
        centre = y - h_row / 2
        box = FancyBboxPatch((main_x, centre - h_main / 2), main_w, h_main,
                             boxstyle="round,pad=0,rounding_size=0.06", facecolor="white", edgecolor="black",
                             linewidth=1.1)
        ax.add_patch(box)
        ax.text(main_x + main_w / 2, centre, "\n".join(main_l), ha="center", va="center", fontsize=font,
                linespacing=1.25)
        if side_l:
            sbox = FancyBboxPatch((side_x, centre - h_side / 2), side_w, h_side,
                                  boxstyle="round,pad=0,rounding_size=0.06", facecolor="#F2F2F2",
                                  edgecolor="#555555", linewidth=1.0)
            ax.add_patch(sbox)
            ax.text(side_x + pad, centre, "\n".join(side_l), ha="left", va="center", fontsize=font,
                    linespacing=1.25)
            ax.add_patch(FancyArrowPatch((main_x + main_w, centre), (side_x, centre), arrowstyle="-|>",
                                         mutation_scale=14, color="black", linewidth=1.1))
        centres.append((centre, h_main))
        span = phase_spans.setdefault(phase, [y, y - h_row])
        span[1] = y - h_row
        y -= h_row + gap
    for (c1, h1), (c2, h2) in zip(centres, centres[1:]):
        ax.add_patch(FancyArrowPatch((main_x + main_w / 2, c1 - h1 / 2), (main_x + main_w / 2, c2 + h2 / 2),
                                     arrowstyle="-|>", mutation_scale=14, color="black", linewidth=1.1))
    for phase, (top, bottom) in phase_spans.items():
        ax.add_patch(FancyBboxPatch((0.2, bottom), 0.5, top - bottom, boxstyle="round,pad=0,rounding_size=0.08",
                                    facecolor="#CFE2F3", edgecolor="#6A9CC9", linewidth=1.0))
        ax.text(0.45, (top + bottom) / 2, phase, rotation=90, ha="center", va="center", fontsize=10,
                fontweight="bold", color="#1F3B57")
    yb = 0.12
    if notice_lines:
        ax.text(0.2, yb, "\n".join(notice_lines), ha="left", va="bottom", fontsize=9, color="#B00020",
                fontweight="bold", gid="reviewlib-notice")
        yb += len(notice_lines) * 9 * 1.4 / 72 + 0.1
    if foot_lines:
        ax.text(0.2, yb, "\n".join(foot_lines), ha="left", va="bottom", fontsize=7.5, color="#444444",
                gid="reviewlib-foot")
    return fig


# -- publications per year ------------------------------------------------
def year_finding(table: pd.DataFrame) -> str:
    """The sentence :func:`publications_by_year` uses as its title."""
    frame = _prepare(table, ["year"], counted_only=False, roles=("study_design",))
    years = pd.to_numeric(frame["year"], errors="coerce")
    frame = frame[years.notna()].assign(_year=years[years.notna()].astype(int))
    if frame.empty:
        return "No included study has a publication year"
    per_year = frame.groupby("_year").size()
    peak_year = int(per_year.idxmax())
    n = len(frame)
    weak = int(frame["_design"].isin(["case report", "case series"]).sum())
    controlled = int(frame["_controlled"].sum())
    span = f"{per_year.index.min()}–{per_year.index.max()}" if len(per_year) > 1 else f"{per_year.index.min()}"
    text = (f"{_plural(n, 'study', 'studies')} published {span}, most in {peak_year} (n = {int(per_year.max())}); "
            f"{weak} of {n} are case reports or case series")
    return text + (f", {_plural(controlled, 'controlled trial')}" if controlled else ", none controlled")


def publications_by_year(table: pd.DataFrame, *, notice: str | None = None) -> Figure:
    """Publications per year, stacked by study design.

    Parameters
    ----------
    table : pandas.DataFrame
        The evidence table (``year`` and the ``study_design`` role's field).
    notice : str, optional
        A notice drawn at the foot (e.g. "Synthetic demo data").

    Returns
    -------
    matplotlib.figure.Figure
        Bars per calendar year (years without studies show as gaps), totals on top.
    """
    frame = _prepare(table, ["year"], counted_only=False, roles=("study_design",))
    years = pd.to_numeric(frame["year"], errors="coerce")
    undated = int(years.isna().sum())
    frame = frame[years.notna()].assign(_year=years[years.notna()].astype(int))
    if frame.empty:
        return _empty("Publications per year: no dated studies", notice)
    designs = _ordered_designs(frame["_design"])
    colors = design_colors(designs)
    counts = (frame.groupby(["_year", "_design"]).size().unstack(fill_value=0)
              .reindex(index=range(frame["_year"].min(), frame["_year"].max() + 1), fill_value=0)
              .reindex(columns=designs, fill_value=0))
    fig = _figure(max(7.5, 0.55 * len(counts) + 4), 5)
    ax = _axes(fig)
    bottom = np.zeros(len(counts))
    for design in designs:
        ax.bar(counts.index, counts[design], bottom=bottom, color=colors[design], edgecolor="#333333",
               linewidth=0.6, label=design, width=0.75)
        bottom += counts[design].to_numpy()
    for x, total in zip(counts.index, bottom):
        if total:
            ax.annotate(f"{int(total)}", (x, total), xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize=9, gid="reviewlib-bar-total")
    ax.set_ylim(0, bottom.max() * 1.12 + 0.3)
    ax.set_xticks(list(counts.index))
    ax.tick_params(axis="x", rotation=45 if len(counts) > 12 else 0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Publication year")
    ax.set_ylabel("Included studies (n)")
    ax.grid(axis="x", visible=False)
    ax.legend(title="Study design", loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=9)
    foot = f"{_plural(undated, 'study', 'studies')} without a publication year not shown." if undated else None
    return _finish(fig, ax, year_finding(table), notice, foot)


# -- evidence map ---------------------------------------------------------
def _label(table: pd.DataFrame, field: str, given: str | None = None) -> str:
    """How a field is named on a figure: ``given``, else the protocol's label, else the field name."""
    if given:
        return str(given)
    from ..evidence.tables import _schema
    schema = _schema(None, table)
    spec = schema.fields.get(field) if schema is not None else None
    return str(getattr(spec, "label", None) or field.replace("_", " ").capitalize())


def _plural_label(label: str) -> str:
    word = label.lower()
    return word if word.endswith("s") else word + "s"


def _cells(table: pd.DataFrame, rows: str, columns: str) -> pd.DataFrame:
    """One row per occupied ``rows`` x ``columns`` cell: studies (a study of several row values counts
    in each), patients (each counted once: split by the study's breakdown of ``rows``, the rest in the
    row :data:`reviewlib.evidence.tables.MIXED`), unknown (studies without n), unsplit (studies whose
    patients for that row sit in the MIXED row), controlled, design."""
    frame = _prepare(table, [rows, columns], roles=("study_design", "sample_size"))
    members: dict[tuple[str, str], set[int]] = {}
    patients: dict[tuple[str, str], float] = {}
    unknown: dict[tuple[str, str], set[int]] = {}
    unsplit: dict[tuple[str, str], set[int]] = {}
    alloc = allocate_patients(frame, rows) if len(frame) else pd.DataFrame(columns=["row", "value", "patients", "split"])
    by_row: dict[int, list] = {}
    for r in alloc.itertuples():
        by_row.setdefault(r.row, []).append(r)
    for i, row in frame.iterrows():
        values, cols = list(dict.fromkeys(_split(row[rows]))), list(dict.fromkeys(_split(row[columns])))
        tcol = cols[0] if len(cols) == 1 else MIXED
        has_mixed = any(r.value == MIXED for r in by_row.get(i, []))
        for d in values:
            for c in cols:
                members.setdefault((d, c), set()).add(i)
                if pd.isna(row["_n"]):
                    unknown.setdefault((d, c), set()).add(i)
                if has_mixed and len(values) > 1:
                    unsplit.setdefault((d, c), set()).add(i)
        for r in by_row.get(i, []):
            key = (r.value, tcol)
            members.setdefault(key, set()).add(i)
            patients[key] = patients.get(key, 0.0) + float(r.patients)
    out = []
    for (d, c), idx in members.items():
        designs = [frame.at[i, "_design"] for i in idx]
        out.append({"row": d, "column": c, "studies": len(idx), "patients": patients.get((d, c), 0.0),
                    "unknown": len(unknown.get((d, c), ())), "unsplit": len(unsplit.get((d, c), ())),
                    "n_controlled": int(sum(bool(frame.at[i, "_controlled"]) for i in idx)),
                    "rank": max(design_rank(x) for x in designs), "top_design": max(designs, key=design_rank)})
    cols = ["row", "column", "studies", "patients", "unknown", "unsplit", "n_controlled", "rank", "top_design"]
    return pd.DataFrame(out, columns=cols).sort_values(["row", "column"]).reset_index(drop=True)


def map_finding(table: pd.DataFrame, rows: str, columns: str, row_values: Sequence[str] = (),
                column_values: Sequence[str] = (), *, item: str = "{column}", cells_name: str | None = None) -> str:
    """The sentence :func:`evidence_map` uses as its title.

    ``item`` phrases the top cell's column value (e.g. ``"{column}-targeted cells"``); ``cells_name``
    names the grid's cells (default "<rows>–<columns>").
    """
    cells = _cells(table, rows, columns)
    cells = cells[(cells["row"] != MIXED) & (cells["column"] != MIXED)]
    if cells.empty:
        return "No included studies to map"
    top = cells.sort_values(["studies", "patients"], ascending=False).iloc[0]
    frame = _prepare(table, [rows], roles=("study_design",))
    ctrl = _explode(frame[frame["_controlled"]], rows) if frame["_controlled"].any() else None
    ctrl_values = sorted(set(ctrl[f"_{rows}"])) if ctrl is not None else []
    if not ctrl_values:
        clause = "no controlled trial"
    elif len(ctrl_values) == 1:
        clause = f"no controlled trial outside {ctrl_values[0]}"
    else:
        clause = f"controlled trials only in {_join(ctrl_values)}"
    n_d = len(set(cells["row"]) | set(row_values))
    n_t = len(set(cells["column"]) | set(column_values))
    empty = n_d * n_t - len(cells)
    what = item.format(column=top["column"]) if top["column"] != NOT_REPORTED else \
        f"{_label(table, columns).lower()} not reported"
    name = cells_name or f"{rows.replace('_', ' ')}–{columns.replace('_', ' ')}"
    return (f"Most evidence: {what} in {top['row']} "
            f"({_plural(int(top['studies']), 'study', 'studies')}, {_plural(int(top['patients']), 'patient')}); "
            f"{clause}; {empty} of {n_d * n_t} {name} cells empty")


def evidence_map(table: pd.DataFrame, rows: str, columns: str, *, row_values: Sequence[str] = (),
                 column_values: Sequence[str] = (), row_label: str | None = None, column_label: str | None = None,
                 item: str = "{column}", cells_name: str | None = None, notice: str | None = None) -> Figure:
    """Evidence map: ``rows`` x ``columns``, bubble area = patients, colour = most advanced design.

    Each occupied cell is annotated with its studies and patients; empty cells
    are hatched and marked "no studies" so the gaps show.  A study listing
    several values counts in each of its cells.

    Parameters
    ----------
    table : pandas.DataFrame
        The evidence table (``rows``, ``columns`` and the study design and sample size roles' fields).
    rows, columns : str
        The fields on the two axes (the protocol's ``report: figures`` entry names them).
    row_values, column_values : sequence of str, optional
        Categories to show even without studies (e.g. the protocol's vocabulary).
    row_label, column_label : str, optional
        Axis titles (default: the fields' labels in the protocol).
    item, cells_name : str, optional
        Phrasing of the title (see :func:`map_finding`).
    notice : str, optional
        A notice drawn at the foot.

    Returns
    -------
    matplotlib.figure.Figure
    """
    cells = _cells(table, rows, columns)
    if cells.empty:
        return _empty("Evidence map: no included studies yet", notice)
    by_d = cells.groupby("row")["patients"].sum()
    by_t = cells.groupby("column")["patients"].sum()
    row_order = sorted(set(cells["row"]) | set(row_values),
                       key=lambda d: (d == MIXED, d == NOT_REPORTED, -by_d.get(d, 0), d))
    col_order = sorted(set(cells["column"]) | set(column_values),
                       key=lambda t: (t == MIXED, t == NOT_REPORTED, -by_t.get(t, 0), t))
    ri = {d: i for i, d in enumerate(row_order)}
    ci = {t: i for i, t in enumerate(col_order)}
    cell_w, cell_h = 1.45, 0.72  # room for 9 pt cell labels, readable when the map is shown at page width
    grid_w = cell_w * len(col_order)
    fig = _figure(min(18, 2.4 + grid_w + 2.4), min(20, 2.0 + cell_h * max(len(row_order), 4)))
    with matplotlib.rc_context(AXES_STYLES["white"]):
        ax, key = fig.subplots(1, 2, width_ratios=[grid_w + 0.6, 2.3])
    key.axis("off")
    occupied = {(r.row, r.column) for r in cells.itertuples()}
    for d in row_order:
        for t in col_order:
            x, y = ci[t], ri[d]
            if (d, t) in occupied:
                ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor="white", edgecolor="#BBBBBB",
                                       linewidth=0.8, zorder=0))
            else:
                ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor="#F4F4F4", edgecolor="#BBBBBB",
                                       hatch="////", linewidth=0.8, zorder=0))
                ax.text(x, y, "no studies", ha="center", va="center", fontsize=8.5, color="#8A8A8A",
                        style="italic", gid="reviewlib-empty-cell")
    max_p = max(1.0, float(cells["patients"].max()))
    max_area = (min(cell_w, cell_h) * 72 * 0.62) ** 2 * 0.55
    sizes = [max(28.0, max_area * p / max_p) if p > 0 else 28.0 for p in cells["patients"]]
    colors = design_colors(_ordered_designs(cells["top_design"]))
    ax.scatter([ci[t] for t in cells["column"]], [ri[d] - 0.1 for d in cells["row"]], s=sizes,
               c=[colors[d] for d in cells["top_design"]], edgecolors="#222222", linewidths=0.8, zorder=3,
               alpha=0.95)
    for r in cells.itertuples():
        if r.unknown and not r.patients and not r.unsplit:
            pts = "patients n.r."
        else:
            more = ('+' if r.unknown else '') + ('*' if r.unsplit else '')
            pts = f"{_fmt(r.patients)}{more} {'pt' if r.patients == 1 and not more else 'pts'}"
        ax.text(ci[r.column], ri[r.row] + 0.34, f"{_plural(int(r.studies), 'study', 'studies')}, {pts}",
                ha="center", va="center", fontsize=MAP_LABEL_PT, zorder=4, gid="reviewlib-cell-label")
    ax.set_xlim(-0.5, len(col_order) - 0.5)
    ax.set_ylim(len(row_order) - 0.5, -0.5)
    ax.set_xticks(range(len(col_order)))
    ax.set_xticklabels([textwrap.fill(t, 14) for t in col_order], fontsize=10.5)
    ax.set_yticks(range(len(row_order)))
    ax.set_yticklabels([textwrap.fill(d, 28) for d in row_order], fontsize=10.5)
    ax.xaxis.tick_top()
    ax.set_xlabel(_label(table, columns, column_label))
    ax.xaxis.set_label_position("top")
    ax.set_ylabel(_label(table, rows, row_label))
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    # The key panel: design colours on top, reference bubbles (drawn in points, true to scale) below.
    handles = [Patch(facecolor=colors[d], edgecolor="#222222", label=textwrap.fill(d, 18)) for d in colors]
    key.legend(handles=handles, title="Most advanced design", loc="upper left", bbox_to_anchor=(0, 1),
               frameon=False, fontsize=8.5, title_fontsize=9, alignment="left")
    refs = sorted({int(v) for v in np.round(np.quantile(cells["patients"], [0.25, 1.0])) if v > 0})
    if refs:
        diam = {v: math.sqrt(max(28.0, max_area * v / max_p)) for v in refs}  # scatter s = diameter**2
        widest = max(diam.values())
        key_rows = [TextArea("Bubble area = patients", textprops=dict(fontsize=9))]
        for v in refs:
            area = DrawingArea(widest, diam[v] + 2)
            area.add_artist(Circle((widest / 2, diam[v] / 2 + 1), diam[v] / 2, facecolor="white",
                                   edgecolor="#222222", linewidth=0.8))
            key_rows.append(HPacker(children=[area, TextArea(f"{v} patients", textprops=dict(fontsize=8.5))],
                                align="center", pad=0, sep=6))
        key.add_artist(AnchoredOffsetbox(loc="lower left", child=VPacker(children=key_rows, align="left", pad=0, sep=5),
                                         bbox_to_anchor=(0, 0), bbox_transform=key.transAxes, frameon=False,
                                         borderpad=0.4))
    mixed = cells[cells["row"] == MIXED]
    n_mixed = len(set().union(*[set()] + [set(_mixed_studies(table, rows))]))
    several = _plural_label(_label(table, rows, row_label))
    foot = " ".join(filter(None, [
        f"A study of several {several} counts as a study in each of its cells; its patients count once, "
        f"split by the per-{_label(table, rows, row_label).lower()} numbers it reports.",
        f"'*': patients of {_plural(n_mixed, 'study', 'studies')} that do not report the split "
        f"({_fmt(mixed['patients'].sum())} in all) are in the row '{MIXED}', not in the "
        f"{_label(table, rows, row_label).lower()} cells."
        if n_mixed else "",
        "n.r.: not reported; '+': some studies in the cell did not report patient numbers."
        if cells["unknown"].any() else "",
        _uncounted_note(table)]))
    return _finish(fig, ax, map_finding(table, rows, columns, row_values, column_values, item=item,
                                        cells_name=cells_name), notice, foot)


def _mixed_studies(table: pd.DataFrame, rows: str) -> list[int]:
    """Rows (of the prepared, counted table) whose patients are at least partly in the MIXED row."""
    frame = _prepare(table, [rows], roles=("sample_size",))
    if frame.empty:
        return []
    alloc = allocate_patients(frame, rows)
    return sorted(set(alloc.loc[alloc["split"] == "unsplit", "row"]))


# -- patients by the values of one field ----------------------------------
def _per_value(table: pd.DataFrame, field: str) -> pd.DataFrame:
    """Studies and patients per value of ``field``; a study listing several values counts as a study of
    each, its patients once, in a MIXED bar."""
    prepared = _prepare(table, [field], roles=("sample_size",))
    frame = _explode(prepared, field)
    per = frame.groupby(f"_{field}").agg(studies=("_study", "nunique"))
    alloc = allocate_patients(prepared, field, breakdown=None) if len(prepared) else \
        pd.DataFrame(columns=["row", "value", "patients", "split"])
    by_value = alloc.groupby("value")["patients"].sum() if len(alloc) else pd.Series(dtype=float)
    per["patients"] = [float(by_value.get(v, 0.0)) for v in per.index]
    if MIXED in set(alloc["value"]):
        per.loc[MIXED] = [int(alloc.loc[alloc["value"] == MIXED, "row"].nunique()), float(by_value[MIXED])]
    if NOT_REPORTED not in per.index:
        per.loc[NOT_REPORTED] = [0, 0.0]
    per = per[["patients", "studies"]]
    order = sorted(per.index, key=lambda r: (r == NOT_REPORTED, r == MIXED, -per.loc[r, "patients"], r))
    return per.loc[order]


def value_finding(table: pd.DataFrame, field: str, label: str | None = None, noun: str | None = None) -> str:
    """The sentence :func:`patients_by_value` uses as its title.

    ``label`` names the field in the sentence (default its protocol label, lower case); ``noun`` one
    value of it ("regimen"; default ``label``).
    """
    label = (label or _label(table, field)).lower()
    noun = noun or label
    frame = _prepare(table, [field], roles=("sample_size",))
    per = _per_value(table, field)
    total = float(np.nansum(frame["_n"]))
    reported = per.drop(index=[NOT_REPORTED] + ([MIXED] if MIXED in per.index else []))
    nr = per.loc[NOT_REPORTED]
    if reported.empty or total == 0:
        return f"No study reports its {label} ({_plural(int(nr['studies']), 'study', 'studies')})"
    top = reported["patients"].idxmax()
    share = 100 * reported.loc[top, "patients"] / total
    text = f"{top} given to {share:.0f}% of patients ({_fmt(reported.loc[top, 'patients'])} of {_fmt(total)})"
    if nr["studies"]:
        return text + (f"; {noun} not reported for {_plural(int(nr['patients']), 'patient')} "
                       f"in {_plural(int(nr['studies']), 'study', 'studies')}")
    return text + f"; every study reports its {noun}"


def patients_by_value(table: pd.DataFrame, field: str, *, label: str | None = None, noun: str | None = None,
                      notice: str | None = None) -> Figure:
    """Patients per value of ``field``, with "not reported" as its own bar.

    Parameters
    ----------
    table : pandas.DataFrame
        The evidence table (``field`` and the sample size role's field).
    field : str
        The field whose values are the bars (e.g. a regimen; the protocol's ``report: figures`` names it).
    label, noun : str, optional
        The field's name on the figure (default its protocol label) and the word for one value.
    notice : str, optional
        A notice drawn at the foot.

    Returns
    -------
    matplotlib.figure.Figure
        Horizontal bars (patients), each labelled with patients and studies.
    """
    name = label or _label(table, field)
    noun = noun or name.lower()
    frame = _prepare(table, [field], roles=("sample_size",))
    if frame.empty:
        return _empty(f"Patients by {name.lower()}: no included studies yet", notice)
    per = _per_value(table, field)
    fig = _figure(9, max(3.2, 1.6 + 0.55 * len(per)))
    ax = _axes(fig)
    ypos = np.arange(len(per))
    colors = [GREY if r in (NOT_REPORTED, MIXED) else OKABE_ITO["blue"] for r in per.index]
    ax.barh(ypos, per["patients"], color=colors, edgecolor="#333333", linewidth=0.6, height=0.65,
            hatch=None)
    top = max(1.0, float(per["patients"].max()))
    for y, (value, row) in zip(ypos, per.iterrows()):
        ax.text(row["patients"] + 0.015 * top, y,
                f"{_plural(int(row['patients']), 'patient')} · {_plural(int(row['studies']), 'study', 'studies')}",
                va="center", ha="left", fontsize=9)
    ax.set_yticks(ypos)
    ax.set_yticklabels([textwrap.fill(str(r), 30) for r in per.index], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Patients treated (n)")
    ax.set_ylabel(name[:1].upper() + name[1:])
    ax.grid(axis="y", visible=False)
    multi = int(sum(len(_split(v)) > 1 for v in frame[field]))
    missing_n = int(frame["_n"].isna().sum())
    foot = []
    if multi:
        foot.append(f"{_plural(multi, 'study', 'studies')} reporting several {_plural_label(noun)} count as a study "
                    f"of each; their patients count once, in the bar '{MIXED}'.")
    if missing_n:
        foot.append(f"{_plural(missing_n, 'study', 'studies')} without a patient count add 0 patients.")
    foot.append(_uncounted_note(table))
    return _finish(fig, ax, value_finding(table, field, name, noun), notice, " ".join(f for f in foot if f) or None)


# -- sample sizes ---------------------------------------------------------
def sample_size_finding(table: pd.DataFrame, large: int = 20) -> str:
    """The sentence :func:`sample_size_distribution` uses as its title."""
    frame = _prepare(table, [], roles=("study_design", "sample_size"))
    sizes = frame["_n"].dropna()
    if sizes.empty:
        return "No included study reports its number of patients"
    k = int((sizes >= large).sum())
    return (f"Median {sizes.median():g} patients per study (range {_fmt(sizes.min())}–{_fmt(sizes.max())}); "
            f"{'only ' if k < len(sizes) / 2 else ''}{k} of {len(sizes)} studies enrolled {large} or more")


def sample_size_distribution(table: pd.DataFrame, *, large: int = 20, notice: str | None = None) -> Figure:
    """Patients per study by design (one dot per study), medians marked.

    Parameters
    ----------
    table : pandas.DataFrame
        The evidence table (the study design and sample size roles' fields).
    large : int
        The study size the title counts ("k of n studies enrolled 20 or more").
    notice : str, optional
        A notice drawn at the foot.

    Returns
    -------
    matplotlib.figure.Figure
        A strip plot on a log axis; a black bar marks each design's median, a
        dashed line the overall median.
    """
    frame = _prepare(table, [], roles=("study_design", "sample_size"))
    known = frame[frame["_n"].notna() & (frame["_n"] > 0)]
    if known.empty:
        return _empty("Sample sizes: no included study reports its number of patients", notice)
    designs = _ordered_designs(known["_design"])[::-1]  # strongest on top
    colors = design_colors(designs)
    fig = _figure(9, max(3.4, 1.8 + 0.6 * len(designs)))
    ax = _axes(fig)
    ax.set_xscale("log")
    jitter = np.random.default_rng(JITTER_SEED)
    for i, d in enumerate(designs):  # one row of dots per design, jittered up and down
        n = known.loc[known["_design"] == d, "_n"].to_numpy(dtype=float)
        offsets = jitter.uniform(-0.22, 0.22, size=len(n)) if len(n) > 1 else np.zeros(len(n))
        ax.scatter(n, i + offsets, s=6.5 ** 2, color=colors[d], edgecolor="#222222", linewidth=0.6, zorder=3,
                   gid=f"reviewlib-studies-{i}")
    ax.set_ylim(len(designs) - 0.5, -0.5)  # first design on top
    medians = known.groupby("_design")["_n"].median()
    counts = known.groupby("_design").size()
    for i, d in enumerate(designs):
        ax.plot([medians[d]] * 2, [i - 0.36, i + 0.36], color="black", linewidth=2.6, zorder=5,
                solid_capstyle="butt")
        ax.annotate(f"median {medians[d]:g} (n = {counts[d]})", (medians[d], i - 0.36), xytext=(4, 1),
                    textcoords="offset points", fontsize=8, va="bottom", ha="left", zorder=6)
    overall = known["_n"].median()
    ax.axvline(overall, color="#555555", linestyle="--", linewidth=1.1, zorder=1)
    ax.text(overall, 1.0, f" all studies: median {overall:g}", transform=ax.get_xaxis_transform(),
            fontsize=8, color="#333333", ha="left", va="bottom")
    lo, hi = known["_n"].min(), known["_n"].max()
    ax.set_xlim(max(0.7, lo / 1.6), hi * 1.8)
    ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if lo / 1.6 <= t <= hi * 1.8]
    ax.xaxis.set_major_locator(FixedLocator(ticks or [lo, hi]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("Patients per study (n, log scale)")
    ax.set_ylabel("Study design")
    ax.set_yticks(range(len(designs)))
    ax.set_yticklabels(designs, fontsize=9)
    ax.grid(axis="y", visible=False)
    dropped = len(frame) - len(known)
    foot = f"{_plural(dropped, 'study', 'studies')} without a patient count not shown. " if dropped else ""
    foot += _uncounted_note(table)
    return _finish(fig, ax, sample_size_finding(table, large), notice, foot.strip() or None)


# -- screening progress ---------------------------------------------------
def _curve(recall_curve: Any) -> tuple[pd.DataFrame, bool]:
    """Normalize a recall curve to DataFrame(screened, found); True when ``found`` is a recall fraction."""
    if isinstance(recall_curve, pd.DataFrame):
        frame = recall_curve.copy()
        xs = next((c for c in ("screened", "n_screened", "records_screened", "n") if c in frame), None)
        ys = next((c for c in ("found", "n_found", "includes", "relevant_found", "recall") if c in frame), None)
        if ys is None:
            raise InputError(f"recall curve has none of the columns found/n_found/recall (it has: "
                             f"{', '.join(map(str, frame.columns))})")
        x = frame[xs] if xs else pd.Series(range(1, len(frame) + 1))
        out = pd.DataFrame({"screened": pd.to_numeric(x).to_numpy(), "found": pd.to_numeric(frame[ys]).to_numpy()})
        return out, ys == "recall"
    items = list(recall_curve)
    if not items:
        return pd.DataFrame({"screened": [], "found": []}), False
    first = items[0]
    if isinstance(first, Mapping):
        return _curve(pd.DataFrame(items))
    if isinstance(first, (tuple, list)) and len(first) == 2:
        frame = pd.DataFrame(items, columns=["screened", "found"])
    else:
        frame = pd.DataFrame({"screened": range(1, len(items) + 1), "found": [float(v) for v in items]})
    as_recall = bool((frame["found"] <= 1).all() and (frame["found"] % 1 != 0).any())
    return frame, as_recall


def _store_curve(store) -> tuple[pd.DataFrame, int]:
    """Includes found against records screened, in the order records were first decided."""
    from ..screening import dedup
    from . import prisma  # the same screening set and resolved decisions as the PRISMA counts
    # dedup.screening_records' ids, without decoding every record (seconds and a table's copy at 100,000)
    removed = dedup._latest_removed_ids(store)
    screening = set(store.record_ids()) - (removed or set())
    # each record at its first decision of the stage (undo rows aside): the one column, not the whole log
    cur = store.connection.cursor()
    cur.row_factory = None
    first = dict.fromkeys(r[0] for r in cur.execute(
        "SELECT record_id FROM decisions WHERE stage=? AND kind != 'undo' ORDER BY decision_id",
        (prisma.STAGE_SCREENING,)))
    order = [r for r in first if r in screening]
    final = prisma.stage_decisions(store, prisma.STAGE_SCREENING)
    includes = set(final.loc[final["decision"] == "include", "record_id"])
    found = np.cumsum([r in includes for r in order])
    return pd.DataFrame({"screened": np.arange(1, len(order) + 1), "found": found}), len(screening)


def progress_finding(curve: pd.DataFrame, n_total: int | None, as_recall: bool = False,
                     target: float = 0.95) -> str:
    """The sentence :func:`screening_progress` uses as its title."""
    if curve.empty:
        return "No records screened yet"
    screened = int(curve["screened"].max())
    found = curve["found"]
    final = float(found.iloc[-1])
    n_total = n_total or screened
    if as_recall:
        hit = curve[found >= target - 1e-9]
        if hit.empty:
            return f"Recall reached {100 * final:.0f}% after screening {screened:,} of {n_total:,} records"
        x = int(hit["screened"].iloc[0])
        return (f"{100 * target:.0f}% recall after screening {x:,} of {n_total:,} records "
                f"({100 * x / n_total:.0f}%)")
    if final == 0:
        return f"No includes yet after screening {screened:,} of {n_total:,} records"
    x = int(curve.loc[found >= math.ceil(target * final), "screened"].iloc[0])
    lead = (f"{100 * target:.0f}% of the {int(final):,} includes found in the first {x:,} records screened "
            f"({100 * x / max(screened, 1):.0f}%)")
    if screened < n_total:
        return lead + f"; {screened:,} of {n_total:,} records screened so far"
    return lead


def screening_progress(recall_curve: Any = None, *, store=None, n_total: int | None = None,
                       notice: str | None = None, label: str = "Screening order used") -> Figure:
    """Screening progress: includes found (or recall) against records screened.

    Parameters
    ----------
    recall_curve : sequence or DataFrame, optional
        From ``reviewlib.screening.simulation``: cumulative includes (or recall fractions)
        per record screened, a list of ``(screened, found)`` pairs or dicts, or a
        DataFrame with ``screened`` and ``found``/``recall`` columns.
    store : reviewlib.store.ReviewStore, optional
        Used when no curve is given: records in the order they were first
        decided at title-abstract, counting those finally included.
    n_total : int, optional
        Records to screen in all (the x-axis extent; default: the store's
        records or the curve's length).
    notice : str, optional
        A notice drawn at the foot.
    label : str
        The curve's legend entry (e.g. "Prioritised order (model)" for a simulation).

    Returns
    -------
    matplotlib.figure.Figure
        The curve with the screening-in-random-order diagonal for reference.
    """
    if recall_curve is None and store is None:
        raise InputError("screening_progress needs a recall_curve or a store: pass one of them")
    if recall_curve is not None:
        curve, as_recall = _curve(recall_curve)
        total = n_total or (int(curve["screened"].max()) if len(curve) else 0)
    else:
        curve, total = _store_curve(store)
        as_recall = False
        total = n_total or total
    title = progress_finding(curve, total, as_recall)
    if curve.empty:
        return _empty(title, notice)
    fig = _figure(8, 5)
    ax = _axes(fig)
    scale = 100.0 if as_recall else 1.0
    xs = np.concatenate([[0], curve["screened"].to_numpy(dtype=float)])
    ys = np.concatenate([[0], curve["found"].to_numpy(dtype=float) * scale])
    ax.step(xs, ys, where="post", color=OKABE_ITO["blue"], linewidth=2, label=label)
    final = ys[-1]
    top = 100.0 if as_recall else final
    ax.plot([0, total], [0, top], linestyle="--", color=GREY, linewidth=1.2, label="Random order (expected)")
    if final > 0:
        mark = 95.0 if as_recall else math.ceil(0.95 * final)
        hit = xs[np.argmax(ys >= mark - 1e-9)] if (ys >= mark - 1e-9).any() else None
        if hit is not None:
            ax.axvline(hit, color=OKABE_ITO["vermillion"], linewidth=1, linestyle=":")
            right = hit > 0.7 * max(total, xs[-1])  # keep the label inside the axes
            ax.annotate(f"95% after {int(hit):,}", (hit, mark), xytext=(-6 if right else 6, -14),
                        textcoords="offset points", ha="right" if right else "left", fontsize=8.5,
                        color=OKABE_ITO["vermillion"], gid="reviewlib-95",
                        bbox=dict(facecolor="white", edgecolor="none", pad=1.5, alpha=0.9))
    ax.set_xlim(0, max(total, xs[-1]) * 1.02 or 1)
    ax.set_ylim(0, (top or 1) * 1.08)
    ax.set_xlabel("Records screened (n)")
    ax.set_ylabel("Recall (% of relevant records found)" if as_recall else "Includes found (n, cumulative)")
    if not as_recall:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="lower right", frameon=False, fontsize=9)
    below = len(xs) > 1 and float(np.mean(ys[1:] - xs[1:] * top / max(total, 1))) < 0
    if recall_curve is None:   # the store's order: say what it is, and why it may run below the diagonal
        foot = ("The curve runs below the dashed random-order line because " if below else "") + \
               ("records are counted in the order they were first decided (usually the protocol's rules first, in "
                "the order the records were retrieved), not in an order chosen to find includes early: it shows "
                "where screening stands, not how well it was prioritised.")
        foot = foot[:1].upper() + foot[1:]
    else:
        foot = ("The curve runs below the dashed random-order line: in this order the includes came later than a random "
                "order would bring them." if below else None)
    return _finish(fig, ax, title, notice, foot)


def absent_figure(title: str, reason: str, *, notice: str | None = None) -> Figure:
    """A figure standing in for one not drawn in this run: its title and the reason (e.g. screening unfinished).

    Saved under the missing figure's name, it keeps the figure's place on the run's index, so a figure
    that is gone since the previous run says why.
    """
    fig = _figure(6, 2.6)   # small in inches, so its text stays legible where it is shown at card size
    ax = _axes(fig, "white")
    ax.axis("off")
    ax.text(0.5, 0.5, _wrap(reason, 5.2, 12), ha="center", va="center", fontsize=12, color="#333333",
            transform=ax.transAxes, gid="reviewlib-absent-reason")
    return _finish(fig, ax, title, notice)


# -- the figures a protocol declares ---------------------------------------
#: The kinds of evidence figure a protocol can declare under ``report: figures`` and the keys each takes.
FIGURE_KINDS = {
    "evidence_map": ("rows", "columns", "row_label", "column_label", "item", "cells_name"),
    "patients_by": ("field", "label", "noun"),
    "sample_size": ("large",),
    "publications_by_year": (),
}


def figure_specs(source: Any) -> list[dict[str, Any]]:
    """The evidence figures a protocol declares (``report: figures``), checked, in its order.

    ``source`` is a protocol, an extraction schema or a study table (which keeps its schema).  Each
    entry has a ``name`` (the file stem), a ``kind`` (a key of :data:`FIGURE_KINDS`), an optional
    ``caption`` for the index, and the keys of its kind.
    """
    specs = declared_entries(source, "figures", "figures (name, kind, fields)", FIGURE_KINDS, ("name",),
                             "a name and a kind (one of {kinds})")
    for spec in specs:
        unknown = set(spec) - {"name", "kind", "caption", *FIGURE_KINDS[spec["kind"]]}
        if unknown:
            raise InputError(f"protocol report: figure {spec['name']!r} ({spec['kind']}) has unknown key(s) "
                             f"{', '.join(sorted(unknown))}: it takes {', '.join(FIGURE_KINDS[spec['kind']]) or 'none'}")
    return list(specs)


def evidence_figures(table: pd.DataFrame, protocol: Any = None, *, notice: str | None = None) -> dict[str, Figure]:
    """Draw the evidence figures the protocol declares (``report: figures``), by name, in its order.

    Parameters
    ----------
    table : pandas.DataFrame
        A study table (``reviewlib.evidence.tables.study_table``).
    protocol : Protocol, optional
        Declares the figures; default the schema the study table carries.
    notice : str, optional
        A notice drawn at the foot of each figure.
    """
    specs = figure_specs(protocol if protocol is not None else table)
    return {spec["name"]: evidence_figure(table, spec, notice=notice) for spec in specs}


def evidence_figure(table: pd.DataFrame, spec: Mapping[str, Any], *, notice: str | None = None) -> Figure:
    """Draw one declared evidence figure (an entry of :func:`figure_specs`)."""
    args = {k: spec[k] for k in FIGURE_KINDS[spec["kind"]] if k in spec}
    if spec["kind"] == "evidence_map":
        return evidence_map(table, args.pop("rows"), args.pop("columns"), notice=notice, **args)
    if spec["kind"] == "patients_by":
        return patients_by_value(table, args.pop("field"), notice=notice, **args)
    if spec["kind"] == "sample_size":
        return sample_size_distribution(table, notice=notice, **args)
    return publications_by_year(table, notice=notice)
