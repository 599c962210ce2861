"""Summarise the LM window sweep: ``python -m experiments.lm.summarize``.

    python -m experiments.lm.summarize [--results results/lm]

The sweep's one aggregator: every number the figures and the paper show
about the sweep is computed here.

Reads RESULTS/window_sweep.csv (one row per run, written by the sweep) and
writes RESULTS/window_sweep_by_window.csv (one row per training law),
RESULTS/window_sweep_summary.json and RESULTS/window_sweep_summary.md (and
prints the markdown table). Per law, over the seeds at the sweep's full
budget: the mean full-range val and test losses, the test loss's standard
deviation over seeds, the mean within-run standard error and the error bar
``err`` (the larger of the standard error across seeds and the mean
within-run one). The AR baseline's exact NLL is kept under its own names
(``nll_*``): it is not a masked-diffusion ELBO. The best window is the one
with the lowest mean *val* loss (the test split plays no part in the
choice; a sweep without val losses is refused) and is reported by its test
loss; its gap to U[0, 1] is the paired per-seed test difference best -
uniform (same seed = same initialisation, batches and evaluation masks) with
a two-sided 95% Student-t interval over seeds, mean +- t_{0.975, n-1} sd/sqrt(n).

When RESULTS/durability.csv is there (``python -m experiments.lm.durability``)
it also writes RESULTS/durability_summary.csv: per stage and sampler, the
mean full-range test loss and its gap to U[0, 1] (test, and val) paired by
seed within the stage, with that interval, and the stage's tokenizer (char
or bpe: durability.csv's, else the stage's definition in
experiments.lm.durability); the sweep's own runs of the same samplers are
stage "x1", so the series starts at the sweep's budget.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mdtheory.cli import OneLineParser, atomic_write_json, atomic_write_text, run_cli
from mdtheory.errors import UserError
from mdtheory.provenance import device_label
from mdtheory.runfiles import CONFIG_NAME, is_run, no_records_reason, read_json_object, read_metrics, read_run

TEST, VAL = "full_range_test_loss", "full_range_val_loss"
CONFIDENCE = 0.95
BY_WINDOW = "window_sweep_by_window.csv"
MD_NAMES = ("val_loss_mean", "loss_mean", "loss_sd_seeds", "se_mean")
AR_NAMES = ("nll_val_mean", "nll_test_mean", "nll_test_sd_seeds", "nll_test_se_mean")
BY_WINDOW_COLUMNS = ["kind", "objective", "t0", "t1", "midpoint", "width", "seeds", "steps", *MD_NAMES, *AR_NAMES,
                     "err", "best_on_val", "device", "sampler", "unigram_entropy", "past_unigram"]
DURABILITY, DURABILITY_SUMMARY = "durability.csv", "durability_summary.csv"
SWEEP_STAGE = "x1"  # the sweep's own budget, the first point of the durability series
STAGE_ORDER = (SWEEP_STAGE, "x4", "x16", "wide-x4", "bpe")
DURABILITY_COLUMNS = ["stage", "sampler", "kind", "n_params", "steps", "tokens", "tokenizer", "device", "seeds",
                      "test_loss_mean", "val_loss_mean", *(f"gap_{split}_{name}" for split in ("test", "val")
                                         for name in ("mean", "ci_low", "ci_high", "per_seed"))]


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


def _law(g: pd.DataFrame, val: str, test: str, names: tuple[str, str, str, str]) -> dict:
    """Means over seeds of one law's ``val`` and ``test`` columns, under ``names``."""
    across = _sd(g[test]) / math.sqrt(len(g)) if len(g) > 1 else 0.0
    within = float(g[f"{test}_se"].mean())
    return dict(zip(names, (float(g[val].mean()), float(g[test].mean()), _sd(g[test]), within)),
                err=float(np.nanmax([across, within])))


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t confidence interval of the mean (NaN with fewer than 2 values)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def paired_difference(df: pd.DataFrame, best: dict, against: pd.DataFrame | None = None) -> dict | None:
    """Per-seed test loss of the best window minus U[0, 1] (or minus the runs
    ``against``), with its interval."""
    rows = df[(df["kind"] == "window") & (df["t0"] == best["t0"]) & (df["t1"] == best["t1"])]
    return paired(rows, df[df["kind"] == "uniform"] if against is None else against)


