"""Numbers read from the environment (``REVIEWLIB_*``), each checked the same way.

A value that is not what the variable takes is refused with one line naming the variable, the value
and what to set instead (an :class:`~reviewlib.errors.InputError` whose ``source`` is the variable);
an unset or empty variable is the default.
"""
from __future__ import annotations

import os

from .errors import InputError


def process_count(variable: str, default: int, purpose: str) -> int:
    """How many processes to use for a step: ``variable`` from the environment, else ``default``; at least 1.

    ``purpose`` completes "the number of processes that ..." in the error.

    Raises
    ------
    InputError
        The variable is set to something other than a whole number.
    """
    value = os.environ.get(variable, "").strip()
    if not value:
        return max(1, int(default))
    if not value.isdigit():
        raise InputError(f"{variable}={value!r} is not a whole number: set it to the number of processes that "
                         f"{purpose} (1: in this process)", source=variable)
    return max(1, int(value))


__all__ = ["process_count"]
