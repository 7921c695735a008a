"""Extract study characteristics from titles and abstracts, and keep reviewers' corrections.

The fields, their allowed values and the words that signal them are declared in the
protocol's ``extraction`` section; this module holds no vocabulary of its own beyond
English number words and negation words, so another review declares its own fields.

Field kinds
-----------
categorical
    ``values``: value -> synonyms (case-insensitive regular expressions, or mappings with
    ``pattern``, ``weight``, ``context`` and ``window``).  One value (``resolve: score`` or
    ``priority``) or several (``multiple: true``).  ``negated`` names the value a negated
    mention means ("without premedication" -> ``none``); ``cues`` are mentions that only
    count when negated; ``combine`` turns several values found together into one.
integer, number
    ``patterns`` containing ``{NUM}`` (digits or number words such as "twelve" or
    "forty-two"), ``sum_patterns`` whose matches in one sentence joined by "and" add up,
    ``constant`` patterns giving a fixed value, and for numbers ``units`` (a ``unit`` group).
derived
    ``from`` another field through ``map`` (``otherwise`` for the rest).
breakdown
    Counts per value of another categorical field (``of``), e.g. participants per condition of
    a mixed study: "15 patients (8 asthma, 3 COPD, 4 bronchiectasis)", "eight with asthma and
    three with COPD", "asthma (n = 8), COPD (n = 4)", "n=6 asthma, n=2 COPD".  The words
    naming a value are that field's own synonyms; ``nouns`` (optional) are the count nouns
    allowed between a number and the value ("3 patients with ...").  The value reads
    ``"asthma: 8; COPD: 3"`` (in the order written; synonyms of one value add up).  One
    sentence must pair numbers with two or more values; with ``total`` (an integer field) the
    split must add up to it, or fall short of it in a sentence that also states the total (the
    rest stays unsplit); other splits (responders per condition...) are ignored.  When ``of``
    has a single value the breakdown is that value: total.
reference
    Set by reviewers only (e.g. ``duplicate_of``).

Any field may have ``fallback`` (fill from another field's value) and
``not_applicable_when`` (leave "not reported" for some values of another field).

How values are chosen
---------------------
Text is split into sentences; the title weighs ``title_weight``, sentences before the
first one that matches ``study_cues`` (or in a BACKGROUND/INTRODUCTION section) weigh
``background_weight``, the others 1.  A mention preceded in its clause by a negation
(no, not, without, neither, nor, never, absence of, free of) or followed by "was not",
"was omitted", "-free" is negated.  Nothing found means ``not reported``: the extractor
never guesses.  Each value comes with its supporting sentence and a confidence in [0, 1]
(a heuristic score, not a calibrated probability).

Reviewers
---------
:func:`export_sheet` writes one row per study x field with the machine value and
evidence; reviewers fill ``corrected_value`` (and ``reviewer``, ``note``);
:func:`import_sheet` checks every row, then appends the corrections to the store with
``method='reviewer'`` (nothing is overwritten).  :func:`current_values` lets a reviewer's
latest value win and says, per field, whether a value is ``machine`` or ``verified``.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import re
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import yaml

from ..atomic import files_digest
from ..errors import InputError, ProtocolError
from ..protocol import Protocol, load_protocol, section_of
from ..records import read_csv as read_records_csv
from ..safe_cells import read_sheet as read_review_sheet, write_csv as write_safe_csv, write_xlsx
from ..store import ReviewStore, record_id_for
from ..user_regex import UnsafePattern, any_of, compile_pattern

logger = logging.getLogger(__name__)

NOT_REPORTED = "not reported"
SEPARATOR = "; "
KINDS = ("categorical", "integer", "number", "derived", "breakdown", "reference")
STATUS_MACHINE = "machine"
STATUS_VERIFIED = "verified"
META_KEY = "extraction_schema"

# -- English numbers (grammar, not domain vocabulary) --------------------------------------
_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
          "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORD_VALUE = {w: i for i, w in enumerate(_UNITS)}
_WORD_VALUE.update({w: 20 + 10 * i for i, w in enumerate(_TENS)})
_WORD_VALUE.update({"single": 1, "a dozen": 12, "dozen": 12, "hundred": 100, "one hundred": 100})
_NUM_WORDS = (r"(?:(?:%s)(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?|a dozen|one hundred|%s)"
              % ("|".join(_TENS), "|".join(sorted(_UNITS, key=len, reverse=True))))
NUMBER_REGEX = r"(?<![\w.])(?:\d+(?:[.,]\d+)?|" + _NUM_WORDS + r")(?![\w])"

_NEGATION_WORDS = {"no", "not", "without", "neither", "nor", "never", "absence", "none", "lack",
                   "lacked", "lacking", "omitting", "avoiding", "n't"}
# "was not reported / stated / specified ..." negates the reporting, not the thing itself
_NOT_REPORTING = r"(?!\s+(?:reported|stated|specified|described|mentioned|documented|detailed|given in|available|known)\b)"
_POST_NEGATION = re.compile(
    r"^(?:-free\b|\s*(?:(?:\w+\s+){0,1})(?:was|were|is|are|has been|have been|did|does|do)\s+"
    r"(?:not" + _NOT_REPORTING + r"|never|omitted|withheld|avoided|spared|unnecessary)\b|\s+(?:was|were)\s+omitted\b)",
    re.IGNORECASE)
# "no information on X", "no details of X": the negation is about the report, not about X
_NEGATED_REPORTING = re.compile(
    r"\b(?:no|not|without)\s+(?:\w+\s+){0,2}?(?:information|details?|data|mention|description|report)\s+"
    r"(?:on|of|about|regarding|concerning)\s+(?:\w+\s+){0,3}$", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"[;:]|\b(?:but|whereas|however|although|while)\b", re.IGNORECASE)
_TOKEN = re.compile(r"[\w'-]+")
_BACKGROUND_LABELS = {"background", "introduction", "objective", "objectives", "aim", "aims",
                      "purpose", "context", "rationale", "importance"}
_LABEL = re.compile(r"^\s*([A-Z][A-Z /&-]{2,40}|[A-Z][a-z]+(?: [a-z]+){0,3}):\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


def parse_number(text: str) -> float | None:
    """Parse digits ("15", "5.5") or English number words ("fifteen", "forty-two").

    Returns None when ``text`` is not a number.
    """
    t = str(text).strip().lower().replace(",", ".")
    try:
        return float(t)
    except ValueError:
        pass
    if t in _WORD_VALUE:
        return float(_WORD_VALUE[t])
    parts = re.split(r"[- ]", t)
    if len(parts) == 2 and parts[0] in _TENS and parts[1] in _WORD_VALUE:
        return float(_WORD_VALUE[parts[0]] + _WORD_VALUE[parts[1]])
    return None


# -- schema -------------------------------------------------------------------------------
@dataclass
class Synonym:
    """One way a value is written."""

    regex: re.Pattern
    weight: float = 1.0
    context: re.Pattern | None = None
    window: int | None = None


@dataclass
class Field:
    """One extraction field, as declared in the protocol."""

    name: str
    kind: str
    label: str
    multiple: bool = False
    values: dict[str, list[Synonym]] = dc_field(default_factory=dict)
    allowed: list[str] = dc_field(default_factory=list)
    resolve: str = "score"
    negated: str | None = None
    cues: list[re.Pattern] = dc_field(default_factory=list)
    combine: list[tuple[list[str], str]] = dc_field(default_factory=list)
    patterns: list[re.Pattern] = dc_field(default_factory=list)
    sum_patterns: list[re.Pattern] = dc_field(default_factory=list)
    constant: list[tuple[re.Pattern, float]] = dc_field(default_factory=list)
    units: dict[str, float] = dc_field(default_factory=dict)
    maximum: float | None = None
    source: str | None = None
    mapping: dict[str, str] = dc_field(default_factory=dict)
    otherwise: str | None = None
    fallback: dict[str, Any] | None = None
    not_applicable_when: dict[str, list[str]] = dc_field(default_factory=dict)
    total: str | None = None
    nouns: list[str] = dc_field(default_factory=list)
    of_allowed: list[str] = dc_field(default_factory=list)
    _any: re.Pattern | None = dc_field(default=None, repr=False)

    def any_mention(self) -> re.Pattern:
        """One regular expression matching wherever any synonym or cue of the field could match
        (a prefilter: sentences it does not match are skipped)."""
        if self._any is None:
            parts = [syn.regex for syns in self.values.values() for syn in syns] + list(self.cues)
            self._any = any_of(parts)  # RE2 patterns stay on RE2
        return self._any

    def normalise(self, raw: Any) -> str:
        """Check a value given by a reviewer and return its canonical spelling.

        Raises
        ------
        ValueError
            With a message naming the allowed values.
        """
        text = "" if raw is None else str(raw).strip()
        if self.kind == "reference":
            return text
        if text.lower() == NOT_REPORTED:
            return NOT_REPORTED
        if self.kind == "breakdown":
            parts = parse_breakdown(text)
            if parts is None:
                raise ValueError(f"{text!r} is not a breakdown for {self.name}: write 'value: n; value: n' "
                                 f"(or '{NOT_REPORTED}')")
            lookup = {v.lower(): v for v in self.of_allowed}
            out_parts: dict[str, int] = {}
            for k, n in parts.items():
                if k.lower() not in lookup:
                    raise ValueError(f"{k!r} is not an allowed value of {self.source} in {self.name} "
                                     f"(allowed: {', '.join(self.of_allowed)})")
                out_parts[lookup[k.lower()]] = out_parts.get(lookup[k.lower()], 0) + n
            return format_breakdown(out_parts)
        if self.kind in ("integer", "number"):
            num = parse_number(text)
            if num is None or (self.kind == "integer" and num != int(num)):
                raise ValueError(f"{text!r} is not a{'n integer' if self.kind == 'integer' else ' number'} "
                                 f"(or '{NOT_REPORTED}') for {self.name}")
            return str(int(num)) if self.kind == "integer" else _fmt_number(num)
        lookup = {v.lower(): v for v in self.allowed}
        parts = [p.strip() for p in text.split(";") if p.strip()] if self.multiple else [text]
        out = []
        for p in parts:
            if p.lower() not in lookup:
                raise ValueError(f"{p!r} is not an allowed value of {self.name} "
                                 f"(allowed: {', '.join(self.allowed)})")
            out.append(lookup[p.lower()])
        if not out:
            raise ValueError(f"empty value for {self.name}")
        return SEPARATOR.join(dict.fromkeys(out))


@dataclass
class Schema:
    """The extraction fields of a protocol, compiled."""

    fields: dict[str, Field]
    study_cues: list[re.Pattern]
    background_weight: float = 0.5
    title_weight: float = 2.0
    raw: dict[str, Any] = dc_field(default_factory=dict, repr=False)
    #: role -> field: the parts fields play in the engine's tables, figures and cohort rule
    #: (:data:`ROLES`), from the protocol's ``extraction: roles``.
    roles: dict[str, str] = dc_field(default_factory=dict)
    #: The protocol's ``report`` section (summary tables, figures, gap statements over these fields),
    #: kept with the schema so a study table knows what to draw.
    report: dict[str, Any] = dc_field(default_factory=dict)

    def role(self, name: str) -> str | None:
        """The field that plays role ``name`` (one of :data:`ROLES`), or None if the protocol names none."""
        return self.roles.get(name)

    @property
    def names(self) -> list[str]:
        """Field names in protocol order."""
        return list(self.fields)

    def field(self, name: str) -> Field:
        """A field by name (KeyError if unknown)."""
        return self.fields[name]


#: The roles a protocol's fields can play for the engine (``extraction: roles``), and what each means.
ROLES = {
    "population": "who was treated: the condition that rows of the evidence map and per-population tables list",
    "intervention": "what was given: the columns of the evidence map",
    "study_design": "the design of each study (case report ... randomised trial)",
    "comparator": "whether a study had a control group (yes/no, or derived from the design)",
    "sample_size": "the number of patients treated (an integer field)",
    "same_study": "a reviewer's note that a report repeats another study's cohort (a reference field)",
}


class SchemaRef:
    """A schema carried in ``DataFrame.attrs["extraction_schema"]`` so later tables know the
    vocabulary (pandas deep-copies attrs on every operation: this reference copies as itself)."""

    def __init__(self, schema: Schema):
        self.schema = schema

    def __deepcopy__(self, memo: dict) -> "SchemaRef":
        return self

    def __repr__(self) -> str:
        return f"<extraction schema: {', '.join(self.schema.names)}>"


def _fmt_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}".rstrip("0").rstrip(".")


def _compile(pattern: str, where: str, source: str, numbered: bool = False) -> re.Pattern:
    text = str(pattern)
    if numbered:
        text = text.replace("{NUM2}", f"(?P<n2>{NUMBER_REGEX})").replace("{NUM}", f"(?P<n>{NUMBER_REGEX})")
    else:
        text = text.replace("{NUM2}", NUMBER_REGEX).replace("{NUM}", NUMBER_REGEX)
    try:
        return compile_pattern(text, re.IGNORECASE)  # RE2 (linear time) where it can run it
    except re.error as exc:
        raise ProtocolError(f"protocol {source}: extraction {where}: pattern {pattern!r} is not a valid "
                            f"regular expression ({exc}): fix it", source=source) from exc
    except UnsafePattern as exc:
        raise ProtocolError(f"protocol {source}: extraction {where}: pattern {pattern!r} is refused: {exc}; "
                            "drop the look-around or the nested repetition", source=source) from exc


def load_schema(protocol: Protocol | dict | str | os.PathLike | None = None) -> Schema:
    """Read and check the ``extraction`` section of a protocol.

    Parameters
    ----------
    protocol : Protocol, dict, path or None
        A loaded protocol, its ``extraction`` section as a dict, or a protocol name/path.

    Raises
    ------
    ProtocolError
        One line naming the field at fault: no values, unknown kind, bad regular expression,
        a reference to an unknown field or value.
    """
    if not isinstance(protocol, (dict, Protocol)):
        protocol = load_protocol(protocol)
    section, source = section_of(protocol, "extraction", "(extraction section)")
    if isinstance(protocol, dict):
        report = section.get("report") if isinstance(section, dict) else None
    else:
        report = section_of(protocol, "report")[0]
    try:    # the same sections give the same schema: checking and compiling its patterns is done once
        key = json.dumps([section, report, source], sort_keys=True, default=repr)
    except (TypeError, ValueError):
        key = None
    if key is not None and key in _SCHEMAS:
        return _SCHEMAS[key]
    schema = _build_schema(section, source, report)
    if key is not None:
        while len(_SCHEMAS) >= 16:
            _SCHEMAS.pop(next(iter(_SCHEMAS)))
        _SCHEMAS[key] = schema
    return schema


#: Schemas built by :func:`load_schema`, by the JSON of the sections they were built from.
_SCHEMAS: dict[str, "Schema"] = {}


def _build_schema(section: Any, source: str, report: Any) -> Schema:
    if not isinstance(section, dict) or not isinstance(section.get("fields"), dict) or not section["fields"]:
        raise ProtocolError(f"protocol {source} has no extraction.fields: declare the fields to extract "
                            "(see the default protocol in notebooks/)", source=source)
    fields: dict[str, Field] = {}
    for name, spec in section["fields"].items():
        name = str(name)
        if not isinstance(spec, dict):
            raise ProtocolError(f"protocol {source}: extraction field {name!r} is not a mapping: "
                                "give it at least a kind", source=source)
        kind = str(spec.get("kind", ""))
        if kind not in KINDS:
            raise ProtocolError(f"protocol {source}: extraction field {name!r} has unknown kind {kind!r}: "
                                f"use one of {', '.join(KINDS)}", source=source)
        f = Field(name=name, kind=kind, label=str(spec.get("label") or name))
        where = f"field {name!r}"
        if kind == "categorical":
            values = spec.get("values")
            if not isinstance(values, dict) or not values:
                raise ProtocolError(f"protocol {source}: extraction field {name!r} has no values: list its "
                                    f"allowed values and their synonyms under extraction.fields.{name}.values",
                                    source=source)
            f.multiple = bool(spec.get("multiple", False))
            f.resolve = str(spec.get("resolve", "score"))
            if f.resolve not in ("score", "priority"):
                raise ProtocolError(f"protocol {source}: extraction field {name!r}: resolve {f.resolve!r} "
                                    "is not 'score' or 'priority'", source=source)
            for value, synonyms in values.items():
                value = str(value)
                syns = []
                for s in synonyms or []:
                    if isinstance(s, dict):
                        if "pattern" not in s:
                            raise ProtocolError(f"protocol {source}: extraction field {name!r}, value {value!r}: "
                                                "a synonym mapping needs a pattern", source=source)
                        ctx = s.get("context")
                        syns.append(Synonym(_compile(s["pattern"], f"{where}, value {value!r}", source),
                                            float(s.get("weight", 1.0)),
                                            _compile(ctx, f"{where}, value {value!r}", source) if ctx else None,
                                            int(s["window"]) if s.get("window") is not None else None))
                    else:
                        syns.append(Synonym(_compile(s, f"{where}, value {value!r}", source)))
                f.values[value] = syns
            f.negated = str(spec["negated"]) if spec.get("negated") is not None else None
            f.cues = [_compile(c, where, source) for c in spec.get("cues") or []]
            for rule in spec.get("combine") or []:
                members = [str(v) for v in rule.get("all", [])]
                unknown = [v for v in members if v not in f.values]
                if len(members) < 2 or unknown or "value" not in rule:
                    raise ProtocolError(f"protocol {source}: extraction field {name!r}: a combine rule needs "
                                        f"'all' (two or more of its values) and 'value'; unknown: {unknown}",
                                        source=source)
                f.combine.append((members, str(rule["value"])))
            extra = [str(v) for v in spec.get("extra_values") or []]
            allowed = list(f.values) + [v for _, v in f.combine] + ([f.negated] if f.negated else []) + extra
            f.allowed = list(dict.fromkeys(allowed + [NOT_REPORTED]))
        elif kind in ("integer", "number"):
            pats = spec.get("patterns") or []
            if not pats:
                raise ProtocolError(f"protocol {source}: extraction field {name!r} ({kind}) has no patterns: "
                                    "give regular expressions with {NUM} where the number is", source=source)
            f.patterns = [_compile(p, where, source, numbered=True) for p in pats]
            for p in f.patterns:
                if "n" not in p.groupindex:
                    raise ProtocolError(f"protocol {source}: extraction field {name!r}: pattern {p.pattern[:60]!r} "
                                        "has no {NUM}: mark where the number is", source=source)
            f.sum_patterns = [_compile(p, where, source, numbered=True) for p in spec.get("sum_patterns") or []]
            for c in spec.get("constant") or []:
                if not isinstance(c, dict) or "pattern" not in c or "value" not in c:
                    raise ProtocolError(f"protocol {source}: extraction field {name!r}: a constant needs "
                                        "pattern and value", source=source)
                f.constant.append((_compile(c["pattern"], where, source), float(c["value"])))
            f.units = {str(k).lower(): float(v) for k, v in (spec.get("units") or {}).items()}
            if any("unit" in p.groupindex for p in f.patterns) and not f.units:
                raise ProtocolError(f"protocol {source}: extraction field {name!r}: patterns capture a unit "
                                    "but no units are declared: add units: {unit: factor}", source=source)
            f.maximum = float(spec["maximum"]) if spec.get("maximum") is not None else None
            f.allowed = [NOT_REPORTED]
        elif kind == "derived":
            f.source = str(spec.get("from") or "")
            f.mapping = {str(k): str(v) for k, v in (spec.get("map") or {}).items()}
            f.otherwise = str(spec["otherwise"]) if spec.get("otherwise") is not None else None
            vals = [str(v) for v in spec.get("values") or []]
            f.allowed = list(dict.fromkeys(vals + list(f.mapping.values())
                                           + ([f.otherwise] if f.otherwise else []) + [NOT_REPORTED]))
        elif kind == "breakdown":
            f.source = str(spec.get("of") or "")
            f.total = str(spec["total"]) if spec.get("total") is not None else None
            f.nouns = [str(x) for x in spec.get("nouns") or DEFAULT_NOUNS]
            for x in f.nouns:
                _compile(x, where, source)
            try:
                _breakdown_regexes(f)
            except UnsafePattern as exc:
                raise ProtocolError(f"protocol {source}: extraction {where}: nouns {f.nouns!r} are refused: {exc}; "
                                    "drop the look-around or the nested repetition", source=source) from exc
            f.allowed = [NOT_REPORTED]
        fb = spec.get("fallback")
        if fb is not None:
            if not isinstance(fb, dict) or "from" not in fb or not fb.get("rules"):
                raise ProtocolError(f"protocol {source}: extraction field {name!r}: fallback needs from and rules",
                                    source=source)
            f.fallback = {"from": str(fb["from"]), "rules": list(fb["rules"])}
        naw = spec.get("not_applicable_when") or {}
        f.not_applicable_when = {str(k): [str(x) for x in v] for k, v in naw.items()}
        fields[name] = f
    # cross-field references
    for f in fields.values():
        refs = ([f.source] if f.kind in ("derived", "breakdown") else []) \
            + ([f.total] if f.kind == "breakdown" and f.total else []) \
            + ([f.fallback["from"]] if f.fallback else []) + list(f.not_applicable_when)
        for r in refs:
            if r not in fields:
                raise ProtocolError(f"protocol {source}: extraction field {f.name!r} refers to unknown field "
                                    f"{r!r}: declare it or fix the name", source=source)
        if f.kind == "breakdown":
            if fields[f.source].kind != "categorical":
                raise ProtocolError(f"protocol {source}: extraction field {f.name!r} is a breakdown of "
                                    f"{f.source!r}, which is not a categorical field", source=source)
            if f.total and fields[f.total].kind != "integer":
                raise ProtocolError(f"protocol {source}: extraction field {f.name!r}: total {f.total!r} "
                                    "is not an integer field", source=source)
            f.of_allowed = [v for v in fields[f.source].allowed if v != NOT_REPORTED]
        if f.kind == "derived":
            src = fields[f.source]
            bad = [k for k in f.mapping if src.allowed and src.kind == "categorical" and k not in src.allowed]
            if bad:
                raise ProtocolError(f"protocol {source}: extraction field {f.name!r} maps values {bad} that "
                                    f"{f.source!r} does not have", source=source)
        if f.fallback:
            for rule in f.fallback["rules"]:
                numeric_ok = f.kind in ("integer", "number") and parse_number(str(rule.get("value"))) is not None
                if str(rule.get("value")) not in f.allowed and not numeric_ok:
                    raise ProtocolError(f"protocol {source}: extraction field {f.name!r}: fallback value "
                                        f"{rule.get('value')!r} is not one of its values", source=source)
    cues = [_compile(c, "study_cues", source) for c in section.get("study_cues") or []]
    if report is not None and not isinstance(report, dict):
        raise ProtocolError(f"protocol {source}: section 'report' must be a mapping (tables, figures, gaps), "
                            f"not {type(report).__name__}", source=source)
    return Schema(fields=fields, study_cues=cues,
                  background_weight=float(section.get("background_weight", 0.5)),
                  title_weight=float(section.get("title_weight", 2.0)),
                  raw={**section, "report": report} if report else section,
                  roles=_roles(section.get("roles"), fields, source), report=dict(report or {}))


def _roles(spec: Any, fields: Mapping[str, Field], source: str) -> dict[str, str]:
    """Check ``extraction: roles`` (role -> field name)."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise ProtocolError(f"protocol {source}: extraction roles must map roles to fields "
                            f"({', '.join(ROLES)}), not {type(spec).__name__}", source=source)
    out = {}
    for role, name in spec.items():
        if role not in ROLES:
            raise ProtocolError(f"protocol {source}: extraction role {role!r} is unknown: roles are "
                                f"{', '.join(ROLES)}", source=source)
        if str(name) not in fields:
            raise ProtocolError(f"protocol {source}: extraction role {role!r} names field {name!r}, which is "
                                "not declared under extraction.fields: declare it or fix the name", source=source)
        out[str(role)] = str(name)
    return out