def paired(rows: pd.DataFrame, baseline: pd.DataFrame, column: str = TEST) -> dict | None:
    """Per-seed loss (``column``, default test) of ``rows`` minus ``baseline``, with its interval."""
    def per_seed(rows):
        return rows.groupby("seed")[column].mean()

    u = per_seed(baseline)
    if u.empty:
        return None
    b = per_seed(rows)
    seeds = sorted(set(u.index) & set(b.index))
    diffs = [float(b[s] - u[s]) for s in seeds]
    lo, hi = t_interval(diffs)
    return {"seeds": [int(s) for s in seeds], "per_seed": diffs,
            "mean": float(np.mean(diffs)) if diffs else float("nan"),
            "sd_seeds": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else float("nan"),
            "ci_low": lo, "ci_high": hi, "confidence": CONFIDENCE,
            "interval": f"two-sided Student t over seeds of the paired {'test' if column == TEST else column} "
                        "difference",
            "beats_uniform_all_seeds": bool(diffs) and all(d < 0 for d in diffs)}


def summarize(df: pd.DataFrame, t_star: float | None = None) -> dict:
    if df.empty:
        raise UserError("window_sweep.csv has no finished runs")
    df = df[df["steps"] == df["steps"].max()]  # equal budgets only
    md_rows = df[df["objective"] == "md"]
    if VAL not in md_rows or md_rows[VAL].isna().any():
        raise UserError(f"window_sweep.csv has runs without {VAL}: re-run the sweep "
                        "(windows are chosen on validation, never on test)")
    groups = []
    # smooth laws have no window: their --sampler spec tells them apart
    keys = ["kind", "t0", "t1"] + (["sampler"] if "sampler" in df else [])
    for key, g in df.groupby(keys, dropna=False, sort=False):
        kind, t0, t1 = key[:3]
        objective = g["objective"].iloc[0]
        row = {"kind": kind, "t0": t0, "t1": t1, "midpoint": (t0 + t1) / 2, "width": t1 - t0,
               "objective": objective, "seeds": int(len(g)), "steps": int(g["steps"].max())}
        if "sampler" in df:
            row["sampler"] = g["sampler"].iloc[0]
        if "device" in g:  # "cpu" or the card's name, from the run records
            row["device"] = "; ".join(sorted(set(g["device"].dropna()) - {""}))
        if objective == "ar":
            row.update(_law(g, "nll_val", "nll_test", AR_NAMES))
        else:
            row.update(_law(g, VAL, TEST, MD_NAMES))
        if "past_unigram" in g and g["past_unigram"].notna().all():  # every seed ended past the unigram level
            row.update(unigram_entropy=float(g["unigram_entropy"].iloc[0]),
                       past_unigram=bool(g["past_unigram"].astype(str).eq("True").all()))
        groups.append(row)
    md = [g for g in groups if g["objective"] == "md"]
    windows = sorted((g for g in md if g["kind"] == "window"), key=lambda g: (g["t0"], g["t1"]))
    best = min(windows, key=lambda g: g["val_loss_mean"], default=None)  # chosen on val, reported on test
    for g in groups:
        g["best_on_val"] = g is best
    out: dict = {"groups": groups}
    if best:
        out["best_window"] = {**best, "selected_on": "val"}
    uniform = next((g for g in md if g["kind"] == "uniform"), None)
    diff = paired_difference(df, best) if best else None
    if diff is not None and uniform:
        out["uniform"] = uniform
        out["best_minus_uniform"] = diff
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
    if t_star is not None and best:
        out["t_star"] = t_star
        out["t_star_in_best_window"] = bool(best["t0"] <= t_star <= best["t1"])
    ar = next((g for g in groups if g["objective"] == "ar"), None)
    if ar:
        out["ar_baseline"] = ar
    out.update(_smooth_laws(df, md, best))
    return out


