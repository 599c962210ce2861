"""LM figures: the best window is the one chosen on val; bad inputs are a
skip (absent/empty) or one line with exit 2 (corrupt), never a traceback."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from mdtheory.errors import UserError
from mdtheory.plots import lm
from mdtheory.plots.style import MissingData
from test_plots import results, summarize_lm  # noqa: F401 - the synthetic results fixture


def _plots(results_dir, out, *only):
    return subprocess.run([sys.executable, "-m", "mdtheory.plots", "--results", str(results_dir),
                           "--out", str(out), "--only", *only], capture_output=True, text=True, timeout=300)


def test_window_sweep_marks_the_window_chosen_on_val(results):  # noqa: F811
    path = results / "lm" / "window_sweep.csv"
    sweep = pd.read_csv(path)
    sweep["full_range_val_loss"] = 5.0
    sweep.loc[(sweep.t0 == 0.7) & (sweep.t1 == 0.8), "full_range_val_loss"] = 4.0  # not best on test
    sweep.to_csv(path, index=False)
    summarize_lm(results)
    fig = lm.window_sweep(results)
    ax = fig.axes[0]
    marker = [line for line in ax.get_lines() if line.get_label().startswith("best window on val")]
    assert len(marker) == 1
    assert marker[0].get_xdata()[0] == pytest.approx(0.75)
    test_mean = sweep[(sweep.t0 == 0.7) & (sweep.t1 == 0.8)]["full_range_test_loss"].mean()
    assert marker[0].get_ydata()[0] == pytest.approx(test_mean)


@pytest.mark.parametrize("content", ["", "kind,objective,t0,t1,loss_mean,err\n"])
def test_empty_sweep_summary_is_skipped(results, tmp_path, content):  # noqa: F811
    (results / "lm" / "window_sweep_by_window.csv").write_text(content)
    with pytest.raises(MissingData):
        lm.window_sweep(results)
    proc = _plots(results, tmp_path / "f", "lm_window_sweep")
    assert proc.returncode == 0 and "skipped" in proc.stdout and proc.stderr == ""


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[1, 2]", b'{"t_star": "high"}'])
def test_corrupt_predicted_t_is_one_line_exit_2(results, tmp_path, content):  # noqa: F811
    (results / "lm" / "predicted_t.json").write_bytes(content)
    with pytest.raises(UserError, match="predicted_t.json"):
        lm.predicted_t_star(results)
    proc = _plots(results, tmp_path / "f", "lm_window_sweep")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "predicted_t.json" in proc.stderr


def test_corrupt_run_config_is_one_line_exit_2(results, tmp_path):  # noqa: F811
    run = next((results / "lm" / "runs" / "quick").glob("*/config.json"))
    run.write_text("{not json")
    with pytest.raises(UserError, match="config.json"):
        lm.load_lm_runs(results)
    proc = _plots(results, tmp_path / "f", "lm_loss_vs_step")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_adaptive_sampler_is_drawn_as_a_level_not_a_window(results):  # noqa: F811
    path = results / "lm" / "window_sweep.csv"
    sweep = pd.read_csv(path)
    uniform = sweep[sweep["kind"] == "uniform"].copy()
    adaptive = uniform.assign(kind="adaptive", t0=float("nan"), t1=float("nan"), midpoint=float("nan"),
                              sampler="adaptive", full_range_test_loss=uniform["full_range_test_loss"] - 0.1)
    pd.concat([sweep.assign(sampler=""), adaptive]).to_csv(path, index=False)
    summarize_lm(results)
    ax = lm.window_sweep(results).axes[0]
    level = [line for line in ax.get_lines() if line.get_label() == "adaptive"]
    assert len(level) == 1 and level[0].get_ydata()[0] == pytest.approx(adaptive["full_range_test_loss"].mean())
