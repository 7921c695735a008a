"""Title-abstract (or full-text) screening in JupyterLab with ipywidgets.

``Screener(store, reviewer="ana", protocol=protocol).display()`` shows one
record at a time: its title and abstract with the protocol's terms highlighted
(text HTML-escaped first, since PubMed text is untrusted; then ``<mark>``
inserted), include / exclude / maybe buttons, a reason picker (the protocol's
exclusion reasons) and a note, the eligibility criteria beside the record,
progress (screened / total, included so far, estimated relevant left) and an
undo button.  Every click goes straight through
:func:`reviewlib.screening.decisions.record_decision`: the decision is in the store
before the next record appears.

Records come in priority order from :mod:`reviewlib.screening.prioritise` when it is
available (retrained on the reviewer's decisions after each one), else in the
given order.  Records the protocol's rules have excluded (a current ``rules``
exclude at this stage) come after all the others, or are left out of the queue
with ``rule_excluded="omit"`` (the progress line counts them either way), so a
reviewer does not start on a record the rules already excluded.  In blind mode
(``blind=True``) the screener shows the reviewer only their own decisions.

Stopping: :meth:`Screener.start_random_sampling` switches the queue to a
random order over every unscreened record (rule-excluded ones too) and the
progress shows the hypergeometric stopping rule of
:mod:`reviewlib.screening.stopping` (records screened, includes found, estimated
recall with its interval, and whether recall >= 95 % is shown at 95 %
confidence).  Before that phase begins the screener shows no recall guarantee and
says so; it shows instead the ranked-order estimate of
:func:`reviewlib.screening.stopping.ranked_line` (buscar's test on the
decisions in the order screened), which states its assumption (the model's
order at least as good as random) and that it is not a guarantee.  A maybe
counts as an include for both rules (it may still be one).

Without a kernel (a notebook rendered to HTML), widgets are dead; the bundle
published by :meth:`Screener.display` carries :func:`static_summary` as its
``text/html`` fallback, which nbconvert shows when no widget state is saved
(run papermill with ``store_widget_state=False`` for rendered reports).
"""
from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import time
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import quote

import pandas as pd

from . import decisions as dec
from ..errors import InputError, ReviewlibError
from .eligibility import Rules, load_rules, vocabulary
from .stopping import DEFAULT_CONFIDENCE, DEFAULT_TARGET, StoppingEstimate, estimate, ranked_line
from .state import DecisionState, frame_of

logger = logging.getLogger(__name__)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# widget HTML inherits ipywidgets' one-line label style (28px line height, overflow hidden): reset it so
# long titles and abstracts wrap (also inside unbroken tokens such as URLs or sequences) instead of
# being clipped, and the criteria list reads as a list
_STYLE = """<style>
.rl-screener mark.rl-include {background:#c8f7c5;} .rl-screener mark.rl-exclude {background:#ffd6d6;}
.rl-screener .rl-record, .rl-screener .rl-criteria, .rl-screener .rl-progress, .rl-screener .rl-status
  {white-space:normal;overflow-wrap:anywhere;line-height:1.45;}
.rl-screener .rl-title {font-size:1.15em;font-weight:600;margin:0 0 .4em 0;}
.rl-screener .rl-meta {color:#555;font-size:.9em;margin-bottom:.6em;}
.rl-screener .rl-abstract {max-height:28em;overflow-y:auto;overflow-x:hidden;}
.rl-screener .rl-criteria ul {margin:.2em 0 .7em 0;padding-left:1.3em;}
.rl-screener .rl-criteria li {margin-bottom:.2em;}
.rl-screener .rl-done {padding:.8em 1em;background:#eef6ee;border-left:4px solid #3a7d3a;}
.rl-screener .rl-status .rl-ok {color:#2e6b2e;} .rl-screener .rl-status .rl-error {color:#b00;font-weight:600;}
.rl-screener .rl-status .rl-warn {color:#8a5a00;}
.rl-screener .rl-whose {color:#555;font-size:.9em;white-space:normal;line-height:1.4;}
.rl-screener .rl-context {padding:.4em .8em;margin-bottom:.4em;background:#fff3cd;border-left:4px solid #e0a800;
  white-space:normal;line-height:1.4;}
.rl-screener .rl-links {margin:0 0 .6em 0;white-space:normal;line-height:1.6;}
.rl-screener .rl-links a {margin-right:1em;}
</style>"""
NO_REASON = "(no reason)"
#: Ways to treat records the protocol's rules excluded in the queue.
RULE_EXCLUDED = ("last", "omit")
#: Store meta key holding a reviewer's random-sampling phase (JSON), formatted with stage and reviewer.
SAMPLING_META = "random_sampling:{stage}:{reviewer}"


def sampling_order(record_ids: Iterable[str], seed: int) -> list[str]:
    """``record_ids`` in a random order fixed by ``seed`` and each id alone (sha256 of ``seed:id``).

    The order of any subset is the same uniform shuffle whatever else is in the list, so the
    random-sampling queue does not change when records are decided or added.
    """
    return sorted(record_ids, key=lambda r: hashlib.sha256(f"{seed}:{r}".encode()).hexdigest())


