"""Pages rendered while the later notebooks run (report.pages_ahead, issue 15): what publishing writes is
the page render_notebook writes, byte for byte, and a page whose notebook or warning changed is rendered anew.

Real nbconvert renders of notebooks/02-screen.ipynb."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from reviewlib.report import pages
from reviewlib.report.pages_ahead import PagesAhead

OPTIONS = {"notice": "SYNTHETIC demo data", "nav": [("Index", "index.html"), ("2. Screening", "02-screen.html")],
           "title": "CAR-T: 2. Screening"}


NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "02-screen.ipynb"


@pytest.fixture
def notebook(tmp_path):
    copy = tmp_path / "02-screen.ipynb"
    shutil.copyfile(NOTEBOOK, copy)
    return copy


def test_the_page_rendered_ahead_is_the_page_rendered_at_the_end(notebook, tmp_path, monkeypatch):
    ahead = PagesAhead()
    ahead.submit(notebook, tmp_path / "02-screen.html", **OPTIONS)
    ahead._ahead[tmp_path / "02-screen.html"][2].result()                  # rendered in the thread
    rendered_now = []
    monkeypatch.setattr("reviewlib.report.pages_ahead.render_notebook",
                        lambda *a, **k: rendered_now.append(a) or pytest.fail("rendered again"))
    page = ahead.write(notebook, tmp_path / "02-screen.html", **OPTIONS)
    ahead.close()
    assert rendered_now == []
    written = page.read_bytes()
    assert written == pages.render_notebook(notebook, tmp_path / "direct" / "02-screen.html", **OPTIONS).read_bytes()
    assert b"CAR-T: 2. Screening" in written and b"SYNTHETIC demo data" in written


def test_a_warning_known_only_at_the_end_renders_the_page_anew(notebook, tmp_path):
    ahead = PagesAhead()
    ahead.submit(notebook, tmp_path / "02-screen.html", **OPTIONS)
    page = ahead.write(notebook, tmp_path / "02-screen.html", warning="3 included records are gone", **OPTIONS)
    ahead.close()
    assert "3 included records are gone" in page.read_text()


def test_a_notebook_changed_after_rendering_ahead_renders_anew(notebook, tmp_path):
    ahead = PagesAhead()
    ahead.submit(notebook, tmp_path / "02-screen.html", **OPTIONS)
    ahead._ahead[tmp_path / "02-screen.html"][2].result()
    time.sleep(0.01)
    notebook.write_text(notebook.read_text().replace("Decisions and agreement", "Decisions and agreement (edited)"))
    page = ahead.write(notebook, tmp_path / "02-screen.html", **OPTIONS)
    ahead.close()
    assert "Decisions and agreement (edited)" in page.read_text()


def test_nothing_is_written_before_publishing(notebook, tmp_path):
    ahead = PagesAhead()
    ahead.submit(notebook, tmp_path / "02-screen.html", **OPTIONS)
    ahead._ahead[tmp_path / "02-screen.html"][2].result()
    assert not (tmp_path / "02-screen.html").exists()                     # a failed run shows no page
    ahead.close()
    assert not (tmp_path / "02-screen.html").exists()
