"""Risk of bias: the published appraisal tools as data, and judgements that are never lost.

Tools (:data:`TOOLS`), chosen by study design with :func:`tool_for_design`:

* ``jbi-case-report``: JBI critical appraisal checklist for case reports, 8 items;
* ``jbi-case-series``: JBI checklist for case series, 10 items (also used for single-arm
  phase 1/2 trials, which compare nothing and are case series in design);
* ``robins-i``: ROBINS-I, 7 domains, for non-randomised comparisons (observational cohorts);
* ``rob2``: RoB 2, 5 domains, for randomised trials.

JBI items are answered Yes / No / Unclear / Not applicable; ROBINS-I domains Low / Moderate /
Serious / Critical / No information; RoB 2 domains Low / Some concerns / High.  Each answer maps
to a traffic-light level (:func:`level_of`) for the robvis-style plots.

Judgements are appended to the review store (its ``appraisals`` table,
:meth:`~reviewlib.store.ReviewStore.append_appraisals`) like screening decisions:
study (record id), tool, item, answer, support text, reviewer, time.  Nothing is updated or
deleted: a change of mind appends a row and the latest wins; :func:`undo_last` appends an undo
row that revokes the reviewer's latest judgement, bringing back the one before it.  Two
reviewers' judgements give :func:`agreement` (Cohen's kappa with its n) and :func:`conflicts`;
:func:`resolve` appends a ``resolution`` that :func:`final_judgements` honours above both.

Reviewers can also appraise in a spreadsheet: :func:`export_sheet` writes one row per study x
item (CSV or XLSX) and :func:`import_sheet` checks every row, then appends the answers.

:func:`demo_appraise` records scripted judgements for the demo, under the reviewer name
``"demo appraiser (scripted)"``: they are computed from the study table's reported fields (the
protocol's ``demo: appraisal`` ties items to fields), not from reading the papers, and say so in
their support text.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ..safe_cells import read_sheet, write_csv as write_safe_csv, write_xlsx
from ..errors import InputError
from ..store import ReviewStore, utcnow

logger = logging.getLogger(__name__)

__all__ = ["Tool", "TOOLS", "DEMO_REVIEWER", "tool_for_design", "level_of", "record_judgement", "undo_last",
           "history", "current_judgements", "final_judgements", "agreement", "conflicts", "resolve",
           "export_sheet", "import_sheet", "demo_appraise", "demo_items", "study_levels"]

DEMO_REVIEWER = "demo appraiser (scripted)"
KINDS = ("human", "resolution", "undo")

JBI_ANSWERS = ("Yes", "No", "Unclear", "Not applicable")
ROBINS_ANSWERS = ("Low", "Moderate", "Serious", "Critical", "No information")
ROB2_ANSWERS = ("Low", "Some concerns", "High")
#: Traffic-light levels, best to worst.
LEVELS = ("low", "some concerns", "high", "critical", "unclear", "not applicable")


@dataclass(frozen=True)
class Tool:
    """An appraisal tool: its items (key -> question) and allowed answers (answer -> level)."""

    key: str
    name: str
    items: tuple[tuple[str, str], ...]
    answers: tuple[str, ...]
    levels: Mapping[str, str]
    has_overall: bool
    source: str

    @property
    def item_keys(self) -> list[str]:
        return [k for k, _ in self.items] + (["overall"] if self.has_overall else [])

    def question(self, item: str) -> str:
        if item == "overall":
            return "Overall risk of bias"
        return dict(self.items)[item]


_JBI_LEVEL = {"Yes": "low", "No": "high", "Unclear": "unclear", "Not applicable": "not applicable"}
TOOLS: dict[str, Tool] = {
    "jbi-case-report": Tool(
        "jbi-case-report", "JBI checklist for case reports", (
            ("1", "Were the patient's demographic characteristics clearly described?"),
            ("2", "Was the patient's history clearly described and presented as a timeline?"),
            ("3", "Was the current clinical condition of the patient on presentation clearly described?"),
            ("4", "Were diagnostic tests or assessment methods and the results clearly described?"),
            ("5", "Was the intervention(s) or treatment procedure(s) clearly described?"),
            ("6", "Was the post-intervention clinical condition clearly described?"),
            ("7", "Were adverse events (harms) or unanticipated events identified and described?"),
            ("8", "Does the case report provide takeaway lessons?")),
        JBI_ANSWERS, _JBI_LEVEL, False,
        "Moola S et al. Chapter 7: Systematic reviews of etiology and risk. JBI Manual for Evidence Synthesis, 2020"),
    "jbi-case-series": Tool(
        "jbi-case-series", "JBI checklist for case series", (
            ("1", "Were there clear criteria for inclusion in the case series?"),
            ("2", "Was the condition measured in a standard, reliable way for all participants included?"),
            ("3", "Were valid methods used for identification of the condition for all participants included?"),
            ("4", "Did the case series have consecutive inclusion of participants?"),
            ("5", "Did the case series have complete inclusion of participants?"),
            ("6", "Was there clear reporting of the demographics of the participants in the study?"),
            ("7", "Was there clear reporting of clinical information of the participants?"),
            ("8", "Were the outcomes or follow up results of cases clearly reported?"),
            ("9", "Was there clear reporting of the presenting site(s)/clinic(s) demographic information?"),
            ("10", "Was statistical analysis appropriate?")),
        JBI_ANSWERS, _JBI_LEVEL, False,
        "Munn Z et al. Methodological quality of case series studies. JBI Evid Synth 2020;18:2127-33"),
    "robins-i": Tool(
        "robins-i", "ROBINS-I", (
            ("D1", "Bias due to confounding"),
            ("D2", "Bias in selection of participants into the study"),
            ("D3", "Bias in classification of interventions"),
            ("D4", "Bias due to deviations from intended interventions"),
            ("D5", "Bias due to missing data"),
            ("D6", "Bias in measurement of outcomes"),
            ("D7", "Bias in selection of the reported result")),
        ROBINS_ANSWERS, {"Low": "low", "Moderate": "some concerns", "Serious": "high", "Critical": "critical",
                         "No information": "unclear"}, True,
        "Sterne JAC et al. ROBINS-I. BMJ 2016;355:i4919"),
    "rob2": Tool(
        "rob2", "RoB 2", (
            ("D1", "Bias arising from the randomisation process"),
            ("D2", "Bias due to deviations from intended interventions"),
            ("D3", "Bias due to missing outcome data"),
            ("D4", "Bias in measurement of the outcome"),
            ("D5", "Bias in selection of the reported result")),
        ROB2_ANSWERS, {"Low": "low", "Some concerns": "some concerns", "High": "high"}, True,
        "Sterne JAC et al. RoB 2. BMJ 2019;366:l4898"),
}

_DESIGN_TOOL = {
    "case report": "jbi-case-report",
    "case series": "jbi-case-series",
    "phase 1": "jbi-case-series", "phase 1/2": "jbi-case-series", "phase 2": "jbi-case-series",
    "single-arm trial": "jbi-case-series",
    "observational": "robins-i", "cohort": "robins-i", "non-randomised comparison": "robins-i",
    "randomised controlled": "rob2", "randomised controlled trial": "rob2", "rct": "rob2",
}


def tool_for_design(design: Any) -> str | None:
    """The tool key for a study design ("case report" -> ``jbi-case-report``...); None if none fits."""
    if design is None or (isinstance(design, float) and pd.isna(design)):
        return None
    key = str(design).strip().lower().replace("randomized", "randomised")
    if key in _DESIGN_TOOL:
        return _DESIGN_TOOL[key]
    if "random" in key:
        return "rob2"
    if "case report" in key:
        return "jbi-case-report"
    if "series" in key or "phase" in key:
        return "jbi-case-series"
    if "observational" in key or "cohort" in key:
        return "robins-i"
    return None


def _tool(tool: str) -> Tool:
    if tool not in TOOLS:
        raise InputError(f"appraisal tool {tool!r} is not one of {', '.join(TOOLS)}: pick one")
    return TOOLS[tool]


def level_of(tool: str, answer: Any) -> str:
    """The traffic-light level of an answer (``low``, ``some concerns``, ``high``, ``critical``, ``unclear``...)."""
    return _tool(tool).levels.get(str(answer), "unclear")


def _check(store: ReviewStore | None, record_id: Any, tool: str, item: Any, answer: Any, reviewer: Any) -> tuple:
    t = _tool(tool)
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise InputError(f"reviewer name is empty ({reviewer!r}) for study {record_id}: give the reviewer's name")
    if not isinstance(record_id, str) or not record_id.strip():
        raise InputError(f"study id is empty ({record_id!r}): give the record id (e.g. 'pmid:123')")
    item = str(item).strip()
    if item.lower() == "overall":
        item = "overall"
    if item not in t.item_keys:
        raise InputError(f"study {record_id}: item {item!r} is not in {t.name} (items: {', '.join(t.item_keys)}): "
                         "pick one")
    answer = str(answer).strip() if answer is not None else ""
    match = {a.lower(): a for a in t.answers}.get(answer.lower())
    if match is None:
        raise InputError(f"study {record_id}, {t.name} item {item}: answer {answer!r} is not one of "
                         f"{', '.join(t.answers)}: pick one")
    return record_id.strip(), item, match, reviewer.strip()


def _append(store: ReviewStore, rows: list[tuple]) -> list[int]:
    return store.append_appraisals(rows)


def record_judgement(store: ReviewStore, record_id: str, tool: str, item: str, answer: str, reviewer: str,
                     support: str | None = None, *, kind: str = "human") -> int:
    """Validate and append one judgement in its own transaction; returns its id once durable.

    Raises
    ------
    InputError
        Unknown tool or item, an answer outside the tool's options, an empty reviewer or id:
        one line naming the study and the field; nothing written.
    """
    if kind not in ("human", "resolution"):
        raise InputError(f"judgement kind {kind!r} is not 'human' or 'resolution'")
    record_id, item, answer, reviewer = _check(store, record_id, tool, item, answer, reviewer)
    support = support.strip() if isinstance(support, str) and support.strip() else None
    return _append(store, [(record_id, tool, item, answer, support, reviewer, kind, utcnow())])[0]


def history(store: ReviewStore) -> pd.DataFrame:
    """Every judgement ever appended, oldest first (undo rows included)."""
    return store.appraisals()


def _effective(hist: pd.DataFrame) -> pd.DataFrame:
    """Replay the history: each row pushes, an undo pops the reviewer's latest on that item."""
    if hist.empty:
        return hist
    stacks: dict[tuple, list[int]] = {}
    rows = hist.sort_values(["created_at", "appraisal_id"], kind="stable").to_dict("records")
    for i, row in enumerate(rows):
        if row["kind"] == "undo":
            # the undo names its target in 'support' as 'undoes <appraisal_id>'
            target = int(str(row["support"]).split()[-1])
            for key, stack in stacks.items():
                if stack and rows[stack[-1]]["appraisal_id"] == target:
                    stack.pop()
                    break
            continue
        key = (row["record_id"], row["tool"], row["item"], row["reviewer"], row["kind"])
        stacks.setdefault(key, []).append(i)
    keep = sorted(stack[-1] for stack in stacks.values() if stack)
    return pd.DataFrame([rows[i] for i in keep], columns=hist.columns)