# -- highlighting -----------------------------------------------------------------
def highlight(text: str | None, patterns: dict[str, Sequence[re.Pattern]]) -> str:
    """HTML of ``text`` (escaped) with every match of ``patterns`` wrapped in ``<mark>``.

    Parameters
    ----------
    text : str or None
        Untrusted text (a PubMed title or abstract).
    patterns : dict
        Class name -> compiled patterns, e.g. ``rules.highlight_patterns()``
        (``{'include': [...], 'exclude': [...]}``); marks get class ``rl-<name>``.

    Returns
    -------
    str
        Safe HTML: every character of ``text`` is escaped; the only tags are the marks.
        A match ending inside a word is extended to the word's end.

    Examples
    --------
    >>> import re
    >>> highlight("Statins <b>in</b> asthma", {"include": [re.compile("asthma")]})
    'Statins &lt;b&gt;in&lt;/b&gt; <mark class="rl-include">asthma</mark>'
    """
    if not text:
        return ""
    spans: list[tuple[int, int, str]] = []
    for cls, pats in patterns.items():
        for pat in pats:
            for m in pat.finditer(text):
                if m.end() > m.start():
                    spans.append((m.start(), m.end(), cls))
    spans.sort(key=lambda s: (s[0], -(s[1] - s[0])))
    out, pos = [], 0
    for start, end, cls in spans:
        if start < pos:          # overlaps a mark already placed
            continue
        while end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
            end += 1             # a stem ("autoimmun") marks the whole word ("autoimmune")
        out.append(html.escape(text[pos:start]))
        out.append(f'<mark class="rl-{html.escape(cls)}">{html.escape(text[start:end])}</mark>')
        pos = end
    out.append(html.escape(text[pos:]))
    return "".join(out)


# -- links to the full text ---------------------------------------------------------
#: Trial registry numbers quoted in titles and abstracts, with the page of each registry record.
REGISTRIES: tuple[tuple[str, re.Pattern, str], ...] = (
    ("ClinicalTrials.gov", re.compile(r"\bNCT\d{8}\b"), "https://clinicaltrials.gov/study/{id}"),
    ("ISRCTN", re.compile(r"\bISRCTN\d{8}\b"), "https://www.isrctn.com/{id}"),
    ("EU Clinical Trials Register", re.compile(r"\b(?:19|20)\d{2}-\d{6}-\d{2}\b"),
     "https://www.clinicaltrialsregister.eu/ctr-search/search?query={id}"),
    ("DRKS", re.compile(r"\bDRKS\d{8}\b"), "https://drks.de/search/en/trial/{id}"),
    ("ChiCTR", re.compile(r"\bChiCTR-?[A-Z]{0,3}-?\d{6,}\b"), "https://www.chictr.org.cn/searchprojEN.html?regno={id}"),
)
_EUDRACT_CONTEXT = re.compile(r"eudra\s*ct|eu\s*ctr|clinicaltrialsregister", re.I)


def registry_ids(text: str | None) -> list[tuple[str, str, str]]:
    """Trial registry numbers quoted in ``text``: (registry, id, url of the registry record), in order.

    EudraCT numbers (``2015-001234-56``) count only where the text names EudraCT.

    Examples
    --------
    >>> registry_ids("Registered at ClinicalTrials.gov (NCT02149199).")
    [('ClinicalTrials.gov', 'NCT02149199', 'https://clinicaltrials.gov/study/NCT02149199')]
    """
    if not text:
        return []
    found: dict[str, tuple[str, str, str]] = {}
    for name, pattern, url in REGISTRIES:
        if name == "EU Clinical Trials Register" and not _EUDRACT_CONTEXT.search(text):
            continue
        for m in pattern.finditer(text):
            found.setdefault(m.group(0), (m.start(), name, m.group(0), url.format(id=quote(m.group(0)))))
    return [item[1:] for item in sorted(found.values())]


