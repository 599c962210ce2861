"""Training diagnostics that tie the runs to the theory.

Signal and noise regimes (paper, section on the effective loss). With
S' = S plus the label position, a masked position j is *identifiable* iff
j is in S' and every other element of S' is visible; its token is then the
XOR of the visible k others. Every other masked position is independent of
what is visible (its Bayes prediction is 1/2). A sequence is in the signal
regime R_S iff exactly one element of S' is masked, which happens with
probability P_S(t) = (k+1) t (1-t)^k. ``regime_split`` divides the MD loss of
a batch into its signal and noise parts (they add up to the loss).

Loss and gradient norm by t-bin: the MD loss of a fixed diagnostic batch
masked at rates drawn inside each bin, and the norm of its gradient, show
which mask rates drive learning at a given moment.

Energy E(W) of the reduced MLP (paper, section on the energy landscape):
with the readout at its optimum for fixed first layer W, minimising the
squared-error loss is maximising E(W) = c^T Sigma^+ c with h = sigma(W z~),
    c     = E[ 1{R_S} |M|/(2t) f* h ],   f* = x'_i / |M|  (x' in {-1, 1}),
    Sigma = E[ |M|/(2t) h h^T ]         (both regimes together),
expectations over training sequences, t and masks. We estimate it by Monte
Carlo; ``mlp_energy`` delegates to ``mdtheory.theory.landscape`` when it can.

Bit selectivity of the reduced MLP: the first layer sees bit j through the
rows W e_(0,j) and W e_(1,j); their distance is how far flipping bit j moves
the hidden pre-activations. Parity of S needs only the bits in S; recalling
training strings needs all of them. ``secret_selectivity`` is the mean over S
divided by the mean over the other input bits (1: every bit read alike).
"""
from __future__ import annotations

import numpy as np
import torch

from ..masking import corrupt
from ..samplers import MaskRateSampler
from ..theory import landscape
from .objectives import masked_diffusion_loss
from .task import step_generator


def secret_mask(extended_secret, seq_len: int, device=None) -> torch.Tensor:
    """Boolean (L,) indicator of S'."""
    ind = torch.zeros(seq_len, dtype=torch.bool, device=device)
    ind[torch.as_tensor(np.asarray(extended_secret), dtype=torch.long, device=device)] = True
    return ind


def signal_regime(mask: torch.Tensor, in_secret: torch.Tensor) -> torch.Tensor:
    """(B,) True where exactly one element of S' is masked."""
    return (mask & in_secret).sum(dim=1) == 1


def identifiable_positions(mask: torch.Tensor, in_secret: torch.Tensor) -> torch.Tensor:
    """(B, L) True at masked positions whose token the visible ones determine."""
    return mask & in_secret & signal_regime(mask, in_secret)[:, None]


def regime_split(weighted_ce: torch.Tensor, ce: torch.Tensor, mask: torch.Tensor,
                 in_secret: torch.Tensor, denom) -> dict[str, torch.Tensor]:
    """Signal/noise decomposition of one MD batch (0-dim tensors).

    signal_loss + noise_loss = the batch loss (same normalisation);
    ce_signal / ce_noise: mean unweighted CE per masked position of each kind
    (NaN when the batch has none); signal_frac: share of masked positions that
    are identifiable; p_signal: share of sequences in R_S (compare with P_S).
    """
    ident = identifiable_positions(mask, in_secret)
    noise = mask & ~ident
    n_ident, n_noise = ident.sum(), noise.sum()
    nan = torch.tensor(float("nan"), device=ce.device)
    return {
        "signal_loss": (weighted_ce * ident).sum() / denom,
        "noise_loss": (weighted_ce * noise).sum() / denom,
        "ce_signal": torch.where(n_ident > 0, (ce * ident).sum() / n_ident.clamp(min=1), nan),
        "ce_noise": torch.where(n_noise > 0, (ce * noise).sum() / n_noise.clamp(min=1), nan),
        "signal_frac": n_ident / mask.sum().clamp(min=1),
        "p_signal": signal_regime(mask, in_secret).float().mean(),
    }


