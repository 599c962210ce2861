"""Summarise results/lm/window_sweep.csv: the U-curve, the best window, the
gap to U[0, 1] and whether the corpus-predicted t* lands in the best window.

    python -m experiments.lm.summarize [--results results/lm]

Writes RESULTS/window_sweep_summary.json and RESULTS/window_sweep_summary.md
and prints the markdown table. Spread: for each window the mean over seeds
of the full-range test loss, its standard deviation over seeds, and the mean
within-run standard error (test blocks and masks). The gap to U[0, 1] is
computed per seed (same seed = same initialisation, batches and test masks,
so the difference is paired) and reported as mean +- sd over seeds.
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
    groups = []
    for (kind, t0, t1), g in df.groupby(["kind", "t0", "t1"], dropna=False, sort=False):
        groups.append({"kind": kind, "t0": t0, "t1": t1, "midpoint": (t0 + t1) / 2,
                       "objective": g["objective"].iloc[0], "seeds": int(len(g)),
                       "loss_mean": float(g["full_range_test_loss"].mean()),
                       "loss_sd_seeds": _sd(g["full_range_test_loss"]),
                       "se_mean": float(g["full_range_test_loss_se"].mean())})
    md = [g for g in groups if g["objective"] == "md"]
    windows = sorted((g for g in md if g["kind"] == "window"), key=lambda g: g["t0"])
    out: dict = {"groups": groups}
    if windows:
        best = min(windows, key=lambda g: g["loss_mean"])
        out["best_window"] = best
    uniform = next((g for g in md if g["kind"] == "uniform"), None)
    if windows and uniform:
        diffs = []
        u = df[df["kind"] == "uniform"].set_index("seed")["full_range_test_loss"]
        b = df[(df["kind"] == "window") & (df["t0"] == best["t0"])].set_index("seed")["full_range_test_loss"]
        for seed in sorted(set(u.index) & set(b.index)):
            diffs.append(float(b[seed] - u[seed]))
        out["uniform"] = uniform
        out["best_minus_uniform"] = {"per_seed": diffs, "mean": float(np.mean(diffs)) if diffs else float("nan"),
                                     "sd_seeds": _sd(diffs),
                                     "beats_uniform_all_seeds": bool(diffs) and all(d < 0 for d in diffs)}
        out["windows_beating_uniform"] = [[g["t0"], g["t1"]] for g in windows
                                          if g["loss_mean"] < uniform["loss_mean"]]
    pred = next((g for g in md if g["kind"] == "predicted"), None)
    if pred:
        out["predicted"] = pred
        if windows:
            rank = 1 + sum(g["loss_mean"] < pred["loss_mean"] for g in windows)
            out["predicted"]["rank_among_windows"] = rank
    if t_star is not None and windows:
        out["t_star"] = t_star
        out["t_star_in_best_window"] = bool(best["t0"] <= t_star <= best["t1"])
    ar = next((g for g in groups if g["objective"] == "ar"), None)
    if ar:
        out["ar_baseline"] = ar
    return out


def table(summary: dict) -> str:
    lines = ["| training law | midpoint | seeds | full-range test loss (mean) | sd over seeds | mean se |",
             "|---|---|---|---|---|---|"]
    for g in summary["groups"]:
        if g["objective"] == "ar":
            name, mid = "AR baseline (exact NLL, not an ELBO)", "-"
        elif g["kind"] == "uniform":
            name, mid = "U[0, 1]", "0.50"
        else:
            name = f"U[{g['t0']:g}, {g['t1']:g}]" + (" (predicted)" if g["kind"] == "predicted" else "")
            mid = f"{g['midpoint']:.3f}"
        sd = "-" if math.isnan(g["loss_sd_seeds"]) else f"{g['loss_sd_seeds']:.4f}"
        lines.append(f"| {name} | {mid} | {g['seeds']} | {g['loss_mean']:.4f} | {sd} | {g['se_mean']:.4f} |")
    return "\n".join(lines) + "\n"


def _main(argv) -> int:
    p = OneLineParser(prog="python -m experiments.lm.summarize", description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results/lm")
    args = p.parse_args(argv)
    results = Path(args.results)
    csv_path = results / "window_sweep.csv"
    if not csv_path.exists():
        raise UserError(f"{csv_path} not found; run python -m experiments.lm.sweep first")
    df = pd.read_csv(csv_path)
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
