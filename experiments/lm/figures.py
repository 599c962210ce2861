"""Language-model figures, drawn from the LM study's outputs under results/lm/.

    lm_window_sweep    full-range test loss vs training-window midpoint, with
                       the U[0,1] baseline, the corpus-predicted t* (Fig 3),
                       the width-0.1 window centred on t*, the best window,
                       chosen on val by experiments.lm.summarize, and each law
                       without a window (the smooth laws around t*) as a level
                       named by its --sampler spec; one panel per corpus
    lm_loss_vs_step    full-range test loss vs step for every window (Fig 7)
    lm_loss_by_t       final test loss per t-bin for every window
    lm_durability      gap to U[0,1] vs tokens seen, per law: the sweep's
                       budget, 4x and 16x, a 4x wider model and a BPE model
                       (whose tokens are BPE tokens, drawn apart)

Input, written by the study's aggregator and writers (never a run folder):
results/lm/window_sweep_by_window.csv and window_sweep_summary.json (one row
per training law: means, error bars and the window chosen on val are
computed there only; ``python -m experiments.lm.summarize``),
window_sweep.json and window_sweep_curves.csv (the sweep's preset and the
loss-vs-step curve of every run; ``python -m experiments.lm.sweep``),
window_sweep_loss_by_t.csv (the loss per evaluation t-bin of every run at
its last evaluation: run, kind, objective, sampler, t0, t1, seed, t, loss;
the same sweep), durability_summary.csv (the same aggregator; each stage's
tokenizer, char or bpe, is its column) and each corpus's predicted_t.json;
and the same files of each corpus swept on its own, results/lm/<corpus>/.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd

from experiments.lm.outputs import BY_WINDOW, SUMMARIZE, lm_root, predicted_t_star, window_table
from experiments.lm.presets import SMOOTH_LAWS
from mdtheory.errors import UserError
from mdtheory.plots.io import card_name, csv_devices, device_labels, read_csv, read_predicted_t
from mdtheory.plots.style import MissingData, figure
from mdtheory.runfiles import spec_window

ORDER = 20  # after the parity study
LOSS = "full_range_test_loss"
SWEEP = "python -m experiments.lm.sweep"
CURVES = "window_sweep_curves.csv"
LOSS_BY_T = "window_sweep_loss_by_t.csv"
NOT_A_CORPUS = {"tiny"}  # the tiny preset's smoke-test sweep (results/lm/tiny)
LAW_COLOURS = ("C4", "C9", "C6", "C5", "C8")  # laws without a window: apart from U[0,1]'s C3 and the windows' C0/C2


def devices(results: Path) -> list[str]:
    """What the sweep under ``results`` trained on (window_sweep_by_window.csv's device column)."""
    return csv_devices(lm_root(results) / BY_WINDOW)


def mixture_weights(results: Path) -> list[tuple[str, dict]]:
    """Our corpus's dependency weights (results/lm/predicted_t.json), drawn
    by theory_mixture_signal beside the paper's; none when not derived."""
    data = read_predicted_t(lm_root(results) / "predicted_t.json")
    if not data or not data.get("weights"):
        return []
    corpus = data.get("corpus", "predicted_t.json")
    name = corpus.get("name", "corpus") if isinstance(corpus, dict) else str(corpus)
    return [(f"our corpus ({name})", data["weights"])]


def is_full_range(t0, t1) -> bool:
    return abs(float(t0)) < 1e-9 and abs(float(t1) - 1.0) < 1e-9


def _window_colour(midpoint: float):
    return mpl.colormaps["viridis"](0.05 + 0.85 * float(midpoint))


def law_colour(spec: str, others: list[str]) -> str:
    """The colour of a law without a window, the same in every panel and
    figure: the smooth laws of the presets by their place there, any other
    law by its place in ``others`` after them."""
    known = list(SMOOTH_LAWS) + [s for s in others if s not in SMOOTH_LAWS]
    return LAW_COLOURS[known.index(spec) % len(LAW_COLOURS)] if spec in known else LAW_COLOURS[-1]


# --- the window sweep ----------------------------------------------------------

def corpus_folders(results: Path) -> list[Path]:
    """results/lm (the committed quick sweep) and each corpus swept on its own,
    results/lm/<corpus>/ (a folder holding the aggregator's table)."""
    root = lm_root(results)
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


def _draw_sweep(ax, table: pd.DataFrame, t_star, laws: list[str]) -> None:
    baseline = table[[is_full_range(a, b) for a, b in zip(table.t0, table.t1)]]
    # the ten-window curve; the window centred on t* is drawn apart
    narrow = table[((table["width"] - 0.1).abs() < 1e-6) & (table["kind"] != "predicted")]
    levels = table[table["t0"].isna()]  # a law without a window (the smooth laws): a level
    other = table.drop(index=baseline.index.union(narrow.index).union(levels.index))
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
    for _, row in levels.iterrows():
        spec = str(row.get("sampler", row["kind"]))
        ax.axhline(row["loss"], color=law_colour(spec, laws), ls="-.", label=spec)
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
    laws = list(dict.fromkeys(str(s) for p in panels for s in p["table"].loc[p["table"]["t0"].isna(), "sampler"]))
    # taller panels than the default: the legend below names each law
    fig, axes = figure("column", aspect=0.75, nrows=len(panels), layout="constrained")
    legend = {}
    for ax, panel in zip(axes[:, 0], panels):
        _draw_sweep(ax, panel["table"], panel["t_star"], laws)
        ax.set_title(panel["corpus"])
        legend.update((label, handle) for handle, label in zip(*ax.get_legend_handles_labels())
                      if label not in legend)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncol=2, fontsize=5.5,
               title="dash-dot: laws without a window, by their --sampler spec", title_fontsize=5.5)
    return fig


