"""Numbers for the paper, generated from result files (never typed by hand).

    python -m mdtheory.plots.paper_tables --results results --out paper/generated

writes into --out:
    results.tex      one macro per measured number: \\res{name} in the paper
                     (a missing result prints as "not run")
    comparison.tex   the source paper's numbers beside ours
    parity_table.tex steps to 0.99 accuracy per condition (median, min-max)
    parity_phase_table.tex  the (k, N) phase grid: success rates with Wilson
                     intervals, the theory's N-bound, log-rank p
    lm_table.tex     full-range test loss per training window
    lm_durability_table.tex  per stage of longer training (and a wider model):
                     each law's test loss and its paired gap to U[0,1]

The source paper's own numbers (Huang & Mirzasoleiman, arXiv:2601.22450,
as restated in the project's digest) live in PAPER_NUMBERS below, each with
where it comes from; everything in the "ours" column is computed here from
results/ or from mdtheory.theory.numeric.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd

from mdtheory.cli import OneLineParser, atomic_write_text, check_output_dir, run_cli, write_provenance_json
from mdtheory.errors import UserError
from mdtheory.latex import NOT_RUN, code, empty_table, fmt, fmt_p, fmt_steps, fmt_window, result_macro, row, span
from mdtheory.latex import table as latex_table
from mdtheory.provenance import provenance
from mdtheory.runfiles import spec_window

from . import lm as lm_plots
from . import parity as parity_plots
from .style import MissingData

# The source paper's numbers: value as printed, and where it is stated.
# [fig] values were read off the paper's vector figures (about +-0.01).
PAPER_LM_LOSS_BY_MIDPOINT = {0.05: 4.756, 0.15: 3.984, 0.25: 3.792, 0.35: 3.678, 0.45: 3.615,
                             0.55: 3.617, 0.65: 3.793, 0.75: 4.005, 0.85: 4.065, 0.95: 4.812}  # [fig] Fig. 3
PAPER_LM_BASELINE = 3.880  # [fig] Fig. 3, U[0,1]
FIG3 = "Fig. 3 [fig]"
PAPER_NUMBERS = {
    "t1_best_t0_zero_k6": ("0.246", "main text"),
    "signal_optimal_t_k6": (r"$1/(k{+}1)$", "main text"),
    "root_k6": ("root of Cor. 4.7", "Cor. 4.7"),
    "t_star": (r"$\approx0.46$", "appendix, n-gram weights"),
    "t_star_sq": (r"$\approx0.48$", "appendix, n-gram weights"),
    "parity_setting": (r"$(20,6)$, wd 0.1", "main text"),
    "os_val_chance_until": (r"$\approx2.5\times10^5$", "Fig. 6 [fig]"),
    "os_val_99": (r"$\le4\times10^5$", "Fig. 6 [fig]"),
    "md_within": (r"$\le2\times10^4$ (all windows shown)", "Fig. 2"),
    "md_fastest": (r"$[0,0.2]$, $[0,0.3]$", "main text"),
    "seeds": ("1", "all figures, no error bars"),
}
PAPER_NOT_RUN_ROWS = [  # 8B pre-training and SFT: beyond this toolkit's compute
    ("8B pre-train test NLL, 15k steps, $[0.45,0.55]$ vs $[0,1]$", "3.67 vs 4.14", "Fig. 4 [fig]"),
    ("8B HellaSwag, $[0.45,0.55]$ vs $[0,1]$", "0.400 vs 0.354", "zero-shot table"),
    ("8B ARC-Easy, $[0.45,0.55]$ vs $[0,1]$", "0.430 vs 0.342", "zero-shot table"),
    ("SFT GPQA, $[0.45,0.55]$ vs $[0,1]$", "0.402 vs 0.344", "SFT table"),
    ("SFT GSM8K, $[0.5,1]$ vs $[0,1]$", "0.785 vs 0.768", "SFT table"),
]


# --- parity -------------------------------------------------------------------

def _condition_label(row) -> str:
    from mdtheory.train.objectives import objective_label
    if row["objective"] == "md":
        return "MD " + fmt_window(row["t0"], row["t1"])
    return str(objective_label(row["objective"]))


def parity_conditions(results: Path) -> tuple[pd.DataFrame, tuple]:
    """The conditions of the main setting, as summarize wrote them."""
    main, setting = parity_plots.main_conditions(results)
    return main.assign(label=main.apply(_condition_label, axis=1)), setting


def parity_numbers(results: Path) -> tuple[dict, str]:
    """Macros and the per-condition table for the main parity setting."""
    try:
        conditions, (n, k, size) = parity_conditions(results)
        runs = int(parity_plots.summary_table(results, "summary_by_condition.csv")["seeds"].sum())
    except MissingData:
        return {}, empty_table("parity results not run", 7)
    wd = conditions["weight_decay"].max()
    at_wd = conditions[(conditions["weight_decay"] == wd) | conditions["weight_decay"].isna()]
    macros = {"parityN": str(int(n)), "parityK": str(int(k)), "parityTrainSize": fmt_steps(int(size)),
              "parityWeightDecay": "n/a" if pd.isna(wd) else f"{wd:g}",
              "paritySeedsMin": str(int(conditions["seeds"].min())),
              "parityRuns": str(runs)}
    from mdtheory.theory import numeric

    macros["parityTheoryBestTOne"] = fmt(numeric.best_t1_given_t0_zero(int(k)))
    md = at_wd[(at_wd["objective"] == "md") & at_wd["val_99_median"].notna()]
    # "fastest" = reached 0.99 in the largest share of seeds, then the lowest
    # median over those seeds: a window that got there once is not the best
    md = md.assign(_share=md["val_99_reached"] / md["seeds"]).sort_values(
        ["_share", "val_99_median"], ascending=[False, True])
    best = md.iloc[0] if not md.empty else None
    os_row = at_wd[at_wd["objective"] == "os"]
    ar_row = at_wd[at_wd["objective"] == "ar"]

    def steps_or_never(rows):
        if rows.empty:
            return NOT_RUN
        row = rows.iloc[0]
        if row["val_99_median"] is None or pd.isna(row["val_99_median"]):
            return f"not reached in {fmt_steps(row['budget'])}"
        return fmt_steps(row["val_99_median"])

    def reached(row) -> str:
        return f"{int(row['val_99_reached'])} of {int(row['seeds'])} seeds"

    macros["parityOSSteps"] = steps_or_never(os_row)
    # how many seeds the medians rest on (medians are over the seeds that got there)
    if not os_row.empty:
        macros["parityOSReached"] = reached(os_row.iloc[0])
    if best is not None:
        macros["parityBestMDReached"] = reached(best)
    macros["parityARSteps"] = steps_or_never(ar_row)
    macros["parityBestMDWindow"] = fmt_window(best["t0"], best["t1"]) if best is not None else "none reached 0.99"
    macros["parityBestMDSteps"] = fmt_steps(best["val_99_median"]) if best is not None else NOT_RUN
    ratio = None
    if best is not None and not os_row.empty and pd.notna(os_row.iloc[0]["val_99_median"]):
        ratio = os_row.iloc[0]["val_99_median"] / best["val_99_median"]
    macros["paritySpeedRatio"] = fmt(ratio, 1) if ratio is not None else "n/a"
    # A sentence whose direction follows the data, so the text cannot overclaim.
    if best is None:
        outcome = "no masked-diffusion window reached 0.99 held-out accuracy within its budget"
    else:
        outcome = (f"the masked-diffusion window that reached 0.99 held-out accuracy most often, "
                   f"{macros['parityBestMDWindow']}, did so in {reached(best)} (median "
                   f"{macros['parityBestMDSteps']} steps over those seeds), while output supervision ")
        if os_row.empty:
            outcome += "was not run"
        elif ratio is None:
            outcome += f"reached it in none of {int(os_row.iloc[0]['seeds'])} seeds within its budget"
        else:
            direction = "faster" if ratio > 1 else "slower"
            factor = ratio if ratio > 1 else 1 / ratio
            outcome += (f"reached it in {reached(os_row.iloc[0])} (median {macros['parityOSSteps']} steps); "
                        f"counting only seeds that got there, the window was {factor:.1f} times "
                        f"{direction}, a comparison the seed counts make fragile")
    macros["parityOutcome"] = outcome
    return macros, parity_table_tex(conditions)


def parity_table_tex(conditions: pd.DataFrame) -> str:
    rows = []
    for _, r in conditions.iterrows():
        ps = fmt(r["P_S"]) if pd.notna(r["P_S"]) else "--"
        wd = "--" if pd.isna(r["weight_decay"]) else f"{r['weight_decay']:g}"
        if r["val_99_reached"]:
            steps = f"{fmt_steps(r['val_99_median'])} [{fmt_steps(r['val_99_min'])}, {fmt_steps(r['val_99_max'])}]"
        else:
            steps = f"not reached (budget {fmt_steps(r['budget'])})"
        rows.append(row(r["label"], wd, ps, r["seeds"], f"{r['val_99_reached']}/{r['seeds']}", steps))
    return latex_table("llrrrl", row("condition", "wd", "$P_S$", "seeds", "reached",
                               "steps to 0.99 held-out: median [min, max]"), rows)


def parity_phase_numbers(results: Path) -> tuple[dict, str]:
    """Macros and the (k, N) table of results/parity/phase/cells.csv at the
    largest weight decay: success of OS, MD at the sample-complexity-optimal
    window and MD U[0,1] (reached/runs, 95% Wilson interval), the theory's
    N-bound of that window, and the log-rank p of MD vs OS."""
    try:
        cells = parity_plots.phase_cells(results, needed=("success_rate", "wilson_low", "wilson_high", "runs",
                                                          "reached", "logrank_p_vs_os", "sample_complexity_bound"))
    except MissingData:
        return {}, empty_table("parity phase grid not run", 7)
    series = {key: parity_plots.PHASE_SERIES[key] for key in
              (("os", ""), ("md", "sample-complexity optimal"), ("md", "full range"))}
    cells = cells[cells["weight_decay"] == cells["weight_decay"].max()]

    def success(r) -> str:
        return f"{int(r['reached'])}/{int(r['runs'])} ({r['wilson_low']:.2f}--{r['wilson_high']:.2f})"

    optimal = cells[cells["series"] == series[("md", "sample-complexity optimal")]]
    bounds = optimal.groupby("k")["sample_complexity_bound"].first()  # depends on k (and n) only
    rows, aim, reverse = [], [], []
    for (k, size), g in cells.groupby(["k", "train_size"]):
        by = {key: g[g["series"] == label].iloc[0] if (g["series"] == label).any() else None
              for key, label in series.items()}
        os_, md, full = by.values()
        p = md["logrank_p_vs_os"] if md is not None else None
        rows.append(row(int(k), fmt_steps(size), fmt_steps(bounds[k]) if k in bounds else "--",
                        *(success(r) if r is not None else "--" for r in (os_, md, full)),
                        "--" if p is None or pd.isna(p) else f"${fmt_p(p)}$"))
        # the study's target: k >= 4, MD >= 80% of seeds, OS <= 20%, log-rank p < 0.01
        if k >= 4 and md is not None and os_ is not None and md["success_rate"] >= 0.8 \
                and os_["success_rate"] <= 0.2 and p is not None and p < 0.01:
            aim.append(f"$k={int(k)}$, $N={fmt_steps(size)}$")
        # and the reverse: OS generalises where MD at the theory's window does not
        if md is not None and os_ is not None and os_["success_rate"] >= 0.8 \
                and md["success_rate"] <= 0.2 and p is not None and p < 0.05:
            reverse.append(f"$k={int(k)}$, $N={fmt_steps(size)}$ ($p={fmt_p(p)}$)")
    tabled = cells[cells["series"].isin(series.values())]
    macros = {"parityPhaseRuns": str(int(tabled["runs"].sum())), "parityPhaseSeedsMin": str(int(tabled["runs"].min())),
              "parityPhaseAimCells": "; ".join(aim) if aim else "none",
              "parityPhaseReverseCells": "; ".join(reverse) if reverse else "none"}
    macros.update(threshold_sentences(cells))
    for name, sentence in (("parityPhaseWeightDecay", weight_decay_sentence), ("parityExtend", extension_sentence),
                           ("parityBatch", batch_sentence), ("parityPaperMLP", paper_mlp_sentence)):
        text = sentence(results)
        if text:
            macros[name] = text
    windows = phase_window_sentence(results)
    if windows:
        macros["parityPhaseWindows"] = windows
    header = row("$k$", "$N$", r"$N$-bound of $U[0,t_1^{\mathrm{SC}}]$", "OS",
                 r"MD $U[0,t_1^{\mathrm{SC}}]$", r"MD $U[0,1]$", "log-rank $p$ (MD vs OS)")
    return macros, latex_table("rrrlllr", header, rows)


def _root_table(results: Path, root: str, name: str) -> pd.DataFrame | None:
    """A parity root's aggregator output, or None where it was not produced."""
    try:
        return parity_plots._read_csv(Path(results) / "parity" / root / name,
                                      f"{parity_plots.SUMMARIZE} --root results/parity/{root}")
    except MissingData:
        return None


