"""reviewlib.sources.readers: MEDLINE (real PubMed-format files) and RIS (vendor-modelled fixtures)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from Bio import Medline

import reviewlib
from reviewlib import records
from reviewlib.errors import InputError
from reviewlib.sources.readers import author_name, read_medline, read_ris, split_labelled_abstract

DATA = Path(__file__).resolve().parent / "data"
MEDLINE = DATA / "pubmed" / "medline"
RIS = DATA / "ris"


# ------------------------------------------------------------------------------- MEDLINE

@pytest.mark.parametrize("name", ["pubmed_result1.txt", "pubmed_result2.txt", "pubmed_result3.txt"])
def test_medline_files_agree_with_bio_medline(name):
    frame = read_medline(MEDLINE / name)
    with open(MEDLINE / name, encoding="utf-8") as handle:
        reference = list(Medline.parse(handle))
    assert list(frame.columns) == records.COLUMNS
    assert frame.pmid.tolist() == [r["PMID"] for r in reference]
    assert frame.title.tolist() == [" ".join(r["TI"].split()) for r in reference]
    assert [len(a) for a in frame.authors] == [len(r.get("AU", [])) + len(r.get("CN", [])) for r in reference]
    assert (frame.source == "medline").all()
    assert frame.year.notna().all()


def test_medline_single_record_fields_pubmed_result1():
    row = read_medline(MEDLINE / "pubmed_result1.txt").iloc[0]
    assert row.pmid == "12230038"
    assert row.title == "The Bio* toolkits--a brief overview."
    assert row.authors == ["Mangalam H"]
    assert row.journal == "Briefings in bioinformatics" and row.journal_abbrev == "Brief Bioinform"
    assert row.year == 2002 and row.pub_date == "2002-09"
    assert row.language == ["eng"]
    assert row.mesh_major == ["Computational Biology", "Programming Languages", "Software"]
    assert "Humans" in row.mesh_terms and "Humans" not in row.mesh_major
    assert row.abstract.startswith("Bioinformatics research is often difficult")
    assert "\n" not in row.abstract  # unstructured: one paragraph


def test_medline_structured_abstract_doi_and_qualifier_major_pubmed_result3():
    row = read_medline(MEDLINE / "pubmed_result3.txt").iloc[0]
    assert row.doi == "10.1118/1.4748329"
    assert [s["label"] for s in row.abstract_sections] == ["PURPOSE", "METHODS", "RESULTS", "CONCLUSIONS"]
    assert row.abstract.split("\n")[1].startswith("METHODS: Two transducers")
    # "MH  - High-Intensity Focused Ultrasound Ablation/adverse effects/*methods" -> major
    assert "High-Intensity Focused Ultrasound Ablation" in row.mesh_major
    assert row.pub_date == "2012-10"


def test_medline_pmcid_and_day_precision_pubmed_result2():
    frame = read_medline(MEDLINE / "pubmed_result2.txt")
    assert "PMC1373603" in set(frame.pmcid.dropna())
    assert "2006-03-01" in set(frame.pub_date)
    assert frame.loc[frame.pmid == "14871861", "authors"].iloc[0][0] == "de Hoon MJ"


def test_medline_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_medline(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(InputError, match="no citation"):
        read_medline(empty)
    ris_instead = tmp_path / "export.txt"
    ris_instead.write_bytes((RIS / "wos_export.ris").read_bytes())
    with pytest.raises(InputError) as info:
        read_medline(ris_instead)
    assert str(ris_instead) in str(info.value) and "\n" not in str(info.value)


# ----------------------------------------------------------------------------------- RIS

def test_ris_embase_tags_t1_n2_y1_jf_ja_a1():
    frame = read_ris(RIS / "embase_export.ris")
    assert list(frame.columns) == records.COLUMNS and len(frame) == 2
    first, second = frame.iloc[0], frame.iloc[1]
    assert first.title.startswith("CD19 CAR T cell therapy in refractory systemic lupus")
    assert first.authors == ["Schmidt K", "Nguyen TH", "Rossi M"]
    assert first.journal == "Annals of Example Rheumatology" and first.journal_abbrev == "Ann. Ex. Rheumatol."
    assert first.year == 2024 and first.pub_date == "2024"
    assert [s["label"] for s in first.abstract_sections] == ["Background", "Method(s)", "Result(s)",
                                                              "Conclusion(s)"]
    assert first.doi == "10.9999/example.2024.0001"
    assert first.language == ["eng"]
    assert first.publication_types == ["Article"]
    assert "systemic lupus erythematosus" in first.keywords
    # Embase accession numbers (L-number, 10 digits) are not PMIDs.
    assert first.pmid is None and second.pmid is None
    assert second.pub_date == "2023-11-10"
    assert second.language == ["eng", "ger"]
    assert second.publication_types == ["Conference Abstract"]
    assert (frame.source == "ris").all()


def test_ris_scopus_tags_ti_t2_j2_py_bom_and_pubmed_id_note():
    frame = read_ris(RIS / "scopus_export.ris")
    first, second = frame.iloc[0], frame.iloc[1]
    assert first.title.startswith("CD19-targeted CAR T cells")  # the BOM did not eat TY
    assert first.authors == ["Müller F", "Taubmann J", "Bucci L"]
    assert first.journal == "The Example Journal of Medicine" and first.journal_abbrev == "Ex J Med"
    assert first.year == 2023
    assert first.abstract.split("\n")[0] == "BACKGROUND: Antisynthetase syndrome can be refractory."
    assert first.pmid is None
    assert second.pmid == "36123456"                 # "PubMed ID: n" in N1
    assert second.doi == "10.9999/exrev.2022.77"     # https://doi.org/ prefix removed
    assert second.publication_types == ["Review"]


def test_ris_web_of_science_tags_da_ji_and_wos_accession():
    row = read_ris(RIS / "wos_export.ris").iloc[0]
    assert row.pmid is None                          # AN is a WOS: accession
    assert row.authors == ["Kowalski J", "Lee KH"]
    assert row.journal == "EXAMPLE NEUROLOGY" and row.journal_abbrev == "Ex. Neurol."
    assert row.year == 2024 and row.pub_date == "2024-01"   # DA "JAN 2024"
    assert row.keywords == ["CAR-T", "NMOSD", "autoimmunity"]
    assert row.language == ["eng"]


def test_ris_ovid_medline_accession_is_the_pmid():
    row = read_ris(RIS / "ovid_medline_export.ris").iloc[0]
    assert row.pmid == "36543210"
    assert row.authors == ["Mougiakakos D"]
    assert row.year == 2022


def test_ris_cut_short_is_input_error(tmp_path):
    text = (RIS / "embase_export.ris").read_text(encoding="utf-8")
    cut = tmp_path / "cut.ris"
    cut.write_text(text[: text.rindex("ER  -")], encoding="utf-8")
    with pytest.raises(InputError, match="cut short") as info:
        read_ris(cut)
    assert str(cut) in str(info.value)


@pytest.mark.parametrize("content", ["", "this is not an RIS file\n", "<PubmedArticleSet/>"])
def test_ris_not_ris_is_input_error(tmp_path, content):
    path = tmp_path / "x.ris"
    path.write_text(content)
    with pytest.raises(InputError, match="no reference"):
        read_ris(path)


def test_ris_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_ris(tmp_path / "nope.ris")


def test_ris_windows_1252_export(tmp_path):
    path = tmp_path / "cp1252.ris"
    path.write_bytes("TY  - JOUR\nTI  - Caf\u00e9 study\nAU  - M\u00fcller, Fabian\nPY  - 2020\nER  - \n"
                     .encode("cp1252"))
    row = read_ris(path).iloc[0]
    assert row.title == "Caf\u00e9 study" and row.authors == ["M\u00fcller F"]


def test_ris_export_with_literal_sup_tags_keeps_the_exponent(tmp_path):
    # Scopus/Web of Science RIS exports can carry PubMed's inline tags literally in TI and AB
    path = tmp_path / "scopus_sup_tags.ris"
    path.write_text("TY  - JOUR\nTI  - CD19 CAR<sup>+</sup> T cells at 1 x 10<sup>6</sup>/kg in lupus\n"
                    "AB  - Fludarabine 30 mg/m<sup>2</sup> and IC<sub>50</sub> of the construct.\nPY  - 2024\n"
                    "ER  - \n", encoding="utf-8")
    row = read_ris(path).iloc[0]
    assert row.title == "CD19 CAR\u207a T cells at 1 x 10\u2076/kg in lupus"
    assert row.abstract == "Fludarabine 30 mg/m\u00b2 and IC\u2085\u2080 of the construct."
    assert "106" not in row.title and "<sup>" not in row.abstract


# --------------------------------------------------------------------------------- helpers

@pytest.mark.parametrize("name,expected", [
    ("Smith, John A.", "Smith JA"), ("Smith J.A.", "Smith JA"), ("Smith JA", "Smith JA"),
    ("de Hoon, Michiel J.L.", "de Hoon MJL"), ("Lee, Kyung-Hee", "Lee KH"), ("Mackensen, A", "Mackensen A"),
    ("Canadian Respiratory Research Network", "Canadian Respiratory Research Network"), ("", None),
])
def test_author_name(name, expected):
    assert author_name(name) == expected


def test_split_labelled_abstract_leaves_unlabelled_and_inner_labels_alone():
    abstract, sections = split_labelled_abstract("No labels here. Example: fine (RESULTS: not a label).")
    assert sections == [{"label": "", "text": abstract}]
    assert split_labelled_abstract("   ") == (None, [])


def test_readers_exported_from_package():
    assert reviewlib.read_medline is read_medline and reviewlib.read_ris is read_ris


def test_read_openalex_is_imported_lazily_from_its_module():
    from reviewlib.sources import openalex
    assert reviewlib.read_openalex is openalex.read_openalex
    with pytest.raises(AttributeError):
        reviewlib.no_such_reader  # noqa: B018


@pytest.mark.parametrize("tags,year,pub_date", [
    ({"PY": "2020"}, 2020, "2020"),
    ({"Y1": "2020//"}, 2020, "2020"),
    ({"Y1": "2020/03/15/"}, 2020, "2020-03-15"),
    ({"DA": "2020-03-15"}, 2020, "2020-03-15"),
    ({"DA": "JAN 2024", "PY": "2024"}, 2024, "2024-01"),
    ({"DA": "2019 Nov-Dec"}, 2019, "2019-11"),
    ({"PY": "in press"}, None, None),
])
def test_ris_dates(tmp_path, tags, year, pub_date):
    path = tmp_path / "dates.ris"
    lines = ["TY  - JOUR", "TI  - Dated"] + [f"{k}  - {v}" for k, v in tags.items()] + ["ER  - ", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    row = read_ris(path).iloc[0]
    assert (None if row.year is pd.NA else int(row.year)) == year
    assert row.pub_date == pub_date
