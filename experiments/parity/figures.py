"""Parity figures, drawn from the parity aggregator's outputs under results/parity/.

    parity_accuracy         train / held-out accuracy vs step, OS vs AR vs MD
                            windows, mean (or median) and min-max band over
                            seeds (Fig 2)
    parity_os_long          output supervision over its whole run (Fig 6)
    parity_reduced_models   the uniform-attention transformer and the reduced MLP
    parity_paper_mlp        the paper's Fig. 5 setting (reduced MLP, (20,6),
                            full batch): train / held-out accuracy vs step per
                            objective and window, median and quartile band
                            over seeds, from paper_mlp/curves.csv
    parity_selectivity      which input bits the paper_mlp models read:
                            secret-set over other bits, per finished run
                            (paper_mlp/selectivity.csv) and over training
                            (paper_mlp/curves.csv, where runs logged it)
    parity_theory_vs_speed  P_S of the window vs steps to 0.99 held-out, per
                            (k, weight decay), rho from theory_vs_speed.csv
    parity_signal_noise     measured loss on signal- vs noise-regime tokens
    parity_energy           E(W) over training (MLP runs that log it)
    parity_phase_diagram    share of seeds reaching 0.99 held-out over (k, N):
                            OS, MD at the theory's windows and U[0,1], Wilson
                            intervals, the theory's N-bound of each window
    parity_km               Kaplan-Meier curves of steps to 0.99 held-out, per
                            k at the N where MD and OS differ most
    parity_plateau          share of runs with the memorisation plateau, per cell

Input: only what ``python -m experiments.parity.summarize`` writes into a
parity root, never its run folders: results/parity/{summary.csv,
summary_by_condition.csv, theory_vs_speed.csv, curves.csv} (steps to 0.99,
medians, the main setting, the rank correlations and the per-step curves
over seeds are computed there only, never here), the phase root's
results/parity/phase/{cells.csv, km_curves.csv} (success rates, intervals,
Kaplan-Meier curves, log-rank p) and results/parity/paper_mlp/{curves.csv,
selectivity.csv} (the latter from ``python -m experiments.parity.selectivity``).
The curves are the mean over seeds where curves.csv has a ``mean``
column, else the median (the legends say which). parity_signal_noise and
parity_energy need curves.csv rows of the metrics train/ce_signal,
train/ce_noise (or train/signal_loss, train/noise_loss) and energy; they are
skipped, saying so, where the aggregator wrote none.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from experiments.parity.curves import CONDITION
from experiments.parity.outputs import main_conditions
from experiments.parity.summarize import BOUND_DELTA
from mdtheory.errors import UserError
from mdtheory.latex import fmt_p
from mdtheory.plots.io import csv_devices, read_csv
from mdtheory.plots.style import MissingData, colours, figure

ORDER = 10  # before the LM study
PARITY = Path("parity")  # the parity results under a results root
MAIN_MODEL = "transformer"
SUMMARIZE = "python -m experiments.parity.summarize"
CENTRES = ("mean", "median")  # the curve drawn over seeds: the first of these that curves.csv has
CURVE_COLUMNS = ("step", "metric", "n_runs", "median", "min", "max")


def devices(results: Path) -> list[str]:
    """What the parity runs under ``results`` trained on (summary.csv's device column)."""
    return csv_devices(Path(results) / PARITY / "summary.csv")


# --- reading ---------------------------------------------------------------

def summary_table(results: Path, name: str = "summary.csv", needed=()) -> pd.DataFrame:
    """A table of results/parity/ written by summarize (summary.csv: one row
    per run; summary_by_condition.csv: one per condition)."""
    return read_csv(Path(results) / PARITY / name, SUMMARIZE, needed)


def main_setting(results: Path) -> tuple:
    return main_conditions(results)[1]


def curves_table(results: Path, root: Path = PARITY) -> pd.DataFrame:
    """curves.csv of a parity root: one row per (condition, step, metric)
    with the number of seeds there and the median, quartiles and range over them."""
    return read_csv(Path(results) / root / "curves.csv", f"{SUMMARIZE} --root results/{root}",
                    (*CONDITION, *CURVE_COLUMNS))


def _fmt(x) -> str:
    return "?" if x is None or pd.isna(x) else f"{float(x):g}"


def _num(x) -> float:
    return 0.0 if x is None or pd.isna(x) else float(x)


def _same(a, b) -> bool:
    """Equal, or both not recorded."""
    return (pd.isna(a) and pd.isna(b)) or (not pd.isna(a) and not pd.isna(b) and np.isclose(float(a), float(b)))


def in_setting(curves: pd.DataFrame, setting: tuple) -> pd.DataFrame:
    n, k, size = setting
    return curves[(curves["n"] == n) & (curves["k"] == k) & (curves["train_size"] == size)]


def conditions(curves: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """(condition, its rows) per condition of ``curves``: OS, then AR, then MD by window."""
    groups = [(dict(zip(CONDITION, key)), rows) for key, rows in curves.groupby(CONDITION, dropna=False, sort=False)]
    return sorted(groups, key=lambda g: _order(g[0]))


def _order(cond: dict) -> tuple:
    return ({"os": 0, "ar": 1, "md": 2}.get(cond["objective"], 3), _num(cond["t0"]), _num(cond["t1"]))


def _series(cond: dict) -> tuple:
    return cond["objective"], _fmt(cond["t0"]), _fmt(cond["t1"])


def label(cond: dict) -> str:
    from mdtheory.train.objectives import objective_label
    if cond["objective"] == "md":
        return f"MD $U[{_fmt(cond['t0'])},{_fmt(cond['t1'])}]$"
    return objective_label(cond["objective"], short=True)


def seeds(rows: pd.DataFrame) -> int:
    return int(rows["n_runs"].max())


def centre(curves: pd.DataFrame) -> str:
    """The column of curves.csv drawn as the curve over seeds."""
    return next(c for c in CENTRES if c in curves)


def _median_note(curves: pd.DataFrame, note: str) -> str:
    """``note`` where the curves are medians; "" for means (what the captions say)."""
    return note if centre(curves) == "median" else ""


def band(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One condition's curve of ``metric``: the centre over seeds, its range and the seeds, by step."""
    part = rows[rows["metric"] == metric].sort_values("step").set_index("step")
    return pd.DataFrame({"centre": part[centre(part)], "lo": part["min"], "hi": part["max"],
                         "seeds": part["n_runs"]})


def _plot_band(ax, curve: pd.DataFrame, colour, text, ls="-"):
    ax.plot(curve.index, curve["centre"], color=colour, ls=ls, label=text)
    if len(curve) and curve["seeds"].max() > 1:
        ax.fill_between(curve.index, curve["lo"], curve["hi"], color=colour, alpha=0.18, lw=0)


def _accuracy_axes(ax, title):
    ax.set_ylim(0.4, 1.02)
    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    ax.set_title(title)
    ax.set_xlabel("step")


# --- figures ---------------------------------------------------------------

def accuracy(results: Path):
    """Fig 2: one row per weight decay, columns train / held-out accuracy.

    The x-axis stops at the longest MD run, so a long OS run does not squeeze
    the MD curves (the whole OS run is parity_os_long).
    """
    curves = curves_table(results)
    setting = main_setting(results)
    chosen = in_setting(curves[curves["model"] == MAIN_MODEL], setting)
    if chosen.empty:
        raise MissingData(f"curves.csv has no {MAIN_MODEL} curves in the main setting {setting}")
    groups = conditions(chosen)
    # the paper's setting (largest weight decay) on top
    decays = sorted({c["weight_decay"] for c, _ in groups}, key=lambda w: (pd.isna(w), -_num(w)))
    series = list(dict.fromkeys(_series(c) for c, _ in groups))  # a colour per objective and window
    palette = dict(zip(series, colours(len(series))))
    md_steps = chosen.loc[chosen["objective"] == "md", "step"]
    x_max = md_steps.max() if len(md_steps) else chosen["step"].max()
    fig, axes = figure("full", aspect=0.3, ncols=2, nrows=len(decays), sharey=True,
                       layout="constrained")
    for row, wd in enumerate(decays):
        for col, (metric, what) in enumerate((("train_acc", "train"), ("val_acc", "held-out"))):
            ax = axes[row, col]
            for cond, rows in groups:
                if not _same(cond["weight_decay"], wd):
                    continue
                curve = band(rows, metric)
                curve = curve[curve.index <= x_max]
                if curve.empty:
                    continue
                ls = "--" if cond["objective"] == "os" else ("-." if cond["objective"] == "ar" else "-")
                _plot_band(ax, curve, palette[_series(cond)],
                           f"{label(cond)} ({seeds(rows)})", ls)
            n, k, size = setting
            _accuracy_axes(ax, f"{what} accuracy, $(n,k)=({n},{k})$, $N={size}$, wd={_fmt(wd)}")
            ax.set_xlim(0, x_max)
            if col == 0:
                ax.set_ylabel("accuracy")
    handles, labels = axes[0, 1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6),
               title=f"objective (number of seeds); {_median_note(curves, 'line: median, ')}band: min-max over seeds")
    return fig


def os_long(results: Path):
    """Fig 6: output supervision over its full run."""
    curves = curves_table(results)
    os_curves = curves[(curves["objective"] == "os") & (curves["model"] == MAIN_MODEL)]
    setting = main_setting(results) if len(os_curves) else None
    groups = conditions(in_setting(os_curves, setting)) if setting else []
    if not groups:
        raise MissingData("no output-supervision curves" + (f" in the main setting {setting}" if setting else ""))
    fig, axes = figure("column")
    ax = axes[0, 0]
    palette = colours(2 * len(groups))
    for i, (cond, rows) in enumerate(sorted(groups, key=lambda g: _fmt(g[0]["weight_decay"]))):
        for j, (metric, what) in enumerate((("train_acc", "train"), ("val_acc", "held-out"))):
            _plot_band(ax, band(rows, metric), palette[2 * i + j],
                       f"{what}, wd={_fmt(cond['weight_decay'])} ({seeds(rows)})", "-" if j else "--")
    n, k, size = setting
    _accuracy_axes(ax, f"output supervision, $(n,k)=({n},{k})$, $N={size}$")
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower right", title=_median_note(curves, "median over seeds (number)") or None)
    return fig


def reduced_models(results: Path):
    """Fig 5: the uniform-attention transformer and the 2-layer MLP."""
    curves = curves_table(results)
    curves = curves[curves["model"] != MAIN_MODEL]
    if curves.empty:
        raise MissingData("no uniform-attention-transformer or MLP parity curves")
    models = sorted(set(curves["model"]))
    fig, axes = figure("full", aspect=0.36, ncols=len(models), sharey=True)
    for ax, model in zip(axes[0], models):
        groups = conditions(curves[curves["model"] == model])
        for colour, (cond, rows) in zip(colours(len(groups)), groups):
            for metric, ls, what in (("train_acc", "--", "train"), ("val_acc", "-", "held-out")):
                curve = band(rows, metric)
                if not curve.empty:
                    _plot_band(ax, curve, colour, f"{label(cond)}, {what}", ls)
        n, k, size = (int(cond[key]) for key in ("n", "k", "train_size"))
        _accuracy_axes(ax, f"{model}, $(n,k)=({n},{k})$, $N={size}$")
        ax.legend(loc="lower right")
    axes[0, 0].set_ylabel("accuracy")
    return fig


# keys that tell the settings of theory_vs_speed.csv apart (summarize groups by them)
SPEED_KEYS = ("model", "n", "k", "train_size", "weight_decay", "lr", "n_embd")


def speed_correlations(results: Path) -> pd.DataFrame:
    """The transformer rows of results/parity/theory_vs_speed.csv."""
    tvs = summary_table(results, "theory_vs_speed.csv", needed=("k", "weight_decay", "spearman_rho_PS_speed"))
    if "model" in tvs:
        tvs = tvs[tvs["model"].fillna(MAIN_MODEL) == MAIN_MODEL]
    return tvs.sort_values(["k", "weight_decay"]).reset_index(drop=True)


def _rho_label(row) -> str:
    rho = row["spearman_rho_PS_speed"]
    text = f"$k={int(row['k'])}$, wd={_fmt(row['weight_decay'])}"
    return text + (f": $\\rho={rho:.2f}$" if pd.notna(rho) else ": $\\rho$ undefined")


def _default_md(table: pd.DataFrame) -> pd.DataFrame:
    """The MD transformer rows with the default loss: the runs summarize correlates."""
    return table[(table["objective"] == "md") & table["P_S"].notna() & (table["model"] == MAIN_MODEL)
                 & (table["loss_weighting"] == "inverse_t") & (table["normalization"] == "tokens")]


def _in_speed_setting(table: pd.DataFrame, setting: pd.Series) -> pd.DataFrame:
    for key in SPEED_KEYS[1:]:
        table = table[np.isclose(table[key].astype(float), float(setting[key]))]
    return table


def theory_vs_speed(results: Path):
    """P_S of the window (theory) against steps to 0.99 held-out accuracy,
    one series per (k, weight decay).

    Runs that never reach 0.99 are drawn as open triangles at their step
    budget (a lower bound on the true time). The Spearman rho in the legend
    is read from theory_vs_speed.csv (rho of P_S against speed, > 0 = more
    signal learns faster), so the figure and the table cannot disagree.
    """
    md, cond = (_default_md(summary_table(results, name)) for name in ("summary.csv", "summary_by_condition.csv"))
    if md.empty:
        raise MissingData("summary.csv has no MD transformer rows with P_S")
    tvs = speed_correlations(results)
    if tvs.empty:
        raise MissingData("theory_vs_speed.csv has no transformer rows")
    fig, axes = figure("column", aspect=0.85, layout="constrained")
    ax = axes[0, 0]
    for colour, (_, setting) in zip(colours(len(tvs)), tvs.iterrows()):
        rows, medians = (_in_speed_setting(frame, setting) for frame in (md, cond))
        reached = rows["steps_to_val_99"].notna()
        ax.plot(rows.loc[reached, "P_S"], rows.loc[reached, "steps_to_val_99"], "o", color=colour, alpha=0.8)
        ax.plot(rows.loc[~reached, "P_S"], rows.loc[~reached, "steps"], "^", mfc="none", color=colour, alpha=0.8)
        medians = medians[medians["val_99_median"].notna()].sort_values("P_S")
        ax.plot(medians["P_S"], medians["val_99_median"], "-", color=colour, lw=0.8, label=_rho_label(setting))
    ax.plot([], [], "^", mfc="none", color="grey", label="not reached (budget)")
    ax.set_yscale("log")
    ax.set_xlabel(r"$P_S$ of the training window (theory)")
    ax.set_ylabel("steps to 0.99 held-out acc.")
    # below the axes: the points fill the whole panel
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize="x-small",
               title=r"Spearman $\rho(P_S,\ \mathrm{speed})$ from theory_vs_speed.csv", title_fontsize="x-small")
    return fig


def regime_metric(metrics, word: str) -> str | None:
    """The per-token CE of one regime (``train/ce_signal``) if the curves have
    it, else its loss share (``train/signal_loss``); never rates such as
    p_signal or signal_frac; None if neither."""
    candidates = [m for m in metrics if word in m.lower() and "p_" + word not in m and "frac" not in m
                  and ("loss" in m or "ce_" in m)]
    return min(candidates, key=lambda m: ("ce_" not in m, "loss" not in m, len(m)), default=None)


def signal_noise(results: Path):
    """Measured loss on signal- vs noise-regime tokens for the MD windows
    (mean over seeds; main setting and the largest weight decay)."""
    curves = curves_table(results)
    setting = main_setting(results)
    md = in_setting(curves[(curves["objective"] == "md") & (curves["model"] == MAIN_MODEL)], setting)
    metrics = set(md["metric"])
    signal, noise = regime_metric(metrics, "signal"), regime_metric(metrics, "noise")
    if signal is None or noise is None:
        raise MissingData("curves.csv has no signal-/noise-regime loss curves of MD runs (train/ce_signal and "
                          f"train/ce_noise, or train/signal_loss and train/noise_loss; rerun {SUMMARIZE} once it "
                          "writes them)")
    wd = md["weight_decay"].max()
    groups = conditions(md[np.isclose(md["weight_decay"], wd)] if pd.notna(wd) else md)
    fig, axes = figure("full", aspect=0.36, ncols=2, sharex=True, layout="constrained")
    for colour, (cond, rows) in zip(colours(len(groups)), groups):
        for ax, metric in zip(axes[0], (signal, noise)):
            curve = band(rows, metric).dropna(subset=["centre"])
            ax.plot(curve.index, curve["centre"], color=colour, label=f"{label(cond)} ({seeds(rows)})")
            ax.set_ylabel(metric.replace("_", " "))
    if noise.split("/")[-1].startswith("ce_"):
        # unidentifiable bits are independent of what is visible: Bayes CE is log 2
        axes[0, 1].axhline(np.log(2), color="black", ls=":", lw=0.8, label=r"$\log 2$ (Bayes)")
    axes[0, 0].set_title("loss on identifiable (signal-regime) tokens")
    axes[0, 1].set_title("loss on unidentifiable (noise-regime) tokens")
    for ax in axes[0]:
        ax.set_xlabel("step")
    n, k, size = setting
    fig.legend(*axes[0, 1].get_legend_handles_labels(), loc="outside lower center", ncol=4,
               title=f"$(n,k)=({n},{k})$, $N={size}$, wd={_fmt(wd)}; {centre(curves)} over seeds (number)")
    return fig


def energy(results: Path):
    """E(W) over training, per condition whose runs log it (mean over seeds)."""
    curves = curves_table(results)
    metrics = sorted(m for m in set(curves["metric"]) if "energy" in m.lower())
    if not metrics:
        raise MissingData(f"curves.csv has no energy curves (rerun {SUMMARIZE} once it writes them)")
    groups = conditions(curves[curves["metric"] == metrics[0]])
    fig, axes = figure("column")
    ax = axes[0, 0]
    for colour, (cond, rows) in zip(colours(len(groups)), groups):
        curve = band(rows, metrics[0]).dropna(subset=["centre"])
        ax.plot(curve.index, curve["centre"], color=colour, label=f"{cond['model']}, {label(cond)} ({seeds(rows)})")
    ax.set_xlabel("step")
    ax.set_ylabel(r"energy $E(W)=c^\top\Sigma^\dagger c$")
    ax.legend(loc="best", title=f"{centre(curves)} over seeds (number)")
    return fig


# --- the (k, N) phase diagram: reads results/parity/phase/{cells,km_curves}.csv --

PHASE_DIR = PARITY / "phase"
# (objective, theory_window of cells.csv) -> label; the series the phase figures draw
PHASE_SERIES = {
    ("os", ""): "output sup.",
    ("md", "sample-complexity optimal"): r"MD $U[0,t_1^{\mathrm{SC}}]$",
    ("md", "P_S optimal"): r"MD $U[0,t_1^{P_S}]$",
    ("md", "full range"): r"MD $U[0,1]$",
}
# the columns that name a cell, in cells.csv and km_curves.csv alike
CELL_KEYS = ["k", "train_size", "objective", "t0", "t1", "weight_decay", "n", "model", "group", "lr", "n_embd",
             "loss_weighting", "normalization"]


def _phase_palette() -> dict:
    """A colour per series, the same in every phase figure (U[0,1] away from the orange of t1^SC)."""
    palette = colours(5)
    return dict(zip(PHASE_SERIES.values(), (palette[0], palette[1], palette[2], palette[4])))


def phase_table(results: Path, name: str, needed=()) -> pd.DataFrame:
    return read_csv(Path(results) / PHASE_DIR / name, f"{SUMMARIZE} --root results/{PHASE_DIR}", needed)


def phase_cells(results: Path, needed=()) -> pd.DataFrame:
    """The OS and theory-window MD rows of cells.csv, with a ``series`` label."""
    cells = phase_table(results, "cells.csv", ("k", "train_size", "objective", "weight_decay", "theory_window",
                                               *needed))
    series = [PHASE_SERIES.get((o, w)) for o, w in zip(cells["objective"], cells["theory_window"].fillna(""))]
    cells = cells.assign(series=series).dropna(subset=["series"])
    if cells.empty:
        raise MissingData(f"{PHASE_DIR / 'cells.csv'} has no OS or theory-window MD cells")
    return cells.reset_index(drop=True)


def _rate_panels(cells: pd.DataFrame, rate: str, low: str, high: str, ylabel: str, bounds: bool):
    """One panel per k: ``rate`` with its interval [low, high] against N, a
    series per objective and window; weight decays other than the main one
    dotted with open markers."""
    ks, main_wd = sorted(cells["k"].unique()), float(cells["weight_decay"].max())  # the paper's setting
    palette = _phase_palette()
    fig, axes = figure("full", aspect=0.3, ncols=len(ks), sharex=True, sharey=True, layout="constrained")
    for ax, k in zip(axes[0], ks):
        for i, text in enumerate(PHASE_SERIES.values()):
            for wd, rows in cells[(cells["k"] == k) & (cells["series"] == text)].groupby("weight_decay"):
                rows = rows.sort_values("train_size")
                main = np.isclose(wd, main_wd)
                # nudge the series apart on the log axis so their intervals do not hide each other
                x = rows["train_size"] * 2 ** (0.08 * (i - 1.5))
                ax.errorbar(x, rows[rate], yerr=[rows[rate] - rows[low], rows[high] - rows[rate]],
                            color=palette[text], marker="o", ms=3.5, mfc=palette[text] if main else "none",
                            ls="-" if main else ":", lw=1, capsize=2,
                            label=text + ("" if main else f", wd {_fmt(wd)}"))
                if bounds and main and "sample_complexity_bound" in rows and rows["sample_complexity_bound"].notna().any():
                    ax.axvline(rows["sample_complexity_bound"].dropna().iloc[0], color=palette[text], ls="--", lw=0.8)
        n = ", ".join(str(int(v)) for v in sorted(cells.loc[cells["k"] == k, "n"].dropna().unique())) \
            if "n" in cells else "?"
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"$k={int(k)}$, $n={n}$")
        ax.set_xlabel("training set size $N$")
    axes[0, 0].set_ylabel(ylabel)
    title = "bars: 95% Wilson interval"
    if bounds:
        title += rf"; dashed: the theory's $N$-bound of the window ($\delta={BOUND_DELTA:g}$)"
    return _shared_legend(fig, axes[0], title)