def _cell_name(r) -> str:
    return f"$k={int(r['k'])}$, $N={fmt_steps(r['train_size'])}$"


def threshold_sentences(cells: pd.DataFrame) -> dict[str, str]:
    """Where OS reached 0.99 in >= 80% of seeds and MD at the theory's window
    in <= 20%: which of those cells look the same at 0.90 held-out (MD did
    not learn) and which do not (MD slower), with the exact McNemar p."""
    md = cells[(cells["objective"] == "md") & (cells["theory_window"] == "sample-complexity optimal")]
    os_ = cells[cells["objective"] == "os"]
    key = ["k", "train_size", "weight_decay"]
    both = md.merge(os_[key + ["success_rate", "success_rate_90"]], on=key, suffixes=("", "_os"))
    both = both[both["weight_decay"] == both["weight_decay"].max()]
    reverse = both[(both["success_rate_os"] >= 0.8) & (both["success_rate"] <= 0.2)]
    slower = reverse[reverse["success_rate_90"] >= 0.8]
    failed = reverse[reverse["success_rate_90"] <= 0.2]

    def listing(rows, column):
        return "; ".join(f"{_cell_name(r)} (MD {int(r['reached_90'])}/{int(r['runs'])} at 0.90, "
                         f"McNemar $p={fmt_p(r[column])}$)" for _, r in rows.iterrows()) or "none"
    return {"parityPhaseSlowerCells": listing(slower, "mcnemar_p_vs_os_90"),
            "parityPhaseFailedCells": listing(failed, "mcnemar_p_vs_os_90")}


