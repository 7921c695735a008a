"""HTML pages of a run: the notebook pages and the index, from jinja2 templates with autoescape.

The templates live in ``reviewlib/report/templates/``.  Every value a page shows (record text from
PubMed or a registry, protocol text, reviewer names) goes through jinja2's autoescape; the few values
that are HTML are built here with :class:`markupsafe.Markup` from escaped parts.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from markupsafe import Markup, escape as _escape

from ..atomic import write_text

logger = logging.getLogger(__name__)

__all__ = ["TEMPLATES", "CSS", "INDEX_CSS", "escape", "page_header", "changes_html", "facts_html", "snippet",
           "html_exporter", "strip_widgets", "render_notebook", "write_index", "count_rows", "COUNT_LABELS"]

#: Folder of the page templates.
TEMPLATES = Path(__file__).resolve().parent / "templates"
_NOTEBOOK_TEMPLATE = "notebook.html.j2"
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

CSS = """
.reviewlib-header{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 0 1em 0}
.reviewlib-notice{background:#fff3cd;color:#5c4400;border:2px solid #e0a800;border-radius:4px;
  padding:.7em 1em;font-weight:600;margin:.5em 0}
.reviewlib-registry-notice{background:#e7f1ff;color:#0b3d75;border:2px solid #1b6ca8;border-radius:4px;
  padding:.7em 1em;font-weight:600;margin:.5em 0}
.reviewlib-alarm{background:#f8d7da;color:#58151c;border:2px solid #b02a37;border-radius:4px;
  padding:.7em 1em;font-weight:700;margin:.5em 0}
