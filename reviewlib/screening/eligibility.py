"""Screening rules from the protocol's ``eligibility`` section.

Rules propose a decision for every record (``include``, ``exclude`` or
``unsure``) with every reason that fired; they never overrule a person: rule
decisions are stored as reviewer ``'rules'``, kind ``'rule'``, and a human
decision on the same record and stage always wins (see
:func:`reviewlib.screening.decisions.included`).

The ``eligibility`` section
---------------------------
``exclusion_reasons``
    The vocabulary: reason key -> label (PRISMA's "records excluded, with
    reasons").  Every rule that excludes names one of these keys.
``criteria``
    ``include`` / ``exclude``: lists of sentences shown beside each record in the screener.
``publication_types``
    ``exclude``: PubMed publication types (strings); ``unless``: types that mark
    patient data (a "Letter" that is also "Case Reports" is not excluded); ``reason``.
``languages``
    ``allowed``: language codes (``eng``); a record in none of them is excluded.
``years``
    ``min`` / ``max``: publication years.
``animal_only``
    MeSH ``Animals`` without ``Humans``; ``false`` turns it off.
``required``
    A list of term groups a relevant record must mention (``text``: regular
    expressions, ``mesh``: descriptors).  A record with an abstract that matches
    none of a group is excluded with that group's reason; one without an
    abstract is only marked unsure.
``excluding``
    A list of term groups that exclude (``text``, ``mesh``) unless one of
    ``unless_text`` / ``unless_mesh`` also matches.  ``fields`` limits where a
    group's text patterns look (``title``, ``abstract``, ``keywords``; all by
    default), e.g. a malignancy named in the title.

Every criterion may set ``action: exclude`` (default; then ``reason`` is
required) or ``action: unsure``.  Text patterns are case-insensitive regular
expressions (``(?-i:ALL)`` for a case-sensitive one) searched in the title,
abstract and keywords; MeSH entries match descriptor names case-insensitively,
a trailing ``*`` matching any ending.

A record is ``exclude`` when any excluding criterion fired, else ``unsure`` when
any criterion asked for a human look, else ``include`` when every ``required``
group matched, else ``unsure``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..errors import InputError, ProtocolError
from ..gcpause import collector_paused
from ..protocol import Protocol, find_protocol, load_protocol, section_of
from ..store import record_id_for
from ..user_regex import UnsafePattern, compile_pattern

logger = logging.getLogger(__name__)

RULES_REVIEWER = "rules"
RULE_DECISIONS = ("include", "exclude", "unsure")
ACTIONS = ("exclude", "unsure")
#: The default protocol's vocabulary (the contract); a protocol's own mapping takes precedence.
DEFAULT_REASONS: dict[str, str] = {
    "publication-type": "Publication type not eligible (review, editorial, comment, letter)",
    "preclinical": "Preclinical only (animal or in vitro)",
    "wrong-population": "Not autoimmune disease (lymphoma, leukaemia, myeloma...)",
    "wrong-intervention": "Not an engineered cell therapy",
    "language": "Not in English",
    "no-data": "No patient data reported",
}
#: Store meta key holding the vocabulary of the review (JSON mapping), set by :func:`save_rule_decisions`.
META_REASONS = "eligibility.exclusion_reasons"
#: Separator of several reasons in the store's single ``reason`` column.
REASON_SEPARATOR = "; "

_KNOWN_KEYS = {"exclusion_reasons", "criteria", "publication_types", "languages", "years", "animal_only",
               "required", "excluding"}
_TERM_KEYS = {"name", "reason", "action", "text", "mesh", "unless_text", "unless_mesh", "fields"}
#: Record fields a term group's text patterns may search.
TEXT_FIELDS = ("title", "abstract", "keywords")


@dataclass
class TermGroup:
    """A named group of text patterns and MeSH descriptors."""

    name: str
    patterns: list[re.Pattern]
    mesh: list[str]
    unless_patterns: list[re.Pattern] = field(default_factory=list)
    unless_mesh: list[str] = field(default_factory=list)
    reason: str | None = None
    action: str = "exclude"
    fields: tuple[str, ...] = TEXT_FIELDS

    def _text(self, texts: dict[str, str]) -> str:
        return " \n ".join(texts[f] for f in self.fields if texts.get(f))

    def matches(self, texts: dict[str, str], mesh: set[str]) -> bool:
        return _any_text(self.patterns, self._text(texts)) or _any_mesh(self.mesh, mesh)

    def spared(self, texts: dict[str, str], mesh: set[str]) -> bool:
        return _any_text(self.unless_patterns, self._text(texts)) or _any_mesh(self.unless_mesh, mesh)


@dataclass
class Rules:
    """Screening rules parsed from a protocol's ``eligibility`` section.

    Attributes
    ----------
    reasons : dict
        Exclusion-reason vocabulary, key -> label.
    criteria : dict
        ``include`` / ``exclude`` sentences for display.
    """

    reasons: dict[str, str]
    criteria: dict[str, list[str]] = field(default_factory=dict)
    publication_types: set[str] = field(default_factory=set)
    publication_types_unless: set[str] = field(default_factory=set)
    publication_types_reason: str | None = None
    publication_types_action: str = "exclude"
    languages: set[str] = field(default_factory=set)
    languages_reason: str | None = None
    languages_action: str = "exclude"
    year_min: int | None = None
    year_max: int | None = None
    years_reason: str | None = None
    years_action: str = "exclude"
    animal_only_reason: str | None = None
    animal_only_action: str | None = None
    required: list[TermGroup] = field(default_factory=list)
    excluding: list[TermGroup] = field(default_factory=list)
    #: sha256 of the eligibility section the rules were loaded from (keys cached rule results)
    digest: str | None = None

    def label(self, reason: str | None) -> str:
        """The label of a reason key (the key itself when unknown, '' for None)."""
        if not reason:
            return ""
        return self.reasons.get(reason, reason)

    def highlight_patterns(self) -> dict[str, list[re.Pattern]]:
        """Text patterns to highlight in the screener: ``include`` (required terms) and ``exclude``."""
        return {"include": [p for g in self.required for p in g.patterns],
                "exclude": [p for g in self.excluding for p in g.patterns]}


def _any_text(patterns: Iterable[re.Pattern], text: str) -> bool:
    return any(p.search(text) for p in patterns)


def _any_mesh(wanted: Iterable[str], mesh: set[str]) -> bool:
    for w in wanted:
        if w.endswith("*"):
            stem = w[:-1]
            if any(m.startswith(stem) for m in mesh):
                return True
        elif w in mesh:
            return True
    return False


# -- loading and checking -----------------------------------------------------
def _where(source: str, name: str) -> str:
    return f"protocol {source}: eligibility.{name}"


def _string_list(value: Any, source: str, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ProtocolError(f"{_where(source, name)} must be a list of strings (got {value!r}): "
                            f"write it as [\"Review\", \"Editorial\"]", source=source)
    return [v.strip() for v in value]


def _compile(patterns: list[str], source: str, name: str) -> list[re.Pattern]:
    out = []
    for p in patterns:
        try:
            out.append(compile_pattern(p, re.IGNORECASE))  # RE2 (linear time) where it can run it
        except re.error as exc:
            raise ProtocolError(f"{_where(source, name)}: pattern {p!r} is not a valid regular expression "
                                f"({exc}): fix or quote it", source=source) from exc
        except UnsafePattern as exc:
            raise ProtocolError(f"{_where(source, name)}: pattern {p!r} is refused: {exc}; drop the "
                                "look-around or the nested repetition", source=source) from exc
    return out


def _action_reason(spec: dict, reasons: dict[str, str], source: str, name: str,
                   default_action: str = "exclude") -> tuple[str, str | None]:
    action = spec.get("action", default_action)
    if action not in ACTIONS:
        raise ProtocolError(f"{_where(source, name)}.action is {action!r}: use one of {', '.join(ACTIONS)}",
                            source=source)
    reason = spec.get("reason")
    if reason is not None and reason not in reasons:
        raise ProtocolError(f"{_where(source, name)}.reason {reason!r} is not in eligibility.exclusion_reasons "
                            f"({', '.join(reasons)}): use one of them or declare it there", source=source)
    if action == "exclude" and reason is None:
        raise ProtocolError(f"{_where(source, name)} excludes but names no reason: add 'reason: <key>' "
                            f"(one of {', '.join(reasons)}) or 'action: unsure'", source=source)
    return action, reason


def _mapping(value: Any, source: str, name: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f"{_where(source, name)} must be a mapping (key: value lines), got {value!r}",
                            source=source)
    return value


def _term_groups(value: Any, reasons: dict[str, str], source: str, name: str,
                 default_action: str) -> list[TermGroup]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProtocolError(f"{_where(source, name)} must be a list of term groups (- name: ..., text: [...])",
                            source=source)
    groups = []
    for k, spec in enumerate(value):
        if not isinstance(spec, dict):
            raise ProtocolError(f"{_where(source, name)}[{k}] must be a mapping with name, reason, text, mesh",
                                source=source)
        gname = str(spec.get("name") or f"{name}[{k}]")
        where = f"{name}.{gname}"
        unknown = set(spec) - _TERM_KEYS
        if unknown:
            raise ProtocolError(f"{_where(source, where)} has unknown key(s) {', '.join(sorted(unknown))}: "
                                f"use {', '.join(sorted(_TERM_KEYS))}", source=source)
        action, reason = _action_reason(spec, reasons, source, where, default_action)
        text = _string_list(spec.get("text"), source, f"{where}.text")
        mesh = _string_list(spec.get("mesh"), source, f"{where}.mesh")
        if not text and not mesh:
            raise ProtocolError(f"{_where(source, where)} has neither text nor mesh terms: add some or remove it",
                                source=source)
        fields = _string_list(spec.get("fields"), source, f"{where}.fields") or list(TEXT_FIELDS)
        wrong = [f for f in fields if f not in TEXT_FIELDS]
        if wrong:
            raise ProtocolError(f"{_where(source, where)}.fields: {wrong[0]!r} is not one of {', '.join(TEXT_FIELDS)}",
                                source=source)
        groups.append(TermGroup(
            name=gname, patterns=_compile(text, source, f"{where}.text"), mesh=[m.lower() for m in mesh],
            unless_patterns=_compile(_string_list(spec.get("unless_text"), source, f"{where}.unless_text"),
                                     source, f"{where}.unless_text"),
            unless_mesh=[m.lower() for m in _string_list(spec.get("unless_mesh"), source, f"{where}.unless_mesh")],
            reason=reason, action=action, fields=tuple(fields)))
    return groups


def load_rules(protocol: Protocol | str | Path | dict | None = None) -> Rules:
    """Parse and check the ``eligibility`` section of a protocol.

    Parameters
    ----------
    protocol : Protocol, path, protocol name or dict, optional
        A loaded protocol, a protocol file or name (see
        :func:`reviewlib.protocol.load_protocol`), or the ``eligibility``
        mapping itself.  The default review's protocol when omitted.

    Returns
    -------
    Rules

    Raises
    ------
    ProtocolError
        One line naming the bad criterion (unknown reason key, regex that does
        not compile, a list that is not a list of strings...) and what to do.
    """
    section, source = section_of(protocol, "eligibility")
    if section is None and not isinstance(protocol, dict):
        raise ProtocolError(f"protocol {source} has no eligibility section: add one "
                            "(see notebooks/car-t-autoimmune.yaml)", source=source)
    section = _mapping(section, source, "")
    unknown = set(section) - _KNOWN_KEYS
    if unknown:
        raise ProtocolError(f"protocol {source}: eligibility has unknown key(s) {', '.join(sorted(unknown))}: "
                            f"use {', '.join(sorted(_KNOWN_KEYS))}", source=source)
    reasons_raw = section.get("exclusion_reasons")
    if not isinstance(reasons_raw, dict) or not reasons_raw:
        raise ProtocolError(f"{_where(source, 'exclusion_reasons')} must map reason keys to labels "
                            "(e.g. preclinical: Preclinical only): add it", source=source)
    reasons = {str(k): str(v) for k, v in reasons_raw.items()}
    bad = [k for k in reasons if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", k)]
    if bad:
        raise ProtocolError(f"{_where(source, 'exclusion_reasons')}: key {bad[0]!r} is not a short lower-case "
                            "key (letters, digits, '-'): rename it", source=source)
    criteria = _mapping(section.get("criteria"), source, "criteria")
    rules = Rules(reasons=reasons, criteria={k: _string_list(criteria.get(k), source, f"criteria.{k}")
                                             for k in ("include", "exclude")})

    pt = _mapping(section.get("publication_types"), source, "publication_types")
    if pt:
        rules.publication_types = {s.lower() for s in _string_list(pt.get("exclude"), source,
                                                                     "publication_types.exclude")}
        rules.publication_types_unless = {s.lower() for s in _string_list(pt.get("unless"), source,
                                                                            "publication_types.unless")}
        rules.publication_types_action, rules.publication_types_reason = _action_reason(
            pt, reasons, source, "publication_types")

    lang = _mapping(section.get("languages"), source, "languages")
    if lang:
        rules.languages = {s.lower() for s in _string_list(lang.get("allowed"), source, "languages.allowed")}
        rules.languages_action, rules.languages_reason = _action_reason(lang, reasons, source, "languages")

    years = _mapping(section.get("years"), source, "years")
    if years:
        for key in ("min", "max"):
            v = years.get(key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise ProtocolError(f"{_where(source, 'years.' + key)} is {v!r}: give a year such as 2015",
                                    source=source)
        rules.year_min, rules.year_max = years.get("min"), years.get("max")
        rules.years_action, rules.years_reason = _action_reason(years, reasons, source, "years")

    animal = section.get("animal_only")
    if animal not in (None, False):
        spec = {} if animal is True else dict(_mapping(animal, source, "animal_only"))
        if "reason" not in spec and spec.get("action", "exclude") == "exclude" and "preclinical" in reasons:
            spec["reason"] = "preclinical"
        rules.animal_only_action, rules.animal_only_reason = _action_reason(spec, reasons, source, "animal_only")

    rules.required = _term_groups(section.get("required"), reasons, source, "required", "exclude")
    rules.excluding = _term_groups(section.get("excluding"), reasons, source, "excluding", "exclude")
    rules.digest = hashlib.sha256(json.dumps(section, sort_keys=True, default=str, ensure_ascii=False)
                                  .encode("utf-8")).hexdigest()
    return rules


# -- applying -------------------------------------------------------------------
def _texts_of(row: dict[str, Any]) -> dict[str, str]:
    kw = row.get("keywords")
    return {"title": row.get("title") if isinstance(row.get("title"), str) else "",
            "abstract": row.get("abstract") if isinstance(row.get("abstract"), str) else "",
            "keywords": "; ".join(str(k) for k in kw) if isinstance(kw, list) else ""}


def _lower_set(value: Any) -> set[str]:
    if not isinstance(value, list):
        return set()
    return {str(v).split("/")[0].strip().strip("*").lower() for v in value if v}


def evaluate(row: dict[str, Any], rules: Rules) -> tuple[str, list[str], list[str]]:
    """The rules' decision on one record: (decision, reasons, fired criteria)."""
    texts = _texts_of(row)
    mesh = _lower_set(row.get("mesh_terms"))
    pubtypes = _lower_set(row.get("publication_types"))
    langs = _lower_set(row.get("language"))
    has_abstract = isinstance(row.get("abstract"), str) and bool(row.get("abstract").strip())
    reasons: list[str] = []
    fired: list[str] = []
    unsure = False

    def fire(label: str, action: str, reason: str | None) -> None:
        nonlocal unsure
        fired.append(label)
        if action == "exclude":
            if reason not in reasons:
                reasons.append(reason)
        else:
            unsure = True

    hit = sorted(pubtypes & rules.publication_types)
    if hit:
        # a type that marks patient data (a Letter that is also Case Reports) spares the record
        if not pubtypes & rules.publication_types_unless:
            fire(f"publication_types:{hit[0]}", rules.publication_types_action, rules.publication_types_reason)
    if rules.languages and langs and not (langs & rules.languages):
        fire(f"languages:{','.join(sorted(langs))}", rules.languages_action, rules.languages_reason)
    year = row.get("year")
    if year is not None and not pd.isna(year):
        year = int(year)
        if (rules.year_min is not None and year < rules.year_min) or (
                rules.year_max is not None and year > rules.year_max):
            fire(f"years:{year}", rules.years_action, rules.years_reason)
    if rules.animal_only_action and "animals" in mesh and "humans" not in mesh:
        fire("animal_only", rules.animal_only_action, rules.animal_only_reason)
    for group in rules.excluding:
        if group.matches(texts, mesh) and not group.spared(texts, mesh):
            fire(f"excluding:{group.name}", group.action, group.reason)
    missing = [g for g in rules.required if not g.matches(texts, mesh)]
    for group in missing:
        # without an abstract, a missing term proves little: ask a human
        fire(f"required:{group.name}", group.action if has_abstract else "unsure", group.reason)
    if reasons:
        return "exclude", reasons, fired
    if unsure or missing or not rules.required:
        return "unsure", reasons, fired
    return "include", reasons, fired


