"""The appraisal widget, driven in Python: saves write through to the real store at once."""
from __future__ import annotations

import pandas as pd
import pytest

from reviewlib.errors import InputError
from reviewlib.evidence import appraisal
from reviewlib.evidence.appraiser import UNANSWERED, Appraiser
from reviewlib.store import ReviewStore

STUDIES = pd.DataFrame([
    {"record_id": "pmid:1", "study": "Liu 2023a", "design": "case report", "title": "<script>x</script> CAR-T",
     "abstract": "A 20-year-old woman with SLE."},
    {"record_id": "pmid:2", "study": "Liu 2023b", "design": "case series", "title": "Eight patients",
     "abstract": "..."},
    {"record_id": "pmid:3", "study": "A review", "design": "review", "title": "Review", "abstract": ""},
])


@pytest.fixture
def store(tmp_path):
    with ReviewStore(tmp_path / "r.sqlite") as s:
        yield s


def test_save_writes_each_answer_and_moves_on(store):
    app = Appraiser(store, "ana", STUDIES, design="design")
    assert len(app.queue) == 2 and app.skipped == 1 and "left out" in app.status.value
    assert "&lt;script&gt;" in app.record.value and "<script>" not in app.record.value
    assert len(app.pickers) == 8                                   # JBI case report
    app.answer("1", "Yes", "age and sex given")
    app.answer("7", "No")
    app.save_button.click()
    hist = appraisal.history(store)
    assert hist[["item", "answer", "reviewer"]].values.tolist() == [["1", "Yes", "ana"], ["7", "No", "ana"]]
    assert "saved 2 judgements for Liu 2023a; 6 items left unanswered" in app.status.value
    assert app.current["record_id"] == "pmid:2" and len(app.pickers) == 10


def test_stored_answers_are_shown_and_unchanged_ones_not_appended(store):
    appraisal.record_judgement(store, "pmid:1", "jbi-case-report", "2", "Unclear", "ana", "no timeline")
    app = Appraiser(store, "ana", STUDIES, design="design")
    assert app.pickers["2"].value == "Unclear" and app.supports["2"].value == "no timeline"
    assert app.pickers["3"].value == UNANSWERED
    assert app.save() == 0
    assert len(appraisal.history(store)) == 1


def test_undo_appends_and_returns_to_the_study(store):
    app = Appraiser(store, "ana", STUDIES, design="design")
    app.answer("1", "Yes")
    app.save()
    app.undo_button.click()
    assert app.current["record_id"] == "pmid:1" and app.pickers["1"].value == UNANSWERED
    assert appraisal.history(store)["kind"].tolist() == ["human", "undo"]
    assert "undid jbi-case-report item 1 (Yes) of pmid:1" in app.status.value
    assert app.undo() is None and "nothing to undo" in app.status.value


def test_empty_reviewer_is_refused(store):
    with pytest.raises(InputError, match="reviewer name is empty"):
        Appraiser(store, " ", STUDIES, design="design")
