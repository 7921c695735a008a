"""Shared fixtures.  Test data lives in tests/data (see tests/data/README.md for sources)."""
from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_dir() -> Path:
    """The folder of test fixtures copied from real sources."""
    return DATA


@pytest.fixture
def eutils_server():
    """A local replay of NCBI's E-utilities serving the real articles of tests/data/eutils/.

    See tests/eutils_server.py: point a client at ``eutils_server.url`` (or set
    REVIEWLIB_EUTILS_URL to it); queue faults with ``add_fault``; read ``log``.
    """
    from eutils_server import ReplayServer

    with ReplayServer() as server:
        yield server


@pytest.fixture
def ncbi_env(monkeypatch, eutils_server):
    """Environment of a polite online client pointed at the replay server (no API key)."""
    monkeypatch.setenv("REVIEWLIB_EUTILS_URL", eutils_server.url)
    monkeypatch.setenv("NCBI_EMAIL", "reviewer@example.org")
    monkeypatch.delenv("NCBI_API_KEY", raising=False)
    return eutils_server


@pytest.fixture(autouse=True, scope="session")
def _private_ncbi_rate_file(tmp_path_factory):
    """The tests' processes share their NCBI request times through a file of their own, not the user's."""
    patch = pytest.MonkeyPatch()
    patch.setenv("REVIEWLIB_RATE_FILE", str(tmp_path_factory.mktemp("ncbi-rate") / "rate"))
    yield
    patch.undo()