def extension_sentence(results: Path) -> str | None:
    """The phase cells re-trained to 3x the budget: per cell at the theory's
    window and the largest weight decay, runs reaching 0.99 and 0.90 and the
    median final held-out accuracy."""
    cells, runs = (_root_table(results, "phase_extend", n) for n in ("cells.csv", "summary.csv"))
    if cells is None or runs is None:
        return None
    cells = cells[(cells["theory_window"] == "sample-complexity optimal")
                  & (cells["weight_decay"] == cells["weight_decay"].max()) & (cells["n_unfinished"] == 0)]
    parts = []
    for _, r in cells.sort_values(["k", "train_size"]).iterrows():
        mine = runs[(runs["k"] == r["k"]) & (runs["train_size"] == r["train_size"]) & (runs["t1"] == r["t1"])
                    & (runs["weight_decay"] == r["weight_decay"])]
        parts.append(f"{_cell_name(r)}: {int(r['reached'])}/{int(r['runs'])} reach 0.99 and "
                     f"{int(r['reached_90'])}/{int(r['runs'])} 0.90 within {fmt_steps(r['budget'])} steps, "
                     f"median final held-out {mine['final_val_acc'].median():.3f}")
    return "; ".join(parts) or None


def batch_sentence(results: Path) -> str | None:
    """Full batch against the grid's 256 (paired_with_baseline.csv of phase_batch)."""
    pairs = _root_table(results, "phase_batch", "paired_with_baseline.csv")
    if pairs is None or pairs.empty:
        return None
    parts = []
    for _, r in pairs.sort_values(["k", "train_size", "objective"]).iterrows():
        what = "OS" if r["objective"] == "os" else "MD"
        ratio = r["median_step_ratio_90"]
        speed = f", steps to 0.90 {ratio:.2f}x" if pd.notna(ratio) else ""
        parts.append(f"{_cell_name(r)} {what}: {int(r['reached_99'])} vs {int(r['baseline_reached_99'])} "
                     f"of {int(r['runs_paired'])} seeds reach 0.99 (McNemar $p={fmt_p(r['mcnemar_p_99'])}$){speed}")
    return "full batch vs batch 256, same seeds: " + "; ".join(parts)


