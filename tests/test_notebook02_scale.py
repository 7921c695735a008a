"""Issue 15 (notebook 02 at 100,000 records): the screening-progress curve, the screening status and the
replay read ids and decisions only, and give what the record-decoding versions gave."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reviewlib.records import conform
from reviewlib.report import figures, prisma
from reviewlib.screening import dedup
from reviewlib.store import ReviewStore


@pytest.fixture
def deduplicated_store(tmp_path):
    """20 records, two of them copies (same DOI) that a saved deduplication removes; rule and human decisions,
    an undo among them."""
    store = ReviewStore(tmp_path / "review.sqlite")
    search = store.add_search("pubmed", "car t AND lupus")
    n = 20
    pmids = [str(100 + i) for i in range(n - 2)] + [None, None]      # the last two: copies of 3 and 5
    doi = [f"10.1000/{i}" for i in range(n - 2)] + ["10.1000/3", "10.1000/5"]
    titles = [f"CAR T cells in lupus, study {i}" for i in range(n - 2)] + [f"CAR T cells in lupus, study {i}" for i in (3, 5)]
    store.add_records(conform(pd.DataFrame({"pmid": pmids, "title": titles, "doi": doi, "year": ["2023"] * n})),
                      search_id=search)
    result = dedup.run(store)
    assert result.n_removed == 2
    ids = store.record_ids()
    for i, record_id in enumerate(ids):
        store.append_decision(record_id, "rules", "title-abstract", "include" if i % 3 == 0 else "exclude",
                              None if i % 3 == 0 else "wrong-population", kind="rule")
    for i in (7, 2, 11, 4, 19, 8):
        store.append_decision(ids[i], "ana", "title-abstract", "include" if i % 2 else "exclude",
                              None if i % 2 else "wrong-population")
    store.append_decision("pmid:108", "ana", "title-abstract", "undo", None,
                          "undoes human decision of x (exclude)", kind="undo")
    yield store
    store.close()


def _store_curve_decoding_records(store):
    """figures._store_curve as it was: the screening set from dedup.screening_records (every record decoded)."""
    screening = set(dedup.screening_records(store)["record_id"])
    history = store.decisions()
    ta = history[(history["stage"] == prisma.STAGE_SCREENING) & (history["kind"] != "undo")
                 & history["record_id"].isin(screening)]
    order = ta.sort_values("decision_id").drop_duplicates("record_id")["record_id"]
    final = prisma.stage_decisions(store, prisma.STAGE_SCREENING)
    includes = set(final.loc[final["decision"] == "include", "record_id"])
    found = np.cumsum([r in includes for r in order])
    return pd.DataFrame({"screened": np.arange(1, len(order) + 1), "found": found}), len(screening)


def test_the_store_curve_leaves_out_removed_duplicates_without_decoding_records(deduplicated_store):
    curve, total = figures._store_curve(deduplicated_store)
    expected, expected_total = _store_curve_decoding_records(deduplicated_store)
    assert total == expected_total == 18
    pd.testing.assert_frame_equal(curve, expected)
    assert len(curve) == 18 and curve["found"].iloc[-1] > 0
