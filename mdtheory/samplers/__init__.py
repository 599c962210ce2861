"""Mask-rate samplers: the law of the rate t at which a sequence is masked.

A sampler draws one rate t per sequence and knows the loss weight that goes
with it. The paper (Huang & Mirzasoleiman, arXiv:2601.22450) trains with
t ~ U[t0, t1] and weights the masked cross-entropy by 1/t, the weight of the
standard MDLM ELBO; its point is that the choice of [t0, t1] tunes an
implicit regulariser. Samplers are small classes with analytic formulas
(after md4's schedules), one file per family:

    window.py   WindowSampler(t0, t1)        U[t0, t1] with a floor eps (see there)
                UniformSampler()             U[0, 1], the usual MDLM choice
                StratifiedSampler(t0, t1)    U[t0, t1], one draw per stratum of the batch
    smooth.py   BetaSampler(a, b)            Beta(a, b)
                LogitNormalSampler(mu, s)    sigmoid(mu + s Z)
    point.py    PointSampler(t)              a point mass (the limit t0 = t1)
                signal_optimal(k, width)     a window centred on argmax_t (k+1) t (1-t)^k
    mixture.py  MixtureSampler([(w, s)...])  pick a component per sequence
    centred.py  centred_law(t*, width, law)  the ``predicted`` kind: a law centred on a corpus's t*

``parse_sampler("window:0.3,0.4")`` builds one from its spec; ``spec()``
gives the string back and ``describe()`` the JSON stored in run configs.
A new law is one class with a ``from_spec`` classmethod (or one function of
a ``SamplerSpec``) decorated with ``@register_sampler("kind")``; the CLIs,
configs and ``SAMPLER_KINDS`` pick it up from the registry.
"""
from .base import DEFAULT_EPS, WEIGHTINGS, MaskRateSampler, _check_rate, _check_weighting  # noqa: F401
from .registry import (ALIASES, SAMPLER_KINDS, SAMPLERS, SamplerSpec, parse_sampler,  # noqa: F401
                       register_sampler, unregister_sampler)
# the order of these imports is the order of SAMPLER_KINDS
from .window import StratifiedSampler, UniformSampler, WindowSampler  # noqa: F401
from .smooth import BetaSampler, LogitNormalSampler  # noqa: F401
from .point import PointSampler, signal_optimal  # noqa: F401
from .mixture import MIXTURE_WEIGHT_TOL, MixtureSampler  # noqa: F401
from .centred import centred_law  # noqa: F401

__all__ = ["DEFAULT_EPS", "WEIGHTINGS", "MaskRateSampler", "SAMPLER_KINDS", "SAMPLERS", "SamplerSpec",
           "parse_sampler", "register_sampler", "unregister_sampler", "WindowSampler", "UniformSampler",
           "StratifiedSampler", "BetaSampler", "LogitNormalSampler", "PointSampler", "signal_optimal",
           "MixtureSampler", "MIXTURE_WEIGHT_TOL", "centred_law"]
