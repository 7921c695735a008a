"""A faster fit of scikit-learn's TfidfVectorizer for word 1-2 grams, giving the same matrix (issue 15).

At 100,000 PubMed records, most of :class:`~reviewlib.screening.prioritise.Prioritiser`'s build
is scikit-learn's ``CountVectorizer._count_vocab`` (a Python loop over every word and word pair
of every record, with three dictionary operations each) and its two vocabulary passes (a sort of
``(term, index)`` tuples and a loop deleting pruned terms one by one).
:class:`FastTfidfVectorizer` does the same work with Python only tokenising and giving each word an
id: the word pairs, the terms' numbers (pandas' hash factorizer over 64-bit codes of word ids, in
scikit-learn's order of first occurrence), the per-document counts and the sort of the vocabulary
(terms sort as tuples of their words' ranks) are numpy, over blocks of documents, and the term
strings are made once, for ``vocabulary_``.  Accents are stripped as scikit-learn's
``strip_accents_unicode`` strips them, by one regular expression.  (Without pandas' factorizer, or
with another token pattern, the counting runs in dictionaries, ``collections.Counter`` in C.)
Everything else (tokenising, preprocessing, pruning by document frequency, the TF-IDF weighting and
normalisation) is scikit-learn's own code.  ``benchmarks/tfidf_fit.py`` times the three.

The result is the same sparse matrix, element for element and in the same storage order, and the
same ``vocabulary_`` (``tests/test_tfidf_fast.py`` compares it with ``TfidfVectorizer`` on real
records).  Settings outside the fast path (other n-gram ranges, stop words, ``max_features``,
a fixed vocabulary, a character analyzer) are left to scikit-learn unchanged.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from array import array
from collections import Counter, defaultdict
from itertools import compress, islice

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction import text as _text
from sklearn.feature_extraction.text import TfidfVectorizer

# private helpers of the scikit-learn version installed; without them the fast path is off
_ALIGN = getattr(_text, "_align_api_if_sparse", None)
_DOCUMENT_FREQUENCY = getattr(_text, "_document_frequency", None)
_MAKE_INT_ARRAY = getattr(_text, "_make_int_array", None)
_AVAILABLE = _DOCUMENT_FREQUENCY is not None and _MAKE_INT_ARRAY is not None
try:  # pandas' incremental hash factorizer (labels in order of first appearance, kept across calls)
    from pandas._libs.hashtable import Int64Factorizer as _Factorizer
except ImportError:  # pragma: no cover - then the counting below runs in dictionaries
    _Factorizer = None

#: scikit-learn's default token pattern: tokens of ``\\w`` characters only (what the coded path's sort needs)
_WORDS = r"(?u)\b\w\w+\b"
#: Documents tokenised per block of the coded counting (bounds its transient arrays to ~100 MB).
BLOCK_DOCUMENTS = 4096
#: A term's code: its first word's id in the high 32 bits, the second word's id (or _NO_WORD) in the low.
_NO_WORD = 0xFFFFFFFF
_COMBINING: re.Pattern | None = None


def _combining_pattern() -> re.Pattern:
    """One character class of every code point ``unicodedata.combining`` marks (built once)."""
    global _COMBINING
    if _COMBINING is None:
        marks = filter(unicodedata.combining, map(chr, range(sys.maxunicode + 1)))   # in C: ~0.1 s
        _COMBINING = re.compile("[" + "".join(map(re.escape, marks)) + "]")
    return _COMBINING


def strip_accents_unicode(text: str) -> str:
    """scikit-learn's ``strip_accents_unicode``, the same string: NFKD, then every combining mark removed
    (by one regular expression instead of a Python test per character)."""
    if text.isascii():
        return text
    # only the runs of non-ASCII characters: ASCII characters decompose to themselves and are starters
    # (combining class 0), so NFKD never reorders across them and each run is normalised on its own
    return _NON_ASCII.sub(_strip_run, text)


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _strip_run(match: re.Match) -> str:
    return _combining_pattern().sub("", unicodedata.normalize("NFKD", match.group()))


class _CodedTerms:
    """The vocabulary while fitting: the words (by id) and every term's code, in order of first occurrence."""

    def __init__(self, words: list[str], codes: np.ndarray):
        self.words = words
        self.codes = codes

    def __len__(self) -> int:
        return len(self.codes)

    def terms(self) -> list[str]:
        """The terms' strings, in the codes' order (a word pair joined by one space, as scikit-learn does)."""
        words = np.asarray(self.words + [""], dtype=object)
        first, second = self.codes >> 32, self.codes & _NO_WORD
        single = second == _NO_WORD
        out = np.empty(len(self.codes), dtype=object)
        out[single] = words[first[single]]
        pairs = ~single
        out[pairs] = list(map(" ".join, zip(words[first[pairs]].tolist(), words[second[pairs]].tolist())))
        return out.tolist()


