"""Outcomes as events among patients treated, read from titles and abstracts.

The protocol's ``outcomes:`` section lists the outcomes to synthesise, each with the words
that state it (case-insensitive regular expressions)::

    outcomes:
      - name: CRS any grade
        words: ['cytokine release syndrome', '\\bCRS\\b']
        not_with: ['grade\\s*(?:≥|>=)\\s*3']     # a clause naming these is about another outcome
      - name: ICANS
        words: ['\\bICANS\\b', 'neurotoxicity']

:func:`extract_outcomes` reads, per record and outcome, the events and the denominator from
the sentence that states them, and keeps that sentence as evidence:

* "CRS occurred in 12 of 15 patients", "12/15 (80%) had CRS" -> 12 / 15 (``count of n``);
* "grade 1 CRS in 80% of 10 patients" -> 8 / 10 (``percent of n``);
* "12 patients (80%) developed CRS" -> 12 / 15 (``count with percent``);
* "CRS in all 6 patients" -> 6 / 6; "two patients had ICANS" -> 2 / the study's n (``count``);
* "no ICANS was observed", "none developed ICANS", "without CRS" -> 0 / the study's n
  (``none``).

Numbers in "grade 3", "day 7", "IL-6", "HER2", "12 months" are never read as counts.  A clause that
names an outcome's ``not_with`` words is left to the outcome it is about ("no grade >= 3 CRS"
is a zero for severe CRS, not for CRS of any grade).  Nothing found means not reported: the
extractor never guesses.  The study's n (``n_patients`` from the extraction) is the
denominator only when a sentence gives events without one.

Values are stored with the other extracted values (field ``outcome:<name>``, value
``"events/n"``, the sentence as evidence) by :func:`save`; a reviewer confirms or corrects one
with :func:`correct` or through a sheet (:func:`export_sheet`, :func:`import_sheet`; appended,
never overwritten), and :func:`current_outcomes` lets the latest reviewer value win.  :func:`events_table` gives the (events, n) per study for
:func:`reviewlib.evidence.synthesis.pool_proportions`.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import pandas as pd

from ..safe_cells import read_sheet, write_csv as write_safe_csv, write_xlsx
from ..user_regex import UnsafePattern, compile_pattern
from ..errors import InputError, ProtocolError
from ..protocol import Protocol, section_of
from ..store import ReviewStore
from .extraction import NUMBER_REGEX, parse_number, split_sentences

logger = logging.getLogger(__name__)

__all__ = ["Outcome", "load_outcomes", "extract_outcomes", "extract_text", "save", "correct", "current_outcomes",
           "events_table", "export_sheet", "import_sheet", "FIELD_PREFIX", "COLUMNS", "SHEET_COLUMNS"]

FIELD_PREFIX = "outcome:"
COLUMNS = ["record_id", "outcome", "events", "n", "rule", "evidence", "status"]


@dataclass(frozen=True)
class Outcome:
    """One outcome to synthesise: its name and the words (compiled) that state it."""

    name: str
    words: tuple[re.Pattern, ...]
    not_with: tuple[re.Pattern, ...] = ()
    label: str | None = None


def _compile(pattern: Any, where: str, source: str) -> re.Pattern:
    try:
        return compile_pattern(str(pattern), re.IGNORECASE)  # protocol input: RE2 where it can run it
    except re.error as exc:
        raise ProtocolError(f"protocol {source}: {where}: {pattern!r} is not a valid regular expression ({exc}): "
                            "fix it", source=source) from None
    except UnsafePattern as exc:
        raise ProtocolError(f"protocol {source}: {where}: {pattern!r} is refused: {exc}; drop the look-around "
                            "or the nested repetition", source=source) from None


def load_outcomes(protocol: Protocol | str | dict | list | None = None) -> list[Outcome]:
    """The protocol's ``outcomes:`` section as :class:`Outcome` objects (empty if it has none).

    Raises
    ------
    ProtocolError
        An outcome without a name or without words, a duplicate name, or a bad regular
        expression: one line naming the outcome and what to do.
    """
    if isinstance(protocol, list):
        section, source = protocol, "<outcomes list>"
    else:
        section, source = section_of(protocol, SECTION, "<outcomes mapping>")
        if isinstance(section, dict) and SECTION in section and not isinstance(protocol, Protocol):
            section = section[SECTION]
    if section is None:
        return []
    if isinstance(section, dict):    # {name: {words: ...}} also accepted
        section = [{"name": k, **(v if isinstance(v, dict) else {"words": v})} for k, v in section.items()]
    if not isinstance(section, list):
        raise ProtocolError(f"protocol {source}: outcomes must be a list of {{name, words}}", source=source)
    out, seen = [], set()
    for i, entry in enumerate(section, start=1):
        if not isinstance(entry, dict) or not str(entry.get("name") or "").strip():
            raise ProtocolError(f"protocol {source}: outcome {i} has no name: give each outcome a name",
                                source=source)
        name = str(entry["name"]).strip()
        if name in seen:
            raise ProtocolError(f"protocol {source}: outcome {name!r} is listed twice: keep one", source=source)
        seen.add(name)
        words = entry.get("words")
        if isinstance(words, str):
            words = [words]
        if not words:
            raise ProtocolError(f"protocol {source}: outcome {name!r} has no words: list the words that state it "
                                "(e.g. words: ['cytokine release syndrome', '\\bCRS\\b'])", source=source)
        not_with = entry.get("not_with") or []
        if isinstance(not_with, str):
            not_with = [not_with]
        out.append(Outcome(name, tuple(_compile(w, f"outcome {name!r} words", source) for w in words),
                           tuple(_compile(w, f"outcome {name!r} not_with", source) for w in not_with),
                           entry.get("label")))
    return out


# -- reading one sentence -------------------------------------------------------------------------
#: The protocol section that declares the outcomes (a section name, not an extraction field).
SECTION = "outcomes"
#: The review sheet's worksheet name.
SHEET_NAME = SECTION

_NUM = NUMBER_REGEX
_NOUNS = r"(?:patients?|pts|participants?|subjects?|individuals?|cases?|recipients?|children|adults?|women|men)"
# numbers that are not counts: grades, days, CD markers, durations, doses, ages, references
_MASKS = [
    re.compile(r"\bgrades?\s*(?:≥|>=|=>|>|≤|<=|<)?\s*(?:[0-5]|I{1,3}V?|IV|V)(?:\s*(?:-|–|to|or|and|/)\s*(?:[0-5]|I{1,3}V?|IV))?\b",
               re.IGNORECASE),
    re.compile(r"(?:≥|>=|=>|>|≤|<=|<)\s*(?:grade\s*)?[0-5]\b", re.IGNORECASE),
    re.compile(r"\b(?:CD|IL-?|HLA-?|day|days|week|weeks|month|months|year|years|d|m|w)\s*[+-]?\d+(?:[.,]\d+)?\b",
               re.IGNORECASE),
    # marker, gene and score names written in capitals with a number (HER2, PD-1, SLEDAI-2K)
    re.compile(r"\b[A-Z][A-Z]{1,5}-?\d+[A-Z]?\b"),
    re.compile(r"\b\d+(?:[.,]\d+)?\s*(?:-|–)?\s*(?:days?|weeks?|months?|years?|yrs?|hours?|h|mg|kg|g|ml|mL|cells|"
               r"x\s*10|×\s*10|mg/m2|/kg|years?-old|-year-old)\b", re.IGNORECASE),
    re.compile(r"\b(?:19|20)\d\d\b"),
]
_COUNT_OF_N = re.compile(rf"(?P<x>{_NUM})\s*(?:/|of|out of)\s*(?:the\s+)?(?P<n>{_NUM})(?!\s*%)(?![\d.])", re.IGNORECASE)
_PCT_OF_N = re.compile(rf"(?P<p>\d+(?:[.,]\d+)?)\s*%\s*(?:of\s+(?:the\s+|all\s+)?(?P<n>{_NUM})\s+{_NOUNS})?",
                       re.IGNORECASE)
_COUNT_PCT = re.compile(rf"(?P<x>{_NUM})\s+(?:\w+\s+){{0,2}}?{_NOUNS}\s*\(\s*(?P<p>\d+(?:[.,]\d+)?)\s*%\s*\)",
                        re.IGNORECASE)
_COUNT_NOUN = re.compile(rf"(?P<x>{_NUM})\s+(?:of\s+(?:the|these)\s+)?(?:\w+\s+){{0,2}}?{_NOUNS}\b", re.IGNORECASE)
_ALL = re.compile(rf"\b(?:in\s+)?all\s+(?:(?P<n>{_NUM})\s+)?(?:\w+\s+){{0,1}}?{_NOUNS}\b|\bevery\s+patient\b",
                  re.IGNORECASE)
_SINGLE = re.compile(r"\b(?:a|one|a single|only one)\s+(?:\w+\s+){0,1}?(?:patient|participant|subject|case)\b",
                     re.IGNORECASE)
# "-free" counts only after the mention ("CRS-free"); before it, "drug-free remission" is the outcome itself
_NONE = re.compile(r"\b(?:no|none|not|without|neither|nor|never|absence|free of|did not|didn't|nobody)\b",
                   re.IGNORECASE)
# a bound is not a count: "in up to 90% of patients", "as many as 12"
_BOUND = re.compile(r"\b(?:up to|as many as|as few as|at least|at most|more than|less than|fewer than)\s*$",
                    re.IGNORECASE)
_IN_COUNT = re.compile(rf"\b(?:occurred|observed|seen|reported|developed)\s+in\s+(?P<x>{_NUM})\b(?!\s*[%/]|\s+of\b)",
                       re.IGNORECASE)
_CLAUSE = re.compile(r";|\s[-–]\s|,\s+(?:but|while|whereas|and\s+(?=no\b))\s+|\bwhereas\b|\bwhile\b|\bbut\b",
                     re.IGNORECASE)


def _mask(text: str) -> str:
    for pat in _MASKS:
        text = pat.sub(lambda m: "#" * len(m.group(0)), text)
    return text


def _num(text: str | None) -> float | None:
    if text is None:
        return None
    return parse_number(text)


def _clauses(sentence: str) -> list[str]:
    parts, start = [], 0
    for m in _CLAUSE.finditer(sentence):
        parts.append(sentence[start:m.start()])
        start = m.end()
    parts.append(sentence[start:])
    return [p for p in parts if p.strip()]


def _mentions(outcome: Outcome, clause: str) -> list[re.Match]:
    return [m for w in outcome.words for m in w.finditer(clause)]


def _read_clause(clause: str, n_study: int | None) -> tuple[int, int, str] | None:
    """(events, n, rule) stated in one clause that mentions the outcome, or None."""
    masked = _mask(clause)
    for m in _COUNT_OF_N.finditer(masked):
        x, n = _num(m.group("x")), _num(m.group("n"))
        if x is not None and n and x == int(x) and n == int(n) and 0 <= x <= n <= 100000:
            return int(x), int(n), "count of n"
    for m in _COUNT_PCT.finditer(masked):
        x, p = _num(m.group("x")), float(m.group("p").replace(",", "."))
        if x is not None and 0 < p <= 100:
            n = round(x * 100 / p)
            if n_study and abs(n_study * p / 100 - x) < 0.6:
                n = n_study
            return int(x), int(n), "count with percent"
    for m in _PCT_OF_N.finditer(masked):
        if _BOUND.search(masked[:m.start()]):
            continue
        p = float(m.group("p").replace(",", "."))
        n = _num(m.group("n")) if m.group("n") else None
        if not 0 <= p <= 100:
            continue
        if n:
            return int(round(p * n / 100)), int(n), "percent of n"
        if n_study:
            return int(round(p * n_study / 100)), int(n_study), "percent of the study's n"
    m = _ALL.search(masked)
    if m:
        n = _num(m.group("n")) if m.group("n") else n_study
        if n:
            return int(n), int(n), "all patients"
    for m in _COUNT_NOUN.finditer(masked):
        x = _num(m.group("x"))
        if x is not None and x == int(x) and n_study and x <= n_study:
            return int(x), int(n_study), "count, study's n"
    for m in _IN_COUNT.finditer(masked):
        x = _num(m.group("x"))
        if x is not None and x == int(x) and n_study and x <= n_study:
            return int(x), int(n_study), "count, study's n"
    if n_study and (_SINGLE.search(masked) or (n_study == 1 and re.search(r"\bthe patient\b", masked, re.I))):
        return 1, int(n_study), "one patient, study's n"
    return None


def _negated(outcome: Outcome, clause: str) -> bool:
    for m in _mentions(outcome, clause):
        before = clause[:m.start()]
        tokens = re.findall(r"[\w'-]+", before)[-6:]
        window = " ".join(tokens)
        after = clause[m.end():m.end() + 60]
        if _NONE.search(window) or re.match(r"^\s*(?:\w+\s+){0,2}?(?:was|were|did)\s+(?:not|never)\b", after,
                                           re.IGNORECASE) or re.match(r"^-free\b", after):
            return True
    return False


def extract_text(title: str | None, abstract: str | None, outcome: Outcome,
                 n_patients: int | None = None) -> dict[str, Any] | None:
    """Events and denominator for one outcome in one record, with the evidence sentence.

    Returns None when no sentence states the outcome with a count (not reported).
    """
    sentences = [s for s, _ in split_sentences(abstract or "")]
    if title:
        sentences.append(" ".join(str(title).split()))
    zero = None
    for sentence in sentences:
        for clause in _clauses(sentence):
            if not _mentions(outcome, clause) or any(p.search(clause) for p in outcome.not_with):
                continue
            if _negated(outcome, clause):
                counted = _read_clause(clause, None)
                if counted and counted[0] == 0:
                    return {"events": 0, "n": counted[1], "rule": "none of n", "evidence": sentence}
                if zero is None and n_patients:
                    zero = {"events": 0, "n": int(n_patients), "rule": "none, study's n", "evidence": sentence}
                continue
            got = _read_clause(clause, n_patients)
            if got:
                x, n, rule = got
                return {"events": x, "n": n, "rule": rule, "evidence": sentence}
    return zero


def _n_study(value: Any) -> int | None:
    number = pd.to_numeric(value, errors="coerce")
    if number is None or pd.isna(number) or number <= 0:
        return None
    return int(number)


def extract_outcomes(records: pd.DataFrame, outcomes: Sequence[Outcome] | Protocol | str | dict | list,
                     n_patients: dict[str, Any] | pd.Series | None = None) -> pd.DataFrame:
    """Read every outcome from every record.

    Parameters
    ----------
    records : pandas.DataFrame
        ``record_id`` (or ``pmid``), ``title``, ``abstract``.
    outcomes : list of Outcome, or a protocol / its ``outcomes`` section
    n_patients : mapping record_id -> n, optional
        The study's patients (the extraction's ``n_patients``): the denominator when a sentence
        gives events alone, or says none had the outcome.

    Returns
    -------
    pandas.DataFrame
        One row per record x outcome found: record_id, outcome, events, n, rule, evidence,
        status ('machine').
    """
    if not (isinstance(outcomes, (list, tuple)) and all(isinstance(o, Outcome) for o in outcomes)):
        outcomes = load_outcomes(outcomes)
    if "record_id" not in records:
        records = records.assign(record_id=["pmid:" + str(p) for p in records["pmid"]])
    n_map = dict(n_patients.items()) if n_patients is not None else {}
    rows = []
    for rec in records.to_dict("records"):
        n_study = _n_study(n_map.get(rec["record_id"]))
        for outcome in outcomes:
            got = extract_text(rec.get("title"), rec.get("abstract"), outcome, n_study)
            if got:
                if n_study and got["n"] > n_study and got["rule"] == "count of n":
                    logger.info("%s %s: denominator %d above the study's %d patients", rec["record_id"],
                                outcome.name, got["n"], n_study)
                rows.append({"record_id": rec["record_id"], "outcome": outcome.name, **got, "status": "machine"})
    return pd.DataFrame(rows, columns=COLUMNS)


# -- the store ----------------------------------------------------------------------------------
def _value(events: int, n: int) -> str:
    return f"{int(events)}/{int(n)}"


def _parse_value(value: Any, where: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
    if not m:
        raise InputError(f"{where}: value {value!r} is not 'events/n' (e.g. '3/12'): correct it")
    x, n = int(m.group(1)), int(m.group(2))
    if n == 0 or x > n:
        raise InputError(f"{where}: events ({x}) must be between 0 and n ({n}), n above 0: correct it")
    return x, n


def save(store: ReviewStore, frame: pd.DataFrame) -> int:
    """Append the extracted outcomes to the store's extracted values (method 'machine')."""
    rows = [{"record_id": r["record_id"], "field": FIELD_PREFIX + r["outcome"], "value": _value(r["events"], r["n"]),
             "evidence": r["evidence"], "confidence": None, "method": "machine", "note": r["rule"]}
            for r in frame.to_dict("records")]
    return store.append_extractions(rows) if rows else 0


