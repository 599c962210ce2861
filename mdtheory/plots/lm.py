"""Language-model figures, read from results/lm/.

    lm_window_sweep    full-range test loss vs training-window midpoint, with
                       the U[0,1] baseline, the corpus-predicted t* (Fig 3) and
                       the best window, chosen on val (mdtheory.window_selection)
    lm_loss_vs_step    full-range test loss vs step for every window (Fig 7)
    lm_loss_by_t       final test loss per t-bin for every window

Input: results/lm/window_sweep.csv, results/lm/runs/<run>/{config.json,
metrics.jsonl}, results/lm/predicted_t.json.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd

from ..errors import UserError
from ..window_selection import VAL, is_full_range, select_best_window
from .parity import _find, read_config, read_jsonl
from .style import MissingData, figure

LOSS = "full_range_test_loss"


def _window_colour(midpoint: float):
    return mpl.colormaps["viridis"](0.05 + 0.85 * float(midpoint))


def window_table(results: Path) -> pd.DataFrame:
    """Per window: mean loss over seeds, its spread and the number of seeds.

    The error bar is the larger of the standard error across seeds and the
    mean of the evaluations' own standard errors (over t and masks), so a
    single-seed point still carries its evaluation noise.
    """
    table = read_sweep(results)
    if "objective" in table:  # the AR baseline's loss is not a masked-diffusion bound
        table = table[table["objective"].fillna("md") == "md"]
    if "steps" in table and table["steps"].nunique() > 1:
        table = table[table["steps"] == table["steps"].max()]  # equal budgets only
    rows = []
    for (t0, t1), group in table.groupby(["t0", "t1"]):
        seeds = len(group)
        across = group[LOSS].std(ddof=1) / np.sqrt(seeds) if seeds > 1 else 0.0
        within = group[f"{LOSS}_se"].mean() if f"{LOSS}_se" in group else 0.0
        rows.append({"t0": t0, "t1": t1, "mid": (t0 + t1) / 2, "width": t1 - t0,
                     "loss": group[LOSS].mean(), "err": float(np.nanmax([across, within])), "seeds": seeds,
                     "val_loss": group[VAL].mean() if VAL in group else float("nan"),
                     "kind": group["kind"].iloc[0] if "kind" in group else "window"})
    return pd.DataFrame(rows).sort_values(["t0", "t1"]).reset_index(drop=True)


def read_sweep(results: Path) -> pd.DataFrame:
    """results/lm/window_sweep.csv; absent or without runs: MissingData (skip)."""
    path = Path(results) / "lm" / "window_sweep.csv"
    if not path.exists():
        raise MissingData(f"{path} not found")
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise MissingData(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is corrupt ({type(exc).__name__})") from None
    missing = {"t0", "t1", LOSS} - set(table.columns)
    if missing:
        raise MissingData(f"{path} lacks columns {sorted(missing)}")
    if table.empty:
        raise MissingData(f"{path} has no finished runs")
    return table


def best_window(results: Path) -> dict | None:
    """The sweep's best window, chosen on val (None for a sweep without val)."""
    try:
        return select_best_window(read_sweep(results))
    except UserError:  # a sweep from before val was logged: no choice is made on test
        return None


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
    other = table.drop(index=baseline.index.union(narrow.index))
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
    t_star = predicted_t_star(results)
    if t_star is not None:
        ax.axvline(t_star, color="grey", ls=":", label=f"predicted $t^*={t_star:.3f}$")
    selection = best_window(results)
    if selection is not None:
        best = narrow[(narrow["t0"] - selection["best"]["t0"]).abs().lt(1e-9)
                      & (narrow["t1"] - selection["best"]["t1"]).abs().lt(1e-9)]
        if not best.empty:
            ax.plot(best["mid"], best["loss"], "o", ms=9, mfc="none", mec="black", mew=1.0,
                    label="best window on val (test loss shown)")
    ax.set_xlabel("training-window midpoint")
    ax.set_ylabel("full-range test loss (nats/token)")
    ax.set_xlim(0, 1)
    ax.legend(loc="upper center")
    return fig