def _runs_of(df: pd.DataFrame, g: dict) -> pd.DataFrame:
    """The runs behind one group of ``summarize``."""
    if g["kind"] in ("smooth", "uniform"):
        return df[(df["kind"] == g["kind"]) & (df["sampler"] == g["sampler"])] if g["kind"] == "smooth" \
            else df[df["kind"] == "uniform"]
    return df[(df["kind"] == g["kind"]) & (df["t0"] == g["t0"]) & (df["t1"] == g["t1"])]


def _smooth_laws(df: pd.DataFrame, md: list[dict], best: dict | None) -> dict:
    """Each smooth law paired by seed against U[0, 1], the window chosen on
    val and the window centred on t*; the smooth law and the law of any kind
    with the lowest val loss, with their test gaps."""
    out: dict = {}
    against = {"uniform": next((g for g in md if g["kind"] == "uniform"), None), "best_window": best,
               "predicted": next((g for g in md if g["kind"] == "predicted"), None)}
    smooth = [g for g in md if g["kind"] == "smooth"]
    for g in smooth + [g for g in md if g["kind"] == "predicted"]:
        for name, other in against.items():
            if other is not None and other is not g:
                g[f"minus_{name}"] = paired(_runs_of(df, g), _runs_of(df, other))
    if smooth:
        out["smooth"] = smooth
        out["best_smooth"] = {**min(smooth, key=lambda g: g["val_loss_mean"]), "selected_on": "val"}
    if md:
        law = min(md, key=lambda g: g["val_loss_mean"])
        out["best_law"] = {**law, "selected_on": "val", "minus_uniform": paired(_runs_of(df, law), _runs_of(
            df, against["uniform"])) if against["uniform"] and law is not against["uniform"] else None}
    return out


def verdict(diff: dict | None) -> str:
    """What a paired difference (``paired``) lets one say: "lower" or
    "higher" when there are at least 2 seeds and the interval excludes 0,
    else "cannot tell"."""
    if not diff or len(diff.get("per_seed") or []) < 2:
        return "cannot tell"
    low, high = diff.get("ci_low"), diff.get("ci_high")  # None once the summary went through JSON
    if low is None or high is None or math.isnan(low) or math.isnan(high) or low <= 0 <= high:
        return "cannot tell"
    return "lower" if high < 0 else "higher"


def _why_cannot_tell(diff: dict | None) -> str:
    n = len((diff or {}).get("per_seed") or [])
    if n < 2:
        return (f"{'one seed gives' if n == 1 else 'no paired seeds give'} no interval; "
                f"train at least 2 seeds (e.g. --seeds 0 1 2)")
    return f"the {diff['confidence']:.0%} interval over {n} seeds contains 0; more seeds may tell"


def _diff_text(diff: dict | None) -> str:
    if not diff or not diff["per_seed"]:
        return "no paired seeds"
    low = diff.get("ci_low")  # None once the summary went through JSON
    n = len(diff["per_seed"])
    ci = "" if low is None or math.isnan(low) else \
        f", {diff['confidence']:.0%} CI [{low:+.4f}, {diff['ci_high']:+.4f}]"
    text = f"{diff['mean']:+.4f} nats{ci} over {n} seed(s)"
    if verdict(diff) == "cannot tell":
        every = "; lower in every seed" if n > 1 and diff["beats_uniform_all_seeds"] else ""
        return f"{text}{every}: cannot tell ({_why_cannot_tell(diff)})"
    return text + ("; better in every seed" if diff["beats_uniform_all_seeds"] else "")


