"""The one corruption step (``corrupt``), ``forward_process`` and the MD loss.

Every position of a sequence is masked independently with probability t,
the rate its mask-rate sampler drew (``mdtheory.samplers``; the sampler
names are importable from here too, as they always were).

Use in your own training loop (LLaDA/SMDM style)::

    from mdtheory.masking import parse_sampler, forward_process
    sampler = parse_sampler("window:0.45,0.55")
    noisy, mask, p_mask = forward_process(input_ids, mask_id=MASK, sampler=sampler)
    logits = model(noisy)
    ce = F.cross_entropy(logits[mask], input_ids[mask], reduction="none")
    loss = (ce / p_mask[mask]).sum() / input_ids.numel()
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .errors import UserError
# the samplers lived here before mdtheory.samplers: their old import path keeps working
from .samplers import (DEFAULT_EPS, MIXTURE_WEIGHT_TOL, SAMPLER_KINDS, WEIGHTINGS,  # noqa: F401
                       BetaSampler, LogitNormalSampler, MaskRateSampler, MixtureSampler, PointSampler,
                       StratifiedSampler, UniformSampler, WindowSampler, _check_rate, _check_weighting,
                       parse_sampler, signal_optimal)

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