def paper_mlp_sentence(results: Path) -> str | None:
    """The paper's Fig. 5 setting: per arm, seeds reaching 0.90 / 0.99 and
    KM medians; for runs trained past 0.99, the lowest held-out accuracy after."""
    cells, runs = (_root_table(results, "paper_mlp", n) for n in ("cells.csv", "summary.csv"))
    if cells is None or runs is None:
        return None
    parts = []
    for _, r in cells.sort_values(["objective", "t1"], ascending=[False, True], na_position="first").iterrows():
        what = "OS" if r["objective"] == "os" else f"MD $U[0,{r['t1']:g}]$"
        med = lambda c: fmt_steps(r[c]) if pd.notna(r[c]) else "not reached"
        text = (f"{what}: {int(r['reached_90'])}/{int(r['runs'])} reach 0.90 (KM median {med('km_median_steps_90')}), "
                f"{int(r['reached'])}/{int(r['runs'])} 0.99 ({med('km_median_steps')})")
        if int(r.get("n_unfinished", 0)):
            text += f", {int(r['n_unfinished'])} still training"
        mine = runs[(runs["objective"] == r["objective"]) & ((runs["t1"] == r["t1"]) | runs["t1"].isna() & pd.isna(r["t1"]))]
        after = mine["min_val_after_99"].dropna()
        if len(after):
            text += f"; lowest held-out after first reaching 0.99: {', '.join(f'{v:.3f}' for v in after)}"
        parts.append(text)
    return "; ".join(parts) or None


