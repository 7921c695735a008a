"""Simulated screening: replay a labelled dataset in the model's order and measure the work saved.

A simulation answers "had we screened this published review with reviewlib's
prioritisation, how many records would we have read to find its included
studies?".  It follows ASReview LAB's simulation mode:

1. Priors.  One included and one excluded record are drawn uniformly, each
   seed from its own generator (:func:`prior_rng`: first an included row, then
   an excluded row), as ``asreview simulate --n-prior-included 1
   --n-prior-excluded 1`` does.  They are the reviewer's first two decisions.
2. Replay.  The classifier is trained on the decisions so far, the unscreened
   records are ranked, the top one is "screened" (its published label is
   revealed), and so on.  Retrain schedule: after every decision while fewer
   than :data:`EVERY_RECORD_UNTIL` records have been screened (as ASReview does
   throughout), then after every ``ceil(screened / BATCH_DIVISOR)`` decisions
   (a batch growing with the screened set: 3 at 500 screened, 10 at
   2,000).  Once every included record has been found the rest are appended
   as screened in the last ranking's order without retraining: they are all
   irrelevant, so no metric depends on their order.
3. Metrics, on the sequence of labels in screening order, **priors excluded**
   (ASReview's convention, as in ``asreview-insights`` and the loss/NDCG that
   ``asreview simulate`` prints).  N is the number of records minus the two
   priors and P the number of included records minus the prior included one.

Definitions (k counts records screened after the priors; found(k) is the
number of included records among the first k):

``recall_curve``
    found(k) / P for k = 1..N.
``screened_to_95``
    The smallest k with found(k) >= 0.95 * P.
``wss95``
    Work saved over sampling at 95 % recall (Cohen et al. 2006):
    (TN + FN) / N - (1 - 0.95) at k = screened_to_95, where TN + FN = N - k
    are the records left unscreened; i.e. ``(N - k) / N - 0.05``.
``rrf10``
    Relevant records found: 100 * found(ceil(0.10 * N)) / P, the percentage of
    included records found after screening 10 % of the records.
``atd``
    Average time to discovery as a fraction (ASReview insights): the mean,
    over the included records, of the position k at which each was found,
    divided by N.
Stopping rules (``stops``), each reported as the records screened at the stop
(after the priors) and the recall there (priors excluded, as above; and
``review_recall``, the prior included record counted, which is the recall the
reviewer gets):

``consecutive_irrelevant`` (``stop``: the heuristic reviewlib used before issue 14)
    Stop after :func:`default_patience` (max(50, 5 % of N)) consecutive
    irrelevant records.  No guarantee.  If it never fires, it stops at N.
``hypergeometric`` (:mod:`reviewlib.screening.stopping`)
    When the heuristic fires, switch to screening the rest in random order
    (drawn with the seed's sampling stream) and stop when Callaghan &
    Müller-Hansen's test rejects "recall < 95 %" at 95 % confidence (level split
    over the includes found in the sample).  Guarantee: recall >= 95 % in at
    least 95 % of runs.
``ranked`` (:func:`reviewlib.screening.stopping.ranked_stop`)
    No random phase: after every record screened in the model's order (priors
    first), the buscar test treats the last n records as a random sample of
    themselves plus the unscreened ones, for every n, and stops when the
    smallest p of "recall < 95 %" is below 0.05.  It assumes the model's order
    is at least as good as random; nothing checks that, so it is an estimate,
    not a guarantee.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..textfiles import check_text_file
from ..errors import InputError
from .prioritise import DEFAULT_MODEL, MODELS, Prioritiser
from .stopping import DEFAULT_CONFIDENCE, DEFAULT_TARGET, consecutive_irrelevant, random_sampling_stop, ranked_stop

logger = logging.getLogger(__name__)

#: Retrain after every decision until this many records have been screened.
EVERY_RECORD_UNTIL = 300
#: After that, retrain every ceil(screened / BATCH_DIVISOR) decisions.
BATCH_DIVISOR = 200
#: Number of prior records (one included, one excluded), as ASReview's --n-prior-included 1 --n-prior-excluded 1.
N_PRIORS = 2
#: Spawn key of the priors' random stream (see :func:`prior_rng`).
PRIOR_STREAM = 14
#: Spawn key of the random-sampling phase's stream (the hypergeometric stopping rule).
SAMPLING_STREAM = 15


# --------------------------------------------------------------------------- metrics
def _as_labels(sequence: Sequence[int]) -> np.ndarray:
    seq = np.asarray(list(sequence), dtype=int)
    if seq.size == 0:
        raise InputError("no screened records to measure: the label sequence is empty")
    if not np.isin(seq, (0, 1)).all():
        raise InputError("label sequence holds values other than 0 and 1")
    if seq.sum() == 0:
        raise InputError("no included record in the label sequence: recall is undefined")
    return seq


def recall_curve(sequence: Sequence[int]) -> list[float]:
    """Recall after each screened record: found(k) / P for k = 1..N.

    Examples
    --------
    >>> recall_curve([1, 0, 1, 0])
    [0.5, 0.5, 1.0, 1.0]
    """
    seq = _as_labels(sequence)
    return (np.cumsum(seq) / seq.sum()).tolist()


def screened_to_recall(sequence: Sequence[int], recall: float = 0.95) -> int:
    """The smallest number k of screened records with found(k) >= recall * P."""
    seq = _as_labels(sequence)
    needed = recall * seq.sum() - 1e-9
    return int(np.argmax(np.cumsum(seq) >= needed)) + 1


def wss(sequence: Sequence[int], recall: float = 0.95) -> float:
    """Work saved over sampling at ``recall``: (N - k) / N - (1 - recall), k = :func:`screened_to_recall`.

    Examples
    --------
    Ten records, two included, found 1st and 4th: 95 % recall needs both, k=4,
    WSS@95 = 6/10 - 0.05 = 0.55.

    >>> round(wss([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), 10)
    0.55
    """
    seq = _as_labels(sequence)
    n = len(seq)
    k = screened_to_recall(seq, recall)
    return (n - k) / n - (1 - recall)


def rrf(sequence: Sequence[int], fraction: float = 0.10) -> float:
    """Relevant records found (percent) after screening ceil(fraction * N) records.

    Examples
    --------
    >>> rrf([1, 0, 0, 1, 0, 0, 0, 0, 0, 0])   # 10 % of 10 = 1 record: 1 of 2 found
    50.0
    """
    seq = _as_labels(sequence)
    k = max(1, math.ceil(round(fraction * len(seq), 9)))
    return 100.0 * float(seq[:k].sum()) / float(seq.sum())


def atd(sequence: Sequence[int]) -> float:
    """Average time to discovery, as a fraction of N: mean 1-based position of the included records / N.

    Examples
    --------
    >>> atd([1, 0, 0, 1, 0, 0, 0, 0, 0, 0])   # positions 1 and 4: mean 2.5, / 10
    0.25
    """
    seq = _as_labels(sequence)
    positions = np.flatnonzero(seq) + 1
    return float(positions.mean()) / len(seq)


def default_patience(n: int) -> int:
    """Run length of consecutive irrelevant records that stops screening: max(50, ceil(5 % of n))."""
    return max(50, math.ceil(0.05 * n))


#: Number screened when ``patience`` irrelevant records in a row were seen (the stopping module's rule).
consecutive_irrelevant_stop = consecutive_irrelevant


# --------------------------------------------------------------------------- results
@dataclass
class SimulationResult:
    """The outcome of one simulated screening.

    Attributes
    ----------
    order : list of int
        Row positions (0-based, in the input frame) in screening order, after the priors.
    labels : list of int
        Published labels in that order (the sequence every metric is computed on).
    priors : list of int
        Row positions of the prior records (included first, then excluded).
    seed : int
    model : str
    n_records : int
        Rows in the dataset, priors included.
    n_included : int
        Included rows in the dataset, prior included.
    retrains : int
        Number of times the classifier was retrained.
    seconds : float
        Wall time of the simulation.
    patience : int
        Run length of the stopping rule.
    """

    order: list[int]
    labels: list[int]
    priors: list[int]
    seed: int
    model: str
    n_records: int
    n_included: int
    retrains: int = 0
    seconds: float = 0.0
    patience: int = 0
    ids: list[Any] = field(default_factory=list, repr=False)

    @property
    def n(self) -> int:
        """N: records screened after the priors."""
        return len(self.labels)

    @property
    def wss95(self) -> float:
        """Work saved over sampling at 95 % recall (see module docstring)."""
        return wss(self.labels, 0.95)

    @property
    def rrf10(self) -> float:
        """Percent of included records found after screening 10 % of N."""
        return rrf(self.labels, 0.10)

    @property
    def atd(self) -> float:
        """Average time to discovery, as a fraction of N."""
        return atd(self.labels)

    @property
    def screened_to_95(self) -> int:
        """Records screened (after the priors) to reach 95 % recall."""
        return screened_to_recall(self.labels, 0.95)

    @property
    def recall_curve(self) -> list[float]:
        """Recall after each screened record (priors excluded)."""
        return recall_curve(self.labels)

    def stop(self) -> dict[str, Any]:
        """The stopping rule's verdict: rule, patience, screened, recall, included_found."""
        k = consecutive_irrelevant_stop(self.labels, self.patience)
        found = int(np.sum(self.labels[:k]))
        return {"rule": f"{self.patience} consecutive irrelevant records", "patience": self.patience,
                "screened": k, "recall": found / int(np.sum(self.labels)), "included_found": found}

    def hypergeometric_stop(self, target: float = DEFAULT_TARGET,
                            confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
        """The hypergeometric rule's verdict: prioritised until the heuristic fires, then random sampling.

        Returns rule, switched_at (records screened in the model's order, after the priors), sampled,
        screened, recall, review_recall, included_found, p_value, recall_target, confidence.
        """
        switch = consecutive_irrelevant_stop(self.labels, self.patience)
        ranked = [1, 0] + list(self.labels[:switch])          # the priors were screened first
        rng = np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=(SAMPLING_STREAM,)))
        out = random_sampling_stop(ranked, self.labels[switch:], rng, target=target, confidence=confidence)
        found = out["found"] - 1                                # priors not counted, as every metric here
        return {"rule": f"random sampling after {self.patience} consecutive irrelevant, stop when recall < "
                        f"{target:.0%} is rejected at {confidence:.0%} confidence (Callaghan & Müller-Hansen 2020)",
                "switched_at": switch, "sampled": out["sampled"], "screened": out["screened"] - len(self.priors),
                "recall": found / int(np.sum(self.labels)), "review_recall": out["found"] / self.n_included,
                "included_found": found, "p_value": out["p_value"], "recall_target": target, "confidence": confidence}

    def ranked_stop(self, target: float = DEFAULT_TARGET, confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
        """The ranked (buscar) rule's verdict on the model's order alone, tested after every record.

        Returns rule, screened (after the priors), recall, review_recall, included_found, p_value,
        stopped, recall_target, confidence and guarantee (always False: see
        :func:`reviewlib.screening.stopping.ranked_p`).
        """
        order = [1, 0] + list(self.labels)                      # the priors were screened first
        out = ranked_stop(order, self.n_records, target=target, confidence=confidence, start=len(self.priors))
        found = out["found"] - 1
        return {"rule": f"ranked: last n prioritised records as a random sample (buscar), stop when recall < "
                        f"{target:.0%} is rejected at {confidence:.0%}; assumes the model's order is at least as "
                        "good as random, not a guarantee",
                "screened": out["screened"] - len(self.priors), "recall": found / int(np.sum(self.labels)),
                "review_recall": out["found"] / self.n_included, "included_found": found,
                "p_value": out["p_value"], "stopped": out["stopped"], "recall_target": target,
                "confidence": confidence, "guarantee": False}

    def stops(self) -> dict[str, dict[str, Any]]:
        """Every stopping rule's verdict, by rule name (see the module docstring)."""
        heuristic = self.stop()
        heuristic["review_recall"] = (heuristic["included_found"] + 1) / self.n_included
        return {"consecutive_irrelevant": heuristic, "hypergeometric": self.hypergeometric_stop(),
                "ranked": self.ranked_stop()}

    def to_dict(self, curve: bool = True) -> dict[str, Any]:
        """JSON-ready summary (the ``--json`` output)."""
        out = {
            "n": self.n_records, "included": self.n_included, "priors": len(self.priors),
            "priors_counted": False, "n_screened_measured": self.n,
            "seed": self.seed, "model": self.model,
            "wss95": round(self.wss95, 6), "rrf10": round(self.rrf10, 6), "atd": round(self.atd, 6),
            "screened_to_95": self.screened_to_95, "stopping": self.stops(),
            "retrains": self.retrains, "seconds": round(self.seconds, 3),
            "prior_rows": list(self.priors),
        }
        if curve:
            out["recall_curve"] = [round(v, 6) for v in self.recall_curve]
        return out


# --------------------------------------------------------------------------- simulate
def labels_array(frame: pd.DataFrame, label_column: str, source: str = "dataset") -> np.ndarray:
    """The 0/1 labels of ``frame[label_column]`` as ints, or :class:`InputError` naming the bad values."""
    if label_column not in frame.columns:
        raise InputError(f"{source}: no label column {label_column!r} (columns: {', '.join(map(str, frame.columns))}): "
                         "give --label-column the name of the 0/1 column", source=source)
    raw = frame[label_column]
    text = raw.astype(str).str.strip()
    text = text.where(raw.notna(), "")
    ok = text.isin(["0", "1", "0.0", "1.0"])
    if not ok.all():
        bad = sorted(set(text[~ok].replace("", "<empty>")))[:5]
        raise InputError(f"{source}: label column {label_column!r} has values other than 0/1 "
                         f"({', '.join(map(repr, bad))}): code every row 1 (included) or 0 (excluded)", source=source)
    return text.map(lambda v: int(float(v))).to_numpy(dtype=int)


def prior_rng(seed: int) -> np.random.Generator:
    """The generator the priors of ``seed`` are drawn from: its own stream, apart from the model's.

    ``SeedSequence(seed, spawn_key=(PRIOR_STREAM,))`` hashes the seed together with a fixed stream key, so
    each seed's priors are an independent draw, and no other randomness of a run (the model's
    tie-break permutation uses ``default_rng(seed)``) shares their stream.
    """
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(PRIOR_STREAM,)))


