"""A faster fit of scikit-learn's TfidfVectorizer for word 1-2 grams, giving the same matrix (issue 15).

At 100,000 PubMed records, most of :class:`~reviewlib.screening.prioritise.Prioritiser`'s build
is scikit-learn's ``CountVectorizer._count_vocab`` (a Python loop over every word and word pair
of every record, with three dictionary operations each) and its two vocabulary passes (a sort of
``(term, index)`` tuples and a loop deleting pruned terms one by one).
:class:`FastTfidfVectorizer` does the same work with the counting in C (``collections.Counter``,
``map`` over the vocabulary's ``__getitem__``), the word pairs joined by ``map``, and the
vocabulary rebuilt in bulk.  Everything else (tokenising, preprocessing, pruning by document
frequency, the TF-IDF weighting and normalisation) is scikit-learn's own code.

The result is the same sparse matrix, element for element and in the same storage order, and the
same ``vocabulary_`` (``tests/test_tfidf_fast.py`` compares it with ``TfidfVectorizer`` on real
records).  Settings outside the fast path (other n-gram ranges, stop words, ``max_features``,
a fixed vocabulary, a character analyzer) are left to scikit-learn unchanged.
"""
from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from itertools import compress

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction import text as _text
from sklearn.feature_extraction.text import TfidfVectorizer

# private helpers of the scikit-learn version installed; without them the fast path is off
_ALIGN = getattr(_text, "_align_api_if_sparse", None)
_DOCUMENT_FREQUENCY = getattr(_text, "_document_frequency", None)
_MAKE_INT_ARRAY = getattr(_text, "_make_int_array", None)
_AVAILABLE = _DOCUMENT_FREQUENCY is not None and _MAKE_INT_ARRAY is not None


class FastTfidfVectorizer(TfidfVectorizer):
    """:class:`sklearn.feature_extraction.text.TfidfVectorizer` with a faster fit for word 1-2 grams.

    Same parameters, same output (see the module docstring); ``get_params`` is that of
    ``TfidfVectorizer``, so a cache keyed by the parameters stays valid.
    """

    def _fast(self) -> bool:
        return (_AVAILABLE and self.analyzer == "word" and tuple(self.ngram_range) == (1, 2)
                and self.stop_words is None and self.max_features is None)

    def _count_vocab(self, raw_documents, fixed_vocab):
        if fixed_vocab or not self._fast():
            return super()._count_vocab(raw_documents, fixed_vocab)
        vocabulary: defaultdict = defaultdict()
        vocabulary.default_factory = vocabulary.__len__       # a new term gets the next index
        preprocess, tokenize, decode = self.build_preprocessor(), self.build_tokenizer(), self.decode
        lookup, space_join = vocabulary.__getitem__, " ".join
        j_indices = array("q")
        values = _MAKE_INT_ARRAY()
        indptr = [0]
        for doc in raw_documents:
            tokens = tokenize(preprocess(decode(doc)))
            # the words, then the word pairs (sklearn's _word_ngrams), counted in order of first occurrence
            counts = Counter(tokens)
            counts.update(map(space_join, zip(tokens, tokens[1:])))
            j_indices.extend(map(lookup, counts))
            values.extend(counts.values())
            indptr.append(len(j_indices))
        vocabulary = dict(vocabulary)
        if not vocabulary:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        indices_dtype = np.int64 if indptr[-1] > np.iinfo(np.int32).max else np.int32
        X = sp.csr_array((np.frombuffer(values, dtype=np.intc), np.asarray(j_indices, dtype=indices_dtype),
                          np.asarray(indptr, dtype=indices_dtype)),
                         shape=(len(indptr) - 1, len(vocabulary)), dtype=self.dtype)
        X.sort_indices()
        return vocabulary, (_ALIGN(X) if _ALIGN is not None else X)

    def _limit_features(self, X, vocabulary, high=None, low=None, limit=None):
        if not self._fast() or limit is not None or high is None or low is None:
            return super()._limit_features(X, vocabulary, high, low, limit)
        dfs = _DOCUMENT_FREQUENCY(X)
        mask = np.ones(len(dfs), dtype=bool)
        mask &= dfs <= high
        mask &= dfs >= low
        kept_indices = np.where(mask)[0]
        if len(kept_indices) == 0:
            raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
        # the vocabulary's order is its index order (each term got the next index): keep the unpruned
        # terms in that order, renumbered 0, 1, ... (sklearn's cumsum of the mask)
        kept = list(compress(list(vocabulary), mask.tolist()))
        vocabulary.clear()
        vocabulary.update(zip(kept, range(len(kept))))
        return X[:, kept_indices]

    def _sort_features(self, X, vocabulary):
        if not self._fast():
            return super()._sort_features(X, vocabulary)
        terms = list(vocabulary)                 # in index order (see _limit_features)
        order = sorted(range(len(terms)), key=terms.__getitem__)
        map_index = np.empty(len(terms), dtype=X.indices.dtype)
        map_index[order] = np.arange(len(terms), dtype=X.indices.dtype)
        vocabulary.update(zip(terms, map_index.tolist()))
        X.indices = map_index.take(X.indices, mode="clip")
        return X


__all__ = ["FastTfidfVectorizer"]
