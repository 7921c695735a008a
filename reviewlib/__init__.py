"""reviewlib: a Jupyter-based systematic review workbench.

The readers of the records table are exported here: :func:`read_pubmed_xml`,
:func:`read_medline`, :func:`read_ris` and (imported on first use)
:func:`read_openalex`.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .pubmed_xml import read_pubmed_xml
from .readers import read_medline, read_ris

__all__ = ["__version__", "read_pubmed_xml", "read_medline", "read_ris", "read_openalex"]


def __getattr__(name: str):
    # read_openalex lives in reviewlib.openalex; import it only when asked for.
    if name == "read_openalex":
        from .openalex import read_openalex
        return read_openalex
    raise AttributeError(f"module 'reviewlib' has no attribute {name!r}")
