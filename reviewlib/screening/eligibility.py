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
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..errors import InputError, ProtocolError
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
    out = []
    for row in records.to_dict("records"):
        rid = row.get("record_id") or record_id_for(row)
        decision, reasons, fired = evaluate(row, rules)
        out.append({"record_id": rid, "decision": decision, "reasons": reasons, "fired": fired})
    frame = pd.DataFrame(out, columns=["record_id", "decision", "reasons", "fired"])
    counts = frame["decision"].value_counts().to_dict()
    logger.info("screening rules: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no records")
    return frame


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
    con = store.connection
    human = {r[0] for r in con.execute(
        "SELECT DISTINCT record_id FROM decisions WHERE stage=? AND kind != 'rule'", (stage,))}
    latest = {r[0]: (r[1], r[2]) for r in con.execute(
        "SELECT record_id, decision, reason FROM decisions WHERE decision_id IN ("
        "SELECT MAX(decision_id) FROM decisions WHERE stage=? AND kind='rule' GROUP BY record_id)", (stage,))}
    from ..store import utcnow
    now = utcnow()
    rows = []
    skipped_human = 0
    for rec in result.itertuples(index=False):
        if rec.record_id in human:
            skipped_human += 1
            continue
        reason = REASON_SEPARATOR.join(rec.reasons) if len(rec.reasons) else None
        if latest.get(rec.record_id) == (rec.decision, reason):
            continue
        note = "; ".join(rec.fired) if hasattr(rec, "fired") and len(rec.fired) else None
        rows.append((rec.record_id, RULES_REVIEWER, stage, rec.decision, reason, note, "rule", now))
    with store.transaction() as c:
        c.executemany("INSERT INTO decisions(record_id, reviewer, stage, decision, reason, note, kind, created_at) "
                      "VALUES(?, ?, ?, ?, ?, ?, ?, ?)", rows)
    logger.info("screening rules: %d decisions saved, %d records left to their human decision",
                len(rows), skipped_human)
    return len(rows)
