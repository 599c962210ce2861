"""Energy landscape E(W) = c^T Sigma^+ c of the reduced model, and Corollary 4.6."""
import numpy as np
import pytest

from mdtheory.errors import UserError
from mdtheory.theory.exact import ParityEnumeration, encode
from mdtheory.theory.landscape import (corollary_4_6_table, embed, energy, features,
                                       landscape_terms, loss_at_readout, optimal_readout,
                                       random_weights, raw_terms, sample_statistics)


@pytest.fixture(scope="module")
def setup():
    e = ParityEnumeration(4, 2, 0.0, 0.4)
    return e, e.corrupted_statistics()


def test_embedding_is_one_hot_value_position():
    x = np.array([[-1, 0, 1]])
    z = embed(x)
    assert z.shape == (1, 9) and z.sum() == 3
    assert z[0, 0 * 3 + 0] == 1 and z[0, 2 * 3 + 1] == 1 and z[0, 1 * 3 + 2] == 1
    zz = embed(x, "zero")
    assert zz.shape == (1, 6) and zz.sum() == 2
    with pytest.raises(UserError):
        embed(x, "bogus")


def test_regime_split_equals_raw_statistics(setup):
    _, stats = setup
    h = features(random_weights(32, 5, seed=1), stats.inputs)
    sigma, c, _ = landscape_terms(stats, h)
    sigma_raw, c_raw = raw_terms(stats, h)
    # c from the signal regime alone equals the raw E[1/(2t) sum x'_j h]:
    # the noise regime's targets have conditional mean 0
    assert np.allclose(sigma, sigma_raw, atol=1e-13)
    assert np.allclose(c, c_raw, atol=1e-13)


@pytest.mark.parametrize("seed,activation,mask_embedding", [(0, "relu", "token"), (1, "tanh", "token"),
                                                            (2, "relu", "zero")])
def test_energy_is_loss_reduction_at_optimal_readout(setup, seed, activation, mask_embedding):
    e, stats = setup
    W = random_weights(24, 5, seed=seed, mask_embedding=mask_embedding)
    v = optimal_readout(W, stats, activation, mask_embedding)
    E = energy(W, stats, activation=activation, mask_embedding=mask_embedding)
    # the raw masked loss by enumeration over all (x, M), at v = 0 and v = v*
    table = np.zeros(e.num_codes)
    table[encode(stats.inputs)] = features(W, stats.inputs, activation, mask_embedding) @ v
    reduction = e.squared_loss(np.zeros(e.num_codes)) - e.squared_loss(table)
    assert E == pytest.approx(reduction, rel=1e-9)
    # v* is optimal: perturbing it only increases the loss
    base = loss_at_readout(v, W, stats, activation, mask_embedding)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        assert loss_at_readout(v + 1e-3 * rng.normal(size=v.shape), W, stats, activation,
                               mask_embedding) >= base - 1e-12


def test_corollary_4_6_flat_landscape_without_noise(setup):
    _, stats = setup
    n_signal, n_all = int(stats.signal.sum()), len(stats.inputs)
    hidden = (n_signal + n_all) // 2   # spans the signal targets, cannot fit every input
    res = corollary_4_6_table(stats, hidden, seeds=range(4))
    spread = res["spread"]
    assert res["max_span_residual"] < 1e-8
    assert spread[0] > 1e-3                          # with the real P_N, E depends on W
    assert spread[-1] < 1e-9                         # P_N -> 0: E(W) is W-independent
    assert spread[1] > spread[2] > spread[3]         # and the dependence fades as P_N shrinks
    assert np.allclose(res["energies"][-1], res["K"], rtol=1e-9)
    # a narrow network cannot span the targets, and its landscape is not flat
    small = corollary_4_6_table(stats, 8, seeds=range(3))
    assert small["max_span_residual"] > 1e-3 and small["spread"][-1] > 1e-3


def test_sampled_statistics_approximate_exact():
    e = ParityEnumeration(5, 2, 0.1, 0.4)
    exact = e.corrupted_statistics()
    sampled = sample_statistics(5, 2, 0.1, 0.4, num_samples=200_000, seed=0)
    W = random_weights(16, 6, seed=3)
    assert energy(W, sampled) == pytest.approx(energy(W, exact), rel=0.05)
    assert sampled.constant == pytest.approx(exact.constant, rel=0.02)
