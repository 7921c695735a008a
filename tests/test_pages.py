"""Pages from templates: every value a page shows is escaped by jinja2's autoescape (issue 8, issue 11 §4)."""
from __future__ import annotations

from lxml import html as lhtml

from reviewlib.report import living, pages
from reviewlib.report.notebook import injected_scripts

XSS = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


def _manifest(**extra):
    m = {"run_id": "r2", "status": "complete", "title": f"Review {XSS}", "question": f"Q {IMG}",
         "notice": f"Notice {XSS}", "mode": "offline", "synthetic": True, "query": f"car {XSS}",
         "protocol": {"path": f"/p/{IMG}.yaml", "sha256": "abc"}, "versions": {"reviewlib": "0.1.0"},
         "pmids": {"n_matched": 3, "n_included": 1}, "warnings": [f"warn {XSS}"],
         "counts": {"screened": 3, "prisma": {"excluded_screening": 2,
                                               "excluded_screening_reasons": {f"reason {XSS}": 2},
                                               "notes": [f"note {IMG}"]}},
         "figure_captions": {"evidence_map": f"Map {XSS}"}}
    m.update(extra)
    return m


def test_index_escapes_record_protocol_and_reviewer_text(tmp_path):
    changes = living.Changes(previous_run="r1", gone=[f"9{XSS}"], dropped_included=[f"9{XSS}"],
                             dropped_causes={f"9{XSS}": f"excluded at full text by {IMG}"})
    path = pages.write_index(tmp_path / "index.html", _manifest(living=changes.to_dict()),
                             pages=[(f"Page {XSS}", "01-search.html")],
                             figures=["figures/evidence_map.png"], changes=changes)
    source = path.read_bytes()
    assert injected_scripts(source, "alert(1)") == [] and injected_scripts(source, "alert(2)") == []
    doc = lhtml.document_fromstring(source)
    text = doc.text_content()
    for shown in (f"Review {XSS}", f"Notice {XSS}", f"reason {XSS}: 2", f"warn {XSS}", f"Map {XSS}",
                  f"excluded at full text by {IMG}", f"note {IMG}"):
        assert shown in text, shown  # shown as text, not interpreted
    assert not doc.xpath("//img[@onerror]")
    assert len(doc.find_class("reviewlib-notice")) == 1 and len(doc.find_class("reviewlib-alarm")) == 1


def test_header_and_snippets_escape_their_values():
    header = pages.page_header(notice=XSS, warning=IMG, nav=[(XSS, '"><script>alert(3)</script>')], current="x")
    assert "<script>" not in header and "onerror=" not in header.replace("onerror=&#34;", "")
    assert injected_scripts(f"<html><body>{header}</body></html>", "alert(3)") == []
    assert pages.snippet("items", [XSS]) == "<ul><li>&lt;script&gt;alert(1)&lt;/script&gt;</li></ul>"


def test_a_value_built_as_markup_keeps_its_markup_and_escapes_its_parts(tmp_path):
    path = pages.write_index(tmp_path / "index.html", _manifest(), pages=[])
    doc = lhtml.document_fromstring(path.read_bytes())
    code = doc.find_class("query")[0]
    assert code.tag == "code" and code.text_content() == f"car {XSS}"


def test_figures_are_embedded_as_the_same_pixels_in_fewer_bytes():
    """A forest-plot-like figure: lossless WebP of the saved PNG, pixel for pixel, and smaller; bytes that are
    no image are embedded as given."""
    import io

    import numpy as np
    from matplotlib.figure import Figure
    from PIL import Image

    from reviewlib.report.notebook import embeddable_image

    fig = Figure(figsize=(8, 12), dpi=110)
    ax = fig.add_subplot()
    for i in range(80):
        ax.plot([0.2 + i % 7 / 20, 0.8], [i, i], color="#0072B2")
        ax.text(0, i, f"Study {i} 2024  {i % 9}/{i % 13 + 9}", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="white")
    png = buffer.getvalue()
    mime, data = embeddable_image(png)
    assert mime == "image/webp" and len(data) < 0.7 * len(png)
    with Image.open(io.BytesIO(png)) as a, Image.open(io.BytesIO(data)) as b:
        assert a.size == b.size
        assert np.array_equal(np.asarray(a.convert("RGBA")), np.asarray(b.convert("RGBA")))
    assert embeddable_image(b"not an image") == ("image/png", b"not an image")
    html = pages.snippet("image", "QUJD", 'alt "x" <b>', "image/webp")
    assert html.startswith('<img src="data:image/webp;base64,QUJD"') and "&lt;b&gt;" in html