def draw_priors(labels: np.ndarray, seed: int) -> list[int]:
    """One included and one excluded row position, an independent uniform draw per seed (included first).

    Each seed has its own generator (:func:`prior_rng`); the included record is drawn uniformly
    from the included rows, then the excluded one from the excluded rows.  Two seeds can still
    draw the same included record by chance (with P included records and S seeds the chance that
    some two coincide is 1 - P!/((P-S)! P^S)), but not systematically.
    """
    labels = np.asarray(labels, dtype=int)
    rng = prior_rng(seed)
    included = np.flatnonzero(labels == 1)
    excluded = np.flatnonzero(labels == 0)
    if len(included) == 0 or len(excluded) == 0:
        raise InputError("the labels need at least one included (1) and one excluded (0) record to start from")
    return [int(rng.choice(included)), int(rng.choice(excluded))]


def _retrain_due(screened: int, since_last: int) -> bool:
    if screened < EVERY_RECORD_UNTIL:
        return True
    return since_last >= math.ceil(screened / BATCH_DIVISOR)


def simulate(frame: pd.DataFrame, label_column: str, seed: int = 0, *, model: str = DEFAULT_MODEL,
             priors: Sequence[int] | None = None, source: str = "dataset",
             patience: int | None = None) -> SimulationResult:
    """Simulate prioritised screening of a labelled dataset.

    Parameters
    ----------
    frame : pandas.DataFrame
        Records with ``title``, ``abstract`` (may be empty) and ``label_column``.
    label_column : str
        Column of published decisions, 1 = included, 0 = excluded.
    seed : int
        Seeds the priors and the model; same seed, same result.
    model : str
        One of :data:`reviewlib.screening.prioritise.MODELS`.
    priors : sequence of int, optional
        Row positions to start from instead of drawing them (used by the
        benchmark to give ASReview and reviewlib the same priors).
    source : str
        Name of the input for error messages.
    patience : int, optional
        Run length of the stopping rule (default :func:`default_patience`).

    Returns
    -------
    SimulationResult

    Raises
    ------
    InputError
        If the frame is empty, lacks ``title`` or the label column, or the
        labels are not all 0/1 with at least one of each.
    """
    if len(frame) == 0:
        raise InputError(f"{source}: the dataset has no records: give a CSV with one row per record", source=source)
    if "title" not in frame.columns:
        raise InputError(f"{source}: no 'title' column: the dataset needs title, abstract and a 0/1 label column",
                         source=source)
    y = labels_array(frame, label_column, source)
    if y.sum() == 0 or y.sum() == len(y):
        raise InputError(f"{source}: label column {label_column!r} needs at least one 1 (included) and one 0 "
                         "(excluded) record", source=source)
    start = time.perf_counter()
    prior_rows = list(priors) if priors is not None else draw_priors(y, seed)
    frame = frame.reset_index(drop=True)
    prioritiser = Prioritiser(frame.assign(_row=range(len(frame))), seed=seed, model=model, id_column="_row")
    n = len(frame)
    screened = np.zeros(n, dtype=bool)
    screened[prior_rows] = True
    labelled = list(prior_rows)
    order: list[int] = []
    remaining_included = int(y.sum() - y[prior_rows].sum())
    retrains, since_last, ranked = 0, 0, None
    while remaining_included > 0 and len(labelled) < n:
        if ranked is None or _retrain_due(len(labelled), since_last):
            prioritiser.fit_indices(np.asarray(labelled), y[labelled])
            ranked = list(prioritiser.rank_indices(np.flatnonzero(~screened)))
            retrains += 1
            since_last = 0
        row = ranked.pop(0)
        screened[row] = True
        labelled.append(row)
        order.append(row)
        since_last += 1
        remaining_included -= int(y[row])
    # the rest are all irrelevant: append them in the last ranking's order (no metric depends on it)
    order.extend(ranked if ranked is not None else np.flatnonzero(~screened).tolist())
    seconds = time.perf_counter() - start
    result = SimulationResult(order=[int(r) for r in order], labels=[int(y[r]) for r in order],
                              priors=[int(r) for r in prior_rows], seed=seed, model=model, n_records=n,
                              n_included=int(y.sum()), retrains=retrains, seconds=seconds,
                              patience=patience or default_patience(n - len(prior_rows)))
    logger.debug("simulated %s (seed %d): WSS@95 %.3f, RRF@10 %.1f, %d retrains in %.1f s",
                source, seed, result.wss95, result.rrf10, retrains, seconds)
    return result


