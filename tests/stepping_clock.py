"""A fake clock for the screener's double-click guard: tests pass it as ``clock=``."""
from __future__ import annotations


class SteppingClock:
    """A clock that moves ``step`` seconds at each reading: every click comes well after the last."""

    def __init__(self, step: float = 5.0):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
