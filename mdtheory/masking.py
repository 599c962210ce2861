"""Mask-rate samplers, the one corruption step (``corrupt``) and the MD loss.

A *mask-rate sampler* draws one rate t per sequence and knows the loss weight
that goes with it. Every position of a sequence is then masked independently
with probability t. The paper (Huang & Mirzasoleiman, arXiv:2601.22450) trains
with t ~ U[t0, t1] and weights the masked cross-entropy by 1/t, the weight of
the standard MDLM ELBO; its point is that the choice of [t0, t1] tunes an
implicit regulariser.

Samplers are small classes with analytic formulas (after md4's schedules):

    WindowSampler(t0, t1)         U[t0, t1]
    UniformSampler()              U[0, 1], the usual MDLM choice
    StratifiedSampler(t0, t1)     U[t0, t1], one draw per stratum of the batch
    BetaSampler(a, b)             Beta(a, b)
    PointSampler(t)               a point mass (the limit t0 = t1)
    MixtureSampler([(w, s), ...]) pick a component per sequence
    signal_optimal(k, width)      a window centred on argmax_t (k+1) t (1-t)^k

The 1/t weight and t = 0.
    A window that reaches t = 0 makes E[1/t] infinite. Following MDLM/SMDM/
    LLaDA we keep t away from 0 with a floor ``eps`` (default 1e-3): a window
    [t0, t1] is sampled as U[max(t0, eps), t1]. This changes the distribution
    only on [0, eps); set ``eps=0`` together with ``weighting="none"`` to
    sample the exact window. ``eps=0`` with the 1/t weight on a window that
    contains 0 is refused.

Use in your own training loop (LLaDA/SMDM style)::

    from mdtheory.masking import parse_sampler, forward_process
    sampler = parse_sampler("window:0.45,0.55")
    noisy, mask, p_mask = forward_process(input_ids, mask_id=MASK, sampler=sampler)
    logits = model(noisy)
    ce = F.cross_entropy(logits[mask], input_ids[mask], reduction="none")
    loss = (ce / p_mask[mask]).sum() / input_ids.numel()
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError

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
    is computed (``p_signal``).
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

    def describe(self) -> dict:
        """JSON-ready description, stored in run configs."""
        raise NotImplementedError

    def spec(self) -> str:
        """The string that ``parse_sampler`` turns back into this sampler."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec()})"


class WindowSampler(MaskRateSampler):
    """t ~ U[t0, t1] (the paper's training distribution), floor ``eps``."""

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
        if self.t1 == self.lo:
            return [(1.0, self.lo)]
        return None

    def describe(self):
        return {"kind": "window", "t0": self.t0, "t1": self.t1, "eps": self.eps,
                "weighting": self.weighting}

    def spec(self):
        return f"window:{self.t0:g},{self.t1:g}"


class UniformSampler(WindowSampler):
    """t ~ U[0, 1] with the eps floor: the standard MDLM training law."""

    def __init__(self, eps: float = DEFAULT_EPS, weighting: str = "inverse_t"):
        super().__init__(0.0, 1.0, eps=eps, weighting=weighting)

    def describe(self):
        return {**super().describe(), "kind": "uniform"}

    def spec(self):
        return "uniform"


class StratifiedSampler(WindowSampler):
    """U[t0, t1] with one draw per stratum: sequence i of a batch of n gets
    t in the i-th of n equal slices (one shared offset, as in MDLM's
    low-discrepancy sampler). Same marginal law, lower-variance batch loss."""

    def sample(self, n, generator=None, device=None):
        offset = torch.rand(1, generator=generator, device=device)
        u = (torch.arange(n, device=device, dtype=offset.dtype) + offset) / n
        perm = torch.randperm(n, generator=generator, device=device)
        return self.lo + (self.t1 - self.lo) * u[perm]

    def describe(self):
        return {**super().describe(), "kind": "stratified"}

    def spec(self):
        return f"stratified:{self.t0:g},{self.t1:g}"


