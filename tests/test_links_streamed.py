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