# --- per-step and per-t curves of the sweep's runs ------------------------------

def sweep_curves(results: Path) -> pd.DataFrame:
    """window_sweep_curves.csv of results/lm: one row per run and evaluation."""
    return read_csv(lm_root(results) / CURVES, SWEEP, ("run", "objective", "t0", "t1", "step"))


def loss_vs_step(results: Path):
    curves = sweep_curves(results)
    # the AR run's exact NLL has its own column; a law without a window has no window to draw it by
    runs = []
    for run, rows in sorted(curves.groupby("run"), key=lambda kv: str(kv[0])):
        first = rows.iloc[0]
        column = "nll_test" if first["objective"] == "ar" else LOSS
        if column in rows and rows[column].notna().any() and (first["objective"] == "ar" or pd.notna(first["t0"])):
            runs.append((first, rows.set_index("step")[column]))
    if not runs:
        raise MissingData(f"{lm_root(results) / CURVES} has no run with {LOSS}")
    fig, axes = figure("column", aspect=1.0, layout="constrained")
    ax = axes[0, 0]
    by_window: dict = {}
    for first, series in runs:
        # an AR run has no window: keep it apart from the U[0,1] MD runs
        key = ("ar", 0.0, 0.0) if first["objective"] == "ar" else ("md", float(first["t0"]), float(first["t1"]))
        by_window.setdefault(key, []).append(series)
    for (objective, t0, t1), members in sorted(by_window.items()):
        table = pd.concat(members, axis=1).mean(axis=1).dropna()
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
    finite = np.concatenate([series.dropna().to_numpy() for _, series in runs])
    ax.set_ylim(np.nanmin(finite) * 0.97, np.nanpercentile(finite, 95))
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=5.5,
               title="training window (mean over seeds)")
    return fig


def loss_by_t(results: Path):
    bins = read_csv(lm_root(results) / LOSS_BY_T, f"{SWEEP} (its per-t-bin losses)",
                    ("objective", "t0", "t1", "t", "loss"))
    # AR has no mask rate; a law without a window has no window to name it by
    bins = bins[(bins["objective"] != "ar") & bins["t0"].notna() & bins["loss"].notna()]
    if bins.empty:
        raise MissingData(f"{lm_root(results) / LOSS_BY_T} has no masked-diffusion window with losses per t-bin")
    fig, axes = figure("column", aspect=1.0, layout="constrained")
    ax = axes[0, 0]
    if "se" not in bins:
        bins = bins.assign(se=np.nan)  # written before per-stratum errors were logged
    for (t0, t1), rows in sorted(bins.groupby(["t0", "t1"])):
        # mean over seeds; its error from each run's standard error over test sequences
        table = rows.groupby("t").agg(loss=("loss", "mean"), var=("se", lambda se: (se ** 2).sum(min_count=1)),
                                      n=("loss", "size")).sort_index()
        half = 1.96 * np.sqrt(table["var"]) / table["n"]
        style = dict(color="C3", ls="--", lw=1.4, zorder=5) if is_full_range(t0, t1) else \
            dict(color=_window_colour((t0 + t1) / 2))
        ax.errorbar(table.index, table["loss"], yerr=None if half.isna().all() else half.fillna(0.0).to_numpy(),
                    marker=".", capsize=1.5, elinewidth=0.6, label=f"$U[{t0:.2g},{t1:.2g}]$", **style)
    ax.set_xlabel("evaluation mask rate $t$ (stratum centre)")
    ax.set_ylabel("test loss in bin (final step)")
    ax.set_xlim(0, 1)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=5.5,
               title="training window (mean over seeds, 95% error over test sequences)")
    return fig


