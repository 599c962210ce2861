"""Summarise parity runs: ``python -m experiments.parity.summarize``.

    python -m experiments.parity.summarize [--root DIR ...]

For each results root (default: every root of experiments.parity.presets
that holds runs) reads ROOT/runs/<run>/{config.json,metrics.jsonl,run.json}
and writes, beside provenance (ROOT/summary_provenance.json):

    ROOT/summary.csv               one row per run
    ROOT/summary_by_condition.csv  medians and spread over seeds per condition
    ROOT/summary_by_condition.md   the same as a markdown table
    ROOT/summary_by_seed.md        steps to 0.99 of every run, a column per condition
    ROOT/theory_vs_speed.csv       per (setting, weight decay, model): Spearman
                                   rank correlation between P_S of the MD
                                   window (and its sample-complexity bound)
                                   and speed (steps to 0.99 held-out), with
                                   bootstrap CIs over seeds
    ROOT/cells.csv                 per condition ("cell": k, N, objective,
                                   window, weight decay, ...): success rate
                                   with its Wilson interval, Kaplan-Meier
                                   median steps to 0.99 held-out with its CI,
                                   log-rank p of MD vs OS, paired-seed counts,
                                   share of runs with the memorisation plateau
    ROOT/cells.md                  the same as a markdown table
    ROOT/km_curves.csv             the Kaplan-Meier curve of every cell

Speed columns are the first evaluated step at which the accuracy is >= 0.99
(empty when never reached). The memorisation plateau of a run is the number
of steps from train accuracy 0.99 to the first held-out accuracy above 0.60
(or to the end of the run); it shows the grokking signature when the plateau
lasts at least 3x the steps it took to fit the training set.

Times to 0.99 held-out are censored data: a run that never reaches it within
its budget (or stopped for another reason) is right-censored at its last
evaluated step, never counted as "slow". Kaplan-Meier curves, their medians
and log-rank tests treat it so (scipy.stats.ecdf, scipy.stats.logrank).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mdtheory.cli import OneLineParser, atomic_write_text, run_cli, write_provenance_json
from mdtheory.errors import UserError
from mdtheory.provenance import device_label, provenance
from mdtheory.runfiles import RunRecord, read_runs

ACC, CHANCE_BAND, GROK_FACTOR = 0.99, 0.60, 3

RUN_COLUMNS = ["run", "group", "objective", "model", "n", "k", "train_size", "val_size", "weight_decay", "lr",
               "batch_size", "n_layer", "n_embd", "loss_weighting", "normalization", "t0", "t1", "P_S", "seed",
               "budget", "steps", "status", "steps_to_train_99", "steps_to_val_99", "steps_to_val_60",
               "plateau_steps", "grokking_signature", "max_val_acc", "final_train_acc", "final_val_acc",
               "device"]
OUTPUTS = ("summary.csv", "summary_by_condition.csv", "summary_by_condition.md", "summary_by_seed.md",
           "theory_vs_speed.csv", "cells.csv", "cells.md", "km_curves.csv", "summary_provenance.json")
MAIN_MODEL, SETTING = "transformer", ["n", "k", "train_size"]
CONDITION_KEYS = ["group", "objective", "model", "n", "k", "train_size", "weight_decay", "lr", "n_embd",
                  "loss_weighting", "normalization", "t0", "t1"]


# --- one run -----------------------------------------------------------------

def first_step(records: list[dict], key: str, threshold: float, above: bool = False):
    """First evaluated step with records[key] >= threshold (> if ``above``)."""
    for r in records:
        value = r.get(key)
        if value is not None and (value > threshold if above else value >= threshold):
            return int(r["step"])
    return None


def p_signal(task: dict, window) -> float | None:
    if task.get("p_signal") is not None:
        return float(task["p_signal"])
    if window is None:
        return None
    from mdtheory.theory.numeric import p_signal as theory_p_signal
    return float(theory_p_signal(task.get("k"), *window))


def summarize_run(run: RunRecord) -> dict:
    """One summary row."""
    task, records, md = run.task, run.metrics, run.objective == "md"
    t0, t1 = run.window or (None, None)
    steps = run.steps
    to_train = first_step(records, "train_acc", ACC)
    to_val = first_step(records, "val_acc", ACC)
    above_chance = first_step(records, "val_acc", CHANCE_BAND, above=True)
    plateau = None
    if to_train is not None:
        plateau = max(0, (above_chance if above_chance is not None else steps) - to_train)
    grok = bool(to_train is not None and to_train > 0 and plateau >= GROK_FACTOR * to_train)
    val = [r["val_acc"] for r in records if r.get("val_acc") is not None]
    return {
        "run": run.name, "group": run.marker.get("spec", {}).get("group", ""), "objective": run.objective,
        "model": task.get("model"), "n": task.get("n"), "k": task.get("k"),
        "train_size": task.get("train_size"), "val_size": task.get("val_size"),
        "weight_decay": run.train.get("weight_decay"), "lr": run.train.get("lr"),
        "batch_size": run.train.get("batch_size"), "n_layer": task.get("n_layer"), "n_embd": task.get("n_embd"),
        "loss_weighting": task.get("loss_weighting") if md else "",
        "normalization": task.get("normalization") if md else "",
        "t0": t0, "t1": t1, "P_S": p_signal(task, run.window) if md else None,
        "seed": run.seed, "budget": run.budget, "steps": steps, "status": run.status,
        "steps_to_train_99": to_train, "steps_to_val_99": to_val, "steps_to_val_60": above_chance,
        "plateau_steps": plateau, "grokking_signature": grok,
        "max_val_acc": max(val) if val else None,
        "final_train_acc": records[-1].get("train_acc"), "final_val_acc": records[-1].get("val_acc"),
        "device": device_label(run.provenance),  # "cpu" or the card's name
    }


def summarize_runs(runs_dir: Path) -> pd.DataFrame:
    rows = [summarize_run(run) for run in read_runs(runs_dir)]
    table = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for col in ("steps_to_train_99", "steps_to_val_99", "steps_to_val_60", "plateau_steps"):
        table[col] = table[col].astype("Int64")  # integers with empty cells for "never"
    return table


# --- per condition -------------------------------------------------------------

def _median(series: pd.Series):
    s = series.dropna()
    return float(s.median()) if len(s) else None


def _keyed(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with empty condition keys as "" (groupby drops NaN keys)."""
    return table.assign(**{k: table[k].astype(object).where(table[k].notna(), "") for k in CONDITION_KEYS})


