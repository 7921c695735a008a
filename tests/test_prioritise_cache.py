"""The prioritiser's TF-IDF kept in the review's cache gives the same ranking (issue 15: screener opening)."""
from __future__ import annotations

import numpy as np

from reviewlib.protocol import PACKAGE_DATA
from reviewlib.screening.prioritise import Prioritiser
from reviewlib.sources.openalex import read_openalex


def test_cached_tfidf_gives_the_same_scores_and_ranking(tmp_path):
    records = read_openalex(PACKAGE_DATA / "meijboom-2021" / "works_1.zip")
    ids = list(records["openalex_id"]) if "openalex_id" in records.columns else None
    fresh = Prioritiser(records, seed=3, cache_dir=tmp_path)
    files = list(tmp_path.glob("tfidf-*.npz"))
    assert len(files) == 1
    again = Prioritiser(records, seed=3, cache_dir=tmp_path)       # read from the cache
    assert (fresh.X != again.X).nnz == 0 and fresh.X.shape == again.X.shape
    labels = {fresh.ids[i]: int(i % 7 == 0) for i in range(0, 60)}
    assert fresh.rank(labels) == again.rank(labels)
    np.testing.assert_array_equal(fresh.scores(np.arange(10, 40)), again.scores(np.arange(10, 40)))
    # scoring a subset gives what scoring every record gives on those rows
    plain = Prioritiser(records, seed=3)
    plain.fit(labels)
    rows = np.arange(100, 160)
    np.testing.assert_array_equal(plain.scores(rows), fresh.scores(None)[rows])
    # another record set gets its own file; only the two newest are kept
    Prioritiser(records.iloc[:400], seed=3, cache_dir=tmp_path)
    Prioritiser(records.iloc[:300], seed=3, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("tfidf-*.npz"))) == 2
    del ids


def test_the_run_prepares_the_features_a_reviewers_first_opening_reads(tmp_path, monkeypatch):
    """Notebook 02 (``reviewlib run``) calls ``screener.prepare_prioritiser``: the screener opened
    later on the same records reads the TF-IDF from the review's cache instead of fitting it."""
    import pandas as pd
    from reviewlib.records import conform
    from reviewlib.screening import screener, tfidf
    from reviewlib.screening.eligibility import load_rules
    from reviewlib.protocol import load_protocol
    from reviewlib.store import ReviewStore

    store = ReviewStore(tmp_path / "review" / "review.sqlite")
    works = read_openalex(PACKAGE_DATA / "meijboom-2021" / "works_1.zip").iloc[:300]
    store.add_records(conform(pd.DataFrame({"title": works["title"], "abstract": works["abstract"],
                                            "doi": works.get("doi"), "year": 2020})))
    records = store.records().iloc[::-1]            # any index: the screener resets it
    assert screener.prepare_prioritiser(store, records)
    assert len(list((store.folder / "cache").glob("tfidf-*.npz"))) == 1
    fits = []
    real_fit = tfidf.FastTfidfVectorizer.fit_transform
    monkeypatch.setattr(tfidf.FastTfidfVectorizer, "fit_transform",
                        lambda self, docs, y=None: fits.append(1) or real_fit(self, docs))
    rules = load_rules(load_protocol("car-t-autoimmune"))
    s = screener.Screener(store, "ana", rules=rules, records=records, seed=0, min_interval=0)
    assert s._prioritiser is not None and fits == []          # read, not fitted
    reference = Prioritiser(records.reset_index(drop=True), id_column="record_id")
    assert fits == [1] and (reference.X != s._prioritiser.X).nnz == 0
    # a different record set is fitted (and cached) anew
    assert screener.prepare_prioritiser(store, records.iloc[:100]) and fits == [1, 1]
    assert not screener.prepare_prioritiser(store, records.iloc[:0])


def test_one_changed_text_is_fitted_anew_not_read_from_the_cache(tmp_path, monkeypatch):
    """Issue 15: the TF-IDF is reused only for the same texts; one abstract edited is a new fit."""
    from reviewlib.screening import tfidf
    records = read_openalex(PACKAGE_DATA / "meijboom-2021" / "works_1.zip").iloc[:200].reset_index(drop=True)
    first = Prioritiser(records, seed=3, cache_dir=tmp_path)
    fits = []
    real_fit = tfidf.FastTfidfVectorizer.fit_transform
    monkeypatch.setattr(tfidf.FastTfidfVectorizer, "fit_transform",
                        lambda self, docs, y=None: fits.append(1) or real_fit(self, docs))
    Prioritiser(records, seed=3, cache_dir=tmp_path)
    assert fits == []                                              # unchanged texts: read back
    edited = records.copy()
    edited.at[17, "abstract"] = "Pharmacokinetics of a wholly different compound in healthy volunteers."
    changed = Prioritiser(edited, seed=3, cache_dir=tmp_path)
    assert fits == [1] and changed.X.shape != first.X.shape           # fitted anew: new words, new columns
    assert (changed.X != Prioritiser(edited, seed=3).X).nnz == 0   # as a fit without any cache gives
    assert len(list(tmp_path.glob("tfidf-*.npz"))) == 2
