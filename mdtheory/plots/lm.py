"""Language-model figures, read from results/lm/.

    lm_window_sweep    full-range test loss vs training-window midpoint, with
                       the U[0,1] baseline, the corpus-predicted t* (Fig 3) and
                       the best window, chosen on val by experiments.lm.summarize
    lm_loss_vs_step    full-range test loss vs step for every window (Fig 7)
    lm_loss_by_t       final test loss per t-bin for every window

Input: results/lm/window_sweep_by_window.csv (one row per training law,
written by ``python -m experiments.lm.summarize``: means, error bars and
the window chosen on val are computed there only), the run records under
results/lm/runs/<preset>/ (per-step curves) and results/lm/predicted_t.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd

from ..errors import UserError
from ..runfiles import read_runs
from .style import MissingData, figure

LOSS = "full_range_test_loss"
SUMMARIZE = "python -m experiments.lm.summarize"


def is_full_range(t0, t1) -> bool:
    return abs(float(t0)) < 1e-9 and abs(float(t1) - 1.0) < 1e-9


def _window_colour(midpoint: float):
    return mpl.colormaps["viridis"](0.05 + 0.85 * float(midpoint))


def window_table(results: Path) -> pd.DataFrame:
    """The masked-diffusion laws of the sweep, as summarize wrote them:
    mean loss over seeds (``loss``), its error bar (``err``: the larger of
    the standard error across seeds and the mean within-run one), seeds,
    the mean val loss and whether the window was chosen on val."""
    path = Path(results) / "lm" / "window_sweep_by_window.csv"
    if not path.exists():
        raise MissingData(f"{path} not found (run {SUMMARIZE})")
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise MissingData(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is corrupt ({type(exc).__name__})") from None
    table = table[table["objective"] == "md"]
    if table.empty:
        raise MissingData(f"{path} has no masked-diffusion rows")
    return table.rename(columns={"midpoint": "mid", "loss_mean": "loss", "val_loss_mean": "val_loss"}) \
        .sort_values(["t0", "t1"]).reset_index(drop=True)


def sweep_summary(results: Path) -> dict:
    """window_sweep_summary.json: the best window's paired difference to U[0, 1]."""
    path = Path(results) / "lm" / "window_sweep_summary.json"
    if not path.exists():
        raise MissingData(f"{path} not found (run {SUMMARIZE})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"{path} is corrupt ({type(exc).__name__})") from None


def predicted_t_star(results: Path):
    path = Path(results) / "lm" / "predicted_t.json"
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("t_star")
        return None if value is None else float(value)
    except (ValueError, AttributeError, TypeError) as exc:  # ValueError covers bad JSON and bad UTF-8
        raise UserError(f"{path} is corrupt ({type(exc).__name__})") from None


def window_sweep(results: Path):
    table = window_table(results)
    baseline = table[[is_full_range(a, b) for a, b in zip(table.t0, table.t1)]]
    # the ten-window curve; the window centred on t* is drawn apart
    narrow = table[((table["width"] - 0.1).abs() < 1e-6) & (table["kind"] != "predicted")]
    adaptive = table[table["kind"] == "adaptive"]  # no window: drawn as levels
    other = table.drop(index=baseline.index.union(narrow.index).union(adaptive.index))
    fig, axes = figure("column")
    ax = axes[0, 0]
    if not narrow.empty:
        ax.errorbar(narrow["mid"], narrow["loss"], yerr=narrow["err"], fmt="o-", color="C0", capsize=2,
                    label=f"$U[a,a+0.1]$ ({int(narrow['seeds'].min())}+ seeds)")
    for _, row in other.iterrows():
        ax.errorbar([row["mid"]], [row["loss"]], yerr=[row["err"]], fmt="s", color="C2", capsize=2,
                    label=f"$U[{row.t0:.3g},{row.t1:.3g}]$" + (" (centred on $t^*$)" if row.kind == "predicted" else ""))
    if not baseline.empty:
        b = baseline.iloc[0]
        ax.axhline(b["loss"], color="C3", ls="--", label=f"$U[0,1]$ baseline ({int(b['seeds'])} seeds)")
        ax.axhspan(b["loss"] - b["err"], b["loss"] + b["err"], color="C3", alpha=0.12, lw=0)
    for i, (_, row) in enumerate(adaptive.iterrows()):
        ax.axhline(row["loss"], color=f"C{4 + i}", ls="-.", label=f"{row.get('sampler', 'adaptive')}")
    t_star = predicted_t_star(results)
    if t_star is not None:
        ax.axvline(t_star, color="grey", ls=":", label=f"predicted $t^*={t_star:.3f}$")
    best = narrow[narrow["best_on_val"]]
    if not best.empty:
        ax.plot(best["mid"], best["loss"], "o", ms=9, mfc="none", mec="black", mew=1.0,
                label="best window on val (test loss shown)")
    ax.set_xlabel("training-window midpoint")
    ax.set_ylabel("full-range test loss (nats/token)")
    ax.set_xlim(0, 1)
    ax.legend(loc="upper center")
    return fig


def load_lm_runs(results: Path) -> list[dict]:
    """Each run of results/lm/runs/<preset>/: name, objective, t0, t1, seed, metrics (DataFrame)."""
    runs = []
    for preset in sorted(p for p in (Path(results) / "lm" / "runs").glob("*") if p.is_dir()):
        for run in read_runs(preset):
            t0, t1 = run.window or (None, None)
            runs.append({"name": run.name, "objective": run.objective, "t0": t0, "t1": t1, "seed": run.seed,
                         "loss_by_t": run.loss_by_t(), "metrics": pd.DataFrame(run.metrics).sort_values("step")})
    return runs


def loss_vs_step(results: Path):
    runs = [{**r, "loss": "nll_test" if r["objective"] == "ar" else LOSS} for r in load_lm_runs(results)]
    runs = [r for r in runs if r["loss"] in r["metrics"] and (r["objective"] == "ar" or r["t0"] is not None)]
    if not runs:
        raise MissingData(f"no results/lm/runs/*/*/metrics.jsonl with {LOSS}")
    fig, axes = figure("column", aspect=1.0, layout="constrained")
    ax = axes[0, 0]
    by_window: dict = {}
    for run in runs:
        # an AR run has no window (its config still names the default
        # sampler): keep it apart from the U[0,1] MD runs
        key = ("ar", 0.0, 0.0) if run["objective"] == "ar" else ("md", run["t0"], run["t1"])
        by_window.setdefault(key, []).append(run)
    for (objective, t0, t1), members in sorted(by_window.items()):
        table = pd.concat([m["metrics"].set_index("step")[m["loss"]] for m in members], axis=1).mean(axis=1).dropna()
        if objective == "ar":
            ax.plot(table.index, table.values, color="black", ls=":", lw=1.4,
                    label="AR (exact NLL)", zorder=5)
        elif is_full_range(t0, t1):
            ax.plot(table.index, table.values, color="C3", ls="--", lw=1.4, label="$U[0,1]$", zorder=5)
        else:
            ax.plot(table.index, table.values, color=_window_colour((t0 + t1) / 2),
                    label=f"$U[{t0:.2g},{t1:.2g}]$")
    ax.set_xlabel("step")
    ax.set_ylabel("full-range test loss")
    finite = np.concatenate([m["metrics"][m["loss"]].dropna().to_numpy() for m in runs])
    ax.set_ylim(np.nanmin(finite) * 0.97, np.nanpercentile(finite, 95))
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=5.5,
               title="training window (mean over seeds)")
    return fig