# -- text ---------------------------------------------------------------------------------
@dataclass
class Sentence:
    """A sentence of a record with its weight (title, study or background)."""

    text: str
    role: str  # 'title', 'study', 'background'
    weight: float


def split_sentences(text: str) -> list[tuple[str, str | None]]:
    """Split text into sentences; each comes with the section label it starts, if any."""
    out: list[tuple[str, str | None]] = []
    for part in _SENTENCE_END.split(" ".join(str(text or "").split())):
        label = None
        m = _LABEL.match(part)
        # an ALL-CAPS label ("PATIENTS AND METHODS:") or a usual Title-case one ("Methods:")
        if m and (m.group(1).isupper() or m.group(1).strip().lower() in _BACKGROUND_LABELS | {
                "methods", "results", "conclusion", "conclusions", "findings", "interpretation",
                "case presentation", "case", "design", "patients", "discussion", "summary", "outcome"}):
            label = m.group(1).strip().lower()
            part = part[m.end():]
        if part.strip():
            out.append((part.strip(), label))
    return out


def sentences_of(title: str | None, abstract: str | None, schema: Schema,
                 sections: list[dict] | None = None) -> list[Sentence]:
    """The weighted sentences of a record: title, then abstract (structured sections if given)."""
    result: list[Sentence] = []
    if title and str(title).strip():
        result.append(Sentence(" ".join(str(title).split()), "title", schema.title_weight))
    pieces: list[tuple[str, str | None]] = []
    if sections:
        for sec in sections:
            label = str(sec.get("label") or "").strip().lower() or None
            for i, (s, inline) in enumerate(split_sentences(sec.get("text") or "")):
                pieces.append((s, inline or label))
    else:
        pieces = split_sentences(abstract or "")
    labelled = any(lbl for _, lbl in pieces)
    seen_study = False
    current_label: str | None = None
    for text, label in pieces:
        current_label = label or current_label
        if labelled and current_label:
            background = current_label in _BACKGROUND_LABELS
        else:
            if not seen_study and any(c.search(text) for c in schema.study_cues):
                seen_study = True
            background = not seen_study
        result.append(Sentence(text, "background" if background else "study",
                               schema.background_weight if background else 1.0))
    return result