def _shared_legend(fig, axes, title: str):
    """One legend below the panels, each label once."""
    labels = {}
    for ax in axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            labels.setdefault(text, handle)
    fig.legend(labels.values(), labels.keys(), loc="outside lower center", ncol=min(len(labels), 4),
               title=title, fontsize="small", title_fontsize="small")
    return fig


def phase_diagram(results: Path):
    """Share of seeds reaching 0.99 held-out accuracy over (k, N): output
    supervision, MD at the theory's windows and MD U[0,1], with the theory's
    sample-complexity bound of each MD window drawn where it lies."""
    cells = phase_cells(results, needed=("success_rate", "wilson_low", "wilson_high", "sample_complexity_bound"))
    return _rate_panels(cells, "success_rate", "wilson_low", "wilson_high", "share of seeds at 0.99 held-out",
                        bounds=True)


def phase_plateau(results: Path):
    """Share of runs with the memorisation plateau (fit the training set,
    then at chance >= 3x as long), per cell and objective."""
    cells = phase_cells(results, needed=("plateau_share", "plateau_low", "plateau_high"))
    return _rate_panels(cells, "plateau_share", "plateau_low", "plateau_high", "share of runs with the plateau",
                        bounds=False)


def _keys(frame: pd.DataFrame) -> pd.Series:
    """One hashable key per row from the cell-naming columns (NaN -> "")."""
    cols = [c for c in CELL_KEYS if c in frame]
    return frame[cols].astype(object).where(frame[cols].notna(), "").apply(
        lambda r: tuple(str(v) for v in r), axis=1)


