"""Python's cyclic garbage collector paused while a step builds a large table (issue 15).

Decoding 100,000 records, deduplicating them and applying the rules each allocate millions of lists,
dicts and tuples that stay alive.  Every 700 net new containers the collector runs, and each time
enough of them have survived it walks the *whole* heap (a full collection: about half a second
with a 100,000-record table in memory), sixteen times in notebook 02's first two steps: 8.6 of
their 54 CPU seconds at 100,000 records.  None of these steps makes reference cycles that need
collecting (their objects are freed by reference counting, as before), so pausing the collector
changes no result; it runs again as soon as the outermost step returns.

When the outermost step returns, what it freed is also given back to the system (glibc's
``malloc_trim``): the C heap keeps freed blocks for reuse, and at 100,000 records notebook 02's
kernel held 1.26 GB after deduplication of which 0.34 GB was free (0.6 GB more after the rules),
memory that was the kernel's while the prioritiser's TF-IDF was fitted in a process beside it.
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
            release_free_memory()


def release_free_memory() -> bool:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim(0)``: milliseconds for a
    small heap, 0.1 s for a kernel holding 100,000 records).  Returns whether it could (not elsewhere
    than glibc)."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes
            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM is False:
        return False
    _MALLOC_TRIM(0)
    return True


_MALLOC_TRIM = None


__all__ = ["collector_paused", "release_free_memory"]