def is_negated(text: str, start: int, end: int, window: int = 7) -> bool:
    """True if the mention text[start:end] is negated in its clause.

    Looks for a negation word among the ``window`` words before the mention (within the same
    clause: ';', ':', 'but', 'whereas'... end a clause) and for "was not", "was omitted",
    "-free" right after it.
    """
    before = text[:start]
    breaks = list(_CLAUSE_BREAK.finditer(before))
    if breaks:
        before = before[breaks[-1].end():]
    tokens = [t.lower() for t in _TOKEN.findall(before)][-window:]
    if _NEGATED_REPORTING.search(before):
        return False
    if any(t in _NEGATION_WORDS for t in tokens):
        return True
    if re.search(r"\b(?:absence|free)\s+of\s+(?:\w+\s+){0,3}$", before, re.IGNORECASE):
        return True
    return bool(_POST_NEGATION.match(text[end:end + 60]))


@dataclass
class Match:
    value: str
    start: int
    end: int
    sentence: int
    score: float
    role: str


# -- extraction of one field ----------------------------------------------------------------
@dataclass
class Extracted:
    """The value of one field for one record, with its evidence."""

    value: str = NOT_REPORTED
    evidence: str = ""
    confidence: float = 0.5
    raw: Any = None  # numbers as float, categorical as list of values


#: Skip the patterns that cannot match a record, because their literals are not in its text (found
#: for every pattern of the schema in one pass per record); False runs every pattern on every
#: sentence, as before.  Same outputs either way (tests/test_extraction_fast.py).
PRUNE = True
_UNSAFE_IN_ALTERNATION = re.compile(r"\\[1-9]|\(\?P=|\(\?[aiLmsux]+\)")


