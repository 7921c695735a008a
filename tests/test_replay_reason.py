"""A figure absent from a run says why: the replay's recall curve needs every record decided."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from reviewlib.screening import simulation
from reviewlib.store import ReviewStore

# the first 30 records of Cohen 2006 antihistamines (see tests/data/README.md)
COHEN = Path(__file__).parent / "data" / "screening_sets" / "cohen2006_antihistamines" / "Antihistamines.csv"


def test_the_reason_names_what_is_missing_and_goes_once_every_record_is_decided(tmp_path):
    frame = pd.read_csv(COHEN, dtype=str, keep_default_na=False).head(30)
    records = pd.DataFrame({"pmid": frame["pubmedID"], "title": frame["title"], "abstract": frame["abstract"]})
    labels = frame["label_abstract_screening"].astype(int).tolist()
    with ReviewStore(tmp_path / "review.sqlite") as store:
        store.add_records(records)
        screened = store.records()
        ids = list(screened["record_id"])
        assert simulation.replay_missing_reason(store, screened).startswith("The replay in prioritised order")
        for rid, label in zip(ids[:-3], labels[:-3]):
            store.append_decision(rid, "ana", "title-abstract", "include" if label else "exclude")
        store.append_decision(ids[-3], "ana", "title-abstract", "maybe")
        reason = simulation.replay_missing_reason(store, screened)
        assert "2 of 30 records have no decision yet and 1 is marked maybe." in reason
        assert simulation.replay_review(store, screened) is None
        for rid, label in zip(ids[-3:], labels[-3:]):
            store.append_decision(rid, "ana", "title-abstract", "include" if label else "exclude")
        assert sum(labels) == 12                      # 12 includes among these 30: enough to replay
        assert simulation.replay_missing_reason(store, screened) is None
        assert simulation.replay_review(store, screened) is not None


def test_a_conflict_between_reviewers_is_named(tmp_path):
    records = pd.DataFrame({"pmid": ["1", "2", "3", "4"], "title": list("abcd"), "abstract": list("wxyz")})
    with ReviewStore(tmp_path / "review.sqlite") as store:
        store.add_records(records)
        ids = list(store.records()["record_id"])
        for rid, d in zip(ids, ["include", "include", "exclude", "exclude"]):
            store.append_decision(rid, "ana", "title-abstract", d)
        store.append_decision(ids[0], "bob", "title-abstract", "exclude")
        assert "1 is a conflict between reviewers, to resolve." in simulation.replay_missing_reason(store, store.records())


def test_too_few_includes_is_said(tmp_path):
    records = pd.DataFrame({"pmid": ["1", "2", "3"], "title": ["a", "b", "c"], "abstract": ["x", "y", "z"]})
    with ReviewStore(tmp_path / "review.sqlite") as store:
        store.add_records(records)
        ids = list(store.records()["record_id"])
        for rid, d in zip(ids, ["include", "exclude", "exclude"]):
            store.append_decision(rid, "ana", "title-abstract", d)
        assert simulation.replay_missing_reason(store, store.records()) == \
            "The replay needs at least 2 included records; there is 1."
