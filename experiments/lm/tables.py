"""The LM study's numbers for the paper, from its aggregator's outputs.

    lm_table.tex             full-range test loss per training law of the sweep
    lm_durability_table.tex  per stage of longer training (a wider model, a
                             BPE model): each law's test loss and its paired
                             gap to U[0,1]

and the LM \\res{} macros and the LM rows of comparison.tex (see
mdtheory.plots.paper_tables, which writes them). Reads only what the study's
writers put under results/lm/: window_sweep_by_window.csv,
window_sweep_summary.json and durability_summary.csv
(``python -m experiments.lm.summarize``), window_sweep.json (the sweep) and
predicted_t.json (the corpus's t*).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from experiments.lm.outputs import BY_WINDOW, LM, SUMMARIZE, predicted_t_star, window_table
from mdtheory.latex import NOT_RUN, code, empty_table, fmt, fmt_steps, fmt_window, row, span
from mdtheory.latex import table as latex_table
from mdtheory.plots.io import csv_devices, device_labels, read_csv, read_json
from mdtheory.plots.paper_tables import tex_text
from mdtheory.plots.style import MissingData
from mdtheory.runfiles import spec_window

ORDER = 20  # after the parity study
TABLES = ("lm_table.tex", "lm_durability_table.tex")
# The source paper's LM numbers ([fig]: read off the paper's vector figures, about +-0.01).
PAPER_LM_LOSS_BY_MIDPOINT = {0.05: 4.756, 0.15: 3.984, 0.25: 3.792, 0.35: 3.678, 0.45: 3.615,
                             0.55: 3.617, 0.65: 3.793, 0.75: 4.005, 0.85: 4.065, 0.95: 4.812}  # [fig] Fig. 3
PAPER_LM_BASELINE = 3.880  # [fig] Fig. 3, U[0,1]
FIG3 = "Fig. 3 [fig]"
PAPER_LM_SETUP = r"$\approx$50M parameters, WikiText-103, BPE 32k"  # experiments/lm/presets.py "paper"


def numbers(results: Path) -> tuple[dict, dict[str, str]]:
    """The LM macros, lm_table.tex and lm_durability_table.tex."""
    macros, lm_tex, _ = lm_numbers(results)
    return macros, {"lm_table.tex": lm_tex, "lm_durability_table.tex": durability_numbers(results)}


def theory_comparison(macros: dict) -> list[str]:
    """The t* of our corpus beside the paper's, in the theory section."""
    return [row("$t^*$ from our corpus's weights", "--", macros.get("lmTStar", NOT_RUN), "method of the appendix")]


def comparison(results: Path, macros: dict) -> list[str]:
    """The LM section of comparison.tex: the loss per window midpoint, the
    baseline, the best window and the gain beside the paper's Fig. 3."""
    try:
        table = window_table(results)
    except MissingData:
        table = None
    rows = [span(4, r"\emph{Language model: full-range test loss; ours from \texttt{results/lm} "
                    r"(different corpus and model size: compare shapes, not values)}")]
    ours_by_mid = {} if table is None else {round(r["mid"], 2): fmt(r["loss"]) for _, r in table.iterrows()
                                            if abs(r["width"] - 0.1) < 1e-6}
    for mid, value in PAPER_LM_LOSS_BY_MIDPOINT.items():
        rows.append(row(f"window midpoint {mid:.2f}", f"{value:.3f}", ours_by_mid.get(round(mid, 2), NOT_RUN), FIG3))
    return rows + lm_comparison_rows(macros)


def paper_scale(root: Path) -> list[str]:
    """The LM rows of the paper-scale section, from the sweep under ``root``."""
    lm_macros, _, lm_table = lm_numbers(root)
    return [row("LM: model, corpus", PAPER_LM_SETUP, lm_setup(root) if lm_table is not None else NOT_RUN,
                "Fig. 3 setup"), *lm_comparison_rows(lm_macros)]


def devices(root: Path) -> list[str]:
    return csv_devices(Path(root) / LM / BY_WINDOW)


# --- reading -------------------------------------------------------------------