class _NeedleIndex:
    """The literals every match of each of a schema's patterns must contain
    (:func:`reviewlib.screening.eligibility.pattern_needles`), and a way to find them all in a text."""

    def __init__(self, patterns: Iterable[Any]):
        from ..screening.eligibility import pattern_needles
        self.conditions: dict[int, tuple[tuple[str, ...], ...] | None] = {}
        self._patterns = list(patterns)          # keeps the ids below valid
        needles: set[str] = set()
        for pat in self._patterns:
            source = getattr(pat, "pattern", None)
            conds = pattern_needles(source) if isinstance(source, str) else None
            self.conditions[id(pat)] = conds
            needles.update(n for cond in conds or () for n in cond)
        self.needles = sorted(needles)
        # needle -> the patterns it is a literal of; patterns without literals are always tried
        self.by_needle: dict[str, set[int]] = {}
        self.always: set[int] = set()
        for key, conds in self.conditions.items():
            if conds is None:
                self.always.add(key)
            for n in {n for cond in conds or () for n in cond}:
                self.by_needle.setdefault(n, set()).add(key)
        self._automaton = None
        try:
            import ahocorasick
        except ImportError:          # one scan per needle instead: same answer
            return
        if self.needles:
            self._automaton = ahocorasick.Automaton()
            for k, needle in enumerate(self.needles):
                self._automaton.add_word(needle, needle)
            self._automaton.make_automaton()

    def found(self, folded: str) -> set[str]:
        """The needles that occur in ``folded`` (case-folded text)."""
        if self._automaton is not None:
            return {n for _, n in self._automaton.iter(folded)} if folded else set()
        return {n for n in self.needles if n in folded}


def _needle_index(schema: "Schema") -> _NeedleIndex:
    index = schema.__dict__.get("_needle_index")
    if index is None:
        patterns = []
        for f in schema.fields.values():
            patterns += [syn.regex for syns in f.values.values() for syn in syns] + list(f.cues)
            patterns += list(f.patterns) + list(f.sum_patterns) + [p for p, _ in f.constant]
        index = schema.__dict__["_needle_index"] = _NeedleIndex(patterns)
        # each field's (value, synonym) pairs in order, and which pairs each pattern is the regex of
        index.pairs = {f.name: [(value, syn) for value, syns in f.values.items() for syn in syns]
                       for f in schema.fields.values()}
        index.owners = {}
        index.always_pairs = {}
        for name, pairs in index.pairs.items():
            for pos, (_, syn) in enumerate(pairs):
                key = id(syn.regex)
                if index.conditions.get(key) is None:
                    index.always_pairs.setdefault(name, []).append(pos)
                else:
                    index.owners.setdefault(key, []).append((name, pos))
    return index


class _Scan:
    """Which patterns of the schema one record's sentences can match."""

    def __init__(self, schema: "Schema", sents: list[Sentence]):
        from ..screening.eligibility import _fold
        self.index = _needle_index(schema)
        self.folded = [_fold(s.text) for s in sents]
        # the needles of each sentence (one Aho-Corasick pass each), and of the record
        self._needle_where: dict[str, set[int]] = {}
        for i, text in enumerate(self.folded):
            for n in self.index.found(text):
                self._needle_where.setdefault(n, set()).add(i)
        present = self._needle_where.keys()
        conditions = self.index.conditions
        candidates = set(self.index.always)
        for n in present:
            candidates |= self.index.by_needle[n]
        # the patterns whose every condition holds somewhere in the record
        self.ok = {k for k in candidates if conditions[k] is None
                   or all(any(n in present for n in cond) for cond in conditions[k])}
        self._where: dict[int, set[int] | None] = {}
        self._pairs: dict[str, list[int]] | None = None

    def synonyms(self, f: "Field") -> list[tuple[str, Synonym]]:
        """The field's (value, synonym) pairs, in order, whose regex may match the record."""
        if self._pairs is None:
            by_field: dict[str, list[int]] = {k: list(v) for k, v in self.index.always_pairs.items()}
            for key in self.ok:
                for name, pos in self.index.owners.get(key, ()):
                    by_field.setdefault(name, []).append(pos)
            self._pairs = by_field
        positions = self._pairs.get(f.name)
        if not positions:
            return []
        pairs = self.index.pairs[f.name]
        return [pairs[pos] for pos in sorted(set(positions))]

    def any_of(self, f: "Field") -> bool:
        """False when none of the field's patterns can match the record."""
        ids = f.__dict__.get("_pattern_ids")
        if ids is None:
            pats = ([syn.regex for syns in f.values.values() for syn in syns] + list(f.cues) + list(f.patterns)
                    + list(f.sum_patterns) + [p for p, _ in f.constant])
            ids = f.__dict__["_pattern_ids"] = (frozenset(id(p) for p in pats),
                                                 any(id(p) not in self.index.conditions for p in pats))
        return ids[1] or not ids[0].isdisjoint(self.ok)

    def may(self, pat: Any) -> bool:
        """False when ``pat`` cannot match any sentence of the record."""
        return id(pat) in self.ok or id(pat) not in self.index.conditions

    def may_in(self, pat: Any, i: int) -> bool:
        """False when ``pat`` cannot match sentence ``i``."""
        where = self.sentences(pat)
        return where is None or i in where

    def by_sentence(self, items: list, pattern_of=lambda item: item) -> list[list]:
        """For each sentence, the ``items`` (in their order) whose pattern may match it."""
        buckets: list[list] = [[] for _ in self.folded]
        for item in items:
            where = self.sentences(pattern_of(item))
            for i in (range(len(buckets)) if where is None else where):
                buckets[i].append(item)
        return buckets

    def sentences(self, pat: Any) -> set[int] | None:
        """The sentences ``pat`` may match (None: any of them)."""
        key = id(pat)
        if key in self._where:
            return self._where[key]
        conds = self.index.conditions.get(key)
        where: set[int] | None = None
        if conds is not None:
            if key not in self.ok:
                where = set()
            else:
                for cond in conds:
                    holding = set().union(*(self._holding(n) for n in cond))
                    where = holding if where is None else where & holding
        self._where[key] = where
        return where

    def _holding(self, needle: str) -> set[int]:
        return self._needle_where.get(needle, set())

    @staticmethod
    def prunable(f: "Field") -> bool:
        """The field's one "any mention" expression matches exactly where one of its patterns does
        (no backreference or global flag that the alternation would change)."""
        known = f.__dict__.get("_prunable")
        if known is None:
            parts = [syn.regex.pattern for syns in f.values.values() for syn in syns] + [c.pattern for c in f.cues]
            known = f.__dict__["_prunable"] = all(isinstance(p, str) and not _UNSAFE_IN_ALTERNATION.search(p)
                                                   for p in parts)
        return known


def _categorical(f: Field, sents: list[Sentence], scan: _Scan | None = None) -> Extracted:
    matches: list[Match] = []
    pruned = scan is not None and scan.prunable(f)
    anyre = None if pruned else f.any_mention()
    # (value, synonym) in the field's order: all of them, or (pruned) those that can match the record
    if pruned:
        synonyms = scan.synonyms(f)
        cues = [c for c in f.cues if scan.may(c)] if f.cues else []
    else:
        synonyms = [(value, syn) for value, syns in f.values.items() for syn in syns]
        cues = f.cues
    sents_to_read: Iterable[tuple[int, Sentence]] = enumerate(sents) if synonyms or cues or not pruned else ()
    if pruned and (synonyms or cues):   # each sentence with the synonyms and cues that may match it
        synonyms_in = scan.by_sentence(synonyms, lambda pair: pair[1].regex)
        cues_in = scan.by_sentence(list(cues))
    for i, s in sents_to_read:
        if anyre is not None and not anyre.search(s.text):
            continue
        if pruned and not synonyms_in[i] and not cues_in[i]:
            continue
        found: list[Match] = []
        for value, syn in (synonyms_in[i] if pruned else synonyms):
            for m in syn.regex.finditer(s.text):
                if syn.context is not None:
                    w = syn.window if syn.window is not None else len(s.text)
                    if not syn.context.search(s.text[max(0, m.start() - w): m.end() + w]):
                        continue
                found.append(Match(value, m.start(), m.end(), i, syn.weight * s.weight, s.role))
        for cue in (cues_in[i] if pruned else cues):
            for m in cue.finditer(s.text):
                if f.negated and is_negated(s.text, m.start(), m.end()):
                    found.append(Match(f.negated, m.start(), m.end(), i, s.weight, s.role))
        # longest mention wins where mentions overlap ("phase 1" inside "phase 1/2")
        found.sort(key=lambda x: (-(x.end - x.start), x.start))
        kept: list[Match] = []
        for m in found:
            if any(m.start < k.end and k.start < m.end for k in kept):
                continue
            kept.append(m)
        for m in kept:
            if m.value != f.negated and is_negated(s.text, m.start, m.end):
                if f.negated:
                    m.value = f.negated
                else:
                    continue
            matches.append(m)
    if not matches:
        return Extracted(NOT_REPORTED, "", 0.5, [])
    scores: dict[str, float] = {}
    strong: set[str] = set()
    for m in matches:
        scores[m.value] = scores.get(m.value, 0.0) + m.score
        if m.role != "background":
            strong.add(m.value)
    order = {v: i for i, v in enumerate(f.allowed)}
    if f.multiple:
        chosen = [v for v in f.values if v in strong] or [v for v in f.values if v in scores]
        for members, combined in f.combine:
            if all(v in chosen for v in members):
                chosen = [v for v in chosen if v not in members] + [combined]
        extra_neg = [f.negated] if f.negated and f.negated in scores and f.negated not in chosen else []
        chosen = chosen or extra_neg
    else:
        for members, combined in f.combine:
            member_scores = [scores.get(v, 0.0) for v in members if v != combined]
            if all(v in strong for v in members) and min(member_scores) >= 0.5 * max(member_scores):
                # the combination wins over its parts (each part must be more than a passing mention)
                scores[combined] = scores.get(combined, 0.0) + sum(scores[v] for v in members if v != combined)
                strong.add(combined)
                for v in members:
                    if v != combined:
                        scores.pop(v, None)
                        strong.discard(v)
        pool = [v for v in scores if v in strong] or list(scores)
        if f.resolve == "priority":
            best = min(pool, key=lambda v: order.get(v, 99))
        else:
            best = max(pool, key=lambda v: (scores[v], -order.get(v, 99)))
        chosen = [best]
    evidence = []
    for v in chosen:
        cands = [m for m in matches if m.value == v] or [m for m in matches if m.value in
                                                          next((mem for mem, c in f.combine if c == v), [])]
        if not cands:
            continue
        # prefer a sentence of the abstract over the title, study over background, then the weightiest
        best_m = max(cands, key=lambda m: ({"study": 2, "title": 1, "background": 0}[m.role], m.score, -m.sentence))
        text = sents[best_m.sentence].text
        if text not in evidence:
            evidence.append(text)
    total = sum(scores.values()) or 1.0
    top = sum(scores.get(v, 0.0) for v in chosen)
    support = sum(1 for m in matches if m.value in chosen)
    conf = 0.45 + 0.1 * min(support, 4) + (0.1 if any(m.role == "title" and m.value in chosen for m in matches) else 0)
    conf *= 0.5 + 0.5 * (top / total if not f.multiple else 1.0)
    if not any(v in strong for v in chosen):
        conf *= 0.7
    return Extracted(SEPARATOR.join(chosen), " | ".join(evidence), round(min(conf, 0.95), 2), chosen)