def correct(store: ReviewStore, record_id: str, outcome: str, events: Any, n: Any, reviewer: str,
            note: str | None = None, evidence: str | None = None) -> int:
    """Append a reviewer's events/n for one study and outcome (confirming or correcting the machine's).

    Raises
    ------
    InputError
        Missing, negative or fractional counts, events above n, or an empty reviewer: one line
        naming the study and the outcome.
    """
    where = f"study {record_id}, outcome {outcome!r}"
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise InputError(f"{where}: reviewer name is empty: give the reviewer's name")
    for label, value in (("events", events), ("n", n)):
        number = pd.to_numeric(value, errors="coerce")
        if value is None or pd.isna(number):
            raise InputError(f"{where}: {label} is missing ({value!r}): give a count")
        if number < 0 or number != int(number):
            raise InputError(f"{where}: {label} is {value!r}: give a whole count, 0 or more")
    x, total = _parse_value(f"{int(float(events))}/{int(float(n))}", where)
    return store.append_extractions([{"record_id": record_id, "field": FIELD_PREFIX + outcome, "value": _value(x, total),
                                      "evidence": evidence, "method": "reviewer", "reviewer": reviewer.strip(),
                                      "note": note}])


def current_outcomes(store: ReviewStore, record_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """The current events/n per study and outcome: a reviewer's latest value wins over the machine's.

    Returns
    -------
    pandas.DataFrame
        record_id, outcome, events, n, rule, evidence, status ('machine' or 'verified'), reviewer.
    """
    ext = store.extractions()
    ext = ext[ext["field"].str.startswith(FIELD_PREFIX)]
    if record_ids is not None:
        ext = ext[ext["record_id"].isin(set(record_ids))]
    out = []
    for (rid, field), group in ext.groupby(["record_id", "field"], sort=False):
        group = group.sort_values(["created_at", "extraction_id"])
        human = group[group["method"] == "reviewer"]
        machine = group[group["method"] != "reviewer"]
        row = human.iloc[-1] if not human.empty else machine.iloc[-1]
        x, n = _parse_value(row["value"], f"study {rid}, {field}")
        evidence = row["evidence"] if isinstance(row["evidence"], str) else (
            machine.iloc[-1]["evidence"] if not machine.empty else None)
        out.append({"record_id": rid, "outcome": field[len(FIELD_PREFIX):], "events": x, "n": n,
                    "rule": row["note"] if row["method"] != "reviewer" else "reviewer",
                    "evidence": evidence, "status": "verified" if not human.empty else "machine",
                    "reviewer": row["reviewer"] if not human.empty else None})
    return pd.DataFrame(out, columns=COLUMNS + ["reviewer"])


def events_table(current: pd.DataFrame, outcome: str, studies: pd.DataFrame | None = None) -> pd.DataFrame:
    """The (events, n) per study for one outcome, ready for ``pool_proportions``.

    Parameters
    ----------
    current : pandas.DataFrame
        :func:`current_outcomes` (or :func:`extract_outcomes`).
    outcome : str
    studies : pandas.DataFrame, optional
        The study table (record_id, study label and other columns such as the intervention,
        population or design for subgroups); only its studies are kept, in its order, and its
        columns are joined.
    """
    rows = current[current["outcome"] == outcome][["record_id", "events", "n", "evidence", "status"]]
    if studies is not None:
        rows = studies.merge(rows, on="record_id", how="inner")
    return rows.reset_index(drop=True)


# -- the review sheet ------------------------------------------------------------------------------
SHEET_COLUMNS = ["record_id", "study", "outcome", "current_value", "status", "evidence", "corrected_value",
                 "reviewer", "note"]


def _safe(value: Any) -> Any:
    """A cell value as written: the sheet writers (reviewlib.safe_cells) neutralise formulas for every cell."""
    return value


def _cell(value: Any) -> str:
    """A cell read back as stripped text (the reader already removed safe_cells' guard)."""
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value).strip()


def export_sheet(store: ReviewStore, path: str | os.PathLike, outcomes: Sequence[str] | None = None,
                 studies: pd.DataFrame | None = None) -> Path:
    """Write the outcomes sheet (CSV, or XLSX by the name): one row per study x outcome, with the
    current events/n, its status and evidence sentence, and empty ``corrected_value`` (``"events/n"``),
    ``reviewer`` and ``note`` for the reviewer.  Outcomes a study does not report get a row too
    (``current_value`` empty) when ``outcomes`` and ``studies`` are given."""
    cur = current_outcomes(store)
    labels = dict(zip(studies["record_id"], studies.get("study", studies["record_id"]))) if studies is not None else {}
    known = {(r["record_id"], r["outcome"]): r for r in cur.to_dict("records")}
    ids = list(studies["record_id"]) if studies is not None else list(dict.fromkeys(cur["record_id"]))
    names = list(outcomes) if outcomes is not None else list(dict.fromkeys(cur["outcome"]))
    rows = []
    for rid in ids:
        for name in names:
            r = known.get((rid, name))
            if r is None and studies is None:
                continue
            rows.append({"record_id": rid, "study": _safe(labels.get(rid, "")), "outcome": name,
                         "current_value": f"{r['events']}/{r['n']}" if r else "",
                         "status": r["status"] if r else "not reported", "evidence": _safe(r["evidence"]) if r else "",
                         "corrected_value": "", "reviewer": "", "note": ""})
    sheet = pd.DataFrame(rows, columns=SHEET_COLUMNS)
    path = Path(path)
    if path.suffix.lower() == ".xlsx":   # strings, never formulas (reviewlib.safe_cells)
        write_xlsx({SHEET_NAME: sheet}, path)
    else:                                # formula-starting text guarded with a leading '
        write_safe_csv(sheet, path)
    return path


def import_sheet(store: ReviewStore, path: str | os.PathLike, reviewer: str | None = None) -> int:
    """Append the sheet's corrections (rows with a ``corrected_value``); returns how many.

    Every row is checked first; a bad one raises one line with its line number and nothing is
    written.  A value equal to the current one is not appended again (importing twice adds nothing).
    """
    path = Path(path)
    frame = read_sheet(path, "outcomes sheet", ('record_id', 'outcome', 'corrected_value'))
    todo = []
    for line, r in enumerate(frame.to_dict("records"), start=2):
        value = _cell(r.get("corrected_value"))
        if not value:
            continue
        rid, name = _cell(r["record_id"]), _cell(r["outcome"])
        where = f"outcomes sheet {path}, line {line}: study {rid}, outcome {name!r}"
        who = _cell(r.get("reviewer")) or (reviewer or "")
        if not who:
            raise InputError(f"{where}: no reviewer: fill the reviewer column or pass reviewer=", source=str(path))
        x, n = _parse_value(value, where)
        todo.append((rid, name, x, n, who, _cell(r.get("note")) or None))
    cur = {(r["record_id"], r["outcome"]): (r["events"], r["n"]) for r in current_outcomes(store).to_dict("records")}
    added = 0
    for rid, name, x, n, who, note in todo:
        if cur.get((rid, name)) == (x, n) and note is None:
            continue
        correct(store, rid, name, x, n, who, note=note)
        added += 1
    logger.info("imported %d outcome corrections from %s", added, path)
    return added
