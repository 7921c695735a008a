"""Regular expressions written by users (protocol patterns), matched without runaway backtracking.

A protocol's patterns are user input.  Python's ``re`` backtracks, so a pattern
such as ``^(a+)+$`` takes time exponential in the text's length and hangs
``extract`` and the notebooks.  :func:`compile_pattern` therefore:

1. compiles the pattern with ``re`` first, so a syntax error is reported as
   before (``re.error``);
2. uses Google's RE2 (``google-re2``), whose matching time is linear in the
   text, for every pattern RE2 accepts;
3. keeps ``re`` only for patterns RE2 cannot run (look-around, back-references),
   and only if :func:`backtracking_risk` finds no shape that backtracks
   exponentially (a repetition inside a repetition whose pieces can match the
   same text, or overlapping alternatives inside a repetition);
4. otherwise raises :class:`UnsafePattern`, which the protocol readers turn into
   one line naming the field.

RE2's ``\\w``, ``\\d``, ``\\s`` and ``\\b`` are ASCII, Python's are Unicode: on
text with non-ASCII letters next to a match the two can differ (measured by
``benchmarks/regex.py``).
"""
from __future__ import annotations

import functools
import re
from re import _constants as C
from re import _parser
from typing import Any, Iterable

import re2

__all__ = ["UnsafePattern", "backtracking_risk", "compile_pattern", "any_of", "engine_of"]

_OPTIONS = re2.Options()
_OPTIONS.case_sensitive = False
_OPTIONS.log_errors = False
_OPTIONS_CASE = re2.Options()
_OPTIONS_CASE.log_errors = False

_REPEATS = (C.MAX_REPEAT, C.MIN_REPEAT)
_SINGLE = (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN, C.CATEGORY)
_NO_WIDTH = (C.AT,)
#: Characters tried when deciding whether two character sets can match the same character.
_SAMPLE = [chr(i) for i in range(0x3000)] + ["\u212a", "\u017f", "\uff10", "\uff21"]


class UnsafePattern(ValueError):
    """A pattern that RE2 cannot run and that would backtrack exponentially under ``re``."""


def engine_of(pattern: Any) -> str:
    """``"re2"`` or ``"re"``: the engine a compiled pattern runs on."""
    return "re" if isinstance(pattern, re.Pattern) else "re2"


# -- the static check -------------------------------------------------------------------
def _category(cat, ch: str) -> bool:
    if cat == C.CATEGORY_DIGIT:
        return ch.isdecimal()
    if cat == C.CATEGORY_NOT_DIGIT:
        return not ch.isdecimal()
    if cat == C.CATEGORY_SPACE:
        return ch.isspace()
    if cat == C.CATEGORY_NOT_SPACE:
        return not ch.isspace()
    if cat == C.CATEGORY_WORD:
        return ch.isalnum() or ch == "_"
    if cat == C.CATEGORY_NOT_WORD:
        return not (ch.isalnum() or ch == "_")
    return True  # unknown: assume it may match (conservative)


def _in_set(items, ch: str) -> bool:
    negate = False
    hit = False
    for op, av in items:
        if op == C.NEGATE:
            negate = True
        elif op == C.LITERAL:
            hit = hit or ord(ch) == av
        elif op == C.RANGE:
            hit = hit or av[0] <= ord(ch) <= av[1]
        elif op == C.CATEGORY:
            hit = hit or _category(av, ch)
        else:
            hit = True  # unknown member: conservative
    return hit != negate


def _matches(item, ch: str, ignorecase: bool) -> bool:
    op, av = item
    variants = {ch, ch.lower(), ch.upper()} if ignorecase else {ch}
    for c in variants:
        if len(c) != 1:
            continue
        if op == C.ANY:
            return c != "\n"
        if op == C.LITERAL and ord(c) == av:
            return True
        if op == C.NOT_LITERAL and ord(c) != av:
            return True
        if op == C.IN and _in_set(av, c):
            return True
        if op == C.CATEGORY and _category(av, c):
            return True
    return False


def _overlap(a, b, ignorecase: bool) -> bool:
    return not _sample_matches(a, ignorecase).isdisjoint(_sample_matches(b, ignorecase))


