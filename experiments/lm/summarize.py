"""Summarise results/lm/window_sweep.csv: the U-curve, the best window, the
gap to U[0, 1] and whether the corpus-predicted t* lands in the best window.

    python -m experiments.lm.summarize [--results results/lm]

Writes RESULTS/window_sweep_summary.json and RESULTS/window_sweep_summary.md
and prints the markdown table. Spread: for each window the mean over seeds
of the full-range val and test losses, the test loss's standard deviation
over seeds, and the mean within-run standard error (test blocks and masks).
The best window is the one with the lowest mean *val* loss
(mdtheory.window_selection) and is reported by its test loss; its gap to
U[0, 1] is the paired per-seed test difference (same seed = same
initialisation, batches and evaluation masks) with a 95% Student-t interval
over seeds.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mdtheory.cli import OneLineParser, atomic_write_json, atomic_write_text, run_cli
from mdtheory.errors import UserError
from mdtheory.window_selection import select_best_window


def _finite(obj):
    """NaN -> None so the JSON stays strict."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _sd(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(x.std(ddof=1)) if len(x) > 1 else float("nan")


def summarize(df: pd.DataFrame, t_star: float | None = None) -> dict:
    if df.empty:
        raise UserError("window_sweep.csv has no finished runs")
    selection = select_best_window(df)  # chosen on val, reported on test
    groups = []
    for (kind, t0, t1), g in df.groupby(["kind", "t0", "t1"], dropna=False, sort=False):
        groups.append({"kind": kind, "t0": t0, "t1": t1, "midpoint": (t0 + t1) / 2,
                       "objective": g["objective"].iloc[0], "seeds": int(len(g)),
                       "val_loss_mean": float(g["full_range_val_loss"].mean()),
                       "loss_mean": float(g["full_range_test_loss"].mean()),
                       "loss_sd_seeds": _sd(g["full_range_test_loss"]),
                       "se_mean": float(g["full_range_test_loss_se"].mean())})
    md = [g for g in groups if g["objective"] == "md"]
    windows = sorted((g for g in md if g["kind"] == "window"), key=lambda g: g["t0"])
    out: dict = {"groups": groups}
    if selection is not None:
        sel = selection["best"]
        best = next(g for g in windows if (g["t0"], g["t1"]) == (sel["t0"], sel["t1"]))
        out["best_window"] = {**best, "selected_on": "val"}
    uniform = next((g for g in md if g["kind"] == "uniform"), None)
    if selection is not None and selection["best_minus_uniform"] is not None and uniform:
        out["uniform"] = uniform
        out["best_minus_uniform"] = selection["best_minus_uniform"]
        out["windows_beating_uniform"] = [[g["t0"], g["t1"]] for g in windows
                                          if g["loss_mean"] < uniform["loss_mean"]]
    pred = next((g for g in md if g["kind"] == "predicted"), None)
    if pred:
        out["predicted"] = pred
        if windows:
            # the rank is reported on test (a description, not a choice)
            rank = 1 + sum(g["loss_mean"] < pred["loss_mean"] for g in windows)
            out["predicted"]["rank_among_windows"] = rank
            out["predicted"]["rank_among_windows_val"] = \
                1 + sum(g["val_loss_mean"] < pred["val_loss_mean"] for g in windows)
    if t_star is not None and windows:
        out["t_star"] = t_star
        out["t_star_in_best_window"] = bool(best["t0"] <= t_star <= best["t1"])
    ar = next((g for g in groups if g["objective"] == "ar"), None)
    if ar:
        out["ar_baseline"] = ar
    return out


def table(summary: dict) -> str:
    lines = ["| training law | midpoint | seeds | full-range val loss (mean) | full-range test loss (mean) "
             "| test sd over seeds | test mean se |",
             "|---|---|---|---|---|---|---|"]
    for g in summary["groups"]:
        if g["objective"] == "ar":
            name, mid = "AR baseline (exact NLL, not an ELBO)", "-"
        elif g["kind"] == "uniform":
            name, mid = "U[0, 1]", "0.50"
        else:
            name = f"U[{g['t0']:g}, {g['t1']:g}]" + (" (predicted)" if g["kind"] == "predicted" else "")
            mid = f"{g['midpoint']:.3f}"
        sd = "-" if math.isnan(g["loss_sd_seeds"]) else f"{g['loss_sd_seeds']:.4f}"
        if summary.get("best_window", {}).get("t0") == g["t0"] and g["kind"] == "window" \
                and summary["best_window"]["t1"] == g["t1"]:
            name = f"**{name}** (best on val)"
        lines.append(f"| {name} | {mid} | {g['seeds']} | {g['val_loss_mean']:.4f} | {g['loss_mean']:.4f} "
                     f"| {sd} | {g['se_mean']:.4f} |")
    diff = summary.get("best_minus_uniform")
    if diff:
        ci = "" if math.isnan(diff["ci_low"]) else \
            f", {diff['confidence']:.0%} t-interval over seeds [{diff['ci_low']:.4f}, {diff['ci_high']:.4f}]"
        per_seed = ", ".join(f"{d:.4f}" for d in diff["per_seed"])
        lines.append(f"\nBest window minus U[0, 1], test loss paired by seed: mean {diff['mean']:.4f}{ci}; "
                     f"per seed {per_seed}.")
    return "\n".join(lines) + "\n"


def _main(argv) -> int:
    p = OneLineParser(prog="python -m experiments.lm.summarize", description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results/lm")
    args = p.parse_args(argv)
    results = Path(args.results)
    csv_path = results / "window_sweep.csv"
    if not csv_path.exists():
        raise UserError(f"{csv_path} not found; run python -m experiments.lm.sweep first")
    try:
        df = pd.read_csv(csv_path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{csv_path} is empty or not a CSV ({type(exc).__name__})") from None
    t_star = None
    meta = results / "window_sweep.json"
    if meta.exists():
        t_star = json.loads(meta.read_text()).get("predicted", {}).get("t_star")
    summary = summarize(df, t_star)
    text = table(summary)
    atomic_write_json(results / "window_sweep_summary.json", _finite(summary))
    atomic_write_text(results / "window_sweep_summary.md", text)
    print(text, end="")
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
