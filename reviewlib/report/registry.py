"""The registry section of a review's report (notebooks/05-registry.ipynb): provenance, tables, figures.

:func:`registry_notice` is the provenance line of the registry's records (the
protocol's ``registry: notice`` when the run reads its snapshot, a line naming
the live search online); it says the records are real and is shown on the
registry page and the run's index, beside the synthetic-data notice of the
literature demo (which never calls the registry data synthetic).
:func:`registry_figures` draws the figures the protocol's
``report: registry_figures`` declares (kinds ``start_years``: trials started
per year by a field; ``enrollment``: planned enrollment by a column), over the
registry's study table (:func:`reviewlib.evidence.registry.trial_table`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import ProtocolError
from ..evidence import registry as evidence_registry

logger = logging.getLogger(__name__)

FIGURE_KINDS = ("start_years", "enrollment")
#: A palette for the values of a field (category order as the table gives them).
PALETTE = ["#1b6ca8", "#e07b39", "#3a9d5d", "#c23b5a", "#7b5ea7", "#8c6d31", "#17becf", "#7f7f7f", "#bcbd22",
           "#393b79"]


def registry_notice(context: Any, offline: bool | None = None) -> str | None:
    """The provenance line of the run's registry records, or None when the protocol searches no register.

    Parameters
    ----------
    context : reviewlib.pipeline.ReviewContext or Protocol
        Offline (a context's ``offline``, or a bare protocol) the protocol's
        ``registry: notice`` (else its ``snapshot_note``); online a line saying
        the records were fetched from ClinicalTrials.gov for this run.
    offline : bool, optional
        Overrides the context's mode.
    """
    protocol = getattr(context, "protocol", context)
    section = protocol.section("registry") if hasattr(protocol, "section") else None
    if not isinstance(section, dict) or not section:
        return None
    offline = bool(getattr(context, "offline", True)) if offline is None else bool(offline)
    if offline and section.get("snapshot"):
        text = section.get("notice") or section.get("snapshot_note") or \
            f"Registry data: REAL ClinicalTrials.gov records from the offline snapshot {section['snapshot']}."
        return " ".join(str(text).split())
    return ("Registry data: REAL ClinicalTrials.gov records, fetched from the API v2 for this run "
            "(designs and enrollment as registered, not as run).")


def figure_specs(protocol: Any) -> list[dict]:
    """The protocol's ``report: registry_figures`` (checked: a name, a known kind)."""
    report = protocol.section("report") if hasattr(protocol, "section") else None
    specs = (report or {}).get("registry_figures") or []
    for spec in specs:
        if not isinstance(spec, dict) or spec.get("kind") not in FIGURE_KINDS or not spec.get("name"):
            raise ProtocolError(f"protocol {getattr(protocol, 'path', '')}: report.registry_figures entries need a "
                                f"name and a kind ({', '.join(FIGURE_KINDS)}), got {spec!r}")
    return specs


def start_years_figure(table: pd.DataFrame, by: str | None, *, title: str | None = None,
                       notice: str | None = None, label: str | None = None) -> Any:
    """Trials started per year, stacked by ``by``'s values (a multi-valued trial counts in each value)."""
    from . import figures as plots
    counts = evidence_registry.start_years(table, by)
    fig = plots._figure(9, 4.6)
    ax = plots._axes(fig)
    if counts.empty:
        return plots._empty(title or "Trials started per year", notice)
    years = counts["start year"].astype(int).to_numpy()
    groups = [c for c in counts.columns if c not in ("start year", "all trials")] if by else ["trials"]
    bottom = np.zeros(len(years))
    for i, g in enumerate(groups):
        vals = counts[g].to_numpy(dtype=float)
        ax.bar(years, vals, bottom=bottom, color=PALETTE[i % len(PALETTE)], label=str(g), width=0.8,
               edgecolor="white", linewidth=0.5)
        bottom += vals
    ax.set_xlabel("start year (as registered; a future year is a planned start)")
    ax.set_ylabel("registered trials")
    ax.set_xticks(years)
    if by:
        ax.legend(title=label or by, fontsize=8, title_fontsize=8, frameon=False, ncol=2)
    total = int(evidence_registry.start_year(table).notna().sum())
    peak = int(years[int(np.argmax(counts["all trials"] if by else counts["trials"]))])
    title = title or (f"{total} registered trials by start year: most started in {peak}")
    return plots._finish(fig, ax, title, notice)


def enrollment_figure(table: pd.DataFrame, by: str = "phases", *, small: int = 20, title: str | None = None,
                      notice: str | None = None) -> Any:
    """Planned enrollment per trial by ``by`` (dots, log scale, median bar), the ``small`` line dashed."""
    from . import figures as plots
    n = pd.to_numeric(pd.Series(list(table["enrollment"]), dtype=object), errors="coerce")
    keys = pd.Series([evidence_registry._joined(v) or evidence_registry.NOT_GIVEN for v in table[by]], dtype=object)
    order = sorted(keys.value_counts().index, key=lambda k: (k in ("NA", evidence_registry.NOT_GIVEN), k))
    fig = plots._figure(9, 4.8)
    ax = plots._axes(fig)
    if n.notna().sum() == 0:
        return plots._empty(title or "Planned enrollment", notice)
    rng = np.random.default_rng(0)
    for i, key in enumerate(order):
        vals = n[keys.values == key].dropna().to_numpy(dtype=float)
        shown = np.clip(vals, 0.8, None)          # an enrollment of 0 (withdrawn) drawn at the axis floor
        ax.scatter(i + rng.uniform(-0.25, 0.25, len(vals)), shown, s=14, alpha=0.6, color=PALETTE[0],
                   edgecolor="none")
        if len(vals):
            med = float(np.median(vals))
            ax.hlines(max(med, 0.8), i - 0.35, i + 0.35, color="#B00020", linewidth=2)
            ax.text(i, max(shown.max(), med) * 1.25, f"n={len(vals)}\nmedian {med:g}",
                    ha="center", va="bottom", fontsize=7.5, color="#333333")
    ax.axhline(small, color=plots.GREY, linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([str(o).replace("; ", "/\n") for o in order], fontsize=8)
    ax.set_xlabel("registered phase")
    ax.set_ylabel("planned enrollment (participants, log scale)")
    ax.set_ylim(0.7, max(float(n.max()) * 4, small * 4))
    med_all = float(n.median())
    share = float((n.dropna() <= small).mean())
    title = title or (f"Registered trials plan to enrol few patients: median {med_all:g}, "
                      f"{share:.0%} at most {small} (dashed line)")
    return plots._finish(fig, ax, title, notice, footnote="Red bar: median per phase. Enrollment as registered "
                                                          "(mostly estimated, i.e. planned), not as treated; an "
                                                          "enrollment of 0 (withdrawn) is drawn at the floor.")


def _figure_inputs(protocol: Any) -> tuple[dict[str, str], int]:
    """The field labels and the enrollment threshold the registry figures read from the protocol."""
    schema_labels = {}
    try:
        from ..evidence import extraction
        schema_labels = {n: f.label for n, f in extraction.load_schema(protocol).fields.items()}
    except Exception:  # noqa: BLE001 - labels are a nicety
        pass
    small = next((int(s.get("small", 20)) for s in evidence_registry.table_specs(protocol)
                  if s["kind"] == "enrollment"), 20)
    return schema_labels, small


def _registry_figure(table: pd.DataFrame, spec: Mapping[str, Any], schema_labels: Mapping[str, str], small: int,
                     notice: str | None) -> Any:
    if spec["kind"] == "start_years":
        by = spec.get("by")
        return start_years_figure(table, by, notice=notice, label=schema_labels.get(by, by))
    return enrollment_figure(table, spec.get("by", "phases"), small=small, notice=notice)


def registry_figures(table: pd.DataFrame, protocol: Any, *, notice: str | None = None) -> dict[str, Any]:
    """The figures the protocol's ``report: registry_figures`` declares, by name, in its order."""
    schema_labels, small = _figure_inputs(protocol)
    return {spec["name"]: _registry_figure(table, spec, schema_labels, small, notice)
            for spec in figure_specs(protocol)}


def show_registry_figures(table: pd.DataFrame, protocol: Any, folder: str | Path, *, notice: str | None = None,
                          cache_dir: str | Path | None = None) -> list[str]:
    """Draw (or take from the review's figure cache), save and show the declared registry figures.

    Each figure is keyed by its declaration, the trial table, the labels and threshold it reads and
    ``notice`` (:mod:`reviewlib.report.figure_cache`).  Returns the file stems shown.
    """
    from .notebook import show_cached_figure

    if table is None or not len(table):
        return []
    schema_labels, small = _figure_inputs(protocol)
    names = []
    for spec in figure_specs(protocol):
        show_cached_figure(lambda spec=spec: _registry_figure(table, spec, schema_labels, small, notice), folder,
                           spec["name"], spec, table, schema_labels, small, notice, cache_dir=cache_dir)
        names.append(spec["name"])
    return names


def figure_captions(protocol: Any) -> dict[str, str]:
    """name -> caption of the registry figures (for the index page)."""
    return {s["name"]: s.get("caption") or s["name"] for s in figure_specs(protocol)}


def gap_sentences(facts: Mapping[str, Any]) -> list[str]:
    """The registry's gaps in plain sentences, from :func:`reviewlib.evidence.registry.registry_gap_facts`."""
    n = facts["n_trials"]
    out = []
    e = facts["enrollment"]
    if e["median"] is not None:
        out.append(f"Sample size: the {e['n_with']} registered trials plan a median enrollment of {e['median']:g}; "
                   f"{e['at_most_small']} ({e['at_most_small'] / max(n, 1):.0%}) plan at most {e['small']} participants.")
    d = facts["registered_design"]
    out.append(f"Controlled designs: {d['randomised']} of {n} trials are randomised and {d['comparator']} have a "
               f"comparator arm (from {d['randomised_from_text']} and {d['comparator_from_text']} summaries: the "
               f"records carry no allocation field); {d['single_arm']} say they are single-arm and "
               f"{d['none_stated']} state none of these.")
    for key in facts:
        if isinstance(facts[key], dict) and key not in ("enrollment", "registered_design", "ages", "status", "publications"):
            parts = ", ".join(f"{v} {k}" for k, v in facts[key].items())
            out.append(f"{key[:1].upper() + key[1:]} (trials): {parts}.")
    out.append(f"Patients studied: {facts['ages']['children_eligible']} of {n} trials are open to children.")
    p = facts["publications"]
    out.append(f"Results: {p['with_publication']} of {n} registered trials have a publication linked in this review; "
               f"{p['completed_without_publication']} of the {p['completed']} completed trials have none.")
    return out


def show_registry_notice(context: Any) -> str | None:
    """Display the registry's provenance line (escaped, blue box) and return it; say so when there is none."""
    from IPython.display import HTML, display
    from .pages import escape
    notice = registry_notice(context)
    if notice:
        display(HTML('<div class="reviewlib-registry-notice" style="background:#e7f1ff;color:#0b3d75;'
                     'border:2px solid #1b6ca8;border-radius:4px;padding:.6em 1em;font-weight:600">'
                     f'{escape(notice)}</div>'))
    else:
        display(HTML("<p>This protocol searches no trial register (no <code>registry:</code> section).</p>"))
    return notice
