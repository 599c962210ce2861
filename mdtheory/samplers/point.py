"""A single mask rate: a point mass, and the rate that maximises P_S.

The point mass is the limit t0 = t1 of a window; ``signal_optimal`` puts the
law on (or a window around) t* = 1/(k+1), where the k-parity signal
probability P_S(t) = (k+1) t (1-t)^k peaks.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import UserError
from .base import DEFAULT_EPS, MaskRateSampler, _check_rate, _check_weighting
from .registry import SamplerSpec, register_sampler
from .window import WindowSampler


@register_sampler("point")
class PointSampler(MaskRateSampler):
    """A point mass at t (the degenerate window t0 = t1)."""

    kind, fields = "point", ("t", "weighting")

    def __init__(self, t: float, weighting: str = "inverse_t"):
        self.t = _check_rate("t", t)
        self.weighting = _check_weighting(weighting)
        if self.t == 0.0:
            raise UserError("a point mass at t=0 masks nothing")

    @classmethod
    def from_spec(cls, spec: SamplerSpec) -> PointSampler:
        """``point:T`` (no floor: the rate is exact)"""
        return cls(*spec.numbers(1), weighting=spec.weighting)

    def sample(self, n, generator=None, device=None):
        return torch.full((n,), self.t, device=device)

    def support(self):
        return self.t, self.t

    def atoms(self):
        return [(1.0, self.t)]

    def spec(self):
        return f"point:{self.t:g}"


def signal_optimal(k: int, width: float = 0.0, eps: float = DEFAULT_EPS,
                   weighting: str = "inverse_t") -> MaskRateSampler:
    """Window of the given width centred on t* = 1/(k+1), the rate that
    maximises P_S(t) = (k+1) t (1-t)^k (width 0 gives the point mass)."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise UserError(f"k must be an integer >= 1, got {k!r}")
    t_star = 1.0 / (k + 1)
    width = _check_rate("width", width)
    if width == 0.0:
        return PointSampler(t_star, weighting=weighting)
    t0 = min(max(t_star - width / 2, 0.0), 1.0 - width)
    return WindowSampler(t0, t0 + width, eps=eps, weighting=weighting)


@register_sampler("signal-optimal", aliases=("signal_optimal",))
def parse_signal_optimal(spec: SamplerSpec) -> MaskRateSampler:
    """``signal-optimal:K[,WIDTH]``: the law builds as a point or a window, so
    its ``spec()`` is that law's."""
    vals = spec.numbers(1, 2)
    if not math.isfinite(vals[0]) or vals[0] != int(vals[0]):
        raise UserError(f"signal-optimal needs an integer k, got {spec.args[0]!r}")
    return signal_optimal(int(vals[0]), vals[1] if len(vals) > 1 else 0.0,
                          eps=spec.eps, weighting=spec.weighting)
