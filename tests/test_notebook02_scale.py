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


def _final_decisions_grouping_every_record(current):
    """decisions.final_decisions as it was: a pandas aggregation (Python per record) over every human call."""
    from reviewlib.screening.decisions import FINAL_COLUMNS, RULES_REVIEWER, _joined_reasons, _kind_class
    classes = current["kind"].map(_kind_class)
    resolution = (current[classes == "resolution"].sort_values(["created_at", "decision_id"], kind="stable")
                  .drop_duplicates("record_id", keep="last"))
    parts = [pd.DataFrame({"record_id": resolution["record_id"], "decision": resolution["decision"],
                           "reason": resolution["reason"], "basis": "resolution",
                           "reviewers": resolution["reviewer"]})]
    settled = set(resolution["record_id"])
    humans = current[(classes == "human") & ~current["record_id"].isin(settled)]
    if not humans.empty:
        agg = humans.groupby("record_id", sort=False).agg(
            n=("decision", "size"), calls=("decision", "nunique"), decision=("decision", "first"),
            reviewers=("reviewer", lambda names: ", ".join(sorted(names))), reason=("reason", _joined_reasons))
        conflict = agg["calls"] > 1
        parts.append(pd.DataFrame({
            "record_id": agg.index, "decision": agg["decision"].where(~conflict, "conflict").to_numpy(),
            "reason": agg["reason"].where(~conflict, None).to_numpy(),
            "basis": ["conflict" if c else ("single" if n == 1 else "agreed") for c, n in zip(conflict, agg["n"])],
            "reviewers": agg["reviewers"].to_numpy()}))
        settled |= set(agg.index)
    rules = current[~current["record_id"].isin(settled)].drop_duplicates("record_id", keep="last")
    parts.append(pd.DataFrame({"record_id": rules["record_id"], "decision": rules["decision"],
                               "reason": rules["reason"], "basis": "rules", "reviewers": RULES_REVIEWER}))
    final = pd.concat([p.astype(object) for p in parts if not p.empty], ignore_index=True)
    order = {r: i for i, r in enumerate(pd.unique(current["record_id"]))}
    final = final.sort_values("record_id", key=lambda ids: ids.map(order), kind="stable").reset_index(drop=True)
    final = final.reindex(columns=FINAL_COLUMNS)
    return final.astype(object).where(final.notna(), None)


def test_final_decisions_of_single_calls_agreements_conflicts_and_resolutions(deduplicated_store):
    from reviewlib.screening import decisions
    store = deduplicated_store
    ids = store.record_ids()
    store.append_decision(ids[7], "bo", "title-abstract", "include")                     # agrees with ana
    store.append_decision(ids[2], "bo", "title-abstract", "include")                     # conflicts with ana
    store.append_decision(ids[4], "bo", "title-abstract", "exclude", "preclinical")      # agrees, other reason
    store.append_decision(ids[11], "bo", "title-abstract", "exclude", "wrong-population")  # conflicts
    store.append_decision(ids[11], "cy", "title-abstract", "include", kind="resolution")
    store.append_decision(ids[13], "bo", "title-abstract", "maybe")
    store.append_decision(ids[14], "bo", "title-abstract", "exclude")                    # no reason given
    current = decisions.current_decisions(store, stage="title-abstract")
    got = decisions.final_decisions(store, "title-abstract")
    pd.testing.assert_frame_equal(got, _final_decisions_grouping_every_record(current))
    basis = dict(zip(got["record_id"], got["basis"]))
    assert {basis[ids[i]] for i in (7, 4)} == {"agreed"} and basis[ids[2]] == "conflict"
    assert basis[ids[11]] == "resolution" and basis[ids[13]] == basis[ids[14]] == "single"
    assert basis[ids[0]] == "rules"


def test_prepare_tfidf_keeps_the_matrix_a_prioritiser_of_the_same_records_reads(tmp_path, monkeypatch):
    """screener.prepare_prioritiser (notebook 02) fits only the matrix; the Prioritiser built later on the same
    records reads it, equal to a fit without any cache; one changed abstract is another file."""
    from pathlib import Path
    from reviewlib.screening import prioritise, tfidf
    cohen = Path(__file__).resolve().parent / "data/screening_sets/cohen2006_antihistamines/Antihistamines.csv"
    records = pd.read_csv(cohen, dtype=str, keep_default_na=False).iloc[:250]
    path = prioritise.prepare_tfidf(records, tmp_path)
    assert path.is_file() and list(tmp_path.glob("tfidf-*.npz")) == [path]
    fits = []
    real_fit = tfidf.FastTfidfVectorizer.fit_transform
    monkeypatch.setattr(tfidf.FastTfidfVectorizer, "fit_transform",
                        lambda self, docs, y=None: fits.append(self.keep_vocabulary) or real_fit(self, docs))
    cached = prioritise.Prioritiser(records, cache_dir=tmp_path)
    assert fits == []                                             # read, not fitted
    fresh = prioritise.Prioritiser(records)
    assert fits == [True] and fresh.vectoriser.vocabulary_
    assert cached.X.shape == fresh.X.shape and (cached.X != fresh.X).nnz == 0
    assert prioritise.prepare_tfidf(records, tmp_path) == path and fits == [True]     # already there
    edited = records.copy()
    edited.iloc[3, edited.columns.get_loc("abstract")] = "An unrelated abstract on pharmacokinetics."
    other = prioritise.prepare_tfidf(edited, tmp_path)
    assert other != path and fits == [True, False]               # fitted anew, without a vocabulary
    assert (prioritise.Prioritiser(edited, cache_dir=tmp_path).X != prioritise.Prioritiser(edited).X).nnz == 0


def test_a_vectoriser_that_keeps_no_vocabulary_gives_the_same_matrix():
    from reviewlib.screening import tfidf
    from reviewlib.screening.prioritise import _word_vectoriser
    from pathlib import Path
    cohen = Path(__file__).resolve().parent / "data/screening_sets/cohen2006_antihistamines/Antihistamines.csv"
    texts = pd.read_csv(cohen, dtype=str, keep_default_na=False)["abstract"].tolist()[:300]
    kept, lean = _word_vectoriser(), _word_vectoriser()
    lean.keep_vocabulary = False
    a, b = kept.fit_transform(texts), lean.fit_transform(texts)
    assert (a != b).nnz == 0 and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data)
    assert hasattr(kept, "vocabulary_") and not hasattr(lean, "vocabulary_")
    assert lean.get_params() == kept.get_params() and isinstance(lean, tfidf.FastTfidfVectorizer)


def test_the_tfidf_cache_name_is_the_hash_of_each_texts_length_and_bytes(tmp_path):
    """The cache file's name hashes the settings, then every text's length and UTF-8 bytes in order (hashed in
    blocks: the same digest as one update per text, so caches written before keep their names)."""
    import hashlib
    import sklearn
    from reviewlib.screening import prioritise
    texts = [f"text {i} é" * (i % 5) for i in range(20000)] + ["\ud800 lone surrogate"]
    vectoriser = prioritise._word_vectoriser()
    digest = hashlib.sha256()
    params = sorted((k, repr(v)) for k, v in vectoriser.get_params().items())
    digest.update(repr((prioritise.TFIDF_CACHE_VERSION, sklearn.__version__, params, "word", len(texts))).encode())
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    path = prioritise._tfidf_cache_path(tmp_path, texts, vectoriser, "word")
    assert path == tmp_path / f"tfidf-{digest.hexdigest()[:32]}.npz"
    assert prioritise._tfidf_cache_path(tmp_path, texts[:-1] + ["\ud800 lone surrogatE"], vectoriser) != path
