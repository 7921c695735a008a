"""Pages stay light (issue 15): a long table shows its first rows in the page, the full table goes to CSV."""
from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from reviewlib import report
from reviewlib.report import large_tables


@pytest.fixture(autouse=True)
def _shell():
    """A real IPython shell, so displays are captured as the notebook receives them."""
    InteractiveShell.instance()


def _records(n: int) -> pd.DataFrame:
    return pd.DataFrame({"PMID": [str(10_000_000 + i) for i in range(n)],
                         "title": [f"=HYPERLINK(\"x\") CAR-T in lupus, report {i}" if i == 3 else f"Report {i} " * 8
                                   for i in range(n)],
                         "publication types": [["Journal Article", "Case Reports"]] * n})


def _shown_page(folder, records, caption) -> str:
    """The HTML ``report.show_table`` displays, with the run's tables folder set to ``folder``."""
    report.init_tables(folder)
    try:
        with capture_output() as shown:
            report.show_table(records, caption=caption)
    finally:
        large_tables.set_folder(None)
    return "".join(o.data.get("text/html", "") for o in shown.outputs)


def test_long_table_is_cut_in_the_page_and_written_whole_to_csv(tmp_path):
    folder = tmp_path / "tables"
    page = _shown_page(folder, _records(20_000), "20000 records in this run")
    assert len(page.encode()) < 1_000_000                      # 20,000 rows would be several MB
    assert "Report 499 " in page and "Report 500 " not in page
    assert "The first 500 of 20,000 rows are shown" in page
    assert 'href="tables/20000-records-in-this-run.csv"' in page
    full = pd.read_csv(folder / "20000-records-in-this-run.csv", dtype=str)
    assert len(full) == 20_000 and full["PMID"].iloc[-1] == "10019999"
    assert full["title"].iloc[3].startswith("'=HYPERLINK")     # no formula runs when opened in a spreadsheet
    assert full["publication types"].iloc[0] == "Journal Article; Case Reports"


def test_short_table_is_shown_whole_and_nothing_written(tmp_path):
    page = _shown_page(tmp_path / "tables", _records(40), "forty")
    assert "Report 39 " in page and "rows are shown" not in page
    assert not (tmp_path / "tables").exists()


def test_without_a_folder_the_page_says_where_the_rest_is():
    frame, note = large_tables.limit(_records(1_000), "records")
    assert len(frame) == 500 and "first 500 of 1,000" in note and "href" not in note


def _old_write_full_table(frame, name, target):
    """write_full_table before scale5a (a neutralise call per cell, iterating the Series): the reference."""
    from pathlib import Path
    safe = frame.copy()
    for col in safe.columns:
        if safe[col].dtype == object or pd.api.types.is_string_dtype(safe[col]):
            safe[col] = [large_tables.neutralise("; ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
                         for v in safe[col]]
    path = Path(target) / "old.csv"
    safe.to_csv(path, index=False, encoding="utf-8")
    return path


def test_the_full_tables_csv_is_the_one_written_before(tmp_path):
    """The records overview of the demo review (real parse of the snapshot) and cells of every kind:
    formula starts, lists and tuples, missing values, pandas' string and Int64 columns, a str subclass."""
    import numpy as np
    from reviewlib.protocol import PACKAGE_DATA
    from reviewlib.sources.pubmed_xml import read_pubmed_xml
    records = read_pubmed_xml(PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz")
    overview = report.records_overview(records)

    class Text(str):
        pass
    odd = pd.DataFrame({
        "text": ["=1+1", "+x", "-y", "@z", "\tt", "\rr", "", "plain", None, Text("=sub"), np.str_("-np")],
        "lists": [["=a", "b"], ("-c",), [], [1, 2], None, "x", ["@"], [None], (), ["\t"], ["ok"]],
        "strings": pd.array(["=s", None, "s", "", "+", "-", "a", "b", "c", "d", "@e"], dtype="string"),
        "year": pd.array([2020, None, 1999, 1, 2, 3, 4, 5, 6, 7, 8], dtype="Int64"),
        "mixed": [1, 2.5, "=m", None, float("nan"), True, "x", b"=b", "y", "z", "-"],
    })
    text_only = pd.DataFrame({
        "a": ["x", None, float("nan"), "", "=q", 'say "hi"', "a,b", "line\nbreak", " lead", "é"] * 3,
        "b": pd.array(["s", None, "", "t", "u", "v", "w", "x", "y", "z"] * 3, dtype="string"),
        "n": pd.array([1, None, -3, 0, 5, 6, 7, 8, 9, 10] * 3, dtype="Int64"),
    })
    one_empty_column = pd.DataFrame({"only": ["", None, "x"]})
    for frame in (overview, odd, records[["pmid", "title", "authors", "abstract_sections", "year"]],
                  text_only, one_empty_column, text_only.iloc[:0]):
        new = large_tables.write_full_table(frame, "a table", tmp_path / "new")
        old = _old_write_full_table(frame, "a table", tmp_path)
        assert new.read_bytes() == old.read_bytes()
        if frame is odd:
            assert b"'=1+1" in new.read_bytes() and b"'=sub" in new.read_bytes()
    # the csv module wrote the text tables, pandas the table with numbers and bytes in it
    assert large_tables._text_cells(text_only) is not None and large_tables._text_cells(odd) is None
