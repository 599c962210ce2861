"""Numeric closed forms against independent integration and the paper's numbers."""
import math

import numpy as np
import pytest
from scipy import integrate

from mdtheory.errors import UserError
from mdtheory.theory import numeric as num
from mdtheory.theory.dependencies import optimal_rates

WINDOWS = [(0.0, 1.0), (0.0, 0.2), (0.1, 0.3), (0.45, 0.55), (0.3, 0.3 + 1e-7), (0.9, 1.0)]


def quad_mean(fn, t0, t1):
    val, _ = integrate.quad(fn, t0, t1, epsabs=1e-14, epsrel=1e-13)
    return val / (t1 - t0)


@pytest.mark.parametrize("k", [1, 2, 6, 13])
@pytest.mark.parametrize("t0,t1", WINDOWS)
def test_window_averages_match_quadrature(k, t0, t1):
    assert num.expected_t(t0, t1) == pytest.approx(quad_mean(lambda t: t, t0, t1), rel=1e-9)
    assert num.expected_one_minus_t_pow(k, t0, t1) == pytest.approx(
        quad_mean(lambda t: (1 - t) ** k, t0, t1), rel=1e-9)
    ps = quad_mean(lambda t: (k + 1) * t * (1 - t) ** k, t0, t1)
    assert num.p_signal(k, t0, t1) == pytest.approx(ps, rel=1e-8, abs=1e-14)
    assert num.p_noise(k, t0, t1) == pytest.approx(1 - ps, rel=1e-8)


@pytest.mark.parametrize("k", [1, 3, 6, 20])
def test_point_window_is_point_value_and_limit(k):
    for t in (0.0, 0.1, 1 / (k + 1), 0.7, 1.0):
        assert num.p_signal(k, t, t) == pytest.approx(num.p_signal_at(t, k), abs=1e-15)
        assert num.expected_one_minus_t_pow(k, t, t) == pytest.approx((1 - t) ** k, abs=1e-15)
    # continuity: a narrow window tends to the point value
    assert num.p_signal(k, 0.2, 0.2 + 1e-6) == pytest.approx(num.p_signal_at(0.2, k), rel=1e-5)


def test_full_range_is_one_over_k_plus_2():
    ks = np.arange(1, 30)
    assert np.allclose(num.p_signal(ks, 0.0, 1.0), 1 / (ks + 2), rtol=1e-12)


def test_vectorised_over_k_and_window():
    got = num.p_signal(np.array([2, 6]), np.array([0.0, 0.1]), 0.5)
    assert got.shape == (2,)
    assert got[1] == pytest.approx(num.p_signal(6, 0.1, 0.5))
    t = np.linspace(0, 1, 11)
    assert num.p_signal_at(t, 6).shape == (11,)


def test_digest_window_values_k6():
    expected = {(0, 1): 0.125, (0, 0.1): 0.234, (0, 0.2): 0.310, (0, 0.3): 0.310, (0, 0.4): 0.279}
    for (t0, t1), value in expected.items():
        assert num.p_signal(6, t0, t1) == pytest.approx(value, abs=6e-4)


def test_paper_optimal_rates():
    assert num.best_t1_given_t0_zero(6) == pytest.approx(0.2459, abs=1e-4)
    assert num.p_signal(6, 0, num.best_t1_given_t0_zero(6)) == pytest.approx(0.3165, abs=1e-4)
    assert num.sample_complexity_optimal_t1(6) == pytest.approx(0.1844, abs=1e-4)
    for k in range(1, 12):
        assert num.signal_optimal_t(k) == pytest.approx(1 / (k + 1))
    assert num.sample_complexity_optimal_t1(1) == pytest.approx(2 / 3)


def test_signal_optimal_t_is_argmax_and_limit_1_over_e():
    t = np.linspace(0, 1, 200001)
    for k in (1, 4, 9):
        assert t[np.argmax(num.p_signal_at(t, k))] == pytest.approx(1 / (k + 1), abs=1e-5)
    vals = num.p_signal_at_signal_optimal_t(np.array([10, 100, 10_000, 1_000_000]))
    assert np.all(np.diff(vals) < 0)
    assert vals[-1] == pytest.approx(1 / math.e, abs=1e-6)


@pytest.mark.parametrize("k", [2, 4, 6, 10])
def test_best_t1_by_brute_force(k):
    grid = np.linspace(1e-4, 1, 20001)
    ps = num.p_signal(np.full_like(grid, k, dtype=int), 0.0, grid)
    assert grid[np.argmax(ps)] == pytest.approx(num.best_t1_given_t0_zero(k), abs=1e-4)


