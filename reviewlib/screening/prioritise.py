"""AI prioritisation of the screening queue (active learning on title and abstract).

The model is a TF-IDF representation of "title + abstract" (word 1-2 grams,
sublinear term frequency, accents stripped) and a linear classifier trained on
the decisions made so far, with class weighting because relevant records are
rare.  The unscreened records are then ordered most-likely-relevant first
(ASReview's "max" query strategy).

The vectoriser is fitted once on the whole corpus when a :class:`Prioritiser`
is built (TF-IDF needs no labels); each new decision retrains only the
classifier, which is what keeps a retrain fast (see ``benchmarks/screening.py``
for the measured time at 10,000 records).

Models (``model=``):

``"nblogistic"`` (default since issue 14's third round)
    :class:`NBScaledLogistic`: at each retrain every TF-IDF feature is scaled
    by ``0.75 + 0.25 |r|``, ``r`` its naive-Bayes log-count ratio among the
    labelled records (Wang and Manning 2012), then the L2 logistic regression
    below (C=1, liblinear dual) is fitted with relevant records weighted
    :data:`NB_RELEVANT_WEIGHT` = 20: features that separate the
    labelled includes from the excludes are penalised less.  One fit per
    retrain, as the plain model.  The weight 20 was chosen in the sixth round
    (``benchmarks/results/screening_grid_stage6_tables.txt``; same eight sets,
    seeds 0-4, same score): 0.3387 (WSS@95 0.321, RRF@10 35.6) against 0.3309
    for weight 5 (0.321, 34.0) and 0.3343 for weight 5 with C=0.5;
    leave-one-dataset-out 0.3387, weight 20 chosen in 8 of 8 folds.  Weight
    20 gains on the high-prevalence Cohen sets and Meijboom, loses on NSAIDs
    and urinary incontinence.  The NB-scaled model itself (with weight 5)
    was chosen in the third round by ``benchmarks/screening_grid.py`` on the mean, over the eight development sets (Cohen 2006 antihistamines,
    ADHD, estrogens, NSAIDs, oral hypoglycaemics, triptans, urinary
    incontinence; SYNERGY Meijboom 2021; seeds 0 and 1), of
    (WSS@95 + RRF@10/100)/2: 0.3418 against 0.3352 for the plain weight-5 LR
    below (leave-one-dataset-out over the whole grid of three rounds: 0.3418,
    this setting chosen in 8 of 8 folds;
    ``benchmarks/results/screening_grid_stage3_tables.txt``).  Its WSS@95 mean
    is higher (0.324 vs 0.306), its RRF@10 mean a little lower (36.0 vs 36.4).
    The same round measured: the full NB scale (beta 1) 0.3047 (WSS@95 0.338
    but RRF@10 27.2), beta 0.5 0.3273, the include weight
    min(5, n_excluded/n_included) of the labelled records 0.3250 (cap 10:
    0.3216; the cap seldom binds, so it is nearly scikit-learn's "balanced"),
    C=0.3 0.3343 (weight 20 with C=0.3: 0.3171), 10 % most-uncertain picks
    0.3324.  The differences are within seed-to-seed noise.
``"logistic"``
    L2 logistic regression (C=1, liblinear dual solver) on TF-IDF word 1-2
    grams, each relevant record weighted :data:`RELEVANT_WEIGHT` (5) times an
    irrelevant one, weights scaled to mean 1 (the default before).  Chosen
    (issue 14, first two rounds) by ``benchmarks/screening_grid.py`` on the
    same sets, seeds and score, among settings whose retrain
    stays under 0.5 s at 10,000 records: weight 5 scored 0.3352, weight 20 (the
    model before) 0.3296, balanced classes 0.3209, C=4 0.3293, ASReview's
    ELAS u4 re-implemented 0.3271, LR+NB and LR+SVM rank ensembles 0.3244 and
    0.3247.  Word plus character 3-5 grams scored 0.3359 but its retrain took
    4 times as long (1.84 s against 0.46 s at 10,000 records, 5,000 labelled,
    same run: ``benchmarks/results/screening_retrain_features.txt``), over the
    0.5 s budget, so it is an option (``features="word+char"``), not the
    default.  The differences are within seed-to-seed noise; the
    leave-one-dataset-out estimate of this selection is 0.3239.  A second
    round (same sets and seeds; ``benchmarks/results/screening_grid_stage2_tables.txt``)
    did not beat weight 5 either: rank- and z-score-averaged ensembles of it
    with the ELAS u4 SVM 0.3319 and 0.3302, weight 10 0.3312, word n-grams
    seen at least twice 0.3299, the title read twice 0.3294, English stop
    words removed 0.3256, 100 LSA dimensions appended 0.3206 / 0.3210,
    ASReview's balanced weights (ratio 9.8) in the LR 0.3230, title-only
    records ranked among themselves 0.3108 (leave-one-dataset-out over the
    whole grid: 0.3307, weight 5 chosen in 7 of 8 folds);
    cheaper character n-grams (4-grams, 20,000 kept) still multiply the
    non-zeros per record and the retrain time
    (``benchmarks/screening_features_timing.py``).
``"svm"``
    ASReview LAB 2's default model (ELAS u4) re-implemented: linear SVM
    (C=0.11), class weights with ASReview's "balanced" ratio 9.8.
``"nb"``
    Multinomial naive Bayes (alpha 3.822, ASReview's ELAS u3), balanced weights.

Everything is deterministic for a given ``seed`` (ties in the ranking are
broken by a seeded permutation).
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import rankdata
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB
from sklearn.svm import LinearSVC

from ..errors import InputError
from .tfidf import FastTfidfVectorizer

logger = logging.getLogger(__name__)

#: Models understood by :class:`Prioritiser` ("a+b": rank-averaged ensemble of a and b).
MODELS = ("logistic", "nblogistic", "svm", "nb", "logistic+svm", "logistic+nb", "logistic+nblogistic")
DEFAULT_MODEL = "nblogistic"
#: Feature sets: TF-IDF word 1-2 grams, or those plus character 3-5 grams (within word boundaries).
FEATURES = ("word", "word+char")
DEFAULT_FEATURES = "word"
#: Weight of a relevant record relative to an irrelevant one in the plain logistic model.
RELEVANT_WEIGHT = 5.0
#: Shrinkage of the default model's NB scale towards 1 (features scaled by ``1 - beta + beta |r|``).
NB_BETA = 0.25
#: Weight of a relevant record in the NB-scaled logistic model (the default model).
NB_RELEVANT_WEIGHT = 20.0
#: Inverse regularisation of the NB-scaled logistic model.
NB_C = 1.0
#: Columns tried, in order, for a record's id when none is named.
ID_COLUMNS = ("record_id", "pmid", "openalex_id", "doi")


def titles_and_abstracts(records: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Each record's title and abstract as strings ("" for none): what :func:`record_texts` joins.

    Raises
    ------
    InputError
        If ``records`` has no ``title`` column.
    """
    if "title" not in records.columns:
        raise InputError("records have no 'title' column: give a records table (title, abstract)")
    titles = records["title"].fillna("").astype(str).tolist()
    abstracts = (records["abstract"].fillna("").astype(str).tolist() if "abstract" in records.columns
                 else [""] * len(records))
    return titles, abstracts


