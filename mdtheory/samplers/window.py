"""Windows: t ~ U[t0, t1], the paper's training law, and its variants.

The 1/t weight and t = 0: a window that reaches t = 0 makes E[1/t]
infinite. Following MDLM/SMDM/LLaDA we keep t away from 0 with a floor
``eps`` (default 1e-3): a window [t0, t1] is sampled as U[max(t0, eps), t1].
This changes the distribution only on [0, eps); set ``eps=0`` together with
``weighting="none"`` to sample the exact window. ``eps=0`` with the 1/t
weight on a window that contains 0 is refused.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from .base import DEFAULT_EPS, MaskRateSampler, _check_rate, _check_weighting
from .registry import SamplerSpec, register_sampler


@register_sampler("window")
class WindowSampler(MaskRateSampler):
    """t ~ U[t0, t1] (the paper's training distribution), floor ``eps``."""

    kind, fields = "window", ("t0", "t1", "eps", "weighting")

    def __init__(self, t0: float, t1: float, eps: float = DEFAULT_EPS,
                 weighting: str = "inverse_t"):
        self.t0, self.t1 = _check_rate("t0", t0), _check_rate("t1", t1)
        if self.t0 > self.t1:
            raise UserError(f"invalid window: t0={self.t0} > t1={self.t1}")
        self.eps = _check_rate("eps", eps)
        self.weighting = _check_weighting(weighting)
        if self.weighting == "inverse_t" and self.eps == 0.0 and self.t0 == 0.0:
            raise UserError("window reaches t=0 with a 1/t weight: set eps > 0 or weighting='none'")
        if self.t1 < self.eps:
            raise UserError(f"window [{self.t0}, {self.t1}] lies below the floor eps={self.eps}")
        self.lo = max(self.t0, self.eps)

    @classmethod
    def from_spec(cls, spec: SamplerSpec) -> WindowSampler:
        """``window:T0,T1``"""
        return cls(*spec.numbers(2), eps=spec.eps, weighting=spec.weighting)

    def sample(self, n, generator=None, device=None):
        u = torch.rand(n, generator=generator, device=device)
        return self.lo + (self.t1 - self.lo) * u

    def support(self):
        return self.lo, self.t1

    def density(self, t):
        t = np.asarray(t, dtype=float)
        inside = (t >= self.lo) & (t <= self.t1)
        return np.where(inside, 1.0 / max(self.t1 - self.lo, 1e-300), 0.0)

    def atoms(self):
        return [(1.0, self.lo)] if self.t1 == self.lo else None

    def spec(self):
        return f"{self.kind}:{self.t0:g},{self.t1:g}"


@register_sampler("uniform")
class UniformSampler(WindowSampler):
    """t ~ U[0, 1] with the eps floor: the standard MDLM training law."""

    kind = "uniform"

    def __init__(self, eps: float = DEFAULT_EPS, weighting: str = "inverse_t"):
        super().__init__(0.0, 1.0, eps=eps, weighting=weighting)

    @classmethod
    def from_spec(cls, spec: SamplerSpec) -> UniformSampler:
        """``uniform`` (no arguments)"""
        spec.numbers(0)
        return cls(eps=spec.eps, weighting=spec.weighting)

    def spec(self):
        return "uniform"


@register_sampler("stratified")
class StratifiedSampler(WindowSampler):
    """U[t0, t1] with one draw per stratum: sequence i of a batch of n gets
    t in the i-th of n equal slices (one shared offset, as in MDLM's
    low-discrepancy sampler). Same marginal law, lower-variance batch loss."""

    kind = "stratified"

    @classmethod
    def from_spec(cls, spec: SamplerSpec) -> StratifiedSampler:
        """``stratified[:T0,T1]`` (default U[0, 1])"""
        return cls(*(spec.numbers(2) if spec.args else (0.0, 1.0)), eps=spec.eps, weighting=spec.weighting)

    def sample(self, n, generator=None, device=None):
        offset = torch.rand(1, generator=generator, device=device)
        u = (torch.arange(n, device=device, dtype=offset.dtype) + offset) / n
        perm = torch.randperm(n, generator=generator, device=device)
        return self.lo + (self.t1 - self.lo) * u[perm]
