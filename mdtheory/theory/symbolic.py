"""Exact (sympy) expressions for the k-parity masked-diffusion theory.

The same quantities as ``numeric.py`` (Huang & Mirzasoleiman,
arXiv:2601.22450, sections 3-6), kept as sympy expressions so they can be
printed, differentiated and checked for symbolic k and a symbolic window
[t0, t1], or for numbers (then results are exact rationals where possible).

Which closed forms sympy finds (see ``solvability_report``):

* exact for symbolic k: E[t], E[(1-t)^k], P_S of any window (via sympy's own
  integration, checked equal to the hand-written antiderivative), the full
  range 1/(k+2), the point-mass limit t1 -> t0, the argmax 1/(k+1), the limit
  (k/(k+1))^k -> 1/e, the k = 1 condition E[t] = 1/3 of Corollary 4.7.
* exact in radicals only for small k, numeric (a CRootOf isolated by sympy,
  evaluated to any precision) otherwise: the sample-complexity-optimal t1
  (a degree-k polynomial once the trivial root t = 0 is divided out:
  radicals for k <= 4), and the best t1 given t0 = 0 (degree k after
  removing the double root t1 = 0).
* numeric only: the best window of a given width (a transcendental equation
  in general) and the argmax of the dependency-mixture signal (sympy's
  nroots/nsolve on the derivative polynomial).
"""
from __future__ import annotations

from typing import Mapping

import sympy as sp

t, t0, t1, u = sp.symbols("t t_0 t_1 u", real=True)
k = sp.Symbol("k", integer=True, positive=True)
n, delta = sp.symbols("n delta", positive=True)


def _sym(x):
    """Numbers become exact sympy numbers (0.2 -> 1/5), symbols pass through."""
    if isinstance(x, sp.Basic):
        return x
    if isinstance(x, float):
        return sp.nsimplify(x, rational=True)
    return sp.sympify(x)


def _is_point(a, b) -> bool:
    return bool(sp.simplify(a - b) == 0)


def window_mean(expr: sp.Expr, a=t0, b=t1) -> sp.Expr:
    """E[expr(t)] for t ~ U[a, b]; the point value when a == b."""
    a, b = _sym(a), _sym(b)
    if _is_point(a, b):
        return expr.subs(t, a)
    return sp.integrate(expr, (t, a, b)) / (b - a)


# -- point values ------------------------------------------------------------

def p_signal_at(tt=t, kk=k) -> sp.Expr:
    """P_S(t) = (k+1) t (1-t)^k."""
    tt, kk = _sym(tt), _sym(kk)
    return (kk + 1) * tt * (1 - tt) ** kk


# -- window averages ---------------------------------------------------------

def expected_t(a=t0, b=t1) -> sp.Expr:
    return sp.simplify(window_mean(t, a, b))


def expected_one_minus_t_pow(kk=k, a=t0, b=t1) -> sp.Expr:
    """E[(1-t)^k] = ((1-t0)^{k+1} - (1-t1)^{k+1}) / ((k+1)(t1-t0))."""
    kk, a, b = _sym(kk), _sym(a), _sym(b)
    if _is_point(a, b):
        return (1 - a) ** kk
    return ((1 - a) ** (kk + 1) - (1 - b) ** (kk + 1)) / ((kk + 1) * (b - a))


def signal_antiderivative(tt=t, kk=k) -> sp.Expr:
    """F(t) = (1-t)^{k+2}/(k+2) - (1-t)^{k+1}/(k+1), with F'(t) = t (1-t)^k."""
    tt, kk = _sym(tt), _sym(kk)
    return (1 - tt) ** (kk + 2) / (kk + 2) - (1 - tt) ** (kk + 1) / (kk + 1)


def p_signal(kk=k, a=t0, b=t1) -> sp.Expr:
    """P_S = (k+1) E[t (1-t)^k] = (k+1) (F(t1) - F(t0)) / (t1 - t0)."""
    kk, a, b = _sym(kk), _sym(a), _sym(b)
    if _is_point(a, b):
        return p_signal_at(a, kk)
    expr = (kk + 1) * (signal_antiderivative(b, kk) - signal_antiderivative(a, kk)) / (b - a)
    return sp.simplify(expr) if expr.is_number else expr