def current_judgements(store: ReviewStore, reviewer: str | None = None) -> pd.DataFrame:
    """The latest effective judgement per study, tool, item, reviewer (and kind)."""
    cur = _effective(history(store))
    if reviewer is not None and not cur.empty:
        cur = cur[cur["reviewer"] == reviewer]
    return cur.reset_index(drop=True)


def undo_last(store: ReviewStore, reviewer: str, record_id: str | None = None) -> int | None:
    """Append an undo row revoking ``reviewer``'s latest effective judgement (on ``record_id``).

    Returns the undo row's id, or None when there was nothing to undo.
    """
    hist = history(store)
    cur = _effective(hist)
    if cur.empty:
        return None
    mine = cur[(cur["reviewer"] == reviewer) & (cur["kind"] != "undo")]
    if record_id is not None:
        mine = mine[mine["record_id"] == record_id]
    if mine.empty:
        return None
    last = mine.sort_values(["created_at", "appraisal_id"]).iloc[-1]
    return _append(store, [(last["record_id"], last["tool"], last["item"], None,
                            f"undoes {int(last['appraisal_id'])}", reviewer, "undo", utcnow())])[0]


def final_judgements(store: ReviewStore) -> pd.DataFrame:
    """One answer per study, tool and item: the latest resolution, else the reviewers' answer when
    they agree (or only one answered), else ``conflict``.

    Returns
    -------
    pandas.DataFrame
        record_id, tool, item, answer, level, support, basis ('resolution', 'agreed', 'single',
        'conflict'), reviewers.
    """
    cur = current_judgements(store)
    cols = ["record_id", "tool", "item", "answer", "level", "support", "basis", "reviewers"]
    if cur.empty:
        return pd.DataFrame(columns=cols)
    keys = ["record_id", "tool", "item"]
    cur = cur.sort_values(["created_at", "appraisal_id"], kind="stable")
    human = cur[cur["kind"] == "human"]
    agg = human.groupby(keys, sort=False).agg(n_answers=("answer", "nunique"), n_reviewers=("reviewer", "size"),
                                              reviewers=("reviewer", lambda r: "; ".join(sorted(r))),
                                              answer=("answer", "last"), support=("support", "last"))
    res = cur[cur["kind"] == "resolution"].groupby(keys, sort=False).agg(r_answer=("answer", "last"),
                                                                         r_support=("support", "last"))
    order = cur[keys].drop_duplicates()
    frame = order.merge(agg.reset_index(), on=keys, how="left").merge(res.reset_index(), on=keys, how="left")
    resolved = frame["r_answer"].notna()
    agreed = ~resolved & (frame["n_answers"] == 1)
    frame["basis"] = "conflict"
    frame.loc[agreed, "basis"] = ["agreed" if n > 1 else "single" for n in frame.loc[agreed, "n_reviewers"]]
    frame.loc[resolved, "basis"] = "resolution"
    frame.loc[resolved, "answer"] = frame.loc[resolved, "r_answer"]
    frame.loc[resolved, "support"] = frame.loc[resolved, "r_support"]
    conflict = frame["basis"] == "conflict"
    frame.loc[conflict, "answer"] = "conflict"
    frame.loc[conflict, "support"] = None
    frame["reviewers"] = frame["reviewers"].fillna("")
    levels = {(t, a): lv for t, tool in TOOLS.items() for a, lv in tool.levels.items()}
    frame["level"] = [levels.get((t, a), "unclear") for t, a in zip(frame["tool"], frame["answer"])]
    return frame[cols].reset_index(drop=True)


