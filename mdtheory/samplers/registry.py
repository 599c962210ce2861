"""Spec strings -> samplers: the registry behind ``parse_sampler``.

A spec is ``KIND[:ARGS]``; each kind's parser reads its own ARGS, so a new
law needs one class (or function) and one ``register_sampler`` call, and no
list of kinds has to be edited anywhere else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import UserError
from .base import DEFAULT_EPS, MaskRateSampler


@dataclass(frozen=True)
class SamplerSpec:
    """One spec, split, with the settings the caller gives every law."""
    text: str                     # the whole spec, stripped: error messages quote it
    kind: str                     # as written (an alias stays an alias), lower case
    rest: str                     # what follows the first ':'
    eps: float = DEFAULT_EPS
    weighting: str = "inverse_t"
    t_star: float | None = None   # the corpus's t*, for laws centred on it

    @property
    def args(self) -> list[str]:
        """The comma-separated arguments, empty ones dropped."""
        return [a for a in self.rest.split(",") if a.strip()] if self.rest else []

    def numbers(self, *counts: int) -> list[float]:
        """The arguments as floats, refused unless there are one of ``counts``."""
        args = self.args
        if len(args) not in counts:
            raise UserError(f"sampler {self.kind!r} takes {' or '.join(map(str, counts))} numbers, "
                            f"got {self.text!r}")
        try:
            return [float(a) for a in args]
        except ValueError:
            raise UserError(f"non-numeric argument in sampler spec {self.text!r}") from None


Parser = Callable[[SamplerSpec], MaskRateSampler]
SAMPLERS: dict[str, Parser] = {}   # kind -> parser, in registration order
ALIASES: dict[str, str] = {}       # other spellings accepted for a kind
SAMPLER_KINDS = SAMPLERS.keys()    # a live view: kinds registered later appear too


def register_sampler(kind: str, parser=None, *, aliases: tuple[str, ...] = ()):
    """Make ``parse_sampler`` read ``kind[:ARGS]`` with ``parser``: a sampler
    class (its ``from_spec`` classmethod) or a function of a SamplerSpec.
    Returns ``parser``, so ``@register_sampler("window")`` decorates a class."""
    if parser is None:
        return lambda p: register_sampler(kind, p, aliases=aliases)
    build = getattr(parser, "from_spec", parser)
    names = [kind, *aliases]
    if not callable(build):
        raise TypeError(f"sampler parser for {kind!r} is not callable: {parser!r}")
    for name in names:
        if not name or name != name.strip().lower() or ":" in name:
            raise ValueError(f"a sampler kind is a lower-case word without ':', got {name!r}")
        if name in SAMPLERS or name in ALIASES:
            raise ValueError(f"sampler kind {name!r} is already registered")
    SAMPLERS[kind] = build
    ALIASES.update((alias, kind) for alias in aliases)
    return parser


def unregister_sampler(kind: str) -> None:
    """Forget ``kind`` and its aliases (e.g. a law a test registered)."""
    del SAMPLERS[kind]
    for alias in [a for a, k in ALIASES.items() if k == kind]:
        del ALIASES[alias]


def parse_sampler(spec: str, eps: float = DEFAULT_EPS, weighting: str = "inverse_t",
                  t_star: float | None = None) -> MaskRateSampler:
    """Build a sampler from a short string (used by the CLIs and configs).

    ``window:T0,T1``  ``uniform``  ``stratified[:T0,T1]``  ``beta:A,B``
    ``logitnormal:MU,SIGMA``  ``point:T``  ``signal-optimal:K[,WIDTH]``
    ``mixture:W*SPEC+W*SPEC`` (mixture weights must sum to 1)
    ``predicted[:width=W,law=window|beta|logitnormal]`` (centred on the
    corpus-predicted ``t_star``, see ``mdtheory.predicted``; the LM task
    computes t* from its training split). ``SAMPLER_KINDS`` lists them all.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"empty sampler spec {spec!r}")
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    build = SAMPLERS.get(ALIASES.get(kind, kind))
    if build is None:
        raise UserError(f"unknown sampler {kind!r}; choose from {', '.join(SAMPLER_KINDS)}")
    return build(SamplerSpec(spec, kind, rest, eps, weighting, t_star))
