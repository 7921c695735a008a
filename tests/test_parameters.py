"""-p NAME VALUE checked against the notebook parameter's form before the first notebook (issue 13)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reviewlib.errors import ConfigError
from reviewlib.parameters import check_values
from reviewlib.pipeline import notebook_parameters, parse_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="module")
def defaults() -> dict:
    out: dict = {}
    for nb in ("01-search", "02-screen", "03-extract", "04-report"):
        out.update(notebook_parameters(NOTEBOOKS / f"{nb}.ipynb"))
    return out


@pytest.mark.parametrize("pairs, expected", [
    ([["seed", "7"]], {"seed": 7}),
    ([["reviewer", "ana"]], {"reviewer": "ana"}),
    ([["reviewer", "007"]], {"reviewer": "7"}),
    ([["demo_reviewer", "false"]], {"demo_reviewer": False}),
    ([["mindate", "2020/01/01"], ["maxdate", "2024"]], {"mindate": "2020/01/01", "maxdate": "2024"}),
    ([["mindate", "2020-01-01"]], {"mindate": "2020/01/01"}),
    ([["since", "last"]], {"since": "last"}),
])
def test_good_values_pass(defaults, pairs, expected):
    assert check_values(parse_parameters(pairs), defaults) == expected


@pytest.mark.parametrize("pairs, words", [
    ([["seed", "seven"]], ["parameter seed='seven' must be a whole number", "-p seed 2024"]),
    ([["seed", "7.5"]], ["must be a whole number"]),
    ([["seed", "true"]], ["must be a whole number"]),
    ([["demo_reviewer", "maybe"]], ["demo_reviewer='maybe' must be true or false"]),
    ([["mindate", "yesterday"]], ["parameter mindate='yesterday' is not a date", "YYYY/MM/DD"]),
    ([["maxdate", "2024/13/01"]], ["maxdate", "is not a date"]),
    ([["since", "soon"]], ["since='soon' is not a date", "(or last)"]),
])
def test_bad_values_are_one_line(defaults, pairs, words):
    with pytest.raises(ConfigError) as err:
        check_values(parse_parameters(pairs), defaults)
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_run_refuses_a_bad_value_before_the_first_notebook(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "reviewlib", "run", "--offline", "-p", "seed", "seven",
                           "--results", str(tmp_path / "results"), "--reviews", str(tmp_path / "reviews")],
                          capture_output=True, text=True, timeout=240,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "parameter seed='seven' must be a whole number" in lines[0]
    assert not list((tmp_path / "results").rglob("manifest.json"))     # no run folder was made
    assert not (tmp_path / "reviews").exists()
