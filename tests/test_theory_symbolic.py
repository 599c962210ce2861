"""sympy closed forms: self-consistency, equality with the numeric twins, paper values."""
import math

import pytest
import sympy as sp

from mdtheory.theory import numeric as num
from mdtheory.theory import symbolic as sym


def as_float(expr) -> float:
    return float(sp.re(sp.N(expr, 30)))


def test_symbolic_k_identities():
    k, t0, t1 = sym.k, sym.t0, sym.t1
    # hand-written antiderivative == sympy's own integration, for symbolic k and window
    assert sp.simplify(sym.p_signal_by_integration() - sym.p_signal()) == 0
    assert sp.simplify(sp.diff(sym.signal_antiderivative(), sym.t) - sym.t * (1 - sym.t) ** k) == 0
    assert sym.p_signal_full_range() == 1 / (k + 2)
    assert sym.point_limit() == 0
    assert sp.simplify(sym.signal_optimal_t() - 1 / (k + 1)) == 0
    assert sym.signal_optimal_limit() == sp.exp(-1)
    assert sym.k1_condition() == sp.Eq((t0 + t1) / 2, sp.Rational(1, 3))
    # E[(1-t)^k] by integration
    direct = sp.integrate((1 - sym.t) ** k, (sym.t, t0, t1)) / (t1 - t0)
    assert sp.simplify(direct - sym.expected_one_minus_t_pow()) == 0


def test_exact_rational_values():
    assert sym.p_signal(6, 0, 1) == sp.Rational(1, 8)
    assert sym.p_signal(6, sp.Rational(3, 10), sp.Rational(3, 10)) == sym.p_signal_at(sp.Rational(3, 10), 6)
    assert sym.p_signal(6, 0, 0.2) == sym.p_signal_by_integration(6, 0, sp.Rational(1, 5))
    assert sym.p_signal(2, 0.3, 0.3) == sp.Rational(441, 1000)


@pytest.mark.parametrize("k", [1, 2, 5, 6, 11])
@pytest.mark.parametrize("t0,t1", [(0, 1), (0, 0.2), (0.1, 0.3), (0.45, 0.55), (0.25, 0.25)])
def test_numeric_twins_equal_symbolic(k, t0, t1):
    assert num.p_signal(k, t0, t1) == pytest.approx(as_float(sym.p_signal(k, t0, t1)), rel=1e-10, abs=1e-15)
    assert num.expected_one_minus_t_pow(k, t0, t1) == pytest.approx(
        as_float(sym.expected_one_minus_t_pow(k, t0, t1)), rel=1e-10)
    assert num.expected_t(t0, t1) == pytest.approx(as_float(sym.expected_t(t0, t1)))
    if t1 > 0:
        assert num.sample_complexity_bound(20, k, 0.05, t0, t1) == pytest.approx(
            as_float(sym.sample_complexity_bound(20, k, 0.05, t0, t1)), rel=1e-10)
    assert num.bayes_risk_window(k, t0, t1, True) == pytest.approx(
        as_float(sym.bayes_risk_window(k, t0, t1, True)), rel=1e-10, abs=1e-15)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 10])
def test_roots_agree_and_radicals_only_for_small_k(k):
    root, radical = sym.sample_complexity_optimal_t1(k)
    assert as_float(root) == pytest.approx(num.sample_complexity_optimal_t1(k), abs=1e-12)
    assert radical == (k <= 4)
    best, radical = sym.best_t1_given_t0_zero(k)
    assert as_float(best) == pytest.approx(num.best_t1_given_t0_zero(k), abs=1e-12)
    assert radical == (k <= 4)


def test_small_k_exact_roots():
    assert sym.sample_complexity_optimal_t1(1)[0] == sp.Rational(2, 3)
    assert sym.best_t1_given_t0_zero(1)[0] == sp.Rational(3, 4)
    # k = 2: 1 - t1 = (1 + sqrt(21)) / 10
    root, _ = sym.sample_complexity_optimal_t1(2)
    assert sp.simplify(root - (1 - (1 + sp.sqrt(21)) / 10)) == 0


def test_paper_values_symbolic():
    assert as_float(sym.best_t1_given_t0_zero(6)[0]) == pytest.approx(0.2459, abs=1e-4)
    assert as_float(sym.sample_complexity_optimal_t1(6)[0]) == pytest.approx(0.1844, abs=1e-4)
    w = num.PAPER_WIKITEXT_WEIGHTS
    assert as_float(sym.mixture_argmax(w)) == pytest.approx(num.mixture_argmax(w), abs=1e-8)
    assert as_float(sym.mixture_argmax(w, squared=True)) == pytest.approx(0.481, abs=5e-4)
    a, b = sym.best_window_of_width(6, 0.2)
    assert (as_float(a), as_float(b)) == pytest.approx(num.best_window_of_width(6, 0.2), abs=1e-10)


def test_solvability_report_and_formulas():
    report = sym.solvability_report(6)
    assert report["sample-complexity-optimal t1"].startswith("numeric")
    assert sym.solvability_report(3)["best t1 given t0 = 0"].startswith("exact")
    formulas = sym.key_formulas()
    # every formula evaluates to the numeric twin at a sample point
    vals = {sym.k: 6, sym.t0: sp.Rational(1, 10), sym.t1: sp.Rational(3, 10), sym.n: 20,
            sym.delta: sp.Rational(1, 20), sym.t: sp.Rational(1, 5)}
    assert float(formulas["P_S(t0,t1)"].subs(vals)) == pytest.approx(num.p_signal(6, 0.1, 0.3))
    assert float(formulas["N_bound"].subs(vals)) == pytest.approx(
        num.sample_complexity_bound(20, 6, 0.05, 0.1, 0.3))
    assert float(formulas["P_S(t)"].subs(vals)) == pytest.approx(float(num.p_signal_at(0.2, 6)))
    assert math.isclose(float(formulas["P_S(0,1)"].subs(vals)), 1 / 8)