def apply_rules(records: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Apply the rules to every record.

    Vectorised over the table: every text pattern runs once per field combination over all
    records (a record already matched by an earlier pattern of its group is skipped), and
    a pattern is searched only in the records whose case-folded text holds one of the
    literal strings every match of it must contain (:func:`pattern_needles`).  The outcome
    is the one :func:`evaluate` gives record by record.

    Parameters
    ----------
    records : pandas.DataFrame
        A records table; ``record_id`` is used when present, else computed.
    rules : Rules
        From :func:`load_rules`.

    Returns
    -------
    pandas.DataFrame
        One row per record: record_id, decision ('include' | 'exclude' |
        'unsure'), reasons (list of reason keys, every one that fired),
        fired (list of the criteria that fired, for the audit).
    """
    n = len(records)
    columns = ["record_id", "decision", "reasons", "fired"]
    if n == 0:
        frame = pd.DataFrame(columns=columns)
        logger.info("screening rules: no records")
        return frame
    ids = _record_ids(records)
    texts = {f: _column_texts(records, f) for f in TEXT_FIELDS}
    matcher = _TableMatcher(texts, _column_sets(records, "mesh_terms"),
                            [p for g in rules.required + rules.excluding for p in g.patterns + g.unless_patterns])
    pubtypes = _column_sets(records, "publication_types")
    langs = _column_sets(records, "language")
    abstracts = records["abstract"] if "abstract" in records.columns else pd.Series([None] * n)
    has_abstract = [isinstance(a, str) and bool(a.strip()) for a in abstracts]
    years = records["year"].tolist() if "year" in records.columns else [None] * n
    fired: list[list[str]] = [[] for _ in range(n)]
    reasons: list[list[str]] = [[] for _ in range(n)]
    unsure = np.zeros(n, dtype=bool)

    def fire(rows: Iterable[int], label, action: str, reason: str | None) -> None:
        """Criterion fired on ``rows`` (in the order :func:`evaluate` checks criteria)."""
        for i in rows:
            fired[i].append(label if isinstance(label, str) else label(i))
            if action == "exclude":
                if reason not in reasons[i]:
                    reasons[i].append(reason)
            else:
                unsure[i] = True
    if rules.publication_types:
        hits = [types & rules.publication_types for types in pubtypes]
        first = {}
        for i, hit in enumerate(hits):
            if hit and not pubtypes[i] & rules.publication_types_unless:
                first[i] = sorted(hit)[0]
        fire(first, lambda i: f"publication_types:{first[i]}", rules.publication_types_action,
             rules.publication_types_reason)
    if rules.languages:
        rows = [i for i, lang in enumerate(langs) if lang and not (lang & rules.languages)]
        fire(rows, lambda i: f"languages:{','.join(sorted(langs[i]))}", rules.languages_action,
             rules.languages_reason)
    if rules.year_min is not None or rules.year_max is not None:
        out_of_range = {}
        for i, year in enumerate(years):
            if year is not None and not pd.isna(year):
                year = int(year)
                if (rules.year_min is not None and year < rules.year_min) or (
                        rules.year_max is not None and year > rules.year_max):
                    out_of_range[i] = year
        fire(out_of_range, lambda i: f"years:{out_of_range[i]}", rules.years_action, rules.years_reason)
    if rules.animal_only_action:
        fire([i for i, mesh in enumerate(matcher.mesh) if "animals" in mesh and "humans" not in mesh],
             "animal_only", rules.animal_only_action, rules.animal_only_reason)
    for group in rules.excluding:
        fire(np.flatnonzero(matcher.fires(group)).tolist(), f"excluding:{group.name}", group.action, group.reason)
    missing = np.zeros(n, dtype=bool)
    for group in rules.required:
        rows = np.flatnonzero(~matcher.matches(group)).tolist()
        missing[rows] = True
        # without an abstract, a missing term proves little: ask a human
        with_abstract = [i for i in rows if has_abstract[i]]
        fire(with_abstract, f"required:{group.name}", group.action, group.reason)
        if len(with_abstract) < len(rows):
            fire([i for i in rows if not has_abstract[i]], f"required:{group.name}", "unsure", group.reason)
    no_required = not rules.required
    decisions = ["exclude" if reasons[i] else
                 ("unsure" if unsure[i] or missing[i] or no_required else "include") for i in range(n)]
    all_reasons, all_fired = reasons, fired
    frame = pd.DataFrame({"record_id": ids, "decision": decisions, "reasons": all_reasons, "fired": all_fired},
                         columns=columns)
    counts = frame["decision"].value_counts().to_dict()
    logger.info("screening rules: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no records")
    return frame


# -- vectorised matching ----------------------------------------------------------
#: Characters that a case-insensitive ``re`` match pairs with an ASCII letter although ``str.lower``
#: does not turn them into it (dotted and dotless I, long s, Kelvin sign): folded before searching needles.
_ASCII_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


#: The characters of :data:`_ASCII_FOLD` and their replacements, for :func:`_fold`'s ``str.replace``.
_ASCII_FOLD_PAIRS = tuple((chr(k), v) for k, v in _ASCII_FOLD.items())


def _fold(text: str) -> str:
    """Lower-case ``text`` so that every ASCII letter a case-insensitive match pairs with is lower-case ASCII.

    The same as ``text.translate(_ASCII_FOLD).lower()``: ``str.translate`` with a mapping looks up
    every character (most of ``apply_rules``' time at 100,000 records); ``in`` and ``str.replace``
    are scans in C, and those four characters are rare."""
    if text.isascii():
        return text.lower()
    for char, ascii_letter in _ASCII_FOLD_PAIRS:
        if char in text:
            text = text.replace(char, ascii_letter)
    return text.lower()


def _extend_run(run: set[str], op: Any, av: Any, exact: bool = False) -> set[str] | None:
    """``run`` (the spellings of a run of literals) followed by one more parsed item, or None when
    the item is not a literal, an optional literal (``a?``) or a small class of literals (``[sz]``)."""
    from re import _constants as sre

    def char(value: int) -> str | None:
        if value >= 128:
            return None
        return chr(value) if exact else chr(value).lower()
    if op is sre.LITERAL:
        c = char(av)
        return None if c is None else {r + c for r in run}
    if len(run) > 4:
        return None
    if op is sre.IN and 0 < len(av) <= 4 and all(o is sre.LITERAL for o, _ in av):
        chars = [char(v) for _, v in av]
        return None if None in chars else {r + c for r in run for c in chars}
    if (op is sre.MAX_REPEAT and av[0] == 0 and av[1] == 1 and len(av[2]) == 1
            and av[2][0][0] is sre.LITERAL):
        c = char(av[2][0][1])
        return None if c is None else run | {r + c for r in run}
    return None


def _drop_redundant(spellings: set[str], prefix: bool = False) -> tuple[str, ...]:
    """The spellings without those that contain (``prefix``: start with) another one: finding the
    other one suffices."""
    if prefix:
        return tuple(sorted(s for s in spellings if not any(o != s and s.startswith(o) for o in spellings)))
    return tuple(sorted(s for s in spellings if not any(o != s and o in s for o in spellings)))


def _literal_needles(items: list) -> list[tuple[str, ...]]:
    """Conditions a match of the parsed sequence ``items`` satisfies: each a tuple of lower-case ASCII
    strings, one of which the match contains.

    A run of literals is one condition; an optional literal (``a?``) or a small class of literals
    (``[sz]``) inside a run makes it a condition with a few spellings.
    """
    from re import _constants as sre  # the stdlib's parser constants
    conditions: list[tuple[str, ...]] = []
    run: set[str] = {""}

    def flush() -> None:
        nonlocal run
        if all(run):
            conditions.append(_drop_redundant(run))
        run = {""}

    for op, av in items:
        extended = _extend_run(run, op, av)
        if extended is not None:
            run = extended
            continue
        flush()
        if op is sre.SUBPATTERN:
            conditions.extend(_literal_needles(list(av[-1])))
        elif op is sre.BRANCH:
            branches = [_literal_needles(list(b)) for b in av[1]]
            if branches and all(branches):
                # any branch may match: one of each branch's most selective condition
                conditions.append(tuple(sorted({n for b in branches for n in max(b, key=_selectivity)})))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)) and av[0] >= 1:
            conditions.extend(_literal_needles(list(av[2])))
        elif op is getattr(sre, "ATOMIC_GROUP", None):
            conditions.extend(_literal_needles(list(av)))
    flush()
    return [c for c in conditions if c and all(c)]


def _start_spellings(items: list, exact: bool = False) -> tuple[tuple[str, ...], bool] | None:
    """The literal spellings every match of the parsed sequence ``items`` starts with (after
    zero-width assertions such as ``\\b``), and whether they are case-sensitive; None when unknown."""
    from re import _constants as sre
    for k, (op, av) in enumerate(items):
        if op is sre.AT:
            continue
        if op is sre.SUBPATTERN:
            # a group: its start is the sequence's start (flags: (?-i:...) makes it case-sensitive)
            add, delete = av[1], av[2]
            inner = exact or bool(delete & sre.SRE_FLAG_IGNORECASE)
            if add & sre.SRE_FLAG_IGNORECASE:
                inner = False
            return _start_spellings(list(av[-1]), inner)
        if op is sre.BRANCH:
            starts = [_start_spellings(list(b), exact) for b in av[1]]
            if not starts or any(st is None for st in starts):
                return None
            if all(st[1] for st in starts):
                return tuple(sorted({sp for st in starts for sp in st[0]})), True
            return tuple(sorted({sp.lower() for st in starts for sp in st[0]})), False
        run: set[str] = {""}
        for op2, av2 in items[k:]:
            extended = _extend_run(run, op2, av2, exact)
            if extended is None:
                break
            run = extended
        return (_drop_redundant(run, prefix=True), exact) if all(run) else None
    return None


def _selectivity(condition: tuple[str, ...]) -> int:
    return min(len(n) for n in condition)


@functools.lru_cache(maxsize=4096)
def pattern_needles(source: str) -> tuple[tuple[str, ...], ...] | None:
    r"""Literal conditions every match of the regular expression ``source`` meets, or None.

    Each condition is a tuple of lower-case ASCII strings; a match contains one of them
    (compared with the case-folded text), so a text holding none cannot match and need not
    be searched.  The conditions come from the pattern's parse tree (stdlib ``re`` syntax);
    for a pattern it cannot parse there are none, and every text is searched.  Used with
    any compiled pattern object that has ``.search`` and ``.pattern`` (``re`` or another
    engine with the same syntax for literals, such as RE2).

    Examples
    --------
    >>> pattern_needles(r"\bCAR[\s-]?(?:T|NK|Treg)\b")
    (('car',),)
    >>> pattern_needles(r"tumou?rs?")
    (('tumor', 'tumour'),)
    """
    try:
        from re import _parser as sre_parse
        tree = sre_parse.parse(source)
    except Exception:       # another engine's syntax: no shortcut, search every text
        return None
    # one-letter needles rule out little and cost a scan each
    conditions = [c for c in set(_literal_needles(list(tree))) if _selectivity(c) >= 2]
    return tuple(sorted(conditions, key=lambda c: (-_selectivity(c), c))[:2]) or None


@functools.lru_cache(maxsize=4096)
def pattern_start(source: str) -> tuple[tuple[str, ...], bool] | None:
    r"""The literal spellings every match of ``source`` starts with, and whether they are case-sensitive.

    ``SLE`` gives ``(('sle',), False)``: a match can only start where the case-folded text holds
    ``sle``, so :func:`apply_rules` tries the pattern at those places only (``pattern.match(text, pos)``)
    instead of searching the whole text.  ``(?-i:ALL)`` gives ``(('ALL',), True)``.  None when the
    pattern does not start with a literal (or is not stdlib ``re`` syntax).
    """
    try:
        from re import _parser as sre_parse
        tree = sre_parse.parse(source)
    except Exception:
        return None
    return _start_spellings(list(tree))


class _TableMatcher:
    """Term groups matched over a whole records table (one boolean per record)."""

    def __init__(self, texts: dict[str, list[str]], mesh: list[set[str]], patterns: Iterable = ()):
        self.texts = texts
        self.mesh = mesh
        self.n = len(mesh)
        # every needle of the patterns to come, found in one pass over each field (see _needle_table)
        needles = sorted({nd for p in patterns if isinstance(getattr(p, "pattern", None), str)
                          for cond in (pattern_needles(p.pattern) or ()) for nd in cond})
        self._automaton_needles = {nd: k for k, nd in enumerate(needles)}
        self._tables: dict[str, np.ndarray | None] = {}
        self._joined: dict[tuple[str, ...], list[str]] = {}
        self._folded_text: dict[tuple[str, ...], list[str]] = {}
        self._pattern_hits: dict[tuple[Any, tuple[str, ...]], tuple[np.ndarray, np.ndarray]] = {}
        self._needle_hits: dict[tuple[str, tuple[str, ...]], tuple[np.ndarray, np.ndarray]] = {}
        self._mesh_text: list[str] | None = None

    def _text(self, fields: tuple[str, ...]) -> list[str]:
        """Each record's text of ``fields``, joined as :meth:`TermGroup._text` joins it."""
        if fields not in self._joined:
            cols = [self.texts[f] for f in fields]
            self._joined[fields] = ([" \n ".join(t for t in parts if t) for parts in zip(*cols)]
                                    if len(cols) > 1 else cols[0])
        return self._joined[fields]

    def _folded(self, fields: tuple[str, ...]) -> list[str]:
        """:meth:`_text` case-folded for the needle scans (:func:`_fold`)."""
        if fields not in self._folded_text:
            if len(fields) > 1:
                # the fields' folded texts joined as _text joins them: the same string (folding is per
                # character but for a final sigma, which the separator " \n " ends a word for either way),
                # without lower-casing every record's text a second time
                parts = [self._folded((f,)) for f in fields]
                self._folded_text[fields] = [" \n ".join(t for t in texts if t) for texts in zip(*parts)]
            else:
                self._folded_text[fields] = [_fold(t) for t in self._text(fields)]
        return self._folded_text[fields]

    def _any_text(self, patterns: list, fields: tuple[str, ...], todo: np.ndarray) -> np.ndarray:
        hit = np.zeros(self.n, dtype=bool)
        if not patterns or not todo.any():
            return hit
        text = self._text(fields)
        for pat in patterns:
            rows = np.flatnonzero(todo & ~hit)
            if not len(rows):
                break
            source = getattr(pat, "pattern", None)
            # a pattern's result on a record is kept for the other groups that search the same fields
            found, done = self._pattern_hits.setdefault((source, fields) if isinstance(source, str) else
                                                        (id(pat), fields),
                                                        (np.zeros(self.n, dtype=bool), np.zeros(self.n, dtype=bool)))
            needles = pattern_needles(source) if isinstance(source, str) else None
            todo_rows = rows[~done[rows]]
            for cond in needles or ():
                if not len(todo_rows):
                    break
                possible = np.zeros(len(todo_rows), dtype=bool)
                for nd in cond:
                    possible |= self._holds(nd, fields, todo_rows)
                todo_rows = todo_rows[possible]
            start = pattern_start(source) if isinstance(pat, re.Pattern) else None
            if start is None:
                search = pat.search
                for i in todo_rows.tolist():
                    if search(text[i]):
                        found[i] = True
            else:
                found[todo_rows] = self._match_at_starts(pat, start, fields, todo_rows)
            done[rows] = True
            hit[rows] = found[rows]
        return hit

    def _match_at_starts(self, pat: re.Pattern, start: tuple[tuple[str, ...], bool], fields: tuple[str, ...],
                         rows: np.ndarray) -> list[bool]:
        """``pat.search`` of each record in ``rows``, trying ``pat`` only where one of its start
        spellings occurs (in the folded text, or the text itself when they are case-sensitive)."""
        spellings, exact = start
        text = self._text(fields)
        folded = text if exact else self._folded(fields)
        out = []
        for i in rows.tolist():
            t, hay = text[i], folded[i]
            if len(hay) != len(t):          # folding changed the length: positions differ, search it all
                out.append(bool(pat.search(t)))
                continue
            hit = False
            for sp in spellings:
                pos = hay.find(sp)
                while pos >= 0:
                    if pat.match(t, pos):
                        hit = True
                        break
                    pos = hay.find(sp, pos + 1)
                if hit:
                    break
            out.append(hit)
        return out

    def _holds(self, needle: str, fields: tuple[str, ...], rows: np.ndarray) -> np.ndarray:
        """Whether the folded text of ``fields`` of each record in ``rows`` contains ``needle`` (kept)."""
        if len(fields) == 1 and self._automaton_needles:
            table = self._needle_table(fields[0])
            if table is not None and needle in self._automaton_needles:
                return table[rows, self._automaton_needles[needle]]
        key = (needle, fields)
        if key not in self._needle_hits:
            self._needle_hits[key] = (np.zeros(self.n, dtype=bool), np.zeros(self.n, dtype=bool))
        holds, known = self._needle_hits[key]
        new = rows[~known[rows]]
        if len(new):
            if len(fields) > 1 and "\n" not in needle and needle.strip() == needle:
                # the fields are joined by " \n ", which such a needle cannot span: a field holds it
                found = np.zeros(len(new), dtype=bool)
                for f in fields:
                    found |= self._holds(needle, (f,), new)
                holds[new] = found
            else:
                folded = self._folded(fields)
                holds[new] = [needle in folded[i] for i in new.tolist()]
            known[new] = True
        return holds[rows]

    def _needle_table(self, field: str) -> np.ndarray | None:
        """Records x needles: which needle each record's folded ``field`` holds, from one pass per
        record (:func:`_needle_finder`); None without a finder (then each needle is a scan)."""
        if field not in self._tables:
            find = _needle_finder(list(self._automaton_needles))
            if find is None:             # the scans give the same answer, only slower
                self._tables[field] = None
                return None
            table = np.zeros((self.n, len(self._automaton_needles)), dtype=bool)
            rows, cols = [], []
            for i, text in enumerate(self._folded((field,))):
                if text:
                    found = find(text)
                    rows.extend([i] * len(found))
                    cols.extend(found)
            table[rows, cols] = True
            self._tables[field] = table
        return self._tables[field]

    def _any_mesh(self, wanted: list[str], todo: np.ndarray) -> np.ndarray:
        hit = np.zeros(self.n, dtype=bool)
        if not wanted or not todo.any():
            return hit
        exact = {w for w in wanted if not w.endswith("*")}
        if exact:
            hit |= np.array([not m.isdisjoint(exact) for m in self.mesh], dtype=bool)
        for w in wanted:
            if w.endswith("*"):
                # a descriptor starting with the stem: the stem right after a separator of the joined names
                stem = "\x00" + w[:-1]
                hit |= np.array([stem in m for m in self._mesh_joined()], dtype=bool)
        return hit & todo

    def _mesh_joined(self) -> list[str]:
        if self._mesh_text is None:
            self._mesh_text = ["".join("\x00" + m for m in ms) for ms in self.mesh]
        return self._mesh_text

    def matches(self, group: TermGroup, todo: np.ndarray | None = None) -> np.ndarray:
        """``group.matches`` for every record (only those in ``todo``, when given; False elsewhere)."""
        todo = np.ones(self.n, dtype=bool) if todo is None else todo
        hit = self._any_text(group.patterns, tuple(group.fields), todo)
        return hit | self._any_mesh(group.mesh, todo & ~hit)

    def fires(self, group: TermGroup) -> np.ndarray:
        """True where the group matches and is not spared (an excluding criterion fires)."""
        hit = self.matches(group)
        spared = self._any_text(group.unless_patterns, tuple(group.fields), hit)
        spared |= self._any_mesh(group.unless_mesh, hit & ~spared)
        return hit & ~spared


#: Needle sets up to this many characters in all are matched as one RE2 set (far below what its
#: DFA needs memory for: a set of literals has at most one state per character of them).
_RE2_SET_MAX_CHARS = 20_000


def _needle_finder(needles: list[str]):
    """``find(text)``: the indexes (in ``needles``) of the needles ``text`` contains, each once.

    One RE2 set of the escaped literals (google-re2: a DFA pass in C++ returning each matching
    needle once, 4x faster than listing every occurrence from an Aho-Corasick automaton at 100,000
    abstracts); the pyahocorasick automaton for a text RE2 cannot take (a lone surrogate is not
    UTF-8) or a needle set too large for the set.  None when neither is installed.
    """
    automaton = None

    def automaton_find(text: str) -> list[int]:
        nonlocal automaton
        if automaton is None:
            import ahocorasick
            automaton = ahocorasick.Automaton()
            for k, needle in enumerate(needles):
                automaton.add_word(needle, k)
            automaton.make_automaton()
        return list({k for _, k in automaton.iter(text)})
    try:
        import ahocorasick  # noqa: F401 - the fallback must be there
    except ImportError:
        return None
    if not needles or not all(needles) or sum(map(len, needles)) > _RE2_SET_MAX_CHARS:
        return automaton_find
    try:
        import re2
        options = re2.Options()
        options.log_errors = False
        options.max_mem = 64 << 20
        needle_set = re2.Set.SearchSet(options)
        for k, needle in enumerate(needles):
            if needle_set.Add(re.escape(needle)) != k:
                return automaton_find
        needle_set.Compile()
    except Exception as exc:  # noqa: BLE001 - a set RE2 refuses (an escape it lacks): the automaton
        logger.debug("needles as one RE2 set refused (%s): Aho-Corasick", exc)
        return automaton_find
    match = needle_set.Match

    def find(text: str) -> list[int]:
        try:
            return match(text) or []
        except (UnicodeEncodeError, TypeError, ValueError):
            return automaton_find(text)
    return find


def _record_ids(records: pd.DataFrame) -> list[str]:
    if "record_id" in records.columns:
        given = records["record_id"].tolist()
        if all(isinstance(r, str) and r for r in given):
            return given
    rows = records.to_dict("records")
    return [row.get("record_id") or record_id_for(row) for row in rows]


def _column_texts(records: pd.DataFrame, field: str) -> list[str]:
    """A text field of every record as :func:`_texts_of` reads it ('' when missing)."""
    if field not in records.columns:
        return [""] * len(records)
    if field == "keywords":
        return ["; ".join(str(k) for k in kw) if isinstance(kw, list) else "" for kw in records[field]]
    return [v if isinstance(v, str) else "" for v in records[field]]


def _column_sets(records: pd.DataFrame, field: str) -> list[set[str]]:
    """:func:`_lower_set` of every record's list (each distinct term normalised once)."""
    if field not in records.columns:
        return [set() for _ in range(len(records))]
    norm: dict[str, str] = {}

    def term(v: Any) -> str:
        if isinstance(v, str):
            out = norm.get(v)
            if out is None:
                out = norm[v] = v.split("/")[0].strip().strip("*").lower()
            return out
        return str(v).split("/")[0].strip().strip("*").lower()
    seen: dict[tuple, set[str]] = {}

    def normalised(value: Any) -> set[str]:
        if not isinstance(value, list):
            return set()
        key = tuple(value)
        try:
            out = seen.get(key)
        except TypeError:        # an unhashable term
            return {term(v) for v in value if v}
        if out is None:
            out = seen[key] = {term(v) for v in value if v}
        return out              # shared by records with the same list: read only
    return [normalised(value) for value in records[field]]


def reason_counts(result: pd.DataFrame, rules: Rules | None = None) -> pd.DataFrame:
    """Excluded records per reason (a record with two reasons counts under both)."""
    excluded = result[result["decision"] == "exclude"]
    keys = [r for reasons in excluded["reasons"] for r in reasons]
    counts = pd.Series(keys, dtype=object).value_counts()
    frame = counts.rename_axis("reason").reset_index(name="records")
    if rules is not None:
        frame.insert(1, "label", [rules.label(r) for r in frame["reason"]])
    return frame


def set_vocabulary(store, reasons: dict[str, str]) -> None:
    """Record the review's exclusion-reason vocabulary in the store (used to validate human reasons)."""
    store.set_meta(META_REASONS, json.dumps(reasons, ensure_ascii=False))


def vocabulary(store=None) -> dict[str, str]:
    """The review's exclusion-reason vocabulary: the store's (if recorded), else the default protocol's."""
    if store is not None:
        raw = store.get_meta(META_REASONS)
        if raw:
            return json.loads(raw)
    try:
        path = find_protocol()
        return dict(_default_vocabulary(str(path), path.stat().st_mtime_ns))
    except InputError:
        return dict(DEFAULT_REASONS)


@functools.lru_cache(maxsize=4)
def _default_vocabulary(path: str, mtime_ns: int) -> tuple[tuple[str, str], ...]:
    try:
        section = load_protocol(path).section("eligibility") or {}
    except InputError:
        section = {}
    reasons = section.get("exclusion_reasons") if isinstance(section, dict) else None
    if isinstance(reasons, dict) and reasons:
        return tuple((str(k), str(v)) for k, v in reasons.items())
    return tuple(DEFAULT_REASONS.items())


@collector_paused()
def save_rule_decisions(store, result: pd.DataFrame, rules: Rules | None = None,
                        stage: str = "title-abstract") -> int:
    """Store the rules' decisions (reviewer 'rules', kind 'rule'), never over a human's.

    Records that already have a human decision at ``stage`` are skipped, and so
    are records whose latest rule decision is unchanged (saving twice adds
    nothing).  Several reasons are stored joined by ``"; "``.  All rows go in
    one transaction.

    Returns
    -------
    int
        The number of rule decisions appended.
    """
    from .decisions import STAGES  # local: decisions imports this module
    if stage not in STAGES:
        raise InputError(f"stage {stage!r} is not one of {', '.join(STAGES)}: pick one")
    bad = sorted(set(result["decision"]) - set(RULE_DECISIONS))
    if bad:
        raise InputError(f"rule decisions must be one of {', '.join(RULE_DECISIONS)}, got {bad[0]!r}: "
                         "pass the frame returned by apply_rules")
    if rules is not None:
        set_vocabulary(store, rules.reasons)
    con = store.connection.cursor()
    con.row_factory = None                 # plain tuples (sqlite3.Row objects cost more than the read)
    human = {r[0] for r in con.execute(
        "SELECT DISTINCT record_id FROM decisions WHERE stage=? AND kind != 'rule'", (stage,))}
    latest = {r[0]: (r[1], r[2]) for r in con.execute(
        "SELECT record_id, decision, reason FROM decisions WHERE decision_id IN ("
        "SELECT MAX(decision_id) FROM decisions WHERE stage=? AND kind='rule' GROUP BY record_id)", (stage,))}
    from ..store import utcnow
    now = utcnow()
    rows = []
    skipped_human = 0
    fired = result["fired"].tolist() if "fired" in result.columns else [()] * len(result)
    joined: dict[tuple, str | None] = {}     # few distinct reason and criteria lists: each joined once

    def _joined(values, separator: str) -> str | None:
        key = (separator, *values)
        if key not in joined:
            joined[key] = separator.join(values) if len(values) else None
        return joined[key]
    for record_id, decision, reasons, criteria in zip(result["record_id"].tolist(), result["decision"].tolist(),
                                                      result["reasons"].tolist(), fired):
        if record_id in human:
            skipped_human += 1
            continue
        reason = _joined(reasons, REASON_SEPARATOR)
        if latest.get(record_id) == (decision, reason):
            continue
        rows.append((record_id, RULES_REVIEWER, stage, decision, reason, _joined(criteria, "; "), "rule", now))
    with store.transaction() as c:
        c.executemany("INSERT INTO decisions(record_id, reviewer, stage, decision, reason, note, kind, created_at) "
                      "VALUES(?, ?, ?, ?, ?, ?, ?, ?)", rows)
    logger.info("screening rules: %d decisions saved, %d records left to their human decision",
                len(rows), skipped_human)
    return len(rows)
