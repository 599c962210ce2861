"""LaTeX for the paper: ``theory.tex`` (\\newcommand macros holding numbers)
and ``theory_formulas.tex`` (key formulas rendered by sympy.latex).

Macro names are letters only: numbers are spelled out, e.g.
\\PSfullRangeKsix, \\PSwindowZeroToPointTwoKsix, \\NboundWindowZeroToPointTwoKsix.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..cli import atomic_write_text
from ..provenance import provenance
from ..theory import numeric as num
from ..theory.dependencies import PAPER_WIKITEXT_WEIGHTS, optimal_rates

LATEX_KS = (1, 2, 3, 4, 5, 6, 8, 10, 20)
PAPER_K, PAPER_N, PAPER_DELTA = 6, 20, 0.05
PAPER_WINDOWS = ((0.0, 1.0), (0.0, 0.1), (0.0, 0.2), (0.0, 0.3), (0.0, 0.4), (0.45, 0.55))

_DIGITS = ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine"]
_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven",
            8: "eight", 9: "nine", 10: "ten", 11: "eleven", 12: "twelve", 20: "twenty"}


def spell_k(k: int) -> str:
    """6 -> 'six' (lower case, as in \\PSfullRangeKsix)."""
    if k in _NUMBERS:
        return _NUMBERS[k]
    return "".join(_DIGITS[int(d)] for d in str(k)).lower()


def spell_rate(x: float) -> str:
    """0 -> Zero, 1 -> One, 0.2 -> PointTwo, 0.45 -> PointFourFive."""
    text = f"{x:g}"
    if "." not in text:
        return "".join(_DIGITS[int(d)] for d in text)
    whole, frac = text.split(".")
    head = "" if whole == "0" else "".join(_DIGITS[int(d)] for d in whole)
    return head + "Point" + "".join(_DIGITS[int(d)] for d in frac)


def window_name(t0: float, t1: float) -> str:
    return f"{spell_rate(t0)}To{spell_rate(t1)}"


def _macro(name: str, value: str, comment: str = "") -> str:
    assert name.isalpha(), name
    tail = f"  % {comment}" if comment else ""
    return f"\\newcommand{{\\{name}}}{{{value}}}{tail}"


def theory_macros() -> list[str]:
    lines = []
    for k in LATEX_KS:
        K = "K" + spell_k(k)
        t_sig = float(num.signal_optimal_t(k))
        best = float(num.best_t1_given_t0_zero(k))
        root = float(num.sample_complexity_optimal_t1(k))
        lines += [
            f"% k = {k}",
            _macro(f"PSfullRange{K}", f"{num.p_signal(k, 0, 1):.4f}", f"1/(k+2) = 1/{k + 2}"),
            _macro(f"PSfullRangeFrac{K}", f"\\frac{{1}}{{{k + 2}}}"),
            _macro(f"SignalOptimalT{K}", f"{t_sig:.4f}", "1/(k+1)"),
            _macro(f"PSatSignalOptimalT{K}", f"{num.p_signal_at(t_sig, k):.4f}", "(k/(k+1))^k"),
            _macro(f"BestTOneGivenTZero{K}", f"{best:.4f}", "argmax_t1 P_S(0,t1)"),
            _macro(f"PSatBestTOne{K}", f"{num.p_signal(k, 0, best):.4f}"),
            _macro(f"SampleComplexityOptimalTOne{K}", f"{root:.4f}", "Corollary 4.7 root"),
        ]
    K = "K" + spell_k(PAPER_K)
    lines.append(f"% windows for k = {PAPER_K}; bounds for n = {PAPER_N}, delta = {PAPER_DELTA}")
    for t0, t1 in PAPER_WINDOWS:
        w = window_name(t0, t1)
        lines += [
            _macro(f"PSwindow{w}{K}", f"{num.p_signal(PAPER_K, t0, t1):.4f}", f"U[{t0:g},{t1:g}]"),
            _macro(f"PNwindow{w}{K}", f"{num.p_noise(PAPER_K, t0, t1):.4f}"),
            _macro(f"Nbound{w}{K}",
                   f"{math.ceil(num.sample_complexity_bound(PAPER_N, PAPER_K, PAPER_DELTA, t0, t1)):d}"),
        ]
    root = float(num.sample_complexity_optimal_t1(PAPER_K))
    lines.append(_macro(f"NboundOptimal{K}",
                        f"{math.ceil(num.sample_complexity_bound(PAPER_N, PAPER_K, PAPER_DELTA, 0, root)):d}",
                        "at the window [0, t1*]"))
    for width in (0.1, 0.2):
        a, b = num.best_window_of_width(PAPER_K, width)
        w = spell_rate(width)
        lines += [_macro(f"BestWindowWidth{w}Start{K}", f"{a:.4f}"),
                  _macro(f"BestWindowWidth{w}End{K}", f"{b:.4f}"),
                  _macro(f"PSbestWindowWidth{w}{K}", f"{num.p_signal(PAPER_K, a, b):.4f}")]
    rates = optimal_rates(PAPER_WIKITEXT_WEIGHTS)
    lines += [
        "% dependency mixture with the paper's WikiText weights",
        _macro("MixtureArgmaxWikiText", f"{rates['argmax']:.3f}"),
        _macro("MixtureArgmaxSquaredWikiText", f"{rates['argmax_squared_terms']:.3f}"),
        _macro("OneOverE", f"{1 / math.e:.4f}"),
        _macro("PaperN", f"{PAPER_N}"),
        _macro("PaperK", f"{PAPER_K}"),
        _macro("PaperDelta", f"{PAPER_DELTA:g}"),
    ]
    return lines


def formulas_tex() -> str:
    import sympy as sp

    from ..theory import symbolic as sym

    f = sym.key_formulas()
    rows = [
        ("P_S(t)", f["P_S(t)"]),
        (r"\mathbb{E}[t]", f["E[t]"]),
        (r"\mathbb{E}[(1-t)^k]", f["E[(1-t)^k]"]),
        ("P_S(t_0, t_1)", f["P_S(t0,t1)"]),
        ("P_S(0, 1)", f["P_S(0,1)"]),
        (r"N_{\min}", f["N_bound"]),
        (r"t^\star_{\mathrm{signal}}", f["t_signal"]),
        (r"P_S(t^\star_{\mathrm{signal}})", f["P_S(t_signal)"]),
        (r"\lim_{k\to\infty} P_S(t^\star_{\mathrm{signal}})", sym.signal_optimal_limit()),
        (r"R_{\mathrm{secret}}(t)", f["bayes_risk_secret"]),
    ]
    body = [r"% Generated by python -m mdtheory.derive --latex; do not edit.",
            r"\begin{align*}"]
    body += [f"  {lhs} &= {sp.latex(rhs)} \\\\" for lhs, rhs in rows]
    body += [f"  0 &= {sp.latex(f['Cor47_polynomial'])} \\quad (t_1^\\star,\\ k>1)",
             r"\end{align*}"]
    return "\n".join(body) + "\n"


def write_latex(directory: str | Path) -> dict[Path, bool]:
    """Write theory.tex and theory_formulas.tex; {path: whether it changed}
    (a file that already holds the same text is left untouched)."""
    directory = Path(directory)
    prov = provenance()
    header = [
        "% Theory numbers for the paper (Huang & Mirzasoleiman, arXiv:2601.22450 setting).",
        "% Generated by: python -m mdtheory.derive --latex DIR  -- do not edit by hand.",
        "% packages: " + ", ".join(f"{k} {v}" for k, v in prov["packages"].items() if v),
    ]
    macros = theory_macros()
    theory = directory / "theory.tex"
    formulas = directory / "theory_formulas.tex"
    text_formulas = formulas_tex()
    return {theory: atomic_write_text(theory, "\n".join(header + macros) + "\n"),
            formulas: atomic_write_text(formulas, text_formulas)}
