"""Issue 15: a large table's rules are evaluated in parts, one in this process and the rest in forked
workers; the outcome is apply_rules' for the whole table, and a worker that fails or dies leaves its part
to this process."""
from __future__ import annotations

import os

import pandas as pd
import pytest

from reviewlib.errors import InputError
from reviewlib.protocol import PACKAGE_DATA
from reviewlib.screening import eligibility, rule_cache
from reviewlib.sources.pubmed_xml import read_pubmed_xml
from reviewlib.store import ReviewStore


@pytest.fixture(scope="module")
def records():
    frame = read_pubmed_xml(PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz")
    frame.insert(0, "record_id", [f"pmid:{p}" for p in frame["pmid"]])
    return frame


@pytest.fixture(scope="module")
def rules():
    return eligibility.load_rules("car-t-autoimmune")


@pytest.mark.parametrize("workers", [2, 3])
def test_parts_give_the_whole_tables_outcome(tmp_path, records, rules, monkeypatch, workers):
    monkeypatch.setattr(rule_cache, "PARALLEL_RULES_MIN", 10)
    expected = eligibility.apply_rules(records, rules)
    with ReviewStore(tmp_path / "review.sqlite") as store:
        got = rule_cache.apply_rules_cached(store, records, rules, hashes={r: r for r in records["record_id"]},
                                            workers=workers)
    pd.testing.assert_frame_equal(got, expected)
    assert expected["decision"].nunique() >= 2                  # more than one outcome among the parts


@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_failing_worker_leaves_its_part_to_this_process(tmp_path, records, rules, monkeypatch, caplog, how):
    monkeypatch.setattr(rule_cache, "PARALLEL_RULES_MIN", 10)
    parent, real = os.getpid(), rule_cache._apply_part

    def part(start, stop):
        if os.getpid() != parent:
            if how == "dies":
                os._exit(3)
            raise MemoryError("killed")
        return real(start, stop)
    monkeypatch.setattr(rule_cache, "_apply_part", part)
    expected = eligibility.apply_rules(records, rules)
    with ReviewStore(tmp_path / "review.sqlite") as store, caplog.at_level("WARNING"):
        got = rule_cache.apply_rules_cached(store, records, rules, hashes={r: r for r in records["record_id"]},
                                            workers=2)
    pd.testing.assert_frame_equal(got, expected)
    assert "a worker failed" in caplog.text
    assert ("killed" if how == "raises" else "terminated abruptly") in caplog.text


def test_small_tables_stay_in_this_process_and_the_setting_is_checked(records, rules, monkeypatch):
    monkeypatch.setattr(rule_cache, "_apply_part", lambda *a: pytest.fail("a worker for 60 records"))
    decisions, _, _ = rule_cache._evaluate(records, rules, workers=2)
    assert decisions == eligibility.apply_rules(records, rules)["decision"].tolist()
    monkeypatch.delenv(rule_cache.RULE_WORKERS_ENV, raising=False)
    assert rule_cache.rule_workers() == 1                       # one process unless asked for more
    monkeypatch.setenv(rule_cache.RULE_WORKERS_ENV, "2")
    assert rule_cache.rule_workers() == 2
    monkeypatch.setenv(rule_cache.RULE_WORKERS_ENV, "two")
    with pytest.raises(InputError, match="REVIEWLIB_RULE_WORKERS='two' is not a whole number"):
        rule_cache.rule_workers()
