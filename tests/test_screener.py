"""The ipywidgets screener, driven in Python: clicks write through at once; a static summary without kernel."""
from __future__ import annotations

import re

import nbformat
import pandas as pd
import pytest

from reviewlib.screening import agreement
from reviewlib.screening import decisions
from reviewlib.errors import InputError
from reviewlib.protocol import load_protocol
from reviewlib.records import conform
from reviewlib.screening.screener import Screener, highlight, static_summary
from reviewlib.screening.eligibility import load_rules
from reviewlib.store import ReviewStore
from stepping_clock import SteppingClock

UNTRUSTED = 'CD19 CAR T cells in lupus <script>alert("x")</script> & <b>bold</b> claims'


def screener(store, reviewer, rules, **kw):
    kw.setdefault("clock", SteppingClock())
    return Screener(store, reviewer, rules=rules, **kw)


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
    s = screener(store, "ana", rules, prioritise=False)
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
    assert s.reason.index == 0                                     # showing "(no reason)", not a blank menu
    s.undo_button.click()
    assert s.current == "pmid:2"                                   # back to the undone record
    assert store.decisions()["kind"].tolist() == ["human", "human", "undo"]
    assert decisions.current_decisions(store, reviewer="ana")["record_id"].tolist() == ["pmid:1"]
    s.buttons["maybe"].click()
    s.reason.value = "wrong-population"
    s.buttons["exclude"].click()
    assert s.current is None and "All records screened" in s.record_view.value
    assert all(b.disabled for b in s.buttons.values())
    assert "screened 3 / 3" in s.progress.value


def test_a_second_screener_on_the_same_store_resumes(store, rules):
    screener(store, "ana", rules, prioritise=False).buttons["include"].click()
    again = screener(store, "ana", rules, prioritise=False)
    assert again.current == "pmid:2"
    other = screener(store, "bob", rules, prioritise=False, blind=True)
    assert other.current == "pmid:1" and "blind" in other.progress.value
    assert other.others_view.value == ""                          # bob cannot see ana's call
    agreement.reveal(store)
    other.refresh()
    assert "ana: include" in other.others_view.value


def test_prioritised_order_and_estimate(store, rules):
    from reviewlib.screening import prioritise
    s = screener(store, "ana", rules, prioritise=True, seed=1)
    first = s.current
    assert "estimated relevant left ? (after your first include and first exclude)" in s.progress.value
    s.buttons["include"].click()
    second = s.current
    assert "estimated relevant left ?" in s.progress.value        # one class only: no model estimate yet
    s.reason.value = "no-data"
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
    from reviewlib.screening.screener import summary_tables
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
    import papermill
    from nbconvert import HTMLExporter
    decisions.record_decision(store, "pmid:1", "ana", "include")
    store.close()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from reviewlib.store import ReviewStore\n"
        "from reviewlib.screening.screener import Screener\n"
        f"Screener(ReviewStore({str(tmp_path / 'review.sqlite')!r}), 'ana', protocol='car-t-autoimmune',"
        " prioritise=False).display()")]
    src, out = tmp_path / "screen.ipynb", tmp_path / "screen.out.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False,
                               store_widget_state=False, cwd=str(tmp_path))
    body, _ = HTMLExporter().from_filename(str(out))
    assert "Screening summary" in body and "Current decisions per reviewer" in body
    assert '<script type="application/vnd.jupyter.widget-view+json">' not in body      # no dead widget


def test_exclude_without_a_reason_saves_nothing_and_says_so(store, rules):
    s = screener(store, "ana", rules, prioritise=False)
    assert s.reason.index == 0 and s.reason.value is None          # the picker shows "(no reason)", not blank
    assert s.reason.options[0][0] == "(no reason: pick one to exclude)"
    s.buttons["exclude"].click()
    assert store.decisions().empty and s.current == "pmid:1"      # same record, nothing written
    assert "Not saved: pick an exclusion reason" in s.status.value and "rl-error" in s.status.value
    s.reason.value = "no-data"
    s.buttons["exclude"].click()
    assert store.decisions()[["record_id", "decision", "reason"]].values.tolist() == [["pmid:1", "exclude", "no-data"]]
    assert "Saved: exclude (no-data) pmid:1" in s.status.value
    assert s.reason.index == 0                                     # reset, visibly, for the next record


def test_reason_optional_when_asked_and_never_kept_on_an_include(store, rules):
    s = screener(store, "ana", rules, prioritise=False, require_reason=False)
    assert s.reason.options[0][0] == "(no reason)"
    s.buttons["exclude"].click()
    s.reason.value = "preclinical"
    s.buttons["include"].click()
    s.reason.value = "preclinical"
    s.buttons["maybe"].click()
    rows = store.decisions()[["record_id", "decision", "reason"]].astype(object)
    rows = rows.where(rows.notna(), None).values.tolist()
    assert rows == [["pmid:1", "exclude", None], ["pmid:2", "include", None], ["pmid:3", "maybe", "preclinical"]]


