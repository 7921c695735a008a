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
