"""The synthetic demo snapshot: reproducible, valid per NCBI's DTD, and as varied as the brief asks."""
from __future__ import annotations

import gzip
import io
import re
from collections import Counter
from pathlib import Path

import Bio.Entrez
import pandas as pd
import pytest
from Bio import Entrez
from lxml import etree
from rapidfuzz import fuzz

from reviewlib.demo import snapshot
from reviewlib.errors import InputError

DTD_PATH = Path(Bio.Entrez.__file__).resolve().parent / "DTDs" / "pubmed_250101.dtd"


@pytest.fixture(scope="module")
def packaged_xml() -> bytes:
    """The committed snapshot, uncompressed."""
    return gzip.decompress(snapshot.SNAPSHOT_PATH.read_bytes())


@pytest.fixture(scope="module")
def articles(packaged_xml: bytes) -> dict[str, etree._Element]:
    """PubmedArticle elements of the committed snapshot by PMID."""
    root = etree.fromstring(packaged_xml)
    return {a.findtext("MedlineCitation/PMID"): a for a in root.findall("PubmedArticle")}


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    """The committed truth sidecar."""
    return snapshot.truth()


def _text(el: etree._Element | None) -> str:
    return "".join(el.itertext()) if el is not None else ""


def _abstract(a: etree._Element) -> str:
    return " ".join(_text(t) for t in a.findall(".//Abstract/AbstractText"))


def _mesh(a: etree._Element) -> set[str]:
    return {d.text for d in a.findall(".//MeshHeading/DescriptorName")}


def _pubtypes(a: etree._Element) -> set[str]:
    return {p.text for p in a.findall(".//PublicationType")}


def _doi(a: etree._Element) -> str | None:
    return a.findtext("PubmedData/ArticleIdList/ArticleId[@IdType='doi']")


def test_generator_reproduces_committed_files_byte_for_byte(tmp_path):
    xml_path, truth_path, decisions_path = snapshot.generate(tmp_path / "snap.xml.gz", tmp_path / "truth.csv")
    assert gzip.decompress(xml_path.read_bytes()) == gzip.decompress(snapshot.SNAPSHOT_PATH.read_bytes())
    assert xml_path.read_bytes() == snapshot.SNAPSHOT_PATH.read_bytes()
    assert truth_path.read_bytes() == snapshot.TRUTH_PATH.read_bytes()
    assert decisions_path.read_bytes() == snapshot.DECISIONS_PATH.read_bytes()


def test_another_seed_gives_another_snapshot():
    xml_a, _ = snapshot.build(snapshot.SEED)
    xml_b, _ = snapshot.build(snapshot.SEED + 1)
    assert xml_a != xml_b