def _wide(store: ReviewStore, tool: str | None) -> pd.DataFrame:
    cur = current_judgements(store)
    if cur.empty:
        return pd.DataFrame()
    cur = cur[cur["kind"] == "human"]
    if tool is not None:
        cur = cur[cur["tool"] == tool]
    if cur.empty:
        return pd.DataFrame()
    cur = cur.assign(key=cur["record_id"] + "|" + cur["tool"] + "|" + cur["item"])
    return cur.pivot(index="key", columns="reviewer", values="answer")


def agreement(store: ReviewStore, tool: str | None = None) -> pd.DataFrame:
    """Pairwise agreement on the items both reviewers judged: n, agreed, percent, Cohen's kappa.

    kappa is computed over the answers themselves (reviewlib.screening's
    :func:`~reviewlib.agreement.kappa`); NaN when undefined.
    """
    import itertools

    from ..screening.agreement import kappa

    wide = _wide(store, tool)
    rows = []
    for a, b in itertools.combinations(list(wide.columns), 2):
        both = wide[[a, b]].dropna()
        la, lb = list(both[a]), list(both[b])
        n = len(both)
        agreed = int(sum(x == y for x, y in zip(la, lb)))
        rows.append((a, b, tool or "all", n, agreed, 100.0 * agreed / n if n else float("nan"), kappa(la, lb)))
    return pd.DataFrame(rows, columns=["reviewer_a", "reviewer_b", "tool", "n", "agreed", "percent_agreement",
                                       "kappa"])


