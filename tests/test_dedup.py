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
    assert dedup.load(store) is None and dedup.saved_counts(store) is None
    store.add_records(cross_source)
    result = dedup.deduplicate(store.records())
    run = dedup.save(store, result)
    assert run == 1
    back = dedup.load(ReviewStore(tmp_path / "review.sqlite"))
    assert back.n_removed == result.n_removed == 3      # the store already merged the PMID duplicate
    pd.testing.assert_frame_equal(back.audit.reset_index(drop=True), result.audit.reset_index(drop=True),
                                  check_dtype=False)
    assert back.records["record_id"].tolist() == result.records["record_id"].tolist()
    assert dedup.saved_counts(store) == (back.n_removed, len(back.records)) == (3, len(cross_source) - 4)
    screened = dedup.screening_records(store)
    assert len(screened) == len(store.records()) - 3
    assert not set(screened["record_id"]) & back.removed_ids
    # issue 15: screening_records reads only the audit, not every record: the same set and table
    assert dedup._latest_removed_ids(store) == back.removed_ids and len(back.removed_ids) == 3
    records = store.records()
    pd.testing.assert_frame_equal(screened, records[~records["record_id"].isin(back.removed_ids)]
                                  .reset_index(drop=True))


# -- issue 12: evidence-based matching on real labelled records (tests/data/dedup, see its README lines) --
DEDUP = "dedup"


def _bib_records(path) -> pd.DataFrame:
    """A bib-dedupe records_pre_merged.csv excerpt as a records table (record_id = its ID)."""
    bib = pd.read_csv(path, dtype=str, keep_default_na=False)
    get = lambda c: bib[c] if c in bib.columns else pd.Series([""] * len(bib))  # noqa: E731
    kinds = [["Conference Paper"] if e == "inproceedings" else ["Journal Article"] if e == "article" else []
             for e in get("ENTRYTYPE")]
    frame = pd.DataFrame({"doi": get("doi"), "title": get("title"), "journal": get("journal").where(
        get("journal") != "", get("booktitle")), "year": get("year"), "publication_types": kinds,
        "authors": [[a.strip() for a in t.split(" and ") if a.strip()] for t in get("author")],
        "volume": get("volume"), "issue": get("number"), "pages": get("pages"), "source": "bib"})
    frame = frame.replace({"": None})
    out = conform(frame)
    out.insert(0, "record_id", bib["ID"].tolist())
    return out


def _groups(result) -> list[list[str]]:
    if result.audit.empty:
        return []
    return sorted(sorted(g) for g in result.audit.groupby("group_id")["record_id"].apply(list))


def test_database_suffixes_in_titles_are_ignored(data_dir):
    """"[Review] [45 refs]", "(Provisional abstract)", "[Erratum appears in ...]", "(Structured abstract)"."""
    result = dedup.deduplicate(_bib_records(data_dir / DEDUP / "cytology_database_suffixes.csv"))
    assert _groups(result) == [["id_0000012", "id_0000013", "id_0000014"], ["id_0000105", "id_0000106"],
                               ["id_0000555", "id_0000556"], ["id_0000585", "id_0000586"],
                               ["id_0000621", "id_0000622"]]
    assert dedup.normalise_title("x") == "x"
    from reviewlib.screening.dedup_match import clean_title
    assert clean_title("Cervical neoplasia in HIV. [Japanese]") == clean_title("Cervical neoplasia in HIV")


def test_reversed_name_order_does_not_defeat_the_author_check(data_dir):
    """"Tong, H" / "Hua, T" and "Xi, L F" / "Long, F X": same title, journal, volume and first page."""
    result = dedup.deduplicate(_bib_records(data_dir / DEDUP / "cytology_reversed_name_order.csv"))
    assert _groups(result) == [["id_0000062", "id_0000645"], ["id_0000165", "id_0001667"]]
    reasons = " ".join(result.audit["reasons"].dropna())
    assert "authors partly agree" in reasons and "volume and first page agree" in reasons
    from reviewlib.screening.dedup_match import _author_parts, authors_agree
    assert authors_agree([_author_parts("Wu CY")], [_author_parts("Ching-yi W")]) == "partial"
    assert authors_agree([_author_parts("Wu CY")], [_author_parts("Smith J")]) == "different"


