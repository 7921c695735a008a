"""Deduplication across sources: exact PMID/DOI, blocked fuzzy titles, audit, kept-record rule, store."""
from __future__ import annotations

import random

import pandas as pd
import pytest

from reviewlib.screening import dedup
from reviewlib.protocol import PACKAGE_DATA
from reviewlib.sources.readers import read_medline, read_ris
from reviewlib.records import conform
from reviewlib.store import ReviewStore

SCREENING = "screening"


@pytest.fixture
def cross_source(data_dir) -> pd.DataFrame:
    """Real MEDLINE records, one of them found again by a PubMed search, plus a reference manager's RIS."""
    medline = read_medline(data_dir / SCREENING / "medline_pubmed_result2.txt")
    again = medline.iloc[[0]].assign(source="pubmed", abstract=None)
    ris = read_ris(data_dir / SCREENING / "zotero_same_articles.ris")
    return pd.concat([medline, again, ris], ignore_index=True)


def test_normalisers_follow_the_documented_rules():
    assert dedup.normalise_doi(" https://doi.org/10.1093/BIOINFORMATICS/btk021 ") == "10.1093/bioinformatics/btk021"
    assert dedup.normalise_doi("doi: 10.1186/1471-2105-7-10") == "10.1186/1471-2105-7-10"
    assert dedup.normalise_doi("http://dx.doi.org/10.1/X") == "10.1/x"
    assert dedup.normalise_doi(None) is None and dedup.normalise_doi("  ") is None
    assert dedup.normalise_title("Open-source  clustering software.") == "open source clustering software"
    assert dedup.normalise_title("[Lupus érythémateux: CAR-T]") == "lupus erythemateux car t"
    assert dedup.first_author_surname(["de Hoon MJ"]) == "de hoon"
    assert dedup.first_author_surname(["de Hoon, Michiel J. L."]) == "de hoon"
    assert dedup.first_author_surname(["Müller F"]) == "muller"
    assert dedup.first_author_surname(["CAR-T Study Group"]) == "car t study group"
    assert dedup.first_author_surname([]) == ""


def test_cross_source_groups_rules_and_kept_record(cross_source):
    result = dedup.deduplicate(cross_source)
    audit = result.audit
    # 10 rows: PMID duplicate, two DOI duplicates (prefixes and case differ), one fuzzy title
    assert result.n_input == 10 and result.n_removed == 4 and len(result.records) == 6
    rules = audit.loc[~audit["kept"], ["record_id", "rule"]].sort_values("rule").values.tolist()
    assert [r for _, r in rules] == ["doi", "doi", "fuzzy-title", "pmid"]
    # every group keeps the MEDLINE record, which has the PMID
    assert set(audit.loc[audit["kept"], "record_id"]) == {"pmid:16403221", "pmid:16377612", "pmid:14871861"}
    fuzzy = audit[audit["rule"] == "fuzzy-title"].iloc[0]
    assert fuzzy["matched_to"] == "pmid:14871861" and 95 <= fuzzy["score"] <= 100
    assert fuzzy["source"] == "ris"
    # the same title by another first author, and a "part II" sibling, stay separate
    titles = result.records["title"].tolist()
    assert "Open source clustering software" in titles
    assert any("part II" in t for t in titles)
    # identifier rules score 100
    assert set(audit.loc[audit["rule"].isin(["pmid", "doi"]), "score"]) == {100.0}


def test_kept_record_prefers_pmid_then_abstract_then_completeness_then_earliest():
    rows = conform(pd.DataFrame([
        {"doi": "10.1/a", "title": "T", "abstract": "long abstract", "journal": "J", "source": "ris"},
        {"pmid": "5", "doi": "10.1/A", "title": "T", "source": "pubmed"},
        {"doi": "https://doi.org/10.1/a", "title": "T", "abstract": "x", "source": "ris"},
    ]))
    result = dedup.deduplicate(rows)
    kept = result.audit[result.audit["kept"]]
    assert kept["row"].tolist() == [1]
    # empty fields of the kept record are filled from its duplicates, nothing overwritten
    merged = result.records.iloc[0]
    assert merged["pmid"] == "5" and merged["abstract"] == "long abstract" and merged["journal"] == "J"
    assert merged["doi"] == "10.1/A"
    no_pmid = dedup.deduplicate(rows.drop(index=1))
    assert no_pmid.audit.loc[no_pmid.audit["kept"], "row"].tolist() == [0]   # abstract, more complete
    tie = conform(pd.DataFrame([{"doi": "10.1/b", "title": "U"}, {"doi": "10.1/B", "title": "U"}]))
    assert dedup.deduplicate(tie).audit.loc[lambda a: a["kept"], "row"].tolist() == [0]   # earliest


