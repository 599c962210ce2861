"""Summarise parity runs: ``python -m experiments.parity.summarize``.

    python -m experiments.parity.summarize [--root DIR ...] [--baseline BASE]

For each results root (default: every root of experiments.parity.presets that holds runs) reads
ROOT/runs/<run>/{config.json,metrics.jsonl,run.json} and writes, beside provenance
(ROOT/summary_provenance.json):

    ROOT/summary.csv               one row per run
    ROOT/summary_by_condition.csv  medians and spread over seeds per condition
    ROOT/summary_by_condition.md   the same as a markdown table
    ROOT/summary_by_seed.md        steps to 0.99 of every run, a column per condition
    ROOT/theory_vs_speed.csv       per (setting, weight decay, model): Spearman's rho between P_S of the MD
                                   window (and its sample-complexity bound) and speed (steps to 0.99
                                   held-out), with BCa bootstrap CIs over seed clusters
    ROOT/cells.csv                 per condition ("cell": k, N, objective, window, weight decay, ...): success
                                   rate with its Wilson interval, Kaplan-Meier median steps with its CI,
                                   log-rank and exact McNemar p of MD vs OS, paired-seed and outcome counts,
                                   share of runs with the memorisation plateau; at 0.99 and 0.90
    ROOT/cells.md                  the same as a markdown table
    ROOT/km_curves.csv             the Kaplan-Meier curve (steps to 0.99) of every cell
    ROOT/curves.csv                train / held-out accuracy, signal- and noise-regime losses and energy
                                   (where logged) vs step per condition: mean, median, quartiles, range
                                   over seeds (experiments/parity/curves.py)
    ROOT/window_vs_full_range.csv  each MD window against U[0,1] in the same setting, paired by seed:
                                   wins, losses, ties and the exact sign test, per cell and pooled per
                                   window kind, at 0.99 and 0.90

With ``--baseline BASE`` each ROOT also gets

    ROOT/paired_with_baseline.csv       per cell of ROOT: its runs paired with BASE's run of the same settings
                                        and seed (batch size, budget, group and tag may differ): reached 0.99
                                        / 0.90 in each, discordant pairs, exact McNemar p, median step ratio
                                        ROOT / BASE, final accuracies and budgets of each
    ROOT/paired_with_baseline_runs.csv  the pairs themselves, one row per run of ROOT (empty baseline
                                        columns: no match)

and keeps BASE in its provenance: summarised again without --baseline (as ``make all`` does), the root
is paired with the same BASE again.

Two thresholds of held-out accuracy. The columns of cells.csv without a suffix (``reached``,
``success_rate``, ``wilson_low``/``wilson_high``, ``km_median_steps``/``km_median_low``/``km_median_high``,
``logrank_p_vs_os``, ``reached_where_os_not``, ``os_reached_where_not``) are the 0.99 ones, as before
(plots and paper tables read them); the same statistics at 0.90 end in ``_90``; the McNemar columns name
both (``mcnemar_p_vs_os_99``, ``mcnemar_p_vs_os_90``). km_curves.csv holds the 0.99 curves only. A
verdict that holds at one threshold and not the other hinges on the threshold.

Speed columns are the first evaluated step at which the accuracy is >= the threshold (empty when never
reached). Every run gets an ``outcome``: "reached_99" (held-out 0.99 within its budget), "slower" (passed
0.90, not 0.99), "did_not_learn" (never passed 0.90 and final held-out < 0.60), "partial" (never passed
0.90, final held-out >= 0.60) and, for a run still training (status "running": run.json says so, or there is
none and the run is below its budget), "unfinished" unless it already reached 0.99. ``min_val_after_99`` is the lowest held-out accuracy
at the evaluations after the first one at 0.99 (empty if never reached or nothing was evaluated after
it): a run that dropped back shows it. The memorisation plateau of a run is the number of steps from
train accuracy 0.99 to the first held-out accuracy above 0.60 (or to the end of the run); it shows the
grokking signature when the plateau lasts at least 3x the steps it took to fit the training set.

Times to a threshold are censored data: a run that never reaches it within its budget (or stopped for
another reason, or is still running) is right-censored at its last evaluated step, never counted as
"slow". Kaplan-Meier curves, their medians and log-rank tests treat it so (scipy.stats.ecdf,
scipy.stats.logrank). Seed-paired tests: the exact McNemar test (two-sided binomial test on the
discordant seeds, p = 1 without any) for reached / not reached against OS, and the exact sign test for
which of two windows got there sooner (a run that never got there loses its pair; both never: a tie; a
pair whose order the budgets do not decide, e.g. one run still training, is "undecided" and left out).

The bootstrap intervals of Spearman's rho resample whole seeds (a seed fixes the secret set and the
training strings under every window): BCa (scipy.stats.bootstrap, fixed seed, so the interval is
reproducible), the percentile interval where BCa is undefined (``ci_method`` says which). With a handful
of seed clusters (6 in the phase grid) these intervals describe the spread over seeds; they are not tests.

A folder under ROOT/runs without config.json and metrics.jsonl, or without a first evaluation, is
skipped; a run still training (run.json says "running", or there is none and the run is below its
budget) is included, censored at its last evaluation. The command prints how many of each.
"""
from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from experiments.parity.curves import learning_curves

from mdtheory.cli import OneLineParser, atomic_write_text, run_cli, write_provenance_json
from mdtheory.errors import UserError
from mdtheory.provenance import device_label, provenance
from mdtheory.runfiles import RunRecord, is_run, read_run
from mdtheory.theory.numeric import best_t1_given_t0_zero, sample_complexity_bound, sample_complexity_optimal_t1
from mdtheory.theory.numeric import p_signal as theory_p_signal

ACC, ACC_90, CHANCE_BAND, GROK_FACTOR = 0.99, 0.90, 0.60, 3
# held-out accuracy thresholds: column suffix -> threshold
THRESHOLDS = {"99": ACC, "90": ACC_90}
OUTCOMES = ("reached_99", "slower", "partial", "did_not_learn", "unfinished")
CONFIDENCE = 0.95
BOUND_DELTA = 0.05          # failure probability of the theory's sample-complexity bound

RUN_COLUMNS = ["run", "group", "objective", "model", "n", "k", "train_size", "val_size", "weight_decay", "lr",
               "batch_size", "n_layer", "n_embd", "loss_weighting", "normalization", "t0", "t1", "P_S", "seed",
               "budget", "steps", "status", "early_stop", "steps_to_train_99", "steps_to_val_99",
               "steps_to_val_90", "steps_to_val_60", "plateau_steps", "grokking_signature", "max_val_acc",
               "min_val_after_99", "final_train_acc", "final_val_acc", "outcome", "device"]
BASELINE_OUTPUTS = ("paired_with_baseline.csv", "paired_with_baseline_runs.csv")
OUTPUTS = ("summary.csv", "summary_by_condition.csv", "summary_by_condition.md", "summary_by_seed.md",
           "theory_vs_speed.csv", "cells.csv", "cells.md", "km_curves.csv", "window_vs_full_range.csv",
           "curves.csv", "summary_provenance.json", *BASELINE_OUTPUTS)
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
    return None if window is None else float(theory_p_signal(task.get("k"), *window))