def record_texts(records: pd.DataFrame) -> list[str]:
    """The text the model reads for each record: title, then abstract (an empty abstract is skipped).

    Raises
    ------
    InputError
        If ``records`` has no ``title`` column.
    """
    titles, abstracts = titles_and_abstracts(records)
    return [f"{t} {a}".strip() for t, a in zip(titles, abstracts)]


def record_ids(records: pd.DataFrame, id_column: str | None = None) -> list[Hashable]:
    """The ids of ``records``: ``id_column``, else the first of :data:`ID_COLUMNS` that is complete and unique, else the index."""
    if id_column is not None:
        if id_column not in records.columns:
            raise InputError(f"records have no column {id_column!r} to use as record id: name an existing column")
        ids = list(records[id_column])
        if len(set(ids)) != len(ids):
            raise InputError(f"record id column {id_column!r} has duplicate values: give a unique id column")
        return ids
    for col in ID_COLUMNS:
        if col in records.columns:
            values = records[col]
            if values.notna().all() and values.is_unique:
                return list(values)
    return list(records.index)


@dataclass(frozen=True)
class RemainingEstimate:
    """How many relevant records the unscreened queue probably still holds.

    Attributes
    ----------
    expected : float
        Sum over unscreened records of the model's prior-corrected probability
        of relevance (a rough, usually generous, estimate).
    unscreened : int
        Number of records not yet screened.
    found : int
        Relevant records among the screened ones.
    recent_rate : float
        Share of relevant records among the last ``window`` decisions in
        screening order (NaN when no order was given).
    """

    expected: float
    unscreened: int
    found: int
    recent_rate: float

    @property
    def estimated_recall(self) -> float:
        """found / (found + expected): the share of relevant records probably found so far."""
        total = self.found + self.expected
        return float(self.found / total) if total > 0 else float("nan")

    def line(self) -> str:
        """One line for a screener's progress display."""
        return (f"~{self.expected:.0f} relevant expected among {self.unscreened} unscreened "
                f"(found {self.found}; estimated recall {self.estimated_recall:.0%})")


