"""LM figures (experiments/lm/figures.py): the best window is the one chosen
on val; bad inputs are a skip (absent/empty) or one line with exit 2
(corrupt), never a traceback."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from experiments.lm import figures as lm
from mdtheory.errors import UserError
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


def test_corrupt_sweep_curves_are_one_line_exit_2(results, tmp_path):  # noqa: F811
    # the figure reads the sweep's curves, not the run records: a damaged record does not stop it
    next((results / "lm" / "runs" / "quick").glob("*/config.json")).write_text("{not json")
    lm.loss_vs_step(results)
    (results / "lm" / "window_sweep_curves.csv").write_bytes(b'"run,step\n\xff"x\n')
    with pytest.raises(UserError, match="window_sweep_curves.csv"):
        lm.sweep_curves(results)
    proc = _plots(results, tmp_path / "f", "lm_loss_vs_step")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_law_without_a_window_is_drawn_as_a_level(results):  # noqa: F811
    path = results / "lm" / "window_sweep.csv"
    sweep = pd.read_csv(path)
    uniform = sweep[sweep["kind"] == "uniform"].copy()
    smooth = uniform.assign(kind="smooth", t0=float("nan"), t1=float("nan"), midpoint=float("nan"),
                            sampler="predicted:law=beta",
                            full_range_test_loss=uniform["full_range_test_loss"] - 0.1)
    pd.concat([sweep.assign(sampler=""), smooth]).to_csv(path, index=False)
    summarize_lm(results)
    fig = lm.window_sweep(results)
    ax = fig.axes[0]
    level = [line for line in ax.get_lines() if line.get_label() == "predicted:law=beta"]
    assert len(level) == 1 and level[0].get_ydata()[0] == pytest.approx(smooth["full_range_test_loss"].mean())
    assert level[0].get_ydata()[0] == level[0].get_ydata()[1] and level[0].get_linestyle() == "-."  # a level
    assert not any("nan" in label for label in ax.get_legend_handles_labels()[1])
    assert "predicted:law=beta" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_the_window_centred_on_t_star_is_marked_and_each_smooth_law_is_a_level(results):  # noqa: F811
    """The sweep's own laws around t*: the width-0.1 window centred on it (a
    marked point at its midpoint) and the four smooth laws (a level each,
    named by its --sampler spec, in the same colour in every panel)."""
    from experiments.lm.presets import SMOOTH_LAWS

    path = results / "lm" / "window_sweep.csv"
    sweep = pd.read_csv(path).assign(sampler="")
    uniform = sweep[sweep["kind"] == "uniform"]
    laws = [uniform.assign(kind="predicted", t0=0.41, t1=0.51, midpoint=0.46, sampler="window:0.41,0.51",
                           full_range_test_loss=3.5)]
    laws += [uniform.assign(kind="smooth", t0=float("nan"), t1=float("nan"), midpoint=float("nan"), sampler=spec,
                            full_range_test_loss=3.7 - 0.01 * i) for i, spec in enumerate(SMOOTH_LAWS)]
    pd.concat([sweep, *laws]).to_csv(path, index=False)
    summarize_lm(results)
    ax = lm.window_sweep(results).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    levels = {spec: lines[spec] for spec in SMOOTH_LAWS}
    assert [line.get_ydata()[0] for line in levels.values()] == pytest.approx([3.7, 3.69, 3.68, 3.67])
    assert len({line.get_color() for line in levels.values()}) == 4
    assert [lm.law_colour(spec, []) for spec in SMOOTH_LAWS] == [line.get_color() for line in levels.values()]
    centred = [c for c in ax.containers if c.get_label() == "width-0.1 window centred on $t^*$"]
    assert len(centred) == 1
    assert list(centred[0].lines[0].get_xdata()) == pytest.approx([0.46])
    assert list(centred[0].lines[0].get_ydata()) == pytest.approx([3.5])


def test_durability_summary_names_each_stages_tokenizer_and_the_figure_reads_it(results, monkeypatch):  # noqa: F811
    """durability_summary.csv's tokenizer column: durability.csv's where it has
    one, else the stage's definition in experiments.lm.durability (x1: the
    sweep's preset); the figure marks BPE stages by it alone."""
    import sys

    lm_dir = results / "lm"
    sweep = pd.read_csv(lm_dir / "window_sweep.csv")  # its runs of the durability laws are stage x1
    sweep.assign(preset="quick", sampler=["uniform" if kind == "uniform" else f"window:{a:g},{b:g}"
                                          for kind, a, b in zip(sweep["kind"], sweep["t0"], sweep["t1"])]) \
        .to_csv(lm_dir / "window_sweep.csv", index=False)
    summarize_lm(results)
    summary = pd.read_csv(lm_dir / "durability_summary.csv")
    assert set(summary["tokenizer"]) == {"char"} and set(summary["stage"]) == {"x1", "x4", "x16"}
    # a bpe stage without a tokenizer column in durability.csv: the stage's definition
    runs = pd.read_csv(lm_dir / "durability.csv")
    pd.concat([runs, runs[runs["stage"] == "x4"].assign(stage="bpe")]).to_csv(lm_dir / "durability.csv", index=False)
    summarize_lm(results)
    summary = pd.read_csv(lm_dir / "durability_summary.csv")
    assert summary.groupby("stage")["tokenizer"].agg(set).to_dict() == \
        {"x1": {"char"}, "x4": {"char"}, "x16": {"char"}, "bpe": {"bpe"}}
    # durability.csv's own column decides where it has one
    runs = pd.read_csv(lm_dir / "durability.csv")
    runs.assign(tokenizer=["bpe" if stage == "x16" else "char" for stage in runs["stage"]]) \
        .to_csv(lm_dir / "durability.csv", index=False)
    summarize_lm(results)
    summary = pd.read_csv(lm_dir / "durability_summary.csv")
    assert summary.groupby("stage")["tokenizer"].agg(set).to_dict() == \
        {"x1": {"char"}, "x4": {"char"}, "x16": {"bpe"}, "bpe": {"char"}}
    # the figure needs no stage definitions: it cannot import them here
    monkeypatch.setitem(sys.modules, "experiments.lm.durability", None)
    table = lm.durability_table(results)
    assert set(table.loc[table["bpe"], "stage"]) == {"x16"}
    lm.durability(results)
    # a summary written before the column: rerun the aggregator
    summary.drop(columns="tokenizer").to_csv(lm_dir / "durability_summary.csv", index=False)
    with pytest.raises(MissingData, match="tokenizer"):
        lm.durability_table(results)
