"""reviewlib.sources.pubmed_xml: streaming efetch XML parser, checked against Bio.Entrez.read."""
from __future__ import annotations

import gzip
import io
import json
import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from Bio import Entrez

import reviewlib
from reviewlib import records
from reviewlib.errors import InputError
from reviewlib.sources.pubmed_xml import parse_medline_date, read_pubmed_xml
from trickle import Trickle, read_all

DATA = Path(__file__).resolve().parent / "data" / "pubmed"
EFETCH = DATA / "efetch"
WRITTEN = DATA / "written"
EFETCH_FILES = sorted(EFETCH.rglob("*.xml"))


def norm(text) -> str:
    return " ".join(str(text or "").split())


#: Inline markup that Bio.Entrez.read leaves in its strings as literal tags (escape=False).
MARKUP = re.compile(r"</?(?:i|b|u|sup|sub|math|m[a-z]+|none)(?:\s[^<>]*)?/?>")


#: The reference's own table of the super/subscript characters the reader must write (digits, signs).
SUPERSCRIPTS = dict(zip("0123456789+-\u2212=()", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
                                                   "\u207a\u207b\u207b\u207c\u207d\u207e"))
SUBSCRIPTS = dict(zip("0123456789+-\u2212=()", "\u2080\u2081\u2082\u2083\u2084\u2085\u2086\u2087\u2088\u2089"
                                                 "\u208a\u208b\u208b\u208c\u208d\u208e"))
SCRIPT_TAG = re.compile(r"<(sup|sub)>(.*?)</\1>", re.S)


def ref_script(m: re.Match) -> str:
    """A <sup>/<sub> of Bio.Entrez's string as the reader must write it: Unicode for digits and signs,
    marks without letters or digits unchanged, else ^x / _x, parenthesised unless it is one word not
    followed by a word character."""
    inner = norm(MARKUP.sub("", m.group(2)))
    table = SUPERSCRIPTS if m.group(1) == "sup" else SUBSCRIPTS
    if inner and all(c in table for c in inner):
        return "".join(table[c] for c in inner)
    if not re.search(r"[^\W_]", inner):  # ® ™ ° * †: no letter or digit, reads the same on the line
        return inner
    mark = "^" if m.group(1) == "sup" else "_"
    after = m.string[m.end():m.end() + 1]
    if re.fullmatch(r"\w+", inner) and not re.match(r"\w", after):
        return mark + inner
    return f"{mark}({inner})" if inner else ""


def ref_text(text) -> str:
    """Bio.Entrez.read's text (escape=False: inline tags left in as literal tags) with super/subscripts
    written as the reader must write them and every other tag removed, whitespace normalised."""
    return norm(MARKUP.sub("", SCRIPT_TAG.sub(ref_script, str(text or ""))))


def entrez_records(path: Path) -> list[dict]:
    """What Bio.Entrez.read (the reference) says of each record in ``path``."""
    with open(path, "rb") as handle:
        doc = Entrez.read(handle)
    out = []
    for art in doc["PubmedArticle"]:
        citation = art["MedlineCitation"]
        article = citation["Article"]
        ids = {str(i.attributes.get("IdType")): str(i) for i in art["PubmedData"].get("ArticleIdList", [])}
        doi = ids.get("doi")
        if not doi:
            doi = next((str(e) for e in article.get("ELocationID", [])
                        if e.attributes.get("EIdType") == "doi"), None)
        pub_date = article["Journal"]["JournalIssue"]["PubDate"]
        year = pub_date.get("Year") or str(pub_date.get("MedlineDate", ""))[:4] or None
        texts = [str(t) for t in article.get("Abstract", {}).get("AbstractText", [])]
        out.append({
            "pmid": str(citation["PMID"]),
            "title": ref_text(article.get("ArticleTitle")),
            "abstract": ref_text(" ".join(texts)),
            "doi": doi,
            "year": int(year) if year else None,
            "journal": ref_text(article["Journal"].get("Title")),
            "n_authors": len(article.get("AuthorList", [])),
        })
    for book in doc["PubmedBookArticle"]:
        document = book["BookDocument"]
        texts = [str(t) for t in document.get("Abstract", {}).get("AbstractText", [])]
        authors = [al for al in document.get("AuthorList", [])]
        out.append({
            "pmid": str(document["PMID"]),
            "title": ref_text(document.get("ArticleTitle") or document["Book"]["BookTitle"]),
            "abstract": ref_text(" ".join(texts)),
            "doi": None,
            "year": int(document["Book"]["PubDate"]["Year"]),
            "journal": ref_text(document["Book"]["BookTitle"]),
            "n_authors": sum(len(al) for al in authors),
        })
    return out