def _numeric(f: Field, sents: list[Sentence], scan: _Scan | None = None) -> Extracted:
    cands: list[tuple[float, int, str]] = []  # value, sentence, role
    patterns, sum_patterns, constant = f.patterns, f.sum_patterns, f.constant
    if scan is not None:       # only the patterns that can match the record, in their order
        if scan.any_of(f):
            patterns = [p for p in patterns if scan.may(p)]
            sum_patterns = [p for p in sum_patterns if scan.may(p)]
            constant = [(p, v) for p, v in constant if scan.may(p)]
        else:
            patterns, sum_patterns, constant = [], [], []
    if scan is not None and (patterns or sum_patterns or constant):
        patterns_in, sums_in = scan.by_sentence(patterns), scan.by_sentence(sum_patterns)
        constant_in = scan.by_sentence(constant, lambda pair: pair[0])
    for i, s in enumerate(sents if patterns or sum_patterns or constant else ()):
        for pat in (patterns_in[i] if scan is not None else patterns):
            for m in _overlapping(pat, s.text):
                nums = [parse_number(m.group(g)) for g in ("n", "n2") if g in pat.groupindex and m.group(g)]
                nums = [n for n in nums if n is not None]
                if not nums or is_negated(s.text, m.start(), m.end(), window=2):
                    continue
                value = max(nums)
                if "unit" in pat.groupindex and m.group("unit"):
                    unit = m.group("unit").lower().rstrip("s")
                    factor = f.units.get(unit, f.units.get(unit + "s"))
                    if factor is None:
                        continue
                    value *= factor
                cands.append((value, i, s.role))
        for pat in (sums_in[i] if scan is not None else sum_patterns):
            parts = list(pat.finditer(s.text))
            if len(parts) >= 2 and re.search(r"\band\b", s.text[parts[0].start():parts[-1].start()]):
                nums = [parse_number(m.group("n")) for m in parts]
                if all(n is not None for n in nums):
                    cands.append((float(sum(nums)), i, s.role))
        for pat, value in (constant_in[i] if scan is not None else constant):
            if pat.search(s.text):
                cands.append((value, i, s.role))
    if f.kind == "integer":
        cands = [c for c in cands if float(c[0]).is_integer()]
    if f.maximum is not None:
        cands = [c for c in cands if c[0] <= f.maximum]
    if not cands:
        return Extracted(NOT_REPORTED, "", 0.5, None)
    pool = [c for c in cands if c[2] != "background"] or cands
    value, i, role = max(pool, key=lambda c: (c[0], c[2] == "study"))
    agree = sum(1 for c in pool if c[0] == value)
    conf = min(0.95, 0.55 + 0.1 * agree + (0.1 if role != "background" else 0))
    text = _fmt_number(value) if f.kind == "number" else str(int(value))
    return Extracted(text, sents[i].text, round(conf, 2), value)


def _overlapping(pat: re.Pattern, text: str):
    """Every match of ``pat``, including those that start inside an earlier one
    ("25 of 35 patients" yields 25 and 35)."""
    pos = 0
    while pos <= len(text):
        m = pat.search(text, pos)
        if m is None:
            return
        yield m
        pos = m.start() + 1


def _apply_fallback(f: Field, result: dict[str, Extracted]) -> None:
    cur = result[f.name]
    if not f.fallback or cur.value != NOT_REPORTED:
        return
    src = result.get(f.fallback["from"])
    if src is None or src.raw is None or src.value == NOT_REPORTED:
        return
    raw = src.raw
    for rule in f.fallback["rules"]:
        ok = True
        if "equals" in rule:
            ok = ok and (raw == rule["equals"] or str(src.value) == str(rule["equals"]))
        if "min" in rule:
            ok = ok and isinstance(raw, (int, float)) and raw >= float(rule["min"])
        if "max" in rule:
            ok = ok and isinstance(raw, (int, float)) and raw <= float(rule["max"])
        if "in" in rule:
            ok = ok and str(src.value) in [str(x) for x in rule["in"]]
        if ok:
            value = str(rule["value"])
            raw_value: Any = [value]
            if f.kind in ("integer", "number"):
                raw_value = parse_number(value)
                value = _fmt_number(raw_value) if f.kind == "number" else str(int(raw_value))
            result[f.name] = Extracted(value, src.evidence, round(min(src.confidence, 0.6), 2), raw_value)
            return


def extract_record(title: str | None, abstract: str | None, schema: Schema,
                   sections: list[dict] | None = None) -> dict[str, Extracted]:
    """Extract every field of ``schema`` from one title and abstract.

    Returns
    -------
    dict
        field name -> :class:`Extracted` (value, evidence sentence, confidence).
    """
    sents = sentences_of(title, abstract, schema, sections)
    scan = _Scan(schema, sents) if PRUNE else None
    result: dict[str, Extracted] = {}
    for f in schema.fields.values():
        if f.kind == "categorical":
            result[f.name] = _categorical(f, sents, scan)
        elif f.kind in ("integer", "number"):
            result[f.name] = _numeric(f, sents, scan)
        else:
            result[f.name] = Extracted("" if f.kind == "reference" else NOT_REPORTED, "", 0.5, None)
    for f in schema.fields.values():
        _apply_fallback(f, result)
    for f in schema.fields.values():
        if f.kind == "breakdown":
            result[f.name] = _breakdown(f, sents, schema.fields[f.source], result, scan)
    for f in schema.fields.values():
        for other, values in f.not_applicable_when.items():
            if result[other].value in values:
                result[f.name] = Extracted(NOT_REPORTED, f"not applicable: {other} is {result[other].value}", 0.8)
    for f in schema.fields.values():
        if f.kind == "derived":
            src = result[f.source]
            value = derive(f, src.value)
            result[f.name] = Extracted(value, src.evidence, src.confidence, [value])
    return result


# -- breakdowns (counts per value of another field) ---------------------------------------
DEFAULT_NOUNS = [r"patients?", r"pts", r"participants?", r"subjects?", r"individuals?", r"cases?",
                 r"adults?", r"children", r"adolescents?", r"women", r"men"]
_BREAKDOWN_ITEM = re.compile(r"^\s*(.+?)\s*[:=]\s*(\d+)\s*$")


def parse_breakdown(value: Any) -> dict[str, int] | None:
    """Parse ``"asthma: 8; COPD: 3"`` (or a mapping) into {value: count}.

    Returns ``{}`` for "not reported" or empty, None when the text is not a breakdown.
    """
    if isinstance(value, dict):
        out: dict[str, int] = {}
        for k, v in value.items():
            n = parse_number(str(v))
            if n is None or n != int(n) or n < 0:
                return None
            out[str(k).strip()] = out.get(str(k).strip(), 0) + int(n)
        return out
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return {}
    text = str(value).strip()
    if not text or text.lower() == NOT_REPORTED:
        return {}
    out = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        m = _BREAKDOWN_ITEM.match(part)
        if not m:
            return None
        out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    return out


def format_breakdown(parts: dict[str, int]) -> str:
    """``{"asthma": 8, "COPD": 3}`` -> ``"asthma: 8; COPD: 3"`` ("not reported" when empty)."""
    return SEPARATOR.join(f"{k}: {int(n)}" for k, n in parts.items()) if parts else NOT_REPORTED


