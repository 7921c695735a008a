"""benchmarks/screening.py --asreview-from: ASReview's earlier runs reused only for the same model, seed and priors."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("screening_bench", ROOT / "benchmarks" / "screening.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def earlier_run(tmp_path: Path, ai: str = "elas_u4", seed_start: int = 3) -> Path:
    """The shape of a --json-out file (screening_5seeds_e572e94.json), two seeds of one set."""
    asr = {"wss95": [0.5, 0.25], "rrf10": [60.0, 30.0], "seconds": [1.0, 2.0], "priors": [[7, 1], [9, 2]]}
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps({"seeds": 2, "seed_start": seed_start, "asreview_ai": ai,
                                "datasets": {"setA": {"asreview": asr, "ours": asr}}}))
    return path


def test_earlier_runs_are_keyed_by_set_and_seed_with_their_priors(bench, tmp_path):
    runs = bench.reused_asreview(earlier_run(tmp_path), "elas_u4")
    assert set(runs) == {("setA", 3), ("setA", 4)}
    assert runs[("setA", 4)] == {"wss95": 0.25, "rrf10": 30.0, "seconds": 2.0, "priors": [9, 2]}


def test_an_earlier_file_of_another_model_is_refused_in_one_line(bench, tmp_path):
    with pytest.raises(SystemExit, match="'elas_u3', not 'elas_u4'"):
        bench.reused_asreview(earlier_run(tmp_path, ai="elas_u3"), "elas_u4")