# --------------------------------------------------------------------------- datasets
def load_dataset(path: str | Path, label_column: str) -> pd.DataFrame:
    """Read a labelled screening dataset (CSV with title, abstract and a 0/1 label column).

    Parameters
    ----------
    path : path-like
        A UTF-8 CSV with a header row.  ``abstract`` may be missing or empty
        (the record is then represented by its title alone).
    label_column : str
        The 0/1 column (1 = included).

    Returns
    -------
    pandas.DataFrame
        The rows, all columns as strings, ``abstract`` filled with "".

    Raises
    ------
    InputError
        Missing or unreadable file, no rows, no ``title`` column, no label
        column, or label values other than 0/1.
    """
    path, encoding = check_text_file(path, "dataset", "a CSV with title, abstract and a 0/1 label column",
                                     compressed_ok=True)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the dataset is empty: give a CSV with a header row and one row per record",
                         source=str(path)) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as CSV ({str(exc).splitlines()[0]}): save it as UTF-8 CSV",
                         source=str(path)) from exc
    if "title" not in frame.columns:
        raise InputError(f"{path}: no 'title' column (columns: {', '.join(frame.columns)}): "
                         "rename the title column to 'title'", source=str(path))
    if label_column not in frame.columns:
        raise InputError(f"{path}: no label column {label_column!r} (columns: {', '.join(frame.columns)}): "
                         "give --label-column the name of the 0/1 column", source=str(path))
    if len(frame) == 0:
        raise InputError(f"{path}: the dataset has no records: give a CSV with one row per record",
                         source=str(path))
    labels_array(frame, label_column, str(path))
    if "abstract" not in frame.columns:
        frame["abstract"] = ""
    return frame