def test_double_click_does_not_decide_the_next_record_unseen(store, rules):
    clock = SteppingClock(step=0.0)
    s = screener(store, "ana", rules, prioritise=False, clock=clock)
    s.buttons["include"].click()
    s.buttons["include"].click()                                   # the second click of a double-click
    assert store.decisions()["record_id"].tolist() == ["pmid:1"] and s.current == "pmid:2"
    assert "Ignored a second click" in s.status.value
    clock.advance(s.min_interval)
    s.buttons["include"].click()
    assert store.decisions()["record_id"].tolist() == ["pmid:1", "pmid:2"]
    off = screener(store, "bob", rules, prioritise=False, clock=SteppingClock(step=0.0), min_interval=0)
    off.buttons["include"].click()
    off.buttons["include"].click()
    assert decisions.current_decisions(store, reviewer="bob")["record_id"].tolist() == ["pmid:1", "pmid:2"]


def test_disabled_states_and_the_all_screened_message(store, rules):
    s = screener(store, "ana", rules, prioritise=False)
    assert s.undo_button.disabled                                  # nothing to undo yet
    assert not s.skip_button.disabled and not s.reason.disabled
    s.buttons["include"].click()
    assert not s.undo_button.disabled
    s.buttons["maybe"].click()
    assert s.skip_button.disabled                                  # one record left: nowhere to skip to
    s.reason.value = "wrong-population"
    s.buttons["exclude"].click()
    assert s.current is None
    assert all(b.disabled for b in s.buttons.values()) and s.reason.disabled and s.note.disabled
    assert not s.undo_button.disabled
    assert "All records screened." in s.record_view.value
    assert "decided all 3 records at title-abstract: 1 included, 1 excluded, 1 maybe" in s.record_view.value
    assert "screened 3 / 3 (100%)" in s.progress.value and s.bar.value == s.bar.max == 3
    s.undo_button.click()
    assert s.current == "pmid:3" and not s.buttons["exclude"].disabled and "Undid: exclude (wrong-population)" in s.status.value
    s.undo_button.click()
    assert s.current == "pmid:2" and "Undid: maybe pmid:2." in s.status.value             # no "(nan)" reason


def test_long_text_wraps_and_stems_mark_whole_words(store, rules):
    s = screener(store, "ana", rules, prioritise=False)
    # the widget's own CSS lets an unbroken token (URL, sequence) wrap instead of widening the page
    assert "overflow-wrap:anywhere" in s.record_view.value and "overflow-x:hidden" in s.record_view.value
    left = s.widget.children[2].children[0]
    assert left.layout.min_width == "0" and s.reason.layout.width == "auto"
    out = highlight("refractory autoimmune disease", {"include": [re.compile("autoimmun")]})
    assert out == 'refractory <mark class="rl-include">autoimmune</mark> disease'


def test_other_calls_name_the_rules_and_the_reason_label(store, rules):
    store.append_decision("pmid:1", "rules", "title-abstract", "exclude", "wrong-population", None, kind="rule")
    s = screener(store, "ana", rules, prioritise=False)
    s.buttons["include"].click()
    s.buttons["include"].click()                      # the rule-excluded record comes after the others
    assert s.current == "pmid:1"
    assert "protocol rules propose exclude (Not autoimmune disease" in s.others_view.value


# ------------------------------------------------------------------ issue 14: rule-excluded records last
def test_records_the_rules_excluded_come_after_the_others(store, rules):
    # pmid:1 comes first in the store's order; the protocol rules exclude it
    store.append_decision("pmid:1", "rules", "title-abstract", "exclude", "wrong-population", None, kind="rule")
    s = screener(store, "ana", rules, prioritise=False)
    assert s.current == "pmid:2" and s._queue == ["pmid:2", "pmid:3", "pmid:1"]
    assert "1 excluded by the protocol rules come last" in s.progress.value
    s.buttons["include"].click()
    s.reason.value = "no-data"
    s.buttons["exclude"].click()
    assert s.current == "pmid:1"                      # still reachable, after every other record


def test_rule_excluded_records_last_in_the_prioritised_queue_too(store, rules):
    store.append_decision("pmid:2", "rules", "title-abstract", "exclude", "wrong-intervention", None, kind="rule")
    s = screener(store, "ana", rules, prioritise=True, seed=0)
    assert s._queue[-1] == "pmid:2" and s.current != "pmid:2"
    s.buttons["include"].click()
    assert s._queue[-1] == "pmid:2"


