"""Figures a new reader can read: design colours told apart, the progress curve explained, absence said."""
from __future__ import annotations

import matplotlib.text
import pandas as pd

from reviewlib.records import conform
from reviewlib.report import figures
from reviewlib.store import ReviewStore


def _luminance(hex_colour: str) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""
    rgb = [int(hex_colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_case_report_and_randomised_trial_differ_in_lightness_not_only_hue():
    colours = figures.design_colors(["case report", "randomised controlled trial", "case series", "phase 1"])
    okabe = set(figures.OKABE_ITO.values())
    assert set(colours.values()) <= okabe                       # still the colour-blind-safe palette
    # lightness survives every colour-vision deficiency: require WCAG's 3:1 for graphics between the two ends
    # (the former pair, Okabe-Ito orange and vermillion, is 1.7:1)
    assert _contrast(colours["case report"], colours["randomised controlled trial"]) >= 3
    assert _contrast(figures.OKABE_ITO["orange"], figures.OKABE_ITO["vermillion"]) < 3


def _texts(fig, gid):
    fig.canvas.draw()
    return [t.get_text().replace("\n", " ") for t in fig.findobj(matplotlib.text.Text) if t.get_gid() == gid]


def _store(tmp_path, decisions):
    store = ReviewStore(tmp_path / "review.sqlite")
    store.add_records(conform(pd.DataFrame([{"pmid": str(i), "title": f"t{i}", "abstract": "a", "year": 2024}
                                            for i in range(1, len(decisions) + 1)])))
    for i, d in enumerate(decisions, start=1):
        store.append_decision(f"pmid:{i}", "ana", "title-abstract", d)
    return store


def test_a_store_curve_below_the_random_line_says_why(tmp_path):
    late = _store(tmp_path, ["exclude"] * 8 + ["include"] * 2)
    foot = " ".join(_texts(figures.screening_progress(store=late), "reviewlib-foot"))
    assert foot.startswith("The curve runs below the dashed random-order line because records are counted in the order")
    assert "not how well it was prioritised" in foot


def test_a_store_curve_above_the_line_still_says_what_order_it_follows(tmp_path):
    early = _store(tmp_path, ["include"] * 2 + ["exclude"] * 8)
    foot = " ".join(_texts(figures.screening_progress(store=early), "reviewlib-foot"))
    assert foot.startswith("Records are counted in the order they were first decided") and "below" not in foot


def test_an_absent_figure_says_why(tmp_path):
    fig = figures.absent_figure("Recall curve in prioritised order: not drawn in this run",
                                "3 of 398 records have no decision yet.", notice="Synthetic")
    assert _texts(fig, "reviewlib-absent-reason") == ["3 of 398 records have no decision yet."]
    assert fig._suptitle.get_text().replace("\n", " ") == "Recall curve in prioritised order: not drawn in this run"
    paths = figures.save(fig, tmp_path, "recall_curve")
    assert paths["png"].read_bytes().startswith(b"\x89PNG")


def test_the_index_caption_of_the_progress_curve_explains_the_random_line():
    from reviewlib.protocol import load_protocol
    from reviewlib.report.notebook import figure_captions
    caption = figure_captions(load_protocol("car-t-autoimmune"))["screening_progress"]
    assert "below the random-order line" in caption and "not how well it was prioritised" in caption
