"""The figure cache (issue 15): a figure of the same data drawn by the same code is copied, not drawn
again; one changed input, a changed style or an incomplete entry draws it again."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from reviewlib.evidence.synthesis import pool_ratios
from reviewlib.report import figure_cache
from reviewlib.report import synthesis_figures as sf
from reviewlib.report.synthesis_report import write_png

BCG = pd.read_csv(Path(__file__).parent / "data" / "synthesis" / "dat_bcg.csv")


def _bcg(frame: pd.DataFrame = BCG):
    return pool_ratios(frame.tpos, frame.tpos + frame.tneg, frame.cpos, frame.cpos + frame.cneg,
                       labels=frame.author + " " + frame.year.astype(str), measure="RR", method="REML")


class Drawer:
    """The real forest plot, counting how often it is drawn."""

    def __init__(self, result):
        self.result, self.calls = result, 0

    def __call__(self):
        self.calls += 1
        return sf.forest_plot(self.result, outcome="Tuberculosis")


def _show(drawer, run: Path, cache: Path, *data):
    key = figure_cache.figure_key("forest_tb", *data)
    return figure_cache.show_cached(drawer, run, "forest_tb", key=key, cache_dir=cache, save=write_png,
                                    formats=("png",))


def test_same_data_is_copied_not_drawn_and_the_bytes_are_the_drawn_ones(tmp_path):
    res = _bcg()
    first = Drawer(res)
    drawn = _show(first, tmp_path / "run1", tmp_path / "cache", res, "Tuberculosis")
    assert first.calls == 1
    again = Drawer(_bcg())                     # a rerun: the same data pooled again
    copied = _show(again, tmp_path / "run2", tmp_path / "cache", again.result, "Tuberculosis")
    assert again.calls == 0
    assert copied["png"].read_bytes() == drawn["png"].read_bytes()
    assert copied["png"].parent == tmp_path / "run2"


def test_one_changed_study_draws_again(tmp_path):
    res = _bcg()
    _show(Drawer(res), tmp_path / "run1", tmp_path / "cache", res, "Tuberculosis")
    changed = BCG.copy()
    changed.loc[0, "tpos"] += 1                # one event more in one study
    other = Drawer(_bcg(changed))
    out = _show(other, tmp_path / "run2", tmp_path / "cache", other.result, "Tuberculosis")
    assert other.calls == 1
    assert out["png"].read_bytes() != (tmp_path / "run1" / "forest_tb.png").read_bytes()


def test_a_changed_label_or_style_is_a_different_key():
    res = _bcg()
    key = figure_cache.figure_key("forest_tb", res, "Tuberculosis")
    assert figure_cache.figure_key("forest_tb", res, "TB") != key
    with matplotlib.rc_context({"font.size": 13}):
        assert figure_cache.figure_key("forest_tb", res, "Tuberculosis") != key
    assert figure_cache.figure_key("forest_tb", res, "Tuberculosis") == key


def test_an_incomplete_or_foreign_entry_is_not_served(tmp_path):
    res = _bcg()
    cache = tmp_path / "cache"
    _show(Drawer(res), tmp_path / "run1", cache, res, "Tuberculosis")
    key = figure_cache.figure_key("forest_tb", res, "Tuberculosis")
    meta = cache / "figures" / f"{key}.json"
    meta.unlink()                              # a crash before the entry was complete
    redraw = Drawer(res)
    _show(redraw, tmp_path / "run2", cache, res, "Tuberculosis")
    assert redraw.calls == 1 and meta.is_file()
    meta.write_text(json.dumps({"key": "0" * 64, "formats": ["png"], "alt": ""}))
    foreign = Drawer(res)
    _show(foreign, tmp_path / "run3", cache, res, "Tuberculosis")
    assert foreign.calls == 1


def test_data_that_cannot_be_keyed_is_drawn_without_the_cache(tmp_path):
    assert figure_cache.figure_key("odd", object()) is None
    res = _bcg()
    drawer = Drawer(res)
    figure_cache.show_cached(drawer, tmp_path / "run", "forest_tb", key=None, cache_dir=tmp_path / "cache",
                             save=write_png, formats=("png",))
    assert drawer.calls == 1 and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("a, b", [
    (pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [1.0, 2.0]})),         # dtype
    (pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"y": [1, 2]})),             # column name
    (pd.DataFrame({"x": ["a; b"]}), pd.DataFrame({"x": [["a", "b"]]})),     # a list is not its joined text
    ({"a": 1}, {"a": "1"}),
    (float("nan"), None),
])
def test_canonical_tells_values_apart(a, b):
    assert figure_cache.canonical(a) != figure_cache.canonical(b)


def test_the_page_embeds_the_same_image_from_the_cache(tmp_path, monkeypatch):
    """The shown image (lossless WebP of the PNG) is kept with the entry and is the one drawn first."""
    import base64

    import IPython.display

    from reviewlib.report.notebook import embeddable_image

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj.data))
    res = _bcg()
    drawn = _show(Drawer(res), tmp_path / "run1", tmp_path / "cache", res, "Tuberculosis")
    again = Drawer(res)
    _show(again, tmp_path / "run2", tmp_path / "cache", res, "Tuberculosis")
    assert again.calls == 0 and len(shown) == 2
    mime, payload = embeddable_image(drawn["png"].read_bytes())
    assert base64.b64encode(payload).decode() in shown[1] and f"data:{mime}" in shown[1]
    assert shown[0] == shown[1]


def test_registry_figures_of_the_real_snapshot_are_reused_until_a_trial_changes(tmp_path, monkeypatch):
    """The 315 real ClinicalTrials.gov trials of the default review (2026-08-22 snapshot)."""
    from reviewlib.evidence import registry as evreg
    from reviewlib.protocol import PACKAGE_DATA, load_protocol
    from reviewlib.report import registry as repreg
    from reviewlib.sources.ctgov import read_ctgov

    protocol = load_protocol(Path(__file__).resolve().parent.parent / "notebooks" / "car-t-autoimmune.yaml")
    table = evreg.trial_table(read_ctgov(PACKAGE_DATA / "car-t-autoimmune-registry-2026-08-22.json.gz"), protocol)
    drawn = []
    for name in ("start_years_figure", "enrollment_figure"):
        real = getattr(repreg, name)
        monkeypatch.setattr(repreg, name, lambda *a, _real=real, _name=name, **k: (drawn.append(_name), _real(*a, **k))[1])
    cache = tmp_path / "cache"
    names = repreg.show_registry_figures(table, protocol, tmp_path / "run1", cache_dir=cache)
    assert len(names) == 2 and len(drawn) == 2
    repreg.show_registry_figures(table, protocol, tmp_path / "run2", cache_dir=cache)
    assert len(drawn) == 2                                   # nothing drawn again
    for name in names:
        for fmt in ("png", "svg"):
            assert (tmp_path / "run2" / f"{name}.{fmt}").read_bytes() == (tmp_path / "run1" / f"{name}.{fmt}").read_bytes()
    changed = table.copy()
    changed.loc[0, "enrollment"] = 5000                      # one trial's planned enrollment
    repreg.show_registry_figures(changed, protocol, tmp_path / "run3", cache_dir=cache)
    assert len(drawn) == 4
    enrollment = next(s["name"] for s in repreg.figure_specs(protocol) if s["kind"] == "enrollment")
    assert (tmp_path / "run3" / f"{enrollment}.png").read_bytes() != (tmp_path / "run1" / f"{enrollment}.png").read_bytes()