def conflicts(store: ReviewStore) -> pd.DataFrame:
    """Items whose reviewers' answers differ and that no resolution settles yet (with the answers)."""
    final = final_judgements(store)
    open_ = final[final["basis"] == "conflict"][["record_id", "tool", "item"]]
    wide = _wide(store, None)
    if open_.empty or wide.empty:
        return pd.DataFrame(columns=["record_id", "tool", "item"])
    keys = open_["record_id"] + "|" + open_["tool"] + "|" + open_["item"]
    answers = wide.reindex(keys.tolist()).reset_index(drop=True)
    return pd.concat([open_.reset_index(drop=True), answers], axis=1)


def resolve(store: ReviewStore, record_id: str, tool: str, item: str, resolver: str, answer: str | None = None,
            *, take: str | None = None, support: str | None = None) -> int:
    """Settle an item with a judgement of kind ``resolution`` (give ``answer`` or ``take=<reviewer>``)."""
    if (answer is None) == (take is None):
        raise InputError("resolve needs exactly one of answer='<answer>' or take='<reviewer>'")
    if take is not None:
        cur = current_judgements(store, reviewer=take)
        mine = cur[(cur["record_id"] == record_id) & (cur["tool"] == tool) & (cur["item"] == str(item))
                   & (cur["kind"] == "human")]
        if mine.empty:
            raise InputError(f"reviewer {take!r} did not judge study {record_id} {tool} item {item}: "
                             "take a reviewer who did, or give answer=")
        answer = mine["answer"].iloc[-1]
        support = support or f"took {take}'s answer"
    return record_judgement(store, record_id, tool, item, answer, resolver, support, kind="resolution")


