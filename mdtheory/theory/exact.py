"""Exact enumeration and Monte Carlo checks of the signal/noise decomposition.

Setting (Huang & Mirzasoleiman, arXiv:2601.22450, sections 1-3): n input
bits x in {-1,1}^n, label y = prod_{j in S} x_j, the full sequence
x' = (x, y) of length n' = n+1 and the extended secret set S' = S + {label}
of k+1 positions. A rate t ~ U[t0, t1] is drawn, every position is masked
with probability t and replaced by 0, giving the corrupted input x~. The
theory's loss is

    l = 1/(2t) * sum_{j masked} (f(x~)_j - x'_j)^2 .

In the *reduced model* f(x~) is one number shared by all positions
(uniform attention); ``per_position=True`` lets every position have its own
output (the transformer case, see the digest's note).

For n' <= ~12, ``ParityEnumeration`` sums over all 2^n inputs and all 2^{n'}
mask patterns; the rate t is integrated exactly by Gauss-Legendre (every
integrand is a polynomial in t of degree <= n'). A model f is any lookup
table over the 3^{n'} corrupted inputs, so Theorem 4.3 (squared loss =
signal term + noise term + an f-independent constant), its cross-entropy
version and the Bayes risks are checked for arbitrary f, not only for the
model class of the paper. Corrupted inputs are encoded in base 3 with digit
0 for -1, 1 for the mask and 2 for +1.

For larger n, ``mc_*`` functions give Monte Carlo estimates with standard
errors. Windows that reach t = 0 make the 1/t-weighted terms heavy-tailed
(infinite variance), so their standard errors are unreliable there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import UserError
from .numeric import check_k, check_window

MAX_ENUMERATED_LENGTH = 14


# --- building blocks ---

def rate_quadrature(t0: float, t1: float, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and probability weights integrating polynomials in t of the given
    degree exactly against t ~ U[t0, t1] (a single node if t0 == t1)."""
    t0, t1 = check_window(t0, t1)
    if t0 == t1:
        return np.array([t0]), np.array([1.0])
    x, w = np.polynomial.legendre.leggauss(degree // 2 + 2)
    return 0.5 * (t1 - t0) * x + 0.5 * (t1 + t0), 0.5 * w


def all_sequences(n: int, secret: Sequence[int]) -> np.ndarray:
    """All 2^n full sequences x' = (x, prod_S x) as a (2^n, n+1) array of +-1."""
    bits = (np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1
    x = 1 - 2 * bits
    y = np.prod(x[:, list(secret)], axis=1, keepdims=True)
    return np.concatenate([x, y], axis=1).astype(np.int8)


def all_masks(length: int) -> np.ndarray:
    """All 2^length mask patterns as a boolean (2^length, length) array."""
    return ((np.arange(2 ** length)[:, None] >> np.arange(length)[None, :]) & 1).astype(bool)


def encode(corrupted: np.ndarray) -> np.ndarray:
    """Base-3 code of corrupted sequences with values in {-1, 0, 1}."""
    powers = 3 ** np.arange(corrupted.shape[-1], dtype=np.int64)
    return ((corrupted.astype(np.int64) + 1) * powers).sum(axis=-1)


def decode(codes: np.ndarray, length: int) -> np.ndarray:
    """Inverse of ``encode``: (len(codes), length) array with values in {-1, 0, 1}."""
    codes = np.asarray(codes, dtype=np.int64)
    digits = (codes[:, None] // 3 ** np.arange(length, dtype=np.int64)[None, :]) % 3
    return (digits - 1).astype(np.int8)


def _entropy(p: np.ndarray) -> np.ndarray:
    """Binary entropy in nats, 0 log 0 = 0."""
    p = np.clip(p, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log(p), 0.0) + np.where(p < 1, (1 - p) * np.log(1 - p), 0.0))
    return h


def _kl(q: np.ndarray, f: np.ndarray) -> np.ndarray:
    """KL(Bernoulli(q) || Bernoulli(f)) in nats."""
    return -_entropy(q) - (q * np.log(f) + (1 - q) * np.log(1 - f))


@dataclass
class CorruptedStatistics:
    """Sufficient statistics of the squared MD loss, one row per corrupted input u.

    With A_u = E[|M|/(2t) 1{x~=u}] and B_u = E[1/(2t) sum_{j in M} x'_j 1{x~=u}],
    the loss of any shared-output f is  sum_u A_u f_u^2 - 2 B_u f_u + constant.
    ``target`` is f*_u: x'_i/|M| in the signal regime (i the masked element of
    S', known from the visible ones), 0 in the noise regime.
    """

    inputs: np.ndarray      # (U, n') values in {-1, 0, 1}
    weight: np.ndarray      # A_u
    target_sum: np.ndarray  # B_u
    signal: np.ndarray      # bool, u in the signal regime
    target: np.ndarray      # f*_u
    constant: float         # E[|M|/(2t)] = E[(1/2t) sum_{j in M} x'_j^2]

    def loss(self, f: np.ndarray) -> float:
        return float(np.sum(self.weight * f ** 2 - 2 * self.target_sum * f) + self.constant)


def _signal_target(inputs: np.ndarray, secret_ext: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Regime and f* of corrupted inputs: signal iff exactly one element of S'
    is masked; then its value is the product of the other k (all visible)."""
    sub = inputs[:, list(secret_ext)]
    masked_in_s = (sub == 0).sum(axis=1)
    signal = masked_in_s == 1
    m = (inputs == 0).sum(axis=1)
    # product of the visible elements of S' (masked entries counted as 1)
    value = np.prod(np.where(sub == 0, 1, sub), axis=1)
    target = np.where(signal, value / np.maximum(m, 1), 0.0)
    return signal, target


# --- exhaustive enumeration ---

class ParityEnumeration:
    """All inputs x all masks for (n, k)-parity, t ~ U[t0, t1] (t1=None: point t0).

    Per mask pattern M with m = |M| masked positions it keeps
    ``prob[M] = E_t[t^m (1-t)^{n'-m}]`` and the loss weight
    ``lossw[M] = E_t[t^m (1-t)^{n'-m} / (2t)]`` (zero for the empty mask).
    """

    def __init__(self, n: int, k: int, t0: float, t1: float | None = None,
                 secret: Sequence[int] | None = None, chunk: int = 64):
        self.n, self.k = int(n), check_k(k)
        if self.k > self.n:
            raise UserError(f"need k <= n, got k={k}, n={n}")
        self.length = self.n + 1
        if self.length > MAX_ENUMERATED_LENGTH:
            raise UserError(f"enumeration needs n+1 <= {MAX_ENUMERATED_LENGTH}; use the mc_* estimators")
        self.t0, self.t1 = check_window(t0, t0 if t1 is None else t1)
        self.secret = tuple(range(self.k)) if secret is None else tuple(int(s) for s in secret)
        if len(set(self.secret)) != self.k or not all(0 <= s < self.n for s in self.secret):
            raise UserError(f"secret must be {self.k} distinct positions in [0, {self.n})")
        self.secret_ext = self.secret + (self.n,)
        self.chunk = chunk

        self.seqs = all_sequences(self.n, self.secret)            # (X, n')
        self.masks = all_masks(self.length)                        # (Mp, n')
        self.m = self.masks.sum(axis=1)
        nodes, weights = rate_quadrature(self.t0, self.t1, self.length + 1)
        m, rest = self.m[:, None], (self.length - self.m)[:, None]
        pattern = nodes[None, :] ** m * (1 - nodes[None, :]) ** rest
        self.prob = pattern @ weights
        if self.t0 == 0.0 and self.t1 == 0.0:
            self.lossw = np.zeros_like(self.prob)  # nothing is ever masked
        else:
            self.lossw = np.where(self.m > 0, (pattern / (2 * nodes[None, :])) @ weights, 0.0)
        in_s = self.masks[:, list(self.secret_ext)]
        self.hits = in_s.sum(axis=1)                   # |M n S'|
        self.is_signal = self.hits == 1
        self.signal_pos = np.where(self.is_signal, np.argmax(in_s, axis=1), 0)
        self.signal_pos = np.array(self.secret_ext)[self.signal_pos]
        corrupted = np.where(self.masks[:, None, :], 0, self.seqs[None, :, :])
        self.codes = encode(corrupted).astype(np.int64)           # (Mp, X)

    @property
    def num_codes(self) -> int:
        return 3 ** self.length

    # -- regimes ------------------------------------------------------------
    def regime_probabilities(self) -> dict:
        """P_S, P_N and the law of |M n S'| by summing over mask patterns."""
        law = np.bincount(self.hits, weights=self.prob, minlength=self.k + 2)
        return {"P_S": float(law[1]), "P_N": float(law[0] + law[2:].sum()),
                "hits_law": law.tolist(), "total": float(self.prob.sum())}

    def _chunks(self):
        for start in range(0, len(self.masks), self.chunk):
            yield slice(start, start + self.chunk)

    # -- squared loss -------------------------------------------------------
    def squared_loss(self, f: np.ndarray) -> float:
        """The raw masked loss E[1/(2t) sum_{j in M} (f_j(x~) - x'_j)^2].

        ``f`` is a lookup table over corrupted inputs: shape (3^{n'},) for
        the shared-output model, (n', 3^{n'}) for one output per position."""
        f = np.asarray(f, dtype=float)
        total = 0.0
        for sl in self._chunks():
            codes = self.codes[sl]
            if f.ndim == 1:
                out = f[codes][:, :, None]
            else:
                out = np.moveaxis(f[:, codes], 0, -1)           # (c, X, n')
            sq = (out - self.seqs[None]) ** 2 * self.masks[sl][:, None, :]
            total += float(self.lossw[sl] @ sq.sum(axis=2).mean(axis=1))
        return total

    def squared_decomposition(self, f: np.ndarray) -> dict:
        """Theorem 4.3 terms for lookup table f.

        shared output: signal = E[1_S |M|/(2t) (f - f*)^2], f* = x'_i/|M|;
                       noise  = E[1_N |M|/(2t) f^2];
        per position:  signal = E[1/(2t) sum_{j in M identifiable} (f_j - x'_j)^2],
                       noise  = E[1/(2t) sum_{j in M not identifiable} f_j^2].
        ``constant`` = loss - signal - noise; ``constant_theory`` is the
        f-independent value the theorem predicts for it."""
        f = np.asarray(f, dtype=float)
        loss = self.squared_loss(f)
        signal = noise = 0.0
        for sl in self._chunks():
            codes, lw = self.codes[sl], self.lossw[sl]
            sig, m = self.is_signal[sl], self.m[sl]
            truth = self.seqs[:, self.signal_pos[sl]].T                 # (c, X)
            if f.ndim == 1:
                out = f[codes]
                fstar = truth / np.maximum(m, 1)[:, None]
                s_val = ((out - fstar) ** 2).mean(axis=1) * m
                n_val = (out ** 2).mean(axis=1) * m
                signal += float(lw @ np.where(sig, s_val, 0.0))
                noise += float(lw @ np.where(sig, 0.0, n_val))
            else:
                out = np.moveaxis(f[:, codes], 0, -1)                   # (c, X, n')
                ident = np.zeros(self.masks[sl].shape, dtype=bool)
                rows = np.nonzero(sig)[0]
                ident[rows, self.signal_pos[sl][rows]] = True
                masked = self.masks[sl]
                s_val = (((out - self.seqs[None]) ** 2) * ident[:, None, :]).sum(axis=2).mean(axis=1)
                n_val = ((out ** 2) * (masked & ~ident)[:, None, :]).sum(axis=2).mean(axis=1)
                signal += float(lw @ s_val)
                noise += float(lw @ n_val)
        if f.ndim == 1:
            theory = float(self.lossw @ (self.m - np.where(self.is_signal, 1.0 / np.maximum(self.m, 1), 0.0)))
        else:
            theory = float(self.lossw @ (self.m - self.is_signal))
        return {"loss": loss, "signal": signal, "noise": noise,
                "constant": loss - signal - noise, "constant_theory": theory}

    # -- cross-entropy ------------------------------------------------------
    def cross_entropy_decomposition(self, f: np.ndarray) -> dict:
        """CE version for a shared output probability f (of bit value 1,
        bits b = (x'+1)/2): loss = E[1/(2t) sum_{j in M} CE(b_j, f)];
        signal = E[1_S |M|/(2t) KL(f*_S || f)], f*_S = (b_i + (|M|-1)/2)/|M|;
        noise = E[1_N |M|/(2t) KL(1/2 || f)]; constant = E[|M|/(2t) H(f*)]."""
        f = np.asarray(f, dtype=float)
        if np.any(f <= 0) or np.any(f >= 1):
            raise UserError("cross-entropy needs probabilities strictly inside (0, 1)")
        bits = (self.seqs + 1) / 2
        loss = signal = noise = theory = 0.0
        for sl in self._chunks():
            codes, lw, sig, m = self.codes[sl], self.lossw[sl], self.is_signal[sl], self.m[sl]
            p = f[codes]                                                 # (c, X)
            ce = -(bits[None] * np.log(p)[:, :, None] + (1 - bits[None]) * np.log(1 - p)[:, :, None])
            loss += float(lw @ (ce * self.masks[sl][:, None, :]).sum(axis=2).mean(axis=1))
            b_i = bits[:, self.signal_pos[sl]].T
            mm = np.maximum(m, 1)[:, None]
            fstar = np.where(sig[:, None], (b_i + (mm - 1) / 2) / mm, 0.5)
            kl = _kl(fstar, p).mean(axis=1) * m
            signal += float(lw @ np.where(sig, kl, 0.0))
            noise += float(lw @ np.where(sig, 0.0, kl))
            theory += float(lw @ (_entropy(fstar).mean(axis=1) * m))
        return {"loss": loss, "signal": signal, "noise": noise,
                "constant": loss - signal - noise, "constant_theory": theory}

    # -- Bayes risk ---------------------------------------------------------
    def bayes_risk(self, position: int) -> float:
        """E[H(x'_i | x~) | i masked] in nats, the posterior computed by
        grouping inputs with the same visible tokens (no theory used)."""
        if not 0 <= position < self.length:
            raise UserError(f"position must lie in [0, {self.length})")
        bits = (self.seqs[:, position] + 1) / 2
        total = norm = 0.0
        for row in np.nonzero(self.masks[:, position])[0]:
            visible = ~self.masks[row]
            key = ((self.seqs[:, visible] + 1) // 2).astype(np.int64) @ (1 << np.arange(visible.sum()))
            counts = np.bincount(key, minlength=1)
            ones = np.bincount(key, weights=bits, minlength=1)
            posterior = (ones / np.maximum(counts, 1))[key]
            weight = 2 * self.lossw[row]          # E_t[P(M)/t] = P(M | i masked), t-averaged
            total += weight * float(_entropy(posterior).mean())
            norm += weight
        return total / norm

    # -- aggregated statistics for the energy landscape ---------------------
    def corrupted_statistics(self) -> CorruptedStatistics:
        """Sum the loss coefficients per corrupted input (see CorruptedStatistics)."""
        size = self.num_codes
        weight = np.zeros(size)
        target_sum = np.zeros(size)
        seen = np.zeros(size)
        x_count = len(self.seqs)
        for sl in self._chunks():
            codes = self.codes[sl]
            lw = np.broadcast_to(self.lossw[sl][:, None], codes.shape) / x_count
            m = np.broadcast_to(self.m[sl][:, None], codes.shape)
            masked_sum = (self.seqs[None] * self.masks[sl][:, None, :]).sum(axis=2)
            weight += np.bincount(codes.ravel(), weights=(lw * m).ravel(), minlength=size)
            target_sum += np.bincount(codes.ravel(), weights=(lw * masked_sum).ravel(), minlength=size)
            seen += np.bincount(codes.ravel(), weights=np.broadcast_to(
                self.prob[sl][:, None], codes.shape).ravel(), minlength=size)
        keep = np.nonzero(seen > 0)[0]
        inputs = decode(keep, self.length)
        signal, target = _signal_target(inputs, self.secret_ext)
        return CorruptedStatistics(inputs=inputs, weight=weight[keep], target_sum=target_sum[keep],
                                   signal=signal, target=target,
                                   constant=float(self.lossw @ self.m))


# --- closed-form constants (used to check enumeration and Monte Carlo) ---

def squared_loss_constant(n: int, k: int, t0: float, t1: float | None = None) -> float:
    """Theorem 4.3's constant for the shared-output model:
    E[|M|/(2t)] - E[1_S / (2t|M|)] = n'/2 * P(t>0) - E_t[(k+1)(1-t)^k E[1/(2(1+B))]],
    with B ~ Binomial(n'-k-1, t) the masked positions outside S'."""
    k = check_k(k)
    t0, t1 = check_window(t0, t0 if t1 is None else t1)
    length = n + 1
    nodes, weights = rate_quadrature(t0, t1, length + 1)
    rest = length - k - 1
    r = np.arange(rest + 1)
    binom = np.array([math.comb(rest, int(i)) for i in r], dtype=float)
    total = 0.0
    for t, w in zip(nodes, weights):
        if t == 0.0:
            continue
        law = binom * t ** r * (1 - t) ** (rest - r)
        total += w * (length / 2 - (k + 1) * (1 - t) ** k * float(law @ (1 / (2 * (1 + r)))))
    return float(total)


# --- Monte Carlo for larger n ---

def check_sampling_window(k: int, t0: float, t1: float) -> tuple[int, float, float]:
    """Validated (k, t0, t1) for Monte Carlo over corrupted inputs; the window
    {0} is refused because it masks nothing (every 1/t weight is infinite)."""
    k = check_k(k)
    t0, t1 = check_window(t0, t1)
    if t1 == 0.0:
        raise UserError("the window {0} masks nothing")
    return k, t0, t1


def sample_corrupted(n: int, k: int, t0: float, t1: float, size: int, rng: np.random.Generator,
                     secret: Sequence[int]):
    """Sample (sequence in {-1,1}^{n'}, t ~ U[t0, t1], Bernoulli(t) mask) triples."""
    length = n + 1
    x = rng.choice(np.array([-1, 1], dtype=np.int8), size=(size, n))
    y = np.prod(x[:, list(secret)], axis=1, keepdims=True)
    seqs = np.concatenate([x, y], axis=1)
    t = t0 + (t1 - t0) * rng.random(size) if t1 > t0 else np.full(size, t0)
    masks = rng.random((size, length)) < t[:, None]
    return seqs, t, masks


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def mc_regime_probability(n: int, k: int, t0: float, t1: float, num_samples: int = 100_000,
                          seed: int = 0) -> dict:
    """Monte Carlo P_S: the fraction of sampled masks with |M n S'| = 1."""
    k = check_k(k)
    t0, t1 = check_window(t0, t1)
    rng = np.random.default_rng(seed)
    _, _, masks = sample_corrupted(n, k, t0, t1, num_samples, rng, tuple(range(k)))
    hits = masks[:, list(range(k)) + [n]].sum(axis=1)
    mean, se = _mean_se(hits == 1)
    return {"P_S": mean, "se": se, "num_samples": num_samples}


def mc_squared_decomposition(n: int, k: int, f: Callable[[np.ndarray], np.ndarray],
                             t0: float, t1: float, num_samples: int = 100_000, seed: int = 0,
                             batch: int = 20_000) -> dict:
    """Monte Carlo of the loss, signal, noise terms and their difference for a
    shared-output function f of corrupted inputs ((B, n') -> (B,)).
    Returns {name: (mean, standard error)}; 'constant' should match
    ``squared_loss_constant``."""
    k, t0, t1 = check_sampling_window(k, t0, t1)
    rng = np.random.default_rng(seed)
    secret = tuple(range(k))
    parts = {name: [] for name in ("loss", "signal", "noise", "constant")}
    done = 0
    while done < num_samples:
        size = min(batch, num_samples - done)
        seqs, t, masks = sample_corrupted(n, k, t0, t1, size, rng, secret)
        t = np.maximum(t, 1e-300)
        out = np.asarray(f(np.where(masks, 0, seqs)), dtype=float)
        m = masks.sum(axis=1)
        loss = ((out[:, None] - seqs) ** 2 * masks).sum(axis=1) / (2 * t)
        in_s = masks[:, list(secret) + [n]]
        sig = in_s.sum(axis=1) == 1
        truth = np.prod(np.where(in_s, 1, seqs[:, list(secret) + [n]]), axis=1)
        fstar = np.where(sig, truth / np.maximum(m, 1), 0.0)
        signal = np.where(sig, m / (2 * t) * (out - fstar) ** 2, 0.0)
        noise = np.where(sig, 0.0, m / (2 * t) * out ** 2)
        for name, v in (("loss", loss), ("signal", signal), ("noise", noise),
                        ("constant", loss - signal - noise)):
            parts[name].append(v)
        done += size
    return {name: _mean_se(np.concatenate(v)) for name, v in parts.items()}


def random_embedding_function(length: int, seed: int = 0, scale: float = 1.0):
    """A random smooth f(x~) = tanh(sum_j a[value_j, j] + b) over corrupted inputs,
    for Monte Carlo checks where a lookup table is too big."""
    rng = np.random.default_rng(seed)
    table = rng.normal(scale=scale / math.sqrt(length), size=(3, length))
    bias = rng.normal(scale=0.3)

    def f(corrupted: np.ndarray) -> np.ndarray:
        slots = corrupted.astype(np.int64) + 1
        return np.tanh(table[slots, np.arange(length)[None, :]].sum(axis=1) + bias)
    return f
