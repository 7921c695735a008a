"""reviewlib: a Jupyter-based systematic review workbench.

The package is laid out by the stages of a review (see the README's layout table):
:mod:`reviewlib.retrieval` (ask PubMed), :mod:`reviewlib.sources` (read every format into one records
table), :mod:`reviewlib.store` and :mod:`reviewlib.protocol` (a review's state and its plan),
:mod:`reviewlib.screening`, :mod:`reviewlib.evidence`, :mod:`reviewlib.report`, :mod:`reviewlib.pipeline`.

The public API named in ``__all__`` is importable from here; names are imported on first use, so
``import reviewlib`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first use)
_API = {
    "read_pubmed_xml": "reviewlib.sources.pubmed_xml",
    "read_medline": "reviewlib.sources.readers",
    "read_ris": "reviewlib.sources.readers",
    "read_openalex": "reviewlib.sources.openalex",
    "fetch_pubmed": "reviewlib.retrieval.fetch",
    "fetch_registry": "reviewlib.retrieval.registry",
    "read_ctgov": "reviewlib.sources.ctgov",
    "ReviewStore": "reviewlib.store",
    "load_protocol": "reviewlib.protocol",
    "Protocol": "reviewlib.protocol",
    "ReviewlibError": "reviewlib.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'reviewlib' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