def synergy_dataset(works: str | Path, labels: str | Path, label_column: str = "label_included") -> pd.DataFrame:
    """Join a SYNERGY dataset's OpenAlex works with its labels.

    Parameters
    ----------
    works : path-like
        The OpenAlex works (``works_1.zip``, a folder or a JSON file), read
        with :func:`reviewlib.sources.openalex.read_openalex`.
    labels : path-like
        ``labels.csv`` with ``openalex_id`` (URL or bare id) and ``label_column``.

    Returns
    -------
    pandas.DataFrame
        The records table plus ``openalex_id`` and ``label_column`` (int 0/1),
        in the works' order.

    Raises
    ------
    InputError
        If a work has no label or a label has no work.
    """
    from ..sources.openalex import read_openalex

    records = read_openalex(works)
    labels = Path(labels)
    if not labels.is_file():
        raise InputError(f"labels file not found: {labels}: give the dataset's labels.csv", source=str(labels))
    table = pd.read_csv(labels, dtype=str, keep_default_na=False)
    for col in ("openalex_id", label_column):
        if col not in table.columns:
            raise InputError(f"{labels}: no column {col!r}: a SYNERGY labels.csv has openalex_id and {label_column}",
                             source=str(labels))
    table = table.assign(openalex_id=table["openalex_id"].str.rstrip("/").str.rsplit("/", n=1).str[-1])
    y = labels_array(table, label_column, str(labels))
    by_id = dict(zip(table["openalex_id"], y))
    missing = [w for w in records["openalex_id"] if w not in by_id]
    if missing:
        raise InputError(f"{labels}: {len(missing)} works have no label (first {missing[0]}): "
                         "give the labels.csv that belongs to these works", source=str(labels))
    extra = set(by_id) - set(records["openalex_id"])
    if extra:
        raise InputError(f"{labels}: {len(extra)} labels have no work in {works}: "
                         "give all the dataset's works files", source=str(labels))
    records[label_column] = [int(by_id[w]) for w in records["openalex_id"]]
    return records