def weight_decay_sentence(results: Path) -> str | None:
    """Per (k, N, objective, window) run at a second weight decay: how many
    of the seeds run at both reached 0.99 held-out, at each weight decay
    (largest first), from the phase root's summary.csv."""
    try:
        runs = parity_plots.phase_table(results, "summary.csv")
    except MissingData:
        return None
    decays = sorted(runs["weight_decay"].unique(), reverse=True)
    if len(decays) < 2:
        return None
    parts = []
    for (k, size), cell in runs.groupby(["k", "train_size"]):
        counts = []
        series = sorted(cell.groupby(["objective", cell["t1"].fillna(-1.0)]), key=lambda kv: kv[0][0] != "os")
        for (objective, t1), g in series:
            seeds = set.intersection(*(set(g.loc[g["weight_decay"] == wd, "seed"]) for wd in decays))
            if not seeds:
                continue
            paired = g[g["seed"].isin(seeds)]
            reached = [int(paired.loc[paired["weight_decay"] == wd, "steps_to_val_99"].notna().sum()) for wd in decays]
            what = "OS" if objective == "os" else f"{objective.upper()} $U[0,{t1:g}]$"
            counts.append(f"{what} " + " vs ".join(f"{r}/{len(seeds)}" for r in reached))
        if counts:
            parts.append(f"$k={int(k)}$, $N={fmt_steps(size)}$: " + ", ".join(counts))
    head = "reached 0.99 at weight decay " + " vs ".join(f"{wd:g}" for wd in decays) + ", same seeds"
    return head + ": " + "; ".join(parts) if parts else None


def phase_window_sentence(results: Path) -> str | None:
    """Per k where the window sweep ran (at least 5 windows U[0, t1]): the
    fastest t1 by Kaplan-Meier median against the theory's two t1, and the
    Spearman correlations of P_S and of the N-bound with speed (bootstrap 95%
    interval over seeds), from the phase root's theory_vs_speed.csv."""
    try:
        table = parity_plots.phase_table(results, "theory_vs_speed.csv")
    except MissingData:
        return None
    table = table[(table["windows"] >= 5) & (table["weight_decay"] == table["weight_decay"].max())]
    parts = []
    for _, r in table.sort_values(["k", "train_size"]).iterrows():
        fastest = "none reached 0.99" if pd.isna(r["fastest_t1"]) else f"fastest $U[0,{r['fastest_t1']:g}]$"
        parts.append(f"$k={int(r['k'])}$, $N={fmt_steps(r['train_size'])}$ ({int(r['runs'])} runs): {fastest} "
                     f"(theory: $t_1^{{\\mathrm{{SC}}}}={r['sc_window_t1']:g}$, $t_1^{{P_S}}={r['theory_best_t1']:.3g}$), "
                     f"$\\rho(P_S)={r['spearman_rho_PS_speed']:.2f}$ $[{r['rho_low']:.2f}, {r['rho_high']:.2f}]$, "
                     f"$\\rho(N\\text{{-bound}})={r['spearman_rho_bound_speed']:.2f}$ "
                     f"$[{r['rho_bound_low']:.2f}, {r['rho_bound_high']:.2f}]$")
    return "; ".join(parts) or None