class FastTfidfVectorizer(TfidfVectorizer):
    """:class:`sklearn.feature_extraction.text.TfidfVectorizer` with a faster fit for word 1-2 grams.

    Same parameters, same output (see the module docstring); ``get_params`` is that of
    ``TfidfVectorizer``, so a cache keyed by the parameters stays valid.
    """

    def _fast(self) -> bool:
        return (_AVAILABLE and self.analyzer == "word" and tuple(self.ngram_range) == (1, 2)
                and self.stop_words is None and self.max_features is None)

    #: False: no ``vocabulary_`` is kept after a fit (a cache of the matrix needs none; not a parameter,
    #: so ``get_params`` and a cache keyed by it stay scikit-learn's)
    keep_vocabulary = True

    def fit(self, raw_documents, y=None):
        super().fit(raw_documents, y)
        self._finish_vocabulary()
        return self

    def fit_transform(self, raw_documents, y=None):
        X = super().fit_transform(raw_documents, y)
        self._finish_vocabulary()
        return X

    def _finish_vocabulary(self) -> None:
        """The coded vocabulary (see :meth:`_count_coded`) as scikit-learn's ``{term: column}`` dict."""
        coded = getattr(self, "vocabulary_", None)
        if not self.keep_vocabulary and coded is not None:
            del self.vocabulary_
        elif isinstance(coded, _CodedTerms):
            self.vocabulary_ = dict(zip(coded.terms(), coded.columns.tolist()))

    def _preprocessor(self):
        if self.preprocessor is None and self.strip_accents == "unicode":
            from functools import partial
            return partial(_text._preprocess, accent_function=strip_accents_unicode, lower=self.lowercase)
        return self.build_preprocessor()

    def _count_vocab(self, raw_documents, fixed_vocab):
        if fixed_vocab or not self._fast():
            return super()._count_vocab(raw_documents, fixed_vocab)
        if _Factorizer is not None and self.tokenizer is None and self.token_pattern == _WORDS:
            return self._count_coded(raw_documents)
        vocabulary: defaultdict = defaultdict()
        vocabulary.default_factory = vocabulary.__len__       # a new term gets the next index
        preprocess, tokenize, decode = self._preprocessor(), self.build_tokenizer(), self.decode
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

    def _count_coded(self, raw_documents):
        """The counts with every term a 64-bit code (word ids), numbered by pandas' hash factorizer.

        Python only tokenises and gives each word an id; the word pairs, the terms' numbers (in order
        of first occurrence over the documents, each document's words before its pairs, exactly as
        scikit-learn numbers them) and the per-document counts are numpy over blocks of
        :data:`BLOCK_DOCUMENTS` documents.  Same matrix as scikit-learn's; the term strings are made
        only once, for ``vocabulary_`` (:meth:`_finish_vocabulary`).
        """
        words: defaultdict = defaultdict()
        words.default_factory = words.__len__                 # a new word gets the next id
        preprocess, tokenize, decode = self._preprocessor(), self.build_tokenizer(), self.decode
        if self.input == "content" and self.preprocessor is None and self.lowercase:
            # sklearn's decode returns a str as it is, and its preprocessor is lower() then the accents
            strip = strip_accents_unicode if self.strip_accents == "unicode" else None
            if strip is not None or not self.strip_accents:
                def prepare(doc, strip=strip, decode=decode, lower=str.lower):
                    doc = lower(doc) if type(doc) is str else lower(decode(doc))
                    return strip(doc) if strip is not None else doc
            else:
                def prepare(doc):
                    return preprocess(decode(doc))
        else:
            def prepare(doc):
                return preprocess(decode(doc))
        lookup = words.__getitem__
        factorizer = _Factorizer(1 << 16)
        columns, counts, row_lengths = [], [], []
        documents = iter(raw_documents)
        while True:
            ids, lengths = array("i"), array("q")
            for doc in islice(documents, BLOCK_DOCUMENTS):
                tokens = tokenize(prepare(doc))
                ids.extend(map(lookup, tokens))
                lengths.append(len(tokens))
            if not lengths:
                break
            block_columns, block_counts, block_rows = _block_counts(ids, lengths, factorizer)
            columns.append(block_columns)
            counts.append(block_counts)
            row_lengths.append(block_rows)
        n_terms = factorizer.get_count()
        if not n_terms:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        row_lengths = np.concatenate(row_lengths) if row_lengths else np.zeros(0, dtype=np.int64)
        nnz = int(row_lengths.sum())
        indices_dtype = np.int64 if nnz > np.iinfo(np.int32).max else np.int32
        indptr = np.zeros(len(row_lengths) + 1, dtype=indices_dtype)
        np.cumsum(row_lengths, out=indptr[1:])
        if n_terms > np.iinfo(np.int32).max:  # pragma: no cover - 2 billion terms
            raise ValueError(f"{n_terms} terms: more than the coded counting numbers")
        indices = np.concatenate(columns).astype(indices_dtype, copy=False)
        del columns
        values = np.concatenate(counts).astype(np.intc, copy=False)
        del counts
        X = sp.csr_array((values, indices, indptr), shape=(len(row_lengths), n_terms), dtype=self.dtype)
        X.sort_indices()
        vocabulary = _CodedTerms(list(words), factorizer.uniques.to_array())
        del factorizer, words                                 # the hash table of every term
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
        if isinstance(vocabulary, _CodedTerms):
            # the codes are in index order: keep the unpruned ones in that order (renumbered 0, 1, ...)
            if len(kept_indices) == len(dfs):
                return X                                      # nothing pruned: X[:, every column] is X
            vocabulary.codes = vocabulary.codes[mask]
            return X[:, kept_indices]
        # the vocabulary's order is its index order (each term got the next index): keep the unpruned
        # terms in that order, renumbered 0, 1, ... (sklearn's cumsum of the mask)
        kept = list(compress(list(vocabulary), mask.tolist()))
        vocabulary.clear()
        vocabulary.update(zip(kept, range(len(kept))))
        return X[:, kept_indices]

    def _sort_features(self, X, vocabulary):
        if not self._fast():
            return super()._sort_features(X, vocabulary)
        if isinstance(vocabulary, _CodedTerms):
            order = _coded_term_order(vocabulary)
        else:
            terms = list(vocabulary)                 # in index order (see _limit_features)
            order = sorted(range(len(terms)), key=terms.__getitem__)
        map_index = np.empty(len(order), dtype=X.indices.dtype)
        map_index[order] = np.arange(len(order), dtype=X.indices.dtype)
        if isinstance(vocabulary, _CodedTerms):
            vocabulary.columns = map_index           # the dict is made after the fit (_finish_vocabulary)
        else:
            vocabulary.update(zip(terms, map_index.tolist()))
        X.indices = map_index.take(X.indices, mode="clip")
        return X


