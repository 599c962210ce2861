"""Language as a mixture of dependency orders: weights w_i -> optimal mask rate.

Huang & Mirzasoleiman (arXiv:2601.22450, section 6) model text as a mixture
of order-i dependencies: i tokens that jointly determine each other, like an
(i-1)-parity (k = i-1, |S'| = i). A masked token of such a group is
recoverable when the other i-1 are visible, so the signal at rate t is

    Signal(t) = sum_i w_i t (1-t)^{i-1}        (each order peaks at t = 1/i).

How w_i is estimated from a corpus is up to ``mdtheory.derive.ngram``; this
module only turns weights into rates.
"""
from __future__ import annotations

import numpy as np
from scipy import optimize

from .numeric import (PAPER_WIKITEXT_WEIGHTS, _weights_dict, mixture_argmax,
                      mixture_signal)


def normalise_weights(weights) -> dict[int, float]:
    """{order: w} summing to one (accepts a dict or a sequence for orders 2, 3, ...)."""
    w = _weights_dict(weights)
    total = sum(w.values())
    return {i: v / total for i, v in sorted(w.items())}


def order_to_k(order: int) -> int:
    """An order-i dependency behaves like a (i-1)-parity."""
    return int(order) - 1


def optimal_rates(weights) -> dict:
    """The rates a mixture implies, for reports and tables.

    ``argmax``: of sum_i w_i t(1-t)^{i-1}; ``argmax_squared_terms``: of
    sum_i w_i (t(1-t)^{i-1})^2 (the paper's "quadratic" reading, 0.481 for
    WikiText); ``argmax_squared_sum``: of the squared sum, which is the same
    point as ``argmax`` (squaring a positive function keeps its argmax;
    computed separately here as a check);
    ``per_order``: 1/i, the optimum of each order alone."""
    w = normalise_weights(weights)
    grid_best = mixture_argmax({i: v for i, v in w.items()})
    return {
        "weights": w,
        "argmax": grid_best,
        "argmax_squared_terms": mixture_argmax(w, squared=True),
        "argmax_squared_sum": _argmax_of_squared_sum(w),
        "signal_at_argmax": float(mixture_signal(grid_best, w)),
        "per_order": {i: 1.0 / i for i in w},
    }


def _argmax_of_squared_sum(w: dict[int, float]) -> float:
    grid = np.linspace(0.0, 1.0, 2001)
    i = int(np.argmax(mixture_signal(grid, w) ** 2))
    res = optimize.minimize_scalar(lambda x: -float(mixture_signal(x, w)) ** 2,
                                   bounds=(grid[max(i - 1, 0)], grid[min(i + 1, 2000)]),
                                   method="bounded", options={"xatol": 1e-12})
    return float(res.x)


__all__ = ["PAPER_WIKITEXT_WEIGHTS", "normalise_weights", "order_to_k", "optimal_rates",
           "mixture_signal", "mixture_argmax"]
