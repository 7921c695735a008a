"""Figures: every number and label drawn comes from the data given (a real store or an evidence table)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import matplotlib.text
import pandas as pd
import pytest
from matplotlib.figure import Figure

from reviewlib.report import figures as plots
from reviewlib.report import prisma
from reviewlib.errors import InputError
from reviewlib.records import conform
from reviewlib.store import ReviewStore
from reviewlib.protocol import PACKAGE_DATA, load_protocol
from reviewlib.evidence.extraction import SchemaRef, load_schema

TRUTH = PACKAGE_DATA / "car-t-autoimmune-truth.csv"
SNAPSHOT = TRUTH.with_name("car-t-autoimmune-snapshot.xml.gz")
NOTICE = "Synthetic demo data: not real patients"
#: The default protocol's evidence map and regimen figure (its report: figures entries), as the tests draw them.
MAP = {"rows": "disease", "columns": "target", "item": "{column}-targeted cells", "cells_name": "disease–target"}
REGIMEN = {"label": "lymphodepletion regimen", "noun": "regimen"}
SCHEMA = load_schema(load_protocol("car-t-autoimmune"))


def carry(frame: pd.DataFrame) -> pd.DataFrame:
    """A hand-built table carrying the default protocol's schema, as study_table's tables do (roles, figures)."""
    frame.attrs["extraction_schema"] = SchemaRef(SCHEMA)
    return frame


def texts(fig: Figure) -> list[str]:
    """Every text drawn on the figure (titles, annotations, tick labels, legends)."""
    fig.canvas.draw()
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def joined(fig: Figure) -> str:
    return " | ".join(t.replace("\n", " ") for t in texts(fig))


def by_gid(fig: Figure, gid: str) -> list[str]:
    fig.canvas.draw()
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_gid() == gid]


@pytest.fixture
def small_table() -> pd.DataFrame:
    """An evidence table as study_table makes it: '; '-joined multi-valued cells, gaps and missing values."""
    return carry(pd.DataFrame([
        {"disease": "SLE", "target": "CD19", "design": "case report", "n_patients": 1,
         "lymphodepletion": "Flu/Cy", "year": 2021},
        {"disease": "SLE", "target": "CD19", "design": "phase 1", "n_patients": 14,
         "lymphodepletion": "Flu/Cy", "year": 2024},
        {"disease": "SLE; systemic sclerosis", "target": "CD19", "design": "phase 1/2", "n_patients": 8,
         "lymphodepletion": "Flu/Cy; Cy", "year": 2024},
        {"disease": "myasthenia gravis", "target": "BCMA", "design": "randomised controlled",
         "n_patients": 36, "lymphodepletion": "none", "year": 2025, "controlled": "yes"},
        {"disease": "systemic sclerosis", "target": "CD19", "design": "case series", "n_patients": 3,
         "lymphodepletion": None, "year": 2022},
        {"disease": "pemphigus vulgaris", "target": "DSG3-CAAR", "design": "phase 1", "n_patients": None,
         "lymphodepletion": "not reported", "year": 2024},
    ]))


@pytest.fixture
def truth_table() -> pd.DataFrame:
    """The synthetic demo's truth sidecar: relevant clinical studies, with years from the snapshot itself."""
    assert TRUTH.exists(), "the packaged demo truth sidecar is part of the repository"
    truth = pd.read_csv(TRUTH, dtype=str)
    table = truth[(truth["relevant"] == "1") & (truth["kind"] == "clinical")].copy()
    from reviewlib.sources.pubmed_xml import read_pubmed_xml
    years = read_pubmed_xml(SNAPSHOT)[["pmid", "year"]]
    return carry(table.merge(years, on="pmid", how="left"))