# -- sheets ---------------------------------------------------------------------------------------
SHEET_COLUMNS = ["record_id", "study", "study_design", "tool", "item", "question", "allowed_answers", "current_answer",
                 "answer", "support", "reviewer"]


def _safe(value: Any) -> Any:
    """A cell value as written: the sheet writers (reviewlib.safe_cells) neutralise formulas for every cell."""
    return value


def _unsafe(value: Any) -> str:
    """A cell read back as text (the reader already removed safe_cells' guard)."""
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def export_sheet(store: ReviewStore, path: str | os.PathLike, studies: pd.DataFrame,
                 reviewer: str | None = None, design: str | None = None) -> Path:
    """Write the appraisal sheet: one row per study x item of the tool its design calls for.

    Parameters
    ----------
    store : ReviewStore
    path : path-like
        ``.csv`` or ``.xlsx``.
    studies : pandas.DataFrame
        ``record_id``, the design column and optionally ``study`` (a label) and ``tool``
        (overrides the design's tool).
    reviewer : str, optional
        Prefill ``current_answer`` with this reviewer's latest answers.
    design : str, optional
        The column of study designs; default the protocol's ``study_design`` role when the
        study table carries its schema.
    """
    from .tables import role_field

    design = design or role_field("study_design", studies, required=False)
    cur = current_judgements(store, reviewer=reviewer) if reviewer else pd.DataFrame()
    known = {}
    if not cur.empty:
        known = {(r["record_id"], r["tool"], r["item"]): r["answer"] for r in cur.to_dict("records")}
    rows = []
    for s in studies.to_dict("records"):
        shown = s.get(design) if design else None
        tool = s.get("tool") or tool_for_design(shown)
        if tool is None:
            logger.info("no appraisal tool for %s (design %r)", s.get("record_id"), shown)
            continue
        t = TOOLS[tool]
        for item in t.item_keys:
            rows.append({"record_id": s["record_id"], "study": _safe(s.get("study", "")), "study_design": _safe(shown),
                         "tool": tool, "item": item, "question": t.question(item),
                         "allowed_answers": " | ".join(t.answers),
                         "current_answer": known.get((s["record_id"], tool, item), ""),
                         "answer": "", "support": "", "reviewer": reviewer or ""})
    sheet = pd.DataFrame(rows, columns=SHEET_COLUMNS)
    path = Path(path)
    if path.suffix.lower() == ".xlsx":   # strings, never formulas (reviewlib.safe_cells)
        write_xlsx({"appraisal": sheet}, path)
    else:                                # formula-starting text guarded with a leading '
        write_safe_csv(sheet, path)
    logger.info("wrote appraisal sheet %s (%d rows)", path, len(sheet))
    return path


