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
