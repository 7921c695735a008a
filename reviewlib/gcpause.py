"""Python's cyclic garbage collector paused while a step builds a large table (issue 15).

Decoding 100,000 records, deduplicating them and applying the rules each allocate millions of lists,
dicts and tuples that stay alive.  Every 700 net new containers the collector runs, and each time
enough of them have survived it walks the *whole* heap (a full collection: about half a second
with a 100,000-record table in memory), sixteen times in notebook 02's first two steps: 8.6 of
their 54 CPU seconds at 100,000 records.  None of these steps makes reference cycles that need
collecting (their objects are freed by reference counting, as before), so pausing the collector
changes no result; it runs again as soon as the outermost step returns.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the ``with`` block (nested blocks: the outermost resumes it).

    Examples
    --------
    >>> with collector_paused():
    ...     table = [[i] for i in range(100_000)]
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


__all__ = ["collector_paused"]
