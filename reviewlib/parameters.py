"""Notebook parameters given with ``reviewlib run -p NAME VALUE``, checked before the first notebook runs.

A value is checked against the form of the parameter's default in the
notebook's ``parameters`` cell: a ``True``/``False`` default takes true or
false, an integer default a whole number, a number default a number, a text
default text; the date parameters (``since``, ``mindate``, ``maxdate``) take the
forms the search accepts (``YYYY``, ``YYYY/MM``, ``YYYY/MM/DD``; ``since`` also
``last``).  A bad value stops the run with one line before anything is written,
instead of failing inside notebook 02 after notebook 01 has run.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from .errors import ConfigError

__all__ = ["DATE_PARAMETERS", "check_values"]

#: Parameters that hold a date of the search.
DATE_PARAMETERS = ("since", "mindate", "maxdate")


def _kind(default: Any) -> str | None:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "text"
    return None  # None or an expression: any value


def _check_date(name: str, value: Any) -> str:
    from .retrieval.fetch import parse_date  # the search's own reader of dates
    from .errors import InputError
    if isinstance(value, dt.date):
        value = value.strftime("%Y/%m/%d")
    text = str(value).strip()
    if name == "since" and text == "last":
        return text
    try:
        parse_date(text, upper=(name == "maxdate"), name=name)
    except InputError as exc:
        raise ConfigError(f"parameter {name}={value!r} is not a date: give YYYY, YYYY/MM or YYYY/MM/DD"
                          f"{' (or last)' if name == 'since' else ''}, e.g. -p {name} 2020/01/01") from None
    return text


def check_values(user: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Check (and lightly normalise) ``-p`` values against the notebooks' defaults.

    Parameters
    ----------
    user : mapping
        Name to value, as :func:`reviewlib.pipeline.parse_parameters` read them (YAML scalars).
    defaults : mapping
        Name to default value, from the notebooks' ``parameters`` cells.

    Returns
    -------
    dict
        The values, with dates as text and whole numbers given for a number default as floats.

    Raises
    ------
    ConfigError
        One line naming the parameter, the value, the form it needs and an example.
    """
    out: dict[str, Any] = {}
    for name, value in user.items():
        if value is None:
            out[name] = value
            continue
        if name in DATE_PARAMETERS:
            out[name] = _check_date(name, value)
            continue
        default = defaults.get(name)
        kind = _kind(default)
        ok = (kind is None
              or (kind == "true or false" and isinstance(value, bool))
              or (kind == "a whole number" and isinstance(value, int) and not isinstance(value, bool))
              or (kind == "a number" and isinstance(value, (int, float)) and not isinstance(value, bool))
              or (kind == "text" and isinstance(value, (str, int, float)) and not isinstance(value, bool)))
        if not ok:
            raise ConfigError(f"parameter {name}={value!r} must be {kind} (its default is {default!r}): "
                              f"e.g. -p {name} {_example(default)}")
        if kind == "a number":
            value = float(value)
        elif kind == "text" and not isinstance(value, str):
            value = str(value)
        out[name] = value
    return out


def _example(default: Any) -> str:
    if isinstance(default, bool):
        return "true" if not default else "false"
    if isinstance(default, str):
        return default or "text"
    return str(default)
