"""Exact enumeration and Monte Carlo checks of the regime probabilities,
Theorem 4.3 (squared and cross-entropy) and the Bayes risks."""

import numpy as np
import pytest

from mdtheory.errors import UserError
from mdtheory.theory import numeric as num
from mdtheory.theory.exact import (ParityEnumeration, decode, encode, mc_regime_probability,
                                   mc_squared_decomposition, random_embedding_function,
                                   squared_loss_constant)

CASES = [  # (n, k, t0, t1)
    (4, 2, 0.3, None),     # the digest's check
    (5, 3, 0.0, 0.2),
    (6, 1, 0.1, 0.5),
    (3, 3, 0.45, 0.55),
]


@pytest.fixture(scope="module")
def enumerations():
    return {case: ParityEnumeration(case[0], case[1], case[2], case[3]) for case in CASES}


def test_encode_decode_roundtrip():
    rng = np.random.default_rng(0)
    x = rng.integers(-1, 2, size=(50, 7)).astype(np.int8)
    assert np.array_equal(decode(encode(x), 7), x)


@pytest.mark.parametrize("case", CASES)
def test_regime_probability_matches_closed_form(enumerations, case):
    n, k, t0, t1 = case
    reg = enumerations[case].regime_probabilities()
    t1 = t0 if t1 is None else t1
    assert reg["total"] == pytest.approx(1.0, abs=1e-12)
    assert reg["P_S"] == pytest.approx(num.p_signal(k, t0, t1), abs=1e-12)
    assert reg["P_N"] == pytest.approx(num.p_noise(k, t0, t1), abs=1e-12)


def test_digest_point_value_n4_k2():
    e = ParityEnumeration(4, 2, 0.3)
    assert e.regime_probabilities()["P_S"] == pytest.approx(0.441, abs=1e-12)