# --------------------------------------------------------------------------- replication
@dataclass
class Replication:
    """A published review's screening reproduced from its data.

    Attributes
    ----------
    name : str
    prisma : dict
        identified, duplicates_removed, screened, excluded, included (title/abstract stage).
    simulation : SimulationResult
        Prioritised screening of the deduplicated records, the published labels as the reviewer.
    records : pandas.DataFrame
        The deduplicated records with their labels.
    dedup_rules : pandas.DataFrame
        Records removed per dedup rule.
    """

    name: str
    prisma: dict[str, int]
    simulation: SimulationResult
    records: pd.DataFrame = field(repr=False)
    dedup_rules: pd.DataFrame = field(repr=False)

    def recall_table(self) -> pd.DataFrame:
        """Recall against records screened (priors excluded), with random screening's expected recall."""
        curve = self.simulation.recall_curve
        n = len(curve)
        return pd.DataFrame({"screened": np.arange(1, n + 1), "recall": curve,
                             "random": np.arange(1, n + 1) / n})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: name, prisma and the simulation's metrics."""
        return {"name": self.name, "prisma": dict(self.prisma), "simulation": self.simulation.to_dict()}


def replicate_dataset(frame: pd.DataFrame, label_column: str, *, name: str, seed: int = 0,
                      model: str = DEFAULT_MODEL) -> Replication:
    """Deduplicate a labelled records table, count PRISMA boxes and simulate its screening.

    Duplicates are merged with :func:`reviewlib.screening.dedup.deduplicate`; a merged
    group is included when any of its members was (so no inclusion is lost).
    """
    from .dedup import deduplicate

    y = labels_array(frame, label_column, name)
    result = deduplicate(frame.drop(columns=[label_column]))
    unique = result.records.reset_index(drop=True)
    # label of each unique record: the max over its group's input rows
    row_label = dict(enumerate(y.tolist()))
    kept_label: dict[str, int] = {}
    if not result.audit.empty:
        for _, group in result.audit.groupby("group_id"):
            kept = group.loc[group["kept"].astype(bool), "record_id"].iloc[0]
            kept_label[kept] = max(row_label[int(r)] for r in group["row"])
    if "openalex_id" in unique.columns and "openalex_id" in frame.columns:
        by_openalex = dict(zip(frame["openalex_id"], y))
        labels = [kept_label.get(rid, by_openalex.get(oa)) for rid, oa in zip(unique["record_id"], unique["openalex_id"])]
    else:
        by_rid = {}
        from ..store import record_id_for
        for i, rec in enumerate(frame.to_dict("records")):
            by_rid.setdefault(record_id_for(rec), y[i])
        labels = [kept_label.get(rid, by_rid.get(rid)) for rid in unique["record_id"]]
    if any(v is None for v in labels):
        raise InputError(f"{name}: deduplicated records could not be matched back to their labels")
    unique[label_column] = [int(v) for v in labels]
    sim = simulate(unique, label_column, seed, model=model, source=name)
    included = int(unique[label_column].sum())
    prisma = {"identified": int(len(frame)), "duplicates_removed": int(result.n_removed),
              "screened": int(len(unique)), "excluded": int(len(unique) - included), "included": included}
    return Replication(name=name, prisma=prisma, simulation=sim, records=unique, dedup_rules=result.summary())


