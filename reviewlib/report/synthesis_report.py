"""The synthesis as a reader sees it: the summary of findings first, then forest plots, risk of bias, GRADE.

:func:`synthesize_review` is the report notebook's one call after the study table: it reads the
outcomes from the included records (saved with the extracted values, reviewer corrections
winning), records the scripted demo appraiser's judgements when the run reads synthetic demo
data (labelled demo), pools and grades every outcome (:func:`reviewlib.evidence.findings.synthesize`)
and saves the tables in the run folder: ``summary_of_findings.json`` (read by the index page),
``tables/summary-of-findings.csv``, ``tables/grade.csv``, ``tables/outcomes-by-study.csv`` and
``tables/synthesis.xlsx``.

What is pooled, by what and how comes from the protocol's ``report: synthesis`` section::

    report:
      synthesis:
        outcomes: [response, relapse]   # default: every outcome of the protocol's outcomes section
        subgroup: drug                  # forest-plot panels; default the intervention role
        by: condition                   # per-population rows; default the population role
        method: REML                    # DL, REML, PM, FE
        transform: logit                # logit, freeman-tukey, raw

Every number keeps its source: each study value carries its evidence sentence and a PubMed, DOI
or ClinicalTrials.gov link, and each pooled value the list of the studies it pools.  A pooled
value is never shown alone: the summary line gives k, patients, CI, prediction interval and I²;
with fewer than three studies the studies are listed and the reason given instead.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import InputError, ProtocolError

logger = logging.getLogger(__name__)

__all__ = ["SOF_FILE", "SynthesisReport", "synthesis_spec", "synthesize_review", "summary_html",
           "outcomes_html", "outcome_blocks", "SYNTHESIS_CSS", "tables", "show_summary_of_findings", "show_forest_plots", "show_risk_of_bias", "show_grade",
           "show_outcomes", "save_png", "write_png", "load_summary", "source_link", "figure_slug"]

#: The run folder's summary of findings (written by :func:`synthesize_review`, read by the index page).
SOF_FILE = "summary_of_findings.json"
_METHODS = ("DL", "REML", "PM", "FE")
#: Resolution of the synthesis PNGs: a 100-study forest or traffic-light plot is tall, and its pixels
#: are most of its cost (110 dpi, as the notebook's own figures are shown).
SYNTHESIS_DPI = 110
#: Styles of the synthesis tables (added to the notebook output and to the index page).
SYNTHESIS_CSS = """
table.reviewlib-sof{border-collapse:collapse;margin:.5em 0 1em 0;width:100%;table-layout:auto}
table.reviewlib-sof th,table.reviewlib-sof td{border:1px solid #ccc;padding:.3em .5em;text-align:left!important;
  vertical-align:top;white-space:normal;overflow-wrap:anywhere}
