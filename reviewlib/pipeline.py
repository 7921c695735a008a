"""``reviewlib run``: a review's notebooks run with papermill, rendered to HTML, recorded in a manifest.

Layout
------
``reviews/<review>/review.sqlite``
    The review store (gitignored).  It is kept across runs so that screening
    decisions and extraction corrections accumulate; never delete it lightly.
``results/<review>/<run-id>/``
    One folder per run: the executed notebooks (``01-search.ipynb`` ...), their
    HTML pages without code, ``figures/``, ``pmids.json`` (matched and included
    PMIDs), ``index.html`` and, written last, ``manifest.json`` (``status``
    ``complete`` or ``failed``).  Generated output only: safe to delete.
``results/<review>/latest``
    A symlink to the newest *complete* run (or a file holding its name where
    symlinks are not available); ``results/<review>/index.html`` links it.

Replications
------------
A protocol with a ``screening_data`` section and no ``search.snapshot`` (e.g.
``meijboom-2021``) is a published review's screening replayed from its
labelled data: run offline, it executes ``notebooks/replicate-screening.ipynb``
(:func:`reviewlib.screening.simulation.replicate`) instead of the four notebooks, needs
no review store, and publishes the same way (page, ``index.html``,
``pmids.json`` holding OpenAlex work ids, ``replication.json``, then
``manifest.json``).  ``--online`` runs the protocol's PubMed query through the
four notebooks as for any review.

The notebooks run in ONE kernel by default (its imports are paid once); the
user namespace is reset between notebooks so that each one only sees what the
previous one wrote to the review store.  ``shared_kernel=False`` starts one
kernel per notebook (the benchmark compares the two).
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from . import __version__
from .report import living
from .report import notebook as report
from .report.synthesis_report import load_summary
from .screening import decisions
from .errors import ConfigError, InputError, PipelineError, ReviewlibError
from .protocol import Protocol, load_protocol
from .store import ReviewStore
from . import run_inputs, runstate, side_notebooks
from .parameters import check_values

logger = logging.getLogger(__name__)

NOTEBOOKS: tuple[str, ...] = ("01-search.ipynb", "02-screen.ipynb", "03-extract.ipynb", "04-report.ipynb")
#: Run after NOTEBOOKS when the protocol searches a trial register (a ``registry:`` section).
REGISTRY_NOTEBOOK = "05-registry.ipynb"
#: The notebook a replication protocol (``screening_data``, no snapshot) runs offline instead of NOTEBOOKS.
REPLICATION_NOTEBOOK = "replicate-screening.ipynb"
#: The replication's metrics and PRISMA counts, saved by the notebook for the manifest.
REPLICATION_FILE = "replication.json"
STORE_NAME = "review.sqlite"
DEMO_REVIEWER = "demo reviewer"
#: Parameters that must never be passed to a notebook: secrets come from the environment only.
FORBIDDEN_PARAMETERS = ("api_key", "ncbi_api_key", "apikey", "email", "ncbi_email", "password", "token")
#: Distributions whose versions go into the manifest.
VERSIONED = ("pandas", "numpy", "lxml", "biopython", "scikit-learn", "rapidfuzz", "matplotlib", "seaborn",
             "papermill", "nbconvert", "nbclient", "nbformat", "ipykernel", "itables", "pyyaml", "requests")
SECRET_ENV = ("NCBI_API_KEY",)
#: Parameters ``reviewlib run`` sets itself, and how to change them instead.
RESERVED_PARAMETERS = {
    "protocol": "give the protocol as the first argument", "review_dir": "use --reviews",
    "output_dir": "use --results", "run_name": "it is the run id", "offline": "use --offline or --online",
    "interactive": "runs are never interactive",
}
#: Key figures first on the index page.
#: Figures every review draws, first on the index; the protocol's ``report: figures`` follow in its order.
ENGINE_FIGURES = ["prisma", "recall_curve"]


def figure_order(protocol: Protocol) -> list[str]:
    """Figure names (file stems) in the order the index shows them: the engine's, then the protocol's."""
    declared = (protocol.section("report") or {}).get("figures") or []
    names = [str(f.get("name") if isinstance(f, dict) else f) for f in declared]
    names += [str(f.get("name")) for f in (protocol.section("report") or {}).get("registry_figures") or []
              if isinstance(f, dict)]
    return ENGINE_FIGURES + [n for n in names if n not in ENGINE_FIGURES]


# -- where things live ------------------------------------------------------------
def project_root(start: Path | None = None) -> Path:
    """The folder holding ``notebooks/`` (the checkout), searched upwards from ``start`` (cwd)."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "notebooks").is_dir() and ((folder / "pyproject.toml").is_file() or (folder / "reviews").is_dir()
                                                 or (folder / "results").is_dir()):
            return folder
    return start


def notebooks_dir() -> Path:
    """The folder of the review notebooks (``notebooks/`` of the checkout)."""
    for folder in (project_root() / "notebooks", Path(__file__).resolve().parent.parent / "notebooks"):
        if (folder / NOTEBOOKS[0]).is_file():
            return folder
    raise ConfigError("notebooks/01-search.ipynb not found: run reviewlib from a reviewlib checkout "
                      "or pass notebooks_dir")


def default_review_dir(review: str, reviews_dir: str | Path | None = None) -> Path:
    """``reviews/<review>/`` under the checkout (or ``reviews_dir``): where the review store lives."""
    return Path(reviews_dir or project_root() / "reviews") / review


class _RunFolders:
    """The folders of a run, derived from its ``output_dir`` (shared by the contexts below)."""

    output_dir: Path

    @property
    def figures_dir(self) -> Path:
        """``<output_dir>/figures``, created."""
        path = self.output_dir / "figures"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def results_root(self) -> Path:
        """``results/<review>/``: the folder holding this review's runs."""
        return self.output_dir.parent


@dataclass
class ReviewContext(_RunFolders):
    """What a notebook needs: the protocol, the open store and the folders.

    Attributes
    ----------
    protocol : Protocol
    store : ReviewStore
        ``<review_dir>/review.sqlite``.
    review_dir : pathlib.Path
    output_dir : pathlib.Path
        Where figures and tables of this run go (the run folder under ``reviewlib run``).
    run_name : str
        The run id, or ``'interactive'`` in JupyterLab.
    """

    protocol: Protocol
    store: ReviewStore
    review_dir: Path
    output_dir: Path
    run_name: str
    offline: bool = True

    @property
    def synthetic(self) -> bool:
        """True when this run reads the protocol's synthetic demo snapshot (offline)."""
        return bool(self.offline and self.protocol.synthetic)



def open_review(protocol: str | Path | None = None, *, review_dir: str | Path | None = None,
                output_dir: str | Path | None = None, run_name: str | None = None,
                offline: bool = True) -> ReviewContext:
    """Open a review for a notebook: load the protocol, open its store.

    Parameters
    ----------
    protocol : str or path-like, optional
        A protocol path or name (default: the embedded demo review).
    review_dir : path-like, optional
        Folder of the review store; default ``reviews/<review>/`` of the checkout.
    output_dir : path-like, optional
        Folder for this run's figures; default ``results/<review>/interactive/``.
    run_name : str, optional
        The run id; default ``'interactive'``.
    offline : bool
        Whether the run reads the protocol's snapshot (a synthetic one makes the
        run synthetic) or PubMed.
    """
    proto = load_protocol(protocol or None)
    rdir = Path(review_dir) if review_dir else default_review_dir(proto.name)
    odir = Path(output_dir) if output_dir else project_root() / "results" / proto.name / "interactive"
    odir.mkdir(parents=True, exist_ok=True)
    store = ReviewStore(rdir / STORE_NAME)
    return ReviewContext(protocol=proto, store=store, review_dir=rdir, output_dir=odir,
                         run_name=run_name or "interactive", offline=bool(offline))


