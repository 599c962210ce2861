"""The corpus-predicted mask-rate law: ``--sampler predicted[:width=W,law=L]``.

The theory predicts the best mask rate of a corpus from its dependency
weights w_2..w_6: t* = argmax_t sum_i w_i t (1-t)^(i-1) (Huang &
Mirzasoleiman, arXiv:2601.22450, App. F.4; ``mdtheory.derive ngram``). This
module turns t* into a training law centred there, so nobody has to read t*
off a report and type a window:

    law=window        U[t* - W/2, t* + W/2], moved inside [0, 1] if needed (default W = 0.1)
    law=beta          Beta(a, b) with mode t* and the standard deviation of that window (W / sqrt 12)
    law=logitnormal   sigmoid(mu + sigma Z) with mode t* and the same standard deviation

``predicted_t_star(corpus)`` estimates t* from the corpus's training split
(distinct-frequent estimator, min count 5, as ``derive ngram``) and caches
the result by the corpus fingerprint under ``$MDTHEORY_CACHE_DIR`` (default
``~/.cache/mdtheory``)/predicted_t/. In your own MDLM::

    from mdtheory.predicted import law_for_text
    sampler, info = law_for_text(open("corpus.txt").read())   # info: t*, weights
    noisy, mask, p_mask = forward_process(input_ids, mask_id=MASK_ID, sampler=sampler)
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from .cli import atomic_write_text
from .errors import UserError
from .masking import DEFAULT_EPS, BetaSampler, MaskRateSampler, WindowSampler, _check_rate, _check_weighting

LAWS = ("window", "beta", "logitnormal")
DEFAULT_WIDTH = 0.1
ESTIMATOR, MIN_COUNT = "distinct-frequent", 5


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


class LogitNormalSampler(MaskRateSampler):
    """t = sigmoid(mu + sigma Z), Z standard normal, clamped below at ``eps``."""

    kind, fields = "logitnormal", ("mu", "sigma", "eps", "weighting")

    def __init__(self, mu: float, sigma: float, eps: float = DEFAULT_EPS, weighting: str = "inverse_t"):
        self.mu, self.sigma = float(mu), float(sigma)
        if not (math.isfinite(self.mu) and math.isfinite(self.sigma) and self.sigma > 0):
            raise UserError(f"logit-normal needs a finite mu and sigma > 0, got {mu}, {sigma}")
        self.eps = _check_rate("eps", eps)
        self.weighting = _check_weighting(weighting)
        if self.weighting == "inverse_t" and self.eps == 0.0:
            raise UserError("logit-normal sampler reaches t=0 with a 1/t weight: set eps > 0")

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


def _cache_dir() -> Path:
    return Path(os.environ.get("MDTHEORY_CACHE_DIR") or Path.home() / ".cache" / "mdtheory") / "predicted_t"


def predicted_t_star(corpus) -> dict:
    """t* of a corpus's training split with the weights behind it, cached by
    the corpus fingerprint: {t_star, weights, estimator, min_count, fingerprint}."""
    from .theory import ngram_weights as nw
    from .theory.numeric import mixture_argmax

    fingerprint = corpus.fingerprint()
    path = _cache_dir() / f"{fingerprint}-{ESTIMATOR}-{MIN_COUNT}.json"
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(cached, dict) and cached.get("fingerprint") == fingerprint and 0 < cached.get("t_star", -1) < 1:
            return cached
    except (OSError, ValueError):
        pass  # absent or damaged: compute again
    ids, _ = nw.word_ids(corpus.train)
    weights = nw.estimate_weights(ids, ESTIMATOR, min_count=MIN_COUNT)
    info = {"t_star": round(float(mixture_argmax(weights)), 6),
            "weights": {str(i): round(float(w), 6) for i, w in weights.items()},
            "estimator": ESTIMATOR, "min_count": MIN_COUNT, "fingerprint": fingerprint}
    try:
        atomic_write_text(path, json.dumps(info, indent=2) + "\n")
    except OSError:
        pass  # a cache that cannot be written only costs the time to count again
    return info


def law_for_corpus(corpus, spec: str = "predicted", eps: float = DEFAULT_EPS,
                   weighting: str = "inverse_t") -> tuple[MaskRateSampler, dict]:
    """(sampler, info) for ``predicted[:width=W,law=L]`` on ``corpus``."""
    width, law = parse_options(spec)
    info = predicted_t_star(corpus)
    sampler = centred_law(info["t_star"], width, law, eps=eps, weighting=weighting)
    return sampler, {**info, "width": width, "law": law, "sampler": sampler.spec()}


def law_for_text(text: str, spec: str = "predicted", eps: float = DEFAULT_EPS,
                 weighting: str = "inverse_t") -> tuple[MaskRateSampler, dict]:
    """The same for a plain text (all of it counts as training text)."""
    from .data.corpus import Corpus

    if not isinstance(text, str) or not text.strip():
        raise UserError("the text to predict t* from is empty")
    return law_for_corpus(Corpus("text", text, "", ""), spec, eps=eps, weighting=weighting)
