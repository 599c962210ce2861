"""The parity study's numbers for the paper, from its aggregator's outputs.

    parity_table.tex        steps to 0.99 accuracy per condition of the main
                            setting (median, min-max)
    parity_phase_table.tex  the (k, N) phase grid: success rates with Wilson
                            intervals, the theory's N-bound, log-rank p

and the parity \\res{} macros and the parity rows of comparison.tex (see
mdtheory.plots.paper_tables, which writes them). Reads only what
``python -m experiments.parity.summarize`` writes into a parity root:
results/parity/summary_by_condition.csv and the phase roots'
cells.csv, summary.csv, theory_vs_speed.csv and paired_with_baseline.csv
(results/parity/<root>/).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.parity.outputs import main_conditions
from mdtheory.latex import NOT_RUN, empty_table, fmt, fmt_p, fmt_steps, fmt_window, row, span
from mdtheory.latex import table as latex_table
from mdtheory.plots.io import csv_devices, read_csv
from mdtheory.plots.paper_tables import paper_row
from mdtheory.plots.style import MissingData

ORDER = 10  # before the LM study
TABLES = ("parity_table.tex", "parity_phase_table.tex")
PARITY = Path("parity")  # the parity results under a results root
SUMMARIZE = "python -m experiments.parity.summarize"
# The source paper's parity numbers: value as printed, and where it is stated ([fig]: read off a figure).
PAPER_NUMBERS = {
    "parity_setting": (r"$(20,6)$, wd 0.1", "main text"),
    "os_val_chance_until": (r"$\approx2.5\times10^5$", "Fig. 6 [fig]"),
    "os_val_99": (r"$\le4\times10^5$", "Fig. 6 [fig]"),
    "md_within": (r"$\le2\times10^4$ (all windows shown)", "Fig. 2"),
    "md_fastest": (r"$[0,0.2]$, $[0,0.3]$", "main text"),
    "seeds": ("1", "all figures, no error bars"),
}
# "objective|theory_window" of a cells.csv row: the phase table's three series, and the cells it looks at
OS, MD_SC, MD_FULL = "os|", "md|sample-complexity optimal", "md|full range"
PHASE_SERIES = (OS, MD_SC, "md|P_S optimal", MD_FULL)


def numbers(results: Path) -> tuple[dict, dict[str, str]]:
    """The parity macros, parity_table.tex and parity_phase_table.tex."""
    par, parity_tex = parity_numbers(results)
    phase_macros, phase_tex = parity_phase_numbers(results)
    return {**par, **phase_macros}, {"parity_table.tex": parity_tex, "parity_phase_table.tex": phase_tex}


def comparison(results: Path, macros: dict) -> list[str]:
    """The parity section of comparison.tex."""
    return [span(4, r"\emph{Parity; ours from \texttt{results/parity}}"), *parity_comparison_rows(macros),
            row("autoregressive: steps to 0.99 held-out", "not run", macros.get("parityARSteps", NOT_RUN), "--")]


def paper_scale(root: Path) -> list[str]:
    """The parity rows of the paper-scale section, from the parity results under ``root``."""
    return parity_comparison_rows(parity_numbers(root)[0])


def devices(root: Path) -> list[str]:
    return csv_devices(Path(root) / PARITY / "summary.csv")


# --- reading ------------------------------------------------------------------

def summary_table(results: Path, name: str, root: str = "", needed=()) -> pd.DataFrame:
    """A table that summarize wrote into results/parity/ (``root`` "") or
    into the parity root results/parity/<root>/."""
    where = PARITY / root if root else PARITY
    return read_csv(Path(results) / where / name, SUMMARIZE + (f" --root results/{where}" if root else ""), needed)


def _root_table(results: Path, root: str, name: str) -> pd.DataFrame | None:
    """A parity root's aggregator output, or None where it was not produced."""
    try:
        return summary_table(results, name, root)
    except MissingData:
        return None


def phase_cells(results: Path, needed=()) -> pd.DataFrame:
    """The OS and theory-window MD rows of the phase root's cells.csv, with
    ``series`` = "objective|theory window"."""
    cells = summary_table(results, "cells.csv", "phase",
                          ("k", "train_size", "objective", "weight_decay", "theory_window", *needed))
    cells = cells.assign(series=cells["objective"].astype(str) + "|" + cells["theory_window"].fillna("").astype(str))
    cells = cells[cells["series"].isin(PHASE_SERIES)]
    if cells.empty:
        raise MissingData("parity/phase/cells.csv has no OS or theory-window MD cells")
    return cells.reset_index(drop=True)


# --- parity -------------------------------------------------------------------

def _condition_label(row) -> str:
    from mdtheory.train.objectives import objective_label
    if row["objective"] == "md":
        return "MD " + fmt_window(row["t0"], row["t1"])
    return str(objective_label(row["objective"]))


def parity_conditions(results: Path) -> tuple[pd.DataFrame, tuple]:
    """The conditions of the main setting, as summarize wrote them."""
    main, setting = main_conditions(results)
    return main.assign(label=main.apply(_condition_label, axis=1)), setting