def p_signal_by_integration(kk=k, a=t0, b=t1) -> sp.Expr:
    """P_S computed by sympy's own integrator (an independent check)."""
    return (_sym(kk) + 1) * window_mean(t * (1 - t) ** _sym(kk), a, b)


def p_noise(kk=k, a=t0, b=t1) -> sp.Expr:
    return 1 - p_signal(kk, a, b)


def p_signal_full_range(kk=k) -> sp.Expr:
    """P_S for t ~ U[0, 1]: 1/(k+2)."""
    return sp.simplify(p_signal(kk, 0, 1))


def point_limit(kk=k) -> sp.Expr:
    """lim_{t1 -> t0} P_S(t0, t1) - P_S(t0): zero, so the point window is the limit."""
    return sp.simplify(sp.limit(p_signal(kk, t0, t1), t1, t0) - p_signal_at(t0, kk))


def sample_complexity_bound(nn=n, kk=k, dd=delta, a=t0, b=t1) -> sp.Expr:
    """N >= 4 log(4n/delta) / (E[t] E[(1-t)^k]^2)."""
    nn, dd = _sym(nn), _sym(dd)
    return 4 * sp.log(4 * nn / dd) / (expected_t(a, b) * expected_one_minus_t_pow(kk, a, b) ** 2)


# -- optimal rates -------------------------------------------------------------

def signal_optimal_t(kk=k) -> sp.Expr:
    """Solve d/dt [t (1-t)^k] = 0: t = 1/(k+1)."""
    roots = sp.solve(sp.diff(t * (1 - t) ** _sym(kk), t), t)
    inside = [r for r in roots if not (r.is_number and (r <= 0 or r >= 1))]
    return sp.simplify(inside[0])


def p_signal_at_signal_optimal_t(kk=k) -> sp.Expr:
    return sp.simplify(p_signal_at(signal_optimal_t(kk), kk))


def signal_optimal_limit() -> sp.Expr:
    """lim_{k -> oo} P_S(1/(k+1)) = 1/e."""
    return sp.limit(p_signal_at_signal_optimal_t(k), k, sp.oo)


def sample_complexity_polynomial(kk=k, var=t) -> sp.Expr:
    """(2k+1)(1-t)^{k+1} - (2k+2)(1-t)^k + 1 (Corollary 4.7)."""
    kk = _sym(kk)
    return (2 * kk + 1) * (1 - var) ** (kk + 1) - (2 * kk + 2) * (1 - var) ** kk + 1


def k1_condition() -> sp.Eq:
    """k = 1: the bound depends on the window only through E[t]; the optimum is E[t] = 1/3."""
    m = sp.Symbol("m", positive=True)  # m = E[t]; E[1-t] = 1 - m
    crit = sp.solve(sp.diff(m * (1 - m) ** 2, m), m)
    best = [c for c in crit if 0 < c < 1]
    return sp.Eq(expected_t(t0, t1), best[0])


def _root_in_unit_interval(poly_expr: sp.Expr, var: sp.Symbol, exclude_zero: bool = True):
    """The root of a polynomial in (0, 1): (value, exact?). Uses sympy's real
    root isolation; a root is 'exact' when it is given in radicals."""
    poly = sp.Poly(sp.expand(poly_expr), var)
    while exclude_zero and poly.eval(0) == 0:
        poly = sp.Poly(sp.cancel(poly.as_expr() / var), var)
    # radicals first (sympy.roots solves degree <= 4 and special forms); a
    # cubic's real root may be written with complex radicals, so test values
    if poly.degree() <= 4:
        radical = []
        for r in sp.roots(poly):
            val = sp.N(r, 40)
            if abs(sp.im(val)) < 1e-30 and 0 < sp.re(val) < 1:
                radical.append(r)
        if len(radical) == 1:
            return radical[0], True
    candidates = [r for r in sp.real_roots(poly) if 0 < r.evalf(30) < 1]
    if len(candidates) != 1:
        raise ValueError(f"expected one root in (0,1), found {len(candidates)}")
    root = candidates[0]
    return root, not root.has(sp.CRootOf)


def sample_complexity_optimal_t1(kk: int):
    """t1* of Corollary 4.7 for a numeric k: (exact-or-CRootOf, is_radical)."""
    return _root_in_unit_interval(sample_complexity_polynomial(int(kk)), t)