def ours(frame) -> list[dict]:
    out = []
    for row in frame.itertuples(index=False):
        out.append({
            "pmid": row.pmid,
            "title": norm(row.title),
            "abstract": norm(" ".join(s["text"] for s in row.abstract_sections)),
            "doi": row.doi,
            "year": None if row.year is None or str(row.year) == "<NA>" else int(row.year),
            "journal": norm(row.journal),
            "n_authors": len(row.authors),
        })
    return out


@pytest.mark.parametrize("path", EFETCH_FILES + [WRITTEN / "book_article_genereviews_style.xml"],
                         ids=lambda p: p.name)
def test_every_fixture_agrees_with_bio_entrez(path):
    frame = read_pubmed_xml(path)
    assert list(frame.columns) == records.COLUMNS
    assert ours(frame) == entrez_records(path)


def test_fixture_corpus_is_what_the_fidelity_test_claims():
    # 91 real articles in the 90 copied efetch bodies (37909814.xml is the empty set).
    total = sum(len(read_pubmed_xml(p)) for p in EFETCH_FILES)
    assert len(EFETCH_FILES) == 90
    assert total == 91


def test_structured_abstract_keeps_labels_biopython_pubmed4():
    row = read_pubmed_xml(EFETCH / "biopython_pubmed4.xml").iloc[0]
    labels = [s["label"] for s in row.abstract_sections]
    assert labels == ["OBJECTIVE", "DESIGN", "RESULTS", "CONCLUSIONS"]
    paragraphs = row.abstract.split("\n")
    assert len(paragraphs) == 4
    assert paragraphs[0].startswith("OBJECTIVE: Telomere shortening")
    assert paragraphs[3].startswith("CONCLUSIONS: ")


def test_inline_markup_text_is_kept():
    row = read_pubmed_xml(EFETCH / "metapub" / "38591913.xml").iloc[0]
    assert row.title == "Siderophore-mediated iron acquisition by Klebsiella pneumoniae."
    row = read_pubmed_xml(EFETCH / "metapub" / "37167981.xml").iloc[0]
    assert "(\u03bc-XRF)" in row.title
    # <sup>2</sup> inside an abstract (r<sup>2</sup>) keeps its meaning: r², not r2.
    raw = (EFETCH / "biopython_pubmed4.xml").read_text()
    start = raw.index("<sup>2</sup>")
    before = raw[raw.rindex(">", 0, start) + 1:start].split()[-1]
    row = read_pubmed_xml(EFETCH / "biopython_pubmed4.xml").iloc[0]
    assert f"{before}\u00b2" in row.abstract and f"{before}2" not in row.abstract


@pytest.mark.parametrize("name, marked_up, written", [
    # real efetch fixtures with <sup>/<sub> (tests/data/README.md gives their sources)
    ("biopython_pubmed4.xml", "r<sup>2</sup>&lt;0.25", "r\u00b2<0.25"),
    ("biopython_pubmed4.xml", "p<sub>trend</sub>=0.048", "p_trend=0.048"),
    ("biopython_pubmed6.xml", "km\u00b7h<sup>-1</sup>", "km\u00b7h\u207b\u00b9"),
    ("biopython_pubmed6.xml", "(<sub>V</sub>MLSS)", "(_(V)MLSS)"),
    ("metapub/39382274.xml", "MIC<sub>50</sub>/MIC<sub>90</sub>", "MIC\u2085\u2080/MIC\u2089\u2080"),
    ("metapub/26568896.xml", "TiO<sub>2</sub>", "TiO\u2082"),
    ("metapub/37167981.xml", "Fe<sub>3</sub>O<sub>4</sub>", "Fe\u2083O\u2084"),
])
def test_superscripts_and_subscripts_keep_their_meaning(name, marked_up, written):
    raw = (EFETCH / name).read_text(encoding="utf-8")
    assert marked_up in raw  # the fixture really has the markup
    row = read_pubmed_xml(EFETCH / name).iloc[0]
    text = f"{row.title} {row.abstract}"
    assert written in text
    flat = re.sub(r"<[^>]+>", "", marked_up).replace("&lt;", "<")  # what dropping the tags would give
    assert flat not in text