def _sort_conditions(out: pd.DataFrame) -> pd.DataFrame:
    """Per setting: larger weight decay first, then OS, AR, MD windows by t1."""
    order = out["objective"].map({"os": 0, "ar": 1, "md": 2}).fillna(3)
    out = out.assign(_o=order, _t1=pd.to_numeric(out["t1"], errors="coerce"),
                     _wd=-pd.to_numeric(out["weight_decay"], errors="coerce"))
    return out.sort_values(["group", "n", "k", "train_size", "model", "_wd", "_o", "_t1"]) \
        .drop(columns=["_o", "_t1", "_wd"]).reset_index(drop=True)


def by_condition(table: pd.DataFrame) -> pd.DataFrame:
    """Median and min-max of the speed columns over seeds, per condition.

    ``val_99_median_all`` counts a never-reached run as +inf (so it is the
    median over all seeds, infinite when fewer than half reached 0.99);
    ``val_99_median`` is the median over the seeds that reached it."""
    rows = []
    for key, g in _keyed(table).groupby(CONDITION_KEYS, sort=False, dropna=False):
        val = g["steps_to_val_99"].astype("Float64")
        all_val = val.fillna(np.inf).astype(float)
        row = dict(zip(CONDITION_KEYS, key))
        row.update({
            "P_S": g["P_S"].iloc[0], "seeds": len(g), "budget": int(g["budget"].max()),
            "train_99_reached": int(g["steps_to_train_99"].notna().sum()),
            "train_99_median": _median(g["steps_to_train_99"].astype("Float64")),
            "val_99_reached": int(val.notna().sum()),
            "val_99_median": _median(val), "val_99_min": val.min() if val.notna().any() else None,
            "val_99_max": val.max() if val.notna().any() else None,
            "val_99_median_all": float(np.median(all_val)),
            "grokking_signature": int(g["grokking_signature"].sum()),
            "final_val_acc_median": _median(g["final_val_acc"]),
            "max_val_acc_median": _median(g["max_val_acc"]),
        })
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = _sort_conditions(out)
    return out.assign(main_setting=main_setting_mask(out))