def sweep_summary(results: Path) -> dict:
    """window_sweep_summary.json: the best window's paired difference to U[0, 1]."""
    return read_json(Path(results) / LM / "window_sweep_summary.json", SUMMARIZE)


def is_full_range(t0, t1) -> bool:
    return abs(float(t0)) < 1e-9 and abs(float(t1) - 1.0) < 1e-9


DURABILITY_COLUMNS = ("stage", "sampler", "kind", "n_params", "tokens", "device", "seeds", "test_loss_mean",
                      "gap_test_mean", "gap_test_ci_low", "gap_test_ci_high", "gap_test_per_seed")


def durability_table(results: Path) -> pd.DataFrame:
    """durability_summary.csv: one row per stage and law."""
    path = Path(results) / LM / "durability_summary.csv"
    table = read_csv(path, f"python -m experiments.lm.durability, then {SUMMARIZE}", DURABILITY_COLUMNS,
                     keep_default_na=False, na_values=[""])
    if table.empty:
        raise MissingData(f"{path} has no rows")
    return table


def _seed_count(r) -> int:
    """The seeds of a row: those paired with U[0,1], else those run."""
    cell = r["gap_test_per_seed"]
    return len(cell.split(";")) if isinstance(cell, str) and cell else len(str(r["seeds"]).split(";"))


# --- tables ----------------------------------------------------------------------

def lm_numbers(results: Path) -> tuple[dict, str, pd.DataFrame | None]:
    """LM macros and table. The best window is chosen on val and reported on
    test; its gain over U[0, 1] is the paired per-seed test difference with a
    95% Student-t interval over seeds (experiments.lm.summarize)."""
    try:
        table = window_table(results)
    except MissingData:
        t_star = predicted_t_star(results)  # the corpus estimate needs no sweep
        macros = {} if t_star is None else {"lmTStar": fmt(t_star)}
        return macros, empty_table("language-model sweep not run", 4), None
    full = table[[is_full_range(a, b) for a, b in zip(table.t0, table.t1)]]
    windows = table.drop(index=full.index)
    macros = {"lmWindows": str(len(windows)), "lmSeedsMin": str(int(table["seeds"].min()))}
    macros["lmSteps"] = fmt_steps(int(table["steps"].max()))
    if not full.empty:
        b = full.iloc[0]
        macros["lmBaselineLoss"] = fmt(b["loss"])
        macros["lmBaselineErr"] = fmt(b["err"])
    best = None
    if table["best_on_val"].any():
        best = table[table["best_on_val"]].iloc[0]
        macros["lmBestWindow"] = fmt_window(best["t0"], best["t1"])
        macros["lmBestLoss"] = fmt(best["loss"])
        macros["lmBestErr"] = fmt(best["err"])
        diff = sweep_summary(results).get("best_minus_uniform")
        if diff is not None and diff["per_seed"]:
            # gain = U[0,1] minus best, so the interval flips sign
            # one seed has no interval (the summary's JSON stores it as null)
            lo, hi = (float("nan") if diff[k] is None else -diff[k] for k in ("ci_high", "ci_low"))
            macros["lmGain"] = fmt(-diff["mean"])
            macros["lmGainSeeds"] = str(len(diff["per_seed"]))
            if math.isfinite(lo):
                macros["lmGainCI"] = f"[{fmt(lo)}, {fmt(hi)}]"
                verdict = ("lower than" if lo > 0 else "higher than" if hi < 0
                           else "not distinguishable from")
                interval = (f"paired by seed, U[0,1] minus best is {macros['lmGain']}, 95\\% t-interval "
                            f"over {len(diff['per_seed'])} seeds {macros['lmGainCI']}")
            else:
                verdict, interval = "compared on one seed with", "one seed, no interval"
            macros["lmOutcome"] = (f"the best window on validation, {macros['lmBestWindow']}, has a full-range "
                                   f"test loss of {macros['lmBestLoss']} $\\pm$ {macros['lmBestErr']}, {verdict} "
                                   f"the $U[0,1]$ baseline's {macros['lmBaselineLoss']} $\\pm$ "
                                   f"{macros['lmBaselineErr']} ({interval})")
    t_star = predicted_t_star(results)
    if t_star is not None:
        macros["lmTStar"] = fmt(t_star)
        if best is not None:
            inside = best["t0"] <= t_star <= best["t1"]
            macros["lmTStarInBest"] = "inside" if inside else "outside"
    def law(r) -> tuple[str, str]:
        """(label, midpoint) of a row: a window, or a law without one (Beta, logit-normal) by its spec."""
        if pd.isna(r["t0"]):
            return code(r.get("sampler", r["kind"])), "--"
        return (f"$[{float(r['t0']):g},{float(r['t1']):g}]" + ("^\\dagger$" if r["best_on_val"] else "$"),
                f"{r['mid']:.2f}")

    rows = [row(*law(r), int(r["seeds"]), fmt(r["val_loss"]), f"{fmt(r['loss'])} $\\pm$ {fmt(r['err'])}")
            for _, r in table.iterrows()]
    footnote = span(5, r"\footnotesize $^\dagger$ lowest mean val loss: the window chosen; test loss reported")
    return macros, latex_table("lrrrr", row("training window", "midpoint", "seeds", "val loss",
                                            "full-range test loss"), rows, footer=(footnote,)), table


