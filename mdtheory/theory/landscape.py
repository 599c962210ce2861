"""Energy landscape of the reduced model f(z~) = v^T sigma(W z~) (section 5).

Huang & Mirzasoleiman (arXiv:2601.22450) freeze attention to uniform, so the
model sees only z~ = sum_j e_(value_j, j), a sum of one-hot (value, position)
embeddings. Here the values are -1, +1 and the mask; by default the mask has
its own embedding (``mask_embedding="token"``, d = 3n', as in the paper);
``"zero"`` maps a masked position to the zero vector instead (d = 2n').

With hidden features h = sigma(W z~) and the readout v at its optimum for
fixed W, the squared MD loss equals  const - E(W)  with

    E(W) = c^T Sigma^+ c,
    c     = P_S E_S[|M|/(2t) f* h]
    Sigma = P_S E_S[|M|/(2t) h h^T] + P_N E_N[|M|/(2t) h h^T],

and v* = Sigma^+ c. ``noise_scale`` multiplies the noise part of Sigma: the
limit noise_scale -> 0 is the paper's P_N -> 0 of Corollary 4.6, where E(W)
no longer depends on W once the features span the targets.

The statistics come from ``exact.ParityEnumeration.corrupted_statistics``
(exact) or ``sample_statistics`` (Monte Carlo, for larger n).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import UserError
from .exact import CorruptedStatistics, _signal_target, check_sampling_window, sample_corrupted

MASK_EMBEDDINGS = ("token", "zero")
ACTIVATIONS = {
    "relu": lambda a: np.maximum(a, 0.0),
    "tanh": np.tanh,
}


def embed(inputs: np.ndarray, mask_embedding: str = "token") -> np.ndarray:
    """z~ = sum_j e_(value_j, j): one-hot slot value*n' + j, slots -1 -> 0,
    +1 -> 1, mask -> 2 (``token``) or nothing (``zero``)."""
    if mask_embedding not in MASK_EMBEDDINGS:
        raise UserError(f"mask_embedding must be one of {MASK_EMBEDDINGS}, got {mask_embedding!r}")
    inputs = np.asarray(inputs)
    count, length = inputs.shape
    slots = np.select([inputs == -1, inputs == 1], [0, 1], default=2)
    dim = (3 if mask_embedding == "token" else 2) * length
    z = np.zeros((count, dim))
    rows = np.repeat(np.arange(count), length)
    cols = (slots * length + np.arange(length)[None, :]).ravel()
    keep = slots.ravel() < dim // length
    z[rows[keep], cols[keep]] = 1.0
    return z


def features(W: np.ndarray, inputs: np.ndarray, activation: str = "relu",
             mask_embedding: str = "token") -> np.ndarray:
    """h = sigma(W z~) for every corrupted input, shape (U, hidden)."""
    if activation not in ACTIVATIONS:
        raise UserError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return ACTIVATIONS[activation](embed(inputs, mask_embedding) @ np.asarray(W).T)


def landscape_terms(stats: CorruptedStatistics, h: np.ndarray, noise_scale: float = 1.0):
    """(Sigma, c, K) from the regime split; K = P_S E_S[|M|/(2t) f*^2]."""
    a = stats.weight * np.where(stats.signal, 1.0, noise_scale)
    sigma = (h * a[:, None]).T @ h
    c = h.T @ (stats.weight * stats.target)
    k_const = float(np.sum(stats.weight * stats.target ** 2))
    return sigma, c, k_const


def raw_terms(stats: CorruptedStatistics, h: np.ndarray):
    """(Sigma, c) straight from the masked loss, no regime split:
    Sigma = E[|M|/(2t) h h^T], c = E[1/(2t) sum_{j in M} x'_j h]."""
    return (h * stats.weight[:, None]).T @ h, h.T @ stats.target_sum


def _pinv(matrix: np.ndarray, rcond: float) -> np.ndarray:
    return np.linalg.pinv(matrix, rcond=rcond, hermitian=True)


def energy(W: np.ndarray, stats: CorruptedStatistics, noise_scale: float = 1.0,
           activation: str = "relu", mask_embedding: str = "token", rcond: float = 1e-10) -> float:
    """E(W) = c^T Sigma^+ c."""
    h = features(W, stats.inputs, activation, mask_embedding)
    sigma, c, _ = landscape_terms(stats, h, noise_scale)
    return float(c @ _pinv(sigma, rcond) @ c)


def optimal_readout(W: np.ndarray, stats: CorruptedStatistics, activation: str = "relu",
                    mask_embedding: str = "token", rcond: float = 1e-10) -> np.ndarray:
    """v* = Sigma^+ c (the minimum-norm minimiser of the loss over v)."""
    h = features(W, stats.inputs, activation, mask_embedding)
    sigma, c, _ = landscape_terms(stats, h)
    return _pinv(sigma, rcond) @ c


def loss_at_readout(v: np.ndarray, W: np.ndarray, stats: CorruptedStatistics,
                    activation: str = "relu", mask_embedding: str = "token") -> float:
    """The masked squared loss of f = v^T sigma(W z~) from the statistics."""
    return stats.loss(features(W, stats.inputs, activation, mask_embedding) @ v)


def random_weights(hidden: int, length: int, seed: int = 0, mask_embedding: str = "token") -> np.ndarray:
    dim = (3 if mask_embedding == "token" else 2) * length
    return np.random.default_rng(seed).normal(scale=1.0 / math.sqrt(length), size=(hidden, dim))


def sample_statistics(n: int, k: int, t0: float, t1: float, num_samples: int = 50_000,
                      seed: int = 0) -> CorruptedStatistics:
    """Monte Carlo CorruptedStatistics: one row per sampled (x, t, M), each
    with weight 1/num_samples (rows may repeat; sums stay unbiased)."""
    k, t0, t1 = check_sampling_window(k, t0, t1)
    rng = np.random.default_rng(seed)
    secret = tuple(range(k))
    seqs, t, masks = sample_corrupted(n, k, t0, t1, num_samples, rng, secret)
    inputs = np.where(masks, 0, seqs).astype(np.int8)
    inv = 1.0 / (2 * np.maximum(t, 1e-300) * num_samples)
    m = masks.sum(axis=1)
    signal, target = _signal_target(inputs, secret + (n,))
    return CorruptedStatistics(inputs=inputs, weight=inv * m,
                               target_sum=inv * (seqs * masks).sum(axis=1),
                               signal=signal, target=target,
                               constant=float(np.sum(inv * m)))


def corollary_4_6_table(stats: CorruptedStatistics, hidden: int, seeds: Sequence[int] = range(5),
                        noise_scales: Sequence[float] = (1.0, 1e-1, 1e-2, 1e-3, 0.0),
                        activation: str = "relu", mask_embedding: str = "token",
                        rcond: float = 1e-10) -> dict:
    """E(W) for several random W at each noise scale (P_N -> noise_scale * P_N).

    Corollary 4.6: with noise_scale = 0 and features that span f* on the
    signal inputs, E(W) = K = P_S E_S[|M|/(2t) f*^2] for every W, so the
    landscape is flat in W. Returns per scale the values, their spread
    (max - min) and K; also whether the features span the targets."""
    rows = []
    spans = []
    k_const = None
    for seed in seeds:
        W = random_weights(hidden, stats.inputs.shape[1], seed, mask_embedding)
        h = features(W, stats.inputs, activation, mask_embedding)
        sig = stats.signal
        coef, *_ = np.linalg.lstsq(h[sig], stats.target[sig], rcond=None)
        spans.append(float(np.max(np.abs(h[sig] @ coef - stats.target[sig]))))
        values = []
        for scale in noise_scales:
            sigma, c, k_const = landscape_terms(stats, h, scale)
            values.append(float(c @ _pinv(sigma, rcond) @ c))
        rows.append(values)
    values = np.array(rows)                  # (seeds, scales)
    return {
        "noise_scales": list(noise_scales),
        "energies": values.T.tolist(),       # per scale, one value per W
        "spread": (values.max(axis=0) - values.min(axis=0)).tolist(),
        "mean": values.mean(axis=0).tolist(),
        "K": k_const,
        "max_span_residual": max(spans),
    }
