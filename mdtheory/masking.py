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
    AdaptiveSampler(rule=...)     a law over t-bins that learns from the
                                  training losses (``observe``), see below

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
from typing import Callable, NamedTuple, Sequence

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


class UniformSampler(WindowSampler):
    """t ~ U[0, 1] with the eps floor: the standard MDLM training law."""

    kind = "uniform"

    def __init__(self, eps: float = DEFAULT_EPS, weighting: str = "inverse_t"):
        super().__init__(0.0, 1.0, eps=eps, weighting=weighting)

    def spec(self):
        return "uniform"


class StratifiedSampler(WindowSampler):
    """U[t0, t1] with one draw per stratum: sequence i of a batch of n gets
    t in the i-th of n equal slices (one shared offset, as in MDLM's
    low-discrepancy sampler). Same marginal law, lower-variance batch loss."""

    kind = "stratified"

    def sample(self, n, generator=None, device=None):
        offset = torch.rand(1, generator=generator, device=device)
        u = (torch.arange(n, device=device, dtype=offset.dtype) + offset) / n
        perm = torch.randperm(n, generator=generator, device=device)
        return self.lo + (self.t1 - self.lo) * u[perm]


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

    def spec(self):
        return f"beta:{self.a:g},{self.b:g}"


class PointSampler(MaskRateSampler):
    """A point mass at t (the degenerate window t0 = t1)."""

    kind, fields = "point", ("t", "weighting")

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

    def spec(self):
        return f"point:{self.t:g}"


@dataclass(repr=False)
class MixtureSampler(MaskRateSampler):
    """Each sequence picks component j with probability w_j.

    Components are fixed laws: a law that learns from the training losses
    (``observe``, i.e. ``adaptive``) is refused, since the mixture does not
    record which component drew each t, so it could neither hand each
    component the losses of its own draws nor give ``loss_importance`` its
    unbiased weight. ``adaptive:floor=F`` is the adaptive law with a share F
    of uniform mass on [eps, 1]."""

    components: Sequence[tuple[float, MaskRateSampler]] = field(default_factory=list)

    def __post_init__(self):
        if not self.components:
            raise UserError("a mixture needs at least one component")
        for _, comp in self.components:
            if hasattr(comp, "observe"):
                raise UserError(f"a mixture cannot hold the adaptive law {comp.spec()!r}: it learns from "
                                f"the losses of its own draws, which a mixture does not track; for a "
                                f"uniform share F use adaptive:floor=F instead")
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


ADAPTIVE_RULES = ("signal", "loss_importance")
# past losses an adaptive law keeps (bins x history float64: 8 MB at most)
MAX_ADAPTIVE_HISTORY = 1_000_000