def test_a_dose_in_a_title_is_not_read_as_another_number():
    # the efetch markup of the CAR-T literature: 10<sup>6</sup> cells/kg, CAR<sup>+</sup>, mg/m<sup>2</sup>
    xml = (b"<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article>"
           b"<ArticleTitle>0.5 x 10<sup>6</sup> CAR<sup>+</sup> T cells/kg after fludarabine 30 mg/m<sup>2</sup>"
           b"</ArticleTitle><Abstract><AbstractText>IC<sub>50</sub> of PrP<sup>Sc</sup> and t<sub>1/2</sub>"
           b"</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>")
    row = read_pubmed_xml(io.BytesIO(xml)).iloc[0]
    assert row.title == "0.5 x 10\u2076 CAR\u207a T cells/kg after fludarabine 30 mg/m\u00b2"
    assert row.abstract == "IC\u2085\u2080 of PrP^Sc and t_(1/2)"


def test_collective_name_is_an_author_biopython_pubmed7():
    row = read_pubmed_xml(EFETCH / "biopython_pubmed7.xml").iloc[0]
    assert row.authors[0] == "Guo F"
    assert row.authors[-1] == "Canadian Respiratory Research Network"


def test_medline_dates_give_year_and_month():
    frame = read_pubmed_xml(WRITTEN / "dates_and_delete_citation.xml").set_index("pmid")
    assert frame.loc["90000001", "year"] == 2019
    assert frame.loc["90000001", "pub_date"] == "2019-11"
    assert frame.loc["90000002", "year"] == 1998
    assert frame.loc["90000002", "pub_date"] == "1998-12"
    assert frame.loc["90000003", "pub_date"] == "2020"          # Season: year only
    assert frame.loc["90000004", "pub_date"] == "2021-03-05"    # month name -> number
    assert str(frame["year"].dtype) == "Int64"


@pytest.mark.parametrize("text,expected", [
    ("2019 Nov-Dec", (2019, "2019-11")),
    ("1998 Dec-1999 Jan", (1998, "1998-12")),
    ("2000 Spring", (2000, "2000")),
    ("2021 Mar 15", (2021, "2021-03-15")),
    ("Winter 2001-2002", (2001, "2001")),
    ("no date", (None, None)),
])
def test_parse_medline_date(text, expected):
    assert parse_medline_date(text) == expected


def test_mesh_major_from_descriptor_or_qualifier():
    frame = read_pubmed_xml(WRITTEN / "dates_and_delete_citation.xml")
    assert frame.loc[0, "mesh_terms"] == ["Autoimmune Diseases", "Humans"]
    assert frame.loc[0, "mesh_major"] == ["Autoimmune Diseases"]  # qualifier 'therapy' is major


def test_delete_citation_is_logged_and_exposed(caplog):
    with caplog.at_level(logging.INFO, logger="reviewlib.sources.pubmed_xml"):
        frame = read_pubmed_xml(WRITTEN / "dates_and_delete_citation.xml")
    assert frame.attrs["deleted_pmids"] == ["90000098", "90000099"]
    assert "90000098" not in set(frame.pmid)
    assert any("DeleteCitation" in r.getMessage() and "90000099" in r.getMessage() for r in caplog.records)


def test_missing_abstract_is_none_and_sections_empty():
    row = read_pubmed_xml(EFETCH / "metapub" / "11618220.xml").iloc[0]
    assert row.abstract is None
    assert row.abstract_sections == []
    assert row.title.startswith("Eroticism in late Ming")


def test_empty_article_set_37909814_gives_empty_frame_with_columns():
    frame = read_pubmed_xml(EFETCH / "metapub" / "37909814.xml")
    assert len(frame) == 0
    assert list(frame.columns) == records.COLUMNS
    assert frame.attrs["deleted_pmids"] == []