def km_cell_sizes(cells: pd.DataFrame) -> dict:
    """Per k, the N whose Kaplan-Meier curves are drawn: first where MD at the
    sample-complexity-optimal window and OS differ most in success rate
    (ties: smaller log-rank p, then larger N; the largest N without a pair),
    then the largest N, where the speeds of the objectives that learn differ."""
    chosen = {}
    main = cells[np.isclose(cells["weight_decay"], cells["weight_decay"].max())]
    for k, rows in main.groupby("k"):
        os_rate = rows[rows["objective"] == "os"].groupby("train_size")["success_rate"].first()
        md = rows[rows["series"] == PHASE_SERIES[("md", "sample-complexity optimal")]].set_index("train_size")
        pairs = md.index.intersection(os_rate.index)
        largest = rows["train_size"].max()
        if len(pairs):
            p = md["logrank_p_vs_os"].fillna(1.0) if "logrank_p_vs_os" in md else pd.Series(1.0, md.index)
            contrast = max(pairs, key=lambda N: (abs(md.loc[N, "success_rate"] - os_rate[N]), -p[N], N))
            chosen[k] = tuple(dict.fromkeys((contrast, largest)))
        else:
            chosen[k] = (largest,)
    return chosen


def phase_km(results: Path):
    """Kaplan-Meier curves of the steps to 0.99 held-out accuracy (share of
    runs not there yet; censoring marks: runs that ended without it), one
    column per k: the N where MD and OS differ most, and below it the largest N."""
    cells = phase_cells(results, needed=("success_rate",))
    km = phase_table(results, "km_curves.csv", ("step", "survival", "survival_low", "survival_high", "censored"))
    km = km.assign(_key=_keys(km))
    cells = cells[np.isclose(cells["weight_decay"], cells["weight_decay"].max())].assign(_key=lambda f: _keys(f))
    sizes = km_cell_sizes(cells)
    palette = _phase_palette()
    nrows = max(len(v) for v in sizes.values())
    fig, axes = figure("full", aspect=0.3, ncols=len(sizes), nrows=nrows, sharey=True, layout="constrained")
    for col, (k, chosen_sizes) in enumerate(sorted(sizes.items())):
        for row in range(nrows):
            ax = axes[row, col]
            if row >= len(chosen_sizes):
                ax.set_visible(False)
                continue
            _km_panel(ax, k, chosen_sizes[row], cells, km, palette)
            ax.set_xlabel("step" if row == nrows - 1 else "")
    for row in range(nrows):
        axes[row, 0].set_ylabel("share not yet at 0.99\nheld-out")
    return _shared_legend(fig, axes.ravel(), "band: 95% log-log interval; |: run ended without reaching 0.99 "
                                         "(censored); p: MD $U[0,t_1^{\\mathrm{SC}}]$ vs OS")