def full_text_links(record: Any) -> list[tuple[str, str]]:
    """Where to read a record: (label, url) for its DOI, PMC full text, PubMed page and registry records.

    Parameters
    ----------
    record : mapping or pandas.Series
        A row of the records table (``doi``, ``pmcid``, ``pmid``, ``title``, ``abstract``).

    Returns
    -------
    list of (str, str)
        Only identifiers of a valid form give a link; the DOI is URL-quoted (PubMed text is untrusted).
    """
    def value(key: str) -> str:
        v = record.get(key) if hasattr(record, "get") else None
        return v.strip() if isinstance(v, str) else ""

    links: list[tuple[str, str]] = []
    doi = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", "", value("doi"), flags=re.I)
    if re.match(r"10\.\d{4,9}/\S+$", doi):
        links.append((f"DOI {doi}", "https://doi.org/" + quote(doi, safe="/:;()._-")))
    pmcid = value("pmcid").upper()
    if re.fullmatch(r"PMC\d+", pmcid):
        links.append((f"Full text in PMC (free) {pmcid}", f"https://pmc.ncbi.nlm.nih.gov/articles/{pmcid}/"))
    pmid = value("pmid")
    if re.fullmatch(r"\d{1,9}", pmid):
        links.append((f"PubMed {pmid}", f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"))
    for name, rid, url in registry_ids(value("title") + "\n" + value("abstract")):
        links.append((f"{name} {rid}", url))
    return links


# -- static summary ---------------------------------------------------------------
def summary_tables(store, stage: str | None = "title-abstract", reviewer: str | None = None,
                   blind: bool = False, state: DecisionState | None = None) -> dict[str, pd.DataFrame]:
    """Counts behind :func:`static_summary`: 'decisions' (reviewer x decision), 'reasons'
    (exclusion reason x reviewer) and 'final' (final decision x basis).  ``state``: the
    screener's :class:`~reviewlib.screening.state.DecisionState` of ``stage``, instead of a replay."""
    if state is not None and state.stage == stage:
        state.sync()
        everyone = state.current()
        if blind and not dec.is_revealed(store, stage):
            current = everyone[everyone["reviewer"] == dec._check_reviewer(reviewer, allow_rules=True)]
            current = current.reset_index(drop=True)
        else:
            current = everyone
    else:
        state = None
        current = dec.current_decisions(store, stage=stage, reviewer=reviewer if blind else None, blind=blind)
    reasons = vocabulary(store)
    by_decision = (current.groupby(["reviewer", "decision"]).size().unstack(fill_value=0)
                   if not current.empty else pd.DataFrame())
    excl = current[current["decision"] == "exclude"].copy()
    if not excl.empty:
        excl["reason"] = excl["reason"].fillna("(no reason)")
        excl = excl.assign(reason=excl["reason"].str.split("; ")).explode("reason")
        excl["reason"] = [reasons.get(r, r) for r in excl["reason"].tolist()]
        by_reason = excl.groupby(["reason", "reviewer"]).size().unstack(fill_value=0)
    else:
        by_reason = pd.DataFrame()
    final = pd.DataFrame()
    if stage is not None and (not blind or dec.is_revealed(store, stage)):
        fd = dec.final_decisions(store, stage, current=everyone if state is not None else None)
        if not fd.empty:
            final = fd.groupby(["decision", "basis"]).size().unstack(fill_value=0)
    return {"decisions": by_decision, "reasons": by_reason, "final": final}


def static_summary(store, stage: str | None = "title-abstract", reviewer: str | None = None,
                   blind: bool = False, state: DecisionState | None = None):
    """A static HTML summary of screening: counts by decision and by reason, per reviewer.

    Shown in place of the screener where no kernel runs (rendered notebooks).

    Returns
    -------
    IPython.display.HTML
    """
    from IPython.display import HTML
    tables = summary_tables(store, stage=stage, reviewer=reviewer, blind=blind, state=state)
    title = f"Screening summary ({html.escape(stage)})" if stage else "Screening summary"
    parts = [f'<div class="rl-summary"><h4>{title}</h4>']
    captions = {"decisions": "Current decisions per reviewer",
                "reasons": "Exclusions per reason and reviewer",
                "final": "Final decisions (resolution &gt; agreed &gt; single reviewer &gt; rules)"}
    for key, frame in tables.items():
        parts.append(f"<p><b>{captions[key]}</b></p>")
        if frame.empty:
            parts.append("<p><i>none yet</i></p>")
        else:
            frame = frame.copy()
            frame.columns.name = None
            parts.append(frame.to_html(escape=True, border=0))
    parts.append("</div>")
    return HTML("".join(parts))


# -- the widget ----------------------------------------------------------------------
def _cache_option(module, store) -> dict[str, Any]:
    """``cache_dir=`` for the prioritiser when it takes one: its TF-IDF kept in the review's cache."""
    import inspect
    try:
        takes = "cache_dir" in inspect.signature(module.Prioritiser).parameters
    except (TypeError, ValueError):
        takes = False
    cache_dir = getattr(store, "cache_dir", None)
    return {"cache_dir": cache_dir} if takes and cache_dir is not None else {}


def _tfidf_cache(store, records: pd.DataFrame):
    """(prioritise module, the review's cache folder) for the prioritiser's TF-IDF of ``records``, or None
    where nothing can be prepared (no cache folder, no records, no record ids)."""
    module = _optional_prioritise()
    option = _cache_option(module, store) if module is not None else {}
    if not option or not len(records) or "record_id" not in records.columns:
        return None
    return module, option["cache_dir"]


def prepare_prioritiser(store, records: pd.DataFrame) -> bool:
    """Build the prioritiser's TF-IDF of ``records`` into the review's cache, where a :class:`Screener`
    of the same records reads it, so a reviewer's first opening skips the fit (a minute at 100,000
    records).  Returns whether the cache now holds it.  (``reviewlib run`` fits it beside notebook 02:
    :func:`prepare_prioritiser_beside`.)
    """
    found = _tfidf_cache(store, records)
    if found is None:
        return False
    module, cache_dir = found
    try:   # the matrix only: no ids, no vocabulary (hundreds of MB)
        module.prepare_tfidf(records.reset_index(drop=True), cache_dir)
    except (ReviewlibError, ValueError) as exc:
        logger.warning("screener: prioritiser features not prepared (%s)", exc)
        return False
    return True


def prepare_prioritiser_beside(store, records: pd.DataFrame):
    """:func:`prepare_prioritiser` in a process beside this one (:mod:`reviewlib.screening.tfidf_beside`):
    returns at once; ``wait()`` on what it returns before the run ends (notebook 02's last cell does).

    Small record sets (under ``tfidf_beside.BESIDE_MIN_RECORDS``) are fitted here and now.  Where
    nothing can be prepared (no cache folder, no records) the answer's ``wait()`` is False at once.
    """
    from . import tfidf_beside
    found = _tfidf_cache(store, records)
    if found is None:
        return tfidf_beside.Preparation(done=False)
    module, cache_dir = found
    try:
        titles, abstracts = module.titles_and_abstracts(records.reset_index(drop=True))
        return tfidf_beside.start(titles, abstracts, cache_dir)
    except (ReviewlibError, ValueError, OSError) as exc:
        logger.warning("screener: prioritiser features not prepared (%s)", exc)
        return tfidf_beside.Preparation(done=False)


def _optional_prioritise():
    try:
        from . import prioritise
    except ImportError:       # pragma: no cover - the module ships with reviewlib today
        return None
    return prioritise if hasattr(prioritise, "Prioritiser") or hasattr(prioritise, "rank") else None


class Screener:
    """An ipywidgets screener writing every decision to the review store at once.

    Parameters
    ----------
    store : ReviewStore
        The review store.
    reviewer : str
        Who is screening.
    protocol : Protocol, path or name, optional
        The protocol whose ``eligibility`` section gives the criteria, the
        reason vocabulary and the terms to highlight.  ``rules=`` may be given instead.
    rules : Rules, optional
        Already loaded rules.
    stage : {'title-abstract', 'full-text'}
    blind : bool
        Blind dual screening: show only this reviewer's decisions (until reveal).
    records : pandas.DataFrame, optional
        Records to screen (with ``record_id``); default: the store's records
        minus saved duplicates (:func:`reviewlib.screening.dedup.screening_records`).
    order : sequence of str, optional
        The fallback order of record ids (default: the records' order).
    prioritise : bool
        Use :mod:`reviewlib.screening.prioritise` to order the queue when it can.
    seed : int
        Seed for the prioritisation.
    require_reason : bool
        Exclude only with an exclusion reason picked (default True, when the
        protocol has reasons): an Exclude click without one saves nothing and
        says so.
    min_interval : float
        Seconds after a decision during which another decision click is
        ignored: the second click of a double-click would otherwise decide the
        next record, unseen.  0 turns the guard off.
    clock : callable
        Monotonic clock in seconds for ``min_interval`` (default ``time.monotonic``).
    rule_excluded : {'last', 'omit'}
        Records the protocol's rules excluded at this stage: at the end of the queue (default), or
        left out of it (counted in the progress line).  In a random-sampling phase every
        unscreened record is in the draw.
    target, confidence : float
        Recall target and confidence of the stopping rule.
    synthetic : bool
        The records are synthetic demo data: their DOI, PMC, PubMed and registry links
        are shown as text, since the identifiers are invented and lead nowhere.
    context : str, optional
        One line of plain text shown above the progress (e.g. where practice decisions go).

    Notes
    -----
    An include never carries an exclusion reason (a picked one is dropped and
    the status line says so); a maybe keeps it, as the suspected reason.

    Examples
    --------
    >>> s = Screener(store, "ana", protocol=protocol)   # doctest: +SKIP
    >>> s.display()                                     # doctest: +SKIP
    """

    def __init__(self, store, reviewer: str, *, protocol=None, rules: Rules | None = None,
                 stage: str = "title-abstract", blind: bool = False, records: pd.DataFrame | None = None,
                 order: Iterable[str] | None = None, prioritise: bool = True, seed: int = 0,
                 require_reason: bool = True, min_interval: float = 0.6,
                 clock: Callable[[], float] = time.monotonic, rule_excluded: str = "last",
                 target: float = DEFAULT_TARGET, confidence: float = DEFAULT_CONFIDENCE,
                 synthetic: bool = False, context: str | None = None):
        import ipywidgets as w

        if rule_excluded not in RULE_EXCLUDED:
            raise InputError(f"rule_excluded={rule_excluded!r}: use 'last' (rule-excluded records at the end of "
                             "the queue) or 'omit' (left out, counted)")
        self.rule_excluded = rule_excluded
        self.target, self.confidence = float(target), float(confidence)
        self.n_rule_excluded = 0
        self.stopping: StoppingEstimate | None = None

        self.store = store
        self.reviewer = dec._check_reviewer(reviewer)
        self.stage = dec._check_stage(stage)
        self.blind = blind
        self.seed = seed
        self.rules = rules if rules is not None else (load_rules(protocol) if protocol is not None else None)
        self.reasons = dict(self.rules.reasons) if self.rules is not None else vocabulary(store)
        self.require_reason = dec.reason_required(self.reasons, require_reason)  # the rule imports share
        self.min_interval = float(min_interval)
        self._clock = clock
        self.synthetic = bool(synthetic)
        self.context = context
        self._last_decision_at: float | None = None
        self._patterns = self.rules.highlight_patterns() if self.rules is not None else {}
        if records is None:
            from .dedup import screening_records
            records = screening_records(store)
        if "record_id" not in records.columns:
            raise InputError("records to screen need a record_id column: use store.records() or "
                             "dedup.screening_records(store)")
        self.records = records.reset_index(drop=True)
        self._by_id = {rid: k for k, rid in enumerate(self.records["record_id"])}
        self._order = [r for r in (order if order is not None else self.records["record_id"]) if r in self._by_id]
        self._ids = self.records["record_id"].to_numpy(dtype=object)
        # records the given order leaves out (the prioritised queue is used only when there are none left)
        self._unordered = set(self._by_id) - set(self._order)
        # the current decisions, kept up to date from the log (not replayed on every click)
        self.state = DecisionState(store, self.stage)
        self._prioritiser = None
        module = _optional_prioritise() if prioritise else None
        if module is not None and len(self.records):
            try:
                self._prioritiser = module.Prioritiser(self.records, seed=seed, id_column="record_id",
                                                       **_cache_option(module, store))
            except (ReviewlibError, ValueError) as exc:
                logger.warning("screener: prioritisation unavailable (%s); using the given order", exc)
        self._queue: list[str] = []
        self._estimate: str | None = None
        self.current: str | None = None
        self.message = ""
        self._message_class = "rl-ok"

        # "auto", not "100%": ipywidgets add a 2px margin each side, so 100% overflows its box
        full = w.Layout(width="auto")
        self.progress = w.HTML(layout=full)
        self.stopping_view = w.HTML(layout=full)
        self.bar = w.IntProgress(min=0, max=max(len(self._by_id), 1), value=0,
                                 layout=w.Layout(width="auto", height="0.6em"))
        self.record_view = w.HTML(layout=full)
        self.criteria_view = w.HTML(self._criteria_html(), layout=full)
        self.others_view = w.HTML(layout=full)
        no_reason = "(no reason: pick one to exclude)" if self.require_reason else NO_REASON
        self.reason = w.Dropdown(options=[(no_reason, None)] + [(f"{v} [{k}]", k) for k, v in self.reasons.items()],
                                 index=0, description="Reason", layout=w.Layout(width="auto"))
        # ipywidgets maps value None to "no selection" (a blank menu) once another value was picked:
        # keep "(no reason)" visibly selected instead
        self.reason.observe(lambda change: setattr(self.reason, "index", 0) if change["new"] is None else None,
                            names="index")
        self.note = w.Textarea(placeholder="note (optional), saved with the decision", description="Note",
                               layout=w.Layout(width="auto", height="3.5em"))
        self.buttons = {
            "include": w.Button(description="Include", button_style="success", icon="check",
                                tooltip="Include this record and show the next"),
            "exclude": w.Button(description="Exclude", button_style="danger", icon="times",
                                tooltip="Exclude with the reason picked above and show the next"),
            "maybe": w.Button(description="Maybe", button_style="warning", icon="question",
                              tooltip="Undecided: keep for discussion or full text, and show the next"),
        }
        for value, button in self.buttons.items():
            button.on_click(lambda _b, value=value: self.decide(value))
        self.skip_button = w.Button(description="Skip", icon="forward",
                                    tooltip="Decide later: move this record to the end of the queue")
        self.skip_button.on_click(lambda _b: self.skip())
        self.undo_button = w.Button(description="Undo last", icon="undo",
                                    tooltip="Withdraw your most recent decision and show that record again")
        self.undo_button.on_click(lambda _b: self.undo())
        self.sampling_button = w.Button(description="Start random sampling", icon="random",
                                        tooltip="From now on, records come in random order: the stopping rule "
                                                "can then say when recall >= the target is shown")
        self.sampling_button.on_click(lambda _b: self.start_random_sampling())
        for button in list(self.buttons.values()) + [self.skip_button, self.undo_button]:
            button.layout = w.Layout(width="auto", min_width="6.5em")    # five in one row beside the criteria
        self.status = w.HTML(layout=full)
        actions = w.HBox(list(self.buttons.values()) + [self.skip_button, self.undo_button],
                         layout=w.Layout(flex_flow="row wrap", width="auto"))
        left = w.VBox([self.record_view, self.others_view, self.reason, self.note, actions, self.status],
                      layout=w.Layout(flex="1 1 0", min_width="0", padding="0 1em 0 0"))
        right = w.VBox([self.criteria_view],
                       layout=w.Layout(flex="0 0 32%", min_width="0", padding="0 0 0 1em",
                                       border_left="1px solid #ddd"))
        self.widget = w.VBox([self.progress, self.bar, w.HBox([left, right], layout=w.Layout(width="auto")),
                              w.HBox([self.stopping_view, self.sampling_button], layout=w.Layout(width="auto"))],
                             layout=w.Layout(width="auto"))
        self.widget.add_class("rl-screener")
        self.refresh()

    # -- state --------------------------------------------------------------------
    def my_decisions(self) -> pd.DataFrame:
        """This reviewer's current decisions at this stage, on the records being screened."""
        self.state.sync()
        return frame_of([r for r in self.state.current_rows(self.reviewer)
                         if r["kind"] != "resolution" and r["record_id"] in self._by_id])

    def rule_excluded_ids(self) -> set[str]:
        """Records whose current protocol-rules decision at this stage is exclude."""
        return set(self._rule_excluded()[0])

    def _rule_excluded(self) -> tuple[frozenset, "np.ndarray"]:
        """The rule-excluded record ids and a mask of them over ``self.records``'s rows, kept until
        the rules' decisions change (a click changes only the reviewer's: 100,000 rule rows are
        not gathered again on each one)."""
        import numpy as np
        self.state.sync()      # the incremental state, not a replay of the whole log
        key = self.state.version(dec.RULES_REVIEWER)
        cached = getattr(self, "_rule_excluded_cache", None)
        if cached is None or cached[0] != key:
            ids = frozenset(r["record_id"] for r in self.state.current_rows(dec.RULES_REVIEWER, ordered=False)
                            if r["decision"] == "exclude" and r["record_id"] in self._by_id)
            mask = np.zeros(len(self._by_id), dtype=bool)
            mask[[self._by_id[r] for r in ids]] = True
            cached = self._rule_excluded_cache = (key, ids, mask)
        return cached[1], cached[2]

    # -- random sampling and the stopping rule ---------------------------------------
    @property
    def _sampling_key(self) -> str:
        return SAMPLING_META.format(stage=self.stage, reviewer=self.reviewer)

    def sampling_phase(self) -> dict | None:
        """This reviewer's random-sampling phase at this stage (``decided_before``, ``seed``), or None."""
        raw = self.store.get_meta(self._sampling_key)
        return json.loads(raw) if raw else None

    def start_random_sampling(self) -> dict:
        """Begin the random-sampling phase: from now on the queue is a random order of every unscreened record.

        Saved in the store (meta ``random_sampling:<stage>:<reviewer>``) with the records decided so
        far, so a later session resumes the phase.  Starting again keeps the first start.
        """
        phase = self.sampling_phase()
        if phase is None:
            mine = self.my_decisions()
            phase = {"decided_before": sorted(mine["record_id"]), "seed": self.seed,
                     "started_at": pd.Timestamp.now(tz="UTC").isoformat()}
            self.store.set_meta(self._sampling_key, json.dumps(phase))
            self.message, self._message_class = ("Random sampling started: records now come in random order, "
                                                 "and the stopping rule below can say when to stop."), "rl-ok"
        self.refresh()
        return phase

    def stopping_estimate(self, mine: pd.DataFrame | None = None) -> StoppingEstimate:
        """The stopping rule's current state (:func:`reviewlib.screening.stopping.estimate`).

        Records decided before the random-sampling phase are the prioritised phase, the others the
        random sample; include and maybe count as relevant.  Without a phase the estimate has
        ``guaranteed=False``.
        """
        mine = self.my_decisions() if mine is None else mine
        relevant = mine["decision"].isin(["include", "maybe"]).astype(int).tolist()
        phase = self.sampling_phase()
        before = set(phase["decided_before"]) if phase else set(mine["record_id"])
        in_before = mine["record_id"].isin(before).tolist()
        ranked = [v for v, b in zip(relevant, in_before) if b]
        sample = [v for v, b in zip(relevant, in_before) if not b]
        return estimate(len(self._by_id), ranked, sample if phase else [], target=self.target,
                        confidence=self.confidence)

    def _any_left(self, done: set[str]) -> bool:
        """Whether the given order holds a record not in ``done``."""
        return any(r not in done for r in self._order)

    def _sampling_order(self, seed: int) -> list[str]:
        """:func:`sampling_order` of every record (kept per seed: the order of a subset is this one filtered)."""
        cached = getattr(self, "_sampling_cache", None)
        if cached is None or cached[0] != seed:
            cached = self._sampling_cache = (seed, sampling_order(list(self._by_id), seed))
        return cached[1]

    def _labels(self, mine: pd.DataFrame) -> dict[str, int]:
        decided = mine[mine["decision"].isin(["include", "exclude"])]
        return {r: int(d == "include") for r, d in zip(decided["record_id"], decided["decision"])}

    def refresh(self) -> None:
        """Recompute the queue (priority order) and show the next record."""
        import numpy as np
        mine = self.my_decisions()
        done = set(mine["record_id"])
        labels = self._labels(mine)
        self._estimate = None
        # the queue is worked out on row positions (numpy), not by walking 100,000 ids several times
        done_mask = np.zeros(len(self._by_id), dtype=bool)
        done_mask[[self._by_id[r] for r in done]] = True
        queue_rows = None          # row positions of the queue, when the prioritiser ordered it
        if self._prioritiser is not None and self._any_left(done):
            try:
                self._prioritiser.fit(labels)
                labelled = np.zeros(len(self._by_id), dtype=bool)
                labelled[[self._by_id[r] for r in labels]] = True
                ranked = self._prioritiser.rank_indices(np.flatnonzero(~labelled))   # what rank(labels) orders
                ranked = ranked[~done_mask[ranked]]
                if self._unordered <= done:    # the same records as the given order's queue
                    queue_rows = ranked
                if len(set(labels.values())) == 2:
                    # a model fitted on one class only says "all relevant" or "none": not an estimate
                    est = self._prioritiser.estimate_relevant_remaining(labels)
                    self._estimate = f"~{est.expected:.0f} (model)"
            except (ReviewlibError, ValueError) as exc:
                logger.warning("screener: prioritisation failed (%s); using the given order", exc)
        phase = self.sampling_phase()
        rule_ids, rule_mask = self._rule_excluded()
        self.n_rule_excluded = len(rule_ids) - sum(1 for r in done if r in rule_ids)
        if phase is not None:      # random sampling: every unscreened record, in the phase's random order
            queue = [r for r in self._sampling_order(phase["seed"]) if r not in done]
        elif queue_rows is not None:
            if self.n_rule_excluded:
                excluded = rule_mask[queue_rows]
                queue_rows = (np.concatenate([queue_rows[~excluded], queue_rows[excluded]])
                              if self.rule_excluded == "last" else queue_rows[~excluded])
            queue = self._ids[queue_rows].tolist()
        else:
            queue = [r for r in self._order if r not in done]
            if self.n_rule_excluded:
                kept = [r for r in queue if r not in rule_ids]
                queue = kept + ([r for r in queue if r in rule_ids] if self.rule_excluded == "last" else [])
        self._queue = queue
        if self._estimate is None:
            if not queue:
                self._estimate = "0"
            elif len(set(labels.values())) < 2:
                self._estimate = "? (after your first include and first exclude)"
            else:
                # the include rate so far (Laplace-smoothed) times the records left
                n_inc = int((mine["decision"] == "include").sum())
                rate = (n_inc + 1) / (len(mine) + 2)
                self._estimate = f"~{rate * len(queue):.0f} (include rate so far)"
        self.current = queue[0] if queue else None
        self.stopping = self.stopping_estimate(mine)
        self.ranked_estimate = None
        if phase is None and len(mine):     # decisions in history order: the order they were screened in
            relevant = mine["decision"].isin(["include", "maybe"]).astype(int).tolist()
            self.ranked_estimate = ranked_line(relevant, len(self._by_id), target=self.target,
                                               confidence=self.confidence)
        self._render(mine)

    def _render(self, mine: pd.DataFrame) -> None:
        total = len(self._by_id)
        n_done = len(mine)
        counts = mine["decision"].value_counts()
        n_inc, n_exc, n_maybe = (int(counts.get(k, 0)) for k in ("include", "exclude", "maybe"))
        mode = " &middot; blind" if self.blind and not dec.is_revealed(self.store, self.stage) else ""
        pct = f" ({100 * n_done / total:.0f}%)" if total else ""
        who = html.escape(self.reviewer)
        context = (f"<div class='rl-context'>{html.escape(self.context)}</div>" if self.context else "")
        self.progress.value = (f"{context}<div class='rl-progress'><b>{who}</b> &middot; "
                               f"{html.escape(self.stage)}{mode} &middot; {who} screened {n_done} / {total}{pct} "
                               f"&middot; included {n_inc} &middot; excluded {n_exc} &middot; maybe {n_maybe} "
                               f"&middot; estimated relevant left {html.escape(self._estimate or '?')}"
                               f"{self._rule_excluded_note()}</div>"
                               f"<div class='rl-whose'>These counts are {who}'s own decisions only. The "
                               "protocol's rules and other reviewers are not counted here (their calls show "
                               "under each record as <i>Other calls</i>).</div>")
        if self.stopping is not None:
            cls = "rl-ok" if self.stopping.stop else "rl-warn"
            ranked = getattr(self, "ranked_estimate", None)
            self.stopping_view.value = (f"<div class='rl-progress'><span class='{cls}'>"
                                        f"{html.escape(self.stopping.line())}</span></div>"
                                        + (f"<div class='rl-progress'><span class='rl-warn'>{html.escape(ranked)}"
                                           "</span></div>" if ranked else ""))
        self.bar.max = max(total, 1)
        self.bar.value = min(n_done, self.bar.max)
        self.record_view.value = _STYLE + (self._record_html(self.current) if self.current is not None
                                           else self._done_html(n_done, n_inc, n_exc, n_maybe))
        self.others_view.value = self._others_html(self.current)
        done = self.current is None
        for b in list(self.buttons.values()) + [self.skip_button, self.reason, self.note]:
            b.disabled = done
        # skipping in the random-sampling phase would make the sample the reviewer's choice, not random
        self.skip_button.disabled = done or len(self._queue) < 2 or self.sampling_phase() is not None
        self.sampling_button.disabled = done or self.sampling_phase() is not None
        self.undo_button.disabled = mine.empty
        self._show_message()

    def _rule_excluded_note(self) -> str:
        if not self.n_rule_excluded or self.sampling_phase() is not None:
            return ""
        where = "come last" if self.rule_excluded == "last" else "left out of the queue"
        return f" &middot; {self.n_rule_excluded} excluded by the protocol rules {where}"

    def _say(self, message: str, cls: str = "rl-ok") -> None:
        self.message = message
        self._message_class = cls
        self._show_message()

    def _show_message(self) -> None:
        self.status.value = (f"<div class='rl-status'><span class='{self._message_class}'>"
                             f"{html.escape(self.message)}</span></div>" if self.message else "")

    def _done_html(self, n_done: int, n_inc: int, n_exc: int, n_maybe: int) -> str:
        if not self._by_id:
            return "<div class='rl-record rl-done'><b>No records to screen.</b></div>"
        omitted = bool(self.n_rule_excluded and self.rule_excluded == "omit")
        return ("<div class='rl-record rl-done'>"
                f"<p><b>All records {'in the queue ' if omitted else ''}screened.</b> "
                f"{html.escape(self.reviewer)} has decided "
                f"{'the only record' if n_done == 1 else f'all {n_done} records'} "
                f"at {html.escape(self.stage)}: {n_inc} included, {n_exc} excluded, {n_maybe} maybe.</p>"
                + (f"<p>{self.n_rule_excluded} records the protocol rules excluded were left out of the queue "
                   "(<code>rule_excluded='omit'</code>).</p>" if omitted else "") +
                "<p>Every decision is already saved in the review store. <i>Undo last</i> reopens your most "
                "recent decision; records marked maybe are settled at full text or in discussion.</p></div>")

    def _record_html(self, record_id: str) -> str:
        from . import registrations      # a registration shows its conditions, interventions, phase, enrollment
        row = self.records.iloc[self._by_id[record_id]]
        meta = [record_id]
        for col in ("journal", "year"):
            v = row.get(col)
            if v is not None and not pd.isna(v):
                meta.append(str(v))
        types = row.get("publication_types")
        if isinstance(types, list) and types:
            meta.append(", ".join(types))
        abstract = row.get("abstract") if isinstance(row.get("abstract"), str) else ""
        return ('<div class="rl-record">'
                f'<div class="rl-title">{highlight(row.get("title") or "(no title)", self._patterns)}</div>'
                f'<div class="rl-meta">{html.escape(" · ".join(meta))}</div>'
                f'{self._links_html(row)}'
                f'{registrations.trial_facts_html(self.store, record_id, self.__dict__.setdefault("_trials", {}))}'
                f'<div class="rl-abstract">{highlight(abstract, self._patterns) or "<i>no abstract</i>"}</div>'
                "</div>")

    def _links_html(self, row: Any) -> str:
        links = full_text_links(row)
        lead = "Read the full text" if self.stage == "full-text" else "Full text and sources"
        if not links:
            return (f"<div class='rl-links'><b>{lead}:</b> <i>no DOI, PMC, PubMed or registry number in this "
                    "record</i></div>")
        if self.synthetic:
            return (f"<div class='rl-links'><b>{lead}:</b> "
                    + " &middot; ".join(html.escape(label) for label, _ in links)
                    + " <i>(synthetic demo record: invented identifiers, so no links)</i></div>")
        return (f"<div class='rl-links'><b>{lead}:</b> "
                + "".join(f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener noreferrer">'
                          f"{html.escape(label)}</a>" for label, url in links) + "</div>")

    def _others_html(self, record_id: str | None) -> str:
        if record_id is None or (self.blind and not dec.is_revealed(self.store, self.stage)):
            return ""
        # the rows as they are (a frame of two rows costs more than the whole page)
        others = [r for r in self.state.current_rows(record_id=record_id)
                  if r["record_id"] == record_id and r["reviewer"] != self.reviewer]
        if not others:
            return ""
        items = ", ".join(
            ("protocol rules propose" if r["reviewer"] == dec.RULES_REVIEWER
             else f"{html.escape(str(r['reviewer']))}:")
            + f" {html.escape(str(r['decision']))}"
            + (f" ({html.escape(self.reasons.get(r['reason'], str(r['reason'])))})" if r["reason"] else "")
            for r in others)
        return f"<div class='rl-record' style='color:#555'>Other calls: {items}</div>"

    def _criteria_html(self) -> str:
        parts = ["<div class='rl-criteria'>"]
        crit = self.rules.criteria if self.rules is not None else {}
        for key, title in (("include", "Include"), ("exclude", "Exclude")):
            items = crit.get(key) or []
            if items:
                parts.append(f"<b>{title}</b><ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
        parts.append("<b>Exclusion reasons</b><ul>" + "".join(
            f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>" for k, v in self.reasons.items()) + "</ul>")
        parts.append("</div>")
        return "".join(parts)

    # -- actions -------------------------------------------------------------------
    def decide(self, decision: str) -> int | None:
        """Record ``decision`` on the current record (with the picked reason and note), then move on.

        Returns the decision id, or None when nothing was saved: no record left,
        an exclude without a reason (``require_reason``), a click within
        ``min_interval`` of the previous decision, or a value the store refuses.
        The status line under the buttons says which.
        """
        if self.current is None:
            return None
        now = self._clock()
        if (self._last_decision_at is not None and self.min_interval > 0
                and now - self._last_decision_at < self.min_interval):
            logger.info("screener: ignored a %s click %.2f s after the previous decision", decision,
                        now - self._last_decision_at)
            self._say(f"Ignored a second click ({decision}) right after the previous decision: "
                      "look at the record shown, then click again.", "rl-warn")
            return None
        record_id = self.current
        reason = self.reason.value
        dropped = ""
        if dec.missing_reason(decision, reason, self.reasons, self.require_reason):
            self._say("Not saved: pick an exclusion reason in the Reason menu, then click Exclude again.",
                      "rl-error")
            return None
        if decision == "include" and reason is not None:
            reason, dropped = None, f" (reason {self.reason.value} not kept: an include has no exclusion reason)"
        try:
            decision_id = dec.record_decision(self.store, record_id, self.reviewer, decision, stage=self.stage,
                                              reason=reason, note=self.note.value or None,
                                              reasons=self.reasons)
        except InputError as exc:
            self._say(f"Not saved: {exc}", "rl-error")
            return None
        self._last_decision_at = now
        self.message = (f"Saved: {decision}{' (' + reason + ')' if reason else ''} {record_id}{dropped}. "
                        "Undo last takes it back.")
        self._message_class = "rl-ok"
        self.reason.value = None
        self.note.value = ""
        self.refresh()
        return decision_id

    def skip(self) -> None:
        """Move the current record to the end of this session's queue without deciding."""
        if self.current is None or self.sampling_phase() is not None:
            return
        skipped = self.current
        self._order = [r for r in self._order if r != self.current] + [self.current]
        self.message, self._message_class = f"Skipped {skipped}: it comes back at the end of the queue.", "rl-ok"
        if self._prioritiser is not None:
            self._queue = self._queue[1:] + self._queue[:1]
            self.current = self._queue[0]
            self._render(self.my_decisions())
        else:
            self.refresh()

    def undo(self) -> dict | None:
        """Undo this reviewer's last decision (an 'undo' row is appended) and show that record again."""
        try:
            undone = self.state.undo_last(self.reviewer)
        except InputError as exc:
            self._say(str(exc), "rl-warn")
            return None
        if undone is None:
            self._say("Nothing to undo.", "rl-warn")
            return None
        reason = f" ({undone['reason']})" if isinstance(undone.get("reason"), str) and undone["reason"] else ""
        self.message = (f"Undid: {undone['decision']}{reason} {undone['record_id']}. "
                        "It is shown again: decide it anew.")
        self._message_class = "rl-ok"
        self._last_decision_at = None
        self.reason.value = None
        self.note.value = ""
        self.refresh()
        if undone["record_id"] in self._by_id and undone["record_id"] in self._queue:
            self._queue.remove(undone["record_id"])
            self._queue.insert(0, undone["record_id"])
            self.current = undone["record_id"]
            self._render(self.my_decisions())
        return undone

    # -- display -------------------------------------------------------------------
    def summary(self):
        """:func:`static_summary` as this reviewer may see it."""
        return static_summary(self.store, stage=self.stage, reviewer=self.reviewer if self.blind else None,
                              blind=self.blind, state=self.state)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = self.summary().data
        bundle["text/plain"] = f"Screener({self.reviewer!r}, {self.stage}): needs a running kernel"
        return bundle

    def display(self) -> None:
        """Show the widget, with the static summary as the output's text/html fallback."""
        from IPython.display import display
        display(self._repr_mimebundle_(), raw=True)