def test_book_article():
    row = read_pubmed_xml(WRITTEN / "book_article_genereviews_style.xml").iloc[0]
    assert row.pmid == "20301999"
    assert row.title == "Example Autoimmune Disorder Overview"
    assert row.journal == "GeneReviews\u00ae"
    assert row.authors == ["Bird TD", "Miller A"]  # the chapter authors, not the editors
    assert [s["label"] for s in row.abstract_sections] == ["CLINICAL CHARACTERISTICS", "DIAGNOSIS/TESTING"]
    assert "Copyright" not in row.abstract
    assert row.year == 1993 and row.publication_types == ["Review"]


def test_all_columns_of_a_full_record_biopython_pubmed4():
    row = read_pubmed_xml(EFETCH / "biopython_pubmed4.xml").iloc[0]
    assert row.pmid == "27797938"
    assert row.doi.startswith("10.1136/gutjnl")
    assert row.journal_abbrev == "Gut"
    assert row.language == ["eng"]
    assert "Journal Article" in row.publication_types
    assert row.source == "pubmed"
    assert isinstance(row.mesh_terms, list) and isinstance(row.keywords, list)
    assert set(row.mesh_major) <= set(row.mesh_terms)


def test_doi_is_not_taken_from_the_reference_list():
    # biopython_pubmed6 carries a ReferenceList whose citations have their own DOIs.
    for path in EFETCH_FILES:
        raw = path.read_text(encoding="utf-8")
        if "<ReferenceList>" in raw and 'IdType="doi"' in raw.split("<ReferenceList>")[1]:
            frame = read_pubmed_xml(path)
            refs = raw.split("<ReferenceList>", 1)[1]
            for doi in frame.doi.dropna():
                assert raw.index(doi) < raw.index("<ReferenceList>") or doi not in refs
            break
    else:
        pytest.fail("the efetch fixtures should hold one with DOIs in a ReferenceList")


def test_vernacular_title_keeps_pubmed_article_title():
    for path in EFETCH_FILES:
        raw = path.read_text(encoding="utf-8")
        if "<VernacularTitle>" in raw:
            row = read_pubmed_xml(path).iloc[0]
            start = raw.index("<ArticleTitle>") + len("<ArticleTitle>")
            assert norm(row.title)[:20] == norm(raw[start:raw.index("</ArticleTitle>")])[:20]
            return
    pytest.fail("the efetch fixtures should hold one with a VernacularTitle")


def test_sources_path_bytes_fileobj_and_gzip_agree(tmp_path):
    path = EFETCH / "biopython_pubmed1.xml"
    expected = read_pubmed_xml(path)
    blob = path.read_bytes()
    gz = tmp_path / "snapshot.xml.gz"
    gz.write_bytes(gzip.compress(blob))
    for source in (str(path), blob, io.BytesIO(blob), gz, gzip.compress(blob), open(gz, "rb")):
        frame = read_pubmed_xml(source)
        assert frame.drop(columns=[]).to_dict("records") == expected.to_dict("records")
    assert len(expected) == 2


def test_exported_from_package():
    assert reviewlib.read_pubmed_xml is read_pubmed_xml


