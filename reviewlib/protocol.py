"""Review protocols: YAML files that declare a review's question, search, rules and fields.

A protocol has the sections ``review`` (name, title), ``question``, ``pico``,
``search`` (query, date range, batch size, optional offline snapshot),
``eligibility`` (screening rules, read by :mod:`reviewlib.screening.eligibility`) and
``extraction`` (fields to extract, read by :mod:`reviewlib.evidence.extraction`).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ProtocolError

#: Folder of the protocols shipped with reviewlib (the notebooks/ folder of a checkout).
PACKAGE_DATA = Path(__file__).resolve().parent / "data"
DEFAULT_PROTOCOL = "car-t-autoimmune"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass
class Protocol:
    """A parsed review protocol.

    Attributes
    ----------
    path : pathlib.Path
        The YAML file it was read from.
    name : str
        The review's short name (used for folders: ``results/<name>/``).
    title : str
        The review's title.
    search : dict
        The ``search`` section (query, mindate, maxdate, datetype, batch_size, snapshot, synthetic).
    raw : dict
        The whole YAML document, for sections other modules read.
    sha256 : str
        Hash of the file's bytes, recorded in run manifests.
    """

    path: Path
    name: str
    title: str
    search: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)
    sha256: str = ""

    @property
    def query(self) -> str:
        """The PubMed query, whitespace collapsed."""
        return " ".join(str(self.search.get("query", "")).split())

    @property
    def synthetic(self) -> bool:
        """True when the offline snapshot is synthetic demo data."""
        return bool(self.search.get("synthetic", False))

    def snapshot_path(self) -> Path | None:
        """The offline snapshot file, resolved next to the protocol or in the package data."""
        snap = self.search.get("snapshot")
        if not snap:
            return None
        return self.data_file(snap, "search: snapshot")

    def data_file(self, name: str, key: str) -> Path:
        """A data file the protocol names (at ``key``), next to the protocol or in the package data.

        Raises
        ------
        ProtocolError
            The file is in neither place.
        """
        for base in (self.path.parent, PACKAGE_DATA):
            candidate = base / str(name)
            if candidate.is_file():
                return candidate
        raise ProtocolError(f"protocol {self.path}: {key} file {name!r} not found next to the protocol "
                            f"or in {PACKAGE_DATA}: fix the name, or regenerate the demo data with "
                            "'python -m reviewlib.demo.snapshot'", source=str(self.path))

    @property
    def demo(self) -> dict[str, Any]:
        """The ``demo`` section: ``notice`` (what is synthetic) and ``decisions`` (the scripted reviewer's file)."""
        section = self.raw.get("demo") or {}
        if not isinstance(section, dict):
            raise ProtocolError(f"protocol {self.path}: section 'demo' must be a mapping (notice, decisions), "
                                f"not {type(section).__name__}", source=str(self.path))
        return section

    def demo_decisions_path(self) -> Path | None:
        """The scripted demo reviewer's decisions CSV named at ``demo: decisions``, or None."""
        name = self.demo.get("decisions")
        return self.data_file(name, "demo: decisions") if name else None

    def section(self, name: str, default: Any = None) -> Any:
        """A top-level section of the protocol (``eligibility``, ``extraction``...)."""
        return self.raw.get(name, default)


def find_protocol(name_or_path: str | Path | None = None) -> Path:
    """Resolve a protocol given as a path, or as a name of a YAML in ``notebooks/``."""
    value = str(name_or_path or DEFAULT_PROTOCOL)
    candidates = [Path(value)]
    if not value.endswith((".yaml", ".yml")):
        for folder in (Path.cwd() / "notebooks", Path(__file__).resolve().parent.parent / "notebooks"):
            candidates.append(folder / f"{value}.yaml")
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise ProtocolError(f"protocol not found: {value}: give a path to a protocol YAML "
                        f"or the name of one in notebooks/ (e.g. {DEFAULT_PROTOCOL})", source=value)


def load_protocol(name_or_path: str | Path | None = None) -> Protocol:
    """Read and check a protocol YAML.

    Parameters
    ----------
    name_or_path : str or path-like, optional
        A path, or a protocol name from ``notebooks/``; the default review if omitted.

    Raises
    ------
    ProtocolError
        If the file is missing, is not YAML, or lacks ``review.name`` or ``search.query``.
    """
    path = find_protocol(name_or_path)
    data = path.read_bytes()
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ProtocolError(f"protocol {path}{where} is not valid YAML ({getattr(exc, 'problem', exc)}): "
                            "fix the syntax", source=str(path)) from exc
    if not isinstance(raw, dict):
        raise ProtocolError(f"protocol {path} is not a YAML mapping: start from notebooks/{DEFAULT_PROTOCOL}.yaml",
                            source=str(path))
    review = raw.get("review") or {}
    name = str(review.get("name") or "")
    if not _NAME.match(name):
        raise ProtocolError(f"protocol {path}: review.name {name!r} is missing or not a short lower-case name "
                            "(letters, digits, '-', '_', '.'): set it", source=str(path))
    search = raw.get("search") or {}
    if not isinstance(search, dict) or not str(search.get("query", "")).strip():
        raise ProtocolError(f"protocol {path}: search.query is missing: write the PubMed query", source=str(path))
    return Protocol(path=path, name=name, title=str(review.get("title") or name), search=dict(search),
                    raw=raw, sha256=hashlib.sha256(data).hexdigest())


def section_of(protocol: "Protocol | str | Path | dict", name: str, label: str | None = None) -> tuple[Any, str]:
    """One section of a protocol, and a name for it in error messages.

    Parameters
    ----------
    protocol : Protocol, str, path-like or dict
        A loaded protocol, a protocol name or path (loaded here), or the section itself as a mapping.
    name : str
        The section (``eligibility``, ``extraction``...).
    label : str, optional
        How to name a mapping given directly; default ``"<NAME mapping>"``.

    Returns
    -------
    tuple
        ``(section, source)``: the section (None if the protocol has none) and the protocol's path.
    """
    if isinstance(protocol, dict):
        return protocol, label or f"<{name} mapping>"
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol)
    return protocol.section(name), str(protocol.path)
