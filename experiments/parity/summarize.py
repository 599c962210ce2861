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
                                   window and speed (steps to 0.99 held-out)

Speed columns are the first evaluated step at which the accuracy is >= 0.99
(empty when never reached). The memorisation plateau of a run is the number
of steps from train accuracy 0.99 to the first held-out accuracy above 0.60
(or to the end of the run); it shows the grokking signature when the plateau
lasts at least 3x the steps it took to fit the training set.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mdtheory.cli import OneLineParser, atomic_write_text, run_cli, write_provenance_json
from mdtheory.errors import UserError
from mdtheory.provenance import provenance
from mdtheory.runfiles import RunRecord, read_runs

ACC, CHANCE_BAND, GROK_FACTOR = 0.99, 0.60, 3

RUN_COLUMNS = ["run", "group", "objective", "model", "n", "k", "train_size", "val_size", "weight_decay", "lr",
               "batch_size", "n_layer", "n_embd", "loss_weighting", "normalization", "t0", "t1", "P_S", "seed",
               "budget", "steps", "status", "steps_to_train_99", "steps_to_val_99", "steps_to_val_60",
               "plateau_steps", "grokking_signature", "max_val_acc", "final_train_acc", "final_val_acc"]
OUTPUTS = ("summary.csv", "summary_by_condition.csv", "summary_by_condition.md", "summary_by_seed.md",
           "theory_vs_speed.csv", "summary_provenance.json")
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


def by_condition(table: pd.DataFrame) -> pd.DataFrame:
    """Median and min-max of the speed columns over seeds, per condition.

    ``val_99_median_all`` counts a never-reached run as +inf (so it is the
    median over all seeds, infinite when fewer than half reached 0.99);
    ``val_99_median`` is the median over the seeds that reached it."""
    rows = []
    keyed = table.assign(**{k: table[k].astype(object).where(table[k].notna(), "") for k in CONDITION_KEYS})
    for key, g in keyed.groupby(CONDITION_KEYS, sort=False, dropna=False):
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
    order = out["objective"].map({"os": 0, "ar": 1, "md": 2}).fillna(3)
    out = out.assign(_o=order, _t1=pd.to_numeric(out["t1"], errors="coerce"),
                     _wd=-pd.to_numeric(out["weight_decay"], errors="coerce"))
    out = out.sort_values(["group", "n", "k", "train_size", "model", "_wd", "_o", "_t1"]) \
        .drop(columns=["_o", "_t1", "_wd"]).reset_index(drop=True)
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
    return {"os": "output supervision", "ar": "autoregressive"}.get(row["objective"], row["objective"])


def markdown_table(cond: pd.DataFrame) -> str:
    head = ("| group | model | (n,k) | N | wd | lr | width | condition | P_S | seeds | train 0.99 (median) "
            "| val 0.99 reached | val 0.99 median [min, max] | median over all seeds | grokking signature "
            "| final val (median) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
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
    return "\n".join(lines) + "\n"


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
            cells = []
            for label in labels:
                run = h[h["label"] == label]
                if run.empty:
                    cells.append("")
                    continue
                r = run.iloc[0]
                cells.append(_fmt_steps(r["steps_to_val_99"]) if pd.notna(r["steps_to_val_99"])
                             else f"– ({r['final_val_acc']:.2f})")
            out.append(f"| {wd:g} | {seed} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out) + "\n"


# --- theory vs speed -----------------------------------------------------------

def theory_vs_speed(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho between P_S and speed over the MD runs of each setting.

    Speed is 1 / steps_to_val_99 with never-reached runs at 0 (ranked slowest,
    tied), so rho > 0 means windows with more signal learn faster."""
    from scipy.stats import spearmanr
    from mdtheory.theory.numeric import best_t1_given_t0_zero

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
