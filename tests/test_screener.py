"""The ipywidgets screener, driven in Python: clicks write through at once; a static summary without kernel."""
from __future__ import annotations

import re

import nbformat
import pandas as pd
import pytest

from reviewlib import agreement, decisions
from reviewlib.protocol import load_protocol
from reviewlib.records import conform
from reviewlib.screener import Screener, highlight, static_summary
from reviewlib.screening import load_rules
from reviewlib.store import ReviewStore

UNTRUSTED = 'CD19 CAR T cells in lupus <script>alert("x")</script> & <b>bold</b> claims'


@pytest.fixture
def store(tmp_path):
    s = ReviewStore(tmp_path / "review.sqlite")
    s.add_records(conform(pd.DataFrame([
        {"pmid": "1", "title": UNTRUSTED, "abstract": "Five patients with lupus received CAR T cells.", "year": 2023},
        {"pmid": "2", "title": "Belimumab in lupus", "abstract": "Patients received belimumab.", "year": 2021},
        {"pmid": "3", "title": "CAR T cells for myeloma", "abstract": "Myeloma patients.", "year": 2020},
    ])))
    return s


@pytest.fixture(scope="module")
def rules():
    return load_rules(load_protocol("car-t-autoimmune"))


def test_highlight_escapes_first_then_marks(rules):
    out = highlight(UNTRUSTED, rules.highlight_patterns())
    assert "<script>" not in out and "&lt;script&gt;" in out and "&amp;" in out and "<b>" not in out
    assert '<mark class="rl-include">lupus</mark>' in out
    assert '<mark class="rl-include">CAR T cells</mark>' in out
    # removing the marks gives back exactly the escaped text
    assert re.sub(r"</?mark[^>]*>", "", out) == UNTRUSTED.replace("&", "&amp;").replace("<", "&lt;").replace(
        ">", "&gt;").replace('"', "&quot;")


def test_clicks_write_through_and_undo(store, rules):
    s = Screener(store, "ana", rules=rules, prioritise=False)
    assert s.current == "pmid:1"
    assert "&lt;script&gt;" in s.record_view.value and "<script>" not in s.record_view.value
    assert "screened 0 / 3" in s.progress.value
    assert "Animal or in vitro studies only" in s.criteria_view.value and "<code>preclinical</code>" in s.criteria_view.value
    s.buttons["include"].click()
    rows = store.decisions()
    assert rows[["record_id", "reviewer", "decision", "kind"]].values.tolist() == [["pmid:1", "ana", "include", "human"]]
    assert s.current == "pmid:2" and "screened 1 / 3" in s.progress.value and "included 1" in s.progress.value
    s.reason.value = "wrong-intervention"
    s.note.value = "belimumab, not cells"
    s.buttons["exclude"].click()
    last = store.decisions().iloc[-1]
    assert (last["record_id"], last["decision"], last["reason"], last["note"]) == (
        "pmid:2", "exclude", "wrong-intervention", "belimumab, not cells")
    assert s.reason.value is None and s.note.value == ""          # reset for the next record
    s.undo_button.click()
    assert s.current == "pmid:2"                                   # back to the undone record
    assert store.decisions()["kind"].tolist() == ["human", "human", "undo"]
    assert decisions.current_decisions(store, reviewer="ana")["record_id"].tolist() == ["pmid:1"]
    s.buttons["maybe"].click()
    s.buttons["exclude"].click()
    assert s.current is None and "All records screened" in s.record_view.value
    assert all(b.disabled for b in s.buttons.values())
    assert "screened 3 / 3" in s.progress.value


def test_a_second_screener_on_the_same_store_resumes(store, rules):
    Screener(store, "ana", rules=rules, prioritise=False).buttons["include"].click()
    again = Screener(store, "ana", rules=rules, prioritise=False)
    assert again.current == "pmid:2"
    other = Screener(store, "bob", rules=rules, prioritise=False, blind=True)
    assert other.current == "pmid:1" and "blind" in other.progress.value
    assert other.others_view.value == ""                          # bob cannot see ana's call
    agreement.reveal(store)
    other.refresh()
    assert "ana: include" in other.others_view.value


def test_prioritised_order_and_estimate(store, rules):
    from reviewlib import prioritise
    s = Screener(store, "ana", rules=rules, prioritise=True, seed=1)
    first = s.current
    s.buttons["include"].click()
    second = s.current
    s.buttons["exclude"].click()
    labels = {first: 1, second: 0}
    expected = prioritise.Prioritiser(store.records(), seed=1, id_column="record_id").rank(labels)
    assert [s.current] == expected and len({first, second, s.current}) == 3
    assert "estimated relevant left ~" in s.progress.value and "(model)" in s.progress.value


def test_static_summary_counts_by_decision_and_reason(store, rules):
    decisions.record_decision(store, "pmid:1", "ana", "include")
    decisions.record_decision(store, "pmid:2", "ana", "exclude", reason="wrong-intervention")
    decisions.record_decision(store, "pmid:2", "bob", "exclude", reason="wrong-intervention")
    decisions.record_decision(store, "pmid:3", "bob", "exclude", reason="wrong-population")
    html = static_summary(store).data
    assert "Current decisions per reviewer" in html and "Exclusions per reason" in html
    assert "Not an engineered cell therapy" in html and "Not autoimmune disease" in html
    from reviewlib.screener import summary_tables
    tables = summary_tables(store)
    assert tables["decisions"].loc["ana", "include"] == 1 and tables["decisions"].loc["bob", "exclude"] == 2
    assert tables["reasons"].loc[lambda t: t.index.str.startswith("Not an engineered cell therapy"), "bob"].tolist() == [1]
    assert tables["final"].loc["exclude", "agreed"] == 1 and tables["final"].loc["exclude", "single"] == 1
    assert "<td>2</td>" in html
    # blind: ana sees only her own
    mine = static_summary(store, reviewer="ana", blind=True).data
    assert "bob" not in mine


def test_display_bundle_has_the_summary_as_html_fallback(store, rules):
    s = Screener(store, "ana", rules=rules, prioritise=False)
    bundle = s._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == s.widget.model_id
    assert "Screening summary" in bundle["text/html"]


def test_rendered_notebook_shows_the_static_summary(tmp_path, store):
    """A real papermill run rendered by nbconvert: the summary, not a dead widget."""
    papermill = pytest.importorskip("papermill")
    from nbconvert import HTMLExporter
    decisions.record_decision(store, "pmid:1", "ana", "include")
    store.close()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from reviewlib.store import ReviewStore\n"
        "from reviewlib.screener import Screener\n"
        f"Screener(ReviewStore({str(tmp_path / 'review.sqlite')!r}), 'ana', protocol='car-t-autoimmune',"
        " prioritise=False).display()")]
    src, out = tmp_path / "screen.ipynb", tmp_path / "screen.out.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False,
                               store_widget_state=False, cwd=str(tmp_path))
    body, _ = HTMLExporter().from_filename(str(out))
    assert "Screening summary" in body and "Current decisions per reviewer" in body
    assert '<script type="application/vnd.jupyter.widget-view+json">' not in body      # no dead widget
