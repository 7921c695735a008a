"""Protocol patterns are user input (issue 13): no catastrophic backtracking, unsafe ones refused by field."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from reviewlib import user_regex
from reviewlib.errors import ProtocolError
from reviewlib.evidence import extraction as ex
from reviewlib.protocol import find_protocol, load_protocol
from reviewlib.records import conform, write_csv
from reviewlib.screening import eligibility as el

ROOT = Path(__file__).resolve().parents[1]
EVIL = r"^(a+)+$"                   # the pattern: exponential on re against "aaaa...!"
EVIL_TEXT = "a" * 40 + "!"          # 2**40 steps for re; microseconds for RE2


def _protocol(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(find_protocol("car-t-autoimmune").read_text())
    change(data)
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("pattern, risky", [
    (r"(?<!x)(a+)+$", True), (r"(?<!x)(a|a)+$", True), (r"(?<!x)(\w+\s?)+$", True), (r"(?<!x)(a*)*b", True),
    (r"(?<!x)(a|ab)+c", True), (r"(?=(a+)+$)", True), (r"(?<!x)(?:a+a)+", True),
    (r"(?<!x)(?:[\w-]+\s+){0,4}y", False), (r"(?<!x)(a+b)+", False), (r"(?<!x)(ab|cd)+", False),
    (r"fludarabine(?:(?!\bwithout\b|\bno\b)[^.]){0,90}?cyclophosphamide", False),
])
def test_backtracking_risk_finds_the_exponential_shapes(pattern, risky):
    assert bool(user_regex.backtracking_risk(pattern)) is risky


def test_engine_choice_and_refusal():
    assert user_regex.engine_of(user_regex.compile_pattern(EVIL)) == "re2"
    assert user_regex.engine_of(user_regex.compile_pattern(r"tumou?rs?\b(?! necrosis)")) == "re"
    assert user_regex.compile_pattern(EVIL).search(EVIL_TEXT) is None
    with pytest.raises(user_regex.UnsafePattern, match="exponential time"):
        user_regex.compile_pattern(r"(?<!x)(a+)+$")
    with pytest.raises(Exception) as err:
        user_regex.compile_pattern("CD19(")
    assert type(err.value).__name__ == "error"      # re.error, as before


def test_default_protocols_compile_and_half_run_on_re2():
    schema = ex.load_schema("car-t-autoimmune")
    engines = [user_regex.engine_of(s.regex) for f in schema.fields.values() for syns in f.values.values()
               for s in syns]
    assert engines.count("re2") > 0.9 * len(engines)
    el.load_rules("car-t-autoimmune")


def test_any_mention_keeps_re2_patterns_off_re(tmp_path):
    def change(d):
        d["extraction"]["fields"]["disease"]["values"]["SLE"].append(EVIL)
    schema = ex.load_schema(load_protocol(_protocol(tmp_path, change)))
    matcher = schema.field("disease").any_mention()
    assert matcher.search("a" * 5000 + "!") is None     # would hang if EVIL ran on re


def test_extract_with_a_catastrophic_synonym_finishes_in_a_real_process(tmp_path):
    def change(d):
        d["extraction"]["fields"]["disease"]["values"]["SLE"].append(EVIL)
        d["eligibility"]["excluding"][0]["text"].append(EVIL)
    proto = _protocol(tmp_path, change)
    records = write_csv(conform(pd.DataFrame([{"pmid": "1", "title": EVIL_TEXT, "abstract": EVIL_TEXT},
                                              {"pmid": "2", "title": "CD19 CAR T in SLE",
                                               "abstract": "Eight patients with SLE received CD19 CAR T cells."}])),
                        tmp_path / "records.csv")
    el.apply_rules(conform(pd.read_csv(records, dtype=str)).assign(record_id=["a", "b"]),
                   el.load_rules(load_protocol(proto)))
    proc = subprocess.run([sys.executable, "-m", "reviewlib", "extract", "--protocol", str(proto),
                           "--records", str(records), "--out", str(tmp_path / "e.csv")],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    out = pd.read_csv(tmp_path / "e.csv", dtype=str, keep_default_na=False).set_index("pmid")
    assert out.loc["2", "disease"] == "SLE" and out.loc["1", "disease"] == "not reported"


def test_unsafe_extraction_pattern_is_one_line_naming_the_field(tmp_path):
    def change(d):
        d["extraction"]["fields"]["target"]["values"]["CD19"].append(r"(?<![\w-])(?:CD\w*)+$")
    proto = _protocol(tmp_path, change)
    records = write_csv(conform(pd.DataFrame([{"pmid": "1", "title": "x", "abstract": "y"}])), tmp_path / "r.csv")
    proc = subprocess.run([sys.executable, "-m", "reviewlib", "extract", "--protocol", str(proto),
                           "--records", str(records), "--out", str(tmp_path / "e.csv")],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "field 'target'" in lines[0] and "(?:CD\\\\w*)+$" in lines[0] and "exponential time" in lines[0]
    assert not (tmp_path / "e.csv").exists()


def test_unsafe_eligibility_pattern_names_the_criterion(tmp_path):
    def change(d):
        d["eligibility"]["excluding"][0]["text"].append(r"(?<!x)(\w+\s?)+lymphoma")
    with pytest.raises(ProtocolError) as err:
        el.load_rules(load_protocol(_protocol(tmp_path, change)))
    msg = str(err.value)
    assert "eligibility.excluding." in msg and ".text" in msg and "exponential time" in msg and "\n" not in msg


def test_unsafe_breakdown_noun_is_refused_at_load(tmp_path):
    def change(d):
        d["extraction"]["fields"]["n_by_disease"]["nouns"] = ["patients", r"(?:pt\w*)+"]
    with pytest.raises(ProtocolError, match=r"field 'n_by_disease'.*nouns.*exponential time"):
        ex.load_schema(load_protocol(_protocol(tmp_path, change)))


def test_compiled_patterns_are_kept_and_refusals_repeat():
    """Issue 15: a schema loaded again reuses its compiled patterns; an unsafe one is refused every time."""
    from reviewlib import user_regex
    first = user_regex.compile_pattern(r"(?<=CD)19\b")
    assert user_regex.compile_pattern(r"(?<=CD)19\b") is first
    assert user_regex.compile_pattern(r"(?<=CD)19\b", 0) is not first       # other flags: its own pattern
    for _ in range(2):
        with pytest.raises(user_regex.UnsafePattern):
            user_regex.compile_pattern(r"(?=x)(a+)+$")
