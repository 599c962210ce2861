"""Mask-rate samplers, masking rates, the MD loss and the regime split."""
import math

import numpy as np
import pytest
import torch

from mdtheory.errors import UserError
from mdtheory.masking import (BetaSampler, MixtureSampler, PointSampler, StratifiedSampler,
                              UniformSampler, WindowSampler, forward_process, corrupt,
                              md_loss, parse_sampler, signal_optimal)
from mdtheory.train.diagnostics import identifiable_positions, secret_mask, signal_regime

try:
    from mdtheory.theory.numeric import p_signal as theory_p_signal
except ImportError:  # theory module not there yet: use the sampler's own quadrature
    theory_p_signal = None

N_DRAWS = 200_000


def draw(sampler, n=N_DRAWS, seed=0):
    return sampler.sample(n, generator=torch.Generator().manual_seed(seed)).double().numpy()


def within_4_sigma(samples, expected_mean):
    se = samples.std() / math.sqrt(len(samples))
    return abs(samples.mean() - expected_mean) < 4 * se + 1e-12


@pytest.mark.parametrize("sampler, mean, var", [
    (WindowSampler(0.1, 0.5), 0.3, 0.4 ** 2 / 12),
    (StratifiedSampler(0.2, 0.6), 0.4, 0.4 ** 2 / 12),
    (UniformSampler(eps=0.0, weighting="none"), 0.5, 1 / 12),
    (BetaSampler(2, 5), 2 / 7, 2 * 5 / (7 ** 2 * 8)),
])
def test_sampler_moments(sampler, mean, var):
    t = draw(sampler)
    lo, hi = sampler.support()
    assert t.min() >= lo - 1e-7 and t.max() <= hi + 1e-7
    assert within_4_sigma(t, mean)
    assert abs(t.var() - var) < 0.02 * var + 1e-4
    assert sampler.mean() == pytest.approx(mean, rel=1e-3)


def test_window_floor_eps_and_refusal_at_zero():
    t = draw(WindowSampler(0.0, 0.2, eps=0.01))
    assert t.min() >= 0.01
    with pytest.raises(UserError):
        WindowSampler(0.0, 0.2, eps=0.0)  # 1/t weight is unbounded
    WindowSampler(0.0, 0.2, eps=0.0, weighting="none")  # exact window allowed without 1/t
    with pytest.raises(UserError):
        WindowSampler(0.5, 0.2)
    with pytest.raises(UserError):
        WindowSampler(-0.1, 0.2)


def test_stratified_one_draw_per_stratum():
    t = StratifiedSampler(0.0, 1.0, eps=0.0, weighting="none").sample(
        64, generator=torch.Generator().manual_seed(3))
    strata = torch.sort((t * 64).floor().long()).values
    assert torch.equal(strata, torch.arange(64))


def test_point_and_mixture():
    assert torch.all(PointSampler(0.25).sample(100) == 0.25)
    mix = MixtureSampler([(1.0, PointSampler(0.1)), (3.0, WindowSampler(0.4, 0.6))])
    t = draw(mix)
    assert within_4_sigma(t, 0.25 * 0.1 + 0.75 * 0.5)
    assert mix.mean() == pytest.approx(0.25 * 0.1 + 0.75 * 0.5)
    assert np.mean(t == np.float32(0.1)) == pytest.approx(0.25, abs=0.01)


def test_loss_weights():
    t = torch.tensor([0.1, 0.5, 1.0])
    assert torch.allclose(WindowSampler(0.1, 1).weight(t), 1 / t)
    assert torch.equal(WindowSampler(0.1, 1, weighting="none").weight(t), torch.ones(3))


def test_signal_optimal_and_parse():
    assert signal_optimal(6).t == pytest.approx(1 / 7)
    assert isinstance(parse_sampler("window:0,0.2"), WindowSampler)
    assert isinstance(parse_sampler("beta:2,8"), BetaSampler)
    assert isinstance(parse_sampler("mixture:0.5*point:0.2+0.5*uniform"), MixtureSampler)
    for bad in ("nope:1", "window:0.5,0.1", "window:0,x", "beta:-1,2", "", "mixture:0.5"):
        with pytest.raises(UserError):
            parse_sampler(bad)


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.8])
def test_mask_rate_matches_t(rate):
    gen = torch.Generator().manual_seed(1)
    t = torch.full((2000,), rate)
    x = torch.zeros(2000, 50, dtype=torch.long)
    noisy, mask = corrupt(x, t, mask_id=7, generator=gen)
    p = mask.double().mean().item()
    assert abs(p - rate) < 4 * math.sqrt(rate * (1 - rate) / mask.numel())
    assert torch.equal(noisy == 7, mask)