#: :func:`_sample_matches` by (the item's ``repr``, ignorecase).
_SAMPLE_MATCHES: dict[tuple[str, bool], frozenset[str]] = {}


def _sample_matches(item, ignorecase: bool) -> frozenset[str]:
    """The characters of :data:`_SAMPLE` that ``item`` matches, kept by the item's ``repr`` (a parsed
    item's repr says all it matches): the same few sets (``\\w``, ``\\s``, a letter) are compared
    again and again, each a walk over 12,000 characters (most of loading a protocol's schema)."""
    key = (repr(item), ignorecase)
    found = _SAMPLE_MATCHES.get(key)
    if found is None:
        if len(_SAMPLE_MATCHES) >= 4096:
            _SAMPLE_MATCHES.clear()
        found = _SAMPLE_MATCHES[key] = frozenset(ch for ch in _SAMPLE if _matches(item, ch, ignorecase))
    return found


def _unit(item):
    """``(single-char item, min, max)`` for a single character or a repeat of one; None otherwise."""
    op, av = item
    if op in _SINGLE:
        return item, 1, 1
    if op in _REPEATS:
        lo, hi, body = av
        body = list(body)
        if len(body) == 1 and body[0][0] in _SINGLE:
            return body[0], lo, hi
    return None


def _separated(body, ignorecase: bool) -> bool:
    """True if a repeated sequence of (repeats of) single characters splits text only one way.

    Each multiply-repeated piece must be followed (cyclically: the next iteration
    starts again at the first piece) by a required piece that cannot match the
    same character, e.g. ``(?:[\\w-]+\\s+){0,4}``.
    """
    while len(body) == 1 and body[0][0] == C.SUBPATTERN:  # (a+b)+: look inside the group
        body = list(body[0][1][3])
    units = []
    for item in body:
        if item[0] in _NO_WIDTH:
            continue
        u = _unit(item)
        if u is None:
            return False
        units.append(u)
    if not units:
        return True
    for i, (single, lo, hi) in enumerate(units):
        if hi <= 1:
            continue
        nxt_single, nxt_lo, _ = units[(i + 1) % len(units)]
        if nxt_lo < 1 or _overlap(single, nxt_single, ignorecase):
            return False
    return True


def _contains(items, ops) -> bool:
    """True if ``items`` hold an op of ``ops`` outside look-around (which never backtracks into)."""
    for op, av in items:
        if op in ops:
            if op in _REPEATS and av[1] <= 1:
                pass
            else:
                return True
        if op in _REPEATS and _contains(av[2], ops):
            return True
        if op == C.SUBPATTERN and _contains(av[3], ops):
            return True
        if op == C.BRANCH and any(_contains(b, ops) for b in av[1]):
            return True
    return False


def _first(items):
    for item in items:
        if item[0] in _NO_WIDTH:
            continue
        if item[0] in _SINGLE:
            return item
        if item[0] == C.SUBPATTERN:
            return _first(item[1][3])
        return None
    return None


def _branches_overlap(items, ignorecase: bool) -> bool:
    for op, av in items:
        if op == C.BRANCH:
            firsts = [_first(b) for b in av[1]]
            if any(f is None for f in firsts):
                return True
            if any(_overlap(firsts[i], firsts[j], ignorecase)
                   for i in range(len(firsts)) for j in range(i + 1, len(firsts))):
                return True
        elif op == C.SUBPATTERN and _branches_overlap(av[3], ignorecase):
            return True
    return False


def _walk(items, ignorecase: bool) -> str | None:
    for op, av in items:
        if op in _REPEATS:
            lo, hi, body = av
            body = list(body)
            if hi > 1:
                if _contains(body, _REPEATS) and not _separated(body, ignorecase):
                    return "a repetition inside a repetition whose pieces can match the same text"
                if _branches_overlap(body, ignorecase):
                    return "a repeated group of alternatives that can match the same text"
            risk = _walk(body, ignorecase)
        elif op == C.SUBPATTERN:
            risk = _walk(av[3], ignorecase)
        elif op == C.BRANCH:
            risk = next((r for r in (_walk(b, ignorecase) for b in av[1]) if r), None)
        elif op in (C.ASSERT, C.ASSERT_NOT):
            risk = _walk(av[1], ignorecase)
        elif op == C.ATOMIC_GROUP:
            risk = _walk(av, ignorecase)
        elif op == C.POSSESSIVE_REPEAT:
            risk = _walk(av[2], ignorecase)
        else:
            risk = None
        if risk:
            return risk
    return None