class NBScaledLogistic:
    """Logistic regression on TF-IDF features scaled by their naive-Bayes log-count ratio (NBSVM-style).

    Each retrain first measures, on the labelled rows, how much more often a
    feature occurs in relevant than in irrelevant records (Wang and Manning
    2012, "Baselines and bigrams": the log-count ratio
    ``r = log((p / |p|) / (q / |q|))`` with ``p`` and ``q`` the numbers of
    relevant and irrelevant records containing the feature, plus ``alpha``),
    then fits an L2 logistic regression on ``X * r``.  The ratio is the
    penalty's scale: features that separate the labelled classes are cheap
    to use, features seen equally often in both are damped.

    Parameters
    ----------
    C : float
        Inverse regularisation of the logistic regression.
    alpha : float
        Smoothing count added to every feature's two document counts.
    beta : float
        Shrinkage of the scale towards 1: features are scaled by
        ``(1 - beta) + beta * r`` (with ``beta`` < 1, by ``(1 - beta) + beta * |r|``:
        only the size of the scale matters to the logistic regression, its
        sign goes into the coefficient).  ``beta=1`` is the NB-scaled model,
        ``beta=0`` the plain logistic regression.
    random_state : int
        Seed of liblinear's coordinate order.
    """

    def __init__(self, C: float = 1.0, alpha: float = 1.0, beta: float = 1.0, random_state: int = 0):
        self.C = C
        self.alpha = alpha
        self.beta = beta
        self.random_state = random_state
        self.ratio_: np.ndarray | None = None

    def log_count_ratio(self, X: sparse.csr_matrix, y: np.ndarray) -> np.ndarray:
        """``r`` of each column of ``X`` (rows labelled ``y``): counts of records with a non-zero entry."""
        X = sparse.csr_matrix(X)
        n_features = X.shape[1]
        # the label of each stored entry's row, without slicing the rows of either class out of X
        entry_label = np.repeat(np.asarray(y, dtype=int), np.diff(X.indptr))
        held = X.data != 0
        p = self.alpha + np.bincount(X.indices[held & (entry_label == 1)], minlength=n_features)
        q = self.alpha + np.bincount(X.indices[held & (entry_label == 0)], minlength=n_features)
        return np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)

    def fit(self, X: sparse.csr_matrix, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "NBScaledLogistic":
        """Measure ``r`` on ``(X, y)`` and fit the logistic regression on ``X * r``."""
        y = np.asarray(y, dtype=int)
        r = self.log_count_ratio(X, y)
        self.ratio_ = r if self.beta == 1.0 else ((1.0 - self.beta) + self.beta * np.abs(r)).astype(np.float32)
        self.logistic_ = LogisticRegression(C=self.C, solver="liblinear", dual=True, max_iter=1000,
                                            random_state=self.random_state)
        scaled = sparse.csr_matrix(X, copy=True)
        scaled.data *= self.ratio_[scaled.indices]     # X * r, entry by entry (no COO round trip)
        self.logistic_.fit(scaled, y, sample_weight=sample_weight)
        # X @ (r * w) + b is the decision value of X * r: no scaled copy of the whole corpus to score it
        self.coef_ = (self.logistic_.coef_.ravel() * self.ratio_).astype(np.float64)
        self.intercept_ = float(self.logistic_.intercept_[0])
        return self

    def decision_function(self, X: sparse.csr_matrix) -> np.ndarray:
        """Decision values (log-odds under the training weights) of the rows of ``X``."""
        if self.ratio_ is None:
            raise InputError("NBScaledLogistic is not fitted: call fit first")
        return np.asarray(X @ self.coef_, dtype=float).ravel() + self.intercept_


#: Bump when the cached TF-IDF matrices must not be reused (a change of record_texts, say).
TFIDF_CACHE_VERSION = 1


def _tfidf_cache_path(cache_dir: str | os.PathLike, texts: list[str], vectoriser: TfidfVectorizer,
                      features: str = "word") -> Path:
    """The cache file of the TF-IDF matrix of ``texts``: named by a hash of the texts and settings."""
    import hashlib
    import sklearn
    digest = hashlib.sha256()
    params = sorted((k, repr(v)) for k, v in vectoriser.get_params().items())
    digest.update(repr((TFIDF_CACHE_VERSION, sklearn.__version__, params, features, len(texts))).encode())
    block: list[bytes] = []
    for text in texts:   # each text's length then its bytes, hashed a few thousand texts at a time
        data = text.encode("utf-8", "surrogatepass")
        block.append(len(data).to_bytes(8, "little"))
        block.append(data)
        if len(block) >= 8192:
            digest.update(b"".join(block))
            block.clear()
    digest.update(b"".join(block))
    return Path(cache_dir) / f"tfidf-{digest.hexdigest()[:32]}.npz"


def _save_tfidf(path: Path, X: sparse.csr_matrix) -> None:
    """Keep ``X`` at ``path`` (atomically); a cache that cannot be written is only logged."""
    from ..atomic import write_with
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_with(path, lambda tmp: sparse.save_npz(tmp, X, compressed=False))
        # keep the two newest (this record set and the one before): the cache must not grow run by run
        kept = sorted(path.parent.glob("tfidf-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[2:]:
            old.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("prioritiser: could not keep the TF-IDF matrix in %s (%s)", path, exc)


def _word_vectoriser() -> FastTfidfVectorizer:
    """The prioritiser's vectoriser: scikit-learn's TfidfVectorizer, fitted faster (the same matrix:
    :mod:`reviewlib.screening.tfidf`)."""
    return FastTfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_df=0.95,
                               strip_accents="unicode", dtype=np.float32)


def _fit_features(texts: list[str], vectoriser: TfidfVectorizer,
                  features: str) -> tuple[sparse.csr_matrix, TfidfVectorizer | None]:
    """The TF-IDF matrix of ``texts`` (``vectoriser`` fitted on them) and, for ``"word+char"``, the
    fitted character vectoriser whose columns follow the words' (else None)."""
    try:
        X = sparse.csr_matrix(vectoriser.fit_transform(texts))
    except ValueError:  # every text empty or only stop words: fall back to a vocabulary-free matrix
        X = sparse.csr_matrix((len(texts), 1), dtype=np.float32)
    if features != "word+char":
        return X, None
    char_vectoriser = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                                      min_df=2, max_df=0.95, strip_accents="unicode", dtype=np.float32)
    try:
        chars = char_vectoriser.fit_transform(texts)
        # each block has unit-norm rows: scaled by 1/sqrt(2), the joined rows stay unit-norm
        X = sparse.csr_matrix(sparse.hstack([X, chars]) / np.sqrt(2.0), dtype=np.float32)
    except ValueError:  # no character n-gram in two records: words alone
        pass
    return X, char_vectoriser


def prepare_tfidf(records: pd.DataFrame, cache_dir: str | os.PathLike,
                  features: str = DEFAULT_FEATURES) -> Path:
    """Fit the TF-IDF a :class:`Prioritiser` of ``records`` would fit and keep it in ``cache_dir``, where
    that Prioritiser (same records, ``features`` and ``cache_dir``) reads it instead of fitting.

    Unlike building the Prioritiser, nothing else is made: no record ids, no ``vocabulary_`` (the term
    strings of a 100,000-record fit are hundreds of MB).  The same texts already in the cache are
    not fitted again.

    Returns
    -------
    pathlib.Path
        The cache file.
    """
    titles, abstracts = titles_and_abstracts(records)
    return prepare_tfidf_texts(titles, abstracts, cache_dir, features)


def prepare_tfidf_texts(titles: list[str], abstracts: list[str], cache_dir: str | os.PathLike,
                        features: str = DEFAULT_FEATURES) -> Path:
    """:func:`prepare_tfidf` of the records whose titles and abstracts (strings, "" for none) these are:
    the form :mod:`reviewlib.screening.tfidf_beside` sends to the process that fits beside a notebook."""
    if features not in FEATURES:
        raise InputError(f"unknown feature set {features!r}: choose one of {', '.join(FEATURES)}")
    if len(titles) != len(abstracts):
        raise InputError(f"{len(titles)} titles but {len(abstracts)} abstracts: give one of each per record")
    texts = _RecordTexts(titles, abstracts)
    if not len(texts):
        raise InputError("no records to prioritise: the records table is empty")
    vectoriser = _word_vectoriser()
    path = _tfidf_cache_path(cache_dir, texts, vectoriser, features)
    if not path.is_file():
        vectoriser.keep_vocabulary = False
        X, _ = _fit_features(texts if features == "word" else list(texts), vectoriser, features)
        _save_tfidf(path, X)
    return path


class _RecordTexts:
    """:func:`record_texts` of these titles and abstracts (:func:`titles_and_abstracts`), made one by one
    each time it is read (not 100,000 joined strings kept at once)."""

    def __init__(self, titles: list[str], abstracts: list[str]):
        self.titles, self.abstracts = titles, abstracts

    def __len__(self) -> int:
        return len(self.titles)

    def __iter__(self):
        return (f"{t} {a}".strip() for t, a in zip(self.titles, self.abstracts))


class Prioritiser:
    """A TF-IDF vectoriser fitted once on a corpus, and a classifier retrained on decisions.

    Parameters
    ----------
    records : pandas.DataFrame
        The records to prioritise, with ``title`` and (optionally) ``abstract``.
    seed : int
        Seed for tie-breaking and the classifiers' randomness.
    model : str
        One of :data:`MODELS`.
    id_column : str, optional
        Column holding the record ids used in ``labels`` and in rankings; see
        :func:`record_ids` for the default.
    features : str
        One of :data:`FEATURES`.
    relevant_weight : float, optional
        Weight of a relevant record relative to an irrelevant one in the logistic
        models; by default the model's own (:data:`NB_RELEVANT_WEIGHT` when the
        first model is ``"nblogistic"``, else :data:`RELEVANT_WEIGHT`).

    Examples
    --------
    >>> p = Prioritiser(records, seed=0)                       # doctest: +SKIP
    >>> p.rank({"pmid:1": 1, "pmid:2": 0})[:10]               # doctest: +SKIP
    """

    def __init__(self, records: pd.DataFrame, *, seed: int = 0, model: str = DEFAULT_MODEL,
                 id_column: str | None = None, features: str = DEFAULT_FEATURES,
                 relevant_weight: float | None = None, cache_dir: str | os.PathLike | None = None):
        if model not in MODELS:
            raise InputError(f"unknown prioritisation model {model!r}: choose one of {', '.join(MODELS)}")
        if features not in FEATURES:
            raise InputError(f"unknown feature set {features!r}: choose one of {', '.join(FEATURES)}")
        if relevant_weight is None:
            relevant_weight = NB_RELEVANT_WEIGHT if model.split("+")[0] == "nblogistic" else RELEVANT_WEIGHT
        if not relevant_weight > 0:
            raise InputError(f"relevant_weight must be > 0, got {relevant_weight!r}")
        self.seed = int(seed)
        self.model = model
        self.features = features
        self.relevant_weight = float(relevant_weight)
        self.ids = record_ids(records, id_column)
        self._position = {rid: i for i, rid in enumerate(self.ids)}
        self.vectoriser = _word_vectoriser()
        texts = record_texts(records)
        if not texts:
            raise InputError("no records to prioritise: the records table is empty")
        cached = (_tfidf_cache_path(cache_dir, texts, self.vectoriser, features) if cache_dir is not None
                  else None)
        if cached is not None and cached.is_file():
            # the same texts were vectorised before (the vectorisers depend on nothing else)
            self.X = sparse.load_npz(cached).tocsr()
        else:
            self.X, char_vectoriser = _fit_features(texts, self.vectoriser, features)
            if char_vectoriser is not None:
                self.char_vectoriser = char_vectoriser
            if cached is not None:
                _save_tfidf(cached, self.X)
        self._tiebreak = np.random.default_rng(self.seed).permutation(len(self.ids))
        self._classifiers: list[Any] = []
        self._trained_on: tuple[int, int] = (0, 0)

    # -- indices -----------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of records."""
        return len(self.ids)

    def indices(self, labels: Mapping[Hashable, int]) -> tuple[np.ndarray, np.ndarray]:
        """Row positions and 0/1 labels of a ``{record id: label}`` mapping."""
        idx, y = [], []
        for rid, value in labels.items():
            if rid not in self._position:
                raise InputError(f"label given for unknown record id {rid!r}: label only records being prioritised")
            if value not in (0, 1, True, False):
                raise InputError(f"label of record {rid!r} is {value!r}: labels must be 0 or 1")
            idx.append(self._position[rid])
            y.append(int(value))
        return np.asarray(idx, dtype=int), np.asarray(y, dtype=int)

    # -- training ----------------------------------------------------------------
    def _make(self, kind: str, y: np.ndarray) -> tuple[Any, np.ndarray | None]:
        if kind == "logistic":
            weights = np.where(y == 1, self.relevant_weight, 1.0)
            return (LogisticRegression(C=1.0, solver="liblinear", dual=True, max_iter=1000,
                                       random_state=self.seed), weights * (len(y) / weights.sum()))
        if kind == "nblogistic":
            weights = np.where(y == 1, self.relevant_weight, 1.0)
            return (NBScaledLogistic(C=NB_C, beta=NB_BETA, random_state=self.seed),
                    weights * (len(y) / weights.sum()))
        if kind == "svm":
            n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
            weights = np.where(y == 1, 1.0, n_pos / (9.8 * n_neg))
            weights = weights * (len(y) / weights.sum())
            return LinearSVC(C=0.11, loss="squared_hinge", random_state=self.seed), weights
        if kind == "nb":
            n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
            weights = np.where(y == 1, len(y) / (2 * n_pos), len(y) / (2 * n_neg))
            return MultinomialNB(alpha=3.822), weights
        raise InputError(f"unknown model {kind!r}")

    def fit_indices(self, idx: np.ndarray, y: np.ndarray) -> "Prioritiser":
        """Retrain the classifier on rows ``idx`` with labels ``y`` (the vectoriser stays as fitted).

        With only one class among the labels no classifier can be trained; the
        ranking then falls back to similarity with the labelled records (see
        :meth:`scores`).
        """
        idx = np.asarray(idx, dtype=int)
        y = np.asarray(y, dtype=int)
        key = (idx.tobytes(), y.tobytes())
        if key == getattr(self, "_fit_key", None):
            return self  # same decisions as the last fit: nothing to retrain
        self._fit_key = key
        self._fit_idx, self._fit_y = idx, y
        self._classifiers = []
        self._trained_on = (int(y.sum()), int(len(y) - y.sum()))
        if len(set(y.tolist())) < 2:
            return self
        for kind in self.model.split("+"):
            clf, weights = self._make(kind, y)
            with warnings.catch_warnings():  # liblinear's dual solver may stop at max_iter on tiny sets; the order is still usable
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(self.X[idx], y, sample_weight=weights)
            self._classifiers.append(clf)
        return self

    def fit(self, labels: Mapping[Hashable, int]) -> "Prioritiser":
        """Retrain the classifier on ``labels`` (record id -> 0/1)."""
        return self.fit_indices(*self.indices(labels))

    # -- scoring -----------------------------------------------------------------
    def scores(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Relevance scores (higher = more likely relevant) of ``rows`` (default: all records).

        Before both classes have been labelled the score is the cosine
        similarity to the centroid of the relevant records (or minus that of
        the irrelevant ones), and zero when nothing is labelled.
        """
        if len(self._classifiers) == 1 and getattr(self, "_scored_key", None) == getattr(self, "_fit_key", None):
            # scored every record once for this fit: row by row, the same numbers as scoring ``rows``
            return self._all_scores if rows is None else self._all_scores[rows]
        if len(self._classifiers) == 1:
            clf = self._classifiers[0]
            # decision_function is monotone in the probability and does not saturate into ties; every
            # record is scored at once (slicing rows out of a 100,000-row matrix costs more than scoring it)
            full = (clf.decision_function(self.X) if hasattr(clf, "decision_function")
                    else clf.predict_log_proba(self.X)[:, 1])
            self._all_scores = np.asarray(full, dtype=float)
            self._scored_key = self._fit_key
            return self._all_scores if rows is None else self._all_scores[rows]
        X = self.X if rows is None else self.X[rows]      # (not needed above: slicing 100,000 rows costs)
        if not self._classifiers:
            idx = getattr(self, "_fit_idx", np.array([], dtype=int))
            y = getattr(self, "_fit_y", np.array([], dtype=int))
            if len(idx) == 0:
                return np.zeros(X.shape[0])
            sign = 1.0 if y.sum() > 0 else -1.0
            centroid = np.asarray(self.X[idx].mean(axis=0)).ravel()
            return sign * np.asarray(X @ centroid).ravel()
        # ensemble: each member's scores turned into ranks among ``rows`` and averaged (scales do not matter)
        s = np.zeros(X.shape[0])
        for clf in self._classifiers:
            if hasattr(clf, "decision_function"):
                raw = clf.decision_function(X)
            else:
                logp = clf.predict_log_proba(X)
                raw = logp[:, 1] - logp[:, 0]
            s += rankdata(raw) / X.shape[0]
        return s

    def rank_indices(self, unlabelled: np.ndarray) -> np.ndarray:
        """Row positions of ``unlabelled`` ordered most likely relevant first (seeded tie-break)."""
        unlabelled = np.asarray(unlabelled, dtype=int)
        if unlabelled.size == 0:
            return unlabelled
        s = self.scores(unlabelled)
        order = np.lexsort((self._tiebreak[unlabelled], -s))
        return unlabelled[order]

    def rank(self, labels: Mapping[Hashable, int] | None = None) -> list[Hashable]:
        """Retrain on ``labels`` and return the unscreened record ids, most likely relevant first.

        Parameters
        ----------
        labels : mapping, optional
            Record id -> 0/1 for every record screened so far.  When omitted,
            the classifier from the last :meth:`fit` is used.
        """
        if labels is not None:
            self.fit(labels)
        screened = np.zeros(self.n, dtype=bool)
        screened[getattr(self, "_fit_idx", np.array([], dtype=int))] = True
        order = self.rank_indices(np.flatnonzero(~screened))
        return [self.ids[i] for i in order]

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """Prior-corrected probabilities of relevance for ``rows`` (for estimates, not ranking).

        The logistic models weight relevant records :data:`RELEVANT_WEIGHT`
        times, which multiplies the odds of relevance by about that much; the
        log of it is subtracted from the logit.  The labelled set is richer in
        relevant records than the queue (they were screened first), so the
        estimate still leans high.
        """
        n_pos, n_neg = self._trained_on
        if not self._classifiers or n_pos == 0 or n_neg == 0:
            prior = n_pos / (n_pos + n_neg) if n_pos + n_neg else 0.0
            return np.full(len(rows), prior)
        if self.model.split("+")[0] in ("logistic", "nblogistic"):
            clf = self._classifiers[0]
        else:  # the estimate always uses the logistic model's calibration
            clf, weights = self._make("logistic", self._fit_y)
            clf.fit(self.X[self._fit_idx], self._fit_y, sample_weight=weights)
        if clf is self._classifiers[0] and len(self._classifiers) == 1:
            decision = self.scores(rows)            # the single model's scores of this fit
        else:
            decision = np.asarray(clf.decision_function(self.X[rows]), dtype=float)
        logit = decision - np.log(self.relevant_weight)
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))

    def estimate_relevant_remaining(self, labels: Mapping[Hashable, int] | None = None,
                                    order: Sequence[Hashable] | None = None, window: int = 50) -> RemainingEstimate:
        """Estimate how many relevant records are left among the unscreened ones.

        Parameters
        ----------
        labels : mapping, optional
            Record id -> 0/1 screened so far (retrains when given).
        order : sequence of record ids, optional
            The screening order of the labelled records, for ``recent_rate``.
        window : int
            Number of most recent decisions for ``recent_rate``.

        Returns
        -------
        RemainingEstimate
        """
        if labels is not None:
            self.fit(labels)
        idx = getattr(self, "_fit_idx", np.array([], dtype=int))
        y = getattr(self, "_fit_y", np.array([], dtype=int))
        screened = np.zeros(self.n, dtype=bool)
        screened[idx] = True
        rest = np.flatnonzero(~screened)
        expected = float(self.probabilities(rest).sum()) if len(rest) else 0.0
        recent = float("nan")
        if order is not None and labels is not None and len(order):
            last = [int(labels[r]) for r in list(order)[-window:]]
            recent = sum(last) / len(last)
        return RemainingEstimate(expected=expected, unscreened=int(len(rest)), found=int(y.sum()),
                                 recent_rate=recent)


def rank(records: pd.DataFrame, labels: Mapping[Hashable, int], seed: int = 0, *,
         model: str = DEFAULT_MODEL, id_column: str | None = None) -> list[Hashable]:
    """Order the unscreened records, most likely relevant first.

    Parameters
    ----------
    records : pandas.DataFrame
        Records with ``title`` and ``abstract`` (an empty abstract is fine).
    labels : mapping
        Record id -> 0 (irrelevant) or 1 (relevant) for the screened records.
    seed : int
        Seed; the same inputs and seed give the same order.
    model : str
        One of :data:`MODELS`.
    id_column : str, optional
        Column of record ids (default: see :func:`record_ids`).

    Returns
    -------
    list
        Ids of the records not in ``labels``.
    """
    return Prioritiser(records, seed=seed, model=model, id_column=id_column).rank(labels)


def estimate_relevant_remaining(records: pd.DataFrame, labels: Mapping[Hashable, int], seed: int = 0, *,
                                order: Iterable[Hashable] | None = None,
                                id_column: str | None = None) -> RemainingEstimate:
    """Functional form of :meth:`Prioritiser.estimate_relevant_remaining`."""
    p = Prioritiser(records, seed=seed, id_column=id_column)
    return p.estimate_relevant_remaining(labels, order=list(order) if order is not None else None)


__all__ = ["Prioritiser", "prepare_tfidf", "prepare_tfidf_texts", "titles_and_abstracts", "NBScaledLogistic", "NB_BETA", "NB_RELEVANT_WEIGHT", "NB_C", "RemainingEstimate", "rank", "estimate_relevant_remaining", "record_texts",
           "record_ids", "MODELS", "DEFAULT_MODEL", "FEATURES", "DEFAULT_FEATURES"]

