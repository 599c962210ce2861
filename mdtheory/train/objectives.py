"""The three training objectives, on one backbone that maps ids to logits.

md  masked diffusion: draw t per sequence from a mask-rate sampler, replace
    each token by MASK with probability t, and take the cross-entropy of the
    original token at the masked positions, weighted by the sampler's loss
    weight (1/t for the MDLM ELBO). Normalisation as in LLaDA/SMDM
    (``mdtheory.masking.md_loss``, normalization="tokens"): the weighted sum
    over masked positions is divided by B * L, the number of positions, so
    the loss is an unbiased estimate of the per-token ELBO term; "masked"
    divides by the number of masked positions instead.
os  output supervision: the model sees all bits with the label masked and is
    trained on the label alone (cross-entropy at the label position).
ar  autoregressive: a causal model reads [BOS, x_1..x_n] and predicts
    [x_1..x_n, y]; mean next-token cross-entropy over all positions.

Each function returns the scalar loss and the per-position pieces the
diagnostics need, so the signal/noise split adds up exactly to the loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..masking import MaskRateSampler, mask_positions, md_loss

OBJECTIVES = ("md", "os", "ar")


def draw_masks(tokens: torch.Tensor, sampler: MaskRateSampler,
               generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask rate t (B,) and Bernoulli(t) mask (B, L) for a batch of sequences."""
    t = sampler.sample(tokens.shape[0], generator=generator)
    mask = mask_positions(tuple(tokens.shape), t, generator=generator)
    return t, mask


def masked_diffusion_loss(model, tokens, t, mask, mask_id: int, sampler: MaskRateSampler,
                          normalization: str = "tokens"):
    """MD loss. Returns (loss, weighted_ce (B, L), ce (B, L), denominator)."""
    noisy = torch.where(mask, torch.full_like(tokens, mask_id), tokens)
    logits = model(noisy)
    weighted = md_loss(logits, tokens, mask, sampler.weight(t), reduction="none")
    denom = tokens.numel() if normalization == "tokens" else mask.sum().clamp(min=1)
    loss = weighted.sum() / denom
    with torch.no_grad():
        ce = F.cross_entropy(logits.detach().float().flatten(0, 1), tokens.flatten(),
                             reduction="none").view_as(tokens)
    return loss, weighted.detach(), ce, denom


def output_supervision_loss(model, inputs, targets, position: int):
    """CE of ``targets[:, position]`` from the logits at ``position``."""
    logits = model(inputs)[:, position]
    return F.cross_entropy(logits.float(), targets[:, position]), logits.detach()


def next_token_loss(model, inputs, targets):
    """Mean next-token CE; also returns the logits for label accuracy."""
    logits = model(inputs)
    loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
    return loss, logits.detach()