def _km_panel(ax, k, size, cells: pd.DataFrame, km: pd.DataFrame, palette: dict):
    chosen = cells[(cells["k"] == k) & (cells["train_size"] == size)]
    chosen = chosen.sort_values("series", key=lambda s: s.map(list(PHASE_SERIES.values()).index))
    p_values = []
    for _, cell in chosen.iterrows():
        curve = km[km["_key"] == cell["_key"]].sort_values("step")
        if curve.empty:
            continue
        colour = palette[cell["series"]]
        steps = np.concatenate([[0.0], curve["step"]])
        surv, lo, hi = (np.concatenate([[1.0], curve[c]]) for c in ("survival", "survival_low", "survival_high"))
        ax.step(steps, surv, where="post", color=colour, label=cell["series"])
        ax.fill_between(steps, lo, hi, step="post", color=colour, alpha=0.15, lw=0)
        cens = curve[curve["censored"] > 0]
        ax.plot(cens["step"], cens["survival"], "|", color=colour, ms=7, mew=1.2)
        if cell["series"] == PHASE_SERIES[("md", "sample-complexity optimal")] \
                and pd.notna(cell.get("logrank_p_vs_os")):
            p_values.append(cell["logrank_p_vs_os"])
    title = f"$k={int(k)}$, $N={int(size)}$"
    ax.set_title(title + (f"\nlog-rank $p={fmt_p(p_values[0])}$" if p_values else ""), fontsize="medium")
    ax.set_ylim(-0.03, 1.03)