class BetaSampler(MaskRateSampler):
    """t ~ Beta(a, b), clamped below at ``eps`` (weight 1/t)."""

    def __init__(self, a: float, b: float, eps: float = DEFAULT_EPS,
                 weighting: str = "inverse_t"):
        try:
            self.a, self.b = float(a), float(b)
        except (TypeError, ValueError):
            raise UserError(f"beta parameters must be numbers, got {a!r}, {b!r}") from None
        if not (self.a > 0 and self.b > 0 and math.isfinite(self.a) and math.isfinite(self.b)):
            raise UserError(f"beta parameters must be positive, got a={a}, b={b}")
        self.eps = _check_rate("eps", eps)
        self.weighting = _check_weighting(weighting)
        if self.weighting == "inverse_t" and self.eps == 0.0:
            raise UserError("Beta sampler reaches t=0 with a 1/t weight: set eps > 0")

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

    def describe(self):
        return {"kind": "beta", "a": self.a, "b": self.b, "eps": self.eps,
                "weighting": self.weighting}

    def spec(self):
        return f"beta:{self.a:g},{self.b:g}"


class PointSampler(MaskRateSampler):
    """A point mass at t (the degenerate window t0 = t1)."""

    def __init__(self, t: float, weighting: str = "inverse_t"):
        self.t = _check_rate("t", t)
        self.weighting = _check_weighting(weighting)
        if self.t == 0.0:
            raise UserError("a point mass at t=0 masks nothing")

    def sample(self, n, generator=None, device=None):
        return torch.full((n,), self.t, device=device)

    def support(self):
        return self.t, self.t

    def atoms(self):
        return [(1.0, self.t)]

    def describe(self):
        return {"kind": "point", "t": self.t, "weighting": self.weighting}

    def spec(self):
        return f"point:{self.t:g}"


@dataclass(repr=False)
class MixtureSampler(MaskRateSampler):
    """Each sequence picks component j with probability w_j."""

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


# MixtureSampler.spec() prints weights with 6 significant digits
MIXTURE_WEIGHT_TOL = 1e-5
SAMPLER_KINDS = ("window", "uniform", "stratified", "beta", "point", "signal-optimal", "mixture")


def parse_sampler(spec: str, eps: float = DEFAULT_EPS, weighting: str = "inverse_t") -> MaskRateSampler:
    """Build a sampler from a short string (used by the CLIs and configs).

    ``window:T0,T1``  ``uniform``  ``stratified:T0,T1``  ``beta:A,B``
    ``point:T``  ``signal-optimal:K[,WIDTH]``  ``mixture:W*SPEC+W*SPEC``
    (mixture weights must sum to 1)
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"empty sampler spec {spec!r}")
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "mixture":
        parts = []
        for term in rest.split("+"):
            w, star, sub = term.partition("*")
            if not star:
                raise UserError(f"mixture term {term!r} must look like WEIGHT*SPEC")
            try:
                parts.append((float(w), parse_sampler(sub, eps=eps, weighting=weighting)))
            except ValueError as exc:
                raise UserError(f"bad mixture term {term!r}: {exc}") from None
        total = sum(w for w, _ in parts)
        # a spec is read literally: weights that do not sum to 1 are a typo,
        # not something to renormalise silently (MixtureSampler still does)
        if not math.isclose(total, 1.0, abs_tol=MIXTURE_WEIGHT_TOL):
            raise UserError(f"mixture weights must sum to 1, got {total:g} in {spec!r}")
        return MixtureSampler(parts)
    args = [a for a in rest.split(",") if a.strip()] if rest else []

    def nums(count: int | tuple[int, ...]) -> list[float]:
        counts = (count,) if isinstance(count, int) else count
        if len(args) not in counts:
            raise UserError(f"sampler {kind!r} takes {' or '.join(map(str, counts))} numbers, got {spec!r}")
        try:
            return [float(a) for a in args]
        except ValueError:
            raise UserError(f"non-numeric argument in sampler spec {spec!r}") from None

    if kind == "window":
        t0, t1 = nums(2)
        return WindowSampler(t0, t1, eps=eps, weighting=weighting)
    if kind == "uniform":
        nums(0)
        return UniformSampler(eps=eps, weighting=weighting)
    if kind == "stratified":
        t0, t1 = nums(2) if args else (0.0, 1.0)
        return StratifiedSampler(t0, t1, eps=eps, weighting=weighting)
    if kind == "beta":
        a, b = nums(2)
        return BetaSampler(a, b, eps=eps, weighting=weighting)
    if kind == "point":
        (t,) = nums(1)
        return PointSampler(t, weighting=weighting)
    if kind in ("signal-optimal", "signal_optimal"):
        vals = nums((1, 2))
        if vals[0] != int(vals[0]):
            raise UserError(f"signal-optimal needs an integer k, got {args[0]!r}")
        return signal_optimal(int(vals[0]), vals[1] if len(vals) > 1 else 0.0,
                              eps=eps, weighting=weighting)
    raise UserError(f"unknown sampler {kind!r}; choose from {', '.join(SAMPLER_KINDS)}")


# ---------------------------------------------------------------------------
# masking and the loss
# ---------------------------------------------------------------------------

def corrupt(x: torch.Tensor, t: torch.Tensor | float, mask_id: int,
            generator: torch.Generator | None = None,
            maskable: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask each position of x (B, L) independently with probability t.

    ``t`` holds one rate per sequence (B,) or one rate for all. The uniforms
    are drawn on t's device (the CPU for a float), one per position in
    row-major order, so a generator gives the same masks whatever consumes
    them. ``maskable`` (bool, like x) keeps e.g. padding or prompts visible.
    Returns (noisy, mask): x with MASK where mask is True, and the mask.
    """
    t = t if torch.is_tensor(t) else torch.tensor(float(t))
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    mask = torch.rand(tuple(x.shape), generator=generator, device=t.device) < t[:, None]
    mask = mask.to(x.device)
    if maskable is not None:
        mask &= maskable
    return torch.where(mask, torch.full_like(x, mask_id), x), mask