class AdaptiveSampler(MaskRateSampler):
    """A mask-rate law that learns from the losses of the training steps.

    [eps, 1] is cut into ``bins`` equal bins; t is drawn by picking bin b with
    probability p_b and then t ~ U(bin b). After each training batch the
    caller hands back every sequence's rate t_i and its ELBO integrand
    l_i = sum_j mask_ij CE_ij / (L t_i) (``observe``); the law then changes.
    Time is counted in ``observe`` calls (one per batch). Two rules:

    ``signal`` (ours): p_b follows the rate at which the full-range loss is
        currently falling at rates in bin b, the part of the loss that the
        model is learning right now. Per bin it keeps two exponential
        averages, over that bin's observations, of the pair (time, mean l of
        the bin's sequences in the batch): a fast one (rate ``fast``) and a
        slow one (rate ``slow``). Their difference quotient
            d_b = (slow_loss_b - fast_loss_b) / (fast_time_b - slow_time_b)
        estimates the loss decrease per batch at those rates (a two-point
        regression slope, correct whatever the bin's sampling frequency),
        and p_b = floor / bins + (1 - floor) max(d_b, 0) / sum_c max(d_c, 0).
        Until every bin has ``ceil(1/slow)`` observations (and whenever no
        bin is falling) p is uniform. The loss weight stays 1/t, the weight
        of the window objective: the model trains on the mixture of windows
        that p describes, as a fixed window would.
    ``loss_importance`` (Nichol & Dhariwal 2021, improved DDPM): keep the last
        ``history`` values of l per bin; once every bin has them,
        p_b = floor / bins + (1 - floor) sqrt(mean l_b^2) / sum_c sqrt(mean l_c^2),
        uniform before. The weight is (1/t) / (bins p_b), so the loss stays
        an unbiased estimate of the U[eps, 1] ELBO (their ``floor`` is 0.001).

    State (``state_dict``, float64/int64 tensors, saved in checkpoints so a
    resumed run continues exactly): ``calls``, per-bin ``observations``,
    ``fast_loss``, ``fast_time``, ``slow_loss``, ``slow_time``, and the
    ``history`` ring (bins x history) with its next slot ``history_next``
    and its fill ``history_count``.
    Under DDP every rank learns from its own batches.
    """

    kind, fields = "adaptive", ("rule", "bins", "floor", "fast", "slow", "history", "eps", "weighting")

    def __init__(self, rule: str = "signal", bins: int = 20, floor: float | None = None,
                 fast: float = 0.1, slow: float = 0.02, history: int = 10,
                 eps: float = DEFAULT_EPS, weighting: str = "inverse_t"):
        if rule not in ADAPTIVE_RULES:
            raise UserError(f"unknown adaptive rule {rule!r}; choose from {', '.join(ADAPTIVE_RULES)}")
        if int(bins) != bins or not 2 <= bins <= 1000 or int(history) != history or history < 1:
            raise UserError(f"adaptive sampler needs 2 <= bins <= 1000 and history >= 1, got {bins}, {history}")
        if bins * history > MAX_ADAPTIVE_HISTORY:
            raise UserError(f"adaptive sampler keeps bins x history past losses (float64, in every "
                            f"checkpoint): bins * history must be <= {MAX_ADAPTIVE_HISTORY:,}, got "
                            f"{int(bins)} x {int(history)}")
        self.rule, self.bins, self.history = rule, int(bins), int(history)
        self.floor = _check_rate("floor", floor if floor is not None else
                                 (0.2 if rule == "signal" else 0.001))
        self.fast, self.slow = _check_rate("fast", fast), _check_rate("slow", slow)
        if not 0 < self.slow < self.fast:
            raise UserError(f"adaptive sampler needs 0 < slow < fast, got slow={slow}, fast={fast}")
        self.eps = _check_rate("eps", eps)
        if self.eps == 0.0 or self.eps >= 1.0:
            raise UserError("the adaptive sampler needs a floor 0 < eps < 1 on t")
        self.weighting = _check_weighting(weighting)
        self.edges = torch.linspace(self.eps, 1.0, self.bins + 1, dtype=torch.float64)
        self.warmup = math.ceil(1.0 / self.slow)
        self.load_state_dict({})

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> dict:
        return {k: v.clone() for k, v in self.state.items()}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``; {} resets to the untrained law."""
        n, f64 = self.bins, torch.float64
        fresh = {"calls": torch.zeros((), dtype=torch.int64),
                 "observations": torch.zeros(n, dtype=torch.int64),
                 **{k: torch.zeros(n, dtype=f64) for k in
                    ("fast_loss", "fast_time", "slow_loss", "slow_time")},
                 "history": torch.zeros(n, self.history, dtype=f64),
                 "history_next": torch.zeros(n, dtype=torch.int64),
                 "history_count": torch.zeros(n, dtype=torch.int64)}
        if state:
            if set(state) != set(fresh) or any(state[k].shape != v.shape for k, v in fresh.items()):
                raise UserError("saved adaptive-sampler state does not match this sampler's settings")
            fresh = {k: state[k].to(v.dtype).clone() for k, v in fresh.items()}
        self.state = fresh
        self.probs = self._masses()

    def observe(self, t: torch.Tensor, loss: torch.Tensor) -> None:
        """Learn from one batch: rates t (B,) and ELBO integrands l (B,)."""
        s, n = self.state, self.bins
        t, loss = t.detach().double().cpu(), loss.detach().double().cpu()
        b = self.bin_of(t)
        s["calls"] += 1
        counts = torch.bincount(b, minlength=n)
        seen = counts > 0
        x = torch.bincount(b, weights=loss, minlength=n) / counts.clamp(min=1)  # the bin's batch mean
        now = s["calls"].double()
        first = s["observations"] == 0
        for name, rate in (("fast", self.fast), ("slow", self.slow)):
            r = torch.where(first, 1.0, rate) * seen  # the first observation sets the average
            s[f"{name}_loss"] += r * (x - s[f"{name}_loss"])
            s[f"{name}_time"] += r * (now - s[f"{name}_time"])
        s["observations"] += seen.long()
        # ring buffer of each bin's last values, per sequence as in improved DDPM
        rank = (torch.nn.functional.one_hot(b, n).cumsum(0) - 1).gather(1, b[:, None]).squeeze(1)
        keep = rank >= counts[b] - self.history  # a bin's last `history` sequences of this batch
        slot = (s["history_next"][b] + rank) % self.history
        s["history"][b[keep], slot[keep]] = loss[keep]
        s["history_next"] = (s["history_next"] + counts) % self.history
        s["history_count"] = (s["history_count"] + counts).clamp(max=self.history)
        self.probs = self._masses()

    def signal(self) -> torch.Tensor:
        """d_b: the estimated loss decrease per batch at rates in bin b (0 until warm)."""
        s = self.state
        lag = s["fast_time"] - s["slow_time"]
        d = (s["slow_loss"] - s["fast_loss"]) / lag.clamp(min=1e-12)
        return torch.where((lag > 0) & (s["observations"] >= self.warmup), d, torch.zeros_like(d))

    def _masses(self) -> torch.Tensor:
        s, uniform = self.state, torch.full((self.bins,), 1.0 / self.bins, dtype=torch.float64)
        if self.rule == "signal":
            if bool((s["observations"] < self.warmup).any()):
                return uniform
            score = self.signal().clamp(min=0)
        else:
            if bool((s["history_count"] < self.history).any()):
                return uniform
            score = s["history"].pow(2).mean(1).sqrt()
        if not bool(score.sum() > 0) or not bool(torch.isfinite(score).all()):
            return uniform
        return self.floor * uniform + (1 - self.floor) * score / score.sum()

    # -- the sampler API -------------------------------------------------------
    def bin_of(self, t: torch.Tensor) -> torch.Tensor:
        inner = self.edges[1:-1].to(device=t.device, dtype=t.dtype)
        return torch.bucketize(t, inner, right=True).cpu()

    def sample(self, n, generator=None, device=None):
        b = torch.multinomial(self.probs, n, replacement=True, generator=generator)
        u = torch.rand(n, generator=generator, device=device)
        lo = self.edges[b].to(device=u.device, dtype=u.dtype)
        hi = self.edges[b + 1].to(device=u.device, dtype=u.dtype)
        return lo + (hi - lo) * u

    def weight(self, t):
        w = super().weight(t)
        if self.rule == "loss_importance":  # 1/p keeps the U[eps, 1] objective unbiased
            p = self.probs.to(device=t.device, dtype=t.dtype)
            w = w / (self.bins * p[self.bin_of(t).to(t.device)])
        return w

    def support(self):
        return self.eps, 1.0

    def density(self, t):
        t = np.asarray(t, dtype=float)
        edges, probs = self.edges.numpy(), self.probs.numpy()
        b = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, self.bins - 1)
        inside = (t >= edges[0]) & (t <= edges[-1])
        return np.where(inside, probs[b] / np.diff(edges)[b], 0.0)

    def expect(self, fn, nodes: int = 20):
        """Exact per bin (the density is piecewise constant)."""
        x, w = np.polynomial.legendre.leggauss(nodes)
        total = 0.0
        for p, lo, hi in zip(self.probs.tolist(), self.edges[:-1].tolist(), self.edges[1:].tolist()):
            t = 0.5 * (hi - lo) * x + 0.5 * (hi + lo)
            total += p * 0.5 * float(np.sum(w * fn(t)))
        return total

    def spec(self):
        return (f"adaptive:rule={self.rule},bins={self.bins},floor={self.floor:g},fast={self.fast:g},"
                f"slow={self.slow:g},history={self.history}")


def _parse_adaptive(spec: str, rest: str, eps: float, weighting: str) -> AdaptiveSampler:
    """``adaptive[:rule=signal|loss_importance,bins=N,floor=F,fast=A,slow=B,history=H]``"""
    options: dict = {}
    kinds = {"rule": str, "bins": int, "floor": float, "fast": float, "slow": float, "history": int}
    for item in filter(str.strip, rest.split(",")):
        key, eq, value = (x.strip() for x in item.partition("="))
        if not eq or key not in kinds:
            raise UserError(f"bad adaptive option {item!r} in {spec!r}; use KEY=VALUE with KEY in "
                            f"{', '.join(kinds)}")
        try:
            options[key] = kinds[key](value)
        except ValueError:
            raise UserError(f"adaptive option {key} needs a {kinds[key].__name__}, got {value!r}") from None
    return AdaptiveSampler(**options, eps=eps, weighting=weighting)


# MixtureSampler.spec() prints weights with 6 significant digits
MIXTURE_WEIGHT_TOL = 1e-5
SAMPLER_KINDS = ("window", "uniform", "stratified", "beta", "logitnormal", "point", "signal-optimal", "mixture",
                 "adaptive", "predicted")


def parse_sampler(spec: str, eps: float = DEFAULT_EPS, weighting: str = "inverse_t",
                  t_star: float | None = None) -> MaskRateSampler:
    """Build a sampler from a short string (used by the CLIs and configs).

    ``window:T0,T1``  ``uniform``  ``stratified:T0,T1``  ``beta:A,B``
    ``point:T``  ``signal-optimal:K[,WIDTH]``  ``mixture:W*SPEC+W*SPEC``
    (mixture weights must sum to 1)  ``adaptive[:rule=R,bins=N,floor=F,...]``
    (a law that learns from training losses, see ``AdaptiveSampler``)
    ``logitnormal:MU,SIGMA``  ``predicted[:width=W,law=window|beta|logitnormal]``
    (centred on the corpus-predicted ``t_star``, see ``mdtheory.predicted``;
    the LM task computes t* from its training split)
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
    if kind == "adaptive":
        return _parse_adaptive(spec, rest, eps, weighting)
    if kind == "predicted":
        from .predicted import centred_law, parse_options
        width, law = parse_options(spec)
        if t_star is None:
            raise UserError("--sampler predicted centres its law on a corpus's t*: use it with the lm task "
                            "(it estimates t* from the training split), or mdtheory.predicted.law_for_text")
        return centred_law(t_star, width, law, eps=eps, weighting=weighting)
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
        return WindowSampler(*nums(2), eps=eps, weighting=weighting)
    if kind == "uniform":
        nums(0)
        return UniformSampler(eps=eps, weighting=weighting)
    if kind == "stratified":
        return StratifiedSampler(*(nums(2) if args else (0.0, 1.0)), eps=eps, weighting=weighting)
    if kind == "beta":
        return BetaSampler(*nums(2), eps=eps, weighting=weighting)
    if kind == "point":
        return PointSampler(*nums(1), weighting=weighting)
    if kind == "logitnormal":
        from .predicted import LogitNormalSampler
        return LogitNormalSampler(*nums(2), eps=eps, weighting=weighting)
    if kind in ("signal-optimal", "signal_optimal"):
        vals = nums((1, 2))
        if not math.isfinite(vals[0]) or vals[0] != int(vals[0]):
            raise UserError(f"signal-optimal needs an integer k, got {args[0]!r}")
        return signal_optimal(int(vals[0]), vals[1] if len(vals) > 1 else 0.0,
                              eps=eps, weighting=weighting)
    raise UserError(f"unknown sampler {kind!r}; choose from {', '.join(SAMPLER_KINDS)}")


