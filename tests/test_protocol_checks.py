"""Protocols are checked at load (issue 13): bounded aliases and size, section types, unknown keys."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from reviewlib.errors import ProtocolError
from reviewlib.protocol import MAX_PROTOCOL_BYTES, find_protocol, load_protocol

ROOT = Path(__file__).resolve().parents[1]
BILLION_LAUGHS = """\
review: {name: laughs}
search: {query: lupus}
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
question: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(path) -> str:
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_billion_laughs_is_refused_at_once(tmp_path):
    path = _write(tmp_path, BILLION_LAUGHS)
    assert path.stat().st_size < 600
    started = time.monotonic()
    msg = _error(path)
    assert time.monotonic() - started < 10          # refused while composing, never expanded
    assert "aliases expand to more than 5,000,000 characters" in msg and "line" in msg


def test_self_referring_alias_is_refused(tmp_path):
    msg = _error(_write(tmp_path, "review: {name: x}\nsearch: {query: q}\nquestion: &q [1, *q]\n"))
    assert "alias refers to a value that contains it" in msg


def test_the_default_protocols_aliases_are_still_read():
    proto = load_protocol("car-t-autoimmune")
    groups = {g["name"]: g for g in proto.section("eligibility")["excluding"]}
    same = [n for n, g in groups.items() if g.get("text") == groups["oncology-title"]["text"]]
    assert len(same) >= 2                                       # *malignancy reused the list


def test_protocol_over_1_mb_is_refused(tmp_path):
    path = _write(tmp_path, "review: {name: big}\nsearch: {query: q}\nquestion: >-\n" +
                  ("  " + "x" * 98 + "\n") * (MAX_PROTOCOL_BYTES // 100 + 10))
    msg = _error(path)
    assert "more than the 1,000,000 a protocol may have" in msg and str(path) in msg


@pytest.mark.parametrize("text, words", [
    ("review: car-t\nsearch: {query: q}\n", ["section 'review' must be a mapping", "not str 'car-t'"]),
    ("review: {name: x}\nsearch: [lupus]\n", ["section 'search' must be a mapping", "not list"]),
    ("review: {name: x}\nsearch: {query: q}\nquestion: {what: 1}\n", ["section 'question' must be text"]),
    ("review: {name: x}\nsearch: {query: q}\neligibility: [a]\n", ["section 'eligibility' must be a mapping"]),
    ("review: {name: x}\nsearch: {query: q, batch_size: many}\n", ["search.batch_size must be an integer"]),
    ("review: {name: x}\nsearch: {query: q, mindat: 2020}\n",
     ["unknown key 'mindat' in search (did you mean 'mindate'?)", "the keys of search are query, database, mindate"]),
    ("review: {name: x}\nsearch: {query: q}\nextration: {}\n",
     ["unknown section 'extration' (did you mean 'extraction'?)", "the sections are review, question"]),
    ("review: {name: x, titel: T}\nsearch: {query: q}\n", ["unknown key 'titel' in review (did you mean 'title'?)"]),
])
def test_wrong_types_and_unknown_keys_are_one_line(tmp_path, text, words):
    msg = _error(_write(tmp_path, text))
    for w in words:
        assert w in msg


def test_a_directory_is_named_as_one(tmp_path):
    folder = tmp_path / "proto.yaml"
    folder.mkdir()
    assert "is a directory, not a YAML file" in _error(folder)


def test_cli_refuses_a_typo_before_running_anything(tmp_path):
    data = yaml.safe_load(find_protocol("car-t-autoimmune").read_text())
    data["search"]["mindat"] = data["search"].pop("mindate")
    path = _write(tmp_path, yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "reviewlib", "run", str(path), "--offline",
                           "--results", str(tmp_path / "results"), "--reviews", str(tmp_path / "reviews")],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "did you mean 'mindate'?" in lines[0]
    assert not (tmp_path / "results").exists() and not (tmp_path / "reviews").exists()