def backtracking_risk(pattern: str, flags: int = re.IGNORECASE) -> str | None:
    """Why ``pattern`` may backtrack exponentially under ``re`` (None if no such shape is found).

    Conservative: a shape it cannot analyse counts as a risk.
    """
    tree = _parser.parse(pattern, flags)
    ignorecase = bool(tree.state.flags & re.IGNORECASE)
    return _walk(tree.data, ignorecase)


# -- compiling ----------------------------------------------------------------------------
def compile_pattern(pattern: str, flags: int = re.IGNORECASE):
    """Compile a user's pattern for linear-time matching (RE2), or a checked ``re`` pattern.

    Parameters
    ----------
    pattern : str
    flags : int
        ``re.IGNORECASE`` or 0 (the only flag protocols use).

    Returns
    -------
    compiled pattern
        An RE2 pattern (``re2._Regexp``) or an ``re.Pattern``; both have ``search``,
        ``finditer``, ``match``, ``pattern`` and ``groupindex``.

    Raises
    ------
    re.error
        Not a valid regular expression.
    UnsafePattern
        RE2 cannot run it and it may backtrack exponentially.
    """
    return _compile_pattern(pattern, flags)


@functools.lru_cache(maxsize=8192)
def _compile_pattern(pattern: str, flags: int):
    """:func:`compile_pattern`, kept per (pattern, flags): compiled patterns are immutable, and a
    protocol's schema is loaded several times per run (the backtracking check of look-around
    patterns alone took seconds each time).  A refused pattern is not kept: it raises each time."""
    compiled = re.compile(pattern, flags)
    try:
        return re2.compile(pattern, _OPTIONS if flags & re.IGNORECASE else _OPTIONS_CASE)
    except re2.error:
        pass
    risk = backtracking_risk(pattern, flags)
    if risk:
        raise UnsafePattern(f"it uses look-around or back-references, which the linear-time engine (RE2) "
                            f"cannot run, and it has {risk}, which can take exponential time")
    return compiled


class _AnyOf:
    """``search`` over several compiled patterns: the first engine's hit, else the next's."""

    def __init__(self, compiled: list):
        self.compiled = compiled

    def search(self, text: str, *args):
        for p in self.compiled:
            m = p.search(text, *args)
            if m:
                return m
        return None


def any_of(patterns: Iterable[Any], flags: int = re.IGNORECASE):
    """One matcher true wherever any of ``patterns`` (compiled by :func:`compile_pattern`) matches.

    RE2 patterns are joined into one RE2 alternation and ``re`` ones (each already
    checked) into one ``re`` alternation, so no RE2-only pattern ever runs on ``re``.
    """
    by_engine: dict[str, list[str]] = {"re2": [], "re": []}
    for p in patterns:
        by_engine[engine_of(p)].append(p.pattern)
    compiled = []
    if by_engine["re2"]:
        joined = "|".join(f"(?:{p})" for p in by_engine["re2"])
        try:
            compiled.append(re2.compile(joined, _OPTIONS if flags & re.IGNORECASE else _OPTIONS_CASE))
        except re2.error:  # e.g. too big for one RE2 program: keep them apart
            compiled.extend(re2.compile(p, _OPTIONS if flags & re.IGNORECASE else _OPTIONS_CASE)
                            for p in by_engine["re2"])
    if by_engine["re"]:
        compiled.append(re.compile("|".join(f"(?:{p})" for p in by_engine["re"]), flags))
    if not compiled:
        return re.compile(r"(?!)")
    return compiled[0] if len(compiled) == 1 else _AnyOf(compiled)