def main_setting_mask(cond: pd.DataFrame) -> pd.Series:
    """The conditions of the main setting: the (n, k, N) whose transformer
    runs have the most distinct (objective, weight decay, window) conditions
    (the one figures and the paper's table show)."""
    transformer = cond[cond["model"] == MAIN_MODEL]
    if transformer.empty:
        return pd.Series(False, index=cond.index)
    counts = transformer.groupby(SETTING).apply(
        lambda g: len(g[["objective", "weight_decay", "t0", "t1"]].astype(str).drop_duplicates()),
        include_groups=False)
    best = max(counts.index, key=lambda s: (counts[s], str(s)))
    return (cond["model"] == MAIN_MODEL) & (cond[SETTING].apply(tuple, axis=1) == best)


def _fmt_steps(x) -> str:
    if x is None or (isinstance(x, float) and (math.isnan(x))):
        return "–"
    return "never" if math.isinf(x) else f"{int(round(x)):,}"


def condition_label(row) -> str:
    if row["objective"] == "md":
        label = f"MD U[{float(row['t0']):g},{float(row['t1']):g}]"
        if row["loss_weighting"] not in ("", "inverse_t"):
            label += f" w={row['loss_weighting']}"
        if row["normalization"] not in ("", "tokens"):
            label += f" norm={row['normalization']}"
        return label
    from mdtheory.train.objectives import objective_label
    return objective_label(row["objective"])


def markdown_table(cond: pd.DataFrame) -> str:
    head = ("| group | model | (n,k) | N | wd | lr | width | condition | P_S | seeds | train 0.99 (median) "
            "| val 0.99 reached | val 0.99 median [min, max] | median over all seeds | grokking signature "
            "| final val (median) |")
    lines = []
    for _, r in cond.iterrows():
        p_s = "" if pd.isna(r["P_S"]) else f"{r['P_S']:.3f}"
        spread = (f"{_fmt_steps(r['val_99_median'])} [{_fmt_steps(r['val_99_min'])}, {_fmt_steps(r['val_99_max'])}]"
                  if r["val_99_reached"] else "–")
        lines.append(
            f"| {r['group']} | {r['model']} | ({r['n']},{r['k']}) | {r['train_size']} | {r['weight_decay']:g} "
            f"| {r['lr']:g} | {r['n_embd']} | {condition_label(r)} | {p_s} | {r['seeds']} "
            f"| {_fmt_steps(r['train_99_median'])} | {r['val_99_reached']}/{r['seeds']} | {spread} "
            f"| {_fmt_steps(r['val_99_median_all'])} | {r['grokking_signature']}/{r['seeds']} "
            f"| {r['final_val_acc_median']:.2f} |")
    return _markdown(head, lines)


def _markdown(head: str, rows: list[str]) -> str:
    """A markdown table: header row, separator, rows."""
    return "\n".join([head, "|" + "---|" * (head.count("|") - 1), *rows]) + "\n"


