"""A snapshot or import far larger than memory allows is refused with its size and what to do (issue 15)."""
from __future__ import annotations

import gzip

import pytest

from reviewlib.protocol import PACKAGE_DATA, load_protocol
from reviewlib.retrieval import fetch
from reviewlib.screening import decisions
from reviewlib.sources import memory
from reviewlib.sources.readers import read_medline
from reviewlib.store import ReviewStore

SNAPSHOT = PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz"


def test_snapshot_larger_than_memory_is_refused_before_anything_is_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("REVIEWLIB_MEMORY_LIMIT", "2MB")
    store = ReviewStore(tmp_path / "review.sqlite")
    with pytest.raises(memory.TooLargeError) as info:
        fetch.load_snapshot(SNAPSHOT, store)
    err = info.value
    message = str(err)
    assert "\n" not in message
    assert str(SNAPSHOT) in message and "2.0 MB is available" in message
    assert "split it into files" in message and "more memory" in message
    content = len(gzip.decompress(SNAPSHOT.read_bytes()))
    assert err.uncompressed == content and err.size == SNAPSHOT.stat().st_size
    assert err.needed == int(content * memory.BYTES_PER_BYTE) > err.available == 2_000_000
    assert store.searches().empty and store.records().empty          # nothing half-loaded
    assert isinstance(err, fetch.InputError) and err.exit_code == 2  # the CLI's one line, non-zero exit


def test_snapshot_within_memory_loads_as_before(tmp_path, monkeypatch):
    monkeypatch.setenv("REVIEWLIB_MEMORY_LIMIT", "24GB")
    store = ReviewStore(tmp_path / "review.sqlite")
    result = fetch.run_search(load_protocol("car-t-autoimmune"), store, offline=True)
    assert len(store.records()) == 418
    cached = list((tmp_path / "cache").glob("snapshot-*.xml.gz"))
    assert len(cached) == 1 and cached[0].read_bytes() == SNAPSHOT.read_bytes()
    assert fetch.load_snapshot(SNAPSHOT, store).search_id == result.search_id    # hash unchanged: reused


def test_imports_larger_than_memory_are_refused(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("REVIEWLIB_MEMORY_LIMIT", "5kB")     # 1.2 kB of MEDLINE needs about 7 kB
    with pytest.raises(memory.TooLargeError, match="MEDLINE file .* too large"):
        read_medline(data_dir / "pubmed" / "medline" / "pubmed_result1.txt")
    csv = tmp_path / "bob.csv"
    csv.write_text("record_id,decision\n" + "pmid:1,include\n" * 2000)
    with pytest.raises(memory.TooLargeError, match="decisions CSV"):
        decisions.import_csv(ReviewStore(tmp_path / "review.sqlite"), csv)


def test_sizes_and_their_units():
    assert memory.parse_size("2GB") == 2_000_000_000 and memory.parse_size("512 MiB") == 512 * 2**20
    assert memory.parse_size("1000") == 1000
    with pytest.raises(memory.InputError, match="REVIEWLIB_MEMORY_LIMIT"):
        memory.parse_size("lots")
    assert memory.human(2_500_000_000) == "2.5 GB"