def recommendation(summary: dict) -> str:
    """What a user of this corpus should train with, in a few lines (markdown).

    The window chosen on val is recommended over U[0, 1] only when the
    paired test difference says so: at least 2 seeds and a 95% interval
    below 0; otherwise the text says that the sweep cannot tell."""
    lines = ["## Recommendation"]
    best, uniform = summary.get("best_window"), summary.get("uniform")
    diff = summary.get("best_minus_uniform")
    if best:
        spec = f"`--sampler window:{best['t0']:g},{best['t1']:g}`"
        losses = f"val {best['val_loss_mean']:.4f}, test {best['loss_mean']:.4f} nats/token"
        chosen = f"chosen on val: {losses}"
        said = verdict(diff) if uniform else "lower"  # no U[0, 1] run: the best window is all there is
        if said == "lower":
            lines.append(f"* Train with {spec} ({chosen}).")
        elif said == "higher":
            lines.append(f"* Keep U[0, 1]: the window chosen on val, {spec} ({losses}), is worse on test.")
        else:
            lines.append(f"* Cannot tell whether {spec} ({chosen}) is better than U[0, 1]: "
                         f"{_why_cannot_tell(diff)}.")
    if best and uniform:
        lines.append(f"* Against U[0, 1] (test {uniform['loss_mean']:.4f}), paired by seed: "
                     f"{_diff_text(diff)}.")
    t_star = summary.get("t_star")
    if t_star is not None:
        windows = [g for g in summary["groups"] if g["kind"] == "window"]
        home = next((g for g in windows if g["t0"] <= t_star <= g["t1"]), None)
        rank = 1 + sum(g["val_loss_mean"] < home["val_loss_mean"] for g in windows) if home else None
        where = ("in the window chosen on val" if summary.get("t_star_in_best_window") else
                 f"in U[{home['t0']:g}, {home['t1']:g}], ranked {rank} of {len(windows)} on val" if home else
                 "outside the windows swept")
        lines.append(f"* The corpus-predicted t* = {t_star:.3f} (n-gram weights of the training split) fell {where}.")
    lines += _predicted_lines(summary)
    lines += _unigram_lines(summary)
    return "\n".join(lines) + "\n"


def _short_diff(diff: dict | None) -> str:
    """A paired test difference in one clause: mean, interval, seeds below 0, verdict."""
    if not diff or not diff["per_seed"]:
        return "no paired seeds"
    low, n = diff.get("ci_low"), len(diff["per_seed"])
    ci = "" if low is None or math.isnan(low) else f" [{low:+.4f}, {diff['ci_high']:+.4f}]"
    below = sum(d < 0 for d in diff["per_seed"])
    said = verdict(diff)
    return f"{diff['mean']:+.4f}{ci}, below in {below}/{n} seeds" + (", cannot tell" if said == "cannot tell" else "")


def _predicted_lines(summary: dict) -> list[str]:
    """The laws centred on t*, which need no sweep: each against U[0, 1] and the chosen window."""
    lines = []
    pred = summary.get("predicted")
    laws = ([("predicted", pred, f"the window centred on t*, U[{pred['t0']:g}, {pred['t1']:g}]")] if pred else []) \
        + [(g["sampler"], g, "mode t*") for g in summary.get("smooth", [])]
    if laws:
        lines.append("* Without a sweep, `--sampler predicted[:law=window|beta|logitnormal,width=W]` trains a "
                     "law centred on this corpus's t* (computed from its training split); test-loss "
                     "differences paired by seed, nats, 95% t-interval:")
    best = summary.get("best_smooth")
    for spec, g, what in laws:
        mark = " (the smooth law best on val)" if best and g["sampler"] == best["sampler"] else ""
        text = (f"  * `{spec}` ({what}){mark}: val {g['val_loss_mean']:.4f}, test {g['loss_mean']:.4f}; "
                f"minus U[0, 1] {_short_diff(g.get('minus_uniform'))}")
        if g.get("minus_best_window"):
            text += f"; minus the chosen window {_short_diff(g['minus_best_window'])}"
        lines.append(text + ".")
    law = summary.get("best_law")
    if law and laws:
        name = law["sampler"] if law["kind"] in ("smooth", "uniform") else f"window:{law['t0']:g},{law['t1']:g}"
        lines.append(f"* Lowest val loss of all laws: `{name}` (val {law['val_loss_mean']:.4f}, "
                     f"test {law['loss_mean']:.4f}).")
    return lines


