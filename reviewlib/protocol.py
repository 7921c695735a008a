"""Review protocols: YAML files that declare a review's question, search, rules and fields.

A protocol has the sections ``review`` (name, title), ``question``, ``pico``,
``search`` (query, date range, batch size, optional offline snapshot),
``eligibility`` (screening rules, read by :mod:`reviewlib.screening.eligibility`) and
``extraction`` (fields to extract, read by :mod:`reviewlib.evidence.extraction`).

A protocol is user input and is checked before anything runs: at most
:data:`MAX_PROTOCOL_BYTES`; YAML aliases (``*name``, the default protocol
reuses its term lists with them) expand to at most :data:`MAX_EXPANDED_SIZE`
characters and nodes, so a 500-byte "billion laughs" is refused, as is an alias
that contains itself; every section of the type it must have; and no
unknown key (a typo such as ``mindat:`` is refused with the known keys and a
"did you mean").  A module that reads a new section adds it to :data:`SECTIONS`.
"""
from __future__ import annotations

import datetime as dt
import difflib
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
#: The largest protocol read, in bytes (the default protocol is about 30 kB).
MAX_PROTOCOL_BYTES = 1_000_000
#: The most characters + nodes a protocol may expand to once its aliases are copied out.
MAX_EXPANDED_SIZE = 5_000_000
#: Top-level sections and the type each must have (None: read and checked by its own module).
#: Written as pairs: "outcomes" here is a protocol section (and "pico" has an outcomes line), not a field.
SECTIONS: dict[str, type | tuple[type, ...] | None] = dict([
    ("review", dict), ("question", str), ("pico", dict), ("search", dict), ("eligibility", dict),
    ("extraction", dict), ("screening_data", dict),
    # read by the registry, gap-statement, outcome, report and demo modules
    ("registry", None), ("registries", None), ("gaps", None), ("outcomes", None), ("report", None),
    ("figures", None), ("tables", None), ("demo", None), ("synthesis", None),
])
#: Keys of the sections checked here, and the type of each value (pico's elements are free text).
SECTION_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "review": {"name": str, "title": str, "version": (int, float, str), "authors": list, "description": str},
    "search": {"query": str, "database": str, "mindate": (str, int, dt.date), "maxdate": (str, int, dt.date),
               "datetype": str, "batch_size": int, "snapshot": str, "synthetic": bool},
}
_TYPE_WORDS = {dict: "a mapping (key: value lines)", str: "text", list: "a list", int: "an integer",
               bool: "true or false", float: "a number",
               dt.date: "a date"}


def _type_words(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_TYPE_WORDS.get(k, k.__name__) for k in kinds)


def _did_you_mean(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _ExpansionError(Exception):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


def _expanded_size(node: yaml.Node, memo: dict[int, int], open_: set[int]) -> int:
    """Characters of scalars plus nodes, counting every alias as a full copy (as text it would be one)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in open_:
        raise _ExpansionError("an alias refers to a value that contains it", node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        size = 1 + len(node.value)
    else:
        open_.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else [x for kv in node.value for x in kv]
        size = 1
        for child in children:
            size += _expanded_size(child, memo, open_)
            if size > MAX_EXPANDED_SIZE:
                raise _ExpansionError(f"its aliases expand to more than {MAX_EXPANDED_SIZE:,} characters "
                                      "(nested aliases, a 'billion laughs')", node.start_mark.line + 1)
        open_.discard(key)
    memo[key] = size
    return size


def _load_yaml(data: bytes) -> Any:
    """``yaml.safe_load`` that first bounds what the aliases expand to."""
    loader = yaml.SafeLoader(data)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def check_sections(raw: dict, path: Path | str) -> None:
    """Refuse unknown top-level keys, sections of the wrong type, and unknown keys in review/search/pico.

    Raises
    ------
    ProtocolError
        One line naming the key, with the known keys and the closest one.
    """
    for key, value in raw.items():
        if key not in SECTIONS:
            raise ProtocolError(f"protocol {path}: unknown section {key!r}{_did_you_mean(str(key), SECTIONS)}: "
                                f"the sections are {', '.join(SECTIONS)}", source=str(path))
        kind = SECTIONS[key]
        if kind is not None and value is not None and not isinstance(value, kind):
            raise ProtocolError(f"protocol {path}: section {key!r} must be {_type_words(kind)}, not "
                                f"{type(value).__name__} {_short(value)}: see notebooks/{DEFAULT_PROTOCOL}.yaml",
                                source=str(path))
    for key, value in (raw.get("pico") or {}).items():
        if value is not None and not isinstance(value, str):
            raise ProtocolError(f"protocol {path}: pico.{key} must be text, not {type(value).__name__} "
                                f"{_short(value)}", source=str(path))
    for section, keys in SECTION_KEYS.items():
        for key, value in (raw.get(section) or {}).items():
            if key not in keys:
                raise ProtocolError(f"protocol {path}: unknown key {key!r} in {section}"
                                    f"{_did_you_mean(str(key), keys)}: the keys of {section} are "
                                    f"{', '.join(keys)}", source=str(path))
            if value is not None and (not isinstance(value, keys[key])
                                      or (isinstance(value, bool) and keys[key] is int)):
                raise ProtocolError(f"protocol {path}: {section}.{key} must be {_type_words(keys[key])}, not "
                                    f"{type(value).__name__} {_short(value)}", source=str(path))


def _short(value: Any, n: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


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
        if c.is_dir():
            raise ProtocolError(f"protocol {c} is a directory, not a YAML file: give the protocol file inside it",
                                source=value)
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
    size = path.stat().st_size
    if size > MAX_PROTOCOL_BYTES:
        raise ProtocolError(f"protocol {path} is {size:,} bytes, more than the {MAX_PROTOCOL_BYTES:,} a protocol "
                            "may have: keep data (snapshots, labels) in files it names", source=str(path))
    with open(path, "rb") as fh:
        data = fh.read(MAX_PROTOCOL_BYTES + 1)
    if len(data) > MAX_PROTOCOL_BYTES:
        raise ProtocolError(f"protocol {path} is more than {MAX_PROTOCOL_BYTES:,} bytes: keep data in files it "
                            "names", source=str(path))
    try:
        raw = _load_yaml(data)
    except _ExpansionError as exc:
        raise ProtocolError(f"protocol {path} line {exc.line} is refused: {exc}: write the values out instead",
                            source=str(path)) from exc
    except RecursionError as exc:
        raise ProtocolError(f"protocol {path} is nested too deeply to read: flatten it", source=str(path)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ProtocolError(f"protocol {path}{where} is not valid YAML ({getattr(exc, 'problem', None) or exc}): "
                            "fix the syntax", source=str(path)) from exc
    if not isinstance(raw, dict):
        raise ProtocolError(f"protocol {path} is not a YAML mapping: start from notebooks/{DEFAULT_PROTOCOL}.yaml",
                            source=str(path))
    check_sections(raw, path)
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