def import_sheet(store: ReviewStore, path: str | os.PathLike, reviewer: str | None = None) -> int:
    """Append the answers of a filled-in appraisal sheet; returns how many rows were appended.

    Every row is checked first (one clear line for the first bad row, with its line number);
    nothing is written unless all are valid.  Rows with an empty ``answer`` are skipped, and an
    answer equal to the reviewer's current one is not appended again (importing twice adds nothing).
    """
    path = Path(path)
    frame = read_sheet(path, "appraisal sheet", ('record_id', 'tool', 'item', 'answer'))
    now = utcnow()
    rows = []
    for line, r in enumerate(frame.to_dict("records"), start=2):
        answer = _unsafe(r.get("answer")).strip()
        if not answer:
            continue
        who = _unsafe(r.get("reviewer")).strip() or (reviewer or "")
        try:
            rid, item, ans, who = _check(store, _unsafe(r["record_id"]), _unsafe(r["tool"]), _unsafe(r["item"]),
                                         answer, who)
        except InputError as exc:
            raise InputError(f"appraisal sheet {path}, line {line}: {exc}", source=str(path)) from None
        support = _unsafe(r.get("support")).strip() or None
        rows.append((rid, _unsafe(r["tool"]), item, ans, support, who, "human", now))
    cur = current_judgements(store)
    known = {}
    if not cur.empty:
        human = cur[cur["kind"] == "human"]
        known = {(r["record_id"], r["tool"], r["item"], r["reviewer"]): (r["answer"], r["support"])
                 for r in human.to_dict("records")}
    new = [row for row in rows if known.get((row[0], row[1], row[2], row[5]), (None,))[0] != row[3]]
    if new:
        _append(store, new)
    logger.info("imported %d appraisal judgements from %s (%d unchanged)", len(new), path, len(rows) - len(new))
    return len(new)


# -- demo ------------------------------------------------------------------------------------------
def _reported(value: Any) -> bool:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return False
    return str(value).strip().lower() not in ("", "not reported", "nan", "none", "<na>")


#: The scripted demo's answer per tool when the study reports what an item asks about, and when not.
_DEMO_REPORTED = {"jbi-case-report": ("Yes", "No"), "jbi-case-series": ("Yes", "No"),
                  "robins-i": ("Moderate", "No information"), "rob2": ("Low", "Some concerns")}
#: The scripted demo's answer to every other item (nothing in a study table can settle it).
_DEMO_FIXED = {
    "jbi-case-report": {"2": ("Unclear", "timeline not checked from the abstract"),
                        "4": ("Unclear", "diagnostic tests not checked from the abstract"),
                        "8": ("Yes", "reports a first-in-disease experience")},
    "jbi-case-series": {"1": ("Unclear", "inclusion criteria not checked from the abstract"),
                        "3": ("Unclear", "classification criteria not checked from the abstract"),
                        "4": ("Unclear", "consecutive inclusion not stated"),
                        "5": ("Unclear", "complete inclusion not stated"),
                        "9": ("Unclear", "sites not checked from the abstract")},
    "robins-i": {"D1": ("Serious", "no adjustment for confounding reported"),
                 "D2": ("Moderate", "selection into the cohort not described"),
                 "D3": ("Low", "the intervention is well defined"),
                 "D4": ("Low", "single administration"),
                 "D6": ("Moderate", "outcome assessors not blinded"),
                 "D7": ("Moderate", "no registered analysis plan checked"),
                 "overall": ("Serious", "worst domain: confounding")},
    "rob2": {"D1": ("Low", "randomised, placebo-controlled"), "D2": ("Low", "double-blind"),
             "D4": ("Low", "blinded outcome assessment"), "D5": ("Some concerns", "protocol not checked"),
             "overall": ("Some concerns", "worst domain: some concerns")},
}


def demo_items(protocol: Any) -> dict[str, dict[str, list[str]]]:
    """The protocol's ``demo: appraisal`` section: per tool, item -> the field(s) whose being
    reported answers it (e.g. ``{"jbi-case-series": {"8": ["follow_up"]}}``); {} when absent."""
    section = (getattr(protocol, "demo", None) or {}).get("appraisal") or {}
    if not isinstance(section, Mapping):
        raise InputError("protocol demo: appraisal must map each tool to {item: field or [fields]}")
    out: dict[str, dict[str, list[str]]] = {}
    for tool, items in section.items():
        if tool not in TOOLS:
            raise InputError(f"protocol demo: appraisal names tool {tool!r}: tools are {', '.join(TOOLS)}")
        out[tool] = {str(item): [str(f) for f in (fields if isinstance(fields, (list, tuple)) else [fields])]
                     for item, fields in (items or {}).items()}
    return out


