"""Text files a user gives (CSV, RIS, MEDLINE): checked and decoded before a parser sees them.

:func:`check_text_file` says in one line when a path is missing, is a
directory, or holds something other than text (gzip, ZIP/XLSX, PDF, SQLite, any
binary), instead of letting pandas or rispy fail deep inside.
:func:`text_encoding` reads the byte-order mark, so UTF-16 and UTF-32 exports
(Windows tools write RIS and CSV so) are decoded rather than misread.
"""
from __future__ import annotations

import codecs
import os
from pathlib import Path

from .errors import InputError

__all__ = ["check_text_file", "text_encoding", "read_text"]

_BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]
_MAGIC = [(b"\x1f\x8b", "a gzip-compressed file", "decompress it first (gunzip)"),
          (b"PK\x03\x04", "a ZIP archive or an Excel workbook", "unzip it, or save the sheet as CSV"),
          (b"\xd0\xcf\x11\xe0", "an old Office (XLS) file", "save it as CSV (UTF-8)"),
          (b"%PDF", "a PDF", "export the records as text instead"),
          (b"SQLite format 3\x00", "an SQLite database", "give the text export, not the store"),
          (b"BZh", "a bzip2-compressed file", "decompress it first (bunzip2)"),
          (b"\xfd7zXZ\x00", "an xz-compressed file", "decompress it first (unxz)")]


def text_encoding(head: bytes, default: str = "utf-8-sig") -> str:
    """The encoding a byte-order mark announces (``utf-16``, ``utf-32``, ``utf-8-sig``), else ``default``."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    return default


def _bom_less_utf16(head: bytes) -> bool:
    """UTF-16 without a BOM: mostly ASCII text with every other byte zero."""
    if len(head) < 8:
        return False
    even, odd = head[0::2], head[1::2]
    return odd.count(0) > 0.8 * len(odd) or even.count(0) > 0.8 * len(even)


_COMPRESSED_SUFFIXES = {".gz": b"\x1f\x8b", ".bz2": b"BZh", ".xz": b"\xfd7zXZ\x00", ".zip": b"PK\x03\x04"}


def check_text_file(path: str | os.PathLike, kind: str, what: str,
                    compressed_ok: bool = False) -> tuple[Path, str]:
    """Check that ``path`` is a readable text file; returns it and its encoding.

    Parameters
    ----------
    path : path-like
    kind : str
        What the file should be, for the message ("records CSV", "RIS").
    what : str
        What to give instead, e.g. "a CSV written by 'reviewlib fetch'".
    compressed_ok : bool
        Accept a compressed file whose name says so (``.csv.gz``: pandas reads it).

    Raises
    ------
    InputError
        Missing, a directory, or not text (with what it looks like and what to do).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{kind} {path} is a directory, not a file: give {what}", source=str(path))
    if not path.is_file():
        raise InputError(f"{kind} file not found: {path}: give {what}", source=str(path))
    with open(path, "rb") as fh:
        head = fh.read(4096)
    encoding = text_encoding(head)
    magic = _COMPRESSED_SUFFIXES.get(path.suffix.lower())
    if compressed_ok and magic and head.startswith(magic):
        return path, "utf-8"
    if encoding != "utf-8-sig":
        return path, encoding
    for magic, looks, todo in _MAGIC:
        if head.startswith(magic):
            raise InputError(f"{kind} {path} is {looks}, not a text file: {todo}, then give {what}",
                             source=str(path))
    if _bom_less_utf16(head):
        return path, "utf-16-le" if head[1::2].count(0) > head[0::2].count(0) else "utf-16-be"
    if b"\x00" in head:
        raise InputError(f"{kind} {path} is a binary file, not text: give {what}", source=str(path))
    return path, encoding


def read_text(path: Path, kind: str, encoding: str, fallback: str | None = "cp1252") -> str:
    """Decode ``path`` with ``encoding``; UTF-8 that fails is retried as ``fallback`` (Windows-1252 exports)."""
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding == "utf-8-sig" and fallback:
            try:
                return data.decode(fallback)
            except UnicodeDecodeError:
                pass
        raise InputError(f"cannot decode {kind} {path} as {encoding} ({exc.reason} at byte {exc.start}): "
                         "save it again as UTF-8", source=str(path)) from exc
