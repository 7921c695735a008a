"""A binary stream that hands out data in small, irregular pieces (chunk boundaries anywhere)."""
from __future__ import annotations


class Trickle:
    """A binary stream that hands out data in small, irregular pieces."""

    def __init__(self, data: bytes, sizes: list[int]):
        self.data, self.pos, self.sizes, self.turn = data, 0, sizes, 0

    def read(self, n: int = -1) -> bytes:
        k = self.sizes[self.turn % len(self.sizes)]
        self.turn += 1
        out = self.data[self.pos:self.pos + k]
        self.pos += k
        return out
