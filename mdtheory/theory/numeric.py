"""Numeric closed forms of the k-parity masked-diffusion theory (numpy/scipy).

Every quantity of Huang & Mirzasoleiman (arXiv:2601.22450), sections 3-6,
for k-parity trained with a mask rate t ~ U[t0, t1]:

    P_S(t)       = (k+1) t (1-t)^k              probability of the signal regime
    P_S(t0, t1)  = E[P_S(t)],  P_N = 1 - P_S    window averages
    N_bound      = 4 log(4n/delta) / (E[t] E[(1-t)^k]^2)   identifiability bound

plus the optimal rates and windows built from them. These are the fast twins
of ``mdtheory.theory.symbolic`` (tested equal to it); plots and training code
use these. Functions broadcast over t, t0, t1 and k where that makes sense.

Windows. ``t0 == t1`` is the point mass at t0 (the limit of the window
average). Narrow windows are evaluated by Gauss-Legendre quadrature, which is
exact here because every integrand is a polynomial in t of degree <= k+1 (up
to k ~ 400; for larger k the narrow window keeps a 200-node rule accurate);
the closed form would lose digits to cancellation when t1 - t0 is tiny.
"""
from __future__ import annotations

import functools
import math
from typing import Mapping, Sequence

import numpy as np
from scipy import optimize

from ..errors import UserError

# Word n-gram dependency weights on WikiText quoted in the paper (section 6).
PAPER_WIKITEXT_WEIGHTS = {2: 0.7427, 3: 0.2063, 4: 0.0401, 5: 0.0084, 6: 0.0024}

_NARROW = 1e-3  # below this width, use exact quadrature instead of the closed form
_MAX_NODES = 200


# --- checks ---

def check_k(k) -> int:
    """k must be an integer >= 1 (the parity order)."""
    if isinstance(k, bool) or not float(k).is_integer() or k < 1:
        raise UserError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def check_window(t0, t1) -> tuple[float, float]:
    """A mask-rate window [t0, t1] inside [0, 1]."""
    try:
        t0, t1 = float(t0), float(t1)
    except (TypeError, ValueError):
        raise UserError(f"window ends must be numbers, got {t0!r}, {t1!r}") from None
    for name, value in (("t0", t0), ("t1", t1)):
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise UserError(f"{name} must lie in [0, 1], got {value}")
    if t0 > t1:
        raise UserError(f"invalid window: t0={t0} > t1={t1}")
    return t0, t1


# --- point values and window averages ---

def p_signal_at(t, k):
    """P_S(t) = (k+1) t (1-t)^k: exactly one of the k+1 elements of S' masked."""
    t, k = np.asarray(t, dtype=float), np.asarray(k, dtype=float)
    return (k + 1) * t * (1.0 - t) ** k


@functools.lru_cache(maxsize=64)
def _legendre(count: int):
    return np.polynomial.legendre.leggauss(count)


