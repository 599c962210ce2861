"""The LLaDA/SMDM-style drop-in forward_process(input_ids, eps)."""
import pytest
import torch

from mdtheory.masking import WindowSampler, forward_process

MASK = 99


@pytest.fixture
def ids():
    return torch.randint(0, 50, (64, 200), generator=torch.Generator().manual_seed(0))


def test_shapes_and_masking(ids):
    noisy, mask, p_mask = forward_process(ids, MASK, generator=torch.Generator().manual_seed(1))
    assert noisy.shape == mask.shape == p_mask.shape == ids.shape
    assert mask.dtype == torch.bool
    assert torch.all(noisy[mask] == MASK) and torch.equal(noisy[~mask], ids[~mask])
    # one rate per sequence, shared by all its positions
    assert torch.all(p_mask == p_mask[:, :1])


def test_default_law_is_llada(ids):
    eps = 0.2
    _, _, p_mask = forward_process(ids, MASK, eps=eps, generator=torch.Generator().manual_seed(2))
    t = p_mask[:, 0]
    assert t.min() >= eps and t.max() <= 1.0
    assert 0.45 < t.mean().item() < 0.75  # mean of (1-eps)U+eps is 0.6


@pytest.mark.parametrize("sampler", ["window:0.45,0.55", WindowSampler(0.45, 0.55)])
def test_any_sampler_sets_the_rate(ids, sampler):
    noisy, mask, p_mask = forward_process(ids, MASK, sampler=sampler,
                                          generator=torch.Generator().manual_seed(3))
    t = p_mask[:, 0]
    assert t.min() >= 0.45 and t.max() <= 0.55
    # the empirical masked fraction of each row follows its own t
    frac = mask.float().mean(dim=1)
    assert torch.all((frac - t).abs() < 0.15)
    assert abs(frac.mean().item() - t.mean().item()) < 0.02


def test_reproducible_with_a_generator(ids):
    a = forward_process(ids, MASK, sampler="uniform", generator=torch.Generator().manual_seed(5))
    b = forward_process(ids, MASK, sampler="uniform", generator=torch.Generator().manual_seed(5))
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_inverse_rate_loss_is_unbiased(ids):
    """With a constant per-token CE c, the README recipe
    (ce / p_mask)[mask].sum() / numel has expectation c for any sampler."""
    c = 2.5
    gen = torch.Generator().manual_seed(6)
    vals = []
    for _ in range(200):
        _, mask, p_mask = forward_process(ids[:8], MASK, sampler="window:0.1,0.3", generator=gen)
        ce = torch.full(mask.shape, c)
        vals.append(((ce[mask] / p_mask[mask]).sum() / mask.numel()).item())
    vals = torch.tensor(vals)
    assert abs(vals.mean().item() - c) < 4 * vals.std().item() / len(vals) ** 0.5 + 1e-3