# --- language model -------------------------------------------------------------

def lm_numbers(results: Path) -> tuple[dict, str, pd.DataFrame | None]:
    """LM macros and table. The best window is chosen on val and reported on
    test; its gain over U[0, 1] is the paired per-seed test difference with a
    95% Student-t interval over seeds (experiments.lm.summarize)."""
    try:
        table = lm_plots.window_table(results)
    except MissingData:
        t_star = lm_plots.predicted_t_star(results)  # the corpus estimate needs no sweep
        macros = {} if t_star is None else {"lmTStar": fmt(t_star)}
        return macros, empty_table("language-model sweep not run", 4), None
    full = table[[lm_plots.is_full_range(a, b) for a, b in zip(table.t0, table.t1)]]
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
        diff = lm_plots.sweep_summary(results).get("best_minus_uniform")
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
    t_star = lm_plots.predicted_t_star(results)
    if t_star is not None:
        macros["lmTStar"] = fmt(t_star)
        if best is not None:
            inside = best["t0"] <= t_star <= best["t1"]
            macros["lmTStarInBest"] = "inside" if inside else "outside"
    def law(r) -> tuple[str, str]:
        """(label, midpoint) of a row: a window, or an adaptive law by its spec."""
        if pd.isna(r["t0"]):
            return code(r.get("sampler", "adaptive")), "--"
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
        table = lm_plots.durability_table(results)
    except MissingData:
        return empty_table("durability study not run", 7)
    labels = lm_plots.stage_labels(table)
    rows = []
    for _, r in table.iterrows():
        law = ("$U[0,1]$" if r["kind"] == "uniform" else
               fmt_window(*spec_window(str(r["sampler"]))) + (" ($t^*$)" if r["kind"] == "predicted" else " (val)")
               if r["kind"] in ("window", "predicted") else code(r["sampler"]))
        gap = "--" if r["kind"] == "uniform" else fmt(r["gap_test_mean"])
        if r["kind"] != "uniform" and math.isfinite(r["gap_test_ci_low"]):
            gap += f" [{fmt(r['gap_test_ci_low'])}, {fmt(r['gap_test_ci_high'])}]"
        seeds = len(r["seed_gaps"]) or len(str(r["seeds"]).split(";"))
        rows.append(row(labels[r["stage"]], f"{r['n_params'] / 1e6:.2f}M", f"{r['tokens'] / 1e6:.1f}M", law, seeds,
                        fmt(r["test_loss_mean"]), gap))
    return latex_table("llllrrl", row("stage", "params", "tokens", "law", "seeds", "test loss",
                                      "gap to $U[0,1]$ [95\\% CI]"), rows)


# --- comparison with the paper ------------------------------------------------------

GPU_RESULTS = "gpu"  # results/gpu: a GPU check's results (python -m experiments.gpu_check.ingest)
PAPER_LM_SETUP = r"$\approx$50M parameters, WikiText-103, BPE 32k"  # experiments/lm/presets.py "paper"


def parity_comparison_rows(par: dict) -> list[str]:
    """Setting, OS and best-MD steps, fastest window and seeds beside the paper's."""
    def ours(key):
        return par.get(key, NOT_RUN)

    setting = (f"$({ours('parityN')},{ours('parityK')})$, wd {ours('parityWeightDecay')}"
               if "parityN" in par else NOT_RUN)
    return [paper_row(*parity_row) for parity_row in [
        ("setting $(n,k)$", "parity_setting", setting),
        ("output supervision: steps to 0.99 held-out", "os_val_99",
         ours("parityOSSteps") + (f" ({ours('parityOSReached')})" if "parityOSReached" in par else "")),
        ("masked diffusion: steps to 0.99 held-out (best window)", "md_within",
         ours("parityBestMDSteps") + (f" ({ours('parityBestMDReached')})" if "parityBestMDReached" in par else "")),
        ("fastest MD window(s)", "md_fastest", ours("parityBestMDWindow")),
        ("seeds per condition", "seeds", ours("paritySeedsMin")),
    ]]