def min_after(records: list[dict], key: str, threshold: float):
    """Lowest records[key] at the evaluations after the first one with
    records[key] >= threshold; None if never reached or nothing came after."""
    values = [r.get(key) for r in records]
    first = next((i for i, v in enumerate(values) if v is not None and v >= threshold), None)
    after = [v for v in values[first + 1:] if v is not None] if first is not None else []
    return min(after) if after else None


def outcome(to_val_99, to_val_90, final_val, status: str) -> str:
    """reached_99 / slower / partial / did_not_learn (see the module docstring); "unfinished" for a run
    still training that has not reached 0.99 yet, whose outcome is not known."""
    if to_val_99 is not None:
        return "reached_99"
    if status == "running":
        return "unfinished"
    if to_val_90 is not None:
        return "slower"
    return "partial" if final_val is not None and final_val >= CHANCE_BAND else "did_not_learn"


def early_stop_of(marker: dict):
    """Whether the runner stopped the run at 0.99: the spec's ``early_stop`` field; older run.json files
    without it stopped early when they name the rule; None without run.json."""
    spec = marker.get("spec") or {}
    if "early_stop" in spec:
        return bool(spec["early_stop"])
    return ("early_stop_rule" in marker) if marker else None


def summarize_run(run: RunRecord) -> dict:
    """One summary row (summarize_runs orders the columns as RUN_COLUMNS)."""
    task, records, md = run.task, run.metrics, run.objective == "md"
    to_train = first_step(records, "train_acc", ACC)
    to_val = first_step(records, "val_acc", ACC)
    to_val_90 = first_step(records, "val_acc", ACC_90)
    above_chance = first_step(records, "val_acc", CHANCE_BAND, above=True)
    plateau = None
    if to_train is not None:
        plateau = max(0, (above_chance if above_chance is not None else run.steps) - to_train)
    val = [r["val_acc"] for r in records if r.get("val_acc") is not None]
    return {
        **{key: task.get(key) for key in ("model", "n", "k", "train_size", "val_size", "n_layer", "n_embd")},
        **{key: run.train.get(key) for key in ("weight_decay", "lr", "batch_size")},
        "run": run.name, "group": run.marker.get("spec", {}).get("group", ""), "objective": run.objective,
        "loss_weighting": task.get("loss_weighting") if md else "",
        "normalization": task.get("normalization") if md else "",
        **dict(zip(("t0", "t1"), run.window or (None, None))), "P_S": p_signal(task, run.window) if md else None,
        "seed": run.seed, "budget": run.budget, "steps": run.steps, "status": run.status,
        "early_stop": early_stop_of(run.marker),
        "steps_to_train_99": to_train, "steps_to_val_99": to_val, "steps_to_val_90": to_val_90,
        "steps_to_val_60": above_chance, "plateau_steps": plateau,
        "grokking_signature": bool(to_train is not None and to_train > 0 and plateau >= GROK_FACTOR * to_train),
        "max_val_acc": max(val) if val else None, "min_val_after_99": min_after(records, "val_acc", ACC),
        "final_train_acc": records[-1].get("train_acc"), "final_val_acc": records[-1].get("val_acc"),
        "outcome": outcome(to_val, to_val_90, records[-1].get("val_acc"), run.status),
        "device": device_label(run.provenance),  # "cpu" or the card's name
    }


SKIP_NO_FILES, SKIP_NO_EVAL = "no config.json and metrics.jsonl", "no evaluation yet"


def summarize_runs(runs_dir: Path, curves: list | None = None) -> pd.DataFrame:
    """summary.csv of the runs under ``runs_dir`` that have evaluated at least once (as
    runfiles.read_runs); ``.attrs["skipped"]`` names the folders left out, by reason. Given a list,
    ``curves`` gets the learning curves of the same runs appended."""
    runs, skipped = [], {SKIP_NO_FILES: [], SKIP_NO_EVAL: []}
    for d in sorted(Path(runs_dir).iterdir()) if Path(runs_dir).is_dir() else []:
        if not d.is_dir():
            continue
        run = read_run(d) if is_run(d) else None
        if run is None:
            skipped[SKIP_NO_FILES].append(d.name)
        elif run.metrics:
            runs.append(run)
        else:
            skipped[SKIP_NO_EVAL].append(d.name)
    table = pd.DataFrame([summarize_run(run) for run in runs], columns=RUN_COLUMNS)
    if curves is not None:
        curves.append(learning_curves(runs))
    table = _as_int(table, ["steps_to_train_99", "steps_to_val_99", "steps_to_val_90", "steps_to_val_60",
                            "plateau_steps"])
    table.attrs["skipped"] = skipped
    return table


# --- shared helpers --------------------------------------------------------------