def test_corrupt_draws_one_uniform_per_position_in_order():
    # the committed runs depend on this stream: rand(B, L) < t, row-major
    x = torch.arange(24).view(4, 6)
    t = torch.tensor([0.1, 0.4, 0.6, 0.9])
    noisy, mask = corrupt(x, t, mask_id=-1, generator=torch.Generator().manual_seed(3))
    u = torch.rand(4, 6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(mask, u < t[:, None])
    assert torch.equal(noisy, torch.where(mask, -1, x))
    # one rate for all rows, and positions that must stay visible
    keep = torch.ones(4, 6, dtype=torch.bool)
    keep[:, 0] = False
    _, mask = corrupt(x, 0.5, mask_id=-1, generator=torch.Generator().manual_seed(3), maskable=keep)
    assert torch.equal(mask, (u < 0.5) & keep)


def test_forward_process_and_md_loss_normalisation():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 5, (8, 16), generator=gen)
    noisy, mask, p_mask = forward_process(ids, mask_id=7, sampler="window:0.3,0.6", generator=gen)
    assert torch.all(noisy[mask] == 7) and torch.equal(noisy[~mask], ids[~mask])
    assert torch.all((p_mask >= 0.3) & (p_mask <= 0.6))
    logits = torch.randn(8, 16, 8, generator=gen)
    w = 1 / p_mask[:, 0]
    per_pos = md_loss(logits, ids, mask, w, reduction="none")
    assert torch.all(per_pos[~mask] == 0)
    assert md_loss(logits, ids, mask, w) == pytest.approx(float(per_pos.sum() / ids.numel()))
    assert md_loss(logits, ids, mask, w, normalization="masked") == pytest.approx(
        float(per_pos.sum() / mask.sum()))


def _brute_force_identifiable(mask, secret):
    out = torch.zeros_like(mask)
    for b in range(mask.shape[0]):
        masked_in_secret = [j for j in secret if mask[b, j]]
        if len(masked_in_secret) == 1:
            out[b, masked_in_secret[0]] = True
    return out


def test_identifiable_positions_match_definition():
    gen = torch.Generator().manual_seed(0)
    secret = [1, 4, 8]  # S' for n = 8, k = 2 (label at 8)
    mask = torch.rand(500, 9, generator=gen) < 0.3
    ind = secret_mask(secret, 9)
    assert torch.equal(identifiable_positions(mask, ind), _brute_force_identifiable(mask, secret))


@pytest.mark.parametrize("k, t0, t1", [(2, 0.05, 0.5), (6, 0.01, 0.3), (3, 0.2, 0.2)])
def test_regime_frequency_matches_theory_p_signal(k, t0, t1):
    n = 12
    sampler = parse_sampler(f"window:{t0},{t1}", eps=1e-6)
    gen = torch.Generator().manual_seed(k)
    B = 100_000
    t = sampler.sample(B, generator=gen)
    _, mask = corrupt(torch.zeros(B, n + 1, dtype=torch.long), t, mask_id=2, generator=gen)
    ext = list(range(k)) + [n]
    freq = signal_regime(mask, secret_mask(ext, n + 1)).double().mean().item()
    expected = theory_p_signal(k, t0, t1) if theory_p_signal else sampler.p_signal(k)
    assert expected == pytest.approx(sampler.p_signal(k), rel=1e-4)
    assert abs(freq - expected) < 4 * math.sqrt(expected * (1 - expected) / B)


@pytest.mark.parametrize("spec", ["mixture:0.5*uniform+0.3*point:0.2", "mixture:1*uniform+1*point:0.2"])
def test_mixture_weights_must_sum_to_one(spec):
    with pytest.raises(UserError, match="sum to 1"):
        parse_sampler(spec)


def test_mixture_specs_round_trip():
    mix = parse_sampler("mixture:0.25*uniform+0.75*window:0.1,0.3")
    assert mix.probs.tolist() == [0.25, 0.75]
    thirds = MixtureSampler([(1.0, PointSampler(0.1)), (1.0, PointSampler(0.2)), (1.0, PointSampler(0.3))])
    assert parse_sampler(thirds.spec()).probs == pytest.approx(thirds.probs)


def test_beta_support_starts_at_the_floor():
    assert BetaSampler(2, 2, eps=0.01).support() == (0.01, 1.0)
    assert parse_sampler("mixture:0.5*beta:2,2+0.5*window:0.2,0.4").support()[0] == pytest.approx(1e-3)