def test_journal_article_and_conference_abstract_of_one_work_stay_apart(data_dir):
    """Same title and authors in another journal/volume (a conference abstract, a guideline in three journals)."""
    result = dedup.deduplicate(_bib_records(data_dir / DEDUP / "cytology_article_vs_conference_abstract.csv"))
    assert _groups(result) == [["id_0000186", "id_0000187"], ["id_0000338", "id_0000340", "id_0000342"],
                               ["id_0000339", "id_0000341"], ["id_0000396", "id_0000397"]]
    kept = set(result.records["record_id"])
    assert {"id_0001460", "id_0001514", "id_0001499"} <= kept          # the abstracts / other journals


def test_generic_editorial_titles_in_one_volume_stay_apart(data_dir):
    records = _bib_records(data_dir / DEDUP / "digital_work_generic_editorials.csv")
    result = dedup.deduplicate(records)
    assert result.n_removed == 0 and len(result.records) == len(records) == 10


def test_supplement_doi_shared_by_different_abstracts_is_not_enough(data_dir):
    """Two different abstracts on one supplement page, given one supplement DOI: titles disagree, so no merge."""
    records = _bib_records(data_dir / DEDUP / "cytology_supplement_abstracts_one_page.csv")
    assert dedup.deduplicate(records).n_removed == 0          # same journal, volume, page, first author
    shared = records.assign(doi="10.1097/01.LAB.0000000000.00001")
    result = dedup.deduplicate(shared)
    assert result.n_removed == 0
    # while one DOI on one title (author spellings aside) is a duplicate
    twin = pd.concat([shared.iloc[[0]], shared.iloc[[0]].assign(record_id="copy", authors=[["Baker, Sarah"]])])
    assert dedup.deduplicate(twin).n_removed == 1


def test_doi_spellings_normalise_to_one_doi():
    """The spellings named in issue 12 ("DOI 10....", URL-encoded, "ARTN 106\\r\\n10....") and placeholders."""
    n = dedup.normalise_doi
    assert n("DOI 10.1016/J.CHB.2019.04.019") == n("https://doi.org/10.1016/j.chb.2019.04.019") \
        == "10.1016/j.chb.2019.04.019"
    assert n("10.1002/%28SICI%291097-0258%28199601%2915") == "10.1002/(sici)1097-0258(199601)15"
    assert n("ARTN 106\r\n10.1016/j.im.2019.103177") == "10.1016/j.im.2019.103177"
    assert n("DOI") is None and n("") is None and n("n/a") is None
    rows = conform(pd.DataFrame([
        {"title": "Gig work and wellbeing", "authors": ["Wu CY"], "year": 2020, "doi": "DOI 10.1/ABC"},
        {"title": "Gig work and well-being", "authors": ["Wu, C."], "year": 2020, "doi": "ARTN 7\r\n10.1/abc"},
    ]))
    result = dedup.deduplicate(rows)
    assert result.n_removed == 1 and result.audit.loc[~result.audit["kept"], "rule"].tolist() == ["doi"]


def test_bracketed_translated_titles_match(data_dir):
    result = dedup.deduplicate(_bib_records(data_dir / DEDUP / "respiratory_bracketed_translated_titles.csv"))
    assert _groups(result) == [["id_0000003", "id_0000004"], ["id_0000012", "id_0000014", "id_0000015"]]


def test_records_without_usable_titles_or_dois_are_kept_and_never_merged_on_the_empty_field(data_dir):
    non_latin = _bib_records(data_dir / DEDUP / "digital_work_non_latin_titles.csv")
    placeholders = conform(pd.DataFrame([
        {"title": None, "doi": "DOI", "year": 2020, "authors": ["Kim J"]},
        {"title": "", "doi": "", "year": 2020, "authors": ["Kim J"]},
        {"title": "DOI", "doi": None, "year": 2020, "authors": ["Kim J"]},
        {"title": None, "doi": "DOI", "year": 2020, "authors": ["Lee K"]},
    ]))
    rows = pd.concat([non_latin, non_latin.assign(record_id=non_latin["record_id"] + "-again"), placeholders.assign(
        record_id=[f"blank{i}" for i in range(4)])], ignore_index=True)
    result = dedup.deduplicate(rows)
    assert result.n_removed == 0 and len(result.records) == len(rows)


def test_uncertain_pairs_are_listed_not_merged():
    rows = conform(pd.DataFrame([
        {"title": "Home bias in online employment", "authors": ["Liang, Chen"], "year": 2017,
         "journal": "International Conference on Information Systems", "publication_types": ["Conference Paper"]},
        {"title": "Home Bias in Online Employment", "authors": ["Liang, C."], "year": 2018,
         "journal": "Proceedings of the 51st Hawaii International Conference on System Sciences",
         "publication_types": ["Conference Paper"]},
    ]))
    result = dedup.deduplicate(rows)
    assert result.n_removed == 0
    assert len(result.uncertain) == 1 and "years one apart" in result.uncertain.iloc[0]["reasons"]


