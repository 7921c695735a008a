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
