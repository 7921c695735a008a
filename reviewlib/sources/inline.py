"""Superscripts and subscripts written so that their meaning survives as plain text.

PubMed XML marks exponents and indices up (``0.5 x 10<sup>6</sup> cells/kg``, ``mg/m<sup>2</sup>``,
``CD4<sup>+</sup>``, ``IC<sub>50</sub>``).  Dropping the tags turns a dose into another number
("0.5 x 106"), so every reader keeps them:

- digits and the signs ``+ - = ( )`` become Unicode super/subscript characters: ``10⁶``, ``m²``,
  ``CD4⁺``, ``10⁻³``, ``IC₅₀``, ``CO₂``;
- marks without letters or digits (``®``, ``™``, ``°``, ``*``, ``†``) stay as they are;
- anything else keeps an explicit form: ``^`` for a superscript, ``_`` for a subscript, the text in
  parentheses when it is not one run of word characters or a word follows it (``PrP^Sc``, ``P_trend``,
  ``t_(1/2)``, ``_(V)MLSS``).

The result is plain text: it needs no markup to be read right, in a table, a CSV cell or an HTML page.
"""
from __future__ import annotations

import re

__all__ = ["superscript", "subscript", "render_tags"]

_SUPER = str.maketrans("0123456789+-\u2212=()", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁼⁽⁾")
_SUB = str.maketrans("0123456789+-\u2212=()", "₀₁₂₃₄₅₆₇₈₉₊₋₋₌₍₎")
_MAPPABLE = set("0123456789+-\u2212=()")
_WORD = re.compile(r"\w+")


def _script(text: str, table: dict, mark: str, followed_by_word: bool) -> str:
    text = " ".join(text.split())
    if not text:
        return ""
    if set(text) <= _MAPPABLE:
        return text.translate(table)
    if not any(c.isalnum() for c in text):  # a mark that reads the same on the line: ® ™ ° * † ‡ ′
        return text
    bare = _WORD.fullmatch(text) and not followed_by_word  # "<sub>V</sub>MLSS" -> "_(V)MLSS", not "_VMLSS"
    return mark + (text if bare else f"({text})")


def superscript(text: str, followed_by_word: bool = False) -> str:
    """``"6"`` -> ``"⁶"``, ``"-3"`` -> ``"⁻³"``, ``"+"`` -> ``"⁺"``; otherwise ``"^Sc"`` / ``"^(a,b)"``
    (``"^(Sc)"`` when ``followed_by_word``: the text right after it starts with a letter or digit)."""
    return _script(text, _SUPER, "^", followed_by_word)


def subscript(text: str, followed_by_word: bool = False) -> str:
    """``"50"`` -> ``"₅₀"``, ``"2"`` -> ``"₂"``; otherwise ``"_trend"`` / ``"_(1/2)"``
    (``"_(V)"`` when ``followed_by_word``)."""
    return _script(text, _SUB, "_", followed_by_word)


_TAG = re.compile(r"<(sup|sub)(?:\s[^<>]*)?>(.*?)</\1\s*>", re.I | re.S)
_ANY_TAG = re.compile(r"</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>")


def render_tags(text: str | None) -> str | None:
    """Literal ``<sup>..</sup>`` / ``<sub>..</sub>`` tags in a string (as some RIS and CSV exports
    carry them) written as :func:`superscript` / :func:`subscript`; other text unchanged."""
    if not text or "<" not in text:
        return text

    def one(m: re.Match) -> str:
        inner = _ANY_TAG.sub("", m.group(2))
        word_next = bool(_WORD.match(text, m.end()))
        return superscript(inner, word_next) if m.group(1).lower() == "sup" else subscript(inner, word_next)

    return _TAG.sub(one, text)
