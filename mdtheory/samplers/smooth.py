"""Smooth laws on (0, 1]: Beta and logit-normal, clamped below at ``eps``.

Draws below the floor are moved to ``eps`` (not redrawn), so the weight 1/t
stays bounded; ``expect`` puts that mass at eps as well.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import UserError
from .base import DEFAULT_EPS, MaskRateSampler, _check_rate, _check_weighting
from .registry import SamplerSpec, register_sampler


def _floor_and_weighting(law: str, eps, weighting: str) -> tuple[float, str]:
    """(eps, weighting) of a law whose support reaches t = 0: the floor must be
    above 0 when the weight is 1/t."""
    eps, weighting = _check_rate("eps", eps), _check_weighting(weighting)
    if weighting == "inverse_t" and eps == 0.0:
        raise UserError(f"{law} sampler reaches t=0 with a 1/t weight: set eps > 0")
    return eps, weighting


@register_sampler("beta")
class BetaSampler(MaskRateSampler):
    """t ~ Beta(a, b), clamped below at ``eps`` (weight 1/t)."""

    kind, fields = "beta", ("a", "b", "eps", "weighting")

    def __init__(self, a: float, b: float, eps: float = DEFAULT_EPS,
                 weighting: str = "inverse_t"):
        try:
            self.a, self.b = float(a), float(b)
        except (TypeError, ValueError):
            raise UserError(f"beta parameters must be numbers, got {a!r}, {b!r}") from None
        if not (self.a > 0 and self.b > 0 and math.isfinite(self.a) and math.isfinite(self.b)):
            raise UserError(f"beta parameters must be positive, got a={a}, b={b}")
        self.eps, self.weighting = _floor_and_weighting("Beta", eps, weighting)

    @classmethod
    def from_spec(cls, spec: SamplerSpec) -> BetaSampler:
        """``beta:A,B``"""
        return cls(*spec.numbers(2), eps=spec.eps, weighting=spec.weighting)

    def sample(self, n, generator=None, device=None):
        # torch's Beta has no generator argument: draw two Gammas via
        # inverse-free sampling with our own generator for reproducibility.
        ga = torch._standard_gamma(torch.full((n,), self.a, device=device), generator=generator)
        gb = torch._standard_gamma(torch.full((n,), self.b, device=device), generator=generator)
        return (ga / (ga + gb)).clamp(min=self.eps, max=1.0)

    def support(self):
        # draws are clamped at eps, so no t below the floor is ever trained on
        return self.eps, 1.0

    def density(self, t):
        from scipy.stats import beta
        return beta.pdf(np.asarray(t, dtype=float), self.a, self.b)

    def expect(self, fn, nodes: int = 400):
        from scipy import integrate
        from scipy.stats import beta
        # clamp at eps: mass below eps sits at eps
        below = beta.cdf(self.eps, self.a, self.b)
        val, _ = integrate.quad(lambda t: beta.pdf(t, self.a, self.b) * float(fn(np.asarray(t))),
                                self.eps, 1.0, limit=200)
        return float(val + below * float(fn(np.asarray(self.eps))))

    def spec(self):
        return f"beta:{self.a:g},{self.b:g}"


@register_sampler("logitnormal")
class LogitNormalSampler(MaskRateSampler):
    """t = sigmoid(mu + sigma Z), Z standard normal, clamped below at ``eps``."""

    kind, fields = "logitnormal", ("mu", "sigma", "eps", "weighting")

    def __init__(self, mu: float, sigma: float, eps: float = DEFAULT_EPS, weighting: str = "inverse_t"):
        self.mu, self.sigma = float(mu), float(sigma)
        if not (math.isfinite(self.mu) and math.isfinite(self.sigma) and self.sigma > 0):
            raise UserError(f"logit-normal needs a finite mu and sigma > 0, got {mu}, {sigma}")
        self.eps, self.weighting = _floor_and_weighting("logit-normal", eps, weighting)

    @classmethod
    def from_spec(cls, spec: SamplerSpec) -> LogitNormalSampler:
        """``logitnormal:MU,SIGMA``"""
        return cls(*spec.numbers(2), eps=spec.eps, weighting=spec.weighting)

    def sample(self, n, generator=None, device=None):
        z = torch.randn(n, generator=generator, device=device)
        return torch.sigmoid(self.mu + self.sigma * z).clamp(min=self.eps, max=1.0)

    def support(self):
        return self.eps, 1.0

    def density(self, t):
        t = np.clip(np.asarray(t, dtype=float), 1e-12, 1 - 1e-12)
        z = (np.log(t / (1 - t)) - self.mu) / self.sigma
        return np.exp(-0.5 * z ** 2) / (self.sigma * math.sqrt(2 * math.pi) * t * (1 - t))

    def expect(self, fn, nodes: int = 200):
        # Gauss-Hermite over Z, with the clamp at eps applied to each node
        x, w = np.polynomial.hermite_e.hermegauss(nodes)
        t = np.clip(1 / (1 + np.exp(-(self.mu + self.sigma * x))), self.eps, 1.0)
        return float(np.sum(w * np.asarray(fn(t), dtype=float)) / math.sqrt(2 * math.pi))

    def spec(self):
        return f"logitnormal:{self.mu:g},{self.sigma:g}"
