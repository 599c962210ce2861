"""Parity figures, read from results/parity/.

    parity_accuracy         train / held-out accuracy vs step, OS vs AR vs MD
                            windows, mean and min-max band over seeds (Fig 2)
    parity_os_long          output supervision over its whole run (Fig 6)
    parity_reduced_models   the uniform-attention transformer and the reduced MLP
    parity_paper_mlp        the paper's Fig. 5 setting (reduced MLP, (20,6),
                            full batch): train / held-out accuracy vs step per
                            objective and window, median and quartile band
                            over seeds, from paper_mlp/curves.csv
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

Input: the run records under results/parity/runs/ (per-step curves) and
results/parity/{summary.csv,summary_by_condition.csv,theory_vs_speed.csv},
written by ``python -m experiments.parity.summarize``: steps to 0.99,
medians, the main setting and the rank correlations are computed there
only, never here. The phase figures read results/parity/phase/cells.csv
and km_curves.csv (success rates, intervals, Kaplan-Meier curves and
log-rank p from the same aggregator).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..latex import fmt_p
from ..runfiles import RunRecord, read_runs
from .style import MissingData, colours, figure

MAIN_MODEL = "transformer"


# --- reading ---------------------------------------------------------------

@dataclass
class Run:
    """A run record seen as one curve of a figure."""
    record: RunRecord = field(repr=False)
    metrics: pd.DataFrame = field(repr=False)

    def __post_init__(self):
        task, (self.t0, self.t1) = self.record.task, self.record.window or (None, None)
        self.objective, self.seed = self.record.objective, self.record.seed
        self.model = task.get("model", MAIN_MODEL)
        self.setting = (task.get("n"), task.get("k"), task.get("train_size"))
        self.weight_decay = self.record.train.get("weight_decay")

    @property
    def label(self) -> str:
        from ..train.objectives import objective_label
        if self.objective == "md":
            return f"MD $U[{_fmt(self.t0)},{_fmt(self.t1)}]$"
        return objective_label(self.objective, short=True)

    @property
    def condition(self):
        return (self.objective, self.model, self.setting, self.weight_decay, self.t0, self.t1)


def _fmt(x) -> str:
    return "?" if x is None else f"{float(x):g}"


def load_runs(results: Path) -> list[Run]:
    return [Run(record, pd.DataFrame(record.metrics).sort_values("step").reset_index(drop=True))
            for record in read_runs(Path(results) / "parity" / "runs")]


def _require_runs(results: Path) -> list[Run]:
    runs = load_runs(results)
    if not runs:
        raise MissingData(f"no runs with config.json + metrics.jsonl under {Path(results) / 'parity' / 'runs'}")
    return runs


def main_conditions(results: Path) -> tuple[pd.DataFrame, tuple]:
    """The conditions of the setting that summarize marked as the main one, and its (n, k, N)."""
    cond = summary_table(results, "summary_by_condition.csv")
    main = cond[cond["main_setting"]] if "main_setting" in cond else cond.iloc[:0]
    if main.empty:
        raise MissingData("summary_by_condition.csv marks no main setting (no transformer runs)")
    return main.reset_index(drop=True), tuple(int(main.iloc[0][key]) for key in ("n", "k", "train_size"))


def main_setting(results: Path) -> tuple:
    return main_conditions(results)[1]


def seed_band(runs: list[Run], column: str) -> pd.DataFrame:
    """Mean, min and max of ``column`` over seeds, on the steps all share."""
    frames = [r.metrics.set_index("step")[column].rename(i) for i, r in enumerate(runs)
              if column in r.metrics]
    if not frames:
        return pd.DataFrame(columns=["mean", "lo", "hi", "seeds"])
    table = pd.concat(frames, axis=1).sort_index()
    table = table.interpolate(limit_area="inside")  # eval steps may differ slightly
    # experiments.parity.run stops a run early once it holds >= 0.99; carry its
    # last value forward so the mean does not drop when converged seeds end
    table = table.ffill()
    return pd.DataFrame({"mean": table.mean(axis=1), "lo": table.min(axis=1),
                         "hi": table.max(axis=1), "seeds": table.notna().sum(axis=1)})


def _group(runs: list[Run]) -> dict:
    groups: dict = {}
    for run in runs:
        groups.setdefault(run.condition, []).append(run)
    return groups


def _order(condition) -> tuple:
    objective, _, _, _, t0, t1 = condition
    rank = {"os": 0, "ar": 1, "md": 2}.get(objective, 3)
    return (rank, t0 or 0.0, t1 or 0.0)


def _plot_band(ax, band: pd.DataFrame, colour, label, ls="-"):
    ax.plot(band.index, band["mean"], color=colour, ls=ls, label=label)
    if band["seeds"].max() > 1:
        ax.fill_between(band.index, band["lo"], band["hi"], color=colour, alpha=0.18, lw=0)


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
    runs = _require_runs(results)
    setting = main_setting(results)
    chosen = [r for r in runs if r.model == MAIN_MODEL and r.setting == setting]
    groups = _group(chosen)
    # the paper's setting (largest weight decay) on top
    decays = sorted({c[3] for c in groups}, key=lambda w: (w is None, -(w or 0.0)))
    conditions = sorted({c[:1] + c[4:] for c in groups}, key=lambda c: _order((c[0], None, None, None, c[1], c[2])))
    palette = dict(zip(conditions, colours(len(conditions))))
    md_steps = [r.metrics["step"].max() for r in chosen if r.objective == "md"]
    x_max = max(md_steps) if md_steps else max(r.metrics["step"].max() for r in chosen)
    fig, axes = figure("full", aspect=0.3, ncols=2, nrows=len(decays), sharey=True,
                       layout="constrained")
    for row, wd in enumerate(decays):
        for col, (column, what) in enumerate((("train_acc", "train"), ("val_acc", "held-out"))):
            ax = axes[row, col]
            for cond in sorted((c for c in groups if c[3] == wd), key=_order):
                members = groups[cond]
                band = seed_band(members, column)
                band = band[band.index <= x_max]
                if band.empty:
                    continue
                colour = palette[cond[:1] + cond[4:]]
                ls = "--" if cond[0] == "os" else ("-." if cond[0] == "ar" else "-")
                _plot_band(ax, band, colour, f"{members[0].label} ({len(members)})", ls)
            n, k, size = setting
            _accuracy_axes(ax, f"{what} accuracy, $(n,k)=({n},{k})$, $N={size}$, wd={_fmt(wd)}")
            ax.set_xlim(0, x_max)
            if col == 0:
                ax.set_ylabel("accuracy")
    handles, labels = axes[0, 1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6),
               title="objective (number of seeds); band: min-max over seeds")
    return fig


def os_long(results: Path):
    """Fig 6: output supervision over its full run."""
    runs = [r for r in _require_runs(results) if r.objective == "os" and r.model == MAIN_MODEL]
    setting = main_setting(results) if runs else None
    runs = [r for r in runs if r.setting == setting]
    if not runs:
        raise MissingData("no output-supervision runs" + (f" in the main setting {setting}" if setting else ""))
    groups = _group(runs)
    fig, axes = figure("column")
    ax = axes[0, 0]
    palette = colours(2 * len(groups))
    for i, cond in enumerate(sorted(groups, key=lambda c: str(c[3]))):
        for j, (column, what) in enumerate((("train_acc", "train"), ("val_acc", "held-out"))):
            band = seed_band(groups[cond], column)
            _plot_band(ax, band, palette[2 * i + j], f"{what}, wd={_fmt(cond[3])} ({len(groups[cond])})",
                       "-" if j else "--")
    n, k, size = setting
    _accuracy_axes(ax, f"output supervision, $(n,k)=({n},{k})$, $N={size}$")
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower right")
    return fig


def reduced_models(results: Path):
    """Fig 5: the uniform-attention transformer and the 2-layer MLP."""
    runs = [r for r in _require_runs(results) if r.model != MAIN_MODEL]
    if not runs:
        raise MissingData("no uniform-attention-transformer or MLP parity runs")
    models = sorted({r.model for r in runs})
    fig, axes = figure("full", aspect=0.36, ncols=len(models), sharey=True)
    for ax, model in zip(axes[0], models):
        groups = _group([r for r in runs if r.model == model])
        palette = colours(len(groups))
        for colour, cond in zip(palette, sorted(groups, key=_order)):
            members = groups[cond]
            for column, ls, what in (("train_acc", "--", "train"), ("val_acc", "-", "held-out")):
                band = seed_band(members, column)
                if not band.empty:
                    _plot_band(ax, band, colour, f"{members[0].label}, {what}", ls)
        n, k, size = members[0].setting
        _accuracy_axes(ax, f"{model}, $(n,k)=({n},{k})$, $N={size}$")
        ax.legend(loc="lower right")
    axes[0, 0].set_ylabel("accuracy")
    return fig


def _read_csv(path: Path, produced_by: str) -> pd.DataFrame:
    if not path.exists():
        raise MissingData(f"{path} not found (run {produced_by})")
    if not path.is_file():
        raise UserError(f"{path} is not a file")
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # summarize found nothing to correlate, say
        raise MissingData(f"{path} has no rows") from None
    except pd.errors.ParserError as exc:
        raise UserError(f"{path} is not a readable CSV ({type(exc).__name__})") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise UserError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


SUMMARIZE = "python -m experiments.parity.summarize"


def summary_table(results: Path, name: str = "summary.csv") -> pd.DataFrame:
    """A table of results/parity/ written by summarize (summary.csv: one row
    per run; summary_by_condition.csv: one per condition)."""
    return _read_csv(Path(results) / "parity" / name, SUMMARIZE)


# keys that tell the settings of theory_vs_speed.csv apart (summarize groups by them)
SPEED_KEYS = ("model", "n", "k", "train_size", "weight_decay", "lr", "n_embd")


def speed_correlations(results: Path) -> pd.DataFrame:
    """The transformer rows of results/parity/theory_vs_speed.csv."""
    tvs = _read_csv(Path(results) / "parity" / "theory_vs_speed.csv", SUMMARIZE)
    needed = {"k", "weight_decay", "spearman_rho_PS_speed"}
    if not needed <= set(tvs.columns):
        raise MissingData(f"theory_vs_speed.csv lacks columns {sorted(needed - set(tvs.columns))}")
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


def _in_setting(table: pd.DataFrame, setting: pd.Series) -> pd.DataFrame:
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
        rows, medians = (_in_setting(frame, setting) for frame in (md, cond))
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


def _columns_like(frame: pd.DataFrame, word: str) -> list[str]:
    return [c for c in frame.columns if word in c.lower() and pd.api.types.is_numeric_dtype(frame[c])]


def _regime_column(frame: pd.DataFrame, word: str) -> str:
    """The per-token CE of one regime (``ce_signal``) if logged, else its loss
    share (``signal_loss``); never rates such as p_signal or signal_frac."""
    candidates = [c for c in _columns_like(frame, word) if "p_" + word not in c and "frac" not in c]
    return sorted(candidates, key=lambda c: ("ce_" not in c, "loss" not in c, len(c)))[0]


def signal_noise(results: Path):
    """Measured loss on signal- vs noise-regime tokens for the MD windows
    (first seed of each window, main setting and the largest weight decay)."""
    runs = _require_runs(results)
    setting = main_setting(results)
    md = [r for r in runs if r.objective == "md" and r.model == MAIN_MODEL and r.setting == setting
          and any("loss" in c or "ce_" in c for c in _columns_like(r.metrics, "signal"))
          and any("loss" in c or "ce_" in c for c in _columns_like(r.metrics, "noise"))]
    if not md:
        raise MissingData("no MD run logs signal/noise loss columns")
    wd = max((r.weight_decay for r in md if r.weight_decay is not None), default=None)
    md = [r for r in md if r.weight_decay == wd]
    first: dict = {}
    for run in sorted(md, key=lambda r: (r.seed is None, r.seed)):
        first.setdefault(run.condition, run)
    fig, axes = figure("full", aspect=0.36, ncols=2, sharex=True)
    palette = colours(len(first))
    for colour, cond in zip(palette, sorted(first, key=_order)):
        run = first[cond]
        for ax, word in zip(axes[0], ("signal", "noise")):
            column = _regime_column(run.metrics, word)
            series = run.metrics[["step", column]].dropna()
            ax.plot(series["step"], series[column], color=colour, label=run.label)
            ax.set_ylabel(column.replace("_", " "))
    if _regime_column(first[next(iter(first))].metrics, "noise").split("/")[-1].startswith("ce_"):
        # unidentifiable bits are independent of what is visible: Bayes CE is log 2
        axes[0, 1].axhline(np.log(2), color="black", ls=":", lw=0.8, label=r"$\log 2$ (Bayes)")
    axes[0, 0].set_title("loss on identifiable (signal-regime) tokens")
    axes[0, 1].set_title("loss on unidentifiable (noise-regime) tokens")
    for ax in axes[0]:
        ax.set_xlabel("step")
    n, k, size = setting
    axes[0, 1].legend(title=f"$(n,k)=({n},{k})$, $N={size}$, wd={_fmt(wd)}", loc="best")
    return fig


def energy(results: Path):
    runs = [r for r in _require_runs(results) if _columns_like(r.metrics, "energy")]
    if not runs:
        raise MissingData("no parity run logs an energy column")
    fig, axes = figure("column")
    ax = axes[0, 0]
    for colour, run in zip(colours(len(runs)), runs):
        column = _columns_like(run.metrics, "energy")[0]
        series = run.metrics[["step", column]].dropna()
        ax.plot(series["step"], series[column], color=colour, label=f"{run.model}, {run.label}, seed {run.seed}")
    ax.set_xlabel("step")
    ax.set_ylabel(r"energy $E(W)=c^\top\Sigma^\dagger c$")
    ax.legend(loc="best")
    return fig


# --- the (k, N) phase diagram: reads results/parity/phase/{cells,km_curves}.csv --

PHASE_DIR = Path("parity") / "phase"
BOUND_DELTA = 0.05  # the delta of the aggregator's sample_complexity_bound column
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


def phase_table(results: Path, name: str) -> pd.DataFrame:
    return _read_csv(Path(results) / PHASE_DIR / name, f"{SUMMARIZE} --root results/parity/phase")


def phase_cells(results: Path, needed=()) -> pd.DataFrame:
    """The OS and theory-window MD rows of cells.csv, with a ``series`` label."""
    cells = phase_table(results, "cells.csv")
    missing = sorted({"k", "train_size", "objective", "weight_decay", "theory_window", *needed} - set(cells.columns))
    if missing:
        raise MissingData(f"{PHASE_DIR / 'cells.csv'} lacks columns {missing} (rerun {SUMMARIZE})")
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
        for i, label in enumerate(PHASE_SERIES.values()):
            for wd, rows in cells[(cells["k"] == k) & (cells["series"] == label)].groupby("weight_decay"):
                rows = rows.sort_values("train_size")
                main = np.isclose(wd, main_wd)
                # nudge the series apart on the log axis so their intervals do not hide each other
                x = rows["train_size"] * 2 ** (0.08 * (i - 1.5))
                ax.errorbar(x, rows[rate], yerr=[rows[rate] - rows[low], rows[high] - rows[rate]],
                            color=palette[label], marker="o", ms=3.5, mfc=palette[label] if main else "none",
                            ls="-" if main else ":", lw=1, capsize=2,
                            label=label + ("" if main else f", wd {_fmt(wd)}"))
                if bounds and main and "sample_complexity_bound" in rows and rows["sample_complexity_bound"].notna().any():
                    ax.axvline(rows["sample_complexity_bound"].dropna().iloc[0], color=palette[label], ls="--", lw=0.8)
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
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labels.setdefault(label, handle)
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
    km = phase_table(results, "km_curves.csv")
    needed = {"step", "survival", "survival_low", "survival_high", "censored"}
    if not needed <= set(km.columns):
        raise MissingData(f"km_curves.csv lacks columns {sorted(needed - set(km.columns))}")
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


PAPER_MLP_DIR = Path("parity") / "paper_mlp"


def paper_mlp(results: Path):
    """The paper's Fig. 5 setting ((20,6), N = 5000, full batch, reduced MLP):
    one panel per objective / window, train and held-out accuracy vs step,
    median and interquartile band over seeds (curves.csv of the aggregator)."""
    curves = _read_csv(Path(results) / PAPER_MLP_DIR / "curves.csv",
                       f"{SUMMARIZE} --root results/parity/paper_mlp")
    if "median" not in curves.columns:
        raise MissingData(f"{PAPER_MLP_DIR / 'curves.csv'} has no median column (rerun {SUMMARIZE})")
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
        seeds = int(part["n_runs"].max())
        for (metric, label, ls), colour in zip((("train_acc", "train", "--"), ("val_acc", "held-out", "-")), palette):
            line = part[part["metric"] == metric].sort_values("step")
            ax.plot(line["step"], line["median"], color=colour, ls=ls, label=label)
            if seeds > 1:
                ax.fill_between(line["step"], line["q25"], line["q75"], color=colour, alpha=0.2, lw=0)
        title = "output sup." if arm == "os" else f"MD $U[0,{arm:g}]$"
        _accuracy_axes(ax, f"{title} ({seeds} seed{'s' if seeds > 1 else ''})")
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


FIGURES = {
    "parity_paper_mlp": paper_mlp,
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