def best_t1_given_t0_zero(kk: int):
    """argmax_t1 P_S(0, t1): root of t1 * P_S(t1) = integral_0^t1 P_S, i.e. the
    point value equals the window mean. Returns (root, is_radical)."""
    kk = int(kk)
    stationarity = t * p_signal_at(t, kk) - (kk + 1) * (signal_antiderivative(t, kk)
                                                          - signal_antiderivative(0, kk))
    return _root_in_unit_interval(stationarity, t)


def best_window_of_width(kk: int, width) -> tuple[sp.Expr, sp.Expr]:
    """Window of a given width maximising P_S: root of p(t0) = p(t0 + w), by nsolve."""
    kk, w = int(kk), _sym(width)
    if w == 0:
        s = sp.Rational(1, kk + 1)
        return s, s
    eq = p_signal_at(t + w, kk) - p_signal_at(t, kk)
    guess = max(0.0, min(float(1 - w), 1.0 / (kk + 1) - float(w) / 2))
    a = sp.nsolve(eq, t, guess, prec=30)
    return a, a + w


# -- Bayes risk ---------------------------------------------------------------

def bayes_risk_bit(tt=t, kk=k, secret: bool = True) -> sp.Expr:
    if not secret:
        return sp.log(2)
    return (1 - (1 - _sym(tt)) ** _sym(kk)) * sp.log(2)


def bayes_risk_window(kk=k, a=t0, b=t1, secret: bool = True) -> sp.Expr:
    if not secret:
        return sp.log(2)
    return (1 - expected_one_minus_t_pow(kk, a, b)) * sp.log(2)


# -- dependency mixture ---------------------------------------------------------

def mixture_signal(weights: Mapping[int, float], squared: bool = False, var=t) -> sp.Expr:
    terms = []
    for i, w in weights.items():
        term = var * (1 - var) ** (int(i) - 1)
        terms.append(_sym(w) * (term ** 2 if squared else term))
    return sp.Add(*terms)


def mixture_argmax(weights: Mapping[int, float], squared: bool = False) -> sp.Float:
    """argmax on (0,1): the real roots of the derivative polynomial (numeric)."""
    s = mixture_signal(weights, squared)
    crit = [r for r in sp.Poly(sp.expand(sp.diff(s, t)), t).nroots(n=30, maxsteps=200)
            if r.is_real and 0 < r < 1]
    return max(crit, key=lambda r: s.subs(t, r))


# -- report -----------------------------------------------------------------------

def solvability_report(kk: int) -> dict[str, str]:
    """For each derived quantity at this k: how sympy obtains it."""
    kk = int(kk)
    _, sc_exact = sample_complexity_optimal_t1(kk)
    _, bt_exact = best_t1_given_t0_zero(kk)
    return {
        "E[t], E[(1-t)^k], P_S(t0,t1)": "exact (symbolic k and window)",
        "P_S full range = 1/(k+2)": "exact (symbolic k)",
        "signal-optimal t = 1/(k+1)": "exact (sympy.solve, symbolic k)",
        "P_S(1/(k+1)) -> 1/e": "exact (sympy.limit)",
        "k = 1 condition E[t] = 1/3": "exact",
        "sample-complexity-optimal t1": "exact (radicals)" if sc_exact else "numeric (CRootOf, degree-%d polynomial)" % kk,
        "best t1 given t0 = 0": "exact (radicals)" if bt_exact else "numeric (CRootOf, degree-%d polynomial)" % kk,
        "best window of a given width": "numeric (nsolve)",
        "dependency-mixture argmax": "numeric (nroots of the derivative)",
    }


def key_formulas() -> dict[str, sp.Expr]:
    """Formulas in symbolic k and window, for printing and LaTeX."""
    return {
        "P_S(t)": p_signal_at(t, k),
        "E[t]": expected_t(t0, t1),
        "E[(1-t)^k]": expected_one_minus_t_pow(k, t0, t1),
        "P_S(t0,t1)": p_signal(k, t0, t1),
        "P_S(0,1)": p_signal_full_range(k),
        "N_bound": sample_complexity_bound(n, k, delta, t0, t1),
        "t_signal": signal_optimal_t(k),
        "P_S(t_signal)": p_signal_at_signal_optimal_t(k),
        "Cor47_polynomial": sample_complexity_polynomial(k, t),
        "bayes_risk_secret": bayes_risk_bit(t, k, True),
    }