def forward_process(input_ids: torch.Tensor, mask_id: int, eps: float = DEFAULT_EPS,
                    sampler: MaskRateSampler | str | None = None,
                    generator: torch.Generator | None = None):
    """Drop-in for LLaDA/SMDM's ``forward_process(input_ids, eps)``.

    Returns ``(noisy_ids, mask, p_mask)`` where ``p_mask`` (B, L) holds the
    per-position masking probability t of each sequence. With
    ``sampler=None`` t follows LLaDA's law, (1 - eps) U + eps; pass any
    sampler (or spec string) to train on a different mask-rate law.
    Note: p_mask is the rate t itself, so ``ce / p_mask`` gives the 1/t
    weight; a sampler with ``weighting='none'`` should be paired with an
    unweighted loss by the caller.
    """
    b, l = input_ids.shape
    if sampler is None:
        u = torch.rand(b, generator=generator, device=input_ids.device)
        t = (1 - eps) * u + eps
    else:
        if isinstance(sampler, str):
            sampler = parse_sampler(sampler, eps=eps)
        t = sampler.sample(b, generator=generator, device=input_ids.device)
    noisy, mask = corrupt(input_ids, t, mask_id, generator)
    return noisy, mask, t[:, None].expand(b, l)


NORMALIZATIONS = ("tokens", "masked")


def md_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
            seq_weight: torch.Tensor, normalization: str = "tokens",
            reduction: str = "mean") -> torch.Tensor:
    """Weighted masked cross-entropy.

    ``normalization='tokens'`` (LLaDA/SMDM): sum over masked positions of
    w(t) * CE, divided by the number of positions B*L. With w = 1/t this is
    an unbiased Monte Carlo estimate of the per-token MDLM ELBO term.
    ``normalization='masked'``: divide by the number of masked positions
    instead (a per-masked-token mean; biased, lower variance).
    ``reduction='none'`` returns the (B, L) weighted CE (zeros where visible).
    """
    if normalization not in NORMALIZATIONS:
        raise UserError(f"unknown normalization {normalization!r}; choose from {NORMALIZATIONS}")
    ce = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                         reduction="none").view_as(targets)
    per_pos = ce * mask * seq_weight[:, None]
    if reduction == "none":
        return per_pos
    denom = targets.numel() if normalization == "tokens" else mask.sum().clamp(min=1)
    return per_pos.sum() / denom