PAPER_MLP_DIR = PARITY / "paper_mlp"


def paper_mlp(results: Path):
    """The paper's Fig. 5 setting ((20,6), N = 5000, full batch, reduced MLP):
    one panel per objective / window, train and held-out accuracy vs step,
    median and interquartile band over seeds (curves.csv of the aggregator)."""
    curves = read_csv(Path(results) / PAPER_MLP_DIR / "curves.csv", f"{SUMMARIZE} --root results/{PAPER_MLP_DIR}",
                      ("median",))
    curves = curves.assign(arm=[o if o != "md" else float(t1) for o, t1 in zip(curves["objective"], curves["t1"])])
    setting = ["n", "k", "train_size", "batch_size", "n_embd", "weight_decay", "lr"]
    if len(curves[setting].drop_duplicates()) > 1:
        raise UserError(f"{PAPER_MLP_DIR / 'curves.csv'} mixes settings {curves[setting].drop_duplicates().values.tolist()}")
    arms = ["os", *sorted(a for a in set(curves["arm"]) if a != "os")] if "os" in set(curves["arm"]) else \
        sorted(set(curves["arm"]))
    ncols = min(3, len(arms))
    nrows = -(-len(arms) // ncols)
    fig, axes = figure("full", aspect=0.3, ncols=ncols, nrows=nrows, sharex=True, sharey=True, squeeze=False)
    palette = colours(2)
    last = curves["step"].max()
    for ax, arm in zip(axes.flat, arms):
        part = curves[curves["arm"] == arm]
        n_seeds = int(part["n_runs"].max())
        for (metric, text, ls), colour in zip((("train_acc", "train", "--"), ("val_acc", "held-out", "-")), palette):
            line = part[part["metric"] == metric].sort_values("step")
            ax.plot(line["step"], line["median"], color=colour, ls=ls, label=text)
            if n_seeds > 1:
                ax.fill_between(line["step"], line["q25"], line["q75"], color=colour, alpha=0.2, lw=0)
        title = "output sup." if arm == "os" else f"MD $U[0,{arm:g}]$"
        _accuracy_axes(ax, f"{title} ({n_seeds} seed{'s' if n_seeds > 1 else ''})")
        ax.axhline(0.9, color="grey", lw=0.5, ls="--")
        ax.set_xlim(0, last)
    for ax in list(axes.flat)[len(arms):]:
        ax.set_visible(False)
    for ax in axes[:-1].flat:
        ax.set_xlabel("")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    axes.flat[0].legend(loc="lower right", fontsize=6)
    return fig


def selectivity(results: Path):
    """Which input bits the paper_mlp models read: left, per finished run, the
    mean weight selectivity of the secret-set bits over that of the other bits
    (selectivity.csv of experiments.parity.selectivity; 1 = every bit alike);
    right, where the runs logged it, the same ratio over training (median over
    seeds, curves.csv)."""
    table = read_csv(Path(results) / PAPER_MLP_DIR / "selectivity.csv",
                     f"python -m experiments.parity.selectivity --root results/{PAPER_MLP_DIR}",
                     ("objective", "t1", "ratio"))
    def with_arm(frame: pd.DataFrame) -> pd.DataFrame:  # OS as -1, MD U[0,t1] as t1
        return frame.assign(arm=[-1.0 if o == "os" else float(t1) for o, t1 in zip(frame["objective"], frame["t1"])])

    table = with_arm(table)
    try:
        curves = read_csv(Path(results) / PAPER_MLP_DIR / "curves.csv", SUMMARIZE, ("metric", "median"))
        curves = curves[curves["metric"] == "secret_selectivity"]
    except MissingData:
        curves = pd.DataFrame()
    curves = with_arm(curves) if len(curves) else curves
    arms = sorted(set(table["arm"]) | set(curves["arm"] if len(curves) else []))
    name = {a: "output sup." if a < 0 else f"MD $U[0,{a:g}]$" for a in arms}
    palette = dict(zip(arms, colours(len(arms))))
    fig, axes = figure("full" if len(curves) else "column", aspect=0.3 if len(curves) else 0.55,
                       ncols=2 if len(curves) else 1, sharey=True)
    ax = axes[0, 0]
    finished = sorted(set(table["arm"]))
    for i, arm in enumerate(finished):
        ratios = table.loc[table["arm"] == arm, "ratio"]
        ax.scatter(np.full(len(ratios), i), ratios, color=palette[arm], s=12, zorder=3)
        ax.hlines(ratios.median(), i - 0.25, i + 0.25, color=palette[arm], lw=1.5)
    ax.set_xticks(range(len(finished)), [name[a] for a in finished], rotation=20, ha="right")
    ax.set_ylabel("secret bits / other bits")
    ax.set_title(f"finished runs ({len(table)}, one dot per seed)", fontsize=7)
    for arm, line in (curves.groupby("arm") if len(curves) else []):
        line = line.sort_values("step")
        axes[0, 1].plot(line["step"], line["median"], color=palette[arm],
                        label=f"{name[arm]} ({int(line['n_runs'].max())})")
    if len(curves):
        axes[0, 1].set_xlabel("step")
        axes[0, 1].set_title("over training (median over the seeds that logged it)", fontsize=7)
        axes[0, 1].legend(fontsize=6)
    for a in axes.flat:
        a.axhline(1.0, color="grey", lw=0.5, ls="--")
        a.set_ylim(bottom=0)
    return fig


FIGURES = {
    "parity_paper_mlp": paper_mlp,
    "parity_selectivity": selectivity,
    "parity_accuracy": accuracy,
    "parity_os_long": os_long,
    "parity_reduced_models": reduced_models,
    "parity_theory_vs_speed": theory_vs_speed,
    "parity_signal_noise": signal_noise,
    "parity_energy": energy,
    "parity_phase_diagram": phase_diagram,
    "parity_km": phase_km,
    "parity_plateau": phase_plateau,
}