def test_fuzzy_guards_keep_distinct_papers_apart():
    base = {"title": "Anti-CD19 CAR T cells in refractory systemic lupus erythematosus: a phase 1 trial",
            "authors": ["Mackensen A"], "year": 2023}
    rows = conform(pd.DataFrame([
        dict(base),
        dict(base, title=base["title"].replace("phase 1", "phase 2")),           # different numbers
        dict(base, year=2026),                                                   # years too far apart
        dict(base, authors=["Schett G"]),                                         # another first author
        dict(base, doi="10.1/x"), dict(base, doi="10.1/y"),                      # conflicting DOIs
        dict(base, pmid="1", year=2022), dict(base, pmid="2", year=2023),        # PMIDs differ, years differ
    ]))
    result = dedup.deduplicate(rows)
    groups = result.audit.groupby("group_id")["row"].apply(sorted).tolist()
    # row 0 (no ids) joins at most one id-bearing record; no group mixes DOIs x/y or PMIDs 1/2
    for members in groups:
        assert not {4, 5} <= set(members)
        assert not {6, 7} <= set(members)
        assert 1 not in members and 2 not in members and 3 not in members


def test_pubmed_duplicate_citations_merge_only_when_near_identical():
    rows = conform(pd.DataFrame([
        {"pmid": "10", "title": "Allogeneic CD19 CAR T cells in systemic sclerosis: a phase 1 trial.",
         "authors": ["Lin I"], "year": 2025, "doi": "10.5/x"},
        {"pmid": "11", "title": "Allogeneic CD19 CAR-T cells in systemic sclerosis - a phase 1 trial",
         "authors": ["Lin I"], "year": 2025},
        {"pmid": "12", "title": "Allogeneic CD19 CAR-T cells in systemic sclerosis - a phase 1 trial",
         "authors": ["Lin I"], "year": 2024},
    ]))
    result = dedup.deduplicate(rows)
    assert result.n_removed == 1
    assert result.audit.loc[~result.audit["kept"], "record_id"].tolist() == ["pmid:11"]


def test_synthetic_snapshot_duplicates_are_all_found_and_nothing_else():
    truth_path = PACKAGE_DATA / "car-t-autoimmune-truth.csv"
    snapshot = PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz"
    assert truth_path.is_file() and snapshot.is_file(), "the packaged demo snapshot and its truth are part of the repository"
    from reviewlib import read_pubmed_xml
    truth = pd.read_csv(truth_path, dtype=str)
    result = dedup.deduplicate(read_pubmed_xml(snapshot))
    expected = {f"pmid:{p}" for p in truth.loc[truth["duplicate_of"].notna(), "pmid"]}
    assert expected and result.removed_ids == expected


def test_ten_thousand_records_with_planted_duplicates():
    """Blocked matching at scale finds every planted duplicate and nothing else (10,000 records)."""
    rng = random.Random(7)
    words = ("car t cell therapy lupus nephritis systemic sclerosis myositis cd19 bcma refractory patients "
             "case report trial remission safety autoimmune disease allogeneic autologous outcomes").split()
    surnames = ["Wang", "Li", "Zhang", "Schett", "Chen", "Liu", "Kim"] + [f"Name{i}" for i in range(600)]
    rows, planted = [], set()
    for i in range(9000):
        title = " ".join(rng.choice(words) for _ in range(rng.randint(8, 14))) + f" cohort {i}"
        rows.append({"pmid": str(20_000_000 + i), "doi": f"10.9/{i}", "title": title.capitalize() + ".",
                     "year": rng.randint(2015, 2025), "authors": [rng.choice(surnames) + " A"], "source": "pubmed"})
    for k, original in enumerate(rng.sample(rows, 1000)):
        copy = dict(original, pmid=None, source="ris", abstract=None,
                    doi=("https://doi.org/" + original["doi"].upper()) if k % 2 else None,
                    title=original["title"].upper().rstrip("."),
                    authors=[original["authors"][0].split()[0] + ", Anna"],
                    year=original["year"] + (1 if k % 3 == 0 else 0))
        rows.append(copy)
        planted.add(9000 + k)
    result = dedup.deduplicate(conform(pd.DataFrame(rows)))
    assert result.n_removed == 1000
    assert set(result.audit.loc[~result.audit["kept"], "row"]) == planted
    assert set(result.audit["rule"].dropna()) == {"doi", "fuzzy-title"}


def test_save_and_load_round_trip_and_screening_records(tmp_path, cross_source):
    store = ReviewStore(tmp_path / "review.sqlite")
    assert dedup.load(store) is None
    store.add_records(cross_source)
    result = dedup.deduplicate(store.records())
    run = dedup.save(store, result)
    assert run == 1
    back = dedup.load(ReviewStore(tmp_path / "review.sqlite"))
    assert back.n_removed == result.n_removed == 3      # the store already merged the PMID duplicate
    pd.testing.assert_frame_equal(back.audit.reset_index(drop=True), result.audit.reset_index(drop=True),
                                  check_dtype=False)
    assert back.records["record_id"].tolist() == result.records["record_id"].tolist()
    screened = dedup.screening_records(store)
    assert len(screened) == len(store.records()) - 3
    assert not set(screened["record_id"]) & back.removed_ids