def _mentions(of: Field, text: str, scan: _Scan | None = None, sentence: int | None = None
              ) -> list[tuple[int, int, str]]:
    """Non-overlapping mentions of ``of``'s values (longest first), each extended to the end of its word.

    ``scan`` and ``sentence``: ``text`` is that sentence of the scanned record (patterns that
    cannot match it are skipped)."""
    found = []
    pairs = (scan.synonyms(of) if scan is not None and sentence is not None
             else [(value, syn) for value, syns in of.values.items() for syn in syns])
    for value, syn in pairs:
        if scan is not None and sentence is not None and not scan.may_in(syn.regex, sentence):
            continue
        for m in syn.regex.finditer(text):
            if syn.context is not None:
                w = syn.window if syn.window is not None else len(text)
                if not syn.context.search(text[max(0, m.start() - w): m.end() + w]):
                    continue
            found.append((m.start(), m.end(), value))
    found.sort(key=lambda x: (-(x[1] - x[0]), x[0]))
    kept: list[tuple[int, int, str]] = []
    for a, b, v in found:
        if not any(a < kb and ka < b for ka, kb, _ in kept):
            kept.append((a, b, v))
    out = []
    for a, b, v in sorted(kept):
        tail = re.match(r"[\w'-]*", text[b:])
        out.append((a, b + (tail.end() if tail else 0), v))
    return out


def _breakdown_regexes(f: Field) -> tuple[re.Pattern, re.Pattern]:
    return _breakdown_regexes_of(tuple(f.nouns))


@functools.lru_cache(maxsize=64)
def _breakdown_regexes_of(nouns_list: tuple[str, ...]) -> tuple[re.Pattern, re.Pattern]:
    """The before/after patterns of a breakdown; the nouns are protocol input, so both are checked
    by compile_pattern (they use look-around, so they run on re: UnsafePattern if a noun nests repeats)."""
    nouns = "|".join(nouns_list) or r"(?!)"
    before = compile_pattern(
        r"(?<![\w.,/-])(?:n\s*=\s*)?(?P<n>" + NUMBER_REGEX + r")\s+(?:(?:" + nouns + r")\s+)?"
        r"(?:(?:with|had|has|have|having)\s+)?(?:[\w'-]+\s+){0,2}?$", re.IGNORECASE)
    after = compile_pattern(
        r"^(?:\s+[\w'-]+){0,2}?\s*(?:"
        r"\(\s*(?:n\s*=\s*)?(?P<a>" + NUMBER_REGEX + r")(?:\s+(?:" + nouns + r"))?\s*(?:[),;]|\()"
        r"|[:,]\s*(?:n\s*=\s*)?(?P<b>" + NUMBER_REGEX + r")(?=\s*(?:\(|[,;.)]|$|and\b|or\b))"
        r"|\s*n\s*=\s*(?P<c>" + NUMBER_REGEX + r"))", re.IGNORECASE)
    return before, after


def _breakdown(f: Field, sents: list[Sentence], of: Field, result: dict[str, Extracted],
               scan: _Scan | None = None) -> Extracted:
    """Counts per value of ``of`` stated in one sentence (see the module docstring)."""
    total_ex = result.get(f.total) if f.total else None
    total = total_ex.raw if total_ex is not None and total_ex.value != NOT_REPORTED else None
    before, after = _breakdown_regexes(f)
    candidates = []  # (parts, sentence index)
    # a split pairs numbers with two or more values: with fewer mentionable, no sentence can give one
    readable = scan is None or len({value for value, _ in scan.synonyms(of)}) >= 2
    for i, s in enumerate(sents if readable else ()):
        if s.role == "title":
            continue
        pairs: list[tuple[str, int]] = []
        mentions = _mentions(of, s.text, scan, i)
        for k, (a, b, value) in enumerate(mentions):
            # look no further than the neighbouring mentions: "A and B (n = 4)" gives B only
            prev_end = mentions[k - 1][1] if k else 0
            next_start = mentions[k + 1][0] if k + 1 < len(mentions) else len(s.text)
            m = after.match(s.text[b:b + 80])
            num = None
            if m and b + m.end() <= next_start:
                num = parse_number(next(g for g in (m.group("a"), m.group("b"), m.group("c")) if g))
            if num is None:
                lo = max(0, a - 80)
                mb = before.search(s.text[lo:a])
                if mb and lo + mb.start() >= prev_end:
                    num = parse_number(mb.group("n"))
            if num is None or num != int(num):
                continue
            pairs.append((value, int(num)))
        # "4 patients with A and B (3 A, 1 B)": the total is not a part
        variants = [pairs] + ([[p for p in pairs if p[1] != total]] if total is not None else [])
        for variant in variants:
            parts: dict[str, int] = {}
            for value, num in variant:
                parts[value] = parts.get(value, 0) + num
            if len(parts) >= 2:
                candidates.append((parts, i))
    chosen = None
    confidence = 0.85
    if candidates and total is not None:
        exact = [c for c in candidates if sum(c[0].values()) == total]
        partial = [c for c in candidates if sum(c[0].values()) < total
                   and any(parse_number(m.group(0)) == total for m in re.finditer(NUMBER_REGEX, sents[c[1]].text, re.IGNORECASE))]
        if exact:
            chosen = min(exact, key=lambda c: (sents[c[1]].role != "study", c[1]))
        elif partial:
            chosen, confidence = partial[0], 0.6
    elif candidates:
        chosen = min(candidates, key=lambda c: (sents[c[1]].role != "study", c[1]))
        confidence = 0.7
    if chosen is not None:
        return Extracted(format_breakdown(chosen[0]), sents[chosen[1]].text, confidence, chosen[0])
    values = [v for v in (result[of.name].raw or []) if v != NOT_REPORTED]
    if len(values) == 1 and total is not None and float(total).is_integer():
        return Extracted(format_breakdown({values[0]: int(total)}), total_ex.evidence,
                         round(min(result[of.name].confidence, total_ex.confidence), 2), {values[0]: int(total)})
    return Extracted(NOT_REPORTED, "", 0.5, None)


def derive(f: Field, source_value: str) -> str:
    """The value of a derived field given its source field's value."""
    if source_value in f.mapping:
        return f.mapping[source_value]
    if source_value in ("", NOT_REPORTED, None):
        return NOT_REPORTED
    return f.otherwise if f.otherwise is not None else NOT_REPORTED


def _schema_of(protocol: Protocol | Schema | dict | str | os.PathLike | None) -> Schema:
    return protocol if isinstance(protocol, Schema) else load_schema(protocol)


