"""Prioritiser: the ranking API, determinism, learning from decisions, the remaining-relevant estimate."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reviewlib.errors import InputError
from reviewlib.screening.prioritise import Prioritiser, estimate_relevant_remaining, rank, record_texts

COHEN = Path(__file__).resolve().parent / "data/screening_sets/cohen2006_antihistamines/Antihistamines.csv"
LABEL = "label_abstract_screening"


@pytest.fixture(scope="module")
def cohen() -> pd.DataFrame:
    frame = pd.read_csv(COHEN, dtype=str, keep_default_na=False)
    return frame.assign(record_id="pmid:" + frame["pubmedID"])


@pytest.fixture(scope="module")
def first_100_labels(cohen) -> dict[str, int]:
    return {rid: int(v) for rid, v in zip(cohen["record_id"][:100], cohen[LABEL][:100])}


def test_rank_returns_every_unscreened_id_once(cohen, first_100_labels):
    order = rank(cohen, first_100_labels, seed=0)
    assert len(order) == len(cohen) - 100 and len(set(order)) == len(order)
    assert set(order) == set(cohen["record_id"]) - set(first_100_labels)


def test_ranking_puts_relevant_records_first(cohen, first_100_labels):
    order = rank(cohen, first_100_labels, seed=0)
    truth = dict(zip(cohen["record_id"], cohen[LABEL].astype(int)))
    top = [truth[r] for r in order[:50]]
    base_rate = np.mean([truth[r] for r in order])
    assert np.mean(top) >= base_rate + 0.15            # measured: about twice the base rate


def test_same_seed_same_order(cohen, first_100_labels):
    a = rank(cohen, first_100_labels, seed=7)
    b = Prioritiser(cohen, seed=7).rank(first_100_labels)
    assert a == b


def test_seed_breaks_ties_before_any_decision(cohen):
    a = Prioritiser(cohen, seed=1).rank({})
    b = Prioritiser(cohen, seed=1).rank({})
    c = Prioritiser(cohen, seed=2).rank({})
    assert a == b and a != c and sorted(a) == sorted(c)


def test_only_one_class_labelled_falls_back_to_similarity(cohen):
    rid = cohen["record_id"][0]
    order = Prioritiser(cohen, seed=0).rank({rid: 1})
    assert len(order) == len(cohen) - 1 and rid not in order


def test_vectoriser_fitted_once_classifier_retrains(cohen, first_100_labels):
    p = Prioritiser(cohen, seed=0)
    vocab = p.vectoriser.vocabulary_
    p.rank(first_100_labels)
    first = p.scores().copy()
    more = dict(first_100_labels)
    more.update({rid: int(v) for rid, v in zip(cohen["record_id"][100:150], cohen[LABEL][100:150])})
    p.rank(more)
    assert p.vectoriser.vocabulary_ is vocab
    assert not np.allclose(first, p.scores())


def test_bad_labels_are_input_errors(cohen):
    p = Prioritiser(cohen, seed=0)
    with pytest.raises(InputError, match="unknown record id"):
        p.rank({"pmid:0": 1})
    with pytest.raises(InputError, match="0 or 1"):
        p.rank({cohen["record_id"][0]: 2})
    with pytest.raises(InputError, match="title"):
        Prioritiser(cohen.drop(columns=["title"]))


def test_empty_abstracts_are_represented_by_their_title(cohen):
    texts = record_texts(cohen)
    row = int(np.flatnonzero((cohen["abstract"] == "") & (cohen["title"] != ""))[0])
    assert texts[row] == cohen["title"][row]


def test_estimate_relevant_remaining(cohen, first_100_labels):
    est = estimate_relevant_remaining(cohen, first_100_labels, seed=0, order=list(first_100_labels))
    assert est.unscreened == len(cohen) - 100
    assert est.found == sum(first_100_labels.values())
    assert 0 < est.expected < est.unscreened
    assert 0 <= est.recent_rate <= 1 and 0 < est.estimated_recall < 1
    assert "unscreened" in est.line()


def test_everything_screened_leaves_an_empty_queue(cohen):
    small = cohen.iloc[:30]
    labels = {rid: int(v) for rid, v in zip(small["record_id"], small[LABEL])}
    p = Prioritiser(small, seed=0)
    assert p.rank(labels) == []
    assert p.estimate_relevant_remaining(labels).unscreened == 0


# ------------------------------------------------------------------ issue 14: feature sets and ensembles
def test_word_and_char_features_keep_unit_rows_and_still_learn(cohen, first_100_labels):
    word = Prioritiser(cohen, seed=0)
    both = Prioritiser(cohen, seed=0, features="word+char")
    assert both.X.shape[1] > word.X.shape[1] and both.X.shape[0] == len(cohen)
    norms = np.sqrt(np.asarray(both.X.multiply(both.X).sum(axis=1)).ravel())
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-4)
    order = both.rank(first_100_labels)
    truth = dict(zip(cohen["record_id"], cohen[LABEL].astype(int)))
    assert np.mean([truth[r] for r in order[:50]]) >= np.mean([truth[r] for r in order]) + 0.15


def test_ensemble_is_the_average_of_its_members_ranks(cohen, first_100_labels):
    from scipy.stats import rankdata
    ens = Prioritiser(cohen, seed=0, model="logistic+svm").fit(first_100_labels)
    lr = Prioritiser(cohen, seed=0, model="logistic").fit(first_100_labels)
    svm = Prioritiser(cohen, seed=0, model="svm").fit(first_100_labels)
    rows = np.arange(100, len(cohen))
    expected = (rankdata(lr.scores(rows)) + rankdata(svm.scores(rows))) / len(rows)
    assert np.allclose(ens.scores(rows), expected)
    assert len(ens._classifiers) == 2


def test_include_weight_defaults_per_model_and_is_what_the_fit_uses(cohen, first_100_labels):
    from reviewlib.screening.prioritise import NB_RELEVANT_WEIGHT, RELEVANT_WEIGHT
    assert Prioritiser(cohen, seed=0, model="logistic").relevant_weight == RELEVANT_WEIGHT == 5.0
    assert Prioritiser(cohen, seed=0, model="nblogistic").relevant_weight == NB_RELEVANT_WEIGHT
    assert Prioritiser(cohen, seed=0, model="nblogistic", relevant_weight=5).relevant_weight == 5.0
    # the weight reaches the fit: weight 20 and weight 5 give different models on the same decisions
    heavy = Prioritiser(cohen, seed=0).fit(first_100_labels)
    light = Prioritiser(cohen, seed=0, relevant_weight=5).fit(first_100_labels)
    rows = np.arange(100, len(cohen))
    assert not np.allclose(heavy.scores(rows), light.scores(rows))
    # includes weighted 4 times more push every decision value up relative to the lighter model's
    assert np.mean(heavy.scores(rows)) > np.mean(light.scores(rows))


def test_unknown_features_and_bad_weight_are_input_errors(cohen):
    with pytest.raises(InputError, match="feature set"):
        Prioritiser(cohen, features="mesh")
    with pytest.raises(InputError, match="relevant_weight"):
        Prioritiser(cohen, relevant_weight=0)


# ------------------------------------------------------------------ issue 14, third round: NB-scaled features
def test_log_count_ratio_is_the_smoothed_share_of_records_holding_each_feature():
    from scipy import sparse
    from reviewlib.screening.prioritise import NBScaledLogistic
    # feature 0 in both relevant records, feature 1 in the irrelevant one only, feature 2 nowhere
    X = sparse.csr_matrix(np.array([[0.5, 0.0, 0.0], [0.2, 0.0, 0.0], [0.0, 0.9, 0.0]], dtype=np.float32))
    y = np.array([1, 1, 0])
    p = np.array([1 + 2, 1 + 0, 1 + 0], dtype=float)
    q = np.array([1 + 0, 1 + 1, 1 + 0], dtype=float)
    expected = np.log((p / p.sum()) / (q / q.sum()))
    assert np.allclose(NBScaledLogistic(alpha=1.0).log_count_ratio(X, y), expected, atol=1e-6)
    assert expected[0] > 0 > expected[1]


def test_nb_scaled_decision_values_are_those_of_the_scaled_matrix(cohen, first_100_labels):
    from scipy import sparse
    from reviewlib.screening.prioritise import NBScaledLogistic
    p = Prioritiser(cohen, seed=0)
    idx, y = p.indices(first_100_labels)
    clf = NBScaledLogistic(random_state=0).fit(p.X[idx], y)
    scaled = sparse.csr_matrix(p.X.multiply(clf.ratio_))
    assert np.allclose(clf.decision_function(p.X), clf.logistic_.decision_function(scaled), atol=1e-5)


def test_nb_scaled_model_learns_from_decisions(cohen, first_100_labels):
    order = rank(cohen, first_100_labels, seed=0, model="nblogistic")
    truth = dict(zip(cohen["record_id"], cohen[LABEL].astype(int)))
    assert len(order) == len(cohen) - 100
    # measured 0.40 against a base rate of 0.31 (weaker early than the plain LR, as its RRF@10 in the grid)
    assert np.mean([truth[r] for r in order[:50]]) >= np.mean([truth[r] for r in order]) + 0.05


def test_unfitted_nb_scaled_model_is_an_input_error(cohen):
    from reviewlib.screening.prioritise import NBScaledLogistic
    with pytest.raises(InputError, match="not fitted"):
        NBScaledLogistic().decision_function(Prioritiser(cohen, seed=0).X)


def test_nb_scale_shrinks_towards_one_and_beta_zero_is_the_plain_logistic(cohen, first_100_labels):
    from sklearn.linear_model import LogisticRegression
    from reviewlib.screening.prioritise import NBScaledLogistic
    p = Prioritiser(cohen, seed=0)
    idx, y = p.indices(first_100_labels)
    r = NBScaledLogistic().log_count_ratio(p.X[idx], y)
    shrunk = NBScaledLogistic(beta=0.25).fit(p.X[idx], y)
    assert np.allclose(shrunk.ratio_, 0.75 + 0.25 * np.abs(r), atol=1e-6)
    plain = NBScaledLogistic(beta=0.0, random_state=0).fit(p.X[idx], y)
    lr = LogisticRegression(C=1.0, solver="liblinear", dual=True, max_iter=1000, random_state=0).fit(p.X[idx], y)
    assert np.allclose(plain.decision_function(p.X), lr.decision_function(p.X), atol=1e-5)


def test_default_model_is_the_nb_scaled_logistic_with_the_chosen_beta(cohen, first_100_labels):
    from reviewlib.screening.prioritise import DEFAULT_MODEL, NB_BETA, NB_RELEVANT_WEIGHT, NBScaledLogistic
    p = Prioritiser(cohen, seed=0).fit(first_100_labels)
    (clf,) = p._classifiers
    assert DEFAULT_MODEL == "nblogistic" and isinstance(clf, NBScaledLogistic) and clf.beta == NB_BETA == 0.25
    assert p.relevant_weight == NB_RELEVANT_WEIGHT == 20.0     # issue 14, sixth round
    # the remaining-relevant estimate still comes from the default model's (prior-corrected) decision values
    rest = np.arange(100, len(cohen))
    probs = p.probabilities(rest)
    assert np.all((probs > 0) & (probs < 1))
    assert np.allclose(probs, 1 / (1 + np.exp(-(p.scores(rest) - np.log(p.relevant_weight)))))