# -- PRISMA ---------------------------------------------------------------
@pytest.fixture
def screened_store(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    pm = store.add_search("pubmed", "car t AND lupus")
    store.add_records(conform(pd.DataFrame({"pmid": [str(i) for i in range(1, 21)],
                                            "title": [f"t{i}" for i in range(1, 21)]})), search_id=pm)
    ris = store.add_search("ris:scopus.ris")
    store.add_records(conform(pd.DataFrame({"pmid": ["19", "20", "21"], "title": ["t19", "t20", "t21"]})),
                      search_id=ris)
    for i in range(1, 22):
        decision, reason = ("include", None) if i <= 6 else ("exclude", "wrong-population" if i % 2 else "preclinical")
        store.append_decision(f"pmid:{i}", "rules", "title-abstract", decision, reason, kind="rule")
    store.append_decision("pmid:7", "ana", "title-abstract", "include")  # a human overrides the rule
    store.append_decision("pmid:1", "ana", "full-text", "exclude", "no-data")
    for i in range(2, 7):
        store.append_decision(f"pmid:{i}", "ana", "full-text", "include")
    yield store
    store.close()


def test_prisma_flow_draws_the_counts_from_the_store(screened_store):
    counts = prisma.counts(screened_store)
    assert (counts.identified_total, counts.duplicates_removed, counts.screened) == (23, 2, 21)
    fig = plots.prisma_flow(counts, reason_labels={"wrong-population": "Not autoimmune disease"}, notice=NOTICE)
    assert isinstance(fig, Figure)
    text = joined(fig)
    for expected in ("PubMed (n = 20)", "RIS file: scopus.ris (n = 3)", "Total (n = 23)",
                     "Duplicate records removed (n = 2)", "Records screened", f"(n = {counts.screened})",
                     f"Records excluded (n = {counts.excluded_screening})",
                     f"Not autoimmune disease (n = {counts.excluded_screening_reasons['wrong-population']})",
                     f"Preclinical (n = {counts.excluded_screening_reasons['preclinical']})",
                     f"Reports sought for retrieval (n = {counts.sought})",
                     "Reports excluded (n = 1)", "No data (n = 1)", f"(n = {counts.included})",
                     "Identification", "Screening", "Included"):
        assert expected in text, expected
    assert counts.sought == 7 and counts.included == 5
    assert by_gid(fig, "reviewlib-notice") == [NOTICE]
    assert fig._suptitle.get_text().startswith(f"PRISMA 2020 flow diagram: {counts.included} studies included")


def test_figures_show_as_png_in_jupyter_without_pyplot(small_table):
    fig = plots.sample_size_distribution(small_table)
    png = fig._repr_png_()  # what IPython's display() calls
    assert png.startswith(b"\x89PNG") and len(png) > 5_000


def test_prisma_flow_changes_with_the_counts(screened_store):
    before = joined(plots.prisma_flow(prisma.counts(screened_store)))
    screened_store.append_decision("pmid:2", "ana", "full-text", "exclude", "wrong-intervention")
    after_counts = prisma.counts(screened_store)
    after = joined(plots.prisma_flow(after_counts))
    assert "Wrong intervention (n = 1)" in after and "Wrong intervention" not in before
    assert after_counts.included == 4 and "4 studies included" in after and "5 studies included" in before
    assert not by_gid(plots.prisma_flow(after_counts), "reviewlib-notice")


# -- evidence map -----------------------------------------------------------
def test_evidence_map_annotations_match_the_table(small_table):
    fig = plots.evidence_map(carry(small_table), **MAP, row_values=["multiple sclerosis"], notice=NOTICE)
    labels = by_gid(fig, "reviewlib-cell-label")
    # SLE x CD19: rows 1, 2 and the basket study 3 -> 3 studies; the basket study reports no split, so
    # its 8 patients are not added to SLE (nor to systemic sclerosis) but once, to the mixed row.
    assert "3 studies, 15* pts" in labels
    # systemic sclerosis x CD19: the basket study and the case series.
    assert "2 studies, 3* pts" in labels
    assert "1 study, 8 pts" in labels  # mixed, split not reported x CD19
    assert "1 study, 36 pts" in labels
    assert "1 study, patients n.r." in labels  # pemphigus: patients not reported
    assert len(labels) == 5
    # 6 rows (5 diseases + the mixed row) x 3 targets = 18 cells, 5 occupied: 13 visibly empty.
    assert len(by_gid(fig, "reviewlib-empty-cell")) == 13
    text = joined(fig)
    assert "multiple sclerosis" in text and "DSG3-CAAR" in text and plots.MIXED in text
    assert "patients of 1 study that do not report the split (8 in all)" in text
    assert by_gid(fig, "reviewlib-notice") == [NOTICE]


def _drawn_patients(fig: Figure) -> int:
    total = 0
    for label in by_gid(fig, "reviewlib-cell-label"):
        m = re.search(r", ([\d,]+)\D* pts?$", label)
        total += int(m.group(1).replace(",", "")) if m else 0
    return total


def test_basket_patients_are_drawn_once_split_by_the_reported_breakdown(small_table):
    # the bug this pins: a basket study's n was added to each of its diseases
    split = small_table.assign(n_by_disease=["SLE: 1", "SLE: 14", "SLE: 5; systemic sclerosis: 3",
                                             "myasthenia gravis: 36", "systemic sclerosis: 3", "not reported"])
    fig = plots.evidence_map(carry(split), **MAP)
    labels = by_gid(fig, "reviewlib-cell-label")
    assert "3 studies, 20 pts" in labels and "2 studies, 6 pts" in labels  # 1 + 14 + 5; 3 + 3
    assert plots.MIXED not in joined(fig) and len(labels) == 4
    assert _drawn_patients(fig) == int(pd.to_numeric(split["n_patients"]).sum()) == 62
    # a breakdown that does not fit (more patients than n, or a disease the study does not list) is not used
    for bad in ("SLE: 6; systemic sclerosis: 3", "SLE: 5; myositis: 3"):
        wrong = split.copy()
        wrong.loc[2, "n_by_disease"] = bad
        fig = plots.evidence_map(carry(wrong), **MAP)
        assert "1 study, 8 pts" in by_gid(fig, "reviewlib-cell-label") and _drawn_patients(fig) == 62
    # a partial breakdown: the rest goes to the mixed row
    partial = split.copy()
    partial.loc[2, "n_by_disease"] = "SLE: 5"
    labels = by_gid(plots.evidence_map(carry(partial), **MAP), "reviewlib-cell-label")
    assert "3 studies, 20* pts" in labels and "1 study, 3 pts" in labels


def test_evidence_map_title_states_a_finding_that_follows_the_data(small_table):
    title = plots.map_finding(carry(small_table), **MAP)
    assert title.startswith("Most evidence: CD19-targeted cells in SLE (3 studies, 15 patients)")
    assert "no controlled trial outside myasthenia gravis" in title
    more = pd.concat([small_table, pd.DataFrame([
        {"disease": "systemic sclerosis", "target": "CD19", "design": "RCT", "n_patients": 60,
         "lymphodepletion": "Flu/Cy", "year": 2026}])], ignore_index=True)
    changed = plots.map_finding(carry(more), **MAP)
    assert changed.startswith("Most evidence: CD19-targeted cells in systemic sclerosis (3 studies, 63 patients)")
    assert "controlled trials only in myasthenia gravis and systemic sclerosis" in changed
    fig = plots.evidence_map(carry(more), **MAP)
    assert fig._suptitle.get_text().replace("\n", " ") == changed


def test_evidence_map_on_the_synthetic_truth(truth_table):
    # the truth sidecar has no per-disease split: basket studies count as studies of each disease and
    # their patients once, in the mixed row
    fig = plots.evidence_map(carry(truth_table), **MAP, notice=NOTICE)
    rows = truth_table.assign(disease=truth_table["disease"].str.split("; ")).explode("disease")
    sle = rows[(rows["disease"] == "SLE") & (rows["target"] == "CD19")]
    single = sle[~sle["pmid"].isin(truth_table.loc[truth_table["disease"].str.contains(";"), "pmid"])]
    assert len(single) < len(sle)
    expected = f"{len(sle)} studies, {int(pd.to_numeric(single['n_patients']).sum()):,}* pts"
    labels = by_gid(fig, "reviewlib-cell-label")
    assert expected in labels
    assert _drawn_patients(fig) == int(pd.to_numeric(truth_table["n_patients"]).sum())
    assert by_gid(fig, "reviewlib-empty-cell"), "the synthetic evidence has gaps and they must show"


# -- publications per year -----------------------------------------------------
def test_publications_by_year_stacks_designs_and_shows_empty_years(small_table):
    fig = plots.publications_by_year(small_table, notice=NOTICE)
    ax = fig.axes[0]
    assert sorted(by_gid(fig, "reviewlib-bar-total")) == ["1", "1", "1", "3"]  # 2021, 2022, 2024 (3), 2025
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2021", "2022", "2023", "2024", "2025"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["case report", "case series", "phase 1", "phase 1/2", "randomised controlled trial"]
    assert ax.get_ylabel() == "Included studies (n)"
    title = plots.year_finding(small_table)
    assert title.startswith("6 studies published 2021–2025, most in 2024 (n = 3); 2 of 6 are case reports")
    assert "1 controlled trial" in title
    assert plots.year_finding(small_table.iloc[:3]).endswith("none controlled")


# -- lymphodepletion -----------------------------------------------------------
def test_patients_by_lymphodepletion_keeps_not_reported_and_none(small_table):
    fig = plots.patients_by_value(carry(small_table), "lymphodepletion", **REGIMEN)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    # by patients, the mixed bar and 'not reported' last
    assert labels == ["none", "Flu/Cy", "Cy", plots.MIXED, "not reported"]
    widths = {lab: bar.get_width() for lab, bar in zip(labels, ax.patches)}
    # the study given "Flu/Cy; Cy" counts as a study of both, its 8 patients once, in the mixed bar
    assert widths == {"Flu/Cy": 15, "none": 36, "Cy": 0, plots.MIXED: 8, "not reported": 3}
    assert sum(widths.values()) == 62
    text = joined(fig)
    assert "3 patients · 2 studies" in text  # the case series (None) and pemphigus (not reported, n missing)
    assert "15 patients · 3 studies" in text and "0 patients · 1 study" in text
    assert "1 study reporting several regimens count as a study of each" in text
    assert plots.value_finding(carry(small_table), "lymphodepletion", **REGIMEN) == (
        "none given to 58% of patients (36 of 62); regimen not reported for 3 patients in 2 studies")


def test_not_reported_bar_is_drawn_even_when_every_study_reports(small_table):
    reported = small_table[small_table["lymphodepletion"].isin(["Flu/Cy", "none"])]
    fig = plots.patients_by_value(carry(reported), "lymphodepletion", **REGIMEN)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][-1] == "not reported"
    assert plots.value_finding(carry(reported), "lymphodepletion", **REGIMEN).endswith("every study reports its regimen")