# --- durability: does the gain last? -----------------------------------------

DURABILITY_SUMMARY = "durability_summary.csv"
WIDE_DODGE = 1.3  # the larger model is drawn this factor to the right of its token count, beside the base model
DURABILITY_COLUMNS = ("stage", "sampler", "kind", "n_params", "tokens", "tokenizer", "device", "gap_test_mean",
                      "gap_test_ci_low", "gap_test_ci_high", "gap_test_per_seed")
CHARACTERS = "char"


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
    law), plus ``seed_gaps`` ({seed: test gap to U[0,1]}), ``bpe`` (the
    stage's tokens are BPE tokens, not characters: its ``tokenizer`` column,
    written by the aggregator) and ``wide`` (a model with
    more parameters than the smallest one on the same tokens)."""
    path = lm_root(results) / DURABILITY_SUMMARY
    table = read_csv(path, f"python -m experiments.lm.durability, then {SUMMARIZE}", DURABILITY_COLUMNS,
                     keep_default_na=False, na_values=[""])
    if table.empty:
        raise MissingData(f"{path} has no rows")
    table["seed_gaps"] = [_seed_gaps(cell, path) for cell in table["gap_test_per_seed"]]
    table["bpe"] = [str(t) != CHARACTERS for t in table["tokenizer"].fillna(CHARACTERS)]
    table["wide"] = table["n_params"] > table.groupby("bpe")["n_params"].transform("min")
    table["card"] = [card_name(d) for d in table["device"].fillna("")]
    return table


def stage_labels(table: pd.DataFrame) -> dict[str, str]:
    """stage -> its label: the stage's name, with its device ("x4: H100")
    when the stages did not all run on one."""
    return device_labels(table, "stage")


def _sampler_style(row, laws: list[str]) -> tuple[str, str]:
    """(colour, label) of a law, as in lm_window_sweep."""
    if row["kind"] == "predicted":
        return "C2", "window centred on $t^*$"
    if row["kind"] == "window":
        t0, t1 = spec_window(str(row["sampler"]))
        return "C0", f"$U[{t0:g},{t1:g}]$ (chosen on val)"
    return law_colour(str(row["sampler"]), laws), str(row["sampler"])


def _marker(bpe: bool, wide: bool) -> str:
    return "s" if bpe else "D" if wide else "o"


def durability(results: Path):
    """Left: the character-level models over the stages' token counts (mean
    gap to U[0,1] with its t-interval, and each seed). Right, when there is
    one: the BPE model on its own axes, since its gaps (in nats per BPE token,
    over fewer seeds) would squash the character-level scale."""
    table = durability_table(results)
    others = table[table["kind"] != "uniform"]
    if others.empty:
        raise MissingData("durability_summary.csv holds only U[0,1]")
    samplers = list(dict.fromkeys(others["sampler"]))
    laws = [s for s in samplers if spec_window(str(s)) is None]
    bpe = others[others["bpe"]]
    if bpe.empty:
        fig, axes = figure("column", aspect=0.8, layout="constrained")
    else:
        fig, axes = figure("full", aspect=0.36, ncols=2, layout="constrained", gridspec_kw={"width_ratios": (2.3, 1)})
        _bpe_panel(axes[0, 1], bpe, samplers, laws, stage_labels(table))
    _character_panel(axes[0, 0], table[~table["bpe"]], others[~others["bpe"]], samplers, laws)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for handle, label in zip(*axes[0, -1].get_legend_handles_labels()):
        if label not in labels:
            handles.append(handle)
            labels.append(label)
    fig.legend(handles, labels, loc="outside lower center", ncol=3 if not bpe.empty else 2, fontsize=5.5,
               title="mean over seeds, 95% t-interval (character-level models)")
    return fig


def _character_panel(ax, table: pd.DataFrame, others: pd.DataFrame, samplers: list, laws: list[str]) -> None:
    ax.axhline(0.0, color="C3", ls="--", label="$U[0,1]$ (same stage and seed)")
    for i, sampler in enumerate(samplers):
        rows = others[others["sampler"] == sampler].sort_values("tokens")
        if rows.empty:  # a law run only on the BPE model: its legend entry comes from that panel
            continue
        colour, label = _sampler_style(rows.iloc[0], laws)
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
        rise = 9 if stages.loc[stage, "wide"] else 2  # the larger model's label would overlap the base model's
        ax.annotate(text, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(0, rise), textcoords="offset points",
                    ha="center", va="bottom", fontsize=5.5, color="0.35")
    ax.set_xscale("log")
    ticks = sorted(set(stages["tokens"].dropna()))
    ax.set_xticks(ticks, [f"{t / 1e6:.3g}M" for t in ticks])
    ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
    if ticks:
        ax.set_xlim(ticks[0] / 1.5, ticks[-1] * WIDE_DODGE * 1.3)
    ax.set_xlabel("characters seen per run")
    ax.set_ylabel("test loss minus $U[0,1]$ (nats/token)")


def _bpe_panel(ax, bpe: pd.DataFrame, samplers: list, laws: list[str], labels: dict[str, str]) -> None:
    """One column per law: each seed's gap (seeds joined across laws, as they
    are paired with the same U[0,1] run) and their mean. No interval: over
    two seeds a t-interval is wider than the data (it is in the table)."""
    order = [s for s in samplers if (bpe["sampler"] == s).any()]
    ax.axhline(0.0, color="C3", ls="--")
    by_seed: dict[int, list] = {}
    for x, sampler in enumerate(order):
        row = bpe[bpe["sampler"] == sampler].iloc[0]
        colour, label = _sampler_style(row, laws)
        ax.plot([], [], "o-", color=colour, label=label)  # the legend's entry, if the left panel has none
        ax.plot([x], [row["gap_test_mean"]], "s", ms=6, color=colour, mfc="white", mew=1.2, zorder=3)
        for seed, gap in row["seed_gaps"].items():
            by_seed.setdefault(seed, []).append((x, gap))
            ax.plot([x], [gap], "o", ms=3, color=colour, alpha=0.8, mew=0, zorder=4)
    for points in by_seed.values():
        ax.plot(*zip(*points), "-", lw=0.6, color="0.6", zorder=2)
    ax.plot([], [], "s", color="0.3", mfc="white", label="BPE model: mean over seeds (no interval drawn)")
    names = ["window at $t^*$" if (bpe.loc[bpe["sampler"] == s, "kind"] == "predicted").any() else _short_law(s)
             for s in order]
    ax.set_xticks(range(len(order)), names, rotation=20, ha="right", fontsize=5.5)
    ax.set_xlim(-0.5, len(order) - 0.5)
    stage = ", ".join(labels.get(s, s) for s in dict.fromkeys(bpe["stage"]))
    ax.set_title(f"BPE model ({stage}): {bpe['n_params'].max() / 1e6:.1f}M parameters, "
                 f"{bpe['tokens'].max() / 1e6:.3g}M BPE tokens", fontsize=6)
    ax.set_ylabel("minus $U[0,1]$ (nats/BPE token)")
    ax.text(0.97, 0.9, f"{len(by_seed)} seeds (dots, joined by seed)", transform=ax.transAxes, ha="right",
            va="top", fontsize=5.5, color="0.35")


def _short_law(sampler) -> str:
    window = spec_window(str(sampler))
    return f"U[{window[0]:g},{window[1]:g}]" if window else str(sampler).replace("predicted:", "")


FIGURES = {
    "lm_window_sweep": window_sweep,
    "lm_loss_vs_step": loss_vs_step,
    "lm_loss_by_t": loss_by_t,
    "lm_durability": durability,
}