def paper_row(label: str, key: str, ours: str) -> str:
    """A comparison row: the paper's value and where it says so, beside ours."""
    paper, source = PAPER_NUMBERS[key]
    return row(label, paper, ours, source)


def lm_comparison_rows(lm_macros: dict) -> list[str]:
    """U[0,1] baseline, best window and the gain beside the paper's Fig. 3."""
    paper_best = min(PAPER_LM_LOSS_BY_MIDPOINT, key=PAPER_LM_LOSS_BY_MIDPOINT.get)
    paper_gain = PAPER_LM_BASELINE - PAPER_LM_LOSS_BY_MIDPOINT[paper_best]
    return [row("$U[0,1]$ baseline", f"{PAPER_LM_BASELINE:.3f}", lm_macros.get("lmBaselineLoss", NOT_RUN), FIG3),
            row("best window", f"$[{paper_best - 0.05:.1f},{paper_best + 0.05:.1f}]$",
                lm_macros.get("lmBestWindow", NOT_RUN), FIG3),
            row("baseline minus best", f"{paper_gain:.3f}", lm_macros.get("lmGain", NOT_RUN), FIG3)]


def result_devices(root: Path, studies=("parity", "lm")) -> list[str]:
    """The devices in the aggregators' ``device`` columns under ``root``
    ("cpu" or a card's name), each once."""
    paths = {"parity": root / "parity" / "summary.csv", "lm": root / "lm" / "window_sweep_by_window.csv"}
    cells = []
    for study in studies:
        try:
            cells += list(pd.read_csv(paths[study]).get("device", pd.Series(dtype=object)).dropna())
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            continue  # missing or corrupt: the tables and figures that need the file say so
    return list(dict.fromkeys(d for cell in cells for d in str(cell).split("; ") if d))


def _tex_text(text: str) -> str:
    """A name from a result file (a card, a corpus) as LaTeX text."""
    return "".join("\\" + c if c in "&%$#_{}" else c for c in str(text))


def lm_setup(root: Path) -> str:
    """Model and corpus of the sweep under ``root`` (its window_sweep.json)."""
    try:
        p = json.loads((root / "lm" / "window_sweep.json").read_text(encoding="utf-8"))["preset"]
        return _tex_text(f"{p['n_layer']}x{p['n_embd']}, {p['corpus']}, {p['tokenizer']} {p['vocab_size']}")
    except (OSError, ValueError, KeyError, TypeError):
        return NOT_RUN


def gpu_scale_rows(root: Path) -> list[str]:
    """The paper's own scale, (20,6) parity and its LM sweep, as far as one
    GPU check reached it: from the GPU results' aggregator files when there
    are any (the card named), "not run" otherwise."""
    par, _ = parity_numbers(root)
    lm_macros, _, lm_table = lm_numbers(root)
    devices = result_devices(root)
    where = f" on {_tex_text(', '.join(devices))}" if devices else " (no GPU results yet)"
    rows = [span(4, rf"\emph{{Paper scale: ours from \texttt{{results/gpu}}{where}}}")]
    rows += parity_comparison_rows(par)
    rows.append(row("LM: model, corpus", PAPER_LM_SETUP,
                    lm_setup(root) if lm_table is not None else NOT_RUN, "Fig. 3 setup"))
    return rows + lm_comparison_rows(lm_macros)