def parity_numbers(results: Path) -> tuple[dict, str]:
    """Macros and the per-condition table for the main parity setting."""
    try:
        conditions, (n, k, size) = parity_conditions(results)
        runs = int(summary_table(results, "summary_by_condition.csv")["seeds"].sum())
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
        cells = phase_cells(results, needed=("success_rate", "wilson_low", "wilson_high", "runs",
                                             "reached", "logrank_p_vs_os", "sample_complexity_bound"))
    except MissingData:
        return {}, empty_table("parity phase grid not run", 7)
    series = {"os": OS, "md": MD_SC, "full": MD_FULL}
    cells = cells[cells["weight_decay"] == cells["weight_decay"].max()]

    def success(r) -> str:
        return f"{int(r['reached'])}/{int(r['runs'])} ({r['wilson_low']:.2f}--{r['wilson_high']:.2f})"

    optimal = cells[cells["series"] == MD_SC]
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
                           ("parityBatch", batch_sentence), ("parityPaperMLP", paper_mlp_sentence),
                           ("parityPaperMLPSelectivity", selectivity_sentence)):
        text = sentence(results)
        if text:
            macros[name] = text
    windows = phase_window_sentence(results)
    if windows:
        macros["parityPhaseWindows"] = windows
    header = row("$k$", "$N$", r"$N$-bound of $U[0,t_1^{\mathrm{SC}}]$", "OS",
                 r"MD $U[0,t_1^{\mathrm{SC}}]$", r"MD $U[0,1]$", "log-rank $p$ (MD vs OS)")
    return macros, latex_table("rrrlllr", header, rows)


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
    """The paper's Fig. 5 setting: per arm, seeds reaching 0.90 / 0.99, KM
    medians and, for MD, the seed-paired tests against OS; for runs trained
    past 0.99, the lowest held-out accuracy after."""
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
            text += f", {int(r['n_unfinished'])} unfinished"
        tests = ("mcnemar_p_vs_os_90", "mcnemar_p_vs_os_99", "logrank_p_vs_os")
        if r["objective"] != "os" and all(pd.notna(r.get(c)) for c in ("paired_seeds", *tests)):  # paired with OS
            pairs = int(r["paired_seeds"])
            text += (f" (vs OS on {pairs} seed pair{'s' * (pairs != 1)}: McNemar $p={fmt_p(r[tests[0]])}$ "
                     f"at 0.90 and ${fmt_p(r[tests[1]])}$ at 0.99, log-rank $p={fmt_p(r[tests[2]])}$ at 0.99)")
        mine = runs[(runs["objective"] == r["objective"]) & ((runs["t1"] == r["t1"]) | runs["t1"].isna() & pd.isna(r["t1"]))]
        after = mine["min_val_after_99"].dropna()
        if len(after):
            text += f"; lowest held-out after first reaching 0.99: {', '.join(f'{v:.3f}' for v in after)}"
        parts.append(text)
    return "; ".join(parts) or None


def selectivity_sentence(results: Path) -> str | None:
    """Per arm of the Fig. 5 setting, the finished runs' secret-over-other weight selectivity
    (paper_mlp/selectivity.csv, from experiments.parity.selectivity)."""
    try:
        table = read_csv(Path(results) / PARITY / "paper_mlp" / "selectivity.csv",
                         "python -m experiments.parity.selectivity --root results/parity/paper_mlp",
                         ("objective", "t1", "ratio"))
    except MissingData:
        return None
    parts = [f"{'OS' if o == 'os' else f'MD $U[0,{t1:g}]$'} {', '.join(f'{v:.2f}' for v in g['ratio'])}"
             for (o, t1), g in table.fillna({"t1": -1.0}).groupby(["objective", "t1"], sort=False)]
    return "; ".join(sorted(parts, key=lambda text: (not text.startswith("OS"), text))) or None


def weight_decay_sentence(results: Path) -> str | None:
    """Per (k, N, objective, window) run at a second weight decay: how many
    of the seeds run at both reached 0.99 held-out, at each weight decay
    (largest first), from the phase root's summary.csv."""
    try:
        runs = summary_table(results, "summary.csv", "phase")
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
        table = summary_table(results, "theory_vs_speed.csv", "phase")
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


def parity_comparison_rows(par: dict) -> list[str]:
    """Setting, OS and best-MD steps, fastest window and seeds beside the paper's."""
    def ours(key):
        return par.get(key, NOT_RUN)

    setting = (f"$({ours('parityN')},{ours('parityK')})$, wd {ours('parityWeightDecay')}"
               if "parityN" in par else NOT_RUN)
    return [paper_row(label, PAPER_NUMBERS[key], value) for label, key, value in [
        ("setting $(n,k)$", "parity_setting", setting),
        ("output supervision: steps to 0.99 held-out", "os_val_99",
         ours("parityOSSteps") + (f" ({ours('parityOSReached')})" if "parityOSReached" in par else "")),
        ("masked diffusion: steps to 0.99 held-out (best window)", "md_within",
         ours("parityBestMDSteps") + (f" ({ours('parityBestMDReached')})" if "parityBestMDReached" in par else "")),
        ("fastest MD window(s)", "md_fastest", ours("parityBestMDWindow")),
        ("seeds per condition", "seeds", ours("paritySeedsMin")),
    ]]