def _demo_answers(tool: str, s: Mapping[str, Any], items: Mapping[str, Sequence[str]],
                  size_field: str | None) -> list[tuple[str, str, str]]:
    """The scripted answers of one study: items the protocol ties to fields follow whether the
    study reports them; the sample-size item of a case series follows its size; the rest fixed."""
    yes, no = _DEMO_REPORTED[tool]
    fixed = _DEMO_FIXED[tool]
    out = []
    for key, _question in TOOLS[tool].items:
        if key in items:
            fields = list(items[key])
            shown = "; ".join(f"{f.replace('_', ' ')} {s.get(f) if _reported(s.get(f)) else 'not reported'}"
                              for f in fields)
            out.append((key, yes if all(_reported(s.get(f)) for f in fields) else no, shown))
        elif tool == "jbi-case-series" and key == "10":
            n = pd.to_numeric(s.get(size_field), errors="coerce") if size_field else float("nan")
            out.append((key, "Not applicable" if (pd.notna(n) and n < 10) else "Unclear",
                        f"{int(n) if pd.notna(n) else 'unknown'} patients; descriptive only"))
        elif key in fixed:
            out.append((key, *fixed[key]))
        else:
            out.append((key, "Unclear" if tool.startswith("jbi") else no, "not checked by the demo script"))
    if "overall" in fixed:
        out.append(("overall", *fixed["overall"]))
    return out


def demo_appraise(store: ReviewStore, studies: pd.DataFrame, protocol: Any = None) -> int:
    """Record scripted demo judgements for every study of the table; returns the rows appended.

    The reviewer is :data:`DEMO_REVIEWER`; each answer follows from the study's design (the
    protocol's ``study_design`` role), its size (``sample_size``) and whether it reports the
    fields the protocol's ``demo: appraisal`` section ties to an item; its support text starts
    with ``"demo (scripted from the study table): "``.  Studies that already have demo
    judgements are skipped, so a rerun adds nothing.

    Parameters
    ----------
    store : ReviewStore
    studies : pandas.DataFrame
        The study table (:func:`reviewlib.evidence.tables.study_table`).
    protocol : Protocol, optional
        For the roles and ``demo: appraisal``; default the protocol the study table was built with.
    """
    from .tables import role_field
    from .extraction import load_schema

    schema = load_schema(protocol) if protocol is not None else None
    design_field = role_field("study_design", studies, schema)
    size_field = role_field("sample_size", studies, schema, required=False)
    items = demo_items(protocol) if protocol is not None else {}
    done = set()
    cur = current_judgements(store, reviewer=DEMO_REVIEWER)
    if not cur.empty:
        done = set(cur["record_id"])
    now = utcnow()
    rows = []
    for s in studies.to_dict("records"):
        rid = s.get("record_id")
        tool = tool_for_design(s.get(design_field))
        if not rid or tool is None or rid in done:
            continue
        for item, answer, why in _demo_answers(tool, s, items.get(tool, {}), size_field):
            rows.append((rid, tool, item, answer, f"demo (scripted from the study table): {why}", DEMO_REVIEWER,
                         "human", now))
    if rows:
        _append(store, rows)
    logger.info("demo appraiser: %d judgements for %d studies", len(rows), len({r[0] for r in rows}))
    return len(rows)


def study_levels(final: pd.DataFrame) -> pd.DataFrame:
    """Per study and tool, the worst traffic-light level over its items (the overall judgement
    when the tool has one; for JBI checklists, which have none, 'high' if any item is No,
    'some concerns' if any is Unclear, else 'low').

    Returns
    -------
    pandas.DataFrame
        record_id, tool, level, basis (the item or rule that set it).
    """
    rows = []
    for (rid, tool), g in final.groupby(["record_id", "tool"], sort=False):
        overall = g[g["item"] == "overall"]
        if not overall.empty:
            rows.append((rid, tool, overall["level"].iloc[0], "overall judgement"))
            continue
        levels = set(g["level"])
        if "high" in levels or "critical" in levels:
            rows.append((rid, tool, "high", "an item answered No"))
        elif "unclear" in levels:
            rows.append((rid, tool, "some concerns", "an item answered Unclear"))
        else:
            rows.append((rid, tool, "low", "every applicable item answered Yes"))
    return pd.DataFrame(rows, columns=["record_id", "tool", "level", "basis"])
