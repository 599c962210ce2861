"""Learning curves of a parity results root, for figures that show a metric vs step.

``learning_curves(runs)`` turns run records into one row per (condition,
step, metric): how many seeds it has there and the mean, median, quartiles
and range of the metric over them. The metrics (``METRICS``): train and
held-out accuracy, the MD training loss on signal- and noise-regime tokens
(``train/ce_signal``, ``train/ce_noise``, ``train/signal_loss``,
``train/noise_loss``), and the energy E(W) and the secret-bit selectivity
(``secret_selectivity``) of the reduced-MLP runs that log them. A metric
that no run of a condition logs has no rows for that condition; a step
where no run of the condition has a value for it (e.g. the regime losses at
step 0) has no row either. The parity aggregator
(``experiments.parity.summarize``) writes it as ROOT/curves.csv, so figures
never read run records.

A run stopped early at 0.99 (status "early_stop") ends before the others;
from its last evaluation on, its last values are carried forward (it had
converged: both accuracies were >= 0.99 at two evaluations), so the band
keeps all seeds. A run that stopped for any other reason, or that has not
finished, simply ends (``n_runs`` drops).
"""
from __future__ import annotations

import pandas as pd

from mdtheory.runfiles import RunRecord

CONDITION = ["group", "objective", "model", "n", "k", "train_size", "batch_size", "n_embd", "weight_decay",
             "lr", "t0", "t1"]
METRICS = ("train_acc", "val_acc", "train/ce_signal", "train/ce_noise", "train/signal_loss", "train/noise_loss",
           "energy", "secret_selectivity")
CURVE_COLUMNS = [*CONDITION, "step", "metric", "n_runs", "n_carried", "mean", "median", "q25", "q75", "min", "max"]


def _condition(run: RunRecord) -> dict:
    task, train = run.task, run.train
    t0, t1 = run.window or (None, None)
    return {"group": (run.marker.get("spec") or {}).get("group", ""), "objective": run.objective,
            "model": task.get("model", "transformer"), "n": task.get("n"), "k": task.get("k"),
            "train_size": task.get("train_size"), "batch_size": train.get("batch_size"),
            "n_embd": task.get("n_embd"), "weight_decay": train.get("weight_decay"), "lr": train.get("lr"),
            "t0": t0, "t1": t1}


def _run_curve(run: RunRecord, steps: list[int]) -> pd.DataFrame:
    """The run's metrics at ``steps`` (carried forward after an early stop)."""
    frame = pd.DataFrame(run.metrics)
    frame = frame[["step", *[m for m in METRICS if m in frame]]].drop_duplicates("step").set_index("step")
    frame["carried"] = False
    if run.marker.get("status") == "early_stop" and len(frame):
        later = [s for s in steps if s > frame.index.max()]
        if later:
            tail = pd.DataFrame([frame.iloc[-1]] * len(later), index=later)
            tail["carried"] = True
            frame = pd.concat([frame, tail])
    return frame.reindex([s for s in steps if s in frame.index])


def learning_curves(runs: list[RunRecord]) -> pd.DataFrame:
    """One row per (condition, step, metric) over the seeds of each condition."""
    groups: dict[tuple, list[RunRecord]] = {}
    for run in runs:
        if run.metrics:
            key = tuple(_condition(run).items())
            groups.setdefault(key, []).append(run)
    rows = []
    for key, members in groups.items():
        steps = sorted({r["step"] for run in members for r in run.metrics})
        curves = [_run_curve(run, steps) for run in members]
        for metric in METRICS:
            logged = [i for i, c in enumerate(curves) if metric in c]
            if not logged:  # no run of this condition logs the metric
                continue
            table = pd.concat([curves[i][metric].rename(i) for i in logged], axis=1)
            carried = pd.concat([curves[i]["carried"].rename(i) for i in logged], axis=1)
            for step, values in table.iterrows():
                values = values.dropna()
                if values.empty:
                    continue
                rows.append({**dict(key), "step": int(step), "metric": metric, "n_runs": len(values),
                             "n_carried": int(carried.loc[step, values.index].fillna(False).astype(bool).sum()),
                             "mean": values.mean(), "median": values.median(), "q25": values.quantile(0.25),
                             "q75": values.quantile(0.75), "min": values.min(), "max": values.max()})
    out = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    return out.sort_values([*CONDITION, "metric", "step"], na_position="first",
                           key=lambda s: s.astype(str) if s.dtype == object else s).reset_index(drop=True)