def test_largest_enumeration_n11():
    e = ParityEnumeration(11, 4, 0.1, 0.3, secret=(1, 4, 7, 9))
    assert e.regime_probabilities()["P_S"] == pytest.approx(num.p_signal(4, 0.1, 0.3), abs=1e-12)
    f = np.tanh(np.random.default_rng(1).normal(size=e.num_codes))
    d = e.squared_decomposition(f)
    assert d["constant"] == pytest.approx(d["constant_theory"], rel=1e-10)
    assert d["constant"] == pytest.approx(squared_loss_constant(11, 4, 0.1, 0.3), rel=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_theorem_4_3_squared_constant_is_independent_of_f(enumerations, case):
    e = enumerations[case]
    rng = np.random.default_rng(42)
    consts = []
    for trial in range(4):
        f = rng.normal(scale=2.0, size=e.num_codes)
        d = e.squared_decomposition(f)
        consts.append(d["constant"])
        assert d["signal"] > 0 and d["noise"] > 0
    assert np.ptp(consts) < 1e-10
    assert consts[0] == pytest.approx(d["constant_theory"], rel=1e-10)
    n, k, t0, t1 = case
    assert consts[0] == pytest.approx(squared_loss_constant(n, k, t0, t1), rel=1e-10)
    # the Bayes-optimal f* (on signal inputs; 0 elsewhere) reaches the constant
    stats = e.corrupted_statistics()
    best = np.zeros(e.num_codes)
    best[encode(stats.inputs)] = stats.target
    assert e.squared_loss(best) == pytest.approx(consts[0], rel=1e-10)


def test_decomposition_detects_a_wrong_target():
    # negative control: with f* = x'_i (not x'_i/|M|) the remainder depends on f
    e = ParityEnumeration(4, 2, 0.3)
    stats = e.corrupted_statistics()
    codes = encode(stats.inputs)
    rng = np.random.default_rng(0)

    def remainder(f, target):
        return e.squared_loss(f) - float(np.sum(stats.weight * (f[codes] - target) ** 2))

    fs = [rng.normal(size=e.num_codes) for _ in range(2)]
    right = [remainder(f, stats.target) for f in fs]
    wrong = [remainder(f, np.sign(stats.target)) for f in fs]
    assert abs(right[0] - right[1]) < 1e-10
    assert abs(wrong[0] - wrong[1]) > 1e-3


@pytest.mark.parametrize("case", CASES[:3])
def test_per_position_version(enumerations, case):
    e = enumerations[case]
    rng = np.random.default_rng(3)
    consts = [e.squared_decomposition(rng.normal(size=(e.length, e.num_codes)))["constant"]
              for _ in range(3)]
    assert np.ptp(consts) < 1e-10
    assert consts[0] == pytest.approx(
        e.squared_decomposition(np.zeros((e.length, e.num_codes)))["constant_theory"], rel=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_cross_entropy_version(enumerations, case):
    e = enumerations[case]
    rng = np.random.default_rng(7)
    consts = []
    for _ in range(3):
        f = rng.uniform(0.02, 0.98, size=e.num_codes)
        d = e.cross_entropy_decomposition(f)
        consts.append(d["constant"])
        assert d["signal"] >= 0 and d["noise"] >= 0
    assert np.ptp(consts) < 1e-10
    assert consts[0] == pytest.approx(d["constant_theory"], rel=1e-10)
    with pytest.raises(UserError):
        e.cross_entropy_decomposition(np.zeros(e.num_codes))


@pytest.mark.parametrize("case", CASES)
def test_bayes_risk_by_enumeration(enumerations, case):
    n, k, t0, t1 = case
    e = enumerations[case]
    t1 = t0 if t1 is None else t1
    for pos in range(n + 1):
        secret = pos in e.secret_ext
        assert e.bayes_risk(pos) == pytest.approx(num.bayes_risk_window(k, t0, t1, secret), abs=1e-12)


def test_enumeration_rejects_bad_input():
    for bad in [lambda: ParityEnumeration(3, 4, 0.2), lambda: ParityEnumeration(20, 2, 0.2),
                lambda: ParityEnumeration(4, 2, 0.5, 0.2), lambda: ParityEnumeration(4, 2, 0.2, secret=(0, 0))]:
        with pytest.raises(UserError):
            bad()


# -- Monte Carlo ---------------------------------------------------------------

@pytest.mark.parametrize("n,k,t0,t1,seed", [(20, 6, 0.0, 0.2, 0), (20, 6, 0.45, 0.55, 1),
                                            (40, 3, 0.0, 1.0, 2), (30, 10, 0.1, 0.1, 3)])
def test_mc_regime_probability_within_4_sigma(n, k, t0, t1, seed):
    res = mc_regime_probability(n, k, t0, t1, num_samples=100_000, seed=seed)
    assert abs(res["P_S"] - num.p_signal(k, t0, t1)) < 4 * res["se"]


@pytest.mark.parametrize("n,k,t0,t1,seed", [(20, 6, 0.1, 0.3, 0), (16, 3, 0.45, 0.55, 1)])
def test_mc_decomposition_constant_within_4_sigma(n, k, t0, t1, seed):
    f = random_embedding_function(n + 1, seed=seed)
    res = mc_squared_decomposition(n, k, f, t0, t1, num_samples=100_000, seed=seed)
    mean, se = res["constant"]
    assert abs(mean - squared_loss_constant(n, k, t0, t1)) < 4 * se
    # loss = signal + noise + constant holds per sample by construction, so
    # also test the loss against an independent estimate from the statistics
    assert res["loss"][0] == pytest.approx(res["signal"][0] + res["noise"][0] + mean)


def test_mc_agrees_with_enumeration_for_small_n():
    n, k, t0, t1 = 6, 2, 0.2, 0.4
    e = ParityEnumeration(n, k, t0, t1)
    f = random_embedding_function(n + 1, seed=5)
    all_inputs = decode(np.arange(e.num_codes), n + 1)
    exact = e.squared_decomposition(f(all_inputs))
    mc = mc_squared_decomposition(n, k, f, t0, t1, num_samples=100_000, seed=9)
    for name in ("loss", "signal", "noise"):
        mean, se = mc[name]
        assert abs(mean - exact[name]) < 4 * se, name