def by_seed_markdown(table: pd.DataFrame) -> str:
    """Steps to 0.99 held-out accuracy of every run: one table per setting,
    a row per (weight decay, seed), a column per condition ("–" = never,
    with the final held-out accuracy in brackets)."""
    out = []
    frame = table.assign(label=table.apply(condition_label, axis=1))
    for key, g in frame.groupby(["group", "model", "n", "k", "train_size"], sort=True):
        first = {"output supervision": 0, "autoregressive": 1}
        labels = sorted(g["label"].unique(), key=lambda x: (first.get(x, 2), float(x.split(",")[1].split("]")[0])
                                                            if x.startswith("MD U") else 0, x))
        out.append(f"### {key[0]}: {key[1]}, (n,k) = ({key[2]},{key[3]}), N = {key[4]}\n")
        out.append("| wd | seed | " + " | ".join(labels) + " |")
        out.append("|" + "---|" * (len(labels) + 2))
        for (wd, seed), h in g.groupby(["weight_decay", "seed"], sort=True):
            runs = [h[h["label"] == label] for label in labels]
            cells = ["" if run.empty else _fmt_steps(run.iloc[0]["steps_to_val_99"])
                     if pd.notna(run.iloc[0]["steps_to_val_99"]) else f"– ({run.iloc[0]['final_val_acc']:.2f})"
                     for run in runs]
            out.append(f"| {wd:g} | {seed} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out) + "\n"


# --- survival statistics per cell ----------------------------------------------

CONFIDENCE = 0.95
BOUND_DELTA = 0.05          # failure probability of the theory's sample-complexity bound
# a cell is one condition; these columns come first in cells.csv
CELL_COLUMNS = ["k", "train_size", "objective", "t0", "t1", "weight_decay", "n", "model", "group", "lr",
                "n_embd", "loss_weighting", "normalization"]
# what an MD cell shares with the OS cell it is compared with
PAIR_KEYS = [k for k in CONDITION_KEYS if k not in ("objective", "t0", "t1", "loss_weighting", "normalization")]
assert sorted(CELL_COLUMNS) == sorted(CONDITION_KEYS)
CELL_STATS = ["theory_window", "P_S", "sample_complexity_bound", "budget", "runs", "reached", "success_rate", "wilson_low",
              "wilson_high", "km_median_steps", "km_median_low", "km_median_high", "logrank_p_vs_os",
              "paired_seeds", "reached_where_os_not", "os_reached_where_not", "train_99_reached",
              "plateau_runs", "plateau_share", "plateau_low", "plateau_high"]


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (no continuity correction)."""
    from scipy import stats
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def theory_window(k: int, t0, t1) -> str:
    """Which of the theory's windows U[t0, t1] is (to the 3 decimals the
    presets use): "sample-complexity optimal", "P_S optimal", "full range" or ""."""
    from mdtheory.theory.numeric import best_t1_given_t0_zero, sample_complexity_optimal_t1
    if t0 == "" or t1 == "" or float(t0) != 0.0:
        return ""
    named = {"sample-complexity optimal": sample_complexity_optimal_t1(int(k)),
             "P_S optimal": best_t1_given_t0_zero(int(k)), "full range": 1.0}
    return next((name for name, t in named.items() if abs(float(t1) - t) < 5e-4), "")


def censored_steps(runs: pd.DataFrame):
    """Steps to 0.99 held-out as scipy CensoredData: a run that never reached
    it is right-censored at its last evaluated step."""
    from scipy import stats
    reached = runs["steps_to_val_99"].notna()
    return stats.CensoredData(uncensored=runs.loc[reached, "steps_to_val_99"].astype(float).to_numpy(),
                              right=runs.loc[~reached, "steps"].astype(float).to_numpy())


def kaplan_meier(runs: pd.DataFrame) -> pd.DataFrame:
    """Kaplan-Meier estimate of P(not yet at 0.99 held-out after ``step``),
    one row per distinct event or censoring step, with its 95% log-log band
    and how many runs reached 0.99 (``events``) or ended without it
    (``censored``) there. The band is undefined where the survival is 1
    (taken as 1) or 0 (lower end 0, upper end carried over from the step
    before: an all-reached cell does not bound its median from above)."""
    import warnings

    from scipy import stats
    times = censored_steps(runs)
    sf = stats.ecdf(times).sf
    with warnings.catch_warnings():  # scipy warns where the log-log band is undefined; filled below
        warnings.simplefilter("ignore", RuntimeWarning)
        band = sf.confidence_interval(CONFIDENCE, method="log-log")
    survival = sf.probabilities
    low = np.where(np.isnan(band.low.probabilities), np.where(survival == 1, 1.0, 0.0), band.low.probabilities)
    high = pd.Series(np.where(survival == 1, 1.0, band.high.probabilities)).ffill().fillna(1.0)
    curve = pd.DataFrame({"step": sf.quantiles, "survival": survival, "survival_low": low,
                          "survival_high": high.to_numpy()})
    reached = runs["steps_to_val_99"].notna()
    ends = np.where(reached, runs["steps_to_val_99"].astype("Float64").fillna(-1).astype(float),
                    runs["steps"].astype(float))
    curve["events"] = [int(np.sum(reached & (ends == t))) for t in curve["step"]]
    curve["censored"] = [int(np.sum(~reached & (ends == t))) for t in curve["step"]]
    return curve


def km_median(curve: pd.DataFrame) -> tuple:
    """Median steps to 0.99 (first step where the survival drops to <= 0.5)
    and its 95% CI from the band (None where a curve never gets there: the
    median, or its upper limit, lies beyond the last observation)."""
    def first_step_at_half(column):
        hits = curve.loc[curve[column] <= 0.5, "step"]
        return float(hits.iloc[0]) if len(hits) else None
    return first_step_at_half("survival"), first_step_at_half("survival_low"), first_step_at_half("survival_high")


def logrank_p(runs: pd.DataFrame, other: pd.DataFrame) -> float | None:
    """Two-sided log-rank p of steps to 0.99, None when neither group has an event."""
    from scipy import stats
    if not (runs["steps_to_val_99"].notna().any() or other["steps_to_val_99"].notna().any()):
        return None
    return float(stats.logrank(censored_steps(runs), censored_steps(other)).pvalue)


def _paired(runs: pd.DataFrame, other: pd.DataFrame) -> dict:
    """Seeds run in both cells, and where only one of them reached 0.99."""
    mine, theirs = (r.groupby("seed")["steps_to_val_99"].apply(lambda s: bool(s.notna().any()))
                    for r in (runs, other))
    common = mine.index.intersection(theirs.index)
    mine, theirs = mine[common], theirs[common]
    return {"paired_seeds": len(common), "reached_where_os_not": int((mine & ~theirs).sum()),
            "os_reached_where_not": int((~mine & theirs).sum())}


def cells(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Survival statistics per cell, and the cells' Kaplan-Meier curves.

    An MD (or AR) cell is compared with the OS cell of the same setting (k,
    N, weight decay, model, optimiser): log-rank test and, seed by seed (the
    seed fixes the secret set and the training strings), where only one of
    the two reached 0.99. The plateau columns count the runs with the
    grokking signature of summarize_run."""
    from mdtheory.theory.numeric import sample_complexity_bound

    keyed = _keyed(table)
    groups = {key: g for key, g in keyed.groupby(CONDITION_KEYS, sort=False, dropna=False)}
    os_cells = {tuple(key[CONDITION_KEYS.index(k)] for k in PAIR_KEYS): g
                for key, g in groups.items() if key[CONDITION_KEYS.index("objective")] == "os"}
    rows, curves = [], {}
    for key, g in groups.items():
        cell = dict(zip(CONDITION_KEYS, key))
        curve = kaplan_meier(g)
        median, median_low, median_high = km_median(curve)
        reached, plateau = int(g["steps_to_val_99"].notna().sum()), int(g["grokking_signature"].sum())
        md = cell["objective"] == "md" and cell["t1"] != ""
        row = {**cell, "theory_window": theory_window(cell["k"], cell["t0"], cell["t1"]) if md else "",
               "P_S": g["P_S"].iloc[0],
               "sample_complexity_bound": float(sample_complexity_bound(cell["n"], cell["k"], BOUND_DELTA,
                                                                        cell["t0"], cell["t1"]))
               if md and cell["n"] != "" else None,
               "budget": int(g["budget"].max()), "runs": len(g), "reached": reached,
               "success_rate": reached / len(g),
               **dict(zip(("wilson_low", "wilson_high"), wilson_interval(reached, len(g)))),
               "km_median_steps": median, "km_median_low": median_low, "km_median_high": median_high,
               "train_99_reached": int(g["steps_to_train_99"].notna().sum()),
               "plateau_runs": plateau, "plateau_share": plateau / len(g),
               **dict(zip(("plateau_low", "plateau_high"), wilson_interval(plateau, len(g))))}
        partner = os_cells.get(tuple(cell[k] for k in PAIR_KEYS))
        if cell["objective"] != "os" and partner is not None:
            row["logrank_p_vs_os"] = logrank_p(g, partner)
            row.update(_paired(g, partner))
        rows.append(row)
        curves[key] = curve.assign(**{k: cell[k] for k in CELL_COLUMNS})
    out = _sort_conditions(pd.DataFrame(rows).reindex(columns=CELL_COLUMNS + CELL_STATS))
    km = pd.concat([curves[tuple(r[k] for k in CONDITION_KEYS)] for _, r in out.iterrows()], ignore_index=True)
    for col in ("budget", "runs", "reached", "train_99_reached", "plateau_runs", "paired_seeds",
                "reached_where_os_not", "os_reached_where_not", "km_median_steps", "km_median_low",
                "km_median_high"):
        out[col] = out[col].astype("Float64").round().astype("Int64")  # integers with empty cells
    km = km[CELL_COLUMNS + ["step", "survival", "survival_low", "survival_high", "events", "censored"]]
    return out, km