# -- reviewers' marks ----------------------------------------------------------------------------------
def _store_with_duplicates(tmp_path) -> ReviewStore:
    store = ReviewStore(tmp_path / "review.sqlite")
    store.add_records(conform(pd.DataFrame([
        {"pmid": "1", "title": "CD19 CAR T cells in refractory lupus", "authors": ["Mackensen A"], "year": 2022},
        {"doi": "10.1/lupus", "title": "CD19 CAR-T cells in refractory lupus.", "authors": ["Mackensen, A."],
         "year": 2022, "source": "ris"},
        {"doi": "10.1/other", "title": "BCMA CAR T cells in myasthenia gravis", "authors": ["Granit V"],
         "year": 2023, "source": "ris"},
        {"pmid": "3", "title": "CAR T cells in myasthenia gravis: a case", "authors": ["Haghikia A"], "year": 2023},
    ])))
    return store


def test_not_duplicates_mark_holds_in_every_rerun_and_prisma_follows(tmp_path):
    from reviewlib.report import prisma
    store = _store_with_duplicates(tmp_path)
    first = dedup.run(store)
    assert first.removed_ids == {"doi:10.1/lupus"}
    assert prisma.counts(store).duplicates_removed_by_dedup == 1
    assert "same first author" in first.audit["reasons"].dropna().iloc[0]
    mark = dedup.mark_not_duplicates(store, ["pmid:1", "doi:10.1/lupus"], "ana", note="conference abstract")
    reopened = ReviewStore(tmp_path / "review.sqlite")           # durable: a new connection sees it
    again = dedup.run(reopened)
    assert again.n_removed == 0 and again.removed_ids == set()
    assert len(dedup.screening_records(reopened)) == 4
    marks = dedup.current_marks(reopened)
    assert marks["reviewer"].tolist() == ["ana"] and marks["mark_id"].tolist() == [mark]
    assert dedup.run(reopened).n_removed == 0                      # and in the run after that
    assert prisma.counts(reopened).duplicates_removed_by_dedup == 0          # PRISMA counts follow the mark
    # withdrawing the mark appends a row; the merge comes back, the history stays
    dedup.withdraw_mark(reopened, mark, "ana")
    assert dedup.run(reopened).removed_ids == {"doi:10.1/lupus"}
    assert reopened.dedup_marks()["kind"].tolist() == ["not-duplicates", "withdraw"]


def test_duplicates_mark_merges_by_hand_and_is_audited(tmp_path):
    store = _store_with_duplicates(tmp_path)
    assert dedup.run(store).n_removed == 1
    dedup.mark_duplicates(store, ["doi:10.1/other", "pmid:3"], "bob")
    result = dedup.run(ReviewStore(tmp_path / "review.sqlite"))
    assert result.n_removed == 2
    row = result.audit[result.audit["rule"] == "reviewer"].iloc[0]
    assert row["reasons"] == "merged by a reviewer's mark"
    assert dedup.load(store).removed_ids == result.removed_ids


def test_marks_refuse_bad_input_with_one_line(tmp_path):
    from reviewlib.errors import InputError
    store = _store_with_duplicates(tmp_path)
    with pytest.raises(InputError, match="not in the store"):
        dedup.mark_not_duplicates(store, ["pmid:1", "pmid:999"], "ana")
    with pytest.raises(InputError, match="two or more"):
        dedup.mark_duplicates(store, ["pmid:1"], "ana")
    with pytest.raises(InputError, match="no reviewer"):
        dedup.mark_duplicates(store, ["pmid:1", "pmid:3"], " ")
    assert store.dedup_marks().empty                           # nothing half-written