# -- replications of published screening ------------------------------------------
def is_replication(protocol: Protocol, *, offline: bool = True) -> bool:
    """True when a run of ``protocol`` replays published screening data.

    That is: offline, a ``screening_data`` section, and no ``search.snapshot``
    (a protocol with a snapshot is an ordinary review run on it).
    """
    return bool(offline and isinstance(protocol.section("screening_data"), Mapping)
                and not protocol.search.get("snapshot"))


def run_notebooks(protocol: Protocol, *, offline: bool = True) -> tuple[str, ...]:
    """The notebooks a run of ``protocol`` executes, in order."""
    if is_replication(protocol, offline=offline):
        return (REPLICATION_NOTEBOOK,)
    return NOTEBOOKS + ((REGISTRY_NOTEBOOK,) if protocol.section("registry") else ())


@dataclass
class ReplicationContext(_RunFolders):
    """What the replication notebook needs: the protocol and where this run's output goes.

    Attributes
    ----------
    protocol : Protocol
        A protocol with a ``screening_data`` section.
    output_dir : pathlib.Path
        The run folder (``results/<review>/<run-id>/`` under ``reviewlib run``).
    run_name : str
        The run id, or ``'interactive'`` in JupyterLab.
    """

    protocol: Protocol
    output_dir: Path
    run_name: str

    @property
    def screening_data(self) -> dict[str, Any]:
        """The protocol's ``screening_data`` section."""
        return dict(self.protocol.section("screening_data") or {})

    @property
    def data_source(self) -> str:
        """Where the labelled records come from, with their licence (``screening_data.source``)."""
        return str(self.screening_data.get("source") or "screening_data of " + Path(self.protocol.path).name)

    @property
    def label_column(self) -> str:
        """The 0/1 column of the published decisions."""
        return str(self.screening_data.get("label_column", "label_included"))



def open_replication(protocol: str | Path | Protocol = "meijboom-2021", *, output_dir: str | Path | None = None,
                     run_name: str | None = None) -> ReplicationContext:
    """Open a replication for the replication notebook (no review store is needed).

    Parameters
    ----------
    protocol : str, path-like or Protocol
        A protocol with a ``screening_data`` section (default: Meijboom et al. 2021).
    output_dir : path-like, optional
        Folder for this run's figures and files; default ``results/<review>/interactive/``.
    run_name : str, optional
        The run id; default ``'interactive'``.

    Raises
    ------
    ConfigError
        If the protocol has no ``screening_data`` section.
    """
    proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    if not isinstance(proto.section("screening_data"), Mapping):
        raise ConfigError(f"protocol {proto.path} has no screening_data section: replicate-screening.ipynb "
                          "replays published screening data; run other reviews with reviewlib run")
    odir = Path(output_dir) if output_dir else project_root() / "results" / proto.name / "interactive"
    odir.mkdir(parents=True, exist_ok=True)
    return ReplicationContext(protocol=proto, output_dir=odir, run_name=run_name or "interactive")


def replication_sets(replication: Any, label_column: str = "label_included") -> living.RunSets:
    """The record set of a replication: OpenAlex work ids screened (after deduplication) and included.

    Records without an OpenAlex id are named by their record id.
    """
    records = replication.records
    ids = [str(oa) if isinstance(oa, str) and oa else str(rid) for oa, rid in
           zip(records["openalex_id"] if "openalex_id" in records else records["record_id"], records["record_id"])]
    included = [i for i, label in zip(ids, records[label_column]) if int(label) == 1]
    return living.RunSets(matched=sorted(ids), included=sorted(included))


def save_replication(ctx: ReplicationContext, replication: Any, counts: Any = None) -> None:
    """Save what the run's manifest needs: ``pmids.json`` (record set), ``counts.json``, ``replication.json``.

    Parameters
    ----------
    ctx : ReplicationContext
    replication : reviewlib.screening.simulation.Replication
    counts : reviewlib.report.prisma.PrismaCounts, optional
        The PRISMA counts drawn on the page (see :func:`reviewlib.report.notebook.replication_prisma`).

    Returns nothing (a notebook cell ending with it shows no path).
    """
    living.save_sets(ctx.output_dir, replication_sets(replication, ctx.label_column))
    if counts is not None:
        data = counts.to_dict() if hasattr(counts, "to_dict") else dict(counts)
        living.write_json(ctx.output_dir / living.COUNTS_FILE, _jsonable(data))
    summary = {"name": replication.name, "prisma": dict(replication.prisma),
               "simulation": replication.simulation.to_dict(curve=False),
               "data_source": ctx.data_source, "published": ctx.screening_data.get("published") or {},
               "record_ids": "OpenAlex work ids"}
    living.write_json(ctx.output_dir / REPLICATION_FILE, _jsonable(summary))


def replication_counts(saved: Mapping[str, Any], prisma_counts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The manifest's records-per-stage of a replication, from its ``replication.json`` (and ``counts.json``)."""
    p = saved.get("prisma") or {}
    counts: dict[str, Any] = {"identified": p.get("identified"), "duplicates_removed": p.get("duplicates_removed"),
                              "after_deduplication": p.get("screened"), "screened": p.get("screened"),
                              "included": p.get("included")}
    if prisma_counts is not None:
        counts["prisma"] = dict(prisma_counts)
    return counts


def search(ctx: ReviewContext, *, offline: bool = True, since: str | None = None,
           mindate: str | None = None, maxdate: str | None = None) -> Any:
    """Run the protocol's search into the store and register it as this run's search.

    Parameters
    ----------
    ctx : ReviewContext
        From :func:`open_review`.
    offline : bool
        Load the protocol's snapshot instead of querying PubMed.
    since : str, optional
        Living update (online): only records PubMed added since this date
        (``YYYY/MM/DD``, Entrez date), merged with the previous run's records.
    mindate, maxdate : str, optional
        Override the protocol's publication-date range.

    Returns
    -------
    reviewlib.retrieval.fetch.SearchResult
    """
    from .retrieval import fetch
    result = fetch.run_search(ctx.protocol, ctx.store, offline=offline, mindate=mindate, maxdate=maxdate,
                              since=since if not offline else None)
    living.register_search(ctx.store, ctx.run_name, result.search_id, since=since if not offline else None)
    return result


def search_registry(ctx: ReviewContext, *, offline: bool = True) -> Any:
    """Run the protocol's ``registry:`` search (ClinicalTrials.gov) and register it as part of this run.

    Offline the section's snapshot is loaded, online its query is fetched
    (:func:`reviewlib.retrieval.registry.run_registry_search`); the trials are also
    added to the records table (:func:`reviewlib.sources.ctgov.registry_records`, record
    id ``nct:NCT...``) so that they are deduplicated, screened and counted (PRISMA's
    "Registers") like every other record.

    Returns
    -------
    reviewlib.retrieval.fetch.SearchResult or None
        None when the protocol has no ``registry:`` section.
    """
    from .retrieval.registry import run_registry_search
    from .sources.ctgov import registry_records
    result = run_registry_search(ctx.protocol, ctx.store, offline=offline)
    if result is None:
        return None
    ctx.store.add_records(registry_records(ctx.store.trials(result.search_id)), search_id=result.search_id)
    living.register_search(ctx.store, ctx.run_name, result.search_id)
    return result


def demo_decisions(protocol: Protocol, stage: str = "title-abstract") -> Any:
    """The scripted demo reviewer's decisions at ``stage``: the CSV the protocol names at ``demo: decisions``.

    Returns
    -------
    pandas.DataFrame
        record_id, decision, reason (empty for includes).

    Raises
    ------
    ConfigError
        The protocol names no such file.
    InputError
        The file lacks a column, or ``stage`` is not a screening stage.
    """
    import pandas as pd
    decisions._check_stage(stage)
    path = protocol.demo_decisions_path()
    if path is None:
        raise ConfigError(f"protocol {protocol.path} names no demo decisions (demo: decisions): add the file "
                          "the scripted reviewer's decisions are in, or screen the records yourself in 02-screen")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"record_id", "stage", "decision", "reason"} - set(frame.columns)
    if missing:
        raise InputError(f"demo decisions {path} lack column(s) {', '.join(sorted(missing))}: regenerate them "
                         "with 'python -m reviewlib.demo.snapshot'", source=str(path))
    return frame.loc[frame["stage"] == stage, ["record_id", "decision", "reason"]].reset_index(drop=True)


def record_demo_decisions(ctx: ReviewContext, records: Any = None, reviewer: str = DEMO_REVIEWER,
                          stage: str = "title-abstract") -> int:
    """Record the synthetic demo reviewer's decisions at ``stage`` (offline demo snapshot only).

    Only decisions the demo reviewer has not already made (same record,
    stage and decision) are appended, so reruns do not grow the history, and
    only for records in ``records`` (when given).  A real person's decisions
    are never touched: these are stored under ``reviewer``.

    The decisions are data: the CSV the protocol names at ``demo: decisions``
    (:func:`demo_decisions`).  At ``'full-text'`` only the reports the review
    includes at title-abstract are assessed.

    Parameters
    ----------
    ctx : ReviewContext
        An offline review of a protocol whose snapshot is synthetic.
    records : pandas.DataFrame, optional
        The records to decide (``record_id`` column); all demo decisions otherwise.
    reviewer : str
        The name the decisions are stored under.
    stage : {'title-abstract', 'full-text'}
        The screening stage.

    Returns
    -------
    int
        The number of decisions appended.

    Raises
    ------
    ConfigError
        If the review does not run on the synthetic demo snapshot.
    InputError
        If ``stage`` is not a screening stage.
    """
    if not ctx.synthetic:
        raise ConfigError(f"review {ctx.protocol.name} is not running on the synthetic demo snapshot: demo "
                          "decisions are only for the demo; screen the records yourself in 02-screen")
    store = ctx.store
    frame = demo_decisions(ctx.protocol, stage)
    wanted = None if records is None else set(records["record_id"])
    if stage == decisions.FULL_TEXT:  # full text is read only for the reports included at title-abstract
        sought = set(decisions.included(store, decisions.TITLE_ABSTRACT))
        wanted = sought if wanted is None else wanted & sought
    current = {(r["record_id"], r["decision"]) for r in store.connection.execute(
        "SELECT record_id, decision FROM decisions d WHERE reviewer=? AND stage=? AND decision_id = "
        "(SELECT MAX(decision_id) FROM decisions WHERE record_id=d.record_id AND reviewer=d.reviewer "
        "AND stage=d.stage)", (reviewer, stage))}
    n = 0
    for row in frame.itertuples(index=False):
        record_id = row.record_id
        if wanted is not None and record_id not in wanted:
            continue
        if (record_id, row.decision) in current:
            continue
        reason = row.reason if isinstance(row.reason, str) and row.reason else None
        decisions.record_decision(store, record_id, reviewer, row.decision, stage=stage, reason=reason,
                                  note="synthetic demo reviewer (scripted)")
        n += 1
    logger.info("demo reviewer: %d new %s decisions", n, stage)
    return n


# -- the run -----------------------------------------------------------------------
def incremental_since(previous: Mapping[str, Any] | None, protocol: Protocol, *, offline: bool,
                      full_search: bool = False) -> str | None:
    """The date an online rerun fetches from, or None for a full search.

    Incremental only when online, not forced full, and the previous complete
    run was online with the same protocol (same hash): a changed query or date
    range needs a full search.
    """
    if offline or full_search or not previous:
        return None
    if previous.get("mode") != "online" or previous.get("protocol", {}).get("sha256") != protocol.sha256:
        return None
    return living.since_date(previous) or None


@dataclass
class RunResult:
    """A finished run: its folder, manifest and pages."""

    run_dir: Path
    manifest: dict[str, Any]
    index: Path
    pages: list[Path] = field(default_factory=list)
    #: True when nothing ran: the newest complete run read the same inputs (``run_inputs``), so it is current.
    current: bool = False

    @property
    def changes(self) -> dict[str, Any]:
        """The living-review comparison recorded in the manifest."""
        return self.manifest.get("living", {})


def parse_parameters(pairs: list[list[str]] | None) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs to a dict; values read as YAML scalars (``true``, ``42``, ``null``)."""
    import yaml
    out: dict[str, Any] = {}
    for name, value in pairs or []:
        try:
            parsed = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, (dict, list)) or parsed is None and value not in ("null", "None", "~"):
            parsed = value
        out[name] = parsed
    return out


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names (and literal defaults) assigned in a notebook's ``parameters`` cell.

    Reads the notebook as plain JSON (no nbformat validation: this runs before every run).
    """
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"notebook {path} cannot be read ({exc}): restore it from git") from exc
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            names = {}
            for node in ast.parse(source).body:
                if isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        if isinstance(t, ast.Name):
                            try:
                                names[t.id] = ast.literal_eval(node.value)
                            except (ValueError, SyntaxError):
                                names[t.id] = None
            return names
    raise ConfigError(f"notebook {path} has no cell tagged 'parameters': tag its first code cell 'parameters'")


def _skip_slow_imports() -> None:
    """Keep jsonschema from importing ``rfc3987_syntax`` in this process.

    jsonschema imports it (if installed, as jupyter-events' extras do) only for
    its optional "iri" format checker, and it builds a Lark grammar at import
    time: 2-5 s of every ``reviewlib run`` on 2 cores.  nbformat's notebook
    validation never checks IRI formats; jsonschema skips the checker when the
    import fails (``suppress(ImportError)``).
    """
    if "jsonschema" not in sys.modules and "rfc3987_syntax" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]


def _check_parameters(user: Mapping[str, Any], known: set[str]) -> None:
    for name in user:
        low = name.lower()
        if any(bad in low for bad in FORBIDDEN_PARAMETERS):
            raise ConfigError(f"parameter {name!r} looks like a secret: set NCBI_API_KEY / NCBI_EMAIL in the "
                              "environment instead; they are never written to notebooks or results")
        if name in RESERVED_PARAMETERS:
            raise ConfigError(f"parameter {name!r} is set by reviewlib run: {RESERVED_PARAMETERS[name]}")
        if name not in known:
            raise ConfigError(f"unknown parameter {name!r}: the notebooks take "
                              f"{', '.join(sorted(known - set(RESERVED_PARAMETERS)))}")


def _new_run_id(results_root: Path, now: datetime) -> str:
    base = now.strftime("%Y%m%dT%H%M%SZ")
    run_id, n = base, 1
    while (results_root / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def _git_commit(root: Path) -> tuple[str | None, bool | None]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return None, None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def package_versions() -> dict[str, str]:
    """Versions of reviewlib, Python and the packages a run depends on."""
    from importlib import metadata
    out = {"reviewlib": __version__, "python": platform.python_version()}
    for dist in VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _point_latest(results_root: Path, run_dir: Path) -> Path:
    """Make ``results/<review>/latest`` point at ``run_dir`` atomically (symlink, else a file)."""
    latest = results_root / "latest"
    tmp = results_root / f".latest.{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(run_dir.name, tmp, target_is_directory=True)
        if latest.is_dir() and not latest.is_symlink():
            shutil.rmtree(latest)
        os.replace(tmp, latest)
    except OSError:
        logger.debug("symlinks unavailable; writing %s as a file", latest)
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.write_text(run_dir.name + "\n", encoding="utf-8")
        os.replace(tmp, latest)
    return latest


def latest_run(results_root: str | Path) -> Path | None:
    """The run folder ``results/<review>/latest`` points to (symlink or file), or None."""
    latest = Path(results_root) / "latest"
    if latest.is_symlink() or latest.is_dir():
        return latest.resolve()
    if latest.is_file():
        return Path(results_root) / latest.read_text(encoding="utf-8").strip()
    return None


class _QuietNoise(logging.Filter):
    """Drop two harmless messages that would bury the run's log: zmq clean-up and image alt text."""

    NOISE = ("Could not destroy zmq context", "Alternative text is missing")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.NOISE)


for _name in ("traitlets", "papermill", "nbconvert"):
    logging.getLogger(_name).addFilter(_QuietNoise())


#: A shared kernel holding more than this after a notebook (MB, ``REVIEWLIB_KERNEL_RESTART_MB``) is restarted
#: for the next one instead of reset: memory a big review's notebook freed stays in the kernel's heap
#: (at 100,000 records notebook 01 left 0.9 GB resident and 02 1.9 GB), and the next notebook's peak would add to it.
DEFAULT_KERNEL_RESTART_MB = 512


def kernel_restart_mb() -> float:
    """The shared kernel's memory (MB) above which it is restarted between notebooks."""
    value = os.environ.get("REVIEWLIB_KERNEL_RESTART_MB", "").strip()
    if not value:
        return DEFAULT_KERNEL_RESTART_MB
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0:
        raise ConfigError(f"REVIEWLIB_KERNEL_RESTART_MB={value!r} must be a positive number of megabytes: "
                          f"unset it or give e.g. {DEFAULT_KERNEL_RESTART_MB}")
    return number


class _Kernel:
    """One kernel shared by the notebooks of a run (or none: papermill starts one per notebook)."""

    def __init__(self, shared: bool, kernel_name: str):
        self.km = None
        self.kernel_name = kernel_name
        if shared:
            self.km = self._manager()

    def _manager(self) -> Any:
        from jupyter_client.manager import AsyncKernelManager
        return AsyncKernelManager(kernel_name=self.kernel_name, transport="ipc",
                                  ip=str(Path(tempfile.mkdtemp(prefix="reviewlib-kernel-")) / "k"))

    def _run_code(self, code: str) -> list[dict]:
        """Run ``code`` as one cell in the shared kernel; its outputs (nothing without a running kernel)."""
        if self.km is None or not self.km.has_kernel:
            return []
        import nbformat
        from nbclient import NotebookClient
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        NotebookClient(nb, km=self.km, kernel_name=self.kernel_name, timeout=60).execute()
        return list(nb.cells[0].get("outputs", []))

    #: Clears the user namespace (modules stay imported), closes figures, collects and gives the freed memory
    #: back to the system (see :meth:`reset`).
    _RESET = ("get_ipython().run_line_magic('reset', '-f')\n"
              "import matplotlib.pyplot as _plt; _plt.close('all'); del _plt\n"
              "import gc as _gc; _gc.collect(); del _gc\n"
              "from reviewlib.gcpause import release_free_memory as _release\n"
              "_release(); del _release\n")
    #: Prints the kernel's resident and peak memory (MB) as JSON.
    _MEMORY = ("def _mem():\n"
               "    try:\n"
               "        f = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
               "        return {'rss_mb': int(f['VmRSS'].split()[0]) / 1024, 'peak_mb': int(f['VmHWM'].split()[0]) / 1024}\n"
               "    except (OSError, KeyError, ValueError):\n"
               "        return {}\n"
               "print(__import__('json').dumps(_mem())); del _mem")

    def reset(self) -> dict[str, float]:
        """Clear the user namespace (modules stay imported), so notebooks only share the store; then
        give the freed memory back to the system.  Returns :meth:`memory` after it (one round trip).

        glibc keeps what a big notebook freed in its heap (at 100,000 records notebook 01's kernel
        still held 676 MB after the reset and a full collection); ``malloc_trim(0)`` returns the free
        pages (182 MB left, in 0.1 s; :func:`reviewlib.gcpause.release_free_memory`), so the next notebook
        reuses the kernel, with its imports, instead of a fresh one (:func:`kernel_restart_mb`).
        """
        return self.memory(reset=True)

    def memory(self, reset: bool = False) -> dict[str, float]:
        """The shared kernel's resident and peak memory (MB, from /proc), or {} where it can't be read;
        ``reset``: after :meth:`reset`, in the same cell."""
        try:
            outputs = self._run_code((self._RESET if reset else "") + self._MEMORY)
        except Exception as exc:  # memory is a measurement, never a reason to fail a run
            if reset:
                raise
            logger.debug("kernel memory: %s", exc)
            return {}
        try:
            text = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
            return {k: round(float(v), 1) for k, v in json.loads(text or "{}").items()}
        except (ValueError, TypeError) as exc:
            logger.debug("kernel memory: %s", exc)
            return {}

    def restart(self) -> None:
        """Stop the kernel; the next notebook starts a fresh one (its imports paid again)."""
        if self.km is not None:
            self.shutdown()
            self.km = self._manager()   # a shut-down manager's sockets are closed for good

    def shutdown(self) -> None:
        if self.km is not None and self.km.has_kernel:
            from jupyter_core.utils import run_sync
            try:
                run_sync(self.km.shutdown_kernel)(now=True)
            except Exception as exc:  # a kernel that is already gone
                logger.debug("kernel shutdown: %s", exc)


def _execute(kernel: _Kernel, source: Path, target: Path, parameters: dict[str, Any], cwd: Path,
             timeout: int) -> None:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    kwargs: dict[str, Any] = {}
    if kernel.km is not None:
        kwargs["km"] = kernel.km
    try:
        # written once at the end, or with the failing cell's error when a cell fails: saving after every cell
        # re-encoded the whole notebook (pure-Python JSON with indent) twice per cell, megabytes at 100k records
        pm.execute_notebook(str(source), str(target), parameters=parameters, kernel_name=kernel.kernel_name,
                            progress_bar=False, cwd=str(cwd), execution_timeout=timeout,
                            request_save_on_cell_execute=False, **kwargs)
    except PapermillExecutionError as exc:
        first = next((line for line in (exc.source or "").splitlines() if line.strip()), "")
        evalue = " ".join(str(exc.evalue).split())
        index, total = _source_cell(source, exc.source, exc.cell_index)
        raise PipelineError(f"notebook {source.name} failed in cell {index + 1} of {total} ({first[:80]!r}): "
                            f"{exc.ename}: {evalue}; the partly executed notebook is {target}",
                            notebook=source.name, cell=index, ename=exc.ename,
                            evalue=str(exc.evalue)) from exc
    except ReviewlibError:
        raise
    except Exception as exc:
        raise PipelineError(f"notebook {source.name} could not be executed: {type(exc).__name__}: {exc}",
                            notebook=source.name, ename=type(exc).__name__, evalue=str(exc)) from exc


def _source_cell(notebook: Path, code: str | None, fallback: int) -> tuple[int, int]:
    """(0-based index, number of cells) of the cell holding ``code`` in the notebook as written.

    papermill's index counts the cell it injects for the parameters; the
    reader needs the position in the notebook they open in JupyterLab.
    """
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, json.JSONDecodeError):
        return fallback, 0
    sources = ["".join(c.get("source", "")) if isinstance(c.get("source"), list) else c.get("source", "")
               for c in cells]
    for i, text in enumerate(sources):
        if code is not None and text.strip() == code.strip():
            return i, len(cells)
    return fallback, len(cells)


def _search_facts(store: ReviewStore, run_id: str) -> dict[str, Any]:
    ids = living.run_search_ids(store, run_id)
    if not ids:
        return {}
    rows = store.searches()
    rows = rows[rows["search_id"].isin(ids)]
    import pandas as pd
    from .retrieval.registry import REGISTER_SOURCES
    registers = rows[rows["source"].isin(REGISTER_SOURCES)]
    if len(registers) < len(rows):      # the manifest's query facts are the database search's
        rows = rows[~rows["source"].isin(REGISTER_SOURCES)]
    last = rows.iloc[-1]
    registry = ({"search_id": int(registers.iloc[-1]["search_id"]), "source": registers.iloc[-1]["source"],
                 "translation": registers.iloc[-1]["translation"],
                 "count": None if pd.isna(registers.iloc[-1]["count"]) else int(registers.iloc[-1]["count"])}
                if len(registers) else None)
    return {"registry": _jsonable(registry),"search_ids": [int(i) for i in ids], "source": last["source"],
            "translation": last["translation"], "count": None if last["count"] is None else int(last["count"]),
            "mindate": last["mindate"], "maxdate": last["maxdate"], "datetype": last["datetype"],
            "warnings": [w for ws in rows["warnings"] for w in ws], "status": last["status"]}


