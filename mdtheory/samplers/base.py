"""The sampler interface and the checks every law shares.

A mask-rate sampler draws one rate t per sequence and knows the loss weight
that goes with it; the analytics (``support``, ``density`` or ``atoms``,
``expect``) let the theory compute a law's P_S without drawing from it.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..errors import UserError

WEIGHTINGS = ("inverse_t", "none")
DEFAULT_EPS = 1e-3


def _check_rate(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise UserError(f"{name} must lie in [0, 1], got {value}")
    return value


def _check_weighting(weighting: str) -> str:
    if weighting not in WEIGHTINGS:
        raise UserError(f"unknown loss weighting {weighting!r}; choose from {', '.join(WEIGHTINGS)}")
    return weighting


class MaskRateSampler:
    """Base class: draws t per sequence, gives its loss weight and density.

    Subclasses implement ``sample``, ``support`` and either ``density`` (a
    continuous law) or ``atoms`` (a discrete one). ``expect(fn)`` integrates a
    function of t against the law, which is how the theory's P_S of a sampler
    is computed (``p_signal``). A law that ``parse_sampler`` builds from a
    spec also has a ``from_spec`` classmethod and a ``register_sampler`` line.
    """

    weighting: str = "inverse_t"

    # -- drawing -------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        raise NotImplementedError

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """Loss weight of a sequence masked at rate t."""
        if self.weighting == "inverse_t":
            return 1.0 / t
        return torch.ones_like(t)

    # -- analytics -----------------------------------------------------------
    def support(self) -> tuple[float, float]:
        raise NotImplementedError

    def density(self, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def atoms(self) -> list[tuple[float, float]] | None:
        """(probability, location) pairs for a discrete law, else None."""
        return None

    def expect(self, fn: Callable[[np.ndarray], np.ndarray], nodes: int = 200) -> float:
        """E[fn(t)] under the sampler's law (Gauss-Legendre on the support)."""
        atoms = self.atoms()
        if atoms is not None:
            return float(sum(p * float(fn(np.asarray(loc))) for p, loc in atoms))
        lo, hi = self.support()
        x, w = np.polynomial.legendre.leggauss(nodes)
        t = 0.5 * (hi - lo) * x + 0.5 * (hi + lo)
        return float(0.5 * (hi - lo) * np.sum(w * self.density(t) * fn(t)))

    def mean(self) -> float:
        return self.expect(lambda t: t)

    def p_signal(self, k: int) -> float:
        """Probability of the signal regime for k-parity: E[(k+1) t (1-t)^k]."""
        return self.expect(lambda t: (k + 1) * t * (1.0 - t) ** k)

    kind = ""                  # the name in ``describe()`` and in specs
    fields: tuple[str, ...] = ()  # the settings ``describe()`` lists

    def describe(self) -> dict:
        """JSON-ready description, stored in run configs."""
        return {"kind": self.kind, **{name: getattr(self, name) for name in self.fields}}

    def spec(self) -> str:
        """The string that ``parse_sampler`` turns back into this sampler."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec()})"
