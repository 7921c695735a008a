"""The house a newcomer walks: stages as packages, a declared public API, an engine without the domain.

Pins issue 8: the tree shows the review's stages (each package says what its stage does), the public API
in ``reviewlib.__all__`` is the one the README documents (as httpx tests its ``__all__``), no engine module
names a field or a word of the default CAR-T question (they live in its protocol), and nothing in report/
or the pipeline imports the demo generator.
"""
from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import reviewlib
from reviewlib.evidence.extraction import load_schema
from reviewlib.evidence.tables import GROUP_COLUMNS, STUDY_INFO
from reviewlib.protocol import load_protocol

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "reviewlib"
STAGES = ["retrieval", "sources", "screening", "evidence", "report", "demo"]
#: Engine modules: everything but the builders of the default review's data, which must name it: the
#: synthetic literature generator (demo/) and the converter of its real registry snapshot.
DATA_BUILDERS = {"sources/ctgov_snapshot.py"}
ENGINE = sorted(p for p in PACKAGE.rglob("*.py") if "demo" not in p.relative_to(PACKAGE).parts
                and p.relative_to(PACKAGE).as_posix() not in DATA_BUILDERS)
#: Words of the default question that no engine module may contain anywhere (targets, diseases, regimens).
DOMAIN_WORDS = ("cd19", "bcma", "lupus", "fludarabine", "cyclophosphamide", "myasthenia", "car-t", "caar",
                "nmosd", "sclerosis", "myositis", "vasculitis", "lymphodepletion", "costimulation", "crs grade")


def _car_t_fields() -> set[str]:
    schema = load_schema(load_protocol("car-t-autoimmune"))
    # the study table's own bookkeeping columns are the engine's names, which a protocol field may reuse
    return set(schema.names) - set(GROUP_COLUMNS) - set(STUDY_INFO)


def test_each_stage_is_a_package_that_says_what_it_does():
    for stage in STAGES:
        module = importlib.import_module(f"reviewlib.{stage}")
        doc = (module.__doc__ or "").strip()
        assert doc, stage
        assert len(doc.split("\n\n")[0].splitlines()) <= 2, f"{stage}: the first paragraph is two lines at most"
    # at the top: the store, the protocol, the records table, the pipeline and its CLI, and plumbing
    flat = {p.stem for p in PACKAGE.glob("*.py")}
    assert flat <= {"__init__", "__main__", "atomic", "cli", "errors", "pipeline", "parameters", "protocol",
                    "records", "records_view", "store", "safe_cells", "spreadsheet", "notebook_saving",
                    # hostile-input plumbing (issue 13): OS-error lines, text-file sniffing, user regexes,
                    # run state for the pipeline, what a run read (issue 15: nothing changed, nothing run),
                    # and notebooks that run beside the others (issue 15: the registry page beside 03-04)
                    "oserrors", "textfiles", "user_regex", "runstate", "run_inputs", "side_notebooks",
                    # the garbage collector paused over the big in-memory steps (issue 15), and the numbers
                    # read from the environment that size them (process counts)
                    "gcpause", "settings"}, sorted(flat)


def test_public_api_is_declared_importable_and_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Public API", 1)[1].split("\n## ", 1)[0]
    documented = {n for n in re.findall(r"`reviewlib\.(\w+)`", section) if not n.startswith("__")}
    assert documented == set(reviewlib.__all__) - {"__version__"}
    for name in reviewlib.__all__:
        assert getattr(reviewlib, name) is not None, name
    with pytest.raises(AttributeError):
        reviewlib.no_such_name  # noqa: B018


def test_import_reviewlib_stays_cheap():
    code = "import sys, reviewlib; print(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'lxml')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("path", ENGINE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_engine_module_names_a_field_or_a_word_of_the_default_question(path):
    source = path.read_text(encoding="utf-8")
    lowered = source.lower().replace("car-t-autoimmune", "")  # the default review's name, not its vocabulary
    words = [w for w in DOMAIN_WORDS if w in lowered]
    assert not words, f"{path.name} names {words}: that vocabulary belongs in the protocol"
    named = _field_uses(source, _car_t_fields())
    assert not named, f"{path.name} names CAR-T schema field(s) {named}: ask the protocol (extraction: roles, report:)"


def _field_uses(source: str, fields: set[str]) -> list[str]:
    """Field names used as column keys: ``frame["f"]``, ``.get("f")``, ``"f" in frame``, ``x == "f"``,
    a default argument ``field="f"`` or a dict key ``{"f": ...}``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        keys: list = []
        if isinstance(node, ast.Subscript):
            keys = [node.slice]
        elif isinstance(node, ast.Compare):
            keys = [node.left, *node.comparators]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "get", "pop", "setdefault", "isin", "drop", "rename"):
            keys = list(node.args[:1])
        elif isinstance(node, ast.arguments):
            keys = [*node.defaults, *[d for d in node.kw_defaults if d is not None]]
        elif isinstance(node, ast.Dict):
            keys = [k for k in node.keys if k is not None]
        found |= {k.value for k in keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
                  and k.value in fields}
    return sorted(found)


@pytest.mark.parametrize("snippet", ['x = frame["lymphodepletion"]', 'y = row.get("disease")',
                                     'def f(t, rows="disease"): pass', 'z = "target" in frame',
                                     'w = {"n_patients": 1}'])
def test_the_guard_sees_a_field_name_when_one_is_written(snippet):
    """The guard above can fail: a module that names a field is caught."""
    assert _field_uses(snippet, _car_t_fields())


def test_report_and_pipeline_do_not_import_the_demo_generator():
    code = ("import sys; import reviewlib.pipeline, reviewlib.report, reviewlib.report.figures, "
            "reviewlib.report.prisma, reviewlib.report.living, reviewlib.report.pages; "
            "print([m for m in sys.modules if m.startswith('reviewlib.demo')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    for path in [*(PACKAGE / "report").glob("*.py"), PACKAGE / "pipeline.py"]:
        assert "demo.snapshot" not in path.read_text(encoding="utf-8").replace("python -m reviewlib.demo.snapshot", ""), path