def stage_counts(store: ReviewStore, run_id: str, search: Mapping[str, Any], sets: living.RunSets,
                 prisma_counts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The number of records at each stage of a run, with the PRISMA counts (``prisma_counts`` if given).

    ``included_title_abstract`` (reports sought), ``assessed_full_text``,
    ``excluded_full_text`` and ``excluded_full_text_reasons`` (reason key ->
    reports) describe the full-text stage (:func:`reviewlib.report.living.full_text_assessment`);
    ``final_stage`` says which stage's decisions make ``included``
    (:func:`reviewlib.screening.decisions.final_stage`).
    """
    counts: dict[str, Any] = {"identified": search.get("count"), "retrieved": len(sets.matched)}
    if search.get("registry"):       # trials found in registers (ClinicalTrials.gov), beside the database count
        counts["identified_registers"] = search["registry"].get("count")
    try:
        from .screening import dedup
        saved = dedup.saved_counts(store)   # the counts only: loading the result decoded every record
        if saved is not None:
            counts["duplicates_removed"], counts["after_deduplication"] = saved
    except ImportError:
        pass
    matched = {f"pmid:{p}" if p.isdigit() else p for p in sets.matched}
    try:
        current = decisions.current_decisions(store, stage="title-abstract")
        current = current[current["record_id"].isin(matched)]
        counts["screened"] = int(current["record_id"].nunique())
    except ImportError:
        pass
    full_text = living.full_text_assessment(store, matched)
    counts.update(included_title_abstract=full_text.sought, assessed_full_text=full_text.assessed,
                  excluded_full_text=full_text.excluded, excluded_full_text_reasons=full_text.reasons,
                  final_stage=full_text.stage)
    counts["included"] = len(sets.included)
    try:
        from .evidence import extraction
        ids = extraction.extracted_record_ids(store)   # the ids only: current_values built every value
    except ImportError:
        ids = None
    if ids:
        inc = {f"pmid:{p}" for p in sets.included} | set(sets.included)
        counts["extracted"] = len(ids & inc)
    if prisma_counts is not None:
        counts["prisma"] = dict(prisma_counts)
        return counts
    try:
        found = living.run_prisma_counts(store, run_id)
        counts["prisma"] = dataclasses.asdict(found) if dataclasses.is_dataclass(found) else found
    except (ImportError, ReviewlibError) as exc:
        logger.warning("no PRISMA counts: %s", exc)
    return counts


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        if isinstance(value, Mapping):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set)):
            return [_jsonable(v) for v in value]
        if hasattr(value, "item"):
            return value.item()
        return str(value)


def run_review(protocol: str | Path | None = None, *, offline: bool = True, parameters: Mapping[str, Any] | None = None,
               results_dir: str | Path | None = None, reviews_dir: str | Path | None = None,
               review_dir: str | Path | None = None, notebooks: str | Path | None = None,
               shared_kernel: bool = True, full_search: bool = False, kernel_name: str = "python3",
               timeout: int = 1800, render: bool = True, force: bool = False) -> RunResult:
    """Run a review's notebooks in order and publish the run.

    Five steps, each a function of its own: :func:`prepare_run` (check the
    protocol, notebooks and parameters; make the run folder and the manifest
    that says ``running``), :func:`execute_run` (the notebooks, in one kernel),
    :func:`publish_run` (sets, counts, the living-review comparison, HTML pages,
    the review's staged index; secrets scrubbed), :func:`record_run` (the
    manifest, written last: from then on the run is complete) and
    :func:`point_latest` (``latest`` and the review's index move to the run).
    A failure in any step leaves the run marked ``failed`` (:func:`mark_failed`).

    A replication protocol (``screening_data``, no snapshot; see
    :func:`is_replication`) runs ``replicate-screening.ipynb`` offline instead
    of the four notebooks and needs no review store.

    Parameters
    ----------
    protocol : str or path-like, optional
        Protocol name or path (default: the embedded demo review).
    offline : bool
        True: the protocol's snapshot; False: PubMed (NCBI_EMAIL, optionally
        NCBI_API_KEY, from the environment).
    parameters : mapping, optional
        Notebook parameters overriding the defaults (``-p NAME VALUE``).
    results_dir : path-like, optional
        Default ``results/`` of the checkout; the run goes to ``<results_dir>/<review>/<run-id>/``.
    reviews_dir, review_dir : path-like, optional
        Where the review store lives: ``<reviews_dir>/<review>/`` or exactly ``review_dir``
        (default ``reviews/<review>/``).
    notebooks : path-like, optional
        Folder of the notebooks (default ``notebooks/`` of the checkout).
    shared_kernel : bool
        One kernel for all notebooks (default) or one per notebook.
    full_search : bool
        Online: search the whole date range even if a previous run exists
        (otherwise only records added since the previous run are fetched).
    render : bool
        Render HTML pages and index (the benchmark can turn it off).
    force : bool
        Run even when nothing changed.  By default an offline run whose inputs (protocol and the
        files it names, notebooks, reviewlib's code, library versions, parameters, the review store's
        bytes: :func:`reviewlib.run_inputs.fingerprint`) equal those of the newest complete run makes
        no new run and returns that one, ``current=True``.

    Returns
    -------
    RunResult

    Raises
    ------
    PipelineError
        A notebook failed: names the notebook and cell; the partly executed
        notebook is in the run folder, whose manifest says ``failed``.
    ConfigError
        A secret given as a parameter, an unknown parameter, or a missing notebook.
    """
    plan = prepare_run(protocol, offline=offline, parameters=parameters, results_dir=results_dir,
                       reviews_dir=reviews_dir, review_dir=review_dir, notebooks=notebooks,
                       shared_kernel=shared_kernel, full_search=full_search, render=render, force=force)
    if plan.current is not None:
        return current_result(plan.current)
    timings = execute_run(plan, kernel_name=kernel_name, timeout=timeout)
    result = publish_run(plan, timings)
    record_run(plan)
    point_latest(plan)
    return result


@dataclass
class RunPlan:
    """What :func:`prepare_run` settled for a run; the later steps read and fill it."""

    protocol: Protocol
    notebook_dir: Path
    sources: list[Path]
    declared: dict[str, set[str]]
    known: set[str]
    parameters: dict[str, Any]
    replication: bool
    results_root: Path
    review_dir: Path
    run_id: str
    run_dir: Path
    previous: tuple[Path, dict] | None
    since: str | None
    manifest: dict[str, Any]
    render: bool = True
    started: float = field(default_factory=time.perf_counter)
    lock: Any = None  # runstate.RunLock, released when the run is recorded or marked failed
    #: What the run reads (run_inputs.fingerprint without the store, added as the run left it), for the manifest.
    inputs: dict[str, Any] | None = None
    #: Set instead of a new run folder when the newest complete run read the same inputs (nothing to do).
    current: Path | None = None
    #: The last row of each table a reviewer writes to, as the notebooks began (run_inputs.reviewer_marks).
    reviewer_marks: dict[str, int] | None = None
    #: Pages rendered while the later notebooks ran (report.pages_ahead.PagesAhead), written by publish_run.
    pages_ahead: Any = None

    @property
    def secrets(self) -> list[str | None]:
        """The secret values to scrub from every output file (from the environment, never parameters)."""
        return [os.environ.get(name) for name in SECRET_ENV]


def prepare_run(protocol: str | Path | None = None, *, offline: bool = True,
                parameters: Mapping[str, Any] | None = None, results_dir: str | Path | None = None,
                reviews_dir: str | Path | None = None, review_dir: str | Path | None = None,
                notebooks: str | Path | None = None, shared_kernel: bool = True, full_search: bool = False,
                render: bool = True, force: bool = False) -> RunPlan:
    """Step 1 of :func:`run_review`: check everything, then make the run folder and its first manifest.

    Nothing is written before the protocol, the notebooks and the parameters
    are known to be good.  The manifest written here says ``running``, so a
    folder left by a killed run is never taken for a complete one.  Unless
    ``force``, an offline run that would read what the newest complete run read
    makes no folder: the plan's ``current`` names that run.
    """
    started = datetime.now(timezone.utc)
    _skip_slow_imports()
    proto = load_protocol(protocol)
    nb_dir = Path(notebooks) if notebooks else notebooks_dir()
    replication = is_replication(proto, offline=offline)
    names = run_notebooks(proto, offline=offline)
    sources = [nb_dir / name for name in names]
    for src in sources:
        if not src.is_file():
            raise ConfigError(f"notebook {src} not found: the pipeline needs {', '.join(names)} in {nb_dir}")
    declared = {src.name: set(notebook_parameters(src)) for src in sources}
    known: set[str] = set().union(*declared.values())
    user = dict(parameters or {})
    _check_parameters(user, known)
    defaults = {k: v for src in sources for k, v in notebook_parameters(src).items()}
    user = check_values(user, defaults)  # -p seed seven, -p mindate yesterday: refused before any notebook

    results_root = Path(results_dir or project_root() / "results") / proto.name
    results_root.mkdir(parents=True, exist_ok=True)
    rdir = Path(review_dir) if review_dir else default_review_dir(proto.name, reviews_dir)
    inputs = run_inputs.fingerprint(proto, sources, dict(user, review_dir=str(rdir.resolve())), None,
                                    offline=offline, versions=package_versions())   # the store: when recorded
    current = None if force else run_inputs.current_run(results_root, inputs, rdir / STORE_NAME)
    if current is not None:
        logger.info("run %s of %s read the same inputs (snapshot, protocol, notebooks, code, parameters, store): "
                    "it is current, nothing to run", current.name, proto.name)
        return RunPlan(protocol=proto, notebook_dir=nb_dir, sources=sources, declared=declared, known=known,
                       parameters=user, replication=replication, results_root=results_root, review_dir=rdir,
                       run_id=current.name, run_dir=current, previous=None, since=None, manifest={},
                       render=render, inputs=inputs, current=current)
    run_id = _new_run_id(results_root, started)
    run_dir = results_root / run_id
    runstate.mark_stale_runs(results_root)  # folders left 'running' by killed runs become 'interrupted'
    run_dir.mkdir(parents=True)
    lock = runstate.begin(run_dir)  # held while this process runs; reserves the failure marker's space
    previous = living.previous_run(results_root, exclude=run_id)
    since = incremental_since(previous[1] if previous else None, proto, offline=offline, full_search=full_search)
    base = {"protocol": str(proto.path), "review_dir": str(rdir.resolve()), "output_dir": str(run_dir.resolve()),
            "run_name": run_id, "offline": bool(offline), "since": since, "interactive": False}
    base.update(user)
    logger.info("run %s of %s (%s%s) -> %s", run_id, proto.name, "offline" if offline else "online",
                f", since {since}" if since else "", run_dir)
    manifest = _first_manifest(proto, run_id, base, known, offline=offline, replication=replication,
                               since=since, shared_kernel=shared_kernel, started=started, nb_dir=nb_dir)
    plan = RunPlan(protocol=proto, notebook_dir=nb_dir, sources=sources, declared=declared, known=known,
                   parameters=base, replication=replication, results_root=results_root, review_dir=rdir,
                   run_id=run_id, run_dir=run_dir, previous=previous, since=since, manifest=manifest,
                   render=render, lock=lock, inputs=inputs)
    living.write_json(run_dir / living.MANIFEST_FILE, _jsonable(manifest))
    return plan


def _first_manifest(proto: Protocol, run_id: str, base: Mapping[str, Any], known: set[str], *, offline: bool,
                    replication: bool, since: str | None, shared_kernel: bool, started: datetime,
                    nb_dir: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "schema": 1, "status": "running", "review": proto.name, "title": proto.title,
        "kind": "replication" if replication else "review",
        "question": " ".join(str(proto.raw.get("question") or "").split()), "run_id": run_id,
        "protocol": {"path": str(proto.path), "sha256": proto.sha256},
        "mode": "offline" if offline else "online", "synthetic": bool(offline and proto.synthetic),
        "notice": report.synthetic_notice(proto) if offline else None,
        "registry_notice": report.registry_notice(proto, offline=offline),
        "query": proto.query,
        "parameters": _jsonable({k: v for k, v in base.items() if not replication or k in known}),
        "incremental": since is not None, "since": since,
        "kernel": "shared" if shared_kernel else "per-notebook",
        "versions": package_versions(), "started_at": started.isoformat(timespec="seconds"),
    }
    if replication:
        section = proto.section("screening_data") or {}
        manifest["data_source"] = str(section.get("source") or f"screening_data of {Path(proto.path).name}")
        manifest["query"] = None  # the replication replays the published screening; no search is run
    manifest["git_commit"], manifest["git_dirty"] = _git_commit(nb_dir.parent)
    return manifest


def mark_failed(plan: RunPlan, error: Mapping[str, Any], timings: list[dict[str, Any]] | None = None) -> None:
    """Write the run's manifest as ``failed`` with ``error`` and scrub secrets from the run folder.

    The small failure marker goes first, into space reserved when the run began, so a full disk
    still leaves the run marked failed; a notebook the disk cut short is renamed ``*.ipynb.truncated``.
    """
    runstate.mark_failed_small(plan.run_dir, error)
    runstate.set_aside_truncated(plan.run_dir)
    try:
        report.scrub_secrets(plan.run_dir, plan.secrets)
        plan.manifest.update(status="failed", error=dict(error),
                             finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        if timings is not None:
            plan.manifest["notebooks"] = timings
        living.write_json(plan.run_dir / living.MANIFEST_FILE, _jsonable(plan.manifest))
        report.scrub_secrets(plan.run_dir, plan.secrets)
    except OSError as exc:  # full disk: the marker above already says failed
        logger.warning("run %s: the failed manifest could not be written (%s); its failure marker says failed",
                       plan.run_id, exc)
    finally:
        if plan.lock is not None:
            plan.lock.release()


def execute_run(plan: RunPlan, *, kernel_name: str = "python3", timeout: int = 1800) -> list[dict[str, Any]]:
    """Step 2 of :func:`run_review`: execute the notebooks in order (one shared kernel, reset between them).

    Returns
    -------
    list of dict
        ``{"notebook", "seconds"}`` per notebook, with the shared kernel's ``rss_mb`` and ``peak_mb``
        after it (where /proc can be read), and ``fresh_kernel`` when the kernel was restarted before
        it because it held more than :func:`kernel_restart_mb` (``peak_mb`` then starts anew).

    Raises
    ------
    PipelineError
        A notebook failed; the run is marked failed and the partly executed notebook kept.
    """
    if plan.current is not None:
        raise PipelineError(f"run {plan.current.name} is current (nothing changed): there is no new run to execute; "
                            "prepare the run with force=True to run again")
    timings: list[dict[str, Any]] = []
    if not plan.replication:
        plan.reviewer_marks = run_inputs.reviewer_marks(plan.review_dir / STORE_NAME)
    shared = plan.manifest.get("kernel") == "shared"
    kernel = _Kernel(shared, kernel_name)
    restart_mb = kernel_restart_mb()
    beside = _side_notebooks(plan.sources)
    beside_names = {p.name for later in beside.values() for p in later}
    main_line = [src for src in plan.sources if src.name not in beside_names]
    side: dict[str, side_notebooks.SideRun] = {}
    if plan.render:
        from .report.pages_ahead import PagesAhead
        plan.pages_ahead = PagesAhead()
    try:
        for src in plan.sources:
            if src.name in side:
                continue                       # running beside, in its own process
            fresh = False
            if timings and timings[-1].get("rss_mb", 0) > restart_mb:
                logger.info("  the kernel holds %.0f MB after %s: a fresh kernel for %s", timings[-1]["rss_mb"],
                            timings[-1]["notebook"], src.name)
                kernel.restart()
                fresh = True
            t = time.perf_counter()
            logger.info("  %s ...", src.name)
            _execute(kernel, src, plan.run_dir / src.name, _parameters_of(plan, src), plan.notebook_dir, timeout)
            seconds = round(time.perf_counter() - t, 2)
            # reset before measuring (what the next notebook would start from), unless none comes next
            memory = kernel.memory(reset=src != main_line[-1])
            timings.append({"notebook": src.name, "seconds": seconds, **memory,
                            **({"fresh_kernel": True} if fresh else {})})
            _render_ahead(plan, src)
            for later in beside.get(src.stem, []):
                logger.info("  %s ... (beside the notebooks after %s)", later.name, src.name)
                side[later.name] = side_notebooks.SideRun(
                    later, plan.run_dir / later.name, _parameters_of(plan, later), plan.notebook_dir,
                    timeout=timeout, kernel_name=kernel_name, shared_kernel=shared, beside=src.name)
        kernel.shutdown()
        for name, job in list(side.items()):
            timings.append(job.wait(timeout=float(timeout) * 4))
            _render_ahead(plan, job.source)
            del side[name]
    except PipelineError as exc:
        kernel.shutdown()
        for job in side.values():
            job.stop()
        _close_pages_ahead(plan)
        mark_failed(plan, _notebook_error(exc), timings)
        raise
    finally:
        kernel.shutdown()
        for job in side.values():
            job.stop()
    order = [s.name for s in plan.sources]
    return sorted(timings, key=lambda row: order.index(row["notebook"]))


def _notebook_error(exc: PipelineError) -> dict[str, Any]:
    """A notebook's failure as the manifest's ``error`` records it (and a side notebook's worker reports it)."""
    return {"notebook": exc.notebook, "cell": exc.cell, "ename": exc.ename,
            "evalue": str(exc.evalue)[:2000] if exc.evalue else None, "message": str(exc)}


def _parameters_of(plan: RunPlan, src: Path) -> dict[str, Any]:
    """The run's parameters that notebook ``src`` declares."""
    return {k: v for k, v in plan.parameters.items() if k in plan.declared[src.name]}


def _side_notebooks(sources: list[Path]) -> dict[str, list[Path]]:
    """Notebooks to start beside the others, by the stem of the notebook they start after.

    A notebook whose metadata says ``reviewlib.after`` (:mod:`reviewlib.side_notebooks`) starts once
    that notebook is done, unless it comes right after it anyway; only one runs beside at a time.
    """
    stems = [s.stem for s in sources]
    out: dict[str, list[Path]] = {}
    for i, src in enumerate(sources):
        after = side_notebooks.run_after(src)
        if i >= 2 and after in stems[:i - 1] and not out:     # not the very next one: something runs between
            out.setdefault(after, []).append(src)
    return out


def _collect(plan: RunPlan) -> tuple[living.RunSets, dict[str, Any], dict[str, Any]]:
    """The run's record sets, search facts and stage counts (from the store, or the replication's files)."""
    run_dir = plan.run_dir
    saved = run_dir / living.COUNTS_FILE
    prisma_counts = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else None
    if plan.replication:
        sets = living.load_sets(run_dir)
        if sets is None or not (run_dir / REPLICATION_FILE).is_file():
            raise PipelineError(f"{REPLICATION_NOTEBOOK} ran but did not save {living.PMIDS_FILE} and "
                                f"{REPLICATION_FILE}: its last cell must call pipeline.save_replication")
        summary = json.loads((run_dir / REPLICATION_FILE).read_text(encoding="utf-8"))
        plan.manifest["replication"] = {k: summary.get(k) for k in ("simulation", "published", "record_ids")}
        return sets, {}, replication_counts(summary, prisma_counts)
    with ReviewStore(plan.review_dir / STORE_NAME) as store:
        sets = living.load_sets(run_dir) if (run_dir / living.PMIDS_FILE).is_file() else None
        if sets is None:  # the last notebook did not save them
            sets = living.current_sets(store, plan.run_id)
            living.save_sets(run_dir, sets)
        search = _search_facts(store, plan.run_id)
        return sets, search, stage_counts(store, plan.run_id, search, sets, prisma_counts=prisma_counts)


def _figure_files(plan: RunPlan) -> list[str]:
    """The run's figures (PNG, relative to the run folder), in the protocol's order, then the rest by name."""
    folder = plan.run_dir / "figures"
    if not folder.is_dir():
        return []
    order = figure_order(plan.protocol)
    return sorted((p.relative_to(plan.run_dir).as_posix() for p in folder.glob("*.png")),
                  key=lambda f: (order.index(Path(f).stem) if Path(f).stem in order else len(order), f))


def _page_options(plan: RunPlan, src: Path) -> dict[str, Any]:
    """What notebook ``src``'s page shows besides the notebook, but the living-review warning."""
    nav = [("Index", "index.html")] + [(report.PAGE_TITLES.get(s.stem, s.stem), f"{s.stem}.html")
                                       for s in plan.sources]
    return {"notice": plan.manifest["notice"], "nav": nav,
            "title": f"{plan.protocol.title}: {report.PAGE_TITLES.get(src.stem, src.stem)}"}


def _render_ahead(plan: RunPlan, src: Path) -> None:
    """Start rendering ``src``'s page while the next notebooks run (:mod:`reviewlib.report.pages_ahead`)."""
    if plan.pages_ahead is not None:
        plan.pages_ahead.submit(plan.run_dir / src.name, plan.run_dir / f"{src.stem}.html", **_page_options(plan, src))


def _close_pages_ahead(plan: RunPlan) -> None:
    """Stop rendering ahead (the run is published or failed): pages not yet written are dropped."""
    if plan.pages_ahead is not None:
        plan.pages_ahead.close()
        plan.pages_ahead = None


def _render_pages(plan: RunPlan, changes: Any) -> list[Path]:
    """Render each executed notebook to HTML beside it (the pages rendered ahead, where they are the same)."""
    from .report.pages_ahead import PagesAhead
    if plan.pages_ahead is None:
        plan.pages_ahead = PagesAhead()
    warning = changes.warning()
    try:
        return [plan.pages_ahead.write(plan.run_dir / src.name, plan.run_dir / f"{src.stem}.html",
                                       warning=warning, **_page_options(plan, src))
                for src in plan.sources]
    finally:
        _close_pages_ahead(plan)


def _write_indexes(plan: RunPlan, pages: list[Path], figures: list[str], changes: Any) -> None:
    """The run's index, and the review's index staged beside ``latest`` (moved in by :func:`point_latest`)."""
    manifest, run_id = plan.manifest, plan.run_id
    page_links = [(report.PAGE_TITLES.get(p.stem, p.stem), p.name) for p in pages]
    findings = load_summary(plan.run_dir)   # saved by the report notebook; the index leads with it
    report.write_index(plan.run_dir / "index.html", manifest, pages=page_links, figures=figures, changes=changes,
                       findings=findings)
    runs = [(f"{run_id}/index.html", manifest)] + [  # interrupted and failed runs too, marked as such
        (f"{d.name}/index.html" if m.get("status") == "complete" else f"{d.name}/{living.MANIFEST_FILE}", m)
        for d, m in reversed(runstate.listed_runs(plan.results_root, exclude=run_id))]
    staged = plan.results_root / f".index.html.{run_id}"
    report.write_index(staged, manifest, pages=[(label, f"{run_id}/{h}") for label, h in page_links],
                       figures=[f"{run_id}/{f}" for f in figures], runs=runs, changes=changes, findings=findings)
    report.scrub_secrets(staged, plan.secrets)


def publish_run(plan: RunPlan, timings: list[dict[str, Any]]) -> RunResult:
    """Step 3 of :func:`run_review`: sets, counts, comparison, pages and indexes; secrets scrubbed.

    The manifest is filled in (status ``complete``) but not written: :func:`record_run` does that.

    Raises
    ------
    PipelineError
        Publishing failed; the run is marked failed.
    """
    manifest = plan.manifest
    pages: list[Path] = []
    try:
        sets, search, counts = _collect(plan)
        prev_sets = living.load_sets(plan.previous[0]) if plan.previous else None
        changes = living.compare(prev_sets, sets, previous_run=plan.previous[0].name if plan.previous else None,
                                 incremental=plan.since is not None)
        if changes.dropped_included and not plan.replication:
            with ReviewStore(plan.review_dir / STORE_NAME) as store:
                living.explain_dropped(changes, store)
        manifest.update(search=_jsonable(search), translation=search.get("translation"), counts=_jsonable(counts),
                        pmids=sets.summary(), living=changes.to_dict(), notebooks=timings,
                        warnings=list(search.get("warnings") or []) + ([changes.warning()] if changes.alarming else []))
        if plan.render:
            t = time.perf_counter()
            pages = _render_pages(plan, changes)
            manifest["render_seconds"] = round(time.perf_counter() - t, 2)
        figures = manifest["figures"] = _figure_files(plan)
        manifest["figure_captions"] = report.figure_captions(plan.protocol)
        manifest["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        manifest["duration_seconds"] = round(time.perf_counter() - plan.started, 2)
        manifest["status"] = "complete"
        plan.manifest = manifest = _jsonable(manifest)
        if plan.render:
            _write_indexes(plan, pages, figures, changes)
        leaked = report.scrub_secrets(plan.run_dir, plan.secrets)
        if leaked:
            manifest["warnings"].append(f"a secret was removed from {len(leaked)} output file(s)")
    except Exception as exc:
        _close_pages_ahead(plan)
        mark_failed(plan, {"notebook": None, "cell": None, "ename": type(exc).__name__,
                           "evalue": str(exc)[:2000], "message": "publishing the run failed"}, timings)
        if isinstance(exc, ReviewlibError):
            raise
        raise PipelineError(f"the notebooks ran but publishing run {plan.run_id} failed: {type(exc).__name__}: "
                            f"{exc}; the executed notebooks are in {plan.run_dir}", ename=type(exc).__name__,
                            evalue=str(exc)) from exc
    return RunResult(run_dir=plan.run_dir, manifest=manifest, index=plan.run_dir / "index.html", pages=pages)


def record_run(plan: RunPlan) -> Path:
    """Step 4 of :func:`run_review`: write the manifest, last: from now on the run is complete.

    The manifest keeps what the run read (``inputs``), with the review store as the run left it, so
    that the next offline run can tell whether anything changed since.
    """
    path = plan.run_dir / living.MANIFEST_FILE
    try:
        store_path = plan.review_dir / STORE_NAME
        meanwhile = run_inputs.reviewer_rows_since(store_path, plan.reviewer_marks, run_authors(plan.protocol)) \
            if plan.reviewer_marks is not None else 0
        if meanwhile:
            logger.warning("run %s: a reviewer wrote %d row(s) to the store while it ran; its pages may not show "
                           "them, so the next run runs again", plan.run_id, meanwhile)
        elif plan.inputs is not None and plan.manifest.get("status") == "complete":
            plan.manifest["inputs"] = dict(plan.inputs, store=run_inputs.store_digest(store_path))
        living.write_json(path, plan.manifest)
    except OSError as exc:
        mark_failed(plan, {"notebook": None, "cell": None, "ename": type(exc).__name__, "evalue": str(exc),
                           "message": "the manifest could not be written"})
        raise
    if plan.lock is not None:
        plan.lock.release()
    return path


def run_authors(protocol: Protocol) -> set[str]:
    """The reviewer names a run writes under itself: the rules, the demo's scripted reviewer and
    appraiser, and the protocol's registry curation (every other name in the store is a person's)."""
    from .evidence.appraisal import DEMO_REVIEWER as DEMO_APPRAISER
    from .screening.registrations import curation
    cur = curation(protocol) or {}
    return {"rules", DEMO_REVIEWER, DEMO_APPRAISER} | ({str(cur["reviewer"])} if cur.get("reviewer") else set())


def current_result(run_dir: Path) -> RunResult:
    """The :class:`RunResult` of a complete run found current (nothing changed since it): nothing is written."""
    manifest = json.loads((run_dir / living.MANIFEST_FILE).read_text(encoding="utf-8"))
    pages = [run_dir / f"{Path(name).stem}.html" for name in (manifest.get("inputs") or {}).get("notebooks", {})]
    return RunResult(run_dir=run_dir, manifest=manifest, index=run_dir / "index.html", pages=pages, current=True)


def point_latest(plan: RunPlan) -> Path:
    """Step 5 of :func:`run_review`: ``latest`` points at the run, and the review's index moves in."""
    latest = _point_latest(plan.results_root, plan.run_dir)
    staged = plan.results_root / f".index.html.{plan.run_id}"
    if plan.render and staged.is_file():
        os.replace(staged, plan.results_root / "index.html")
    return latest


# -- command line ---------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``reviewlib run``."""
    parser.add_argument("protocol", nargs="?", default=None,
                        help="protocol name in notebooks/ or path to a YAML (default: car-t-autoimmune)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--offline", dest="offline", action="store_true", default=True,
                      help="use the protocol's snapshot (default)")
    mode.add_argument("--online", dest="offline", action="store_false",
                      help="search PubMed (NCBI_EMAIL and optionally NCBI_API_KEY from the environment)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                        help="set a notebook parameter (repeatable), e.g. -p reviewer alice -p seed 7")
    parser.add_argument("--results", default=None, help="results folder (default: results/ of the checkout)")
    parser.add_argument("--reviews", default=None, help="folder of review stores (default: reviews/)")
    parser.add_argument("--full", action="store_true",
                        help="online: search the whole date range, not only what was added since the last run")
    parser.add_argument("--force", action="store_true",
                        help="run even when nothing changed since the newest complete run (offline: same snapshot, "
                             "protocol, notebooks, code, parameters and review store)")
    parser.add_argument("--kernel-per-notebook", action="store_true",
                        help="start a fresh kernel for each notebook (slower; the default shares one)")


def run_cli(args: argparse.Namespace) -> int:
    """Run ``reviewlib run``; prints where the HTML is."""
    if not getattr(args, "debug", False):
        for name in ("papermill", "traitlets", "nbclient"):
            logging.getLogger(name).setLevel(logging.WARNING)
    result = run_review(args.protocol, offline=args.offline, parameters=parse_parameters(args.parameter),
                        results_dir=args.results, reviews_dir=args.reviews, full_search=args.full,
                        shared_kernel=not args.kernel_per_notebook, force=args.force)
    m = result.manifest
    counts = m.get("pmids", {})
    if result.current:
        print(f"reviewlib run: {m['review']}: nothing changed since run {m['run_id']} (same snapshot, protocol, "
              f"notebooks, code, parameters and review store): its pages are current; --force runs it again")
    elif m.get("kind") == "replication":
        sim = (m.get("replication") or {}).get("simulation") or {}
        stages = m.get("counts") or {}
        print(f"reviewlib run: {m['review']} run {m['run_id']} complete in {m['duration_seconds']:.1f} s: "
              f"replication of published screening ({m.get('data_source')}): {stages.get('identified')} records "
              f"identified, {stages.get('included')} included; WSS@95 {sim.get('wss95', float('nan')):.3f}, "
              f"RRF@10 {sim.get('rrf10', float('nan')):.1f}%")
    else:
        print(f"reviewlib run: {m['review']} run {m['run_id']} complete in {m['duration_seconds']:.1f} s: "
              f"{counts.get('n_matched')} records matched, {counts.get('n_included')} included"
              + (" (SYNTHETIC demo data)" if m.get("synthetic") else ""))
    if m.get("living", {}).get("dropped_included"):
        print(f"WARNING: {result.manifest['warnings'][-1]}", file=sys.stderr)
    results_root = result.run_dir.parent
    print(f"HTML: {_shown_path(results_root / 'latest' / 'index.html')} "
          f"({'the current run' if result.current else 'this run'}: latest -> {result.run_dir.name})")
    print(f"      {_shown_path(results_root / 'index.html')} (all runs)")
    return 0


def _shown_path(path: Path) -> str:
    """``path`` as the README names it: relative to the working folder when inside it, else absolute
    (the ``latest`` link is kept, not resolved)."""
    path = Path(os.path.abspath(path))
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)