def _unigram_lines(summary: dict) -> list[str]:
    """A warning when U[0, 1] or the chosen law ended at the unigram level."""
    flagged = [(name, g) for name, g in (("U[0, 1]", summary.get("uniform")),
                                         ("the window chosen on val", summary.get("best_window")),
                                         ("the law best on val", summary.get("best_law")))
               if g and g.get("past_unigram") is False]
    if not flagged:
        return []
    entropy = flagged[0][1]["unigram_entropy"]
    names = ", ".join(dict.fromkeys(name for name, _ in flagged))
    return [f"* {names[0].upper() + names[1:]} ended within 0.05 nats of the test split's unigram entropy "
            f"({entropy:.4f}): at this budget the comparison measures how fast a law leaves the unigram "
            f"plateau, not which law trains the better model; train longer (--steps) to tell."]


def _text(sd: float) -> str:
    return "-" if math.isnan(sd) else f"{sd:.4f}"


def table(summary: dict) -> str:
    lines = ["| training law | midpoint | seeds | full-range val loss (mean) | full-range test loss (mean) "
             "| test sd over seeds | test mean se |",
             "|---|---|---|---|---|---|---|"]
    for g in summary["groups"]:
        if g["objective"] == "ar":
            lines.append(f"| AR baseline (exact NLL, not an ELBO) | - | {g['seeds']} | {g['nll_val_mean']:.4f} "
                         f"| {g['nll_test_mean']:.4f} | {_text(g['nll_test_sd_seeds'])} | {g['nll_test_se_mean']:.4f} |")
            continue
        if g["kind"] == "uniform":
            name, mid = "U[0, 1]", "0.50"
        elif g["kind"] == "smooth":
            name, mid = f"`{g['sampler']}`", "-"
        else:
            name = f"U[{g['t0']:g}, {g['t1']:g}]" + (" (predicted)" if g["kind"] == "predicted" else "")
            mid = f"{g['midpoint']:.3f}"
        if g["best_on_val"]:
            name = f"**{name}** (best on val)"
        lines.append(f"| {name} | {mid} | {g['seeds']} | {g['val_loss_mean']:.4f} | {g['loss_mean']:.4f} "
                     f"| {_text(g['loss_sd_seeds'])} | {g['se_mean']:.4f} |")
    diff = summary.get("best_minus_uniform")
    if diff:
        ci = "" if math.isnan(diff["ci_low"]) else \
            f", {diff['confidence']:.0%} t-interval over seeds [{diff['ci_low']:.4f}, {diff['ci_high']:.4f}]"
        per_seed = ", ".join(f"{d:.4f}" for d in diff["per_seed"])
        lines.append(f"\nBest window minus U[0, 1], test loss paired by seed: mean {diff['mean']:.4f}{ci}; "
                     f"per seed {per_seed}.")
    return "\n".join(lines) + "\n"


def folder_device(folder: Path) -> str:
    """What the run in ``folder`` trained on, from its run record: "cpu" or
    the card's name; "" when the record is not there."""
    return device_label(read_run(folder).provenance) if is_run(folder) else ""


def run_device(results: Path, row) -> str:
    """What a sweep run trained on (its record is RESULTS/runs/<preset>/<run>,
    where the sweep writes it)."""
    return folder_device(results / "runs" / str(getattr(row, "preset", "")) / str(getattr(row, "run", "")))


def folder_n_params(folder: Path) -> float:
    """Parameters of the model of the run in ``folder``, built from its
    config.json; NaN when the record is not there."""
    if not is_run(folder):
        return float("nan")
    from mdtheory.models import Transformer, TransformerConfig
    task = read_json_object(Path(folder) / CONFIG_NAME)["task"]
    model = Transformer(TransformerConfig(vocab_size=task["tokenizer_vocab_size"], block_size=task["block_size"],
                                          n_layer=task["n_layer"], n_head=task["n_head"], n_embd=task["n_embd"]))
    return sum(p.numel() for p in model.parameters())


def stage_tokenizer(stage: str, preset: str | None = None) -> str:
    """The tokenizer of a durability stage as experiments.lm.durability
    defines it (its stages change the quick preset); of stage x1, that of
    the sweep's ``preset``."""
    from .durability import STAGES
    from .presets import PRESETS

    if stage == SWEEP_STAGE:
        return PRESETS.get(str(preset), PRESETS["quick"]).task.tokenizer
    return str(STAGES.get(stage, {}).get("tokenizer", PRESETS["quick"].task.tokenizer))


