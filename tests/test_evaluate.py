"""Full-range evaluation: quadrature, determinism, known answers."""
import math

import numpy as np
import pytest
import torch

from mdtheory.errors import UserError
from mdtheory.evaluate import eval_blocks, full_range_loss, quadrature

V, MASK = 11, 10


class UniformModel(torch.nn.Module):
    """Same logits everywhere: every masked token costs log V (here V-1 real tokens + mask)."""

    def forward(self, ids):
        return torch.zeros(*ids.shape, V)


class Oracle(torch.nn.Module):
    """Knows the clean sequence: huge logit on the right token."""

    def __init__(self, clean):
        super().__init__()
        self.clean = clean

    def forward(self, ids):
        return 50.0 * torch.nn.functional.one_hot(self.clean[: ids.size(0)], V).float()


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(V, 16)
        self.mix = torch.nn.Linear(16, 16)
        self.out = torch.nn.Linear(16, V)

    def forward(self, ids):
        h = self.emb(ids)
        h = h + self.mix(h.mean(dim=1, keepdim=True))  # sees the whole sequence
        return self.out(torch.tanh(h))


@pytest.fixture
def data():
    gen = torch.Generator().manual_seed(1)
    return torch.randint(0, MASK, (24, 32), generator=gen)


def test_quadrature_rules():
    for scheme in ("midpoint", "gauss-legendre"):
        t, w = quadrature(8, scheme)
        assert np.all((t > 0) & (t < 1)) and abs(w.sum() - 1) < 1e-12
        assert abs(w @ t - 0.5) < 1e-12                   # exact for linear g
    t, w = quadrature(6, "gauss-legendre")
    assert abs(w @ t**7 - 1 / 8) < 1e-12                  # GL is exact to degree 2n-1
    with pytest.raises(UserError):
        quadrature(4, "simpson")
    with pytest.raises(UserError):
        quadrature(0)


def test_uniform_model_scores_log_vocab(data):
    # exact counts (the default): the mean over masked tokens is log V whatever the masks
    assert full_range_loss(UniformModel(), data, MASK, n_t=16, seed=0).loss == pytest.approx(math.log(V), rel=1e-6)
    res = full_range_loss(UniformModel(), data, MASK, n_t=16, seed=0, scheme="midpoint")
    # Bernoulli masks: E[#masked] = tL, so E g = log V exactly; fixed masks fluctuate by a few se
    assert abs(res.loss - math.log(V)) < 4 * res.se + 1e-9
    assert res.se > 0
    assert res.bits_per_token == pytest.approx(res.loss / math.log(2))
    assert res.perplexity_bound == pytest.approx(math.exp(res.loss))


def test_oracle_scores_zero(data):
    res = full_range_loss(Oracle(data), data, MASK, n_t=8, seed=3, batch_size=100)
    assert res.loss < 1e-6


def test_same_seed_same_number_any_batch_size(data):
    model = TinyNet().eval()
    a = full_range_loss(model, data, MASK, n_t=8, seed=7, batch_size=5)
    b = full_range_loss(model, data, MASK, n_t=8, seed=7, batch_size=24)
    c = full_range_loss(model, data, MASK, n_t=8, seed=8, batch_size=24)
    assert a.loss == pytest.approx(b.loss, rel=1e-6) and a.se == pytest.approx(b.se, rel=1e-6)
    assert a.bin_loss == pytest.approx(b.bin_loss, rel=1e-6)
    assert c.loss != pytest.approx(a.loss, rel=1e-6)


def test_matches_a_hand_computation(data):
    """One node at t = 1/2: recompute g by hand with the same mask stream."""
    model = TinyNet().eval()
    res = full_range_loss(model, data, MASK, n_t=1, seed=4, scheme="midpoint")
    from mdtheory.evaluate import _node_generator
    mask = torch.rand(data.shape, generator=_node_generator(4, 0)) < 0.5
    with torch.no_grad():
        logits = model(torch.where(mask, MASK, data))
    logp = torch.log_softmax(logits, -1).gather(-1, data[..., None])[..., 0]
    per_seq = (-(logp * mask).sum(1) / (0.5 * data.size(1))).double()
    assert res.loss == pytest.approx(per_seq.mean().item(), rel=1e-5)
    assert res.se == pytest.approx((per_seq.std() / math.sqrt(len(per_seq))).item(), rel=1e-4)