def replay_review(store: Any, records: pd.DataFrame, *, stage: str = "title-abstract", seed: int = 0,
                  model: str = DEFAULT_MODEL) -> Replication | None:
    """Replay a review's own finished screening in the model's order: what prioritisation would have saved.

    The review's current decisions at ``stage`` (see :func:`reviewlib.screening.decisions.final_decisions`)
    are the labels, include = 1 and exclude = 0, and :func:`simulate` replays them from one
    included and one excluded record drawn with ``seed``.

    Parameters
    ----------
    store : ReviewStore
        The review store.
    records : pandas.DataFrame
        The screened records (``record_id``, ``title``, ``abstract``), e.g. after deduplication.
    stage : str
        The screening stage whose decisions are the labels.
    seed : int
        Seeds the priors and the model.
    model : str
        One of :data:`reviewlib.screening.prioritise.MODELS`.

    Returns
    -------
    Replication or None
        None while screening is unfinished (a record without an include/exclude decision), or when
        the decisions hold no include or no exclude: there is nothing to replay yet.
    """
    from .decisions import final_decisions

    final = final_decisions(store, stage)
    decided = dict(zip(final["record_id"].tolist(), final["decision"].tolist()))
    labels = list(map(decided.get, records["record_id"].tolist()))
    if not len(labels) or any(v not in ("include", "exclude") for v in labels):
        return None
    frame = records[["record_id", "title", "abstract"]].reset_index(drop=True).copy()
    frame["label"] = [1 if v == "include" else 0 for v in labels]
    included = int(frame["label"].sum())
    if included < 2 or included == len(frame):
        return None
    sim = simulate(frame, "label", seed, model=model, source=f"{stage} decisions")
    prisma = {"identified": int(len(frame)), "duplicates_removed": 0, "screened": int(len(frame)),
              "excluded": int(len(frame) - included), "included": included}
    return Replication(name=f"{stage} screening", prisma=prisma, simulation=sim, records=frame,
                       dedup_rules=pd.DataFrame())


