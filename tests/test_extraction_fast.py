"""Extraction prunes patterns that cannot match a record (issue 15) and gives the same outputs.

``extraction.PRUNE = False`` runs the extractor as it was before: every sentence checked with the
field's one big "any mention" expression, every synonym and pattern searched.  The tests compare
the two, cell by cell, on the synthetic snapshot and on real records.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from reviewlib.evidence import extraction
from reviewlib.protocol import PACKAGE_DATA
from reviewlib.sources.openalex import read_openalex
from reviewlib.sources.pubmed_xml import read_pubmed_xml
from reviewlib.sources.readers import read_medline

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def schema():
    return extraction.load_schema("car-t-autoimmune")


def _unpruned(records, schema, monkeypatch):
    monkeypatch.setattr(extraction, "PRUNE", False)
    try:
        return extraction.extract(records, schema)
    finally:
        monkeypatch.setattr(extraction, "PRUNE", True)


def _testsets() -> pd.DataFrame:
    rows = []
    for path in sorted((DATA / "extraction").glob("*.yaml")):
        for item in yaml.safe_load(path.read_text(encoding="utf-8")):
            rows.append({"record_id": f"{path.stem}:{item['id']}", "pmid": None, "title": item.get("title"),
                         "abstract": item.get("abstract")})
    return pd.DataFrame(rows)


SETS = {
    "synthetic snapshot": lambda: read_pubmed_xml(PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz"),
    "hand-checked extraction sets": _testsets,
    "meijboom-2021 (OpenAlex)": lambda: read_openalex(PACKAGE_DATA / "meijboom-2021" / "works_1.zip"),
    "efetch and MEDLINE fixtures": lambda: pd.concat(
        [read_pubmed_xml(p) for p in sorted((DATA / "pubmed" / "efetch").rglob("*.xml"))]
        + [read_medline(p) for p in sorted((DATA / "pubmed" / "medline").glob("*.txt"))], ignore_index=True),
}


@pytest.mark.parametrize("name", list(SETS))
def test_pruned_extraction_gives_the_same_outputs(name, schema, monkeypatch):
    records = SETS[name]()
    assert len(records) > 10
    fast = extraction.extract(records, schema)
    slow = _unpruned(records, schema, monkeypatch)
    assert list(fast.columns) == list(slow.columns) and len(fast) == len(slow)
    for col in slow.columns:
        assert fast[col].tolist() == slow[col].tolist(), col
    found = (slow.drop(columns=["record_id", "pmid"]).astype(str) != extraction.NOT_REPORTED).to_numpy().sum()
    assert found > len(records)                        # the extractor found things to compare


def test_same_outputs_without_pyahocorasick(schema, monkeypatch):
    import sys
    records = SETS["synthetic snapshot"]().iloc[:120]
    monkeypatch.setitem(sys.modules, "ahocorasick", None)
    monkeypatch.setattr(extraction, "_SCHEMAS", {})           # not the schema built (with it) before
    fresh = extraction.load_schema("car-t-autoimmune")        # its needle index built without the package
    fast = extraction.extract(records, fresh)
    slow = _unpruned(records, fresh, monkeypatch)
    pd.testing.assert_frame_equal(fast, slow)


def test_a_schema_is_built_once_per_content_and_again_when_a_section_changes():
    """Issue 15: notebooks load the schema several times; checking and compiling its patterns is done once."""
    import copy

    from reviewlib.evidence.extraction import load_schema
    from reviewlib.protocol import load_protocol

    protocol = load_protocol("car-t-autoimmune")
    first = load_schema(protocol)
    assert load_schema(load_protocol("car-t-autoimmune")) is first
    section = copy.deepcopy(protocol.section("extraction"))
    name = next(iter(section["fields"]))
    section["fields"][name]["label"] = "Relabelled"
    changed = load_schema(section)
    assert changed is not first and changed.fields[name].label == "Relabelled"
    assert load_schema(protocol).fields[name].label != "Relabelled"


def test_extraction_cache_serves_unchanged_records_and_extracts_changed_ones(schema, tmp_path, caplog):
    """Issue 15: a rerun extracts only records whose text (or the schema) changed; same outputs."""
    import copy
    import logging

    records = SETS["synthetic snapshot"]().iloc[:60].reset_index(drop=True)
    plain = extraction.extract(records, schema)
    cold = extraction.extract(records, schema, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(cold, plain)
    with caplog.at_level(logging.INFO, logger="reviewlib.evidence.extraction"):
        warm = extraction.extract(records, schema, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(warm, plain)
    assert "(60 unchanged, from the cache)" in caplog.text

    changed = records.copy()
    changed.loc[3, "abstract"] = "We treated 7 patients with refractory lupus nephritis using CD19 CAR-T cells."
    calls = []
    real = extraction.extract_record

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)
    try:
        extraction.extract_record = counting
        again = extraction.extract(changed, schema, cache_dir=tmp_path)
    finally:
        extraction.extract_record = real
    assert calls == [changed.loc[3, "title"]]                  # only the changed record
    pd.testing.assert_frame_equal(again, extraction.extract(changed, schema))

    raw = copy.deepcopy(schema.raw)
    name = next(n for n, f in raw["fields"].items() if f.get("kind") == "integer")
    raw["fields"][name]["patterns"] = [r"{NUM} ?patients"]
    other = extraction.load_schema(raw)
    assert extraction.ExtractionCache(tmp_path, other).path != extraction.ExtractionCache(tmp_path, schema).path
    pd.testing.assert_frame_equal(extraction.extract(records, other, cache_dir=tmp_path),
                                  extraction.extract(records, other))


def test_a_damaged_extraction_cache_is_started_anew(schema, tmp_path):
    records = SETS["synthetic snapshot"]().iloc[:5].reset_index(drop=True)
    extraction.extract(records, schema, cache_dir=tmp_path)
    path = extraction.ExtractionCache(tmp_path, schema).path
    path.write_text("{truncated", encoding="utf-8")
    pd.testing.assert_frame_equal(extraction.extract(records, schema, cache_dir=tmp_path),
                                  extraction.extract(records, schema))
    assert extraction.ExtractionCache(tmp_path, schema).get(records.loc[0, "title"], records.loc[0, "abstract"],
                                                            records.loc[0, "abstract_sections"] or None)