def _as_int(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """``frame`` with ``columns`` as integers, empty where a value is missing ("never")."""
    for col in columns:
        frame[col] = frame[col].astype("Float64").round().astype("Int64")
    return frame


def _median(series: pd.Series):
    s = series.dropna()
    return float(s.median()) if len(s) else None


def _keyed(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with empty condition keys as "" (groupby drops NaN keys)."""
    return table.assign(**{k: table[k].astype(object).where(table[k].notna(), "") for k in CONDITION_KEYS})


def _cells(table: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """(condition keys, runs) of each condition, in order of appearance."""
    return [(dict(zip(CONDITION_KEYS, key)), g)
            for key, g in _keyed(table).groupby(CONDITION_KEYS, sort=False, dropna=False)]


def _sort_conditions(out: pd.DataFrame) -> pd.DataFrame:
    """Per setting: larger weight decay first, then OS, AR, MD windows by t1."""
    out = out.assign(_o=out["objective"].map({"os": 0, "ar": 1, "md": 2}).fillna(3),
                     _t1=pd.to_numeric(out["t1"], errors="coerce"),
                     _wd=-pd.to_numeric(out["weight_decay"], errors="coerce"))
    return out.sort_values(["group", "n", "k", "train_size", "model", "_wd", "_o", "_t1"]) \
        .drop(columns=["_o", "_t1", "_wd"]).reset_index(drop=True)


def outcome_counts(runs: pd.DataFrame) -> dict:
    """n_reached_99, n_slower, n_partial, n_did_not_learn, n_unfinished."""
    counts = runs["outcome"].value_counts()
    return {f"n_{name}": int(counts.get(name, 0)) for name in OUTCOMES}


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (no continuity correction)."""
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def exact_binomial_p(successes: int, trials: int) -> float:
    """Two-sided exact binomial p of ``successes`` in ``trials`` at 1/2: the exact McNemar test on
    discordant pairs, and the sign test; 1 when there is no trial."""
    return 1.0 if trials == 0 else float(stats.binomtest(int(successes), int(trials), 0.5).pvalue)


def _discordant(mine: pd.Series, theirs: pd.Series) -> tuple[int, int, float]:
    """Of aligned pairs (reached or not): only ``mine`` reached, only ``theirs`` reached, and the exact
    McNemar p on those discordant pairs."""
    only_mine, only_theirs = int((mine & ~theirs).sum()), int((~mine & theirs).sum())
    return only_mine, only_theirs, exact_binomial_p(only_mine, only_mine + only_theirs)


# --- per condition -------------------------------------------------------------

def by_condition(table: pd.DataFrame) -> pd.DataFrame:
    """Median and min-max of the speed columns over seeds, per condition.

    ``val_99_median_all`` counts a never-reached run as +inf (so it is the median over all seeds, infinite
    when fewer than half reached 0.99); ``val_99_median`` is the median over the seeds that reached it (the
    same for 0.90: ``val_90_*``). ``n_<outcome>`` counts the runs of each outcome."""
    rows = []
    for cell, g in _cells(table):
        train, val, val_90 = (g[col].astype("Float64") for col in ("steps_to_train_99", "steps_to_val_99",
                                                                    "steps_to_val_90"))
        any_val = val.notna().any()
        rows.append({
            **cell, "P_S": g["P_S"].iloc[0], "seeds": len(g), "budget": int(g["budget"].max()),
            "train_99_reached": int(train.notna().sum()), "train_99_median": _median(train),
            "val_99_reached": int(val.notna().sum()), "val_99_median": _median(val),
            "val_99_min": val.min() if any_val else None, "val_99_max": val.max() if any_val else None,
            "val_99_median_all": float(np.median(val.fillna(np.inf).astype(float))),
            "grokking_signature": int(g["grokking_signature"].sum()),
            "final_val_acc_median": _median(g["final_val_acc"]), "max_val_acc_median": _median(g["max_val_acc"]),
            "val_90_reached": int(val_90.notna().sum()), "val_90_median": _median(val_90),
            **outcome_counts(g),
        })
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = _sort_conditions(out)
    return out.assign(main_setting=main_setting_mask(out))


def main_setting_mask(cond: pd.DataFrame) -> pd.Series:
    """The conditions of the main setting: the (n, k, N) whose transformer runs have the most distinct
    (objective, weight decay, window) conditions (the one figures and the paper's table show)."""
    transformer = cond[cond["model"] == MAIN_MODEL]
    if transformer.empty:
        return pd.Series(False, index=cond.index)
    counts = transformer.groupby(SETTING).apply(
        lambda g: len(g[["objective", "weight_decay", "t0", "t1"]].astype(str).drop_duplicates()),
        include_groups=False)
    best = max(counts.index, key=lambda s: (counts[s], str(s)))
    return (cond["model"] == MAIN_MODEL) & (cond[SETTING].apply(tuple, axis=1) == best)


# --- markdown ------------------------------------------------------------------

def _fmt_steps(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return "never" if math.isinf(x) else f"{int(round(x)):,}"


def _fmt_acc(x) -> str:
    return "–" if x is None or pd.isna(x) else f"{x:.2f}"


def _fmt_p(p) -> str:
    if pd.isna(p):
        return ""
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.0e}"


def _fmt_km(r, sfx: str = "") -> str:
    if pd.isna(r[f"km_median_steps{sfx}"]):
        return "not reached"
    high = r[f"km_median_high{sfx}"]
    return (f"{_fmt_steps(r[f'km_median_steps{sfx}'])} [{_fmt_steps(r[f'km_median_low{sfx}'])}, "
            + ("–" if pd.isna(high) else _fmt_steps(high)) + "]")


def _fmt_outcomes(r) -> str:
    """reached_99 / slower / partial / did_not_learn counts (+ unfinished)."""
    text = " / ".join(str(int(r[f"n_{name}"])) for name in OUTCOMES[:4])
    return text + (f" (+{int(r['n_unfinished'])} unfinished)" if r["n_unfinished"] else "")


def _markdown(head: str, rows: list[str]) -> str:
    """A markdown table: header row, separator, rows."""
    return "\n".join([head, "|" + "---|" * (head.count("|") - 1), *rows]) + "\n"


def condition_label(row) -> str:
    if row["objective"] == "md":
        label = f"MD U[{float(row['t0']):g},{float(row['t1']):g}]"
        if row["loss_weighting"] not in ("", "inverse_t"):
            label += f" w={row['loss_weighting']}"
        if row["normalization"] not in ("", "tokens"):
            label += f" norm={row['normalization']}"
        return label
    from mdtheory.train.objectives import objective_label  # imports torch: only when needed
    return objective_label(row["objective"])


def markdown_table(cond: pd.DataFrame) -> str:
    head = ("| group | model | (n,k) | N | wd | lr | width | condition | P_S | seeds | train 0.99 (median) "
            "| val 0.99 reached | val 0.99 median [min, max] | median over all seeds | grokking signature "
            "| final val (median) | val 0.90 reached (median) | outcomes: 0.99 / slower / partial / none |")
    lines = []
    for _, r in cond.iterrows():
        p_s = "" if pd.isna(r["P_S"]) else f"{r['P_S']:.3f}"
        spread = (f"{_fmt_steps(r['val_99_median'])} [{_fmt_steps(r['val_99_min'])}, {_fmt_steps(r['val_99_max'])}]"
                  if r["val_99_reached"] else "–")
        at_90 = f" ({_fmt_steps(r['val_90_median'])})" if r["val_90_reached"] else ""
        lines.append(
            f"| {r['group']} | {r['model']} | ({r['n']},{r['k']}) | {r['train_size']} | {r['weight_decay']:g} "
            f"| {r['lr']:g} | {r['n_embd']} | {condition_label(r)} | {p_s} | {r['seeds']} "
            f"| {_fmt_steps(r['train_99_median'])} | {r['val_99_reached']}/{r['seeds']} | {spread} "
            f"| {_fmt_steps(r['val_99_median_all'])} | {r['grokking_signature']}/{r['seeds']} "
            f"| {_fmt_acc(r['final_val_acc_median'])} | {r['val_90_reached']}/{r['seeds']}{at_90} "
            f"| {_fmt_outcomes(r)} |")
    return _markdown(head, lines)


def cells_markdown(cell_table: pd.DataFrame) -> str:
    head = ("| group | model | (n,k) | N | wd | condition | reached | success [95% Wilson] "
            "| KM median steps [95% CI] | log-rank p vs OS | seeds: reached, OS not / OS reached, not "
            "| plateau | McNemar p vs OS | reached 0.90 | KM median to 0.90 [95% CI] | log-rank p vs OS, 0.90 "
            "| McNemar p vs OS, 0.90 | outcomes: 0.99 / slower / partial / none |")
    lines = []
    for _, r in cell_table.iterrows():
        paired = "" if pd.isna(r["paired_seeds"]) else \
            f"{r['reached_where_os_not']} / {r['os_reached_where_not']} of {r['paired_seeds']}"
        window = f" ({r['theory_window']})" if r["theory_window"] else ""
        lines.append(
            f"| {r['group']} | {r['model']} | ({r['n']},{r['k']}) | {r['train_size']} | {r['weight_decay']:g} "
            f"| {condition_label(r)}{window} | {r['reached']}/{r['runs']} "
            f"| {r['success_rate']:.2f} [{r['wilson_low']:.2f}, {r['wilson_high']:.2f}] | {_fmt_km(r)} "
            f"| {_fmt_p(r['logrank_p_vs_os'])} | {paired} | {r['plateau_runs']}/{r['runs']} "
            f"| {_fmt_p(r['mcnemar_p_vs_os_99'])} | {r['reached_90']}/{r['runs']} | {_fmt_km(r, '_90')} "
            f"| {_fmt_p(r['logrank_p_vs_os_90'])} | {_fmt_p(r['mcnemar_p_vs_os_90'])} | {_fmt_outcomes(r)} |")
    return _markdown(head, lines)


def by_seed_markdown(table: pd.DataFrame) -> str:
    """Steps to 0.99 held-out accuracy of every run: one table per setting, a row per (weight decay,
    seed), a column per condition ("–" = never, with the final held-out accuracy in brackets, and the
    step it passed 0.90 if it did)."""
    def column_order(label):  # OS, AR, then MD windows by t1
        t1 = float(label.split(",")[1].split("]")[0]) if label.startswith("MD U") else 0
        return {"output supervision": 0, "autoregressive": 1}.get(label, 2), t1, label

    def cell(r) -> str:
        if pd.notna(r["steps_to_val_99"]):
            return _fmt_steps(r["steps_to_val_99"])
        passed = f"; 0.90 at {_fmt_steps(r['steps_to_val_90'])}" if pd.notna(r["steps_to_val_90"]) else ""
        running = "; running" if r["outcome"] == "unfinished" else ""
        return f"– ({_fmt_acc(r['final_val_acc'])}{passed}{running})"

    out = []
    frame = table.assign(label=table.apply(condition_label, axis=1))
    for key, g in frame.groupby(["group", "model", "n", "k", "train_size"], sort=True):
        labels = sorted(g["label"].unique(), key=column_order)
        out.append(f"### {key[0]}: {key[1]}, (n,k) = ({key[2]},{key[3]}), N = {key[4]}\n")
        out.append("| wd | seed | " + " | ".join(labels) + " |")
        out.append("|" + "---|" * (len(labels) + 2))
        for (wd, seed), h in g.groupby(["weight_decay", "seed"], sort=True):
            runs = [h[h["label"] == label] for label in labels]
            out.append(f"| {wd:g} | {seed} | " + " | ".join("" if r.empty else cell(r.iloc[0]) for r in runs) + " |")
        out.append("")
    return "\n".join(out) + "\n"


# --- survival statistics per cell ----------------------------------------------

# a cell is one condition; these columns come first in cells.csv
CELL_COLUMNS = ["k", "train_size", "objective", "t0", "t1", "weight_decay", "n", "model", "group", "lr",
                "n_embd", "loss_weighting", "normalization"]
# what an MD cell shares with the OS cell it is compared with
PAIR_KEYS = [k for k in CONDITION_KEYS if k not in ("objective", "t0", "t1", "loss_weighting", "normalization")]
assert sorted(CELL_COLUMNS) == sorted(CONDITION_KEYS)
# the columns without a suffix are the 0.99 ones (plots and paper tables read them)
CELL_STATS = ["theory_window", "P_S", "sample_complexity_bound", "budget", "runs", "reached", "success_rate",
              "wilson_low", "wilson_high", "km_median_steps", "km_median_low", "km_median_high", "logrank_p_vs_os",
              "paired_seeds", "reached_where_os_not", "os_reached_where_not", "mcnemar_p_vs_os_99",
              "train_99_reached", "plateau_runs", "plateau_share", "plateau_low", "plateau_high",
              "reached_90", "success_rate_90", "wilson_low_90", "wilson_high_90", "km_median_steps_90",
              "km_median_low_90", "km_median_high_90", "logrank_p_vs_os_90", "reached_where_os_not_90",
              "os_reached_where_not_90", "mcnemar_p_vs_os_90", *(f"n_{name}" for name in OUTCOMES)]
# counts and steps: integers with empty cells
CELL_INTEGERS = [c for c in CELL_STATS if c.startswith(("budget", "runs", "reached", "train_99", "plateau_runs",
                                                         "paired", "os_reached", "km_median", "n_"))]
KM_COLUMNS = ["step", "survival", "survival_low", "survival_high", "events", "censored"]


def theory_window(k: int, t0, t1) -> str:
    """Which of the theory's windows U[t0, t1] is (to the 3 decimals the presets use):
    "sample-complexity optimal", "P_S optimal", "full range" or ""."""
    if t0 == "" or t1 == "" or float(t0) != 0.0:
        return ""
    named = {"sample-complexity optimal": sample_complexity_optimal_t1(int(k)),
             "P_S optimal": best_t1_given_t0_zero(int(k)), "full range": 1.0}
    return next((name for name, t in named.items() if abs(float(t1) - t) < 5e-4), "")


def censored_steps(runs: pd.DataFrame, column: str = "steps_to_val_99") -> stats.CensoredData:
    """Steps to a threshold (``column``) as scipy CensoredData: a run that never reached it is
    right-censored at its last evaluated step."""
    reached = runs[column].notna()
    return stats.CensoredData(uncensored=runs.loc[reached, column].astype(float).to_numpy(),
                              right=runs.loc[~reached, "steps"].astype(float).to_numpy())


def kaplan_meier(runs: pd.DataFrame, column: str = "steps_to_val_99") -> pd.DataFrame:
    """Kaplan-Meier estimate of P(not yet at the threshold of ``column`` after ``step``), one row per
    distinct event or censoring step, with its 95% log-log band and how many runs reached it
    (``events``) or ended without it (``censored``) there. The band is undefined where the survival is 1
    (taken as 1) or 0 (lower end 0, upper end carried over from the step before: an all-reached cell
    does not bound its median from above)."""
    times = censored_steps(runs, column)
    sf = stats.ecdf(times).sf
    with warnings.catch_warnings():  # scipy warns where the log-log band is undefined; filled below
        warnings.simplefilter("ignore", RuntimeWarning)
        band = sf.confidence_interval(CONFIDENCE, method="log-log")
    survival = sf.probabilities
    low = np.where(np.isnan(band.low.probabilities), np.where(survival == 1, 1.0, 0.0), band.low.probabilities)
    high = pd.Series(np.where(survival == 1, 1.0, band.high.probabilities)).ffill().fillna(1.0)
    events, censored = runs[column].dropna().astype(float), runs.loc[runs[column].isna(), "steps"].astype(float)
    return pd.DataFrame({"step": sf.quantiles, "survival": survival, "survival_low": low,
                         "survival_high": high.to_numpy(),
                         "events": [int((events == t).sum()) for t in sf.quantiles],
                         "censored": [int((censored == t).sum()) for t in sf.quantiles]})


def km_median(curve: pd.DataFrame) -> tuple:
    """Median steps to the threshold (first step where the survival drops to <= 0.5) and its 95% CI from
    the band (None where a curve never gets there: the median, or its upper limit, lies beyond the last
    observation)."""
    def first_step_at_half(column):
        hits = curve.loc[curve[column] <= 0.5, "step"]
        return float(hits.iloc[0]) if len(hits) else None
    return first_step_at_half("survival"), first_step_at_half("survival_low"), first_step_at_half("survival_high")


def logrank_p(runs: pd.DataFrame, other: pd.DataFrame, column: str = "steps_to_val_99") -> float | None:
    """Two-sided log-rank p of steps to a threshold, None when neither group has an event."""
    if not (runs[column].notna().any() or other[column].notna().any()):
        return None
    return float(stats.logrank(censored_steps(runs, column), censored_steps(other, column)).pvalue)


def threshold_stats(runs: pd.DataFrame, os_runs: pd.DataFrame | None, threshold: str) -> tuple[dict, pd.DataFrame]:
    """cells.csv's statistics of one cell at one threshold ("99", "90"), named as in CELL_STATS, and its
    Kaplan-Meier curve. Against OS seed by seed, a seed with several runs in a cell counts as reached if
    any did; a seed whose run is still training and has not reached the threshold yet is not paired (its
    outcome is not known)."""
    column = f"steps_to_val_{threshold}"
    sfx = "" if threshold == "99" else f"_{threshold}"
    curve = kaplan_meier(runs, column)
    reached = int(runs[column].notna().sum())
    row = {f"reached{sfx}": reached, f"success_rate{sfx}": reached / len(runs),
           **dict(zip((f"wilson_low{sfx}", f"wilson_high{sfx}"), wilson_interval(reached, len(runs)))),
           **dict(zip((f"km_median_steps{sfx}", f"km_median_low{sfx}", f"km_median_high{sfx}"), km_median(curve)))}
    if os_runs is not None:
        mine, theirs = (r[column].notna().groupby(r["seed"]).any() for r in (runs, os_runs))
        decided = [reached | (r[column].notna() | (r["status"] != "running")).groupby(r["seed"]).all()
                   for reached, r in ((mine, runs), (theirs, os_runs))]
        common = decided[0].index[decided[0]].intersection(decided[1].index[decided[1]])
        only_mine, only_os, p = _discordant(mine[common], theirs[common])
        row.update({f"logrank_p_vs_os{sfx}": logrank_p(runs, os_runs, column),
                    f"reached_where_os_not{sfx}": only_mine, f"os_reached_where_not{sfx}": only_os,
                    f"mcnemar_p_vs_os_{threshold}": p if len(common) else None})
        if threshold == "99":
            row["paired_seeds"] = len(common)
    return row, curve


def cells(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Survival statistics per cell, and the cells' Kaplan-Meier curves (of steps to 0.99).

    An MD (or AR) cell is compared with the OS cell of the same setting (k, N, weight decay, model,
    optimiser): log-rank test and, seed by seed (the seed fixes the secret set and the training strings),
    the exact McNemar test. The plateau columns count the runs with the grokking signature of
    summarize_run."""
    groups = _cells(table)
    os_cells = {tuple(cell[k] for k in PAIR_KEYS): g for cell, g in groups if cell["objective"] == "os"}
    rows, curves = [], []
    for cell, g in groups:
        plateau = int(g["grokking_signature"].sum())
        md = cell["objective"] == "md" and cell["t1"] != ""
        partner = os_cells.get(tuple(cell[k] for k in PAIR_KEYS)) if cell["objective"] != "os" else None
        at_99, curve = threshold_stats(g, partner, "99")
        at_90, _ = threshold_stats(g, partner, "90")
        bound = sample_complexity_bound(cell["n"], cell["k"], BOUND_DELTA, cell["t0"], cell["t1"]) \
            if md and cell["n"] != "" else None
        rows.append({**cell, "theory_window": theory_window(cell["k"], cell["t0"], cell["t1"]) if md else "",
                     "P_S": g["P_S"].iloc[0], "sample_complexity_bound": None if bound is None else float(bound),
                     "budget": int(g["budget"].max()), "runs": len(g), **at_99, **at_90,
                     "train_99_reached": int(g["steps_to_train_99"].notna().sum()),
                     "plateau_runs": plateau, "plateau_share": plateau / len(g),
                     **dict(zip(("plateau_low", "plateau_high"), wilson_interval(plateau, len(g)))),
                     **outcome_counts(g), "_curve": len(curves)})
        curves.append(curve.assign(**{k: cell[k] for k in CELL_COLUMNS}))
    out = _sort_conditions(pd.DataFrame(rows).reindex(columns=CELL_COLUMNS + CELL_STATS + ["_curve"]))
    km = pd.concat([curves[i] for i in out.pop("_curve")], ignore_index=True)
    return _as_int(out, CELL_INTEGERS), km[CELL_COLUMNS + KM_COLUMNS]


# --- each window against U[0,1], paired by seed ---------------------------------

# what the windows compared with each other share: the setting and the MD loss
WINDOW_KEYS = [k for k in CONDITION_KEYS if k not in ("objective", "t0", "t1")]
# pooled rows add up the cells of one window kind over (n, k, N)
POOL_KEYS = [k for k in WINDOW_KEYS if k not in ("n", "k", "train_size")]
VERDICTS = ("wins", "losses", "ties", "undecided")
WINDOW_COLUMNS = ["scope", *CELL_COLUMNS[:2], *[k for k in WINDOW_KEYS if k not in ("k", "train_size")], "t0", "t1",
                  "window_kind", "P_S", "cells", "paired_seeds",
                  *(f"{what}_{t}" for t in THRESHOLDS for what in (*VERDICTS, "sign_test_p"))]


def _seed_times(runs: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per seed: the first step at the threshold (NaN if never; the earliest of a seed's runs) and the
    last evaluated step (how long it was watched)."""
    return runs.assign(_t=runs[column].astype("Float64").astype(float)).groupby("seed").agg(
        time=("_t", "min"), last=("steps", "max"))


def sign_compare(runs: pd.DataFrame, other: pd.DataFrame, column: str = "steps_to_val_99") -> dict:
    """Seed by seed, did ``runs`` reach the threshold of ``column`` sooner than ``other``? A run that
    never reached it loses if the other got there before its last evaluation, else the pair is
    "undecided"; both never: a tie. The counts and the exact sign test p of wins against losses."""
    pairs = _seed_times(runs, column).merge(_seed_times(other, column), left_index=True, right_index=True,
                                            suffixes=("", "_other"))
    mine, theirs = pairs["time"], pairs["time_other"]
    never_mine, never_theirs = mine.isna(), theirs.isna()
    # the first condition that holds decides the pair
    verdicts = np.select([never_mine & never_theirs,
                          never_theirs & (mine <= pairs["last_other"]),  # while the other was still watched
                          never_mine & (theirs <= pairs["last"]),
                          never_mine | never_theirs,  # the one that never got there stopped earlier
                          mine < theirs, mine > theirs],
                         ["ties", "wins", "losses", "undecided", "wins", "losses"], default="ties")
    counts = {verdict: int((verdicts == verdict).sum()) for verdict in VERDICTS}
    return {"paired_seeds": len(pairs), **counts,
            "sign_test_p": exact_binomial_p(counts["wins"], counts["wins"] + counts["losses"])}


def window_vs_full_range(table: pd.DataFrame) -> pd.DataFrame:
    """Each MD window other than U[0,1] against U[0,1] of the same setting (k, N, weight decay, model,
    optimiser, MD loss), paired by seed, at 0.99 and 0.90 (sign_compare); one row per such cell (scope
    "cell"), then one per window kind (the theory's window by name, else U[0,t1]) summed over the cells
    of each (weight decay, model, ...) (scope "pooled"; k, N and t1 empty where they vary) with its own
    sign test."""
    rows = []
    md = _keyed(table[(table["objective"] == "md") & table["t1"].notna()])
    for key, setting in md.groupby(WINDOW_KEYS, sort=False, dropna=False):
        windows = dict(iter(setting.groupby(["t0", "t1"], sort=True)))
        full = windows.pop((0.0, 1.0), None)  # U[0,1]
        if full is None:
            continue
        base = dict(zip(WINDOW_KEYS, key))
        for (t0, t1), g in windows.items():
            row = {"scope": "cell", **base, "t0": t0, "t1": t1, "P_S": g["P_S"].iloc[0], "cells": 1,
                   "window_kind": theory_window(base["k"], t0, t1) or f"U[{float(t0):g},{float(t1):g}]"}
            for t in THRESHOLDS:
                compared = sign_compare(g, full, f"steps_to_val_{t}")
                row["paired_seeds"] = compared.pop("paired_seeds")
                row.update({f"{name}_{t}": value for name, value in compared.items()})
            rows.append(row)
    out = pd.DataFrame(rows, columns=WINDOW_COLUMNS)
    if out.empty:
        return out
    out = _sort_conditions(out.assign(objective="md")).drop(columns="objective")
    pooled = []
    for key, g in out.groupby(POOL_KEYS + ["window_kind"], sort=False, dropna=False):
        row = {"scope": "pooled", **dict(zip(POOL_KEYS + ["window_kind"], key)), "cells": len(g),
               "paired_seeds": int(g["paired_seeds"].sum()),
               **{col: g[col].iloc[0] if g[col].nunique() == 1 else "" for col in ("k", "train_size", "n", "t0", "t1")}}
        for t in THRESHOLDS:
            row.update({f"{name}_{t}": int(g[f"{name}_{t}"].sum()) for name in VERDICTS})
            row[f"sign_test_p_{t}"] = exact_binomial_p(row[f"wins_{t}"], row[f"wins_{t}"] + row[f"losses_{t}"])
        pooled.append(row)
    return pd.concat([out, pd.DataFrame(pooled, columns=WINDOW_COLUMNS)], ignore_index=True)


# --- theory vs speed -----------------------------------------------------------

N_BOOT, BOOT_SEED = 2000, 0


def _spearman(x, y) -> float:
    return float(stats.spearmanr(x, y)[0]) if np.ptp(x) > 0 and np.ptp(y) > 0 else np.nan


def bootstrap_spearman(seeds, x, y, n_boot: int = N_BOOT, rng_seed: int = BOOT_SEED) -> tuple:
    """95% bootstrap CI of Spearman's rho(x, y) over seeds resampled with replacement as clusters: a drawn
    seed brings all its runs. scipy.stats.bootstrap's BCa interval (its jackknife leaves out one seed at a
    time); where BCa is undefined (every resample gives the same rho, or some resamples or jackknife values
    have no rho because a drawn set of runs ties all speeds) the percentile interval of the resamples where
    rho is defined. Returns (low, high, the number of resamples where rho is defined, "BCa" or
    "percentile"); (None, None, 0, "") with fewer than two seeds or no defined rho. The generator is
    seeded: the CI is reproducible."""
    seeds = np.asarray(seeds)
    x, y = np.asarray(x).astype(float), np.asarray(y).astype(float)
    distinct = np.unique(seeds)
    if len(distinct) < 2 or not np.isfinite(_spearman(x, y)):
        return None, None, 0, ""
    members = [np.flatnonzero(seeds == s) for s in distinct]

    def rho(drawn):  # drawn: indices into ``distinct``
        rows = np.concatenate([members[int(i)] for i in drawn])
        return _spearman(x[rows], y[rows])

    with warnings.catch_warnings():  # degenerate or NaN resamples: handled below
        warnings.simplefilter("ignore")
        result = stats.bootstrap((np.arange(len(distinct)),), rho, n_resamples=n_boot, vectorized=False,
                                 method="BCa", confidence_level=CONFIDENCE, rng=np.random.default_rng(rng_seed))
    draws = result.bootstrap_distribution
    defined = draws[np.isfinite(draws)]
    if not len(defined):
        return None, None, 0, ""
    low, high = result.confidence_interval
    if len(defined) == len(draws) and np.isfinite(low) and np.isfinite(high):
        return float(low), float(high), len(defined), "BCa"
    low, high = np.percentile(defined, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
    return float(low), float(high), len(defined), "percentile"


def theory_vs_speed(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho between P_S and speed over the MD runs of each setting.

    Speed is 1 / steps_to_val_99 with never-reached runs at 0 (ranked slowest, tied), so rho > 0 means
    windows with more signal learn faster. The same for the theory's sample-complexity bound N(t0, t1)
    (rho < 0: a window that needs fewer samples learns faster). ``rho_low``/``rho_high`` and
    ``rho_bound_low``/``rho_bound_high`` are bootstrap_spearman's CIs (``ci_method``/``ci_method_bound``
    say BCa or percentile, ``seed_clusters`` how many seeds)."""
    md = table[(table["objective"] == "md") & table["P_S"].notna()
               & (table["loss_weighting"] == "inverse_t") & (table["normalization"] == "tokens")]
    keys = ["model", "n", "k", "train_size", "weight_decay", "lr", "n_embd"]
    rows = []
    for key, g in md.groupby(keys):
        if g["t1"].nunique() < 2:
            continue
        n, k = int(key[1]), int(key[2])
        steps = g["steps_to_val_99"].astype("Float64").astype(float).fillna(np.inf)
        speed = 1.0 / steps  # never reached: 0
        rho, p = stats.spearmanr(g["P_S"], speed) if speed.nunique() > 1 else (np.nan, np.nan)
        # windows ordered by median steps over all seeds (never = inf), ties
        # broken by how many seeds reached 0.99, then by their median
        per_window = steps.groupby(g["t1"]).agg(
            median_all="median", reached=lambda s: int(np.isfinite(s).sum()),
            median_reached=lambda s: float(np.median(s[np.isfinite(s)])) if np.isfinite(s).any() else np.inf)
        per_window = per_window.sort_values(["median_all", "reached", "median_reached"],
                                            ascending=[True, False, True])
        order, fastest = list(per_window.index), per_window.iloc[0]
        learned = per_window["reached"].any()  # a rank among windows that all failed would be meaningless
        best_t1, sc_t1 = best_t1_given_t0_zero(k), sample_complexity_optimal_t1(k)
        theory_t1 = min(order, key=lambda t: abs(t - best_t1))  # the run windows nearest the theory's t1
        sc_window_t1 = min(order, key=lambda t: abs(t - sc_t1))
        bound = sample_complexity_bound(n, k, BOUND_DELTA, g["t0"].astype(float), g["t1"].astype(float))
        rho_low, rho_high, n_boot, method = bootstrap_spearman(g["seed"], g["P_S"].astype(float), speed)
        bound_low, bound_high, _, method_bound = bootstrap_spearman(g["seed"], bound, speed)
        clusters = int(g["seed"].nunique())
        rows.append({
            **dict(zip(keys, key)), "runs": len(g), "windows": g["t1"].nunique(),
            "runs_reached_val_99": int(np.isfinite(steps).sum()), "spearman_rho_PS_speed": rho, "p_value": p,
            "theory_best_t1": round(best_t1, 4), "fastest_t1": float(order[0]) if fastest["reached"] else None,
            "fastest_median_steps": fastest["median_all"] if fastest["reached"] else None,
            "fastest_reached": int(fastest["reached"]), "theory_window_t1": float(theory_t1),
            "theory_window_rank": order.index(theory_t1) + 1 if learned else None,
            "theory_window_median_steps": per_window.loc[theory_t1, "median_all"],
            "theory_window_reached": int(per_window.loc[theory_t1, "reached"]),
            "window_order": " ".join(f"{t:g}" for t in order), "rho_low": rho_low, "rho_high": rho_high,
            "spearman_rho_bound_speed": _spearman(bound, speed), "rho_bound_low": bound_low,
            "rho_bound_high": bound_high, "n_boot": n_boot, "ci_method": method, "ci_method_bound": method_bound,
            "seed_clusters": clusters,
            "ci_note": f"bootstrap over {clusters} seed clusters: descriptive, not a test" if method else "",
            "sc_optimal_t1": round(sc_t1, 4), "sc_window_t1": float(sc_window_t1),
            "sc_window_rank": order.index(sc_window_t1) + 1 if learned else None,
        })
    return pd.DataFrame(rows)


# --- two roots paired run by run -------------------------------------------------

# what a run of ROOT and its baseline run share: everything that defines the
# learning problem and the model; batch size, budget, group and tag may differ
MATCH_KEYS = ["objective", "n", "k", "train_size", "val_size", "t0", "t1", "weight_decay", "model", "n_layer",
              "n_embd", "lr", "loss_weighting", "normalization", "seed"]
PAIRED_RUN_VALUES = ["batch_size", "budget", "steps", "status", "steps_to_val_90", "steps_to_val_99",
                     "final_val_acc", "outcome"]


def _match_keys(table: pd.DataFrame) -> list[tuple]:
    """MATCH_KEYS of each run: numbers by value (0.1 == 0.1000), empty as ""."""
    def value(v):
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            return round(float(v), 9)
        return str(v)
    return [tuple(map(value, row)) for row in table[MATCH_KEYS].itertuples(index=False)]


def read_baseline(base: Path) -> pd.DataFrame:
    """summary.csv's rows of the runs under BASE/runs (nothing is written there); one UserError line if
    BASE is not a results root with runs."""
    base = Path(base)
    if not base.is_dir():
        raise UserError(f"--baseline {base} is not a folder")
    if not (base / "runs").is_dir():
        raise UserError(f"--baseline {base} has no runs/ folder (not a results root of experiments.parity.run)")
    table = summarize_runs(base / "runs")
    if table.empty:
        raise UserError(f"--baseline {base}/runs holds no run with config.json and metrics.jsonl")
    return table


def paired_runs(table: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """Each run of ``table`` beside the run of ``base`` with the same MATCH_KEYS (where several match: the
    one of the same name, else the first by name; ``baseline_matches`` says how many did), the baseline's
    values prefixed ``baseline_``, empty where none matched, and the step ratios ROOT / BASE where both
    reached the threshold."""
    mine = table[[*CONDITION_KEYS, "seed", "run", *PAIRED_RUN_VALUES]].assign(
        _key=_match_keys(table), _order=np.arange(len(table)))
    theirs = base[["run", *PAIRED_RUN_VALUES]].add_prefix("baseline_").assign(_key=_match_keys(base))
    pairs = mine.merge(theirs, on="_key", how="left")
    pairs = pairs.assign(_other=pairs["baseline_run"] != pairs["run"]).sort_values(["_order", "_other", "baseline_run"])
    matches = pairs.groupby("_order")["baseline_run"].count().to_numpy()
    out = pairs.drop_duplicates("_order").reset_index(drop=True).assign(baseline_matches=matches)
    for t in THRESHOLDS:
        mine_steps, base_steps = (out[col].astype("Float64").astype(float)
                                  for col in (f"steps_to_val_{t}", f"baseline_steps_to_val_{t}"))
        out[f"step_ratio_{t}"] = (mine_steps / base_steps).where(base_steps > 0)
    out = _as_int(out, ["steps_to_val_90", "steps_to_val_99", "baseline_steps_to_val_90",
                        "baseline_steps_to_val_99", "baseline_batch_size", "baseline_budget", "baseline_steps"])
    return out[[*CONDITION_KEYS, "seed", "run", "baseline_run", "baseline_matches",
                *(c for col in PAIRED_RUN_VALUES for c in (col, f"baseline_{col}")),
                *(f"step_ratio_{t}" for t in THRESHOLDS)]]


def _one_or_range(values: pd.Series):
    """The value where all agree, else "min-max"; None if there is none."""
    values = values.dropna()
    if values.empty:
        return None
    low, high = int(values.min()), int(values.max())
    return low if low == high else f"{low}-{high}"


PAIRED_CELL_COLUMNS = ["baseline", *CELL_COLUMNS, "runs", "runs_paired", "runs_unmatched", "runs_unfinished",
                       "batch_size", "baseline_batch_size", "budget", "baseline_budget",
                       *(f"{what}_{t}" for t in THRESHOLDS
                         for what in ("reached", "baseline_reached", "only_root", "only_baseline", "mcnemar_p",
                                      "pairs_both", "median_step_ratio")),
                       "final_val_acc_median", "baseline_final_val_acc_median"]


def paired_cells(pairs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per cell of ROOT (grouped as cells.csv), over its runs that have a baseline run: reached the
    threshold in ROOT and in BASE, the discordant pairs (only_root: ROOT reached it, BASE not;
    only_baseline: the reverse) with the exact McNemar p, the median step ratio over the pairs where both
    reached it, the median final held-out accuracy of each; budgets and batch sizes ("min-max" where they
    differ); ``runs_unfinished``: paired runs of ROOT still training, left out of a threshold's pairs
    until they reach it. A cell without any match has empty baseline columns."""
    rows = []
    for cell, g in _cells(pairs):
        matched = g[g["baseline_run"].notna()]
        row = {"baseline": baseline, **cell, "runs": len(g), "runs_paired": len(matched),
               "runs_unmatched": len(g) - len(matched), "runs_unfinished": int((matched["status"] == "running").sum()),
               "batch_size": _one_or_range(g["batch_size"]), "budget": _one_or_range(g["budget"])}
        if len(matched):
            row.update({"baseline_batch_size": _one_or_range(matched["baseline_batch_size"]),
                        "baseline_budget": _one_or_range(matched["baseline_budget"]),
                        "final_val_acc_median": _median(matched["final_val_acc"]),
                        "baseline_final_val_acc_median": _median(matched["baseline_final_val_acc"])})
            for t in THRESHOLDS:
                # a run still training that has not reached the threshold yet has no outcome to pair
                known = matched[matched[f"steps_to_val_{t}"].notna() | (matched["status"] != "running")]
                mine, theirs = (known[c].notna() for c in (f"steps_to_val_{t}", f"baseline_steps_to_val_{t}"))
                ratios = known[f"step_ratio_{t}"].dropna()
                only_root, only_base, p = _discordant(mine, theirs)
                row.update({f"reached_{t}": int(mine.sum()), f"baseline_reached_{t}": int(theirs.sum()),
                            f"only_root_{t}": only_root, f"only_baseline_{t}": only_base, f"mcnemar_p_{t}": p,
                            f"pairs_both_{t}": len(ratios),
                            f"median_step_ratio_{t}": float(ratios.median()) if len(ratios) else None})
        rows.append(row)
    out = _sort_conditions(pd.DataFrame(rows).reindex(columns=PAIRED_CELL_COLUMNS))
    return _as_int(out, [c for c in PAIRED_CELL_COLUMNS if c.split("_")[0] in ("reached", "only", "pairs")
                         or c.startswith("baseline_reached")])


# --- command line --------------------------------------------------------------

BY_CONDITION_HEAD = (
    "# Parity runs under `{root}`: steps to 0.99 accuracy per condition\n\n"
    "Regenerated by `python -m experiments.parity.summarize`; 'never' = not reached within the budget. "
    "Outcomes: reached 0.99 / slower (passed 0.90, not 0.99) / partial (never 0.90, final held-out >= 0.60) / "
    "none (never 0.90, final < 0.60).\n\n")
BY_SEED_HEAD = (
    "# Parity runs under `{root}`: steps to 0.99 held-out accuracy, run by run\n\n"
    "'–' = not reached within the run's budget (final held-out accuracy in brackets, and the step where it "
    "passed 0.90 if it did).\n\n")
CELLS_HEAD = (
    "# Parity runs under `{root}`: survival statistics per cell\n\n"
    "Regenerated by `python -m experiments.parity.summarize`. Reached: runs at 0.99 held-out accuracy within "
    "their budget; success rate with its 95% Wilson interval; Kaplan-Meier median steps to 0.99 held-out with "
    "its 95% CI (runs that never reached it are censored at their last step; 'not reached': fewer than half "
    "reached it, '–': no upper limit); two-sided log-rank p against output supervision in the same setting; "
    "seeds where only this condition or only OS reached 0.99; runs with the memorisation plateau (fit the "
    "training set, then at chance >= 3x as long); exact McNemar p on those discordant seeds; the same at 0.90 "
    "held-out; outcomes as in summary_by_condition.md.\n\n")


def summarize_root(root: Path, baseline: Path | None = None, baseline_table: pd.DataFrame | None = None
                   ) -> pd.DataFrame:
    """Write ROOT's summary files (and, given a baseline root, the paired files; ``baseline_table``: its
    runs read already). The returned table's ``attrs`` carry what was skipped and, with a baseline, the
    pairs."""
    root = Path(root)
    runs_dir = root / "runs"
    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir} does not exist (run python -m experiments.parity.run first)")
    for name in OUTPUTS:
        if (root / name).exists() and not (root / name).is_file():
            raise UserError(f"{root / name} exists and is not a file; move it away to write the summary")
    if baseline is not None and baseline_table is None:
        baseline_table = read_baseline(baseline)
    curves = []
    table = summarize_runs(runs_dir, curves)
    if table.empty:
        raise UserError(f"no run with config.json and metrics.jsonl under {runs_dir}")
    cond = by_condition(table)
    cell_table, km = cells(table)
    texts = {
        "summary.csv": table.to_csv(index=False),
        "summary_by_condition.csv": cond.to_csv(index=False),
        "summary_by_condition.md": BY_CONDITION_HEAD.format(root=root) + markdown_table(cond),
        "summary_by_seed.md": BY_SEED_HEAD.format(root=root) + by_seed_markdown(table),
        "theory_vs_speed.csv": theory_vs_speed(table).to_csv(index=False),
        "cells.csv": cell_table.to_csv(index=False),
        "cells.md": CELLS_HEAD.format(root=root) + cells_markdown(cell_table),
        "km_curves.csv": km.to_csv(index=False),
        "window_vs_full_range.csv": window_vs_full_range(table).to_csv(index=False),
        "curves.csv": curves[0].to_csv(index=False),
    }
    record = {"runs": len(table), "skipped": {why: len(names) for why, names in table.attrs["skipped"].items()}}
    if baseline_table is not None:
        pairs = paired_runs(table, baseline_table)
        texts["paired_with_baseline.csv"] = paired_cells(pairs, str(baseline)).to_csv(index=False)
        texts["paired_with_baseline_runs.csv"] = pairs.to_csv(index=False)
        record["baseline"] = str(baseline)
        table.attrs["pairs"] = pairs
    try:
        for name, text in texts.items():
            atomic_write_text(root / name, text)
        # the provenance of unchanged numbers is still true: keep the file as it is
        write_provenance_json(root / "summary_provenance.json", {**record, **provenance()},
                              describes=[root / name for name in texts])
    except OSError as exc:
        raise UserError(f"cannot write the summary under {root}: {exc}") from None
    return table


def report(root: Path, table: pd.DataFrame) -> list[str]:
    """What main prints for a root: runs summarised, folders skipped and why, runs still training, and
    the pairing with a baseline."""
    lines = [f"{root}: {len(table)} runs -> {root / 'summary.csv'}"]
    skipped = {why: names for why, names in table.attrs.get("skipped", {}).items() if names}
    if skipped:
        lines.append(f"  skipped {sum(map(len, skipped.values()))} folders under {root / 'runs'}: "
                     + "; ".join(f"{len(names)} with {why}" for why, names in skipped.items()))
    unfinished = int((table["status"] == "running").sum())
    if unfinished:
        lines.append(f"  {unfinished} runs unfinished (still training or stopped below their budget): included, censored at "
                     "their last evaluation (outcome 'unfinished' unless already at 0.99)")
    if "pairs" in table.attrs:
        pairs = table.attrs["pairs"]
        matched = int(pairs["baseline_run"].notna().sum())
        without = f" ({len(pairs) - matched} without one)" if matched < len(pairs) else ""
        lines.append(f"  {matched} of {len(pairs)} runs paired with a baseline run -> "
                     f"{root / 'paired_with_baseline.csv'}{without}")
    return lines


def stored_baseline(root: Path) -> Path | None:
    """The baseline ROOT was last summarised against (summary_provenance.json), if it still exists."""
    try:
        stored = json.loads((Path(root) / "summary_provenance.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    base = stored.get("baseline") if isinstance(stored, dict) else None
    return Path(base) if isinstance(base, str) and (Path(base) / "runs").is_dir() else None


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m experiments.parity.summarize", description=__doc__.split("\n")[0])
    p.add_argument("--root", nargs="+", default=None,
                   help="results roots holding runs/ (default: every preset root that exists)")
    p.add_argument("--baseline", default=None,
                   help="a results root whose runs each run of --root is paired with (same settings and seed; "
                        "batch size, budget, group and tag may differ): writes ROOT/paired_with_baseline.csv")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.baseline is not None and not args.root:
        raise UserError("--baseline needs --root (the roots to pair with it)")
    if args.root:
        roots = [Path(r) for r in args.root]
    else:
        from .presets import ROOTS  # every preset root that holds runs
        roots = [Path(r) for r in dict.fromkeys(ROOTS.values()) if (Path(r) / "runs").is_dir()]
    if not roots:
        raise UserError("no parity runs found (run python -m experiments.parity.run --preset quick first)")
    baseline = Path(args.baseline) if args.baseline is not None else None
    base_table = read_baseline(baseline) if baseline is not None else None  # checked before anything is written
    for root in roots:
        # a root paired once stays paired: its baseline is read back from its provenance
        paired = baseline if baseline is not None else stored_baseline(root)
        table = summarize_root(root, paired, base_table)
        print("\n".join(report(root, table)))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