def loss_by_t(results: Path):
    runs = load_lm_runs(results)
    curves = {}
    for run in runs:
        bins = run["loss_by_t"]  # empty for AR: next-token NLL has no mask rate
        if len(bins) >= 2:
            curves.setdefault((run["t0"], run["t1"]), []).append(bins)
    if not curves:
        raise MissingData("no LM run logs loss per t-bin")
    fig, axes = figure("column", aspect=1.0, layout="constrained")
    ax = axes[0, 0]
    for (t0, t1), members in sorted(curves.items()):
        table = pd.DataFrame(members).mean(axis=0).sort_index()
        style = dict(color="C3", ls="--", lw=1.4, zorder=5) if is_full_range(t0, t1) else \
            dict(color=_window_colour((t0 + t1) / 2))
        ax.plot(table.index, table.values, marker=".", label=f"$U[{t0:.2g},{t1:.2g}]$", **style)
    ax.set_xlabel("evaluation mask rate $t$ (bin centre)")
    ax.set_ylabel("test loss in bin (final step)")
    ax.set_xlim(0, 1)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=5.5,
               title="training window (mean over seeds)")
    return fig


FIGURES = {
    "lm_window_sweep": window_sweep,
    "lm_loss_vs_step": loss_vs_step,
    "lm_loss_by_t": loss_by_t,
}