def _fmt_p(p) -> str:
    if pd.isna(p):
        return ""
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.0e}"


def cells_markdown(cell_table: pd.DataFrame) -> str:
    head = ("| group | model | (n,k) | N | wd | condition | reached | success [95% Wilson] "
            "| KM median steps [95% CI] | log-rank p vs OS | seeds: reached, OS not / OS reached, not "
            "| plateau |")
    lines = []
    for _, r in cell_table.iterrows():
        median = "not reached" if pd.isna(r["km_median_steps"]) else (
            f"{_fmt_steps(r['km_median_steps'])} [{_fmt_steps(r['km_median_low'])}, "
            + ("–" if pd.isna(r["km_median_high"]) else _fmt_steps(r["km_median_high"])) + "]")
        paired = "" if pd.isna(r["paired_seeds"]) else \
            f"{r['reached_where_os_not']} / {r['os_reached_where_not']} of {r['paired_seeds']}"
        lines.append(
            f"| {r['group']} | {r['model']} | ({r['n']},{r['k']}) | {r['train_size']} | {r['weight_decay']:g} "
            f"| {condition_label(r)}{f' ({r.theory_window})' if r['theory_window'] else ''} "
            f"| {r['reached']}/{r['runs']} "
            f"| {r['success_rate']:.2f} [{r['wilson_low']:.2f}, {r['wilson_high']:.2f}] | {median} "
            f"| {_fmt_p(r['logrank_p_vs_os'])} | {paired} | {r['plateau_runs']}/{r['runs']} |")
    return _markdown(head, lines)