table.reviewlib-sof thead th{background:#eef2f7}
table.reviewlib-sof td.num,table.reviewlib-sof th.num{text-align:right!important;white-space:nowrap}
table.reviewlib-sof th.nowrap{white-space:nowrap}
table.reviewlib-sof tr.group td,table.reviewlib-sof tr.group th{background:#fafafa;font-size:.93em}
table.reviewlib-sof tr.block th{background:#f3f3f3}
table.reviewlib-sof tr.total td,table.reviewlib-sof tr.total th{font-weight:600;border-top:2px solid #888}
table.reviewlib-sof details summary{cursor:pointer;color:#0b5394}
table.reviewlib-sof [title]{text-decoration:underline dotted #777}
.certainty-high{color:#1b5e20}.certainty-moderate{color:#33691e}.certainty-low{color:#8a4b00}
.certainty-very-low{color:#b02a37}
"""
_TRANSFORMS = ("logit", "freeman-tukey", "raw")


def figure_slug(name: str) -> str:
    """A file-name stem for an outcome ("Any response" -> "any_response")."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_") or "outcome"


def source_link(record: Mapping[str, Any]) -> str | None:
    """The page a value can be checked on: PubMed for a PMID, doi.org for a DOI, ClinicalTrials.gov
    for an NCT id (from ``pmid``, ``doi``, ``nct_id`` or a ``record_id`` such as ``nct:NCT01234567``)."""
    def text(key: str) -> str:
        v = record.get(key)
        return "" if v is None or (isinstance(v, float) and v != v) else str(v).strip()

    rid = text("record_id")
    pmid = text("pmid") or (rid[5:] if rid.startswith("pmid:") else "")
    if pmid.isdigit():
        return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
    doi = text("doi") or (rid[4:] if rid.startswith("doi:") else "")
    if doi.startswith("10."):
        return f"https://doi.org/{doi}"
    nct = text("nct_id") or (rid[4:] if rid.startswith("nct:") else "")
    if re.fullmatch(r"NCT\d{8}", nct):
        return f"https://clinicaltrials.gov/study/{nct}"
    return None


def synthesis_spec(protocol: Any) -> dict[str, Any]:
    """The protocol's ``report: synthesis`` section with its defaults (see the module docstring).

    Raises
    ------
    ProtocolError
        An outcome not declared under ``outcomes:``, a field not declared under
        ``extraction: fields``, or an unknown method or transform: one line saying which.
    """
    from ..evidence import outcomes as oc
    from ..evidence.extraction import load_schema

    schema = load_schema(protocol)
    report = (protocol.section("report") if hasattr(protocol, "section") else None) or {}
    section = report.get("synthesis") or {}
    if not isinstance(section, Mapping):
        raise ProtocolError("protocol report: synthesis must be a mapping (outcomes, subgroup, by, method, transform)")
    declared = {o.name: o for o in oc.load_outcomes(protocol)}
    names = [str(n) for n in (section.get(oc.SECTION) or list(declared))]
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise ProtocolError(f"protocol report: synthesis names outcome(s) {', '.join(map(repr, unknown))} that the "
                            f"outcomes section does not declare ({', '.join(declared) or 'none'}): fix the name")
    spec = {"names": names, "labels": {n: declared[n].label or n for n in names},
            "subgroup": section.get("subgroup", schema.role("intervention")),
            "by": section.get("by", schema.role("population")),
            "method": str(section.get("method", "REML")), "transform": str(section.get("transform", "logit"))}
    for key in ("subgroup", "by"):
        if spec[key] is not None and spec[key] not in schema.fields:
            raise ProtocolError(f"protocol report: synthesis {key}: {spec[key]!r} is not a field under "
                                "extraction: fields: declare it or fix the name")
    if spec["method"] not in _METHODS:
        raise ProtocolError(f"protocol report: synthesis method {spec['method']!r} is not one of {', '.join(_METHODS)}")
    if spec["transform"] not in _TRANSFORMS:
        raise ProtocolError(f"protocol report: synthesis transform {spec['transform']!r} is not one of "
                            f"{', '.join(_TRANSFORMS)}")
    spec["by_label"] = schema.fields[spec["by"]].label if spec["by"] else None
    spec["subgroup_label"] = schema.fields[spec["subgroup"]].label if spec["subgroup"] else None
    return spec


@dataclass
class SynthesisReport:
    """What :func:`synthesize_review` computed: findings, the studies pooled, their sources, the summary."""

    findings: Any
    studies: Any
    sources: Any
    final: Any
    spec: dict[str, Any]
    summary: dict[str, Any]
    demo: bool = False
    saved: list[Path] = field(default_factory=list)


def _label(row: Mapping[str, Any]) -> str:
    return str(row.get("study") or row.get("record_id"))


def _study_sources(rows: Any) -> list[dict[str, Any]]:
    out = []
    for r in rows.to_dict("records"):
        out.append({"study": _label(r), "record_id": r["record_id"], "events": int(r["events"]), "n": int(r["n"]),
                    "value": f"{int(r['events'])}/{int(r['n'])}", "evidence": r.get("evidence") or "",
                    "status": r.get("status") or "", "link": source_link(r)})
    return out


def _pooled(res: Any) -> dict[str, Any] | None:
    if res is None or not res.poolable:
        return None
    import math
    return {k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in (("estimate", res.estimate), ("ci_low", res.ci_low), ("ci_high", res.ci_high),
                         ("pi_low", res.pi_low), ("pi_high", res.pi_high), ("i2", res.i2), ("tau2", res.tau2))}


def synthesize_review(store: Any, table: Any, records: Any, protocol: Any, *, demo: bool = False,
                      folder: str | Path | None = None, gaps: Sequence[str] = ()) -> SynthesisReport:
    """Outcomes extracted and saved, demo appraisal (``demo``), pooled and graded, tables saved.

    Parameters
    ----------
    store : ReviewStore
    table : pandas.DataFrame
        The study table (:func:`reviewlib.evidence.tables.study_table`) of the included studies; a
        repeated cohort (``counted`` False) is left out, and so are studies without a reported
        number of patients (the ``sample_size`` role: reviews, preclinical work).
    records : pandas.DataFrame
        The included records (title, abstract: the outcome sentences are read from them).
    protocol : Protocol
    demo : bool
        Record the scripted demo appraiser's judgements (labelled demo) for studies without any.
    folder : path-like, optional
        The run folder: ``summary_of_findings.json`` there and the tables in ``tables/``.
    gaps : sequence of str
        The gap statements, saved with the summary for the index page.
    """
    import pandas as pd

    from ..evidence import appraisal, findings as fd, outcomes as oc
    from ..evidence.tables import role_field

    spec = synthesis_spec(protocol)
    size = role_field("sample_size", table, required=False)
    studies = table
    if "counted" in studies:
        studies = studies[studies["counted"].astype(bool)]
    if size:
        studies = studies[pd.to_numeric(studies[size], errors="coerce").fillna(0) > 0]
    studies = studies.reset_index(drop=True)
    recs = records[records["record_id"].isin(set(studies["record_id"]))] if len(studies) else records.iloc[:0]
    sizes = dict(zip(studies["record_id"], pd.to_numeric(studies[size], errors="coerce"))) if size else None
    found = oc.extract_outcomes(recs, protocol, n_patients=sizes)
    current = oc.current_outcomes(store)
    if len(found):   # append only what the store does not already hold (a rerun adds nothing)
        held = {(r["record_id"], r["outcome"], int(r["events"]), int(r["n"])) for r in current.to_dict("records")}
        new = found[[(r["record_id"], r["outcome"], int(r["events"]), int(r["n"])) not in held
                     for r in found.to_dict("records")]]
        if len(new):
            oc.save(store, new)
            current = oc.current_outcomes(store)
    if demo and len(studies):
        appraisal.demo_appraise(store, studies, protocol)
    design = role_field("study_design", table, required=False)
    result = fd.synthesize(store, studies, spec["names"], method=spec["method"], transform=spec["transform"],
                           subgroup=spec["subgroup"], by=spec["by"], design=design, current=current)
    final = appraisal.final_judgements(store)
    if len(final):
        final = final[final["record_id"].isin(set(studies["record_id"]))]
    keep = [c for c in ("study", "record_id", "pmid", "doi", spec["by"], spec["subgroup"]) if c and c in studies]
    sources = current[current["outcome"].isin(spec["names"])].merge(
        studies[list(dict.fromkeys(keep))], on="record_id", how="inner")
    summary = _summary(result, sources, spec, demo=demo, gaps=gaps)
    report = SynthesisReport(result, studies, sources, final, spec, summary, demo=demo)
    if folder is not None:
        report.saved = _save(report, Path(folder))
    return report


def _summary(result: Any, sources: Any, spec: Mapping[str, Any], *, demo: bool, gaps: Sequence[str]) -> dict:
    by = spec["by"]
    sof = result.table.set_index("outcome") if len(result.table) else None
    groups = result.group_table
    rows = []
    for name in spec["names"]:
        res = result.results.get(name)
        s = sof.loc[name] if sof is not None and name in sof.index else {}
        mine = sources[sources["outcome"] == name]
        row = {"outcome": name, "label": spec["labels"].get(name, name),
               "studies": int(s.get("studies", 0)), "patients": int(s.get("patients", 0)),
               "events": int(s.get("events", 0)), "estimate": str(s.get("estimate", "No study reports it")),
               "pooled": _pooled(res), "poolable": bool(res.poolable) if res is not None else False,
               "reason": (res.reason if res is not None else "no included study reports it"),
               "certainty": str(s.get("certainty") or ""), "level": s.get("level") or None,
               "downgraded_for": str(s.get("downgraded_for") or ""), "finding": str(s.get("finding") or ""),
               "sources": _study_sources(mine), "groups": []}
        if by and len(groups):
            for g in groups[groups["outcome"] == name].to_dict("records"):
                value = str(g[by])
                part = mine[mine[by].map(lambda v, value=value: str(v) == value or (";" in str(v) and value ==
                                                                                     _mixed()))] \
                    if by in mine else mine.iloc[:0]
                row["groups"].append({"group": value, "studies": int(g["studies"]), "patients": int(g["patients"]),
                                      "events": int(g["events"]), "estimate": g["estimate"],
                                      "poolable": bool(g["poolable"]), "certainty": g.get("certainty", ""),
                                      "finding": g.get("finding", ""), "sources": _study_sources(part)})
        rows.append(row)
    return {"findings": rows, "by": by, "by_label": spec.get("by_label"), "method": spec["method"],
            "transform": spec["transform"], "demo_appraisal": demo, "gaps": [str(g) for g in gaps]}


def _mixed() -> str:
    from ..evidence.findings import MIXED
    return MIXED


def tables(report: SynthesisReport) -> dict[str, Any]:
    """The synthesis tables as data frames: summary of findings (overall and per population), GRADE,
    and the long outcomes table (one row per study x outcome: events/treated, sentence, link)."""
    import pandas as pd

    summ, by = report.summary, report.spec["by"]
    sof = pd.DataFrame([{"outcome": r["label"], "studies": r["studies"], "patients": r["patients"],
                         "events": r["events"], "estimate (95% CI; prediction interval; I2)": r["estimate"],
                         "certainty": r["certainty"], "downgraded for": r["downgraded_for"], "finding": r["finding"],
                         "pooled from": "; ".join(f"{s['study']} {s['value']} ({s['link'] or s['record_id']})"
                                                  for s in r["sources"])} for r in summ["findings"]])
    group = pd.DataFrame([{by or "group": g["group"], "outcome": r["label"], "studies": g["studies"],
                           "patients": g["patients"], "events/treated (studies)":
                           f"{g['events']}/{g['patients']} ({g['studies']})", "estimate": g["estimate"],
                           "certainty": g["certainty"], "finding": g["finding"]}
                          for r in summ["findings"] for g in r["groups"]])
    long = pd.DataFrame([{by or "group": g["group"], "outcome": r["label"], "study": s["study"],
                          "events/treated": s["value"], "events": s["events"], "treated": s["n"],
                          "status": s["status"], "evidence": s["evidence"], "source": s["link"] or s["record_id"]}
                         for r in summ["findings"] for g in (r["groups"] or [{"group": "", "sources": r["sources"]}])
                         for s in g["sources"]])
    grade = report.findings.grade_table()
    out = {"summary of findings": sof, "summary of findings by " + (summ.get("by_label") or by or "group"): group,
           "grade": grade, "outcomes by study": long}
    return out   # the CSV/XLSX writers neutralise cells starting with = + - @


def _save(report: SynthesisReport, folder: Path) -> list[Path]:
    import json

    from ..atomic import write_text
    from ..evidence.tables import export_csv, export_xlsx

    frames = tables(report)
    paths = export_csv(frames, folder / "tables")
    paths.append(export_xlsx(frames, folder / "tables" / "synthesis.xlsx"))
    path = folder / SOF_FILE
    write_text(path, json.dumps(report.summary, indent=1, ensure_ascii=False, default=str))
    return [*paths, path]


def load_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's saved summary of findings (:data:`SOF_FILE`), or None when the run has none."""
    import json
    path = Path(run_dir) / SOF_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("summary of findings %s unreadable (%s): the index shows none", path, exc)
        return None


# -- HTML ------------------------------------------------------------------------------------------
def _macros():
    from .pages import _environment
    return _environment().get_template("synthesis.html.j2").module


def summary_html(summary: Mapping[str, Any]) -> str:
    """The summary-of-findings table (template ``synthesis.html.j2``, escaped): per outcome and per
    population the studies, patients, estimate with CI, certainty and one sentence; every value's
    sources on hover and under 'sources'."""
    return str(_macros().sof(summary))


def outcome_blocks(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The outcomes table's blocks: one per population (then all studies), each with a row per
    outcome (events/treated (studies), estimate, certainty, sources) and its total row last."""
    blocks: dict[str, dict[str, Any]] = {}
    for r in summary.get("findings") or []:
        for g in r.get("groups") or []:
            block = blocks.setdefault(g["group"], {"group": g["group"], "rows": [], "studies": set()})
            block["rows"].append({"label": r["label"], **g})
            block["studies"] |= {s["record_id"] for s in g["sources"]}
    out = [{**b, "total": len(b["studies"])} for b in blocks.values()]
    everything = {"group": "All studies", "rows": [{**r, "group": "All studies"} for r in summary.get("findings") or []],
                  "total": len({s["record_id"] for r in summary.get("findings") or [] for s in r["sources"]})}
    return sorted(out, key=lambda b: (-b["total"], str(b["group"]))) + [everything]


def outcomes_html(summary: Mapping[str, Any]) -> str:
    """The outcomes table: one block per population, a row per outcome, counts "events/treated
    (studies)", a total row closing each block; every count's sentence and link on hover.  A
    static table (nothing re-sorts it, so each total stays under its block), four columns that wrap."""
    return str(_macros().outcomes_table(summary, outcome_blocks(summary)))


def _display(html: str) -> None:
    from IPython.display import HTML, display
    display(HTML(f"<style>{SYNTHESIS_CSS}</style>" + html))


def show_summary_of_findings(report: SynthesisReport) -> None:
    """Display the summary of findings (and say when the appraisals are the scripted demo's)."""
    _display(summary_html(report.summary))


def show_outcomes(report: SynthesisReport) -> None:
    """Display the outcomes table (:func:`outcomes_html`)."""
    _display(outcomes_html(report.summary))


def show_grade(report: SynthesisReport) -> None:
    """Display the GRADE table: per outcome and domain, the computed downgrade and its reason, any
    reviewer override and its reason, the final downgrade."""
    _display(str(_macros().grade_table(report.findings.grade_table().to_dict("records"),
                                       report.spec["labels"])))


def write_png(fig: Any, folder: str | Path, name: str) -> dict[str, Path]:
    """Write ``fig`` as ``<folder>/<name>.png`` (atomically, :data:`SYNTHESIS_DPI`); ``{"png": path}``."""
    from ..atomic import atomic_path

    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise InputError(f"figure name {name!r} must be a plain file stem like 'forest_relapse' (no folders)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{name}.png"
    with atomic_path(final, suffix=".png.part") as tmp, open(tmp, "wb") as handle:
        fig.savefig(handle, format="png", dpi=SYNTHESIS_DPI, facecolor="white", metadata={"Software": None})
    return {"png": final}


def save_png(fig: Any, folder: str | Path, name: str) -> Path:
    """Write ``fig`` as ``<folder>/<name>.png`` (atomically) and show it; PNG only: a forest or
    traffic-light plot of a hundred studies takes seconds as SVG with its text as paths."""
    from .notebook import _close, _figure_alt, _show_png

    alt = _figure_alt(fig)
    final = write_png(fig, folder, name)["png"]
    _close(fig)
    _show_png(final.read_bytes(), alt or name.replace("_", " "))
    return final


def _show_png_figures(jobs: list[tuple[str, Any, int, tuple]], folder: str | Path, cache_dir: str | Path | None) -> None:
    """Draw (or take from the review's figure cache, keyed by each job's data), save and show PNG-only
    figures: ``jobs`` are ``(name, draw, rows, data)``.  Those the cache lacks are drawn first, in two
    processes when they are many rows (:func:`reviewlib.report.figure_cache.draw_ahead`), then all
    are shown in order."""
    from . import figure_cache

    pending = [figure_cache.Pending(name, figure_cache.figure_key(name, *data) if cache_dir is not None else None,
                                    draw, write_png, ("png",), rows=rows) for name, draw, rows, data in jobs]
    figure_cache.draw_ahead(pending, cache_dir)
    for job in pending:
        figure_cache.show_cached(job.draw, folder, job.name, key=job.key, cache_dir=cache_dir, save=write_png,
                                 formats=("png",))


def show_forest_plots(report: SynthesisReport, folder: str | Path, *, notice: str | None = None,
                      cache_dir: str | Path | None = None) -> list[str]:
    """Draw, save (``forest_<outcome>.png``) and show a forest plot per outcome some study reports.

    ``cache_dir``: the review's cache folder; a plot of the same result, label and notice drawn by
    the same code is copied from there instead of drawn (:mod:`reviewlib.report.figure_cache`).
    """
    from . import synthesis_figures as sf

    jobs = []
    for name in report.spec["names"]:
        res = report.findings.results.get(name)
        if res is None:
            continue
        label = report.spec["labels"].get(name, name)
        rows = len(res.studies) if getattr(res, "studies", None) is not None else 1
        jobs.append((f"forest_{figure_slug(name)}",
                     lambda res=res, label=label: sf.forest_plot(res, outcome=label, notice=notice), rows,
                     (res, label, notice)))
    _show_png_figures(jobs, folder, cache_dir)
    return [job[0] for job in jobs]


def show_risk_of_bias(report: SynthesisReport, folder: str | Path, *, notice: str | None = None,
                      cache_dir: str | Path | None = None) -> list[str]:
    """Draw, save and show the robvis-style summary and traffic-light plots, per appraisal tool used.

    ``cache_dir``: as for :func:`show_forest_plots` (keyed by the tool's judgements and the labels).
    """
    from . import synthesis_figures as sf
    from .notebook import say

    final = report.final
    if final is None or not len(final):
        say("No study has been appraised yet: there is no risk-of-bias judgement to show.")
        return []
    labels = dict(zip(report.studies["record_id"], report.studies["study"].astype(str))) \
        if "study" in report.studies else None
    jobs = []
    whole = final.reset_index(drop=True)
    for tool in final["tool"].value_counts().index:
        studies = int(final.loc[final["tool"].eq(tool), "record_id"].nunique()) if "record_id" in final else 1
        for kind, draw in (("summary", sf.summary_plot), ("traffic_light", sf.traffic_light_plot)):
            jobs.append((f"rob_{kind}_{figure_slug(tool)}",
                         lambda draw=draw, tool=tool: draw(final, tool=tool, labels=labels, notice=notice),
                         studies if kind == "traffic_light" else 1, (whole, tool, labels, notice)))
    _show_png_figures(jobs, folder, cache_dir)
    return [job[0] for job in jobs]
