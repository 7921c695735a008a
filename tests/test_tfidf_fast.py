"""Issue 15: FastTfidfVectorizer gives scikit-learn's TfidfVectorizer matrix and vocabulary, element for
element and in the same storage order (the prioritiser's ranking depends on nothing else)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from reviewlib.screening import tfidf
from reviewlib.screening.prioritise import Prioritiser, record_texts
from reviewlib.sources.pubmed_xml import read_pubmed_xml

DATA = Path(__file__).resolve().parent / "data"
COHEN = DATA / "screening_sets/cohen2006_antihistamines/Antihistamines.csv"
#: the prioritiser's settings
WORD = dict(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_df=0.95, strip_accents="unicode",
            dtype=np.float32)


def _same(a, b) -> None:
    assert type(a) is type(b) and a.shape == b.shape and a.dtype == b.dtype
    assert a.indices.dtype == b.indices.dtype and a.indptr.dtype == b.indptr.dtype
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data)          # bit for bit, in the same storage order


def _texts_cohen() -> list[str]:
    frame = pd.read_csv(COHEN, dtype=str, keep_default_na=False)
    return record_texts(frame)


def _texts_pubmed() -> list[str]:
    frames = [read_pubmed_xml(p) for p in sorted((DATA / "pubmed/efetch").glob("*.xml"))]
    return record_texts(pd.concat(frames, ignore_index=True))


EDGE = ["", "x", "Only", "Été à Zürich: naïve café, CD19-CAR T; CD19 CAR-T", "the the the the", "a b c",
        "Ünïcödé ŒUVRE ﬁne ligatures and ½ fractions", "  ", "T cells T cells T cells", "x y"]


@pytest.mark.parametrize("texts", [_texts_cohen, _texts_pubmed, lambda: EDGE], ids=["cohen", "pubmed", "edge"])
@pytest.mark.parametrize("settings", [WORD, dict(WORD, max_df=1.0), dict(WORD, min_df=2), dict(WORD, max_df=3)],
                         ids=["prioritiser", "no-max-df", "min-df-2", "max-df-count"])
def test_same_matrix_and_vocabulary_as_scikit_learn(texts, settings):
    docs = texts()
    stock = TfidfVectorizer(**settings)
    fast = tfidf.FastTfidfVectorizer(**settings)
    try:
        expected = stock.fit_transform(docs)
    except ValueError as exc:                      # e.g. nothing left after pruning: the same error
        with pytest.raises(ValueError, match=str(exc)[:30]):
            fast.fit_transform(docs)
        return
    got = fast.fit_transform(docs)
    _same(expected, got)
    assert list(stock.vocabulary_.items()) == list(fast.vocabulary_.items())
    assert fast.get_params() == stock.get_params()
    assert fast._fast()


def test_settings_outside_the_fast_path_are_left_to_scikit_learn():
    docs = _texts_cohen()[:300]
    for settings in (dict(WORD, ngram_range=(1, 3)), dict(WORD, stop_words="english"),
                     dict(WORD, max_features=500), dict(analyzer="char_wb", ngram_range=(3, 5), min_df=2)):
        fast = tfidf.FastTfidfVectorizer(**settings)
        assert not fast._fast()
        _same(TfidfVectorizer(**settings).fit_transform(docs), fast.fit_transform(docs))


def test_the_prioritiser_ranks_as_with_scikit_learns_vectoriser():
    frame = pd.read_csv(COHEN, dtype=str, keep_default_na=False)
    frame = frame.assign(record_id="pmid:" + frame["pubmedID"])
    p = Prioritiser(frame, seed=0)
    _same(TfidfVectorizer(**WORD).fit_transform(record_texts(frame)), p.X)


def test_accents_are_stripped_as_scikit_learn_strips_them():
    from sklearn.feature_extraction.text import strip_accents_unicode
    every = [chr(c) for c in range(0x20, 0x30000) if not 0xD800 <= c < 0xE000]
    chunks = ["".join(every[i:i + 500]) for i in range(0, len(every), 500)] + EDGE + _texts_cohen()[:200]
    chunks += ["e\u0301te\u0301 a\u0308\u0323b \u1e0b\u0323x", "ﬁ\u0301 \u0323\u0301e", "Å\u030a ǅ \u2460\u0308"]
    assert [tfidf.strip_accents_unicode(t) for t in chunks] == [strip_accents_unicode(t) for t in chunks]


@pytest.mark.parametrize("block", [1, 7, 1000])
def test_the_same_matrix_whatever_the_block_of_documents(monkeypatch, block):
    """The coded counting numbers terms across blocks of documents: the block size changes nothing."""
    monkeypatch.setattr(tfidf, "BLOCK_DOCUMENTS", block)
    docs = _texts_cohen()[:400] + EDGE
    stock, fast = TfidfVectorizer(**WORD), tfidf.FastTfidfVectorizer(**WORD)
    _same(stock.fit_transform(docs), fast.fit_transform(docs))
    assert list(stock.vocabulary_.items()) == list(fast.vocabulary_.items())


def test_other_token_patterns_count_in_dictionaries_with_the_same_result():
    """The coded path sorts terms as tuples of words, which needs words without spaces: another token
    pattern (here one that keeps a space inside a token) is counted the dictionary way."""
    settings = dict(WORD, token_pattern=r"(?u)\b\w+(?: \d)?\b")
    docs = _texts_cohen()[:300] + ["drug 5 and drug 6", "a 1 b 2"]
    stock, fast = TfidfVectorizer(**settings), tfidf.FastTfidfVectorizer(**settings)
    _same(stock.fit_transform(docs), fast.fit_transform(docs))
    assert list(stock.vocabulary_.items()) == list(fast.vocabulary_.items())