def load_lm_runs(results: Path) -> list[dict]:
    """Each run: name, t0, t1, seed, metrics (DataFrame)."""
    runs = []
    # runs may be grouped by preset: results/lm/runs/<preset>/<run>/metrics.jsonl
    for metrics_path in sorted((Path(results) / "lm" / "runs").rglob("metrics.jsonl")):
        metrics = read_jsonl(metrics_path)
        if metrics.empty or "step" not in metrics:
            continue
        cfg_path = metrics_path.parent / "config.json"
        config = read_config(cfg_path) if cfg_path.exists() else {}  # corrupt: one UserError line
        window = _find(config, "window")
        if not (isinstance(window, (list, tuple)) and len(window) == 2):
            window = (_find(config, "t0"), _find(config, "t1"))
        if window[0] is None:  # fall back to a run name such as "w0.40-0.50_s0"
            match = re.search(r"(\d*\.?\d+)[-_,](\d*\.?\d+)", metrics_path.parent.name)
            if not match:
                continue
            window = (match.group(1), match.group(2))
        runs.append({"name": metrics_path.parent.name, "t0": float(window[0]), "t1": float(window[1]),
                     "objective": _find(config, "objective") or "md",
                     "seed": _find(config, "seed"), "metrics": metrics.sort_values("step")})
    return runs


def loss_vs_step(results: Path):
    runs = [r for r in load_lm_runs(results) if LOSS in r["metrics"]]
    if not runs:
        raise MissingData(f"no results/lm/runs/*/metrics.jsonl with {LOSS}")
    fig, axes = figure("column", aspect=1.0, layout="constrained")
    ax = axes[0, 0]
    by_window: dict = {}
    for run in runs:
        # an AR run has no window (its config still names the default
        # sampler): keep it apart from the U[0,1] MD runs
        key = ("ar", 0.0, 0.0) if run["objective"] == "ar" else ("md", run["t0"], run["t1"])
        by_window.setdefault(key, []).append(run)
    for (objective, t0, t1), members in sorted(by_window.items()):
        table = pd.concat([m["metrics"].set_index("step")[LOSS] for m in members], axis=1).mean(axis=1).dropna()
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
    finite = np.concatenate([m["metrics"][LOSS].dropna().to_numpy() for m in runs])
    ax.set_ylim(np.nanmin(finite) * 0.97, np.nanpercentile(finite, 95))
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=5.5,
               title="training window (mean over seeds)")
    return fig


_BIN_KEY = re.compile(r"(?:loss[_a-z]*?(?:t|bin)[_=]?|bin/)(\d*\.?\d+)(?:[_-](\d*\.?\d+))?$")


def _t_bins(record: pd.Series) -> dict[float, float]:
    """Loss per t-bin centre from one metrics record, whatever the layout:
    a dict {centre or "a-b": loss}, a list aligned with a 't_bins'/'t_bin_centers'
    field, or flat keys such as loss_t0.15 / loss_bin_0.1_0.2."""
    bins: dict[float, float] = {}
    for key, value in record.items():
        if isinstance(value, dict) and "loss" in key and ("t" in key or "bin" in key):
            for b, v in value.items():
                nums = [float(x) for x in re.findall(r"\d*\.?\d+", str(b))]
                if nums and v is not None:
                    bins[float(np.mean(nums[:2]))] = float(v)
        elif isinstance(value, list) and "loss" in key and "bin" in key:
            centres = next((record[c] for c in ("t_bin_centers", "t_bin_centres", "t_bins", "bin_centers")
                            if c in record and isinstance(record[c], list)), None)
            if centres is None:
                centres = list((np.arange(len(value)) + 0.5) / len(value))
            for c, v in zip(centres, value):
                c = float(np.mean(c)) if isinstance(c, (list, tuple)) else float(c)
                if v is not None:
                    bins[c] = float(v)
        else:
            match = _BIN_KEY.search(key)
            if match and value is not None and np.isscalar(value) and not isinstance(value, str) and not key.endswith("_se"):
                a, b = match.group(1), match.group(2)
                bins[(float(a) + float(b)) / 2 if b else float(a)] = float(value)
    return dict(sorted(bins.items()))


def loss_by_t(results: Path):
    runs = load_lm_runs(results)
    curves = {}
    for run in runs:
        if run["objective"] == "ar":
            continue  # next-token NLL has no mask rate
        bins = _t_bins(run["metrics"].iloc[-1])
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