def test_main_writes_both_files_where_asked(tmp_path):
    assert snapshot.main(["--xml", str(tmp_path / "s.xml.gz"), "--truth", str(tmp_path / "t.csv")]) == 0
    assert (tmp_path / "s.xml.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert not list(tmp_path.glob(".*.tmp"))
    assert snapshot.truth(tmp_path / "t.csv").shape[0] >= 400


def test_gzip_is_small_and_carries_no_timestamp():
    data = snapshot.SNAPSHOT_PATH.read_bytes()
    assert len(data) < 1_000_000
    assert data[4:8] == b"\x00\x00\x00\x00"  # gzip MTIME field


def test_snapshot_is_valid_per_ncbi_pubmed_250101_dtd(packaged_xml):
    assert packaged_xml.startswith(snapshot.XML_HEADER.encode())
    dtd = etree.DTD(str(DTD_PATH))
    root = etree.fromstring(packaged_xml)
    assert dtd.validate(root), dtd.error_log.filter_from_errors()[:5]


def test_biopython_reads_snapshot_with_validation(packaged_xml):
    record = Entrez.read(io.BytesIO(packaged_xml), validate=True)
    assert len(record["PubmedArticle"]) >= 400


def test_pmids_are_synthetic_range_and_unique(articles, truth):
    pmids = [int(p) for p in articles]
    assert len(pmids) >= 400
    assert min(pmids) >= 990000001
    assert len(set(pmids)) == len(pmids)
    assert sorted(articles) == sorted(truth["pmid"])
    assert truth["pmid"].is_unique


def test_truth_columns_and_vocabularies(truth):
    assert list(truth.columns) == snapshot.TRUTH_COLUMNS
    assert set(truth["kind"]) <= set(snapshot.KINDS)
    assert set(truth["exclusion_reason"]) <= set(snapshot.EXCLUSION_REASONS) | {""}
    assert (truth.loc[truth["relevant"] == 1, "exclusion_reason"] == "").all()
    assert (truth.loc[truth["relevant"] == 0, "exclusion_reason"] != "").all()
    rel = truth[truth["relevant"] == 1]
    assert set(rel["lymphodepletion"]) == {"Flu/Cy", "Cy", "none", "other", "not reported"}
    assert set(rel["costimulation"]) == {"4-1BB", "CD28", "not reported"}
    assert set(rel["age_group"]) == {"adult", "paediatric", "both"}
    assert set(rel["controlled"]) == {"yes", "no"}
    n = rel["n_patients"].astype(int)
    assert n.min() == 1 and n.max() <= 50 and n.median() <= 10


def test_relevant_records_cover_diseases_constructs_and_designs(truth):
    rel = truth[(truth["relevant"] == 1) & (truth["duplicate_of"] == "")]
    assert 120 <= len(rel) <= 160
    diseases = Counter(d for v in rel["disease"] for d in v.split("; "))
    assert len(diseases) >= 8
    assert {"SLE", "systemic sclerosis", "myositis", "myasthenia gravis", "NMOSD", "multiple sclerosis",
            "ANCA vasculitis", "rheumatoid arthritis", "pemphigus vulgaris"} <= set(diseases)
    assert (rel["disease"].str.contains("; ")).sum() >= 5  # basket studies
    assert {"CD19", "BCMA", "CD19/BCMA", "CD20", "DSG3-CAAR", "MuSK-CAAR"} <= set(rel["target"])
    assert {"autologous", "allogeneic", "allogeneic NK"} <= set(rel["cell_source"])
    assert {"case report", "case series", "phase 1", "phase 1/2", "phase 2", "observational",
            "randomised controlled"} <= set(rel["design"])


def test_exactly_one_randomised_controlled_trial(truth, articles):
    rct = truth[(truth["relevant"] == 1) & (truth["design"] == "randomised controlled")]
    assert len(rct) == 1
    row = rct.iloc[0]
    assert (row["disease"], row["target"], row["lymphodepletion"], row["controlled"]) == \
        ("myasthenia gravis", "BCMA", "none", "yes")
    assert "Randomized Controlled Trial" in _pubtypes(articles[row["pmid"]])
    assert (truth.loc[truth["relevant"] == 1, "controlled"] == "yes").sum() == 1


def test_publication_years_grow_towards_recent(articles):
    years = Counter(int(a.findtext(".//PubMedPubDate[@PubStatus='entrez']/Year")) for a in articles.values())
    assert min(years) == 2016 and max(years) == 2026
    assert sum(years[y] for y in (2023, 2024, 2025)) > 3 * sum(years[y] for y in (2016, 2017, 2018))


def test_distractor_kinds_present_with_matching_evidence(truth, articles):
    kinds = Counter(truth["kind"])
    for kind in ("distractor-oncology", "review", "editorial", "preclinical", "other-therapy", "car-treg",
                 "no-data", "non-english", "duplicate"):
        assert kinds[kind] >= 5, kind
    expected_reason = {"distractor-oncology": "wrong-population", "review": "publication-type",
                       "editorial": "publication-type", "car-treg": "preclinical", "preclinical": "preclinical",
                       "other-therapy": "wrong-intervention", "no-data": "no-data"}
    for kind, reason in expected_reason.items():
        assert set(truth.loc[truth["kind"] == kind, "exclusion_reason"]) == {reason}, kind
    # editorials, comments and letters carry that publication type
    for pmid in truth.loc[truth["kind"] == "editorial", "pmid"]:
        assert _pubtypes(articles[pmid]) & {"Editorial", "Comment", "Letter"}, pmid
    for pmid in truth.loc[truth["kind"] == "review", "pmid"]:
        assert "Review" in _pubtypes(articles[pmid])
    # mouse models: Animals and Mice, never Humans
    mice = [articles[p] for p in truth.loc[truth["kind"] == "preclinical", "pmid"] if "Mice" in _mesh(articles[p])]
    assert len(mice) >= 10
    assert all("Animals" in _mesh(a) and "Humans" not in _mesh(a) for a in mice)
    # drug and transplant comparators appear by name
    other = " ".join(_text(articles[p].find(".//ArticleTitle")) + _abstract(articles[p])
                     for p in truth.loc[truth["kind"] == "other-therapy", "pmid"]).lower()
    for drug in ("rituximab", "obinutuzumab", "belimumab", "anifrolumab", "teclistamab", "blinatumomab",
                 "stem cell transplantation"):
        assert drug in other, drug


def _norm_title(t: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", t.lower()).strip()


def test_duplicates_have_exact_doi_and_fuzzy_title_cases(truth, articles):
    dups = truth[truth["duplicate_of"] != ""]
    assert len(dups) >= 10
    exact = fuzzy = 0
    for _, row in dups.iterrows():
        dup, orig = articles[row["pmid"]], articles[row["duplicate_of"]]
        assert int(row["pmid"]) != int(row["duplicate_of"])
        assert row["kind"] == "duplicate" and row["duplicate_of"] in set(truth["pmid"])
        assert truth.set_index("pmid").loc[row["duplicate_of"], "duplicate_of"] == ""
        t_dup, t_orig = _text(dup.find(".//ArticleTitle")), _text(orig.find(".//ArticleTitle"))
        if _doi(dup) is not None:
            assert _doi(dup) == _doi(orig)
            exact += 1
        else:
            assert t_dup != t_orig
            assert fuzz.ratio(_norm_title(t_dup), _norm_title(t_orig)) >= 90
            fuzzy += 1
    assert exact >= 5 and fuzzy >= 5
    originals = truth[truth["duplicate_of"] == ""]
    dois = [_doi(articles[p]) for p in originals["pmid"]]
    assert len(set(dois)) == len(dois)  # only the marked duplicates share a DOI


def test_non_english_missing_abstracts_structured_and_markup(packaged_xml, articles, truth):
    foreign = [a for a in articles.values() if a.findtext(".//Language") != "eng"]
    assert {a.findtext(".//Language") for a in foreign} == {"ger", "chi", "fre"}
    for a in foreign:
        title = _text(a.find(".//ArticleTitle"))
        assert title.startswith("[") and title.endswith("].")
        assert a.findtext(".//VernacularTitle")
    assert set(truth.loc[truth["pmid"].isin([a.findtext(".//PMID") for a in foreign]), "exclusion_reason"]) <= \
        {"language", "publication-type"}
    no_abstract = [p for p, a in articles.items() if a.find(".//Abstract") is None]
    assert len(no_abstract) >= 20
    assert truth.set_index("pmid").loc[no_abstract, "relevant"].sum() >= 3  # some relevant ones lack one
    structured = [a for a in articles.values() if a.find(".//AbstractText[@NlmCategory='METHODS']") is not None]
    assert len(structured) >= 80
    assert all(a.find(".//AbstractText[@Label]") is not None for a in structured)
    for tag in (b"<i>in vitro</i>", b"10<sup>6</sup>/kg", b"CD4<sup>+</sup>", b"<sub>"):
        assert tag in packaged_xml, tag
    assert any(a.find(".//ArticleTitle/sup") is not None or a.find(".//ArticleTitle/i") is not None
               for a in articles.values())
    assert any(a.find(".//CollectiveName") is not None for a in articles.values())
    assert all(a.find(".//GeneralNote") is not None for a in articles.values())


def test_truth_study_facts_are_stated_in_the_abstract(truth, articles):
    rel = truth[(truth["relevant"] == 1) & (truth["duplicate_of"] == "")]
    checked = 0
    for _, row in rel.iterrows():
        text = _abstract(articles[row["pmid"]])
        if not text:
            continue
        checked += 1
        low = text.lower()
        ld = row["lymphodepletion"]
        if ld == "Flu/Cy":
            assert "fludarabine" in low or "flu " in low, row["pmid"]
        elif ld == "Cy":
            assert "cyclophosphamide" in low and "fludarabine" not in low.replace("without fludarabine", "")
        elif ld in ("none", "not reported"):
            assert "fludarabine" not in low, row["pmid"]
        if row["costimulation"] == "not reported":
            assert "4-1BB" not in text and "CD28" not in text, row["pmid"]
        else:
            assert row["costimulation"] in text, row["pmid"]
        n = int(row["n_patients"])
        if n > 1:
            words = snapshot.NUMBER_WORDS[n] if n < len(snapshot.NUMBER_WORDS) else "-"
            assert re.search(rf"\b{n}\b", text) or words in low, row["pmid"]
    assert checked >= 100


def test_demo_decisions_mostly_agree_with_truth_and_mark_duplicates(truth):
    demo = snapshot.demo_decisions()
    assert list(demo.columns) == ["pmid", "decision", "reason"]
    assert list(demo["pmid"]) == list(truth["pmid"])
    assert set(demo["decision"]) == {"include", "exclude"}
    agree = (demo["decision"] == truth["relevant"].map({1: "include", 0: "exclude"})).mean()
    assert 0.95 <= agree < 1.0
    assert (demo.loc[demo["decision"] == "include", "reason"] == "").all()
    assert set(demo.loc[demo["decision"] == "exclude", "reason"]) <= set(snapshot.EXCLUSION_REASONS)
    by_pmid = demo.set_index("pmid")["decision"]
    for _, row in truth[truth["duplicate_of"] != ""].iterrows():
        assert by_pmid[row["pmid"]] == by_pmid[row["duplicate_of"]]


def test_demo_full_text_assesses_the_title_abstract_includes_against_truth(truth):
    ta = snapshot.demo_decisions()
    assert ta.equals(snapshot.demo_decisions(stage="title-abstract"))
    ft = snapshot.demo_decisions(stage="full-text")
    assert list(ft.columns) == ["pmid", "decision", "reason"]
    assert list(ft["pmid"]) == list(ta.loc[ta["decision"] == "include", "pmid"])
    assert list(ft.index) == list(range(len(ft)))
    facts = truth.set_index("pmid")
    expected = ["include" if facts.at[p, "relevant"] == 1 else "exclude" for p in ft["pmid"]]
    assert list(ft["decision"]) == expected
    excluded = ft[ft["decision"] == "exclude"]
    # the demo reviewer's title-abstract over-inclusions (reviews, CAR-Treg, preclinical) go at full text
    assert len(excluded) >= 5
    assert set(facts.loc[excluded["pmid"], "kind"]) >= {"review", "preclinical"}
    assert set(excluded["reason"]) <= set(snapshot.EXCLUSION_REASONS) and "" not in set(excluded["reason"])
    for pmid, reason in zip(excluded["pmid"], excluded["reason"]):
        assert reason == (facts.at[pmid, "exclusion_reason"] or "no-data")
    assert (ft.loc[ft["decision"] == "include", "reason"] == "").all()


def test_demo_full_text_reason_defaults_to_no_data(tmp_path, truth):
    edited = truth.copy()
    first = edited.index[(edited["demo_decision"] == "include") & (edited["relevant"] == 0)][0]
    edited.loc[first, "exclusion_reason"] = ""
    path = tmp_path / "truth.csv"
    edited.to_csv(path, index=False)
    ft = snapshot.demo_decisions(path, stage="full-text").set_index("pmid")
    assert ft.at[edited.at[first, "pmid"], "reason"] == "no-data"


def test_demo_decisions_refuse_an_unknown_stage():
    with pytest.raises(InputError, match="full-text"):
        snapshot.demo_decisions(stage="fulltext")


def test_truth_reader_rejects_missing_or_foreign_file(tmp_path):
    with pytest.raises(InputError, match="python -m reviewlib.demo.snapshot"):
        snapshot.truth(tmp_path / "absent.csv")
    (tmp_path / "other.csv").write_text("pmid,title\n1,x\n")
    with pytest.raises(InputError, match="lacks column"):
        snapshot.truth(tmp_path / "other.csv")


def test_notice_says_synthetic():
    assert "synthetic demo data, not real studies" in snapshot.SYNTHETIC_NOTICE


def test_read_pubmed_xml_reads_the_snapshot():
    from reviewlib.sources import pubmed_xml
    frame = pubmed_xml.read_pubmed_xml(snapshot.SNAPSHOT_PATH)
    assert len(frame) >= 400
    assert frame["pmid"].astype(int).min() >= 990000001


def test_output_does_not_depend_on_hash_seed_or_locale():
    """Set iteration order changes with PYTHONHASHSEED; the snapshot must not."""
    import hashlib
    import os
    import subprocess
    import sys

    code = ("import hashlib; from reviewlib.demo import snapshot; x, c = snapshot.build(); "
            "print(hashlib.sha256(x + c).hexdigest())")
    xml, csv_bytes = snapshot.build()
    expected = hashlib.sha256(xml + csv_bytes).hexdigest()
    for hash_seed, lang in (("1", "C"), ("4242", "de_DE.UTF-8")):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, LC_ALL=lang, LANG=lang)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected
