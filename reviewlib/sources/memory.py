"""Will a file fit in memory?  A snapshot or import far larger than memory allows is refused with
its size and what to do, before reading it, instead of the process being killed half-way.

The estimate is the file's uncompressed size times :data:`BYTES_PER_BYTE`: the peak resident
memory of a whole ``reviewlib run`` per byte of efetch XML, measured with
``benchmarks/scale.py`` (385 MB for the 61 MB of XML of 10,000 real PubMed records; 6.4, rounded
down to 6).  Memory available is the kernel's ``MemAvailable`` (and the cgroup limit, when
lower), or ``REVIEWLIB_MEMORY_LIMIT`` (bytes, or with a unit: ``512MB``, ``2GB``) when set.
"""
from __future__ import annotations

import gzip
import logging
import os
import re
import zipfile
from pathlib import Path

from ..errors import InputError

logger = logging.getLogger(__name__)

#: Peak memory of a review per byte of (uncompressed) input, see the module docstring.
BYTES_PER_BYTE = 6.0
_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30}


class TooLargeError(InputError):
    """An input needs more memory than this machine has available.

    Attributes
    ----------
    size, uncompressed, needed, available : int
        Bytes: the file, its content, the memory a review of it needs, the memory available.
    """

    def __init__(self, message: str, *, source: str, size: int, uncompressed: int, needed: int, available: int):
        super().__init__(message, source=source)
        self.size, self.uncompressed, self.needed, self.available = size, uncompressed, needed, available


def human(n: float) -> str:
    """Bytes for people: '1.2 GB'."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def parse_size(text: str) -> int:
    """'2GB', '512 MiB', '1000000' -> bytes."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise InputError(f"REVIEWLIB_MEMORY_LIMIT={text!r} is not a size: write it as 2GB, 512MB or bytes")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def available_memory() -> int:
    """Bytes of memory available to this process (see the module docstring)."""
    limit = os.environ.get("REVIEWLIB_MEMORY_LIMIT")
    if limit:
        return parse_size(limit)
    best = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                best = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    try:
        raw = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if raw.isdigit():
            best = min(best, int(raw)) if best is not None else int(raw)
    except OSError:
        pass
    if best is None:
        try:
            best = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            best = 2**62          # unknown: do not refuse
    return best


def uncompressed_size(path: Path) -> int:
    """The size of a file's content: gzip's recorded length (or 8x when it wrapped past 4 GiB), a
    zip's members, else the file size."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
            if magic == b"\x1f\x8b" and size >= 18:
                fh.seek(-4, os.SEEK_END)
                recorded = int.from_bytes(fh.read(4), "little")
                return recorded if recorded >= size else size * 8     # ISIZE is the length mod 2**32
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return sum(info.file_size for info in zf.infolist())
    except (OSError, zipfile.BadZipFile, gzip.BadGzipFile):
        pass
    return size


def check_fits(path: str | os.PathLike, what: str = "input", *, bytes_per_byte: float = BYTES_PER_BYTE) -> int:
    """Refuse ``path`` when a review of it needs more memory than is available; returns the estimate.

    Raises
    ------
    TooLargeError
        One line: the file, its size, the memory it needs and the memory available, and what to do.
    """
    path = Path(path)
    size = path.stat().st_size
    content = uncompressed_size(path)
    needed = int(content * bytes_per_byte)
    available = available_memory()
    if needed > available:
        raise TooLargeError(
            f"{what} {path} is too large for this machine's memory: {human(size)} on disk, {human(content)} of "
            f"content, needs about {human(needed)} to review but {human(available)} is available: split it "
            f"into files of at most {human(available / bytes_per_byte)} of content each (fewer records per "
            "file, e.g. by publication year) and load them one by one, or run on a machine with more memory",
            source=str(path), size=size, uncompressed=content, needed=needed, available=available)
    logger.debug("%s %s: about %s needed, %s available", what, path, human(needed), human(available))
    return needed