@pytest.mark.parametrize("k", [2, 3, 6, 10])
def test_corollary_4_7_root_matches_direct_minimisation(k):
    root = num.sample_complexity_optimal_t1(k)
    assert num.sample_complexity_polynomial(root, k) == pytest.approx(0, abs=1e-10)
    t0, t1, bound = num.minimise_bound_over_windows(k)
    assert t0 == pytest.approx(0, abs=1e-4)
    assert t1 == pytest.approx(root, abs=1e-4)
    assert bound == pytest.approx(num.sample_complexity_bound(20, k, 0.05, 0, root), rel=1e-6)


def test_k1_bound_depends_only_on_mean():
    # k = 1: every window with E[t] = 1/3 attains the optimum
    b = [num.sample_complexity_bound(20, 1, 0.05, a, 2 / 3 - a) for a in (0, 0.1, 0.3333)]
    assert np.allclose(b, b[0])
    _, _, best = num.minimise_bound_over_windows(1)
    assert best == pytest.approx(b[0], rel=1e-6)


def test_sample_complexity_bound_formula():
    n, k, d, t0, t1 = 20, 6, 0.05, 0.0, 0.2
    rho = quad_mean(lambda t: (1 - t) ** k, t0, t1)
    assert num.sample_complexity_bound(n, k, d, t0, t1) == pytest.approx(
        4 * math.log(4 * n / d) / (0.1 * rho ** 2), rel=1e-10)
    assert math.isinf(num.sample_complexity_bound(n, k, d, 0, 0))


@pytest.mark.parametrize("k,width", [(6, 0.1), (6, 0.2), (2, 0.5), (10, 0.05)])
def test_best_window_of_width(k, width):
    a, b = num.best_window_of_width(k, width)
    assert b - a == pytest.approx(width)
    starts = np.linspace(0, 1 - width, 4001)
    ps = [num.p_signal(k, s, s + width) for s in starts]
    assert starts[int(np.argmax(ps))] == pytest.approx(a, abs=1e-3)
    assert num.best_window_of_width(k, 0) == pytest.approx((1 / (k + 1), 1 / (k + 1)))


def test_bayes_risk():
    assert num.bayes_risk_bit(0.3, 6, False) == pytest.approx(math.log(2))
    assert num.bayes_risk_bit(0.3, 6, True) == pytest.approx((1 - 0.7 ** 6) * math.log(2))
    avg = quad_mean(lambda t: num.bayes_risk_bit(t, 6, True), 0.0, 0.2)
    assert num.bayes_risk_window(6, 0.0, 0.2, True) == pytest.approx(avg, rel=1e-10)


def test_mixture_argmax_paper_values():
    w = num.PAPER_WIKITEXT_WEIGHTS
    assert num.mixture_argmax(w) == pytest.approx(0.463, abs=5e-4)
    assert num.mixture_argmax(w, squared=True) == pytest.approx(0.481, abs=5e-4)
    rates = optimal_rates(w)
    # squaring the whole sum leaves the argmax where it was
    assert rates["argmax_squared_sum"] == pytest.approx(rates["argmax"], abs=1e-6)
    # a single order i peaks at 1/i; a sequence means orders 2, 3, ...
    assert num.mixture_argmax({4: 1.0}) == pytest.approx(0.25, abs=1e-6)
    assert num.mixture_signal(0.3, [0.5, 0.5]) == pytest.approx(0.5 * 0.3 * 0.7 + 0.5 * 0.3 * 0.49)


@pytest.mark.parametrize("bad", [
    lambda: num.p_signal(0, 0, 1), lambda: num.p_signal(2.5, 0, 1),
    lambda: num.p_signal(6, 0.3, 0.2), lambda: num.p_signal(6, -0.1, 0.2),
    lambda: num.sample_complexity_bound(20, 6, 1.0, 0, 0.2),
    lambda: num.mixture_argmax({1: 1.0}), lambda: num.mixture_argmax({2: -1.0}),
])
def test_bad_input_raises_user_error(bad):
    with pytest.raises(UserError):
        bad()


@pytest.mark.parametrize("k", [500, 5000, 100_000])
def test_large_k_narrow_windows_stay_accurate(k):
    for t0, t1 in [(0.0, 1e-4), (1e-4, 1.5e-4), (1e-3, 1.9e-3)]:
        q = quad_mean(lambda t: (k + 1) * t * (1 - t) ** k, t0, t1)
        assert num.p_signal(k, t0, t1) == pytest.approx(q, rel=1e-9)
    assert num.p_signal(k, 0, 1) == pytest.approx(1 / (k + 2), rel=1e-9)
    assert 1 / (k + 1) < num.best_t1_given_t0_zero(k) < 3 / (k + 1)