def _block_counts(ids: array, lengths: array, factorizer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column numbers, counts and row lengths of one block of documents (rows sorted by column).

    ``ids`` are the block's word ids, document after document (``lengths`` words each).  Each
    document's terms are laid out as scikit-learn's analyzer yields them, its words then its word
    pairs, so that ``factorizer`` numbers new terms in scikit-learn's order.
    """
    word = np.frombuffer(ids, dtype=np.int32).astype(np.int64)
    n = np.frombuffer(lengths, dtype=np.int64)
    pairs_per_doc = np.maximum(n - 1, 0)
    width = n + pairs_per_doc                                  # terms laid out per document
    out_start = np.cumsum(width) - width
    word_start = np.cumsum(n) - n
    doc_of_word = np.repeat(np.arange(len(n)), n)
    shift = (out_start - word_start)[doc_of_word]              # a word's slot: its position + shift
    sequence = np.empty(int(width.sum()), dtype=np.int64)
    position = np.arange(len(word))
    sequence[position + shift] = (word << 32) | _NO_WORD
    first = np.ones(len(word), dtype=bool)                     # words with a next word in their document
    ends = (word_start + n - 1)[n > 0]
    first[ends] = False
    left = np.flatnonzero(first)
    sequence[left + shift[left] + n[doc_of_word[left]]] = (word[left] << 32) | word[left + 1]
    del word, shift, position, first, left
    # numbered within the block first (a small hash table), then the block's distinct terms, in their
    # order of first occurrence, by the whole fit's factorizer: new terms get its numbers in that order
    local = _Factorizer(max(1024, len(sequence) // 4))
    labels = local.factorize(sequence).astype(np.int64, copy=False)
    global_of_local = factorizer.factorize(local.uniques.to_array())
    del local, sequence
    keys = (np.repeat(np.arange(len(n), dtype=np.int64), width) << 32) | labels
    del labels
    keys, counts = np.unique(keys, return_counts=True)         # by document, then block number
    rows = np.bincount((keys >> 32).astype(np.intp), minlength=len(n))
    # rows are sorted by column once the whole matrix is built (X.sort_indices)
    return global_of_local[keys & _NO_WORD].astype(np.int32), counts.astype(np.intc), rows


def _coded_term_order(vocabulary: _CodedTerms) -> np.ndarray:
    """The codes' positions in the terms' string order, without making the strings.

    Words hold only ``\\w`` characters, all above the space that joins a pair, so a term's string
    sorts as the tuple of its words: (first word's rank, 0) for a word, (first's, second's + 1) for
    a pair.
    """
    words = vocabulary.words
    rank = np.empty(len(words) + 1, dtype=np.int64)
    rank[sorted(range(len(words)), key=words.__getitem__)] = np.arange(len(words), dtype=np.int64)
    first, second = vocabulary.codes >> 32, vocabulary.codes & _NO_WORD
    single = second == _NO_WORD
    second_rank = np.where(single, 0, rank[np.where(single, 0, second)] + 1)
    key = rank[first] * (len(words) + 1) + second_rank
    return np.argsort(key, kind="stable")


__all__ = ["FastTfidfVectorizer"]
