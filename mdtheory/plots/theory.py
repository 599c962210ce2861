"""Theory figures: curves from the closed forms in ``mdtheory.theory.numeric``.

    signal_curves            P_S(t) = (k+1) t (1-t)^k for several k, optima marked
    window_signal            P_S of U[0, t1] against t1, with the t0 = 0 optimum
    sample_complexity        the identifiability bound over windows (Cor. 4.7 root)
    regime_diagram           identifiable vs unidentifiable masks, (n, k) = (4, 2)
    mixture_signal           the dependency-mixture signal and its argmax t*

These draw functions of the theory, not measurements. mixture_signal adds
the dependency weights measured on a corpus where a study offers them (a
study figures module's ``mixture_weights(results)``, found through
mdtheory.plots.registry); no result folder is named here.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullFormatter

from ..theory import numeric as num
from . import registry
from .io import weights_by_order
from .style import colours, figure

SIGNAL_KS = (1, 2, 4, 6, 10)
WINDOW_KS = (2, 4, 6, 10)
PAPER_K = 6
PAPER_N = 20
DELTA = 0.05


def signal_curves(results: Path):
    t = np.linspace(0.0, 1.0, 401)
    fig, axes = figure("column")
    ax = axes[0, 0]
    for colour, k in zip(colours(len(SIGNAL_KS)), SIGNAL_KS):
        ax.plot(t, num.p_signal_at(t, k), color=colour, label=f"$k={k}$")
        t_opt = float(num.signal_optimal_t(k))
        ax.plot([t_opt], [float(num.p_signal_at(t_opt, k))], "o", color=colour, mec="black", mew=0.5)
    ax.axhline(1 / np.e, color="grey", ls=":", lw=0.8)
    ax.text(0.99, 1 / np.e - 0.01, "$1/e$", ha="right", va="top", fontsize=7, color="grey")
    ax.set_xlabel("mask rate $t$")
    ax.set_ylabel(r"$P_S(t)=(k+1)\,t\,(1-t)^k$")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 0.68)
    ax.legend(title="dots: maximum at $t=1/(k+1)$", loc="upper right", ncol=3)
    return fig


def window_signal(results: Path):
    t1 = np.linspace(0.01, 1.0, 200)
    fig, axes = figure("column")
    ax = axes[0, 0]
    for colour, k in zip(colours(len(WINDOW_KS)), WINDOW_KS):
        ps = np.array([float(num.p_signal(k, 0.0, x)) for x in t1])
        ax.plot(t1, ps, color=colour, label=f"$k={k}$")
        best = float(num.best_t1_given_t0_zero(k))
        ax.plot([best], [float(num.p_signal(k, 0.0, best))], "o", color=colour, mec="black", mew=0.5)
        root = float(num.sample_complexity_optimal_t1(k))
        ax.plot([root], [float(num.p_signal(k, 0.0, root))], "^", color=colour, mec="black", mew=0.5)
    ax.plot([], [], "o", color="grey", mec="black", mew=0.5, label=r"max $P_S$")
    ax.plot([], [], "^", color="grey", mec="black", mew=0.5, label="min bound")
    ax.set_xlabel(r"window end $t_1$ (train $t\sim U[0,t_1]$)")
    ax.set_ylabel(r"$P_S$ of $U[0,t_1]$")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 0.47)
    ax.legend(loc="upper right", ncol=3)
    return fig


def sample_complexity(results: Path):
    """(a) log10 of the bound over (t0, t1) for k = 6; (b) t0 = 0 slices."""
    fig, axes = figure("full", aspect=0.36, ncols=2)
    ax = axes[0, 0]
    grid = np.linspace(0.0, 1.0, 101)
    logn = np.full((grid.size, grid.size), np.nan)
    for i, t0 in enumerate(grid):
        for j, t1 in enumerate(grid):
            if t1 > t0:
                logn[j, i] = np.log10(float(num.sample_complexity_bound(PAPER_N, PAPER_K, DELTA, t0, t1)))
    vmax = np.nanpercentile(logn, 90)
    mesh = ax.pcolormesh(grid, grid, logn, shading="nearest", cmap="viridis", vmax=vmax, rasterized=True)
    fig.colorbar(mesh, ax=ax, label=r"$\log_{10} N$ bound (clipped)")
    root = float(num.sample_complexity_optimal_t1(PAPER_K))
    ax.plot([0], [root], "*", color="white", mec="black", ms=9, clip_on=False, zorder=5)
    ax.annotate(f"minimum: $t_0=0$, $t_1={root:.3f}$", (0, root), xytext=(0.4, 0.12),
                color="black", fontsize=7, arrowprops=dict(arrowstyle="->", color="black", lw=0.6))
    ax.set_xlabel("window start $t_0$")
    ax.set_ylabel("window end $t_1$")
    ax.set_title(f"$(n,k)=({PAPER_N},{PAPER_K})$, $\\delta={DELTA}$")
    ax.grid(False)

    ax = axes[0, 1]
    t1 = np.linspace(0.02, 1.0, 200)
    for colour, k in zip(colours(len(WINDOW_KS)), WINDOW_KS):
        bound = np.array([float(num.sample_complexity_bound(PAPER_N, k, DELTA, 0.0, x)) for x in t1])
        ax.plot(t1, bound, color=colour, label=f"$k={k}$")
        r = float(num.sample_complexity_optimal_t1(k))
        ax.plot([r], [float(num.sample_complexity_bound(PAPER_N, k, DELTA, 0.0, r))], "^",
                color=colour, mec="black", mew=0.5)
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"window end $t_1$ ($t_0=0$)")
    ax.set_ylabel("sample-complexity bound $N$")
    ax.set_xlim(0, 1)
    ax.legend(title="triangles:\nCor. 4.7 root", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


# --- (n, k) = (4, 2) regime diagram -------------------------------------------

def mask_regimes(n: int = 4, secret=(0, 1)):
    """All masks of the n+1 positions, with each masked position's status.

    Returns a list of (mask tuple, status tuple, regime) where status is
    'visible', 'identifiable' or 'unidentifiable', and regime is 'signal'
    when exactly one element of S' = S + {label} is masked. A masked position
    j is identifiable iff j is in S' and every other element of S' is visible.
    """
    length = n + 1
    s_prime = set(secret) | {n}
    rows = []
    for mask in itertools.product((0, 1), repeat=length):
        masked = {j for j in range(length) if mask[j]}
        status = []
        for j in range(length):
            if not mask[j]:
                status.append("visible")
            elif j in s_prime and not (masked & (s_prime - {j})):
                status.append("identifiable")
            else:
                status.append("unidentifiable")
        regime = "signal" if len(masked & s_prime) == 1 else "noise"
        rows.append((mask, tuple(status), regime))
    return rows


def regime_diagram(results: Path):
    n, secret = 4, (0, 1)
    rows = mask_regimes(n, secret)
    by_size: dict[int, list] = {}
    for row in rows:
        by_size.setdefault(sum(row[0]), []).append(row)
    palette = colours(4)
    fill = {"visible": "#f2f2f2", "identifiable": palette[2], "unidentifiable": palette[1]}
    length = n + 1
    labels = [f"$x_{j + 1}$" for j in range(n)] + ["$y$"]
    fig, axes = figure("full", aspect=0.34)
    ax = axes[0, 0]
    gap_col, cell, gap_row = 1.3, 1.0, 0.35
    for m in range(length + 1):
        x0 = m * (length * cell + gap_col)
        ax.text(x0 + length * cell / 2, 1.9, f"$|M|={m}$", ha="center", va="bottom", fontsize=7)
        for j in range(length):
            weight = "bold" if j in secret or j == n else "normal"
            ax.text(x0 + (j + 0.5) * cell, 0.6, labels[j], ha="center", va="center", fontsize=6.5,
                    fontweight=weight, color="black" if weight == "bold" else "dimgrey")
        for r, (mask, status, regime) in enumerate(by_size[m]):
            y0 = -(r + 1) * (cell + gap_row)
            for j in range(length):
                ax.add_patch(Rectangle((x0 + j * cell, y0), cell, cell, facecolor=fill[status[j]],
                                       edgecolor="white", lw=0.8))
                if mask[j]:
                    ax.text(x0 + (j + 0.5) * cell, y0 + 0.5 * cell, "M", ha="center", va="center",
                            fontsize=5.5, color="black")
            if regime == "signal":
                ax.add_patch(Rectangle((x0 - 0.12, y0 - 0.12), length * cell + 0.24, cell + 0.24,
                                       facecolor="none", edgecolor="black", lw=1.0))
    ax.set_xlim(-0.5, (length + 1) * (length * cell + gap_col))
    ax.set_ylim(-10.6 * (cell + gap_row), 2.6)
    ax.set_aspect("equal")
    ax.axis("off")
    handles = [Rectangle((0, 0), 1, 1, facecolor=fill[s], edgecolor="grey", lw=0.5) for s in fill]
    handles.append(Rectangle((0, 0), 1, 1, facecolor="none", edgecolor="black", lw=1.0))
    names = ["visible", "masked, identifiable", "masked, unidentifiable", r"signal regime ($|M\cap S'|=1$)"]
    ax.legend(handles, names, loc="lower right", ncol=1, fontsize=6.5)
    ax.set_title(r"$(n,k)=(4,2)$, $S=\{1,2\}$, $S'=S\cup\{y\}$ (bold): all $2^5$ masks", fontsize=8)
    return fig


# --- dependency mixture --------------------------------------------------------

def mixture_signal(results: Path):
    t = np.linspace(0.0, 1.0, 401)
    # the paper's weights, then each corpus a study measured: [(label, {order: weight})]
    curves = [("paper WikiText weights", weights_by_order(num.PAPER_WIKITEXT_WEIGHTS))]
    curves += registry.gather("figures", "mixture_weights", Path(results))
    fig, axes = figure("column")
    ax = axes[0, 0]
    for (label, w), colour in zip(curves, colours(len(curves))):
        for squared, ls in ((False, "-"), (True, "--")):
            y = np.asarray(num.mixture_signal(t, w, squared=squared), dtype=float)
            y = y / y.max()
            t_star = float(num.mixture_argmax(w, squared=squared))
            kind = "squared" if squared else "linear"
            ax.plot(t, y, ls=ls, color=colour, label=f"{label}, {kind}: $t^*={t_star:.3f}$")
            ax.axvline(t_star, color=colour, ls=ls, lw=0.7, alpha=0.7)
    ax.set_xlabel("mask rate $t$")
    ax.set_ylabel("signal (normalised)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.8)
    ax.legend(loc="upper center", fontsize=6, title="vertical lines: argmax $t^*$")
    return fig


FIGURES = {
    "theory_signal_curves": signal_curves,
    "theory_window_signal": window_signal,
    "theory_sample_complexity": sample_complexity,
    "theory_regime_diagram": regime_diagram,
    "theory_mixture_signal": mixture_signal,
}