# --- masking and the loss ---

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
    unweighted loss by the caller. An ``AdaptiveSampler`` must be passed as
    an object and told each batch's losses after the step::

        per_seq = (ce_full * mask).sum(1) / (mask.shape[1] * p_mask[:, 0])
        sampler.observe(p_mask[:, 0], per_seq)      # ce_full: (B, L) CE

    and its ``loss_importance`` rule needs its weight in the loss,
    ``sampler.weight(t)`` instead of 1/t.
    """
    b, l = input_ids.shape
    if sampler is None:
        u = torch.rand(b, generator=generator, device=input_ids.device)
        t = (1 - eps) * u + eps
    else:
        if isinstance(sampler, str):
            sampler = parse_sampler(sampler, eps=eps)
            if isinstance(sampler, AdaptiveSampler):
                raise UserError("an adaptive sampler learns across batches: pass the object, "
                                "not its spec string, to forward_process")
        t = sampler.sample(b, generator=generator, device=input_ids.device)
    noisy, mask = corrupt(input_ids, t, mask_id, generator)
    return noisy, mask, t[:, None].expand(b, l)


NORMALIZATIONS = ("tokens", "masked")


class MaskedLoss(NamedTuple):
    loss: torch.Tensor       # scalar, with gradient
    weighted: torch.Tensor   # (B, L) weighted CE, zero where visible: sums to loss * denom
    ce: torch.Tensor         # (B, L) plain CE at every position
    denom: torch.Tensor | int


def md_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
            seq_weight: torch.Tensor, normalization: str = "tokens",
            reduction: str = "mean"):
    """Weighted masked cross-entropy.

    ``normalization='tokens'`` (LLaDA/SMDM): sum over masked positions of
    w(t) * CE, divided by the number of positions B*L. With w = 1/t this is
    an unbiased Monte Carlo estimate of the per-token MDLM ELBO term.
    ``normalization='masked'``: divide by the number of masked positions
    instead (a per-masked-token mean; biased, lower variance).
    ``reduction='none'`` returns the (B, L) weighted CE (zeros where visible);
    ``reduction='parts'`` a MaskedLoss (its CE tensors detached).
    """
    if normalization not in NORMALIZATIONS:
        raise UserError(f"unknown normalization {normalization!r}; choose from {NORMALIZATIONS}")
    ce = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)
    per_pos = ce * mask * seq_weight[:, None]
    if reduction == "none":
        return per_pos
    denom = targets.numel() if normalization == "tokens" else mask.sum().clamp(min=1)
    if reduction == "parts":
        return MaskedLoss(per_pos.sum() / denom, per_pos.detach(), ce.detach(), denom)
    return per_pos.sum() / denom
