"""``gcpause.collector_paused`` (issue 15): the collector is off inside, back on after, whatever happens.

And ``eligibility._fold`` without ``str.translate`` folds exactly as the translate table did.
"""
from __future__ import annotations

import gc

import pytest

from reviewlib.gcpause import collector_paused
from reviewlib.screening import eligibility


def test_collector_is_paused_inside_and_resumed_after():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():              # nested: the inner block does not resume it
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collector_resumes_after_an_exception():
    with pytest.raises(ValueError):
        with collector_paused():
            raise ValueError("boom")
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()             # the caller had turned it off: it stays off
    finally:
        gc.enable()


def test_decorated_steps_keep_their_names_and_run_paused():
    from reviewlib.screening import dedup_cache, rule_cache
    assert dedup_cache.deduplicate_cached.__name__ == "deduplicate_cached"
    assert rule_cache.apply_rules_cached.__doc__.startswith(":func:`reviewlib.screening.eligibility.apply_rules`")
    seen = []

    @collector_paused()
    def step():
        seen.append(gc.isenabled())
    step()
    assert seen == [False] and gc.isenabled()


@pytest.mark.parametrize("text", [
    "CAR-T cells in \u017fystemic \u017fclerosis", "\u0130mmune thrombocytopenia \u0130TP", "pat\u0131ents",
    "\u212aidney \u212a cells", "plain ascii TEXT", "Sj\u00f6gren's syndrome \u00c4\u00d6\u00dc \u00df", "",
    "\u0130\u0130\u0131\u017f\u212a", "\u03a3\u03b9\u03c3\u03c5\u03c6\u03bf\u03c2 \u4e2d\u6587 \U0001F600",
])
def test_fold_is_the_translate_table_then_lower(text):
    assert eligibility._fold(text) == text.translate(eligibility._ASCII_FOLD).lower()


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="glibc's malloc_trim, /proc")
def test_the_outermost_block_gives_freed_memory_back_to_the_system():
    """300 MB freed inside the block, below a block still alive: the heap cannot shrink from its top, so the
    memory stays the process's until the block ends and trims it (gcpause.release_free_memory)."""
    before = _rss_mb()
    with collector_paused():
        with collector_paused():
            data = [bytes(1000) + bytes([i % 256]) for i in range(300_000)]
            pin = bytearray(4000)
            del data
        still = _rss_mb()                     # the inner block's end gives nothing back
        assert still > before + 250
    assert _rss_mb() < still - 200
    assert len(pin) == 4000
