"""Laws centred on a given t*: the ``predicted[:width=W,law=L]`` kind.

The spec names only the shape; the centre is the corpus's t*, which the
caller estimates (``mdtheory.predicted``) and passes as ``t_star``:

    law=window        U[t* - W/2, t* + W/2], moved inside [0, 1] if needed (default W = 0.1)
    law=beta          Beta(a, b) with mode t* and the standard deviation of that window (W / sqrt 12)
    law=logitnormal   sigmoid(mu + sigma Z) with mode t* and the same standard deviation
"""
from __future__ import annotations

import math

from ..errors import UserError
from .base import DEFAULT_EPS, MaskRateSampler
from .registry import SamplerSpec, register_sampler
from .smooth import BetaSampler, LogitNormalSampler
from .window import WindowSampler

LAWS = ("window", "beta", "logitnormal")
DEFAULT_WIDTH = 0.1


def parse_options(spec: str) -> tuple[float, str]:
    """(width, law) of ``predicted[:width=W,law=L]``."""
    kind, _, rest = spec.strip().partition(":")
    if kind.strip().lower() != "predicted":
        raise UserError(f"not a predicted-law spec: {spec!r}")
    width, law = DEFAULT_WIDTH, "window"
    for item in filter(str.strip, rest.split(",")):
        key, eq, value = (x.strip() for x in item.partition("="))
        if key == "width" and eq:
            try:
                width = float(value)
            except ValueError:
                raise UserError(f"predicted width must be a number, got {value!r}") from None
        elif key == "law" and eq:
            law = value.lower()
        else:
            raise UserError(f"bad option {item!r} in {spec!r}; use width=W and/or law={'|'.join(LAWS)}")
    if not (math.isfinite(width) and 0 < width <= 1):
        raise UserError(f"predicted width must lie in (0, 1], got {width}")
    if law not in LAWS:
        raise UserError(f"unknown predicted law {law!r}; choose from {', '.join(LAWS)}")
    return width, law


def _window(t_star: float, width: float, eps: float, weighting: str) -> WindowSampler:
    t0 = min(max(t_star - width / 2, 0.0), 1.0 - width)
    return WindowSampler(round(t0, 6), round(t0 + width, 6), eps=eps, weighting=weighting)


def _beta(t_star: float, sd: float, eps: float, weighting: str) -> BetaSampler:
    from scipy.optimize import brentq

    def params(kappa):  # a + b = kappa, mode t*
        return t_star * (kappa - 2) + 1, (1 - t_star) * (kappa - 2) + 1

    def sd_of(kappa):
        a, b = params(kappa)
        return math.sqrt(a * b / (kappa ** 2 * (kappa + 1)))

    # kappa -> 2: Beta(1, 1) (sd 0.289); kappa -> inf: a point. Any sd below that is reachable.
    if sd >= sd_of(2 + 1e-9):
        raise UserError(f"no Beta law with mode {t_star:.3f} is as wide as sd {sd:.3f}; use a smaller width")
    kappa = brentq(lambda k: sd_of(k) - sd, 2 + 1e-9, 1e7)
    return BetaSampler(*params(kappa), eps=eps, weighting=weighting)


def _logitnormal(t_star: float, sd: float, eps: float, weighting: str) -> LogitNormalSampler:
    from scipy.optimize import brentq

    logit = math.log(t_star / (1 - t_star))

    def law(sigma):  # the mode x solves logit(x) = mu + sigma^2 (2x - 1)
        return LogitNormalSampler(logit - sigma ** 2 * (2 * t_star - 1), sigma, eps=1e-12, weighting="none")

    def sd_of(sigma):
        s = law(sigma)
        mean = s.expect(lambda t: t)
        return math.sqrt(max(s.expect(lambda t: t * t) - mean ** 2, 0.0))

    high = 1.0
    while sd_of(high) < sd and high < 1.4:  # beyond ~1.4 the density is no longer unimodal
        high *= 1.2
    if sd_of(min(high, 1.4)) < sd:
        raise UserError(f"no unimodal logit-normal law with mode {t_star:.3f} is as wide as sd {sd:.3f}")
    sigma = brentq(lambda s: sd_of(s) - sd, 1e-4, min(high, 1.4))
    best = law(sigma)
    return LogitNormalSampler(best.mu, sigma, eps=eps, weighting=weighting)


def centred_law(t_star: float, width: float = DEFAULT_WIDTH, law: str = "window", eps: float = DEFAULT_EPS,
                weighting: str = "inverse_t") -> MaskRateSampler:
    """The training law of ``law`` centred on ``t_star`` (see the module docstring)."""
    if not (isinstance(t_star, (int, float)) and 0 < float(t_star) < 1):
        raise UserError(f"t* must lie in (0, 1), got {t_star!r}")
    if law not in LAWS:
        raise UserError(f"unknown predicted law {law!r}; choose from {', '.join(LAWS)}")
    if law == "window":
        return _window(float(t_star), width, eps, weighting)
    sd = width / math.sqrt(12)  # the standard deviation of a window of that width
    make = _beta if law == "beta" else _logitnormal
    return make(float(t_star), sd, eps, weighting)


@register_sampler("predicted")
def parse_predicted(spec: SamplerSpec) -> MaskRateSampler:
    """``predicted[:width=W,law=L]`` on the caller's ``t_star``; the law built
    is a window, Beta or logit-normal, so its ``spec()`` is that law's."""
    width, law = parse_options(spec.text)
    if spec.t_star is None:
        raise UserError("--sampler predicted centres its law on a corpus's t*: use it with the lm task "
                        "(it estimates t* from the training split), or mdtheory.predicted.law_for_text")
    return centred_law(spec.t_star, width, law, eps=spec.eps, weighting=spec.weighting)