# --- theory vs speed -----------------------------------------------------------

N_BOOT, BOOT_SEED = 2000, 0


def _spearman(x, y) -> float:
    from scipy.stats import spearmanr
    return float(spearmanr(x, y)[0]) if np.ptp(x) > 0 and np.ptp(y) > 0 else np.nan


def _resample_seeds(seeds, distinct, values, n_boot: int, rng_seed: int) -> np.ndarray:
    """(n_boot, seeds x most runs of a seed) resampled values, NaN-padded
    where a seed has fewer runs; the same rng_seed draws the same seeds."""
    per_seed = [np.asarray(values, dtype=float)[seeds == s] for s in distinct]
    padded = np.full((len(distinct), max(len(v) for v in per_seed)), np.nan)
    for i, v in enumerate(per_seed):
        padded[i, :len(v)] = v
    draws = np.random.default_rng(rng_seed).integers(len(distinct), size=(n_boot, len(distinct)))
    return padded[draws].reshape(n_boot, -1)


def _row_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of x against the same row of y (NaN
    entries left out; NaN where a row is constant), as scipy.stats.spearmanr."""
    from scipy.stats import rankdata
    cx, cy = (rankdata(v, axis=1, nan_policy="omit") for v in (x, y))
    cx, cy = (c - np.nanmean(c, axis=1, keepdims=True) for c in (cx, cy))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nansum(cx * cy, axis=1) / np.sqrt(np.nansum(cx ** 2, axis=1) * np.nansum(cy ** 2, axis=1))


def bootstrap_spearman(seeds, x, y, n_boot: int = N_BOOT, rng_seed: int = BOOT_SEED) -> tuple:
    """Percentile 95% CI of Spearman's rho(x, y) over seeds resampled with
    replacement; a drawn seed brings all its runs (paired: the same secret
    set and training strings under every window). Returns (low, high, the
    number of resamples where rho is defined); (None, None, 0) with fewer
    than two seeds. The generator is seeded: the CI is reproducible."""
    seeds, x, y = (np.asarray(v) for v in (seeds, x, y))
    distinct = np.unique(seeds)
    if len(distinct) < 2:
        return None, None, 0
    rhos = _row_spearman(*(_resample_seeds(seeds, distinct, v, n_boot, rng_seed) for v in (x, y)))
    rhos = rhos[np.isfinite(rhos)]
    if not len(rhos):
        return None, None, 0
    low, high = np.percentile(rhos, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
    return float(low), float(high), len(rhos)


def theory_vs_speed(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho between P_S and speed over the MD runs of each setting.

    Speed is 1 / steps_to_val_99 with never-reached runs at 0 (ranked slowest,
    tied), so rho > 0 means windows with more signal learn faster. The same
    for the theory's sample-complexity bound N(t0, t1) (rho < 0: a window
    that needs fewer samples learns faster). ``rho_low``/``rho_high`` and
    ``rho_bound_low``/``rho_bound_high`` are bootstrap CIs over seeds."""
    from scipy.stats import spearmanr
    from mdtheory.theory.numeric import best_t1_given_t0_zero, sample_complexity_bound, sample_complexity_optimal_t1

    md = table[(table["objective"] == "md") & table["P_S"].notna()
               & (table["loss_weighting"] == "inverse_t") & (table["normalization"] == "tokens")]
    rows = []
    keys = ["model", "n", "k", "train_size", "weight_decay", "lr", "n_embd"]
    for key, g in md.groupby(keys):
        if g["t1"].nunique() < 2:
            continue
        steps = g["steps_to_val_99"].astype("Float64").astype(float)
        speed = (1.0 / steps).fillna(0.0)
        rho, p = (spearmanr(g["P_S"], speed) if speed.nunique() > 1 else (np.nan, np.nan))
        # windows ordered by median steps over all seeds (never = inf), ties
        # broken by how many seeds reached 0.99, then by their median
        g = g.assign(_s=steps.fillna(np.inf))
        per_window = g.groupby("t1").agg(median_all=("_s", "median"), reached=("_s", lambda s: int(np.isfinite(s).sum())),
                                         median_reached=("_s", lambda s: float(np.median(s[np.isfinite(s)]))
                                                         if np.isfinite(s).any() else np.inf))
        per_window = per_window.sort_values(["median_all", "reached", "median_reached"],
                                            ascending=[True, False, True])
        best_t1 = best_t1_given_t0_zero(int(key[2]))
        theory_t1 = min(per_window.index, key=lambda t: abs(t - best_t1))
        order = list(per_window.index)
        fastest = per_window.iloc[0]
        sc_t1 = sample_complexity_optimal_t1(int(key[2]))
        sc_window_t1 = min(per_window.index, key=lambda t: abs(t - sc_t1))
        bound = sample_complexity_bound(int(key[1]), int(key[2]), BOUND_DELTA, g["t0"].astype(float),
                                        g["t1"].astype(float))
        rho_low, rho_high, n_boot = bootstrap_spearman(g["seed"], g["P_S"].astype(float), speed)
        bound_low, bound_high, _ = bootstrap_spearman(g["seed"], bound, speed)
        rows.append({
            **dict(zip(keys, key)), "runs": len(g), "windows": g["t1"].nunique(),
            "runs_reached_val_99": int(np.isfinite(g["_s"]).sum()),
            "spearman_rho_PS_speed": rho, "p_value": p,
            "theory_best_t1": round(best_t1, 4),
            "fastest_t1": float(order[0]) if fastest["reached"] else None,
            "fastest_median_steps": fastest["median_all"] if fastest["reached"] else None,
            "fastest_reached": int(fastest["reached"]),
            "theory_window_t1": float(theory_t1),
            # a rank among windows that all failed would be meaningless
            "theory_window_rank": order.index(theory_t1) + 1 if per_window["reached"].any() else None,
            "theory_window_median_steps": per_window.loc[theory_t1, "median_all"],
            "theory_window_reached": int(per_window.loc[theory_t1, "reached"]),
            "window_order": " ".join(f"{t:g}" for t in order),
            "rho_low": rho_low, "rho_high": rho_high,
            "spearman_rho_bound_speed": _spearman(bound, speed), "rho_bound_low": bound_low,
            "rho_bound_high": bound_high, "n_boot": n_boot,
            "sc_optimal_t1": round(sc_t1, 4), "sc_window_t1": float(sc_window_t1),
            "sc_window_rank": order.index(sc_window_t1) + 1 if per_window["reached"].any() else None,
        })
    return pd.DataFrame(rows)