def test_cli_mark_and_rerun(tmp_path, capsys):
    from reviewlib.cli import main
    store = _store_with_duplicates(tmp_path)
    store.close()
    path = str(tmp_path / "review.sqlite")
    assert main(["dedup", "run", "--store", path]) == 0
    assert "1 duplicates removed" in capsys.readouterr().out
    assert main(["dedup", "mark", "--store", path, "--reviewer", "ana", "--not-duplicates",
                 "pmid:1", "doi:10.1/lupus"]) == 0
    assert main(["dedup", "run", "--store", path]) == 0
    assert "0 duplicates removed" in capsys.readouterr().out
    assert main(["dedup", "marks", "--store", path]) == 0
    assert "not-duplicates\tpmid:1 doi:10.1/lupus\tana" in capsys.readouterr().out
    assert main(["dedup", "mark", "--store", path, "--reviewer", "ana", "--duplicates", "pmid:1", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'nope' is not in the store" in err
    assert main(["dedup", "run", "--store", str(tmp_path / "missing.sqlite")]) == 2


def test_benchmark_loader_refuses_a_wrongly_shaped_set_with_one_line(tmp_path):
    import importlib.util
    from pathlib import Path
    from reviewlib.errors import InputError
    spec = importlib.util.spec_from_file_location("bench_dedup", Path(__file__).parent.parent / "benchmarks" / "dedup.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    (tmp_path / "records_pre_merged.csv").write_text("id,name\n1,x\n")
    (tmp_path / "merged_record_ids.csv").write_text("merged_ids\n1;2\n")
    with pytest.raises(InputError, match="column\\(s\\) ID, title, author, year missing"):
        bench.load_labelled_set(tmp_path)
    (tmp_path / "records_pre_merged.csv").write_text("ID,title,author,year\na,T,X,2020\n")
    with pytest.raises(InputError, match="line 2: ID '1' is not in records_pre_merged.csv"):
        bench.load_labelled_set(tmp_path)
    (tmp_path / "merged_record_ids.csv").unlink()
    with pytest.raises(InputError, match="merged_record_ids.csv is missing"):
        bench.load_labelled_set(tmp_path)


def test_identical_title_and_author_list_in_one_journal_outweighs_conflicting_ids(data_dir):
    """Liu & Yetton, J Inf Technol 24(1) / 25(1), two DOIs: one paper a database mis-recorded; but a recurring
    "Special Section" with the same editors in two volumes stays two items."""
    records = _bib_records(data_dir / DEDUP / "digital_work_same_title_and_authors_conflicting_ids.csv")
    result = dedup.deduplicate(records)
    assert _groups(result) == [["id_1003663", "id_1003664"]]
    merged = result.audit.loc[~result.audit["kept"]].iloc[0]
    assert "all 2 authors the same in one journal" in merged["reasons"] and "DOIs differ" in merged["reasons"]
    # one co-author more, or another given name, and the conflicting identifiers win again
    row = records.index[records["record_id"] == "id_1003664"][0]
    for authors in (["Liu, Li", "Yetton, Philip", "Sauer, Chris"], ["Liu, Wei", "Yetton, Philip"]):
        other = records.copy()
        other.at[row, "authors"] = authors
        assert dedup.deduplicate(other).n_removed == 0


def test_recurring_minitrack_introductions_stay_apart(data_dir):
    """HICSS 2021 and 2022: the same title and chairs each year, two DOIs (bib-dedupe's special cases)."""
    result = dedup.deduplicate(_bib_records(data_dir / DEDUP / "special_cases_recurring_minitrack_introduction.csv"))
    assert result.n_removed == 0


def test_a_heading_before_the_title_is_a_duplicate_but_a_reply_is_not(data_dir):
    """Harvard Business Review 2016: "How did it ... Upwork's CEO on ..." and the bare title, no volume on one."""
    records = _bib_records(data_dir / DEDUP / "digital_work_heading_before_title.csv")
    result = dedup.deduplicate(records)
    assert result.n_removed == 1
    assert "one title ends the other" in result.audit.loc[~result.audit["kept"], "reasons"].iloc[0]
    short = records["title"].str.len().idxmin()
    reply = records.copy()
    reply.loc[reply.index != short, "title"] = "Reply to " + records.at[short, "title"]
    result = dedup.deduplicate(reply)
    assert result.n_removed == 0
    assert len(result.uncertain) == 1          # close, so listed for a person


def test_an_erratum_in_its_articles_issue_joins_it_one_in_a_later_issue_does_not(data_dir):
    """J Inf Technol 33(2): article 151-170, "Erratum to - <title>" on 171, labelled one report; errata in later
    issues (26(4) -> 27(2), 32(2) -> 33(4)) and an unsigned correction in the same issue are labelled apart."""
    records = _bib_records(data_dir / DEDUP / "digital_work_errata_same_and_later_issue.csv")
    result = dedup.deduplicate(records)
    assert _groups(result) == [["id_1005082", "id_1005083"]]
    merged = result.audit.loc[~result.audit["kept"]].iloc[0]
    assert merged["record_id"] == "id_1005083"                 # the article is the record kept
    assert "an erratum printed in its article's issue (33(2))" in merged["reasons"]
    # the same erratum moved to the next issue stays a record of its own
    later = records.copy()
    later.loc[later["record_id"] == "id_1005083", "issue"] = "3"
    assert dedup.deduplicate(later).n_removed == 0