def extract(records: pd.DataFrame, protocol: Protocol | Schema | dict | str | None = None, *,
            cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Extract the protocol's fields from a records table.

    Parameters
    ----------
    records : pandas.DataFrame
        A records table (``title`` and ``abstract``; ``record_id``, ``pmid``,
        ``abstract_sections`` used when present).
    protocol : Protocol, Schema, dict or str
        Where the fields come from.
    cache_dir : path-like, optional
        The review's cache folder: what was extracted from a record's title, abstract and
        sections under the same schema by the same code is read from ``extraction/`` there
        instead of extracted again (:class:`ExtractionCache`).

    Returns
    -------
    pandas.DataFrame
        One row per record: record_id, pmid, then for each field its value (several
        joined by "; "), ``<field>_evidence`` and ``<field>_confidence``.
    """
    schema = _schema_of(protocol)
    missing = [c for c in ("title", "abstract") if c not in records.columns]
    if missing:
        raise InputError(f"records have no column {', '.join(missing)}: extraction needs title and abstract")
    cache = ExtractionCache(cache_dir, schema) if cache_dir is not None else None
    rows = []
    for rec in records.to_dict("records"):
        rid = rec.get("record_id") or record_id_for({k: (None if _isna(v) else v) for k, v in rec.items()})
        sections = rec.get("abstract_sections")
        sections = sections if isinstance(sections, list) and sections else None
        title = None if _isna(rec.get("title")) else rec.get("title")
        abstract = None if _isna(rec.get("abstract")) else rec.get("abstract")
        fields = cache.get(title, abstract, sections) if cache is not None else None
        if fields is None:
            res = extract_record(title, abstract, schema, sections)
            fields = {name: (ex.value, ex.evidence, ex.confidence) for name, ex in res.items()}
            if cache is not None:
                cache.put(title, abstract, sections, fields)
        row: dict[str, Any] = {"record_id": rid, "pmid": None if _isna(rec.get("pmid")) else str(rec.get("pmid"))}
        for name, (value, evidence, confidence) in fields.items():
            row[name] = value
            row[f"{name}_evidence"] = evidence
            row[f"{name}_confidence"] = confidence
        rows.append(row)
    if cache is not None:
        cache.save()
    cols = ["record_id", "pmid"] + [c for n in schema.names for c in (n, f"{n}_evidence", f"{n}_confidence")]
    logger.info("extracted %d fields from %d records%s", len(schema.names), len(rows),
                f" ({cache.hits} unchanged, from the cache)" if cache is not None else "")
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["extraction_schema"] = SchemaRef(schema)
    return out


class ExtractionCache:
    """What :func:`extract_record` found per record text, kept by content in ``<cache_dir>/extraction/``.

    One JSON file per schema and extractor version: its name is the SHA-256 of the schema's
    sections (``schema.raw``) and of the source of this module and of :mod:`reviewlib.user_regex`;
    inside, each entry's key is the SHA-256 of the record's title, abstract and abstract sections.
    A changed record or field misses and is extracted again; the file is rewritten atomically
    (:mod:`reviewlib.atomic`) when something was added, and one that cannot be read is started anew.
    """

    FOLDER = "extraction"

    def __init__(self, cache_dir: str | os.PathLike, schema: Schema):
        import hashlib

        engine = hashlib.sha256(files_digest([__file__, Path(__file__).resolve().parent.parent / "user_regex.py"])
                                .encode())
        engine.update(json.dumps(schema.raw, sort_keys=True, default=repr).encode())
        self.version = engine.hexdigest()
        self.path = Path(cache_dir) / self.FOLDER / f"{self.version}.json"
        self.hits = 0
        self._added = False
        try:
            kept = json.loads(self.path.read_text(encoding="utf-8"))
            self._entries = kept["entries"] if kept.get("version") == self.version else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self._entries = {}
        self._names = list(schema.names)

    @staticmethod
    def key(title: str | None, abstract: str | None, sections: list[dict] | None) -> str:
        import hashlib

        text = json.dumps([title, abstract, sections], sort_keys=True, ensure_ascii=False, default=repr)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get(self, title: str | None, abstract: str | None, sections: list[dict] | None) -> dict | None:
        """``{field: (value, evidence, confidence)}`` kept for this text, or None."""
        entry = self._entries.get(self.key(title, abstract, sections))
        if not isinstance(entry, dict) or list(entry) != self._names:
            return None
        self.hits += 1
        return {name: tuple(v) for name, v in entry.items()}

    def put(self, title: str | None, abstract: str | None, sections: list[dict] | None, fields: dict) -> None:
        self._entries[self.key(title, abstract, sections)] = {name: list(v) for name, v in fields.items()}
        self._added = True

    def save(self) -> None:
        """Write the file if entries were added (atomically); a failure is only logged."""
        if not self._added:
            return
        from ..atomic import write_text
        try:
            write_text(self.path, json.dumps({"version": self.version, "entries": self._entries},
                                             ensure_ascii=False))
            self._added = False
        except OSError as exc:
            logger.warning("extraction cache %s not written (%s): records are extracted again next run",
                           self.path, exc)


def _isna(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (list, dict)):
        return False
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


# -- store: machine values, corrections, current values --------------------------------------
def save(store: ReviewStore, frame: pd.DataFrame,
         protocol: Protocol | Schema | dict | str | None = None) -> int:
    """Append machine-extracted values to the store (method='machine').

    A value identical to the latest machine value of that record and field is not appended
    again, so rerunning a notebook does not grow the history.  The schema is remembered in
    the store so that :func:`import_sheet` can check corrections without the protocol.

    Returns
    -------
    int
        Number of rows appended.
    """
    schema = _schema_of(protocol)
    store.set_meta(META_KEY, json.dumps(schema.raw, ensure_ascii=False))
    latest: dict[tuple[str, str], tuple[Any, Any]] = {}
    for r in store.extractions().itertuples():
        if r.method == "machine":
            latest[(r.record_id, r.field)] = (r.value, r.evidence)
    rows = []
    for rec in frame.to_dict("records"):
        for name in schema.names:
            if schema.fields[name].kind == "reference" or name not in rec:
                continue
            value, evidence = rec[name], rec.get(f"{name}_evidence") or ""
            if latest.get((rec["record_id"], name)) == (value, evidence):
                continue
            rows.append({"record_id": rec["record_id"], "field": name, "value": value, "evidence": evidence,
                         "confidence": float(rec.get(f"{name}_confidence") or 0.0), "method": "machine"})
    return store.append_extractions(rows) if rows else 0


def stored_schema(store: ReviewStore) -> Schema:
    """The schema remembered by :func:`save` (ProtocolError if nothing was extracted yet)."""
    raw = store.get_meta(META_KEY)
    if not raw:
        raise InputError(f"review store {store.path} has no extracted values yet: run extraction first "
                         "(extraction.save or 'reviewlib extract --store')", source=str(store.path))
    return load_schema(json.loads(raw))


def extracted_record_ids(store: ReviewStore) -> set[str] | None:
    """The records :func:`current_values` lists (an extracted or corrected value each), without building values.

    None before anything was extracted (no schema saved in the store), where ``current_values(store)``
    raises.
    """
    if not store.get_meta(META_KEY):
        return None
    return {row[0] for row in store.connection.execute("SELECT DISTINCT record_id FROM extractions")}


def current_values(store: ReviewStore, protocol: Protocol | Schema | dict | str | None = None) -> pd.DataFrame:
    """The current value of every field of every extracted record.

    A reviewer's latest correction wins over the extractor.  Derived fields follow the
    current value of their source unless a reviewer set them.

    Returns
    -------
    pandas.DataFrame
        record_id, pmid, then per field: value, ``<field>_evidence``, ``<field>_confidence``,
        ``<field>_status`` ('machine' or 'verified'), plus ``<field>_reviewer`` and
        ``<field>_note`` for verified values.
    """
    schema = _schema_of(protocol) if protocol is not None else stored_schema(store)
    hist = store.extractions()
    cols = ["record_id", "pmid"]
    for n in schema.names:
        cols += [n, f"{n}_evidence", f"{n}_confidence", f"{n}_status", f"{n}_reviewer", f"{n}_note"]
    if hist.empty:
        empty = pd.DataFrame(columns=cols)
        empty.attrs["extraction_schema"] = SchemaRef(schema)
        return empty
    machine: dict[tuple[str, str], dict] = {}
    human: dict[tuple[str, str], dict] = {}
    for r in hist.to_dict("records"):  # oldest first: later rows replace earlier ones
        (human if r["method"] == "reviewer" else machine)[(r["record_id"], r["field"])] = r
    record_ids = list(dict.fromkeys(hist["record_id"]))
    rows = []
    for rid in record_ids:
        row: dict[str, Any] = {"record_id": rid, "pmid": rid.split(":", 1)[1] if rid.startswith("pmid:") else None}
        for n in schema.names:
            m, h = machine.get((rid, n)), human.get((rid, n))
            f = schema.fields[n]
            default = "" if f.kind == "reference" else NOT_REPORTED
            if h is not None:
                row.update({n: h["value"] if h["value"] is not None else default,
                            f"{n}_evidence": (m or {}).get("evidence") or "",
                            f"{n}_confidence": 1.0, f"{n}_status": STATUS_VERIFIED,
                            f"{n}_reviewer": h["reviewer"], f"{n}_note": h["note"] or ""})
            else:
                row.update({n: (m or {}).get("value") if m and m.get("value") is not None else default,
                            f"{n}_evidence": (m or {}).get("evidence") or "",
                            f"{n}_confidence": (m or {}).get("confidence"),
                            f"{n}_status": STATUS_MACHINE, f"{n}_reviewer": "", f"{n}_note": ""})
        for n in schema.names:
            f = schema.fields[n]
            if f.kind == "derived" and row[f"{n}_status"] != STATUS_VERIFIED:
                row[n] = derive(f, row[f.source])
                row[f"{n}_status"] = row[f"{f.source}_status"]
        rows.append(row)
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["extraction_schema"] = SchemaRef(schema)
    return out


SHEET_COLUMNS = ["record_id", "pmid", "title", "field", "label", "machine_value", "current_value", "status",
                 "evidence", "confidence", "allowed_values", "corrected_value", "reviewer", "note"]


def export_sheet(store: ReviewStore, path: str | os.PathLike, record_ids: Iterable[str] | None = None,
                 protocol: Protocol | Schema | dict | str | None = None) -> Path:
    """Write the extraction sheet a reviewer fills in (CSV, or XLSX if the name ends in .xlsx).

    One row per study x field: the machine value, the current value and its status, the
    evidence sentence, the allowed values, and empty ``corrected_value``, ``reviewer`` and
    ``note`` columns.

    Parameters
    ----------
    store : ReviewStore
    path : path-like
        ``.csv`` or ``.xlsx``.
    record_ids : iterable of str, optional
        Only these studies (e.g. the included ones); all extracted records otherwise.
    """
    schema = _schema_of(protocol) if protocol is not None else stored_schema(store)
    cur = current_values(store, schema)
    machine = {}
    for r in store.extractions().to_dict("records"):
        if r["method"] == "machine":
            machine[(r["record_id"], r["field"])] = r["value"]
    if record_ids is not None:
        wanted = list(dict.fromkeys(record_ids))
        cur = cur.set_index("record_id").reindex([w for w in wanted if w in set(cur["record_id"])]).reset_index()
    titles = {}
    recs = store.records()
    if not recs.empty:
        titles = dict(zip(recs["record_id"], recs["title"]))
    rows = []
    for rec in cur.to_dict("records"):
        for n in schema.names:
            f = schema.fields[n]
            if f.kind == "derived":
                continue  # follows its source; correct the source instead
            rows.append({"record_id": rec["record_id"], "pmid": rec["pmid"], "title": titles.get(rec["record_id"]),
                         "field": n, "label": f.label, "machine_value": machine.get((rec["record_id"], n), ""),
                         "current_value": rec[n], "status": rec[f"{n}_status"], "evidence": rec[f"{n}_evidence"],
                         "confidence": rec[f"{n}_confidence"],
                         "allowed_values": "; ".join(f.allowed) if f.kind == "categorical" else
                         (f"'value: n; value: n' with values of {f.source}" if f.kind == "breakdown" else f.kind),
                         "corrected_value": "", "reviewer": "", "note": ""})
    sheet = pd.DataFrame(rows, columns=SHEET_COLUMNS)
    path = Path(path)
    if path.suffix.lower() == ".xlsx":  # strings, never formulas (safe_cells)
        write_xlsx({"extraction": sheet,
                    "fields": pd.DataFrame([{"field": n, "kind": f.kind, "label": f.label,
                                             "allowed_values": "; ".join(f.allowed)}
                                            for n, f in schema.fields.items()])}, path)
    else:
        write_safe_csv(sheet, path)
    logger.info("wrote extraction sheet %s (%d rows)", path, len(sheet))
    return path


def read_sheet(path: str | os.PathLike) -> pd.DataFrame:
    """Read a filled-in extraction sheet (CSV or XLSX) as strings."""
    return read_review_sheet(path, "extraction sheet", ("record_id", "field", "corrected_value"))


def import_sheet(store: ReviewStore, path: str | os.PathLike, reviewer: str | None = None,
                 protocol: Protocol | Schema | dict | str | None = None) -> int:
    """Store the corrections of a filled-in extraction sheet.

    Rows with an empty ``corrected_value`` are skipped.  Every row is checked first (known
    record, known field, allowed value, a reviewer named in the row or given here); any
    problem raises :class:`InputError` naming the row and nothing is written.  Corrections
    are appended (method='reviewer') in one transaction; earlier values stay in the history.

    Parameters
    ----------
    store : ReviewStore
    path : path-like
        The sheet (CSV or XLSX).
    reviewer : str, optional
        Who corrected; a non-empty ``reviewer`` cell in a row takes precedence.

    Returns
    -------
    int
        Number of corrections stored.
    """
    schema = _schema_of(protocol) if protocol is not None else stored_schema(store)
    sheet = read_sheet(path)
    known = set(store.extractions()["record_id"])
    rows = []
    for i, r in enumerate(sheet.to_dict("records"), start=2):  # row 1 is the header
        corrected = str(r.get("corrected_value") or "").strip()
        if not corrected:
            continue
        where = f"extraction sheet {path} row {i}"
        name = str(r.get("field") or "").strip()
        if name not in schema.fields:
            raise InputError(f"{where}: field {name!r} is not in the protocol's extraction schema "
                             f"(fields: {', '.join(schema.names)}); nothing was imported", source=str(path))
        rid = str(r.get("record_id") or "").strip()
        if rid not in known:
            raise InputError(f"{where}: record {rid!r} has no extracted values in {store.path}; "
                             "nothing was imported", source=str(path))
        try:
            value = schema.fields[name].normalise(corrected)
        except ValueError as exc:
            raise InputError(f"{where}: {exc}; nothing was imported", source=str(path)) from None
        who = str(r.get("reviewer") or "").strip() or (reviewer or "").strip()
        if not who:
            raise InputError(f"{where}: no reviewer named: fill the reviewer column or pass reviewer=; "
                             "nothing was imported", source=str(path))
        rows.append({"record_id": rid, "field": name, "value": value, "method": "reviewer", "reviewer": who,
                     "note": str(r.get("note") or "").strip() or None, "evidence": None, "confidence": None})
    if rows:
        store.append_extractions(rows)
    logger.info("imported %d corrections from %s", len(rows), path)
    return len(rows)


def correct(store: ReviewStore, record_id: str, field: str, value: Any, reviewer: str,
            note: str | None = None, protocol: Protocol | Schema | dict | str | None = None) -> str:
    """Store one reviewer correction (checked like a sheet row); returns the stored value."""
    schema = _schema_of(protocol) if protocol is not None else stored_schema(store)
    if field not in schema.fields:
        raise InputError(f"field {field!r} is not in the protocol's extraction schema (fields: {', '.join(schema.names)})")
    if not reviewer or not str(reviewer).strip():
        raise InputError("a correction needs a reviewer name")
    try:
        v = schema.fields[field].normalise(value)
    except ValueError as exc:
        raise InputError(f"correction of {record_id}: {exc}") from None
    store.append_extractions([{"record_id": record_id, "field": field, "value": v, "method": "reviewer",
                               "reviewer": str(reviewer).strip(), "note": note}])
    return v


# -- accuracy ------------------------------------------------------------------------------
def load_testset(testset: str | os.PathLike | list[dict]) -> list[dict]:
    """A hand-checked test set: a YAML list of {id, title, abstract, expected: {field: value}}."""
    if isinstance(testset, list):
        return testset
    path = Path(testset)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read extraction test set {path}: {exc}", source=str(path)) from exc
    if not isinstance(data, list):
        raise InputError(f"extraction test set {path} is not a YAML list of abstracts", source=str(path))
    return data


def _same(f: Field, expected: Any, got: str) -> bool:
    if f.kind == "breakdown":
        e, g = parse_breakdown(expected), parse_breakdown(got)
        if e is None or g is None:
            return False
        return {k.lower(): v for k, v in e.items()} == {k.lower(): v for k, v in g.items()}
    if isinstance(expected, list):
        exp = {str(x).strip().lower() for x in expected}
    else:
        exp = {str(expected).strip().lower()} if expected is not None else {NOT_REPORTED}
    got_set = {g.strip().lower() for g in str(got).split(";") if g.strip()} or {NOT_REPORTED}
    if f.kind in ("integer", "number"):
        e, g = next(iter(exp)), next(iter(got_set))
        ne, ng = parse_number(e), parse_number(g)
        if ne is None or ng is None:
            return e == g
        if f.kind == "integer":
            return ne == ng
        return abs(ne - ng) <= max(0.5, 0.1 * abs(ne))
    return exp == got_set


def compare(testset: str | os.PathLike | list[dict], protocol: Protocol | Schema | dict | str | None = None) -> pd.DataFrame:
    """Per abstract and field: expected value, extracted value, correct or not.

    Only fields present in an abstract's ``expected`` mapping are scored.
    """
    schema = _schema_of(protocol)
    rows = []
    for item in load_testset(testset):
        res = extract_record(item.get("title"), item.get("abstract"), schema)
        for name, exp in (item.get("expected") or {}).items():
            if name not in schema.fields:
                continue
            got = res[name].value
            shown = format_breakdown(parse_breakdown(exp) or {}) if isinstance(exp, dict) else exp
            rows.append({"id": item.get("id"), "field": name,
                         "expected": SEPARATOR.join(map(str, exp)) if isinstance(exp, list) else str(shown),
                         "extracted": got, "correct": _same(schema.fields[name], exp, got),
                         "evidence": res[name].evidence})
    return pd.DataFrame(rows, columns=["id", "field", "expected", "extracted", "correct", "evidence"])


def evaluate(testset: str | os.PathLike | list[dict], protocol: Protocol | Schema | dict | str | None = None) -> pd.DataFrame:
    """Per-field accuracy of the extractor on a hand-checked test set.

    Returns
    -------
    pandas.DataFrame
        field, n (abstracts scored), correct, accuracy; fields in protocol order.
    """
    schema = _schema_of(protocol)
    detail = compare(testset, schema)
    if detail.empty:
        return pd.DataFrame(columns=["field", "n", "correct", "accuracy"])
    out = detail.groupby("field", sort=False)["correct"].agg(n="size", correct="sum").reset_index()
    out["correct"] = out["correct"].astype(int)
    out["accuracy"] = (out["correct"] / out["n"]).round(3)
    order = {n: i for i, n in enumerate(schema.names)}
    return out.sort_values("field", key=lambda s: s.map(order)).reset_index(drop=True)


# -- CLI -----------------------------------------------------------------------------------
def write_evidence_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write an extraction frame to CSV atomically (formula-starting text guarded, see safe_cells)."""
    return write_safe_csv(frame, path)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``reviewlib extract``."""
    parser.add_argument("--protocol", default=None, help="protocol YAML or name (default: the default review)")
    parser.add_argument("--records", required=True, help="records CSV written by 'reviewlib fetch' (title, abstract), "
                        "or trials.csv written by 'reviewlib registry' (registry fields read from their columns)")
    parser.add_argument("--out", required=True, help="evidence CSV to write (one row per record)")
    parser.add_argument("--store", default=None, help="also append the values to this review store (SQLite)")


def _is_trials_csv(path: str | os.PathLike) -> bool:
    """True when a CSV's first column is ``nct_id`` (the registry table), not a records table."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return handle.readline().split(",", 1)[0].strip().strip('"') == "nct_id"
    except (OSError, UnicodeDecodeError):
        return False                 # the records reader says what is wrong with the file (binary, gzip...)


def run_cli(args: argparse.Namespace) -> int:
    """Run ``reviewlib extract``: records CSV in, evidence CSV out."""
    protocol = load_protocol(args.protocol)
    schema = load_schema(protocol)
    if _is_trials_csv(args.records):   # a registry table (trials.csv of 'reviewlib registry'): evidence.registry
        from ..sources.ctgov import read_trials_csv
        from .registry import extract_trials
        frame = extract_trials(read_trials_csv(args.records), protocol)
    else:
        records = read_records_csv(args.records, required=("title", "abstract"))
        frame = extract(records, schema)
    out = write_evidence_csv(frame, args.out)
    if args.store:
        with ReviewStore(args.store) as store:
            n = save(store, frame, schema)
        logger.info("appended %d values to %s", n, args.store)
    logger.info("wrote %s: %d records x %d fields", out, len(frame), len(schema.names))
    return 0
