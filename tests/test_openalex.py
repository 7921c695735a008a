"""OpenAlex reader on the real SYNERGY Meijboom 2021 works (zip, single file, folder) and bad input."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from reviewlib.errors import InputError
from reviewlib.sources.openalex import author_name, read_openalex, rebuild_abstract
from reviewlib.records import COLUMNS

ZIP = Path(__file__).resolve().parent / "../reviewlib/data/meijboom-2021/works_1.zip"
PLANETAS = "W2345220764"  # Park et al. 2017, Ann Rheum Dis: PLANETAS extension study


@pytest.fixture(scope="module")
def works():
    return read_openalex(ZIP)


def _first_file_works() -> list[dict]:
    with zipfile.ZipFile(ZIP) as z:
        name = sorted(n for n in z.namelist() if n.endswith(".json"))[0]
        return json.loads(z.read(name))


def test_reads_all_882_works_into_the_records_table(works):
    assert len(works) == 882 and works["openalex_id"].is_unique
    assert list(works.columns) == COLUMNS + ["openalex_id"]
    assert set(works["source"]) == {"openalex"}
    assert works["openalex_id"].str.match(r"^W\d+$").all()


def test_planetas_record_fields(works):
    row = works.set_index("openalex_id").loc[PLANETAS]
    assert row["pmid"] == "27117698"
    assert row["doi"] == "10.1136/annrheumdis-2015-208783"            # resolver prefix removed
    assert row["pmcid"] == "PMC5284340"
    assert row["journal"] == "Annals of the Rheumatic Diseases"
    assert row["year"] == 2017 and row["pub_date"] == "2017-02-01"
    assert row["authors"][:3] == ["Park WS", "Yoo DY", "Miranda PMA"]   # "Pedro M. A. Miranda"
    assert "Infliximab" in row["mesh_terms"] and "Biosimilar" in row["keywords"]


def test_abstract_rebuilt_in_word_order(works):
    # Checked by hand against the article (Ann Rheum Dis 2017;76:346-354): the words read in order.
    abstract = works.set_index("openalex_id").loc[PLANETAS, "abstract"]
    assert abstract.startswith("Objectives To investigate the efficacy and safety of switching from infliximab "
                               "reference product (RP) to its biosimilar or maintaining biosimilar treatment in "
                               "patients with ankylosing spondylitis (AS).")
    assert "ASAS20 response rates at week 102 were 80.7% and 76.9%." in abstract
    assert abstract.endswith("Trial registration number NCT01571206; Results.")


def test_works_without_abstract_are_kept_with_none(works):
    missing = works["abstract"].isna()
    assert 0 < missing.sum() < len(works)
    assert works.loc[missing, "title"].notna().all()


def test_single_file_list_and_folder(tmp_path, works):
    items = _first_file_works()
    (tmp_path / "one.json").write_text(json.dumps(items[0]), encoding="utf-8")
    one = read_openalex(tmp_path / "one.json")
    assert len(one) == 1 and one.loc[0, "openalex_id"] == items[0]["id"].rsplit("/", 1)[-1]
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(items[:3]), encoding="utf-8")
    (folder / "b.json").write_text(json.dumps({"results": items[3:5]}), encoding="utf-8")   # an API page
    both = read_openalex(folder)
    assert list(both["openalex_id"]) == [w["id"].rsplit("/", 1)[-1] for w in items[:5]]
    expected = works.set_index("openalex_id").loc[list(both["openalex_id"]), "abstract"].tolist()
    assert both["abstract"].tolist() == expected


def test_rebuild_abstract_and_author_names():
    assert rebuild_abstract({"world": [1], "hello": [0, 2]}) == "hello world hello"
    assert rebuild_abstract({}) is None and rebuild_abstract(None) is None
    assert author_name("Jan van der Berg") == "van der Berg J"
    assert author_name("Jean-Pierre Dupont") == "Dupont JP"
    assert author_name("WHO") == "WHO"


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\"a string\""])
def test_bad_json_is_an_input_error_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match="bad.json"):
        read_openalex(path)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_openalex(tmp_path / "nope.zip")
    with pytest.raises(InputError, match="no .json or .zip"):
        read_openalex(tmp_path)
