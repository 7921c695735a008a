"""HTML pages and index: offline-safe, untrusted text escaped, notice shown, secrets kept out.

A small notebook that displays an untrusted PubMed title through reviewlib's helpers is executed
for real (nbclient, one kernel for the module), then rendered by report.render_notebook.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from lxml import html as lhtml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from reviewlib.report import living
from reviewlib.report import notebook as report

XSS_TITLE = "CAR-T in lupus <script>alert(1)</script> & <img src=x onerror=alert(2)>"
NOTICE = "SYNTHETIC DEMO DATA: not real publications."


@pytest.fixture(scope="module")
def executed_notebook(tmp_path_factory) -> Path:
    from nbclient import NotebookClient
    folder = tmp_path_factory.mktemp("nb")
    cells = [
        new_markdown_cell("# Search\n\nWhat you are looking at."),
        new_code_cell("import pandas as pd, matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                      "from reviewlib import report\nreport.init_tables()"),
        new_code_cell(f"title = {XSS_TITLE!r}\n"
                      "records = pd.DataFrame({'pmid': ['1'], 'title': [title], 'year': [2024]})\n"
                      "report.show_table(records, caption='records')"),
        new_code_cell("report.say('First title: {t}', t=title)"),
        new_code_cell("report.show_facts({'title': title}, title='facts')"),
        new_code_cell("fig, ax = plt.subplots(figsize=(2, 2)); ax.plot([1, 2]); report.show_figure(fig)"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    path = folder / "01-search.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def page(executed_notebook) -> Path:
    return report.render_notebook(executed_notebook, executed_notebook.with_suffix(".html"), notice=NOTICE,
                                  nav=[("Index", "index.html"), ("1. Search", "01-search.html")],
                                  warning="1 included study dropped out", title="Search")


def test_page_has_no_code_and_no_prompts(page, executed_notebook):
    text = page.read_text(encoding="utf-8")
    assert "report.init_tables()" not in text and "In&nbsp;[" not in text
    assert "What you are looking at." in text


def test_page_loads_nothing_from_another_host(page):
    assert report.external_references(page) == []


def test_the_default_nbconvert_page_would_fail_the_offline_check(executed_notebook):
    """Positive control: nbconvert's stock lab template pulls require.js and MathJax from a CDN."""
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(executed_notebook, 4))
    found = report.external_references(body)
    assert any("require" in f for f in found) and any("mathjax" in f.lower() for f in found)


def test_untrusted_title_is_text_never_a_script(page):
    assert report.injected_scripts(page, "alert(1)") == []
    assert report.injected_scripts(page, "alert(2)") == []
    doc = lhtml.document_fromstring(page.read_bytes())
    assert not doc.xpath("//img[@src='x']")
    shown = [el for el in doc.iter() if el.tag not in ("script", "style") and el.text and "<script>alert(1)" in el.text]
    assert shown, "the title should be shown as text somewhere on the page"


def test_injection_check_catches_an_unescaped_title():
    bad = f"<html><body><h1>{XSS_TITLE}</h1></body></html>"
    assert report.injected_scripts(bad, "alert(1)") == ["alert(1)"]
    assert report.injected_scripts(bad, "alert(2)")


def test_notice_and_warning_banners_at_the_top(page):
    doc = lhtml.document_fromstring(page.read_bytes())
    notice = doc.get_element_by_id("reviewlib-synthetic-notice")
    assert notice.text_content() == NOTICE
    first = doc.body.xpath(".//header")[0]
    assert first.get_element_by_id("reviewlib-living-alarm") is not None
    assert [a.get("href") for a in first.iter("a")] == ["index.html", "01-search.html"]


def test_real_data_page_has_no_notice(executed_notebook, tmp_path):
    out = report.render_notebook(executed_notebook, tmp_path / "real.html")
    assert "reviewlib-synthetic-notice" not in out.read_text(encoding="utf-8")


def test_external_references_finds_each_kind_of_load():
    doc = """<html><head><script src="https://cdn.example/x.js"></script>
    <link rel="stylesheet" href="http://cdn.example/x.css"><style>@import "https://f.example/a.css";</style>
    </head><body><img src="//cdn.example/a.png"><div style="background:url(https://x.example/b.png)"></div>
    <script type="module">await import("https://esm.example/m.js")</script>
    <a href="https://pubmed.ncbi.nlm.nih.gov/1/">a link is not a load</a><img src="figures/prisma.png"></body></html>"""
    found = report.external_references(doc)
    assert len(found) == 6
    assert not any("pubmed" in f or "prisma.png" in f for f in found)


