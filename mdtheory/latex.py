"""Writing LaTeX for the paper: macro lines, number formatting, tables.

Theory macros are ``\\newcommand``s with letters-only names (numbers spelled
out: \\PSwindowZeroToPointTwoKsix); result macros are read in the paper as
``\\res{name}``. A missing result prints as "not run", never as a number.
"""
from __future__ import annotations

import math
import numbers

NOT_RUN = r"\textit{not run}"

_DIGITS = ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine"]
_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven",
            8: "eight", 9: "nine", 10: "ten", 11: "eleven", 12: "twelve", 20: "twenty"}


# --- macro names and lines ----------------------------------------------------

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


def newcommand(name: str, value: str, comment: str = "") -> str:
    """``\\newcommand{\\name}{value}`` (one line, no newline)."""
    if not name.isalpha():
        raise ValueError(f"macro name must be letters only: {name!r}")
    tail = f"  % {comment}" if comment else ""
    return f"\\newcommand{{\\{name}}}{{{value}}}{tail}"


def result_macro(name: str, value: str) -> str:
    """A result macro line, read in the paper as ``\\res{name}``."""
    if not name.isalnum():
        raise ValueError(f"macro name must be alphanumeric: {name!r}")
    return f"\\expandafter\\def\\csname res@{name}\\endcsname{{{value}}}\n"


# --- numbers -----------------------------------------------------------------

def fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return NOT_RUN
    if isinstance(x, numbers.Integral):  # numpy integers too
        return fmt_steps(x)
    return f"{float(x):.{digits}f}"


def fmt_steps(x) -> str:
    """A step count with thousands separators: 12{,}000."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return NOT_RUN
    return f"{int(round(float(x))):,}".replace(",", "{,}")


def fmt_p(p: float) -> str:
    """A p-value for math mode: 0.025, or 1.3\\times10^{-5} below 0.001."""
    if p >= 1e-3:
        return f"{p:.2g}"
    mantissa, exponent = f"{p:.1e}".split("e")
    return rf"{mantissa}\times10^{{{int(exponent)}}}"


def fmt_window(t0, t1) -> str:
    return f"$[{float(t0):g},{float(t1):g}]$"


def code(text) -> str:
    """``text`` in typewriter type, its underscores escaped (e.g. a sampler spec)."""
    return r"\texttt{" + str(text).replace("_", r"\_") + "}"


# --- tables --------------------------------------------------------------------

def row(*cells) -> str:
    return " & ".join(str(c) for c in cells) + r" \\"


def span(ncols: int, text: str) -> str:
    """A row of one left-aligned cell across ``ncols`` columns."""
    return f"\\multicolumn{{{ncols}}}{{l}}{{{text}}} \\\\"


def table(spec: str, header: str | None, rows: list[str], env: str = "tabular",
          after_header: tuple[str, ...] = (), footer: tuple[str, ...] = ()) -> str:
    """A booktabs table: ``header`` (a row, or None for none), ``rows``
    (lines, each a row or a rule), ``footer`` lines after the bottom rule."""
    head = [f"\\begin{{{env}}}{{{spec}}}", r"\toprule"]
    if header is not None:
        head += [header, r"\midrule", *after_header]
    return "\n".join([*head, *rows, r"\bottomrule", *footer, f"\\end{{{env}}}"]) + "\n"


def empty_table(message: str, ncols: int) -> str:
    """A table that says why it has no rows."""
    return table("l" * ncols, None, [span(ncols, f"\\textit{{{message}}}")])
