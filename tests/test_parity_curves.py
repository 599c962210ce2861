"""Learning curves of a parity root (experiments/parity/curves.py), as the
aggregator writes them to ROOT/curves.csv: mean and median over seeds, the
regime losses and energy where logged, nothing for a metric no run logs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from experiments.parity.curves import CURVE_COLUMNS, METRICS, learning_curves
from mdtheory.runfiles import RunRecord


def _run(seed: int, records: list[dict], objective="md", status="complete", model="transformer") -> RunRecord:
    task = {"objective": objective, "model": model, "n": 10, "k": 3, "train_size": 100, "n_embd": 32, "seed": seed}
    if objective == "md":
        task["sampler"] = "window:0.0,0.2"
    return RunRecord(path=Path(f"run_s{seed}"), task=task,
                     train={"batch_size": 32, "weight_decay": 0.1, "lr": 1e-3, "steps": 300}, provenance={},
                     metrics=records, marker={"status": status, "spec": {"group": "main"}})


def _acc(step: int, acc: float, **extra) -> dict:
    return {"step": step, "train_acc": acc, "val_acc": acc, **extra}


def _rows(curves: pd.DataFrame, metric: str, objective="md") -> pd.DataFrame:
    part = curves[(curves["metric"] == metric) & (curves["objective"] == objective)]
    return part.sort_values("step").set_index("step")


def test_mean_beside_median_and_band():
    runs = [_run(0, [_acc(0, 0.5), _acc(100, 0.6)]), _run(1, [_acc(0, 0.5), _acc(100, 0.7)]),
            _run(2, [_acc(0, 0.5), _acc(100, 1.0)])]
    curves = learning_curves(runs)
    assert list(curves.columns) == CURVE_COLUMNS
    assert CURVE_COLUMNS.index("mean") == CURVE_COLUMNS.index("median") - 1
    at_100 = _rows(curves, "val_acc").loc[100]
    assert at_100["n_runs"] == 3
    assert at_100["mean"] == pytest.approx((0.6 + 0.7 + 1.0) / 3)
    assert at_100["median"] == pytest.approx(0.7)
    assert (at_100["min"], at_100["max"]) == (0.6, 1.0)
    assert _rows(curves, "train_acc").loc[0, "mean"] == 0.5


def test_regime_losses_and_energy_are_curves_where_logged():
    assert {"train/ce_signal", "train/ce_noise", "train/signal_loss", "train/noise_loss", "energy"} <= set(METRICS)
    losses = {"train/ce_signal": 0.4, "train/ce_noise": 0.69, "train/signal_loss": 0.1, "train/noise_loss": 0.5}
    md = [_run(s, [_acc(0, 0.5), _acc(100, 0.8, **{m: v + s for m, v in losses.items()}, energy=0.1 * s)])
          for s in (0, 1)]
    os_ = [_run(s, [_acc(0, 0.5), _acc(100, 0.7)], objective="os") for s in (0, 1)]
    curves = learning_curves(md + os_)
    for metric, value in losses.items():
        rows = _rows(curves, metric)
        # no run logs the regime losses at step 0: no row there, not an empty one
        assert list(rows.index) == [100]
        assert rows.loc[100, "mean"] == pytest.approx(value + 0.5) and rows.loc[100, "n_runs"] == 2
    assert _rows(curves, "energy").loc[100, "mean"] == pytest.approx(0.05)
    # OS runs log none of them: their condition has accuracy curves only
    assert set(curves.loc[curves["objective"] == "os", "metric"]) == {"train_acc", "val_acc"}


def test_a_metric_no_run_of_a_condition_logs_is_skipped():
    # energy in one condition only (it used to raise: nothing to concatenate in the other)
    mlp = _run(0, [_acc(0, 0.5, energy=0.1), _acc(100, 0.9, energy=0.2)], model="mlp")
    transformer = _run(0, [_acc(0, 0.5), _acc(100, 0.9)])
    curves = learning_curves([mlp, transformer])
    energy = curves[curves["metric"] == "energy"]
    assert set(energy["model"]) == {"mlp"} and len(energy) == 2
    assert set(curves.loc[curves["model"] == "transformer", "metric"]) == {"train_acc", "val_acc"}


def test_a_metric_some_seeds_log_counts_those_seeds():
    runs = [_run(0, [_acc(0, 0.5, energy=0.2), _acc(100, 0.9, energy=0.4)]), _run(1, [_acc(0, 0.5), _acc(100, 0.7)])]
    rows = _rows(learning_curves(runs), "energy")
    assert rows["n_runs"].tolist() == [1, 1] and rows["mean"].tolist() == [0.2, 0.4]
    assert _rows(learning_curves(runs), "val_acc").loc[100, "mean"] == pytest.approx(0.8)


def test_early_stopped_runs_carry_their_last_values_in_the_mean():
    stopped = _run(0, [_acc(0, 0.5, energy=0.1), _acc(100, 1.0, energy=0.3)], status="early_stop")
    longer = _run(1, [_acc(0, 0.5, energy=0.1), _acc(100, 0.8, energy=0.2), _acc(200, 0.9, energy=0.5)])
    ended = _run(2, [_acc(0, 0.5, energy=0.1), _acc(100, 0.6, energy=0.2)])  # stopped otherwise: simply ends
    curves = learning_curves([stopped, longer, ended])
    at_200 = _rows(curves, "val_acc").loc[200]
    assert (at_200["n_runs"], at_200["n_carried"]) == (2, 1)
    assert at_200["mean"] == pytest.approx((1.0 + 0.9) / 2)
    assert _rows(curves, "energy").loc[200, "mean"] == pytest.approx((0.3 + 0.5) / 2)
    assert _rows(curves, "val_acc").loc[100, "n_carried"] == 0


def test_carried_counts_only_seeds_with_a_value():
    # the early-stopped run's last record lacks energy: nothing of it is carried for energy
    stopped = _run(0, [_acc(0, 0.5, energy=0.1), _acc(100, 1.0)], status="early_stop")
    longer = _run(1, [_acc(0, 0.5, energy=0.1), _acc(100, 0.8, energy=0.2), _acc(200, 0.9, energy=0.5)])
    curves = learning_curves([stopped, longer])
    energy_200 = _rows(curves, "energy").loc[200]
    assert (energy_200["n_runs"], energy_200["n_carried"]) == (1, 0)
    assert _rows(curves, "val_acc").loc[200, "n_carried"] == 1
