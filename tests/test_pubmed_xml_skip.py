"""Issue 15: the parser drops elements no column reads before lxml sees them, with the same records table.

Data: every real efetch file under tests/data (see tests/data/README.md) and the default review's
synthetic snapshot.  The reference is the same parser with nothing dropped from the byte stream.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
from lxml import etree

from reviewlib.errors import InputError
from reviewlib.protocol import PACKAGE_DATA
from reviewlib.sources import pubmed_xml
from reviewlib.sources.pubmed_xml import SKIPPED_ELEMENTS, _SkipElements, read_pubmed_xml
from trickle import Trickle, read_all

DATA = Path(__file__).resolve().parent / "data"
EFETCH_FILES = sorted((DATA / "pubmed" / "efetch").rglob("*.xml")) + sorted((DATA / "eutils" / "efetch").rglob("*.xml"))
SNAPSHOT = PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz"


def _whole(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def _read_all(reader) -> bytes:
    chunks = []
    while True:
        chunk = reader.read(32768)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _parsed_without_skipping(monkeypatch, source) -> pd.DataFrame:
    with monkeypatch.context() as m:
        m.setattr(pubmed_xml, "_SkipElements", lambda raw: raw)
        return read_pubmed_xml(source)


def test_fixtures_hold_the_skipped_elements():
    """The comparison below has teeth: the real files carry most of what is dropped."""
    found = set()
    for path in EFETCH_FILES + [SNAPSHOT]:
        text = _whole(path)
        found |= {t for t in SKIPPED_ELEMENTS if f"<{t}".encode() in text}
    assert {"ReferenceList", "History", "ChemicalList", "AffiliationInfo", "CommentsCorrectionsList",
            "GrantList", "CitationSubset", "Pagination"} <= found


@pytest.mark.parametrize("path", EFETCH_FILES + [SNAPSHOT], ids=lambda p: p.name)
def test_same_records_as_with_nothing_skipped(path, monkeypatch):
    try:
        reference = _parsed_without_skipping(monkeypatch, path)
    except InputError:                         # a fixture that is not a PubmedArticleSet: refused the same way
        with pytest.raises(InputError):
            read_pubmed_xml(path)
        return
    frame = read_pubmed_xml(path)
    pd.testing.assert_frame_equal(frame, reference, check_exact=True)
    assert frame.attrs == reference.attrs
    if b"<History" in _whole(path):            # and the bytes lxml parses are fewer
        assert len(_read_all(pubmed_xml._open(path)[0])) < len(_whole(path))


def _old_mesh(heading_list):
    """The Python loop _mesh was before its XPaths (the reference)."""
    if heading_list is None:
        return [], []
    terms, major = [], []
    for heading in heading_list:
        name = None
        is_major = False
        for child in heading:
            if child.tag == "DescriptorName":
                name = child.text
                if child.get("MajorTopicYN") == "Y":
                    is_major = True
            elif child.tag == "QualifierName" and child.get("MajorTopicYN") == "Y":
                is_major = True
        if name:
            terms.append(name.strip())
            if is_major:
                major.append(name.strip())
    return terms, major


def test_mesh_xpaths_match_the_loop_on_every_heading_list():
    lists = 0
    for path in EFETCH_FILES + [SNAPSHOT]:
        try:
            root = etree.fromstring(_whole(path))
        except etree.XMLSyntaxError:
            continue
        for heading_list in root.iter("MeshHeadingList"):
            assert pubmed_xml._mesh(heading_list) == _old_mesh(heading_list)
            lists += 1
    assert lists > 50
    written = etree.fromstring(
        b"<MeshHeadingList><MeshHeading><DescriptorName MajorTopicYN='N'> Lupus </DescriptorName>"
        b"<QualifierName MajorTopicYN='Y'>therapy</QualifierName></MeshHeading>"
        b"<MeshHeading><DescriptorName MajorTopicYN='Y'>Humans</DescriptorName></MeshHeading>"
        b"<MeshHeading><DescriptorName MajorTopicYN='N'>Mice</DescriptorName>"
        b"<QualifierName MajorTopicYN='N'>genetics</QualifierName></MeshHeading>"
        b"<MeshHeading><DescriptorName/></MeshHeading></MeshHeadingList>")
    assert pubmed_xml._mesh(written) == _old_mesh(written) == (["Lupus", "Humans", "Mice"], ["Lupus", "Humans"])


NESTED = (b"<a><History><PubMedPubDate PubStatus=\"received\"><Year>2020</Year></PubMedPubDate>"
          b"<History>inner</History></History><b/><HistoryX>kept</HistoryX><History/>"
          b"<Author><LastName>Li</LastName><AffiliationInfo><Affiliation>Dept &lt;1&gt;</Affiliation>"
          b"</AffiliationInfo><Identifier Source=\"ORCID\">0000</Identifier><Identifiers>kept</Identifiers></Author>"
          b"<ChemicalList\n><Chemical>x</Chemical></ChemicalList>end</a>")
NESTED_KEPT = (b"<a><b/><HistoryX>kept</HistoryX><Author><LastName>Li</LastName><Identifiers>kept</Identifiers>"
               b"</Author>end</a>")


@pytest.mark.parametrize("sizes", [[1], [7, 13], [5000]])
@pytest.mark.parametrize("read_size", [1, 3, 32768, -1])
def test_skipped_elements_are_dropped_across_chunk_boundaries(sizes, read_size):
    assert read_all(_SkipElements(Trickle(NESTED, sizes)), read_size) == NESTED_KEPT


def test_file_cut_short_inside_a_skipped_element_is_input_error():
    raw = _whole(EFETCH_FILES[0]) if b"<History" in _whole(EFETCH_FILES[0]) else \
        next(_whole(p) for p in EFETCH_FILES if b"<History" in _whole(p))
    cut = raw[: raw.index(b"<History") + 40]
    with pytest.raises(InputError, match="cut short"):
        read_pubmed_xml(cut)


@pytest.mark.parametrize("path", EFETCH_FILES + [SNAPSHOT], ids=lambda p: p.name)
def test_dropping_in_memory_gives_the_bytes_the_stream_gives(path):
    """scale5a: a worker's piece is in memory, and one re.sub drops the skipped elements: the same
    bytes as the streaming reader on every real file."""
    whole = _whole(path)
    assert pubmed_xml._drop_skipped(whole) == _read_all(_SkipElements(__import__("io").BytesIO(whole)))


def test_nested_and_unclosed_skipped_elements():
    same = b"<a><History><x/><History>in</History><y/></History><b>kept</b></a>"
    # the outer History holds another: it stays (nothing in it is read), its inner one goes
    assert pubmed_xml._drop_skipped(same) == b"<a><History><x/><y/></History><b>kept</b></a>"
    assert pubmed_xml._drop_skipped(b"<a><History/><Pagination x='1/'>p</Pagination >z</a>") == b"<a>z</a>"
    # an element left open (a file cut short in it) stays, so the parser still sees the cut
    assert pubmed_xml._drop_skipped(b"<a><History><x>") == b"<a><History><x>"
    assert pubmed_xml._drop_skipped(b"<a><Historyx>t</Historyx><IssueX/></a>") == b"<a><Historyx>t</Historyx><IssueX/></a>"


def test_a_piece_whose_records_are_not_the_roots_children_is_streamed():
    """A record inside another element: the whole-tree reading of a piece cannot see it in the root's
    children; the streaming parse (which finds records at any depth) reads the piece instead."""
    whole = _whole(SNAPSHOT)
    start = whole.index(b"<PubmedArticle>", whole.index(b"</PubmedArticle>"))     # the second record
    end = whole.index(b"</PubmedArticle>", start) + len(b"</PubmedArticle>")
    wrapped = whole[:start] + b"<Wrapper>" + whole[start:end] + b"</Wrapper>" + whole[end:]
    for data, how in ((whole, "walk"), (wrapped, "__iter__")):
        records, groups = pubmed_xml._piece_records(data)
        assert records.__name__ == how                   # the tree's children, else the streaming parse
        streamed = pubmed_xml._Parse(data, log_deleted=False)
        assert list(records) == list(streamed) and groups == streamed.deleted_groups