def test_rule_excluded_records_left_out_with_a_count(store, rules):
    store.append_decision("pmid:1", "rules", "title-abstract", "exclude", "wrong-population", None, kind="rule")
    s = screener(store, "ana", rules, prioritise=False, rule_excluded="omit")
    assert s._queue == ["pmid:2", "pmid:3"]
    assert "1 excluded by the protocol rules left out of the queue" in s.progress.value
    s.buttons["include"].click()
    s.buttons["include"].click()
    assert s.current is None and "All records in the queue screened" in s.record_view.value
    assert "1 records the protocol rules excluded were left out" in s.record_view.value
    with pytest.raises(InputError, match="rule_excluded"):
        screener(store, "ana", rules, rule_excluded="hide")


def test_a_rule_exclude_the_reviewer_already_decided_is_not_counted(store, rules):
    store.append_decision("pmid:1", "rules", "title-abstract", "exclude", "wrong-population", None, kind="rule")
    store.append_decision("pmid:1", "ana", "title-abstract", "include", None, None)
    s = screener(store, "ana", rules, prioritise=False)
    assert s._queue == ["pmid:2", "pmid:3"] and "protocol rules come last" not in s.progress.value


# ------------------------------------------------------------------ issue 14: the stopping rule in the screener
@pytest.fixture
def big_store(tmp_path):
    s = ReviewStore(tmp_path / "big.sqlite")
    s.add_records(conform(pd.DataFrame([
        {"pmid": str(i), "title": f"{'CAR T cells in lupus' if i < 6 else 'Statins in heart failure'} study {i}",
         "abstract": "An abstract.", "year": 2020} for i in range(1, 121)])))
    return s


def test_stopping_rule_is_no_guarantee_before_random_sampling(big_store, rules):
    s = screener(big_store, "ana", rules, prioritise=False, require_reason=False)
    for _ in range(10):
        s.buttons["exclude"].click()
    assert s.stopping is not None and s.stopping.guaranteed is False and s.stopping.screened == 10
    text = s.stopping_view.value
    assert "screened 10 of 120" in text and "not a guarantee" in text and "you may stop" not in text
    assert "estimated recall" not in text


def test_ranked_estimate_before_random_sampling_says_it_is_no_guarantee(big_store, rules):
    s = screener(big_store, "ana", rules, prioritise=False, require_reason=False)
    for _ in range(5):                                # the five lupus records, found first
        s.buttons["include"].click()
    for _ in range(95):
        s.buttons["exclude"].click()
    # 5 found, 20 unscreened: H0 needs 1 include among them; best window the 95 excludes: p = 20/115
    assert "p = 0.174" in s.ranked_estimate and "you may stop" not in s.stopping_view.value
    for _ in range(15):
        s.buttons["exclude"].click()
    # 5 unscreened: p = 5/115 = 0.043 < 0.05, and the line still says what it assumes and that it is no guarantee
    text = s.stopping_view.value
    assert "p = 0.043" in text and "you may stop" in text and "not a guarantee" in text
    assert "at least as good as random" in text and s.stopping.guaranteed is False
    s.start_random_sampling()
    assert s.ranked_estimate is None and "buscar" not in s.stopping_view.value


def test_random_sampling_phase_gives_the_estimate_and_resumes(big_store, rules):
    s = screener(big_store, "ana", rules, prioritise=False, require_reason=False, seed=3)
    for _ in range(5):                                # the five lupus records, found first
        s.buttons["include"].click()
    for _ in range(15):
        s.buttons["exclude"].click()
    phase = s.start_random_sampling()
    assert len(phase["decided_before"]) == 20 and s.skip_button.disabled and s.sampling_button.disabled
    queue = list(s._queue)
    assert sorted(queue) == sorted(f"pmid:{i}" for i in range(21, 121)) and queue != sorted(queue, key=lambda r: int(r[5:]))
    for _ in range(40):
        s.buttons["exclude"].click()
    est = s.stopping
    assert est.guaranteed and est.sample_size == 40 and est.sample_found == 0 and est.found == 5
    # by hand: urn 100, 5 found before; H0 recall < 95 % needs floor(5/0.95)+1 - 5 = 1 include in the urn
    from scipy.stats import hypergeom
    assert est.p_value == pytest.approx(hypergeom.cdf(0, 100, 1, 40))            # 0.6: keep sampling
    assert not est.stop and "keep sampling" in s.stopping_view.value and "interval" in s.stopping_view.value
    # a second session resumes the phase and its random order
    again = screener(big_store, "ana", rules, prioritise=False, require_reason=False, seed=99)
    assert again.sampling_phase() == phase and again._queue == s._queue
    for _ in range(58):
        again.buttons["exclude"].click()
    assert again.stopping.sample_size == 98 and again.stopping.stop
    assert "you may stop" in again.stopping_view.value