def _window_mean_quadrature(fn, k: int, t0: float, t1: float) -> float:
    """Mean of a polynomial fn(t) of degree <= k+1 over a narrow [t0, t1]:
    exact up to k = 2*_MAX_NODES - 4; beyond that the 200-node rule is still
    accurate to rounding because the window is narrow (smooth integrand)."""
    nodes, weights = _legendre(min(k // 2 + 2, _MAX_NODES))
    t = 0.5 * (t1 - t0) * nodes + 0.5 * (t1 + t0)
    return float(0.5 * np.sum(weights * fn(t)))


def _vectorise_window(scalar_fn):
    """Broadcast a scalar function of (k, t0, t1) over array arguments."""
    def wrapper(k, t0, t1):
        k_arr, t0_arr, t1_arr = np.broadcast_arrays(np.asarray(k), np.asarray(t0, dtype=float),
                                                    np.asarray(t1, dtype=float))
        if k_arr.ndim == 0:
            return scalar_fn(check_k(k_arr.item()), *check_window(t0_arr.item(), t1_arr.item()))
        out = np.empty(k_arr.shape)
        for idx in np.ndindex(k_arr.shape):
            out[idx] = scalar_fn(check_k(k_arr[idx].item()),
                                 *check_window(t0_arr[idx].item(), t1_arr[idx].item()))
        return out
    wrapper.__name__ = scalar_fn.__name__.lstrip("_")
    wrapper.__doc__ = scalar_fn.__doc__
    return wrapper


def expected_t(t0, t1):
    """E[t] = (t0 + t1) / 2 for t ~ U[t0, t1]."""
    return 0.5 * (np.asarray(t0, dtype=float) + np.asarray(t1, dtype=float))


@_vectorise_window
def _expected_one_minus_t_pow(k: int, t0: float, t1: float) -> float:
    """E[(1-t)^k] = ((1-t0)^{k+1} - (1-t1)^{k+1}) / ((k+1)(t1-t0)); (1-t0)^k if t0 = t1."""
    if t1 - t0 < _NARROW:
        return _window_mean_quadrature(lambda t: (1.0 - t) ** k, k, t0, t1)
    return ((1.0 - t0) ** (k + 1) - (1.0 - t1) ** (k + 1)) / ((k + 1) * (t1 - t0))


def expected_one_minus_t_pow(k, t0, t1):
    """E[(1-t)^k] for t ~ U[t0, t1] (the paper's rho_k); point value if t0 = t1."""
    return _expected_one_minus_t_pow(k, t0, t1)


def _signal_antiderivative(t: float, k: int) -> float:
    """F(t) with F' = t (1-t)^k:  (1-t)^{k+2}/(k+2) - (1-t)^{k+1}/(k+1)."""
    return (1.0 - t) ** (k + 2) / (k + 2) - (1.0 - t) ** (k + 1) / (k + 1)


@_vectorise_window
def _p_signal(k: int, t0: float, t1: float) -> float:
    """P_S = (k+1)/(t1-t0) [F(t1) - F(t0)]; the point value when t0 = t1."""
    if t1 - t0 < _NARROW:
        return _window_mean_quadrature(lambda t: (k + 1) * t * (1.0 - t) ** k, k, t0, t1)
    return (k + 1) * (_signal_antiderivative(t1, k) - _signal_antiderivative(t0, k)) / (t1 - t0)


def p_signal(k, t0=0.0, t1=1.0):
    """P_S = (k+1) E[t (1-t)^k] for t ~ U[t0, t1]; the full range gives 1/(k+2)."""
    return _p_signal(k, t0, t1)


def p_noise(k, t0=0.0, t1=1.0):
    """P_N = 1 - P_S: no element, or two or more elements, of S' masked."""
    return 1.0 - p_signal(k, t0, t1)


def sample_complexity_bound(n, k, delta, t0, t1):
    """N >= 4 log(4n/delta) / (E[t] E[(1-t)^k]^2); inf for the window {0}."""
    n = np.asarray(n, dtype=float)
    delta = np.asarray(delta, dtype=float)
    if np.any(delta <= 0) or np.any(delta >= 1):
        raise UserError(f"delta must lie in (0, 1), got {delta}")
    denom = expected_t(t0, t1) * expected_one_minus_t_pow(k, t0, t1) ** 2
    with np.errstate(divide="ignore"):
        return 4.0 * np.log(4.0 * n / delta) / denom


# --- optimal rates and windows ---

def signal_optimal_t(k):
    """argmax_t t (1-t)^k = 1/(k+1) (Corollary 4.8)."""
    return 1.0 / (np.asarray(k, dtype=float) + 1.0)


def p_signal_at_signal_optimal_t(k):
    """P_S(1/(k+1)) = (k/(k+1))^k, which decreases to 1/e."""
    k = np.asarray(k, dtype=float)
    return (k / (k + 1.0)) ** k


def _scalar_over_k(fn):
    def wrapper(k):
        k_arr = np.asarray(k)
        if k_arr.ndim == 0:
            return fn(check_k(k_arr.item()))
        return np.array([fn(check_k(v)) for v in k_arr.ravel()]).reshape(k_arr.shape)
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@_scalar_over_k
def best_t1_given_t0_zero(k: int) -> float:
    """argmax over t1 of P_S(0, t1) (about 0.2459 for k = 6).

    At the optimum the window average equals the point value at the right end,
    P_S(t1) = P_S(0, t1); the root lies between the mode 1/(k+1) and 1."""
    def gap(t1):
        return float(p_signal_at(t1, k)) - float(p_signal(k, 0.0, t1))
    return optimize.brentq(gap, 1.0 / (k + 1), 1.0, xtol=1e-14, rtol=1e-14)


def sample_complexity_polynomial(t, k):
    """(2k+1)(1-t)^{k+1} - (2k+2)(1-t)^k + 1, whose root in (0,1) is t1* (Cor. 4.7)."""
    u = 1.0 - np.asarray(t, dtype=float)
    return (2 * k + 1) * u ** (k + 1) - (2 * k + 2) * u ** k + 1.0


@_scalar_over_k
def sample_complexity_optimal_t1(k: int) -> float:
    """Root in (0, 1) of (2k+1)(1-t)^{k+1} - (2k+2)(1-t)^k + 1 (about 0.1844 for k=6).

    t = 0 is always a root; the polynomial is negative at its minimum
    t = 1/(2k+1) and equals 1 at t = 1, which brackets the other root. For
    k = 1 it gives t1 = 2/3, one window with E[t] = 1/3."""
    return optimize.brentq(lambda t: float(sample_complexity_polynomial(t, k)),
                           1.0 / (2 * k + 1), 1.0, xtol=1e-14, rtol=1e-14)


def minimise_bound_over_windows(k: int, n: int = 20, delta: float = 0.05,
                                grid: int = 201) -> tuple[float, float, float]:
    """Direct numerical minimisation of the bound over all windows (t0, t1):
    a grid search, refined by L-BFGS-B in box coordinates t0 = s,
    t1 = s + (1 - s) r with s, r in [0, 1]. Returns (t0, t1, N). Used to
    cross-check Corollary 4.7 independently of its polynomial."""
    k = check_k(k)

    def objective(t0, t1):  # minus E[t] E[(1-t)^k]^2: minimising it minimises the bound
        return -float(expected_t(t0, t1) * expected_one_minus_t_pow(k, t0, t1) ** 2)

    ts = np.linspace(0.0, 1.0, grid)
    best = (np.inf, 0.0, 0.0)
    for i, a in enumerate(ts):
        for b in ts[i:]:
            val = objective(a, b)
            if val < best[0]:
                best = (val, a, b)

    def boxed(x):
        s, r = np.clip(x, 0.0, 1.0)
        return objective(s, s + (1.0 - s) * r)
    s0 = best[1]
    r0 = 0.0 if s0 == 1.0 else (best[2] - s0) / (1.0 - s0)
    res = optimize.minimize(boxed, x0=[s0, r0], method="L-BFGS-B", bounds=[(0, 1), (0, 1)],
                            options={"ftol": 1e-15, "gtol": 1e-12})
    t0 = float(res.x[0])
    t1 = t0 + (1.0 - t0) * float(res.x[1])
    if boxed(res.x) > best[0]:
        t0, t1 = best[1], best[2]
    return t0, t1, float(sample_complexity_bound(n, k, delta, t0, t1))


def best_window_of_width(k, width) -> tuple[float, float]:
    """The window [t0, t0+width] that maximises P_S.

    Width 0 gives the point 1/(k+1). Otherwise P_S(t0, t0+w) is stationary
    where the integrand has equal values at both ends, p(t0) = p(t0+w);
    because p is unimodal that root is unique."""
    k = check_k(k)
    width = float(width)
    if not 0.0 <= width <= 1.0:
        raise UserError(f"width must lie in [0, 1], got {width}")
    if width == 0.0:
        t = 1.0 / (k + 1)
        return t, t
    if width == 1.0:
        return 0.0, 1.0
    t0 = optimize.brentq(lambda a: float(p_signal_at(a + width, k) - p_signal_at(a, k)),
                         0.0, 1.0 - width, xtol=1e-14, rtol=1e-14)
    return t0, t0 + width


# --- Bayes risk of a masked bit (cross-entropy, nats) ---

def bayes_risk_bit(t, k, secret: bool):
    """Bayes risk of a masked bit at rate t: log 2 for a noise bit (not in S');
    (1 - (1-t)^k) log 2 for a bit of S', which is known once the other k are seen."""
    t = np.asarray(t, dtype=float)
    if not secret:
        return np.full_like(t, math.log(2.0))
    return (1.0 - (1.0 - t) ** k) * math.log(2.0)


def bayes_risk_window(k, t0, t1, secret: bool):
    """E_t of ``bayes_risk_bit`` for t ~ U[t0, t1] (unweighted average over t)."""
    if not secret:
        return np.full(np.broadcast(np.asarray(t0), np.asarray(t1)).shape, math.log(2.0))[()]
    return (1.0 - expected_one_minus_t_pow(k, t0, t1)) * math.log(2.0)


# --- language as a mixture of dependency orders ---

def _weights_dict(weights) -> dict[int, float]:
    """Accept {order: w} or a sequence of weights for orders 2, 3, ..."""
    if isinstance(weights, Mapping):
        items = {int(i): float(w) for i, w in weights.items()}
    elif isinstance(weights, Sequence) or isinstance(weights, np.ndarray):
        items = {i + 2: float(w) for i, w in enumerate(weights)}
    else:
        raise UserError("weights must be a dict {order: weight} or a sequence for orders 2, 3, ...")
    if not items:
        raise UserError("weights are empty")
    for i, w in items.items():
        if i < 2:
            raise UserError(f"dependency order must be >= 2, got {i}")
        if not math.isfinite(w) or w < 0:
            raise UserError(f"weights must be finite and non-negative, got {w} for order {i}")
    if sum(items.values()) <= 0:
        raise UserError("weights must have a positive sum")
    return items


def mixture_signal(t, weights, squared: bool = False):
    """Sum_i w_i t (1-t)^{i-1} (order i = an (i-1)-parity: i tokens jointly
    determined); with ``squared`` the per-order terms are squared."""
    t = np.asarray(t, dtype=float)
    total = np.zeros_like(t)
    for i, w in _weights_dict(weights).items():
        term = t * (1.0 - t) ** (i - 1)
        total = total + w * (term ** 2 if squared else term)
    return total


def mixture_argmax(weights, squared: bool = False) -> float:
    """argmax_t of ``mixture_signal`` on [0, 1] (0.463, or 0.481 squared, for
    the paper's WikiText weights). Grid search, then bounded refinement."""
    w = _weights_dict(weights)
    grid = np.linspace(0.0, 1.0, 2001)
    i = int(np.argmax(mixture_signal(grid, w, squared)))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = optimize.minimize_scalar(lambda x: -float(mixture_signal(x, w, squared)),
                                   bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-12})
    return float(res.x)
