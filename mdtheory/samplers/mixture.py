"""Mixtures: each sequence draws its rate from one of several laws."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..errors import UserError
from .base import MaskRateSampler
from .registry import SamplerSpec, parse_sampler, register_sampler

# MixtureSampler.spec() prints weights with 6 significant digits
MIXTURE_WEIGHT_TOL = 1e-5


@register_sampler("mixture")
@dataclass(repr=False)
class MixtureSampler(MaskRateSampler):
    """Each sequence picks component j with probability w_j (weights are
    normalised here; a spec's weights must already sum to 1)."""

    components: Sequence[tuple[float, MaskRateSampler]] = field(default_factory=list)

    def __post_init__(self):
        if not self.components:
            raise UserError("a mixture needs at least one component")
        weights = np.array([float(w) for w, _ in self.components])
        if np.any(weights < 0) or weights.sum() <= 0:
            raise UserError("mixture weights must be non-negative with a positive sum")
        self.probs = weights / weights.sum()
        kinds = {s.weighting for _, s in self.components}
        if len(kinds) != 1:
            raise UserError("mixture components must share one loss weighting")
        self.weighting = kinds.pop()

    @classmethod
    def from_spec(cls, spec: SamplerSpec) -> MixtureSampler:
        """``mixture:W*SPEC+W*SPEC``; each SPEC gets the caller's eps and weighting."""
        parts = []
        for term in spec.rest.split("+"):
            w, star, sub = term.partition("*")
            if not star:
                raise UserError(f"mixture term {term!r} must look like WEIGHT*SPEC")
            try:
                parts.append((float(w), parse_sampler(sub, eps=spec.eps, weighting=spec.weighting)))
            except ValueError as exc:
                raise UserError(f"bad mixture term {term!r}: {exc}") from None
        total = sum(w for w, _ in parts)
        # a spec is read literally: weights that do not sum to 1 are a typo,
        # not something to renormalise silently (MixtureSampler still does)
        if not math.isclose(total, 1.0, abs_tol=MIXTURE_WEIGHT_TOL):
            raise UserError(f"mixture weights must sum to 1, got {total:g} in {spec.text!r}")
        return cls(parts)

    def sample(self, n, generator=None, device=None):
        probs = torch.tensor(self.probs, dtype=torch.float, device=device)
        choice = torch.multinomial(probs, n, replacement=True, generator=generator)
        t = torch.empty(n, device=device)
        for j, (_, comp) in enumerate(self.components):
            t_j = comp.sample(n, generator=generator, device=device)
            t = torch.where(choice == j, t_j, t)
        return t

    def support(self):
        lows, highs = zip(*(s.support() for _, s in self.components))
        return min(lows), max(highs)

    def expect(self, fn, nodes: int = 200):
        return float(sum(p * s.expect(fn) for p, (_, s) in zip(self.probs, self.components)))

    def describe(self):
        return {"kind": "mixture",
                "components": [{"weight": float(p), **s.describe()}
                               for p, (_, s) in zip(self.probs, self.components)]}

    def spec(self):
        return "mixture:" + "+".join(f"{p:g}*{s.spec()}" for p, (_, s) in
                                     zip(self.probs, self.components))