@pytest.mark.parametrize("name,blob,needle", [
    ("not-xml", b"PMID- 123\nTI  - a MEDLINE file\n", "not well-formed"),
    ("truncated", (EFETCH / "biopython_pubmed1.xml").read_bytes()[:3000], "cut short"),
    ("esearch", b"<?xml version='1.0'?><eSearchResult><Count>0</Count></eSearchResult>", "<eSearchResult>"),
    ("error-body", b"<eFetchResult><ERROR>ID list is empty! Possibly it has no correct IDs.</ERROR>"
                   b"</eFetchResult>", "ID list is empty"),
    ("empty", b"", "not well-formed"),
    ("gzip-truncated", gzip.compress((EFETCH / "biopython_pubmed1.xml").read_bytes())[:500], "cut short"),
])
def test_malformed_input_raises_one_line_input_error(tmp_path, name, blob, needle):
    path = tmp_path / f"{name}.xml"
    path.write_bytes(blob)
    with pytest.raises(InputError) as info:
        read_pubmed_xml(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and needle in message
    assert "efetch" in message  # says what to give instead


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_pubmed_xml(tmp_path / "nope.xml.gz")


def test_no_dtd_or_entity_is_fetched(tmp_path):
    # An external entity must not be resolved (no file read, no network).
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    blob = (EFETCH / "biopython_pubmed1.xml").read_text()
    blob = blob.replace('<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
                        '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">',
                        f'<!DOCTYPE PubmedArticleSet [<!ENTITY x SYSTEM "file://{secret}">]>')
    blob = blob.replace("The treatment of AIDS", "&x; The treatment of AIDS", 1)
    frame = read_pubmed_xml(blob.encode())
    assert "SECRET" not in frame.loc[0, "title"]


MEMORY_SCRIPT = textwrap.dedent("""
    import json, re, sys, tracemalloc
    from pathlib import Path
    from reviewlib.sources.pubmed_xml import iter_pubmed_xml, read_pubmed_xml
    src = Path(sys.argv[1]).read_text(encoding="utf-8")
    body = re.search(r"(<PubmedArticle>.*</PubmedArticle>)", src, re.S).group(1)
    out = {}
    for n in (int(sys.argv[2]), 4 * int(sys.argv[2])):
        path = Path(sys.argv[3]) / f"set{n}.xml"
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("<?xml version='1.0'?>\\n<PubmedArticleSet>\\n")
            for i in range(n):
                fh.write(body.replace("<PMID Version=\\"1\\">", f"<PMID Version=\\"1\\">{i}", 1))
            fh.write("</PubmedArticleSet>\\n")
        tracemalloc.start()
        count = sum(1 for _ in iter_pubmed_xml(path))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[n] = {"count": count, "peak": peak, "size": path.stat().st_size}
    print(json.dumps(out))
""")


def test_memory_is_flat_in_the_record_count(tmp_path):
    """Streaming: parsing 4x the records must not need ~4x the memory."""
    n = 200
    script = tmp_path / "mem.py"
    script.write_text(MEMORY_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(EFETCH / "biopython_pubmed6.xml"), str(n),
                           str(tmp_path)], capture_output=True, text=True, check=True, timeout=120)
    result = {int(k): v for k, v in json.loads(proc.stdout).items()}
    small, large = result[n], result[4 * n]
    assert small["count"] == n and large["count"] == 4 * n
    # A tree kept whole would take several times the file size; streaming stays far below it.
    assert large["peak"] < small["peak"] * 1.5 + 256 * 1024
    assert large["peak"] < large["size"] / 4


NESTED_REFERENCES = (b"<a><ReferenceList><Reference><Citation>x &lt; y</Citation></Reference>"
                     b"<ReferenceList><Title>inner</Title></ReferenceList></ReferenceList><b/>"
                     b"<ReferenceListX>kept</ReferenceListX><ReferenceList/>end</a>")


@pytest.mark.parametrize("sizes", [[1], [7, 13], [5000]])
@pytest.mark.parametrize("read_size", [1, 3, 32768, -1])
def test_reference_lists_are_skipped_across_chunk_boundaries(sizes, read_size):
    from reviewlib.sources.pubmed_xml import _SkipReferenceLists
    assert read_all(_SkipReferenceLists(Trickle(NESTED_REFERENCES, sizes)), read_size) == b"<a><b/><ReferenceListX>kept</ReferenceListX>end</a>"


def test_file_cut_short_inside_a_reference_list_is_input_error():
    raw = (EFETCH / "biopython_pubmed7.xml").read_bytes()
    cut = raw[: raw.index(b"<ReferenceList>") + 200]
    with pytest.raises(InputError, match="cut short"):
        read_pubmed_xml(cut)


def test_text_stream_is_input_error():
    with pytest.raises(InputError, match="binary mode"):
        read_pubmed_xml(io.StringIO("<PubmedArticleSet/>"))


def test_article_without_medline_citation_is_input_error():
    blob = b"<PubmedArticleSet><PubmedArticle><PubmedData/></PubmedArticle></PubmedArticleSet>"
    with pytest.raises(InputError, match="lacks a required element"):
        read_pubmed_xml(blob)