def tbin_diagnostics(model, tokens: torch.Tensor, sampler: MaskRateSampler, mask_id: int,
                     edges: list[float], seed: int, normalization: str = "tokens") -> dict:
    """MD loss and gradient norm on ``tokens`` masked at rates inside each bin.

    The masks of bin i come from a generator fixed by (seed, i), so the
    curves over training steps compare like with like. Uses autograd.grad,
    so the model's .grad buffers are left alone. Rates are kept at or above
    the sampler's lowest rate (its eps floor for laws that reach 0, such as
    Beta), as in training: below it the 1/t weight is unbounded.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    floor = sampler.support()[0]
    losses, norms = [], []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        lo, hi = max(lo, floor), max(hi, floor)
        gen = step_generator(seed, 0, shard=i, stream=2)
        t = lo + (hi - lo) * torch.rand(len(tokens), generator=gen)
        noisy, mask = corrupt(tokens, t, mask_id, gen)
        with torch.enable_grad():
            loss = masked_diffusion_loss(model, tokens, noisy, mask, sampler.weight(t.to(tokens.device)),
                                         normalization).loss
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None))
        losses.append(float(loss.detach()))
        norms.append(float(norm))
    return {"edges": [float(e) for e in edges], "loss": losses, "grad_norm": norms}


def bit_selectivity(weight: torch.Tensor, seq_len: int, bit0: int, bit1: int) -> list[float]:
    """||W e_(bit1,j) - W e_(bit0,j)|| for every position j, from the reduced
    MLP's first-layer table (vocab * seq_len rows, row value * seq_len + j)."""
    rows = weight.detach().float().reshape(-1, seq_len, weight.shape[-1])
    return (rows[bit1] - rows[bit0]).norm(dim=-1).tolist()


def secret_selectivity(selectivity: list[float], secret) -> float:
    """Mean selectivity of the secret input bits over that of the other input
    bits (the label, the last position, is neither)."""
    secret = {int(j) for j in secret}
    inside = [selectivity[j] for j in secret]
    outside = [s for j, s in enumerate(selectivity[:-1]) if j not in secret]
    return float(np.mean(inside) / np.mean(outside)) if outside else float("nan")


@torch.no_grad()
def mlp_energy(model, tokens: torch.Tensor, sampler: MaskRateSampler, secret, mask_id: int,
               samples: int = 8192, seed: int = 0, cache: dict | None = None) -> float:
    """E(W) of the reduced MLP's first layer (plug-in estimate, see below).

    For a window sampler the theory module computes it
    (``mdtheory.theory.landscape.energy`` on ``sample_statistics``: fresh
    uniform inputs, the population quantity); its statistics put the secret
    at positions 0..k-1, so W's position columns are permuted to match
    (bits 0/1 play the theory's -1/+1, the mask is the third value in both
    layouts). Otherwise a Monte Carlo estimate over the training sequences
    is used. Both are plug-in estimates c^T
    Sigma^+ c from ``samples`` draws: biased upwards unless samples >> hidden
    width (with samples <= hidden E no longer depends on W at all), so
    compare values within one run, not across widths. ``cache`` keeps the
    statistics between calls.
    """
    W = model.W.weight.detach().double().cpu().numpy().T        # (hidden, vocab * L)
    L = tokens.shape[1]
    lo, hi = sampler.support()
    # 4L columns: the parity vocabulary also has a BOS id (3), which never occurs here
    if sampler.describe()["kind"] == "window" and W.shape[1] in (3 * L, 4 * L) \
            and model.config.activation in landscape.ACTIVATIONS and model.b is None:
        cache = {} if cache is None else cache
        key = ("stats", samples, seed)
        if key not in cache:
            cache[key] = landscape.sample_statistics(L - 1, len(secret), lo, hi, num_samples=samples, seed=seed)
        stats = cache[key]
        secret = [int(j) for j in secret]
        order = secret + [j for j in range(L - 1) if j not in secret] + [L - 1]
        columns = [value * L + j for value in range(3) for j in order]
        return float(landscape.energy(W[:, columns], stats, activation=model.config.activation))
    return _mlp_energy_monte_carlo(model, tokens, sampler, np.append(secret, L - 1), mask_id,
                                   samples, seed)


def _mlp_energy_monte_carlo(model, tokens, sampler, extended_secret, mask_id, samples, seed):
    gen = step_generator(seed, 0, stream=3)
    device = tokens.device
    rows = torch.randint(len(tokens), (samples,), generator=gen).to(device)
    x = tokens[rows]
    t = sampler.sample(samples, generator=gen)
    noisy, mask = corrupt(x, t, mask_id, gen)
    t = t.to(device)
    h = model.features(noisy).double()                        # (S, H)
    n_masked = mask.sum(dim=1).double()
    w = n_masked / (2 * t.double())                           # |M| / (2t)
    in_secret = secret_mask(extended_secret, x.shape[1], device)
    ident = identifiable_positions(mask, in_secret)
    signal = ident.any(dim=1)
    # f* = x'_i / |M| with x' in {-1, 1}; zero outside the signal regime
    target = torch.where(ident, 2.0 * x.double() - 1.0, torch.zeros_like(x, dtype=torch.double)).sum(1)
    f_star = torch.where(signal, target / n_masked.clamp(min=1), torch.zeros_like(target))
    c = (w * f_star)[:, None].mul(h).mean(dim=0)
    sigma = (h * w[:, None]).T @ h / samples
    return float(c @ torch.linalg.pinv(sigma, hermitian=True) @ c)