def durability_numbers(results: Path) -> str:
    """Does the window's gain last: per stage and law, the test loss and its
    gap to U[0,1] of the same stage, paired by seed (95% t-interval)."""
    try:
        table = durability_table(results)
    except MissingData:
        return empty_table("durability study not run", 7)
    labels = device_labels(table, "stage")
    rows = []
    for _, r in table.iterrows():
        law = ("$U[0,1]$" if r["kind"] == "uniform" else
               fmt_window(*spec_window(str(r["sampler"]))) + (" ($t^*$)" if r["kind"] == "predicted" else " (val)")
               if r["kind"] in ("window", "predicted") else code(r["sampler"]))
        gap = "--" if r["kind"] == "uniform" else fmt(r["gap_test_mean"])
        if r["kind"] != "uniform" and math.isfinite(r["gap_test_ci_low"]):
            gap += f" [{fmt(r['gap_test_ci_low'])}, {fmt(r['gap_test_ci_high'])}]"
        rows.append(row(labels[r["stage"]], f"{r['n_params'] / 1e6:.2f}M", f"{r['tokens'] / 1e6:.1f}M", law,
                        _seed_count(r), fmt(r["test_loss_mean"]), gap))
    return latex_table("llllrrl", row("stage", "params", "tokens", "law", "seeds", "test loss",
                                      "gap to $U[0,1]$ [95\\% CI]"), rows)


def lm_comparison_rows(lm_macros: dict) -> list[str]:
    """U[0,1] baseline, best window and the gain beside the paper's Fig. 3."""
    paper_best = min(PAPER_LM_LOSS_BY_MIDPOINT, key=PAPER_LM_LOSS_BY_MIDPOINT.get)
    paper_gain = PAPER_LM_BASELINE - PAPER_LM_LOSS_BY_MIDPOINT[paper_best]
    return [row("$U[0,1]$ baseline", f"{PAPER_LM_BASELINE:.3f}", lm_macros.get("lmBaselineLoss", NOT_RUN), FIG3),
            row("best window", f"$[{paper_best - 0.05:.1f},{paper_best + 0.05:.1f}]$",
                lm_macros.get("lmBestWindow", NOT_RUN), FIG3),
            row("baseline minus best", f"{paper_gain:.3f}", lm_macros.get("lmGain", NOT_RUN), FIG3)]


def lm_setup(root: Path) -> str:
    """Model and corpus of the sweep under ``root`` (its window_sweep.json)."""
    try:
        p = json.loads((Path(root) / LM / "window_sweep.json").read_text(encoding="utf-8"))["preset"]
        return tex_text(f"{p['n_layer']}x{p['n_embd']}, {p['corpus']}, {p['tokenizer']} {p['vocab_size']}")
    except (OSError, ValueError, KeyError, TypeError):
        return NOT_RUN