.reviewlib-nav{display:flex;flex-wrap:wrap;gap:.4em 1.2em;padding:.5em 0;border-bottom:1px solid #ccc}
.reviewlib-nav a{text-decoration:none;color:#0b5394}
.reviewlib-nav a.current{font-weight:700;color:#222}
"""

INDEX_CSS = CSS + """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:72em;margin:1em auto;
  padding:0 1em;color:#222;line-height:1.45}
table.reviewlib-facts{border-collapse:collapse;margin:.5em 0 1em 0}
table.reviewlib-facts th,table.reviewlib-facts td{border:1px solid #ccc;padding:.25em .6em;text-align:left;
  vertical-align:top}
table.reviewlib-facts th{background:#f3f3f3}
code.query{white-space:pre-wrap;word-break:break-word;font-size:.9em}
.reviewlib-figures{display:flex;flex-wrap:wrap;gap:1em}
.reviewlib-figures figure{margin:0;max-width:34em}
.reviewlib-figures img{max-width:100%;border:1px solid #ddd}
.reviewlib-figures figure:has(img[src$="evidence_map.png"]){max-width:none;flex:1 1 100%}
.status-failed{color:#b02a37;font-weight:700}
"""

#: Reader-facing labels of the manifest's stage counts (other keys: underscores read as spaces).
COUNT_LABELS = {
    "after_deduplication": "after deduplication", "included_title_abstract": "included at title-abstract",
    "assessed_full_text": "reports assessed at full text", "excluded_full_text": "excluded at full text",
    "final_stage": "included set decided at", "included": "studies included",
    "identified_registers": "identified from registers (ClinicalTrials.gov)",
}


def escape(value: Any) -> str:
    """HTML-escape any value (quotes too); None becomes ''."""
    return str(_escape("" if value is None else str(value)))


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                              undefined=jinja2.ChainableUndefined, keep_trailing_newline=False)


def _render(name: str, **context: Any) -> str:
    return _environment().get_template(name).render(**context)


def page_header(*, notice: str | None = None, nav: Sequence[tuple[str, str]] = (), current: str | None = None,
                warning: str | None = None) -> str:
    """The header put at the top of every page: notice, living-review warning, link bar (once each)."""
    return _render("header.html.j2", notice=notice, warning=warning, nav=list(nav), current=current)


def facts_html(rows: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of facts; values are escaped unless they are :class:`markupsafe.Markup`."""
    module = _environment().get_template("macros.html.j2").module
    return str(module.facts(list(rows)))


def snippet(name: str, *args: Any) -> str:
    """HTML of one macro of ``templates/macros.html.j2`` (``notice_box``, ``items``, ``titled_facts``,
    ``png``...), its arguments escaped by autoescape."""
    module = _environment().get_template("macros.html.j2").module
    return str(getattr(module, name)(*args))


def changes_html(changes: Any) -> str:
    """A living-review summary (a :class:`reviewlib.report.living.Changes`) as HTML, ids escaped."""
    if changes is None:
        return ""
    module = _environment().get_template("macros.html.j2").module
    return str(module.changes(changes))


# -- notebook pages ----------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def html_exporter():
    """An ``HTMLExporter`` without code cells or prompts, using the offline template (cached)."""
    import jinja2
    from nbconvert import HTMLExporter
    return HTMLExporter(
        template_name="lab", template_file=_NOTEBOOK_TEMPLATE,
        extra_loaders=[jinja2.FileSystemLoader(str(TEMPLATES))],
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
        embed_images=True)


def strip_widgets(nb: Any) -> Any:
    """Drop widget state and widget views (they need a widget manager from a CDN); text fallbacks stay."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data and _WIDGET_MIME in data:
                del data[_WIDGET_MIME]
    return nb


def render_notebook(notebook: str | Path, html_path: str | Path, *, notice: str | None = None,
                    nav: Sequence[tuple[str, str]] = (), warning: str | None = None,
                    title: str | None = None) -> Path:
    """Render an executed notebook to a self-contained HTML page without code.

    Parameters
    ----------
    notebook : path-like
        The executed ``.ipynb``.
    html_path : path-like
        Where to write the page (atomically).
    notice : str, optional
        The synthetic-data notice, shown once as a banner at the top.
    nav : sequence of (label, href)
        Links shown under the banner (index and sibling pages).
    warning : str, optional
        A living-review warning shown once in red under the notice.
    title : str, optional
        The page title (defaults to the notebook's name).

    Returns
    -------
    pathlib.Path
        The page written.
    """
    html_path = Path(html_path)
    write_text(html_path, notebook_page(notebook, html_path.name, notice=notice, nav=nav, warning=warning,
                                        title=title))
    return html_path


def notebook_page(notebook: str | Path, page_name: str, *, notice: str | None = None,
                  nav: Sequence[tuple[str, str]] = (), warning: str | None = None,
                  title: str | None = None) -> str:
    """The HTML :func:`render_notebook` writes, as a string (``page_name``: the page's file name, which
    the navigation marks as the current page)."""
    import nbformat
    notebook = Path(notebook)
    nb = strip_widgets(nbformat.read(notebook, as_version=4))
    if title:
        nb.metadata["title"] = title
    resources = {"metadata": {"name": title or notebook.stem},
                 "reviewlib_css": CSS,
                 "reviewlib_header": page_header(notice=notice, nav=nav, current=page_name, warning=warning)}
    body, _ = html_exporter().from_notebook_node(nb, resources=resources)
    return body


# -- the index page ------------------------------------------------------------------
def _with_reasons(n: Any, reasons: Mapping[str, Any] | None) -> Markup:
    listed = Markup(", ").join(Markup("{}: {}").format(k, v) for k, v in (reasons or {}).items())
    return Markup("{}").format(n) + (Markup(" ({})").format(listed) if listed else Markup(""))


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def count_rows(counts: Mapping[str, Any]) -> list[tuple[str, Markup]]:
    """The rows (label, HTML value) of "Records at each stage" on a run's index page.

    Manifest order, exclusions with their reasons next to the stage they left:
    title-abstract exclusions (from the PRISMA counts) after *screened*,
    full-text exclusions with ``excluded_full_text_reasons``.

    Parameters
    ----------
    counts : mapping
        The manifest's ``counts`` (see :func:`reviewlib.pipeline.stage_counts`).
    """
    rows: list[tuple[str, Markup]] = []
    pr = counts.get("prisma") or {}
    for key, value in counts.items():
        if key in ("prisma", "excluded_full_text_reasons"):
            continue
        if key == "excluded_full_text":
            rows.append((COUNT_LABELS[key], _with_reasons(value, counts.get("excluded_full_text_reasons"))))
        else:
            rows.append((COUNT_LABELS.get(key, key.replace("_", " ")), Markup("{}").format(_fmt(value))))
        if key == "screened" and pr.get("excluded_screening") is not None:
            rows.append(("excluded at title-abstract",
                         _with_reasons(pr["excluded_screening"], pr.get("excluded_screening_reasons"))))
    if pr.get("excluded_screening") is not None and "screened" not in counts:
        rows.append(("excluded at title-abstract",
                     _with_reasons(pr["excluded_screening"], pr.get("excluded_screening_reasons"))))
    return rows


def _num(value: Any, spec: str) -> str:
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "" if value is None else str(value)


def living_warning(living: Mapping[str, Any]) -> str | None:
    """The one-line warning of a manifest's living-review comparison, or None."""
    dropped = list(living.get("dropped_included") or [])
    if not dropped:
        return None
    return (f"{len(dropped)} included stud{'y' if len(dropped) == 1 else 'ies'} dropped out since run "
            f"{living.get('previous_run')}: {', '.join(map(str, dropped[:20]))}"
            + (" ..." if len(dropped) > 20 else "")
            + ". The causes are listed under 'Changes since the previous run'.")


def _changes_from_manifest(living: Mapping[str, Any]) -> Any:
    from .living import Changes
    fields = {k: living.get(k) for k in ("previous_run", "new", "gone", "dropped_included", "newly_included",
                                         "incremental", "dropped_causes")}
    defaults = {"previous_run": None, "incremental": None, "dropped_causes": {}}
    return Changes(**{k: v if v is not None else defaults.get(k, []) for k, v in fields.items()})


def _run_facts(manifest: Mapping[str, Any]) -> list[tuple[str, Any]]:
    search = manifest.get("search") or {}
    pm = manifest.get("pmids") or {}
    status = manifest.get("status", "unknown")
    proto = manifest.get("protocol") or {}
    facts: list[tuple[str, Any]] = [
        ("Run", manifest.get("run_id")),
        ("Status", Markup('<span class="status-{0}">{0}</span>').format(status)),
        ("Data", f"{manifest.get('data_label') or 'synthetic demo snapshot'} ({manifest.get('mode')})"
         if manifest.get("synthetic") else manifest.get("mode")),
        ("Started / finished (UTC)", f"{manifest.get('started_at')} / {manifest.get('finished_at')}"),
        ("Protocol", Markup("{}<br><small>sha256 {}</small>").format(proto.get("path"), proto.get("sha256"))),
    ]
    if manifest.get("kind") == "replication":
        sim = (manifest.get("replication") or {}).get("simulation") or {}
        facts += [
            ("Data source", manifest.get("data_source")),
            ("What ran", f"the published screening decisions replayed in reviewlib's prioritised order "
                         f"(simulation, model {sim.get('model')}, seed {sim.get('seed')}); no search was run"),
            ("WSS@95 / RRF@10", f"{_num(sim.get('wss95'), '.3f')} / {_num(sim.get('rrf10'), '.1f')}%"),
            ("Record set (OpenAlex ids)",
             Markup("{} screened, sha256 {}<br>{} included, sha256 {}").format(
                 pm.get("n_matched"), pm.get("matched_sha256"), pm.get("n_included"), pm.get("included_sha256"))),
        ]
    else:
        facts += [
            ("Query", Markup('<code class="query">{}</code>').format(manifest.get("query"))),
            ("NCBI's translation", Markup('<code class="query">{}</code>').format(
                search.get("translation") or "(none: offline)")),
            ("PMID set", Markup("{} matched, sha256 {}<br>{} included, sha256 {}").format(
                pm.get("n_matched"), pm.get("matched_sha256"), pm.get("n_included"), pm.get("included_sha256"))),
        ]
    facts.append(("reviewlib / git", f"{(manifest.get('versions') or {}).get('reviewlib')} / "
                                     f"{manifest.get('git_commit') or 'not a git checkout'}"))
    return facts


def write_index(path: str | Path, manifest: Mapping[str, Any], *, pages: Sequence[tuple[str, str]],
                figures: Sequence[str] = (), runs: Sequence[tuple[str, Mapping[str, Any]]] = (),
                changes: Any = None, captions: Mapping[str, str] | None = None,
                findings: Mapping[str, Any] | None = None) -> Path:
    """Write an ``index.html`` summarising a run (template ``index.html.j2``).

    Parameters
    ----------
    path : path-like
        The index file (in the run folder, or ``results/<review>/``).
    manifest : mapping
        The run's manifest (see :mod:`reviewlib.pipeline`).
    pages : sequence of (label, href)
        The run's pages, hrefs relative to ``path``.
    figures : sequence of str
        Key figures (PNG or SVG), hrefs relative to ``path``.
    runs : sequence of (href, manifest)
        Earlier runs to list (on the review's index).
    changes : reviewlib.report.living.Changes, optional
        The living-review comparison (default: the one the manifest records).
    captions : mapping, optional
        Figure captions by file stem (default: the manifest's ``figure_captions``).
    findings : mapping, optional
        The run's summary of findings (:func:`reviewlib.report.synthesis_report.load_summary`):
        the page opens with it and its gaps; the run's metadata comes last.
    """
    from .synthesis_report import SYNTHESIS_CSS

    path = Path(path)
    living = manifest.get("living") or {}
    title = manifest.get("title") or manifest.get("review") or "review"
    counts = manifest.get("counts") or {}
    captions = dict(captions if captions is not None else manifest.get("figure_captions") or {})
    figure_rows = [(href, captions.get(Path(href).stem) or Path(href).stem.replace("_", " ").replace("-", " "))
                   for href in figures]
    header = page_header(notice=manifest.get("notice"), nav=[("Index", "index.html")] + list(pages),
                         current="index.html", warning=living_warning(living))
    if changes is None and living:
        changes = _changes_from_manifest(living)
    text = _render("index.html.j2", m=manifest, title=title, css=INDEX_CSS + SYNTHESIS_CSS, header=Markup(header),
                   findings=findings,
                   run_facts=_run_facts(manifest), count_rows=count_rows(counts) if counts else [],
                   prisma_notes=(counts.get("prisma") or {}).get("notes") or [], changes_=changes,
                   pages=list(pages), figures=figure_rows, runs=list(runs))
    write_text(path, text)
    return path
