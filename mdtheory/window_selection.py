"""Pick the best training window on validation, report it on test.

One computation shared by the sweep summary, the figures and the paper
tables, so "best window" means the same everywhere:

* candidates are the sweep's mask-rate windows (rows of kind ``window``;
  without a ``kind`` column every masked-diffusion row that is not U[0, 1]);
* the best is the lowest mean over seeds of ``full_range_val_loss``: the
  test split plays no part in the choice;
* it is reported by its mean ``full_range_test_loss``, and compared with
  U[0, 1] through the paired per-seed test difference best - uniform (same
  seed = same initialisation, batches and evaluation masks), with a
  two-sided 95% Student-t interval over seeds: mean +- t_{0.975, n-1} sd/sqrt(n).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .errors import UserError

TEST, VAL = "full_range_test_loss", "full_range_val_loss"
CONFIDENCE = 0.95


def is_full_range(t0, t1) -> bool:
    return abs(float(t0)) < 1e-9 and abs(float(t1) - 1.0) < 1e-9


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t confidence interval of the mean (NaN with fewer than 2 values)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def masked_diffusion_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The md rows of a window_sweep table at the largest step count (equal budgets)."""
    if "objective" in df:
        df = df[df["objective"].fillna("md") == "md"]
    if "steps" in df and len(df) and df["steps"].nunique() > 1:
        df = df[df["steps"] == df["steps"].max()]
    return df


def select_best_window(df: pd.DataFrame) -> dict | None:
    """The window with the lowest mean val loss, its test loss, and its paired
    per-seed test difference to U[0, 1]; None when the table has no windows.

    Raises UserError when the table has no val column (a sweep from before
    val was logged): choosing on test would bias the result.
    """
    md = masked_diffusion_rows(df)
    if VAL not in md or md[VAL].isna().any():
        raise UserError(f"window_sweep.csv has runs without {VAL}: re-run the sweep "
                        "(windows are chosen on validation, never on test)")
    full = np.array([is_full_range(a, b) for a, b in zip(md["t0"], md["t1"])], dtype=bool)
    if "kind" in md:
        candidates = md[(md["kind"] == "window").to_numpy() & ~full]
    else:
        candidates = md[~full]
    if candidates.empty:
        return None
    by_window = candidates.groupby(["t0", "t1"])[[VAL, TEST]].agg(["mean", "std", "count"])
    t0, t1 = by_window[(VAL, "mean")].idxmin()
    row = by_window.loc[(t0, t1)]
    best = {"t0": float(t0), "t1": float(t1), "midpoint": (float(t0) + float(t1)) / 2,
            "seeds": int(row[(TEST, "count")]), "selected_on": "val",
            "val_loss_mean": float(row[(VAL, "mean")]), "test_loss_mean": float(row[(TEST, "mean")]),
            "test_loss_sd_seeds": float(row[(TEST, "std")]) if row[(TEST, "count")] > 1 else float("nan")}
    out = {"best": best, "uniform": None, "best_minus_uniform": None}
    uniform = md[full]
    if uniform.empty:
        return out
    u = uniform.groupby("seed")[TEST].mean()
    out["uniform"] = {"seeds": int(len(u)), "test_loss_mean": float(u.mean()),
                      "val_loss_mean": float(uniform[VAL].mean())}
    b = candidates[(candidates["t0"] == t0) & (candidates["t1"] == t1)].groupby("seed")[TEST].mean()
    seeds = sorted(set(u.index) & set(b.index))
    diffs = [float(b[s] - u[s]) for s in seeds]
    lo, hi = t_interval(diffs)
    out["best_minus_uniform"] = {
        "seeds": [int(s) for s in seeds], "per_seed": diffs,
        "mean": float(np.mean(diffs)) if diffs else float("nan"),
        "sd_seeds": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else float("nan"),
        "ci_low": lo, "ci_high": hi, "confidence": CONFIDENCE,
        "interval": "two-sided Student t over seeds of the paired test difference",
        "beats_uniform_all_seeds": bool(diffs) and all(d < 0 for d in diffs)}
    return out