# --- command line --------------------------------------------------------------

def summarize_root(root: Path) -> pd.DataFrame:
    root = Path(root)
    runs_dir = root / "runs"
    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir} does not exist (run python -m experiments.parity.run first)")
    for name in OUTPUTS:
        if (root / name).exists() and not (root / name).is_file():
            raise UserError(f"{root / name} exists and is not a file; move it away to write the summary")
    table = summarize_runs(runs_dir)
    if table.empty:
        raise UserError(f"no run with config.json and metrics.jsonl under {runs_dir}")
    cond = by_condition(table)
    cell_table, km = cells(table)
    texts = {
        "summary.csv": table.to_csv(index=False),
        "summary_by_condition.csv": cond.to_csv(index=False),
        "summary_by_condition.md": f"# Parity runs under `{root}`: steps to 0.99 accuracy per condition\n\n"
                                   "Regenerated by `python -m experiments.parity.summarize`; 'never' = not "
                                   "reached within the budget.\n\n" + markdown_table(cond),
        "summary_by_seed.md": f"# Parity runs under `{root}`: steps to 0.99 held-out accuracy, run by run\n\n"
                              "'–' = not reached within the run's budget (final held-out accuracy in "
                              "brackets).\n\n" + by_seed_markdown(table),
        "theory_vs_speed.csv": theory_vs_speed(table).to_csv(index=False),
        "cells.csv": cell_table.to_csv(index=False),
        "cells.md": f"# Parity runs under `{root}`: survival statistics per cell\n\n"
                    "Regenerated by `python -m experiments.parity.summarize`. Reached: runs at 0.99 held-out "
                    "accuracy within their budget; success rate with its 95% Wilson interval; Kaplan-Meier "
                    "median steps to 0.99 held-out with its 95% CI (runs that never reached it are censored "
                    "at their last step; 'not reached': fewer than half reached it, '–': no upper limit); two-sided "
                    "log-rank p against output supervision in the same setting; seeds where only this "
                    "condition or only OS reached 0.99; runs with the memorisation plateau (fit the "
                    "training set, then at chance >= 3x as long).\n\n" + cells_markdown(cell_table),
        "km_curves.csv": km.to_csv(index=False),
    }
    try:
        for name, text in texts.items():
            atomic_write_text(root / name, text)
        # the provenance of unchanged numbers is still true: keep the file as it is
        write_provenance_json(root / "summary_provenance.json", {"runs": len(table), **provenance()},
                              describes=[root / name for name in texts])
    except OSError as exc:
        raise UserError(f"cannot write the summary under {root}: {exc}") from None
    return table


def default_roots() -> list[Path]:
    from .presets import ROOTS
    return [Path(r) for r in dict.fromkeys(ROOTS.values()) if (Path(r) / "runs").is_dir()]


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m experiments.parity.summarize", description=__doc__.split("\n")[0])
    p.add_argument("--root", nargs="+", default=None,
                   help="results roots holding runs/ (default: every preset root that exists)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    roots = [Path(r) for r in args.root] if args.root else default_roots()
    if not roots:
        raise UserError("no parity runs found (run python -m experiments.parity.run --preset quick first)")
    for root in roots:
        table = summarize_root(root)
        print(f"{root}: {len(table)} runs -> {root / 'summary.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
