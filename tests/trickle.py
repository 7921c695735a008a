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


def read_all(reader, read_size: int) -> bytes:
    """Everything ``reader`` hands out, asked for ``read_size`` bytes at a time."""
    chunks = []
    while True:
        chunk = reader.read(read_size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