def replay_missing_reason(store: Any, records: pd.DataFrame, stage: str = "title-abstract") -> str | None:
    """Why :func:`replay_review` gives no replay for ``records``, in one sentence (None when it can replay).

    Pages show it where the recall curve of the replay would be, so a figure that is gone from one run to
    the next says why.
    """
    from .decisions import final_decisions

    final = final_decisions(store, stage)
    decided = dict(zip(final["record_id"].tolist(), final["decision"].tolist()))
    labels = list(map(decided.get, records["record_id"].tolist()))
    n = len(labels)
    if not n:
        return "There are no records to screen yet."
    open_ = sum(v is None for v in labels)
    conflict = sum(v == "conflict" for v in labels)
    maybe = sum(v not in (None, "conflict", "include", "exclude") for v in labels)
    if open_ or conflict or maybe:
        parts = ([f"{open_:,} of {n:,} records have no decision yet"] if open_ else []) + \
                ([f"{conflict:,} {'is a conflict' if conflict == 1 else 'are conflicts'} between reviewers, "
                  "to resolve"] if conflict else []) + \
                ([f"{maybe:,} {'is' if maybe == 1 else 'are'} marked maybe"] if maybe else [])
        return ("The replay in prioritised order needs an include or exclude decision on every record: "
                + _join_words(parts) + ". It is drawn again once they are decided.")
    included = sum(v == "include" for v in labels)
    if included < 2:
        return f"The replay needs at least 2 included records; there {'is' if included == 1 else 'are'} {included}."
    if included == n:
        return "Every record is included: with no exclude there is no order to compare."
    return None