def test_bins_and_metrics(data):
    res = full_range_loss(TinyNet().eval(), data, MASK, n_t=4, seed=0, scheme="midpoint")
    assert res.t == pytest.approx([0.125, 0.375, 0.625, 0.875])
    assert np.dot(res.weights, res.bin_loss) == pytest.approx(res.loss)
    m = res.metrics()
    assert {"full_range_test_loss", "full_range_test_loss_se",
            "full_range_bits_per_token", "full_range_perplexity_bound"} <= set(m)
    assert sum(k.startswith("full_range_bin/") for k in m) == 4
    assert sum(k.startswith("full_range_bin_se/") for k in m) == 4 and all(se > 0 for se in res.bin_se)
    d = res.to_dict()
    assert d["n_sequences"] == 24 and d["seq_len"] == 32


def test_eval_blocks():
    ids = np.arange(100)
    blocks = eval_blocks(ids, 10)
    assert blocks.shape == (10, 10) and blocks[3, 0] == 30
    spread = eval_blocks(ids, 10, max_blocks=3)
    assert spread[:, 0].tolist() == [0, 40, 90]  # linspace(0, 9, 3) rounded half to even
    with pytest.raises(UserError):
        eval_blocks(ids[:5], 10)
    with pytest.raises(UserError):
        full_range_loss(UniformModel(), torch.zeros(0, dtype=torch.long), MASK)


class CountAwareModel(torch.nn.Module):
    """A model whose loss at every masked token is a known function of how many
    tokens are masked: the true answer of token j gets probability
    exp(-(A + B m / L)) (m masked of L), the rest spread evenly. Its negative
    ELBO per token is then (1/L) sum_{m=1..L} (A + B m / L) = A + B (L + 1) / (2L)."""

    A, B = 0.5, 2.0

    def __init__(self, clean):
        super().__init__()
        self.clean = clean

    def forward(self, ids):
        n, length = ids.shape
        m = (ids == MASK).sum(dim=1, keepdim=True).float()
        nll = self.A + self.B * m / length                           # (n, 1)
        p_true = torch.exp(-nll)
        probs = ((1 - p_true) / (V - 1)).expand(n, length).unsqueeze(-1).repeat(1, 1, V)
        probs.scatter_(2, self.clean[:n, :, None], p_true.expand(n, length)[:, :, None])
        return probs.log()


def test_exact_count_strata_are_an_unbiased_estimate_of_the_same_elbo():
    gen = torch.Generator().manual_seed(2)
    length = 32
    data = torch.randint(0, MASK, (400, length), generator=gen)
    truth = CountAwareModel.A + CountAwareModel.B * (length + 1) / (2 * length)
    exact = full_range_loss(CountAwareModel(data), data, MASK, n_t=8, seed=0, scheme="exact-count",
                            batch_size=400)
    bernoulli = full_range_loss(CountAwareModel(data), data, MASK, n_t=8, seed=0, scheme="midpoint",
                                batch_size=400)
    # both estimate the same number; exact counts within 3 standard errors, and more precisely
    assert abs(exact.loss - truth) < 3 * exact.se + 1e-9
    assert abs(bernoulli.loss - truth) < 4 * bernoulli.se
    assert exact.se < bernoulli.se
    # each stratum's value is the known loss at its mean count (no 1/t noise, no first-bin artefact)
    for t, loss, se in zip(exact.t, exact.bin_loss, exact.bin_se):
        assert loss == pytest.approx(CountAwareModel.A + CountAwareModel.B * t, abs=4 * se + 1e-6)
    assert sum(exact.weights) == pytest.approx(1.0) and exact.t[0] == pytest.approx(2.5 / length)


def test_exact_count_masks_hold_exactly_m_tokens_and_bad_strata_are_refused():
    from mdtheory.evaluate import count_strata, exact_count_masks

    strata = count_strata(4, 10)
    assert [list(c) for c in strata] == [[1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]
    masks = exact_count_masks(50, 10, np.array([3]), torch.Generator().manual_seed(0))
    assert masks.sum(dim=1).tolist() == [3] * 50 and masks.float().mean(dim=0).min() > 0
    with pytest.raises(UserError):
        count_strata(11, 10)
    with pytest.raises(UserError):
        full_range_loss(UniformModel(), torch.zeros(2, 4, dtype=torch.long), MASK, n_t=8, scheme="exact-count")