# -- sample sizes ----------------------------------------------------------------
def test_sample_size_distribution_marks_medians(small_table):
    fig = plots.sample_size_distribution(small_table, large=10)
    text = joined(fig)
    # one study per design here (pemphigus' phase 1 has no patient count): each median is that study
    for expected in ("median 1 (n = 1)", "median 14 (n = 1)", "median 8 (n = 1)", "median 36 (n = 1)"):
        assert expected in text
    assert "all studies: median 8" in text
    assert "1 study without a patient count not shown" in text
    assert plots.sample_size_finding(small_table, large=10) == (
        "Median 8 patients per study (range 1–36); only 2 of 5 studies enrolled 10 or more")
    bigger = small_table.assign(n_patients=[40, 50, 60, 36, 30, None])
    assert plots.sample_size_finding(bigger, large=10).startswith("Median 40 patients per study (range 30–60); 5 of 5")


# -- screening progress ------------------------------------------------------------
def test_screening_progress_from_a_simulation_recall_curve():
    from reviewlib.screening.simulation import recall_curve
    labels = [1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    curve = recall_curve(labels)
    fig = plots.screening_progress(curve, notice=NOTICE)
    assert fig._suptitle.get_text() == "95% recall after screening 20 of 20 records (100%)"
    assert fig.axes[0].get_ylabel().startswith("Recall (%")
    faster = recall_curve([1, 1, 1, 1] + [0] * 16)
    assert plots.progress_finding(*plots._curve(faster)[:1], 20, True) == \
        "95% recall after screening 4 of 20 records (20%)"


def test_screening_progress_from_the_store_decision_history(screened_store):
    fig = plots.screening_progress(store=screened_store)
    title = fig._suptitle.get_text().replace("\n", " ")
    # 7 final includes among 21 decided records; the 95% point is the 7th include, record 7 in decision order
    # 7 final includes (1-6 by rules, 7 by ana over the rule) among 21 records decided in id order;
    # 21 of 21 screening records (2 of the 23 identified were merged duplicates).
    assert title == "95% of the 7 includes found in the first 7 records screened (33%)"
    with pytest.raises(InputError, match="recall_curve or a store"):
        plots.screening_progress()


# -- saving, inputs -------------------------------------------------------------------
def test_save_writes_png_and_svg_atomically(tmp_path, small_table):
    fig = plots.evidence_map(carry(small_table), **MAP, notice=NOTICE)
    paths = plots.save(fig, tmp_path / "figures", "evidence_map")
    assert set(paths) == {"png", "svg"}
    png, svg = paths["png"].read_bytes(), paths["svg"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert b"<svg" in svg[:2000] and len(svg) > 10_000
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["evidence_map.png", "evidence_map.svg"]
    again = plots.save(plots.evidence_map(carry(small_table), **MAP, notice=NOTICE), tmp_path / "figures", "evidence_map")
    assert again["svg"].read_bytes() == svg  # reruns on the same data give the same SVG
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(InputError, match="plain file stem"):
            plots.save(fig, tmp_path, bad)


def test_missing_column_is_one_clear_line(small_table):
    with pytest.raises(InputError, match=r"lacks column\(s\) lymphodepletion") as info:
        plots.patients_by_value(carry(small_table.drop(columns="lymphodepletion")), "lymphodepletion", **REGIMEN)
    assert "\n" not in str(info.value)


def test_empty_table_gives_a_figure_that_says_so(small_table):
    fig = plots.sample_size_distribution(small_table.iloc[0:0])
    assert "No included studies to plot yet" in joined(fig)


def test_design_names_are_normalised_to_one_colour_each():
    assert plots.normalize_design("Phase I/II") == "phase 1/2"
    assert plots.normalize_design("phase II") == "phase 2"
    assert plots.normalize_design("randomised controlled") == "randomised controlled trial"
    assert plots.normalize_design(None) == plots.NOT_REPORTED
    assert plots.normalize_design("mouse model") == "preclinical"
    designs = ["case report", "case series", "observational", "phase 1", "phase 1/2", "phase 2", "phase 3",
               "randomised controlled trial", "preclinical", "review", "basket trial", "other", plots.NOT_REPORTED]
    colors = plots.design_colors(designs)
    assert len(set(colors.values())) == len(designs) and colors[plots.NOT_REPORTED] == plots.GREY


def test_all_figures_render_on_the_synthetic_truth(truth_table, tmp_path):
    figs = {
        "years": plots.publications_by_year(truth_table, notice=NOTICE),
        "map": plots.evidence_map(carry(truth_table), **MAP, notice=NOTICE),
        "lymph": plots.patients_by_value(carry(truth_table), "lymphodepletion", **REGIMEN, notice=NOTICE),
        "sizes": plots.sample_size_distribution(truth_table, notice=NOTICE),
    }
    for name, fig in figs.items():
        paths = plots.save(fig, tmp_path, name)
        assert paths["png"].stat().st_size > 10_000, name
    n = len(truth_table)
    assert re.match(rf"{n} studies published \d{{4}}–\d{{4}}", plots.year_finding(truth_table))


def test_further_reports_of_a_counted_cohort_are_not_counted_again(small_table):
    """evidence.study_table marks later reports of one cohort counted=False: patients count once."""
    table = pd.concat([small_table.assign(counted=True), small_table.iloc[[1]].assign(counted=False, year=2025)],
                      ignore_index=True)
    fig = plots.evidence_map(carry(table), **MAP)
    assert "3 studies, 15* pts" in by_gid(fig, "reviewlib-cell-label")
    assert _drawn_patients(fig) == 62
    assert "1 further report of an already counted cohort is not counted again." in joined(fig)
    assert plots.value_finding(carry(table), "lymphodepletion", **REGIMEN) == plots.value_finding(carry(small_table), "lymphodepletion", **REGIMEN)
    # publications per year counts publications: the further report is one.
    assert plots.year_finding(table).startswith("7 studies published 2021–2025")


def test_saved_files_are_readable_like_the_html(tmp_path, small_table):
    paths = plots.save(plots.patients_by_value(carry(small_table), "lymphodepletion", **REGIMEN), tmp_path, "lymph")
    assert paths["png"].stat().st_mode & 0o044  # group/other may read (mkstemp alone gives 0600)


def test_screening_progress_accepts_counts_pairs_and_frames():
    counts = [1, 2, 2, 3, 3, 3, 3, 3, 3, 3]  # cumulative includes after each record
    pairs = list(zip(range(1, 11), counts))
    frame = pd.DataFrame({"screened": range(1, 11), "found": counts})
    titles = {plots.screening_progress(c, n_total=20)._suptitle.get_text().replace("\n", " ")
              for c in (counts, pairs, frame)}
    assert titles == {"95% of the 3 includes found in the first 4 records screened (40%); "
                      "10 of 20 records screened so far"}
    with pytest.raises(InputError, match="found/n_found/recall"):
        plots.screening_progress(pd.DataFrame({"x": [1]}))


# -- no seaborn -------------------------------------------------------------------
def test_sample_size_dots_sit_on_their_design_row_and_repeat_exactly(truth_table):
    first, again = (plots.sample_size_distribution(truth_table) for _ in range(2))
    ax = first.axes[0]
    designs = [t.get_text() for t in ax.get_yticklabels()]
    rows = {c.get_gid(): c.get_offsets() for c in ax.collections if (c.get_gid() or "").startswith("reviewlib-studies")}
    assert len(rows) == len(designs) >= 4
    expected = plots._prepare(truth_table, [], roles=("study_design", "sample_size"))
    for i, design in enumerate(designs):
        dots = rows[f"reviewlib-studies-{i}"]
        wanted = expected.loc[(expected["_design"] == design) & (expected["_n"] > 0), "_n"]
        assert sorted(dots[:, 0]) == sorted(wanted.astype(float))          # x: each study's patients
        assert (abs(dots[:, 1] - i) <= 0.22).all()                          # y: jittered around its row
    assert ax.get_ylim()[0] > ax.get_ylim()[1] and ax.get_xscale() == "log"  # first design on top
    again_rows = [c.get_offsets().tolist() for c in again.axes[0].collections
                  if (c.get_gid() or "").startswith("reviewlib-studies")]
    assert again_rows == [rows[f"reviewlib-studies-{i}"].tolist() for i in range(len(designs))]


def test_drawing_the_figures_does_not_load_seaborn(tmp_path):
    code = ("import sys; import pandas as pd; from reviewlib.report import figures as plots\n"
            "t = pd.DataFrame({'disease': ['SLE', 'SLE'], 'target': ['CD19', 'BCMA'], 'design': ['phase 1', "
            "'case report'], 'n_patients': [12, 1], 'lymphodepletion': ['Flu/Cy', None], 'year': [2023, 2024]})\n"
            "from reviewlib.protocol import load_protocol\n"
            "from reviewlib.evidence.extraction import SchemaRef, load_schema\n"
            "t.attrs['extraction_schema'] = SchemaRef(load_schema(load_protocol('car-t-autoimmune')))\n"
            "figs = plots.evidence_figures(t)\n"
            "assert len(figs) == 4, figs\n"
            "for name, fig in figs.items(): plots.save(fig, sys.argv[1], name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'seaborn'))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert len(list(tmp_path.glob("*.png"))) == 4


def test_screening_progress_legend_names_the_order():
    fig = plots.screening_progress([0, 1, 1, 2, 2, 2], label="Prioritised order (reviewlib's model)")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0] == "Prioritised order (reviewlib's model)"
