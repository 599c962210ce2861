"""Readable text report of the theory for chosen k, window, n and delta."""
from __future__ import annotations

import math

from ..theory import numeric as num
from ..theory.dependencies import PAPER_WIKITEXT_WEIGHTS, optimal_rates

CITATION = "Huang & Mirzasoleiman, arXiv:2601.22450"
# sympy's closed-form check of the degree-k polynomials grows with k (0.3 s at
# k = 30, 21 s at k = 200); above this k the report says it was not run.
SYMPY_CHECK_MAX_K = 30


def _k_section(k: int, window, n, delta) -> list[str]:
    t_sig = float(num.signal_optimal_t(k))
    best = float(num.best_t1_given_t0_zero(k))
    root = float(num.sample_complexity_optimal_t1(k))
    lines = [
        f"k = {k}  (S' = S + label has {k + 1} elements)",
        f"  full range U[0,1]     P_S = 1/(k+2)                     = {num.p_signal(k, 0, 1):.6f}",
        f"  signal-optimal rate   t* = 1/(k+1)                      = {t_sig:.6f}",
        f"                        P_S(t*) = (k/(k+1))^k             = {num.p_signal_at(t_sig, k):.6f}"
        f"   (-> 1/e = {1 / math.e:.6f})",
        f"  best window [0, t1]   t1 = argmax P_S(0, t1)            = {best:.6f}"
        f"   (P_S = {num.p_signal(k, 0, best):.6f})",
        f"  bound-optimal window  [0, t1*], (2k+1)(1-t)^(k+1) - (2k+2)(1-t)^k + 1 = 0"
        f"  ->  t1* = {root:.6f}",
    ]
    if k == 1:
        lines.append("                        (k = 1: any window with E[t] = 1/3 is optimal)")
    if window is not None:
        t0, t1 = window
        lines += [
            f"  window U[{t0:g}, {t1:g}]      E[t] = {num.expected_t(t0, t1):.6f}"
            f"   E[(1-t)^k] = {num.expected_one_minus_t_pow(k, t0, t1):.6f}",
            f"                        P_S = (k+1) E[t(1-t)^k] = {num.p_signal(k, t0, t1):.6f}"
            f"   P_N = {num.p_noise(k, t0, t1):.6f}",
            f"                        Bayes risk of a masked bit: secret "
            f"{num.bayes_risk_window(k, t0, t1, True):.4f} nats, noise {math.log(2):.4f} nats",
        ]
    if n is not None:
        t0, t1 = window if window is not None else (0.0, 1.0)
        lines.append(
            f"  identifiability       N >= 4 log(4n/delta) / (E[t] E[(1-t)^k]^2)"
            f" = {num.sample_complexity_bound(n, k, delta, t0, t1):.1f}"
            f"   (n = {n}, delta = {delta:g}, U[{t0:g}, {t1:g}];"
            f" best window [0, {root:.4f}]: {num.sample_complexity_bound(n, k, delta, 0, root):.1f})")
    return lines


def text_report(ks, window=None, n=None, delta=0.05) -> str:
    from ..theory.symbolic import solvability_report  # sympy loads slowly; only here

    lines = [f"Masked diffusion on k-parity: signal/noise theory ({CITATION})",
             "P_S(t) = (k+1) t (1-t)^k: probability that exactly one element of S' is masked.",
             ""]
    for k in ks:
        lines += _k_section(k, window, n, delta) + [""]
    rates = optimal_rates(PAPER_WIKITEXT_WEIGHTS)
    lines += [
        "dependency mixture, paper's WikiText weights "
        + ", ".join(f"w{i}={w:g}" for i, w in PAPER_WIKITEXT_WEIGHTS.items()),
        f"  argmax_t sum_i w_i t(1-t)^(i-1)        = {rates['argmax']:.4f}",
        f"  argmax_t sum_i w_i (t(1-t)^(i-1))^2    = {rates['argmax_squared_terms']:.4f}",
        "",
    ]
    if ks[-1] <= SYMPY_CHECK_MAX_K:
        lines.append(f"how sympy obtains each closed form (k = {ks[-1]}):")
        for name, how in solvability_report(ks[-1]).items():
            lines.append(f"  {name:32s} {how}")
    else:
        lines.append(f"how sympy obtains each closed form: checked for k <= {SYMPY_CHECK_MAX_K} only "
                     f"(k = {ks[-1]} would take minutes); the optimal t1 above are numeric roots")
    return "\n".join(lines) + "\n"