def durability_runs(results: Path, sweep: pd.DataFrame) -> pd.DataFrame | None:
    """The runs of RESULTS/durability.csv and, as stage x1, the sweep's runs
    (at its full budget) of the same samplers; None when there is no
    durability run yet."""
    path = results / DURABILITY
    if not path.exists():
        return None
    try:
        runs = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a CSV ({type(exc).__name__})") from None
    missing = sorted({"stage", "sampler", "kind", "seed", "n_params", "steps", "tokens", TEST, VAL} - set(runs))
    if missing:
        raise UserError(f"{path} lacks the column(s) {', '.join(missing)}; rerun python -m experiments.lm.durability")
    if runs.empty:
        return None
    if "device" not in runs:  # written before the CSV named it: ask the run records
        runs["device"] = [folder_device(Path(d)) for d in runs["run_dir"]] if "run_dir" in runs else ""
    # the CSV's tokenizer where it names one, else the stage's definition
    named = runs["tokenizer"] if "tokenizer" in runs else pd.Series(float("nan"), index=runs.index)
    runs["tokenizer"] = [str(t) if pd.notna(t) and str(t) else stage_tokenizer(str(stage))
                         for t, stage in zip(named, runs["stage"])]
    if "sampler" in sweep:
        sweep = sweep[(sweep["steps"] == sweep["steps"].max()) & (sweep["objective"] == "md")
                      & sweep["sampler"].isin(set(runs["sampler"]))]
        if not sweep.empty:
            first = sweep.iloc[0]
            model = folder_n_params(results / "runs" / str(first.get("preset", "")) / str(first.get("run", "")))
            presets = sweep["preset"] if "preset" in sweep else [None] * len(sweep)
            runs = pd.concat([sweep.assign(stage=SWEEP_STAGE, n_params=model,
                                           tokenizer=[stage_tokenizer(SWEEP_STAGE, p) for p in presets]), runs],
                             ignore_index=True)
    return runs


def _seed_values(diff: dict) -> str:
    """"seed:value;seed:value" of a paired difference."""
    return ";".join(f"{seed}:{value:.6f}" for seed, value in zip(diff["seeds"], diff["per_seed"]))


def _count(runs: pd.DataFrame, column: str):
    """The largest value of an integer column (steps, tokens); NaN when not recorded."""
    top = runs[column].max() if column in runs else float("nan")
    return int(top) if pd.notna(top) else float("nan")


