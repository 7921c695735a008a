"""The shared kernel between two notebooks of a run (pipeline._Kernel): the reset clears the namespace and
gives freed memory back to the system, so a big review's next notebook reuses the kernel (issue 15).

A real kernel (ipykernel, as ``reviewlib run`` starts it)."""
from __future__ import annotations

import json
import sys

import pytest

from reviewlib import pipeline


@pytest.fixture
def kernel():
    from jupyter_core.utils import run_sync
    k = pipeline._Kernel(shared=True, kernel_name="python3")
    run_sync(k.km.start_kernel)()          # as papermill starts it for a run's first notebook
    yield k
    k.shutdown()


def _value(kernel, expression: str):
    out = kernel._run_code(f"print(__import__('json').dumps({expression}))")
    return json.loads("".join(o.get("text", "") for o in out if o.get("name") == "stdout"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim and /proc are Linux's")
def test_the_reset_gives_back_what_a_notebook_freed(kernel):
    before = kernel.memory()["rss_mb"]
    # 300 MB in 1 kB blocks (glibc malloc, not Python's small-object arenas), then a block after them that
    # outlives the reset (in sys): the heap cannot shrink from its top, only malloc_trim returns the pages
    kernel._run_code("data = [bytes(1000) + bytes([i % 256]) for i in range(300_000)]\n"
                     "import sys; sys._reviewlib_test_pin = bytearray(4000)")
    assert kernel.memory()["rss_mb"] > before + 250
    kernel.reset()
    assert _value(kernel, "'data' in globals()") is False            # the namespace is cleared
    assert _value(kernel, "len(__import__('sys')._reviewlib_test_pin)") == 4000   # the kernel is the same one
    assert kernel.memory()["rss_mb"] < before + 60                   # the freed 300 MB went back


def test_a_reset_without_a_kernel_does_nothing():
    idle = pipeline._Kernel(shared=False, kernel_name="python3")
    idle.reset()
    assert idle.memory() == {}
