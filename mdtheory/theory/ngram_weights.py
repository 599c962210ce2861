"""Dependency weights w_i of a corpus, the input of the predicted mask rate t*.

The paper (arXiv:2601.22450, Sec. 6 and App. F.4) models language as a
mixture of order-i dependencies (i tokens that determine each other, like
an (i-1)-parity), so the useful signal at mask rate t is

    Signal(t) = sum_i w_i t (1 - t)^(i-1),    t* = argmax_t Signal(t)

(``mdtheory.theory.numeric.mixture_signal`` / ``mixture_argmax``). It quotes
WikiText weights from word n-gram counts with n-grams seen fewer than 5 times
dropped, but does not say how counts become weights. We therefore define
estimators explicitly and report how much t* moves between them.

Words: the text is lower-cased and split into words with the regular
expression ``[a-z0-9]+(?:'[a-z]+)*`` (punctuation and line breaks are
separators, so n-grams run across lines and speeches).

``distinct-frequent`` (default)
    D_i = number of distinct word i-grams seen at least ``min_count`` times;
    w_i = D_i / sum_j D_j. "How many reliable order-i patterns exist."
``mass-frequent``
    M_i = number of i-gram *occurrences* whose i-gram is seen at least
    ``min_count`` times (the share of text positions an order-i pattern
    explains); w_i = M_i / sum_j M_j.
``lag-mi``
    w_i proportional to the mutual information between two words i-1 apart
    (plug-in estimate over the ``mi_vocab`` most frequent words, all others
    pooled), minus the same estimate on a shuffled copy of the word stream
    (which measures the plug-in bias, since shuffled words are independent);
    clipped at 0. A pairwise proxy for order-i dependence.
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import UserError

ESTIMATORS = ("distinct-frequent", "mass-frequent", "lag-mi")
ORDERS = (2, 3, 4, 5, 6)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def word_ids(text: str) -> tuple[np.ndarray, list[str]]:
    """Word stream as int ids, ids ranked by frequency (0 = most frequent)."""
    toks = words(text)
    if not toks:
        raise UserError("the corpus contains no words")
    vocab, inverse, counts = np.unique(np.array(toks), return_inverse=True, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse].astype(np.int64), [str(v) for v in vocab[order]]


def ngram_counts(ids: np.ndarray, order: int) -> np.ndarray:
    """Counts of every distinct n-gram of the given order (unsorted)."""
    if len(ids) < order:
        return np.zeros(0, dtype=np.int64)
    grams = np.lib.stride_tricks.sliding_window_view(ids, order)
    rows = np.ascontiguousarray(grams).view(np.dtype((np.void, grams.dtype.itemsize * order)))
    _, counts = np.unique(rows.ravel(), return_counts=True)
    return counts


def _normalise(raw: dict[int, float], name: str) -> dict[int, float]:
    total = sum(raw.values())
    if total <= 0:
        raise UserError(f"estimator {name!r} found no dependencies (corpus too small or min_count too high)")
    return {i: v / total for i, v in raw.items()}


def distinct_frequent(ids, orders=ORDERS, min_count: int = 5) -> dict[int, float]:
    raw = {i: float((ngram_counts(ids, i) >= min_count).sum()) for i in orders}
    return _normalise(raw, "distinct-frequent")


def mass_frequent(ids, orders=ORDERS, min_count: int = 5) -> dict[int, float]:
    raw = {}
    for i in orders:
        c = ngram_counts(ids, i)
        raw[i] = float(c[c >= min_count].sum())
    return _normalise(raw, "mass-frequent")


def _lag_mutual_information(ids: np.ndarray, lag: int, vocab: int) -> float:
    x = np.minimum(ids, vocab)  # pool rare words into one symbol
    a, b = x[:-lag], x[lag:]
    joint = np.bincount(a * (vocab + 1) + b, minlength=(vocab + 1) ** 2).astype(float)
    joint /= joint.sum()
    joint = joint.reshape(vocab + 1, vocab + 1)
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz])))


def lag_mi(ids, orders=ORDERS, mi_vocab: int = 1000, seed: int = 0) -> dict[int, float]:
    shuffled = np.random.default_rng(seed).permutation(ids)
    raw = {}
    for i in orders:
        mi = _lag_mutual_information(ids, i - 1, mi_vocab)
        bias = _lag_mutual_information(shuffled, i - 1, mi_vocab)
        raw[i] = max(mi - bias, 0.0)
    return _normalise(raw, "lag-mi")


def estimate_weights(ids: np.ndarray, estimator: str = "distinct-frequent", orders=ORDERS,
                     min_count: int = 5, mi_vocab: int = 1000) -> dict[int, float]:
    """Dependency weights {order: w} (summing to 1) of a word-id stream."""
    if estimator not in ESTIMATORS:
        raise UserError(f"unknown estimator {estimator!r}; choose from {', '.join(ESTIMATORS)}")
    if int(min_count) < 1:
        raise UserError(f"min_count must be >= 1, got {min_count}")
    if estimator == "distinct-frequent":
        return distinct_frequent(ids, orders, int(min_count))
    if estimator == "mass-frequent":
        return mass_frequent(ids, orders, int(min_count))
    return lag_mi(ids, orders, int(mi_vocab))