def _join_words(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _resolve(protocol_path: Path, value: str) -> Path:
    from ..protocol import PACKAGE_DATA

    for base in (protocol_path.parent, PACKAGE_DATA):
        candidate = (base / value).resolve()
        if candidate.exists():
            return candidate
    raise InputError(f"protocol {protocol_path}: screening_data file {value!r} not found next to the protocol "
                     f"or in {PACKAGE_DATA}: fix the path in screening_data", source=str(protocol_path))


def replicate(protocol: Any = "meijboom-2021", seed: int = 0, model: str = DEFAULT_MODEL) -> Replication:
    """Reproduce a published review's screening from the protocol's ``screening_data`` section.

    Parameters
    ----------
    protocol : Protocol, str or path-like
        A loaded protocol or a name/path for :func:`reviewlib.protocol.load_protocol`.
        Its ``screening_data`` section names ``openalex`` (works zip, folder or
        JSON) or ``csv`` (title/abstract table), ``labels`` (labels CSV, for
        ``openalex``) and ``label_column``; paths are relative to the protocol
        file, else to the package data folder.  Runs offline.

    Returns
    -------
    Replication
    """
    from ..errors import ProtocolError
    from ..protocol import Protocol, load_protocol

    proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    section = proto.section("screening_data")
    if not isinstance(section, dict):
        raise ProtocolError(f"protocol {proto.path} has no screening_data section: add openalex/labels or csv "
                            "and label_column", source=str(proto.path))
    label_column = str(section.get("label_column", "label_included"))
    if section.get("openalex"):
        if not section.get("labels"):
            raise ProtocolError(f"protocol {proto.path}: screening_data.labels is missing: name the labels CSV",
                                source=str(proto.path))
        frame = synergy_dataset(_resolve(proto.path, section["openalex"]), _resolve(proto.path, section["labels"]),
                                label_column)
    elif section.get("csv"):
        frame = load_dataset(_resolve(proto.path, section["csv"]), label_column)
    else:
        raise ProtocolError(f"protocol {proto.path}: screening_data needs 'openalex' (with 'labels') or 'csv'",
                            source=str(proto.path))
    return replicate_dataset(frame, label_column, name=proto.name, seed=seed, model=model)


def replicate_meijboom(data_dir: str | Path, seed: int = 0) -> Replication:
    """Reproduce the title/abstract screening of Meijboom et al. 2021 (BioDrugs) from SYNERGY data.

    Parameters
    ----------
    data_dir : path-like
        Folder with ``works_1.zip`` and ``labels.csv`` (SYNERGY dataset v1).
    seed : int
        Seed of the simulation's priors and model.
    """
    data_dir = Path(data_dir)
    frame = synergy_dataset(data_dir / "works_1.zip", data_dir / "labels.csv")
    return replicate_dataset(frame, "label_included", name="meijboom-2021", seed=seed)


# --------------------------------------------------------------------------- CLI
def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``reviewlib simulate``."""
    parser.add_argument("dataset", help="CSV with title, abstract and a 0/1 label column")
    parser.add_argument("--label-column", required=True, help="the 0/1 column (1 = included)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the priors and the model (default 0)")
    parser.add_argument("--model", choices=MODELS, default=DEFAULT_MODEL, help="classifier (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")


def summary_text(result: SimulationResult, source: str) -> str:
    """The readable summary printed by ``reviewlib simulate``."""
    stop = result.stop()
    hyper = result.hypergeometric_stop()
    ranked = result.ranked_stop()
    n = result.n
    lines = [
        f"Simulated screening of {source} (model {result.model}, seed {result.seed})",
        f"  records {result.n_records}, included {result.n_included}; priors: 1 included + 1 excluded "
        f"(rows {result.priors[0]}, {result.priors[1]}), not counted below",
        f"  95% recall after screening {result.screened_to_95} of {n} records "
        f"({result.screened_to_95 / n:.0%})",
        f"  WSS@95  {result.wss95:.3f}   (work saved over random screening at 95% recall)",
        f"  RRF@10  {result.rrf10:.1f}%  (included records found after screening 10% of records)",
        f"  ATD     {result.atd:.3f}   (average time to discovery, fraction of records)",
        f"  stopping rule ({stop['rule']}, no guarantee): stop after {stop['screened']} records, "
        f"recall {stop['recall']:.1%} ({stop['included_found']} of {result.n_included - 1})",
        f"  stopping rule (random sampling, hypergeometric test at {hyper['confidence']:.0%} confidence): "
        f"stop after {hyper['screened']} records ({hyper['switched_at']} prioritised + {hyper['sampled']} random), "
        f"recall {hyper['recall']:.1%} ({hyper['included_found']} of {result.n_included - 1})",
        f"  stopping rule (ranked, buscar's test on the model's order; assumes that order is at least as good "
        f"as random, not a guarantee): stop after {ranked['screened']} records, "
        f"recall {ranked['recall']:.1%} ({ranked['included_found']} of {result.n_included - 1})",
        f"  {result.retrains} retrains in {result.seconds:.1f} s",
    ]
    return "\n".join(lines)


def run_cli(args: argparse.Namespace) -> int:
    """Run ``reviewlib simulate``; returns the exit code."""
    frame = load_dataset(args.dataset, args.label_column)
    result = simulate(frame, args.label_column, args.seed, model=args.model, source=str(args.dataset))
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    else:
        sys.stdout.write(summary_text(result, str(args.dataset)) + "\n")
    return 0