def comparison_tex(par: dict, lm_macros: dict, lm_table: pd.DataFrame | None, results: Path) -> str:
    from mdtheory.theory import numeric

    k = 6
    rows = [span(4, r"\emph{Theory ($k=6$); ours from \texttt{mdtheory.theory.numeric}}")]
    theory_rows = [
        ("$t_1$ maximising $P_S(U[0,t_1])$", "t1_best_t0_zero_k6", fmt(numeric.best_t1_given_t0_zero(k))),
        ("signal-optimal point mass $t$", "signal_optimal_t_k6", fmt(numeric.signal_optimal_t(k))),
        ("sample-complexity-optimal $t_1$ ($t_0=0$)", "root_k6", fmt(numeric.sample_complexity_optimal_t1(k))),
        ("$t^*$, WikiText weights, linear", "t_star", fmt(numeric.mixture_argmax(numeric.PAPER_WIKITEXT_WEIGHTS))),
        ("$t^*$, WikiText weights, squared", "t_star_sq",
         fmt(numeric.mixture_argmax(numeric.PAPER_WIKITEXT_WEIGHTS, squared=True))),
    ]
    rows += [paper_row(*theory_row) for theory_row in theory_rows]
    rows.append(row("$t^*$ from our corpus's weights", "--", lm_macros.get("lmTStar", NOT_RUN), "method of the appendix"))

    rows.append(r"\midrule")
    rows.append(span(4, r"\emph{Parity; ours from \texttt{results/parity}}"))
    rows += parity_comparison_rows(par)
    rows.append(row("autoregressive: steps to 0.99 held-out", "not run", par.get("parityARSteps", NOT_RUN), "--"))

    rows.append(r"\midrule")
    rows.append(span(4, r"\emph{Language model: full-range test loss; ours from \texttt{results/lm} "
                        r"(different corpus and model size: compare shapes, not values)}"))
    ours_by_mid = {} if lm_table is None else {round(r["mid"], 2): fmt(r["loss"]) for _, r in lm_table.iterrows()
                                               if abs(r["width"] - 0.1) < 1e-6}
    for mid, value in PAPER_LM_LOSS_BY_MIDPOINT.items():
        rows.append(row(f"window midpoint {mid:.2f}", f"{value:.3f}", ours_by_mid.get(round(mid, 2), NOT_RUN), FIG3))
    rows += lm_comparison_rows(lm_macros)

    rows.append(r"\midrule")
    rows += gpu_scale_rows(results / GPU_RESULTS)

    rows.append(r"\midrule")
    rows.append(span(4, r"\emph{LLaDA-8B pre-training and fine-tuning (beyond this toolkit's compute)}"))
    rows += [row(label, paper, NOT_RUN, source) for label, paper, source in PAPER_NOT_RUN_ROWS]

    # a longtable: the comparison is longer than a page, so it breaks across pages (header repeated)
    return latex_table(r"p{0.36\linewidth}p{0.17\linewidth}p{0.15\linewidth}p{0.18\linewidth}",
                       row("quantity", "paper", "ours", "paper source"), rows, env="longtable",
                       after_header=(r"\endhead",))


# --- entry point ----------------------------------------------------------------------

# the table files write_all writes beside results.tex, in the order it builds them
TABLES = ("comparison.tex", "parity_table.tex", "parity_phase_table.tex", "lm_table.tex", "lm_durability_table.tex")


def write_all(results: Path, out: Path) -> dict[str, str]:
    par, parity_tex = parity_numbers(results)
    phase_macros, phase_tex = parity_phase_numbers(results)
    lm_macros, lm_tex, lm_table = lm_numbers(results)
    # Provenance sits beside the tables, so the .tex files change only when numbers do.
    header = "% Generated by python -m mdtheory.plots.paper_tables -- do not edit by hand.\n"
    macros = {**par, **phase_macros, **lm_macros}
    tables = (comparison_tex(par, lm_macros, lm_table, results), parity_tex, phase_tex, lm_tex,
              durability_numbers(results))
    files = {"results.tex": header + "".join(result_macro(k, v) for k, v in sorted(macros.items())),
             **{name: header + text for name, text in zip(TABLES, tables, strict=True)}}
    for name, text in files.items():
        atomic_write_text(out / name, text)
    write_provenance_json(out / "paper_tables.provenance.json", {**provenance(), "results": str(results)},
                          describes=[out / name for name in files])
    return macros


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m mdtheory.plots.paper_tables", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--out", default="paper/generated")
    args = parser.parse_args(argv)
    results = Path(args.results)
    if not results.is_dir():
        raise UserError(f"results folder {results} does not exist")
    macros = write_all(results, check_output_dir(args.out))
    print(f"wrote {len(macros)} result macros and {len(TABLES)} tables to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
