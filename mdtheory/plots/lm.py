"""Language-model figures, read from results/lm/.

    lm_window_sweep    full-range test loss vs training-window midpoint, with
                       the U[0,1] baseline, the corpus-predicted t* (Fig 3),
                       the best window, chosen on val by experiments.lm.summarize,
                       and the adaptive samplers; one panel per corpus
    lm_loss_vs_step    full-range test loss vs step for every window (Fig 7)
    lm_loss_by_t       final test loss per t-bin for every window
    lm_durability      gap to U[0,1] vs tokens seen, per sampler: the sweep's
                       budget, 4x and 16x, and a 4x wider model
    lm_adaptive_mass   where the adaptive sampler put its mass over t during
                       training, with t* and the window chosen on val

Input: results/lm/window_sweep_by_window.csv (one row per training law,
written by ``python -m experiments.lm.summarize``: means, error bars and
the window chosen on val are computed there only), the same files of each
corpus swept on its own (results/lm/<corpus>/), results/lm/durability_summary.csv
(the same aggregator), the run records under results/lm/runs/<preset>/,
results/lm/<corpus>/runs/<preset>/ and results/lm/durability/runs/<stage>/
(per-step curves, the adaptive sampler's mass) and each corpus's
predicted_t.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd

from ..errors import UserError
from ..runfiles import RunRecord, read_runs, spec_window
from .style import MissingData, figure

LOSS = "full_range_test_loss"
SUMMARIZE = "python -m experiments.lm.summarize"
BY_WINDOW = "window_sweep_by_window.csv"
NOT_A_CORPUS = {"tiny"}  # the tiny preset's smoke-test sweep (results/lm/tiny)
MASS_STAGE = "x16"  # the durability stage whose adaptive run lm_adaptive_mass shows
ADAPTIVE_COLOURS = ("C4", "C9", "C6")  # apart from U[0,1]'s C3 and the windows' C0/C2


def is_full_range(t0, t1) -> bool:
    return abs(float(t0)) < 1e-9 and abs(float(t1) - 1.0) < 1e-9


def _window_colour(midpoint: float):
    return mpl.colormaps["viridis"](0.05 + 0.85 * float(midpoint))


def window_table(results: Path, folder: Path | None = None) -> pd.DataFrame:
    """The masked-diffusion laws of the sweep in ``folder`` (default
    results/lm), as summarize wrote them: mean loss over seeds (``loss``),
    its error bar (``err``: the larger of the standard error across seeds and
    the mean within-run one), seeds, the mean val loss and whether the window
    was chosen on val."""
    path = Path(folder or Path(results) / "lm") / BY_WINDOW
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


def predicted_t_star(results: Path, folder: Path | None = None):
    """The corpus-predicted t* of the sweep in ``folder`` (default results/lm); None when not derived."""
    path = Path(folder or Path(results) / "lm") / "predicted_t.json"
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("t_star")
        return None if value is None else float(value)
    except (ValueError, AttributeError, TypeError) as exc:  # ValueError covers bad JSON and bad UTF-8
        raise UserError(f"{path} is corrupt ({type(exc).__name__})") from None


def corpus_folders(results: Path) -> list[Path]:
    """results/lm (the committed quick sweep) and each corpus swept on its own,
    results/lm/<corpus>/ (a folder holding the aggregator's table)."""
    root = Path(results) / "lm"
    own = sorted(p for p in root.iterdir() if p.is_dir() and p.name not in NOT_A_CORPUS
                 and (p / BY_WINDOW).exists()) if root.is_dir() else []
    return [root, *own]


def corpus_name(folder: Path) -> str:
    """The corpus swept in ``folder``, from its window_sweep.json (a text file by its stem)."""
    try:
        preset = json.loads((Path(folder) / "window_sweep.json").read_text(encoding="utf-8"))["preset"]
        return Path(preset["text_file"]).stem if preset.get("text_file") else str(preset["corpus"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Path(folder).name


def sweep_panels(results: Path) -> list[dict]:
    """One panel per swept corpus: its name, its aggregator table and its t*."""
    panels, missing = [], None
    for folder in corpus_folders(results):
        try:
            table = window_table(results, folder)
        except MissingData as why:
            missing = missing or why
            continue
        panels.append({"corpus": corpus_name(folder), "table": table, "t_star": predicted_t_star(results, folder)})
    if not panels:
        raise missing
    return panels


def _draw_sweep(ax, table: pd.DataFrame, t_star) -> None:
    baseline = table[[is_full_range(a, b) for a, b in zip(table.t0, table.t1)]]
    # the ten-window curve; the window centred on t* is drawn apart
    narrow = table[((table["width"] - 0.1).abs() < 1e-6) & (table["kind"] != "predicted")]
    adaptive = table[table["kind"] == "adaptive"]  # no window: drawn as levels
    other = table.drop(index=baseline.index.union(narrow.index).union(adaptive.index))
    if not narrow.empty:
        ax.errorbar(narrow["mid"], narrow["loss"], yerr=narrow["err"], fmt="o-", color="C0", capsize=2,
                    label=f"$U[a,a+0.1]$ ({int(narrow['seeds'].min())}+ seeds)")
    for _, row in other.iterrows():
        ax.errorbar([row["mid"]], [row["loss"]], yerr=[row["err"]], fmt="s", color="C2", capsize=2,
                    label="width-0.1 window centred on $t^*$" if row.kind == "predicted" else
                    f"$U[{row.t0:.3g},{row.t1:.3g}]$")
    if not baseline.empty:
        b = baseline.iloc[0]
        ax.axhline(b["loss"], color="C3", ls="--", label=f"$U[0,1]$ baseline ({int(b['seeds'])} seeds)")
        ax.axhspan(b["loss"] - b["err"], b["loss"] + b["err"], color="C3", alpha=0.12, lw=0)
    for i, (_, row) in enumerate(adaptive.iterrows()):
        ax.axhline(row["loss"], color=ADAPTIVE_COLOURS[i % len(ADAPTIVE_COLOURS)], ls="-.",
                   label=f"{row.get('sampler', 'adaptive')}")
    if t_star is not None:
        ax.axvline(t_star, color="grey", ls=":", label="corpus-predicted $t^*$")
        ax.annotate(f"$t^*={t_star:.3f}$", (t_star, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -2),
                    textcoords="offset points", ha="left", va="top", fontsize=6, color="0.35")
    best = narrow[narrow["best_on_val"]]
    if not best.empty:
        ax.plot(best["mid"], best["loss"], "o", ms=9, mfc="none", mec="black", mew=1.0,
                label="best window on val (test loss shown)")
    ax.set_xlabel("training-window midpoint")
    ax.set_ylabel("full-range test loss (nats/token)")
    ax.set_xlim(0, 1)


def window_sweep(results: Path):
    panels = sweep_panels(results)
    fig, axes = figure("column", nrows=len(panels), layout="constrained")
    legend = {}
    for ax, panel in zip(axes[:, 0], panels):
        _draw_sweep(ax, panel["table"], panel["t_star"])
        ax.set_title(panel["corpus"])
        legend.update((label, handle) for handle, label in zip(*ax.get_legend_handles_labels())
                      if label not in legend)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncol=2, fontsize=5.5)
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
        if len(bins) >= 2 and run["t0"] is not None:  # an adaptive law has no window to name it by
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


# --- durability: does the gain last? -----------------------------------------

DURABILITY_SUMMARY = "durability_summary.csv"
WIDE_DODGE = 1.3  # the larger model is drawn this factor to the right of its token count, beside the base model
DURABILITY_COLUMNS = {"stage", "sampler", "kind", "n_params", "tokens", "device", "gap_test_mean",
                      "gap_test_ci_low", "gap_test_ci_high", "gap_test_per_seed"}


def card_name(device) -> str:
    """A device cell in a few letters: "CPU", "H100" (from "NVIDIA H100 80GB HBM3");
    a cell naming several devices ("cpu; ...") gives them joined by "+"."""
    names = []
    for name in str(device).split("; "):
        words = name.replace("NVIDIA ", "").split()
        if words:
            names.append("CPU" if name == "cpu" else words[0])
    return "+".join(dict.fromkeys(names)) or "?"


def _seed_gaps(cell, path: Path) -> dict[int, float]:
    """"0:-0.1;1:-0.2" -> {0: -0.1, 1: -0.2} (the aggregator's per-seed cell)."""
    if not isinstance(cell, str) or not cell:
        return {}
    try:
        return {int(seed): float(gap) for seed, gap in (item.split(":") for item in cell.split(";"))}
    except ValueError:
        raise UserError(f"{path} has a per-seed cell {cell!r} that is not seed:gap;...") from None


def durability_table(results: Path) -> pd.DataFrame:
    """durability_summary.csv as the aggregator wrote it (one row per stage and
    sampler), plus ``seed_gaps`` ({seed: test gap to U[0,1]}) and ``wide``
    (a model with more parameters than the smallest one)."""
    path = Path(results) / "lm" / DURABILITY_SUMMARY
    if not path.exists():
        raise MissingData(f"{path} not found (run python -m experiments.lm.durability, then {SUMMARIZE})")
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise MissingData(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is corrupt ({type(exc).__name__})") from None
    missing = sorted(DURABILITY_COLUMNS - set(table))
    if missing:
        raise UserError(f"{path} lacks the column(s) {', '.join(missing)} (rerun {SUMMARIZE})")
    if table.empty:
        raise MissingData(f"{path} has no rows")
    table["seed_gaps"] = [_seed_gaps(cell, path) for cell in table["gap_test_per_seed"]]
    table["wide"] = table["n_params"] > table["n_params"].min()
    table["card"] = [card_name(d) for d in table["device"].fillna("")]
    return table


def stage_labels(table: pd.DataFrame) -> dict[str, str]:
    """stage -> its label: the stage's name, with its device ("x4: H100")
    when the stages did not all run on one."""
    cards = table.groupby("stage", sort=False)["card"].agg(lambda c: "+".join(dict.fromkeys(c)))
    named = cards.nunique() > 1
    return {stage: f"{stage}: {card}" if named else str(stage) for stage, card in cards.items()}


def _sampler_style(row) -> tuple[str, str]:
    """(colour, label) of a sampler, as in lm_window_sweep."""
    if row["kind"] == "predicted":
        return "C2", "window centred on $t^*$"
    if row["kind"] == "window":
        t0, t1 = spec_window(str(row["sampler"]))
        return "C0", f"$U[{t0:g},{t1:g}]$ (chosen on val)"
    return None, str(row["sampler"])


def durability(results: Path):
    table = durability_table(results)
    others = table[table["kind"] != "uniform"]
    if others.empty:
        raise MissingData("durability_summary.csv holds only U[0,1]")
    fig, axes = figure("column", aspect=0.8, layout="constrained")
    ax = axes[0, 0]
    ax.axhline(0.0, color="C3", ls="--", label="$U[0,1]$ (same stage and seed)")
    samplers = list(dict.fromkeys(others["sampler"]))
    adaptive = 0
    for i, sampler in enumerate(samplers):
        rows = others[others["sampler"] == sampler].sort_values("tokens")
        colour, label = _sampler_style(rows.iloc[0])
        if colour is None:
            colour, adaptive = ADAPTIVE_COLOURS[adaptive % len(ADAPTIVE_COLOURS)], adaptive + 1
        shift = 1 + 0.07 * (i - (len(samplers) - 1) / 2)  # side by side on the log axis
        for wide, part in rows.groupby("wide"):
            x = part["tokens"].to_numpy(float) * shift * (WIDE_DODGE if wide else 1.0)
            mean = part["gap_test_mean"].to_numpy(float)
            yerr = np.nan_to_num([mean - part["gap_test_ci_low"], part["gap_test_ci_high"] - mean])
            ax.errorbar(x, mean, yerr=yerr, fmt="D" if wide else "o-", color=colour, capsize=2,
                        mfc="white" if wide else colour, label=None if wide else label, zorder=3)
            seeds = [(xi, gap) for xi, gaps in zip(x, part["seed_gaps"]) for gap in gaps.values()]
            if seeds:
                ax.plot(*zip(*seeds), "D" if wide else "o", ms=2.5, color=colour, alpha=0.6, mew=0, zorder=4)
    wide = others[others["wide"]]
    if not wide.empty:
        stages = ", ".join(dict.fromkeys(wide["stage"]))
        ax.plot([], [], "D", color="0.3", mfc="white",
                label=f"larger model: {stages}, {int(wide['n_params'].max()):,} parameters (shifted right)")
    ax.plot([], [], "o", ms=2.5, color="0.3", alpha=0.6, mew=0, label="one seed")
    stages = table.groupby("stage", sort=False).agg(tokens=("tokens", "max"), wide=("wide", "any"))
    for stage, text in stage_labels(table).items():
        x = stages.loc[stage, "tokens"] * (WIDE_DODGE if stages.loc[stage, "wide"] else 1.0)
        if not np.isfinite(x):
            continue  # a stage whose token count was not recorded has no place on the axis
        # a second row for the larger model, whose label would overlap the base model's
        rise = 9 if stages.loc[stage, "wide"] else 2
        ax.annotate(text, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(0, rise), textcoords="offset points",
                    ha="center", va="bottom", fontsize=5.5, color="0.35")
    ax.set_xscale("log")
    ticks = sorted(set(stages["tokens"].dropna()))
    ax.set_xticks(ticks, [f"{t / 1e6:.3g}M" for t in ticks])
    ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
    if ticks:
        ax.set_xlim(ticks[0] / 1.5, ticks[-1] * WIDE_DODGE * 1.3)
    ax.set_xlabel("tokens seen per run")
    ax.set_ylabel("test loss minus $U[0,1]$ (nats/token)")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=5.5,
               title="mean over seeds, 95% t-interval")
    return fig


# --- where the adaptive sampler puts its mass ---------------------------------

def is_adaptive(run: RunRecord) -> bool:
    law = run.task.get("sampler_law") or {}
    return law.get("kind") == "adaptive" or str(run.task.get("sampler", "")).startswith("adaptive")


def mass_over_training(run: RunRecord) -> dict | None:
    """The law's sampling mass at each evaluation of an adaptive run: steps,
    the bin edges on [eps, 1] and ``density`` (evaluations x bins; mass per
    bin times the number of bins, so 1 is uniform); None if never logged."""
    records = [r for r in run.metrics if isinstance(r.get("sampler_mass"), list)]
    if not records:
        return None
    bins = {len(r["sampler_mass"]) for r in records}
    if len(bins) != 1:
        raise UserError(f"{run.path}/metrics.jsonl has sampler_mass of {len(bins)} different lengths")
    n = bins.pop()
    law = run.task.get("sampler_law") or {}
    eps = float(law.get("eps", run.task.get("eps", 0.0)))
    return {"steps": np.array([r["step"] for r in records], dtype=float),
            "edges": np.linspace(eps, 1.0, n + 1),
            "density": np.array([r["sampler_mass"] for r in records], dtype=float) * n,
            "rule": law.get("rule", "signal"), "seed": run.seed}


def best_on_val(results: Path, folder: Path) -> tuple[float, float] | None:
    try:
        table = window_table(results, folder)
    except MissingData:
        return None
    best = table[table["best_on_val"].astype(bool)]
    return None if best.empty else (float(best["t0"].iloc[0]), float(best["t1"].iloc[0]))


def adaptive_mass_panels(results: Path, seed: int = 0) -> list[dict]:
    """One panel per adaptive run of ``seed``: each corpus's sweep (every
    rule), then the durability stage MASS_STAGE; with the corpus's t* and the
    window chosen on val."""
    root = Path(results) / "lm"
    sources = [(folder, sorted(p for p in (folder / "runs").glob("*") if p.is_dir()), "")
               for folder in corpus_folders(results)]
    sources.append((root, [root / "durability" / "runs" / MASS_STAGE], f", {MASS_STAGE}"))
    panels = []
    for folder, run_dirs, stage in sources:
        runs = sorted((run for d in run_dirs for run in read_runs(d) if is_adaptive(run) and run.seed == seed),
                      key=lambda run: ((run.task.get("sampler_law") or {}).get("rule", "signal") != "signal",
                                       run.name))
        if not runs:
            continue
        t_star, best, corpus = predicted_t_star(results, folder), best_on_val(results, folder), corpus_name(folder)
        for run in runs:
            mass = mass_over_training(run)
            if mass is not None:
                panels.append({**mass, "title": f"{corpus}{stage}: {mass['rule']} (seed {seed})",
                               "t_star": t_star, "best_window": best})
    if not panels:
        raise MissingData("no adaptive-sampler run with sampler_mass under results/lm")
    return panels


def adaptive_mass(results: Path):
    panels = adaptive_mass_panels(results)
    ncols = min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    fig, axes = figure("full", aspect=0.27, ncols=ncols, nrows=nrows, layout="constrained")
    top = max(float(p["density"].max()) for p in panels)
    for ax, panel in zip(axes.flat, panels):
        centres = (panel["edges"][:-1] + panel["edges"][1:]) / 2
        mesh = ax.pcolormesh(panel["steps"], centres, panel["density"].T, shading="nearest", cmap="viridis",
                             vmin=0.0, vmax=top, rasterized=True)
        if panel["t_star"] is not None:
            ax.axhline(panel["t_star"], color="white", ls="--", lw=1.0, label="corpus-predicted $t^*$")
        if panel["best_window"] is not None:
            for i, t in enumerate(panel["best_window"]):
                ax.axhline(t, color="C1", ls=":", lw=1.0, label="window chosen on val" if i == 0 else None)
        ax.set_title(panel["title"], fontsize=6.5)
        ax.set_ylim(0, 1)
        ax.set_xlabel("step")
        ax.set_ylabel("mask rate $t$")
        ax.grid(False)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.colorbar(mesh, ax=axes, label="sampling density (1 = uniform)", shrink=0.9)
    legend = {}
    for ax in axes.flat:
        legend.update((label, handle) for handle, label in zip(*ax.get_legend_handles_labels()) if label not in legend)
    if legend:
        fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncol=2, fontsize=6,
                   facecolor="0.85")
    return fig


FIGURES = {
    "lm_window_sweep": window_sweep,
    "lm_loss_vs_step": loss_vs_step,
    "lm_loss_by_t": loss_by_t,
    "lm_durability": durability,
    "lm_adaptive_mass": adaptive_mass,
}