def durability_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (stage, sampler) of ``runs`` (one row per run, with its
    ``tokenizer``: char or bpe): the mean test and val losses and the gap to the same stage's U[0, 1] paired by seed
    (mean, t-interval over seeds, per seed) on test and on val."""
    stage_rank = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    stages = sorted(runs["stage"].unique(), key=lambda s: (stage_rank.get(s, len(STAGE_ORDER)), s))
    kind_rank = {"uniform": 0, "window": 1, "predicted": 2, "smooth": 3}
    samplers = sorted(dict.fromkeys(runs["sampler"]),
                      key=lambda s: kind_rank.get(runs.loc[runs["sampler"] == s, "kind"].iloc[0], 4))
    rows = []
    for stage in stages:
        at = runs[runs["stage"] == stage]
        uniform = at[at["sampler"] == "uniform"]
        for sampler in samplers:
            g = at[at["sampler"] == sampler]
            if g.empty:
                continue
            row = {"stage": stage, "sampler": sampler, "kind": g["kind"].iloc[0], "n_params": g["n_params"].max(),
                   "steps": _count(g, "steps"), "tokens": _count(g, "tokens"),
                   "tokenizer": ("; ".join(sorted(set(g["tokenizer"].astype(str)))) if "tokenizer" in g
                                 else stage_tokenizer(stage)),
                   "device": "; ".join(sorted(set(g["device"].fillna("").astype(str)) - {""})),
                   "seeds": ";".join(str(int(seed)) for seed in sorted(g["seed"])),
                   "test_loss_mean": float(g[TEST].mean()), "val_loss_mean": float(g[VAL].mean())}
            for split, column in (("test", TEST), ("val", VAL)):
                diff = paired(g, uniform, column)
                if diff is None or not diff["per_seed"]:
                    row.update({f"gap_{split}_{name}": float("nan") for name in ("mean", "ci_low", "ci_high")},
                               **{f"gap_{split}_per_seed": ""})
                    continue
                row.update({f"gap_{split}_mean": diff["mean"], f"gap_{split}_ci_low": diff["ci_low"],
                            f"gap_{split}_ci_high": diff["ci_high"], f"gap_{split}_per_seed": _seed_values(diff)})
            rows.append(row)
    return pd.DataFrame(rows, columns=DURABILITY_COLUMNS)


def write_durability_summary(results: Path, sweep: pd.DataFrame) -> pd.DataFrame | None:
    """RESULTS/durability_summary.csv when there are durability runs."""
    runs = durability_runs(results, sweep)
    if runs is None:
        return None
    table = durability_summary(runs)
    atomic_write_text(results / DURABILITY_SUMMARY, table.to_csv(index=False))
    return table


def skipped_runs(results: Path, df: pd.DataFrame, presets=()) -> dict[str, list[str]]:
    """{reason: run names} of the runs this summary leaves out: rows of
    window_sweep.csv below the sweep's full budget, and run folders under
    RESULTS/runs/<preset>/ that the sweep did not list (unfinished, killed
    before their first record, or damaged: the reader's one-line error)."""
    skipped: dict[str, list[str]] = {}
    if not df.empty and "steps" in df and "run" in df:
        top = df["steps"].max()
        for row in df[df["steps"] < top].itertuples():
            skipped.setdefault(f"fewer steps than the full budget of {int(top)}", []).append(str(row.run))
    listed = set(df["run"].astype(str)) if "run" in df else set()
    names = set(presets) | (set(df["preset"].dropna().astype(str)) if "preset" in df else set())
    for preset in sorted(names):
        root = results / "runs" / preset
        if not root.is_dir():
            continue
        for folder in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
            if folder.name in listed:
                continue
            try:
                records = read_metrics(folder) if is_run(folder) else []
            except UserError as exc:
                skipped.setdefault(f"a damaged record ({exc})", []).append(folder.name)
                continue
            why = (f"no finished record (unfinished at step {records[-1]['step']})" if records
                   else no_records_reason(folder))
            skipped.setdefault(why, []).append(folder.name)
    return skipped


def skipped_text(skipped: dict[str, list[str]]) -> list[str]:
    """One line per reason: how many runs were left out, why, and which."""
    lines = []
    for why, names in skipped.items():
        shown = ", ".join(names[:5]) + (f", ... ({len(names) - 5} more)" if len(names) > 5 else "")
        lines.append(f"skipped {len(names)} run(s) with {why}: {shown}")
    return lines


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
    df = df.assign(device=[run_device(results, r) for r in df.itertuples()])
    t_star, presets = None, []
    meta = results / "window_sweep.json"
    if meta.exists():
        record = read_json_object(meta)
        t_star = (record.get("predicted") or {}).get("t_star")
        presets = [str((record.get("preset") or {}).get("name"))] if (record.get("preset") or {}).get("name") else []
    notes = skipped_text(skipped_runs(results, df, presets))
    if df.empty and notes:
        raise UserError(f"{csv_path} has no finished runs; {'; '.join(notes)}")
    summary = summarize(df, t_star)
    text = table(summary)
    atomic_write_json(results / "window_sweep_summary.json", _finite(summary))
    by_window = pd.DataFrame(summary["groups"]).reindex(columns=BY_WINDOW_COLUMNS)
    atomic_write_text(results / BY_WINDOW, by_window.to_csv(index=False))
    atomic_write_text(results / "window_sweep_summary.md", text)
    print(text, end="")
    for line in notes:  # what the summary left out, and why
        print(line)
    durability = write_durability_summary(results, df)
    if durability is not None:
        print(f"durability: {len(durability)} stage x sampler rows -> {results / DURABILITY_SUMMARY}")
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