def test_secrets_are_found_and_scrubbed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "nb.ipynb").write_bytes(b'{"url": "https://x/?api_key=sentinel-KEY-123abc"}')
    (tmp_path / "clean.html").write_text("nothing here")
    assert report.find_secrets(tmp_path, ["sentinel-KEY-123abc", None]) == [tmp_path / "a" / "nb.ipynb"]
    assert report.scrub_secrets(tmp_path, ["sentinel-KEY-123abc"]) == [tmp_path / "a" / "nb.ipynb"]
    assert report.find_secrets(tmp_path, ["sentinel-KEY-123abc"]) == []
    assert b"[REDACTED]" in (tmp_path / "a" / "nb.ipynb").read_bytes()
    assert report.find_secrets(tmp_path, ["abc"]) == []  # too short to search for


def _manifest(**extra):
    m = {"review": "car-t", "title": "CAR-T <b>review</b>", "run_id": "20260101T000000Z", "status": "complete",
         "mode": "offline", "synthetic": True, "notice": NOTICE, "query": 'lupus[tiab] AND "CAR T"[tiab] <x>',
         "protocol": {"path": "p.yaml", "sha256": "abc"}, "counts": {"identified": 3, "included": 1},
         "pmids": {"n_matched": 3, "n_included": 1}, "versions": {"reviewlib": "0.1.0"}}
    m.update(extra)
    return m


def test_index_escapes_manifest_text_and_shows_figures(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "prisma.png").write_bytes(b"png")
    changes = living.compare(living.RunSets(matched=["1", "2"], included=["2"]),
                             living.RunSets(matched=["1", "3"], included=[]), previous_run="old")
    index = report.write_index(tmp_path / "index.html", _manifest(living=changes.to_dict()),
                               pages=[("1. Search", "01-search.html")], figures=["figures/prisma.png"],
                               changes=changes)
    doc = lhtml.document_fromstring(index.read_bytes())
    assert not doc.xpath("//b")  # the title's <b> is text
    assert doc.get_element_by_id("reviewlib-synthetic-notice").text_content() == NOTICE
    assert "dropped out" in doc.get_element_by_id("reviewlib-living-alarm").text_content()
    assert [i.get("src") for i in doc.iter("img")] == ["figures/prisma.png"]
    assert 'lupus[tiab] AND "CAR T"[tiab] <x>' in doc.text_content()
    assert report.external_references(index) == []


def test_index_for_real_data_has_no_notice(tmp_path):
    index = report.write_index(tmp_path / "index.html", _manifest(synthetic=False, notice=None, mode="online"),
                               pages=[])
    assert "reviewlib-synthetic-notice" not in index.read_text(encoding="utf-8")


def test_index_lists_exclusions_with_reasons_at_each_stage(tmp_path):
    counts = {"identified": 10, "duplicates_removed": 1, "after_deduplication": 9, "screened": 9,
              "included_title_abstract": 5, "assessed_full_text": 5, "excluded_full_text": 2,
              "excluded_full_text_reasons": {"publication-type": 1, "<preclinical>": 1},
              "final_stage": "full-text", "included": 3, "extracted": 3,
              "prisma": {"excluded_screening": 4, "excluded_screening_reasons": {"wrong-population": 4}}}
    rows = report.count_rows(counts)
    labels = [label for label, _ in rows]
    assert labels == ["identified", "duplicates removed", "after deduplication", "screened",
                      "excluded at title-abstract", "included at title-abstract", "reports assessed at full text",
                      "excluded at full text", "included set decided at", "studies included", "extracted"]
    values = dict(rows)
    assert values["excluded at title-abstract"] == "4 (wrong-population: 4)"
    assert values["excluded at full text"] == "2 (publication-type: 1, &lt;preclinical&gt;: 1)"
    index = report.write_index(tmp_path / "index.html", _manifest(counts=counts), pages=[])
    text = lhtml.document_fromstring(index.read_bytes()).text_content()
    assert "excluded at full text2 (publication-type: 1, <preclinical>: 1)" in text.replace("\n", "")


def test_full_text_tables_label_reasons_from_the_protocol():
    from reviewlib.protocol import load_protocol
    import pandas as pd
    protocol = load_protocol("car-t-autoimmune")
    a = living.FullTextAssessment(stage="full-text", sought=4, assessed=3, included=1, excluded=2,
                                  reasons={"publication-type": 1, "preclinical": 1},
                                  excluded_reports={"pmid:7": "publication-type", "pmid:9": "preclinical"})
    by_reason = report.full_text_exclusions(a, protocol)
    assert list(by_reason["reason"]) == ["publication-type", "preclinical"]
    assert list(by_reason["reports"]) == [1, 1]
    assert by_reason["label"].iloc[1] == report.reason_labels(protocol)["preclinical"] != "preclinical"
    records = pd.DataFrame({"record_id": ["pmid:7", "pmid:9"], "title": ["A review", "Mice"]})
    listed = report.full_text_excluded_reports(a, records, protocol)
    assert listed.to_dict("list") == {"PMID": ["7", "9"], "title": ["A review", "Mice"],
                                      "reason": list(by_reason["label"])}
    facts = report.full_text_facts(a)
    assert facts["not assessed yet"] == 1 and facts["included set decided at"] == "full-text"
