"""Figures: each draws from a small synthetic results tree (test fixtures
only) of aggregator outputs, never from run folders, is skipped with a
message when its inputs are missing, and the CLI keeps its exit-code
contract. The studies' figures are found through mdtheory.plots.registry."""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.lm import figures as lm
from experiments.parity import figures as parity
from mdtheory.errors import UserError
from mdtheory.plots import registry, theory
from mdtheory.plots.__main__ import ALL_FIGURES, draw_all
from mdtheory.plots.style import MissingData, apply_style, save_figure
from mdtheory.runfiles import write_config
from test_lm_durability import write_durability_csv
from test_parity_phase import write_phase_root

STEPS = list(range(0, 1001, 100))


def _write_run(root: Path, name: str, task: dict, records: list[dict], train: dict | None = None) -> None:
    """A run folder as the engine writes it (config through the run record's writer)."""
    run = root / name
    run.mkdir(parents=True)
    write_config(run, task, {"steps": records[-1]["step"], **(train or {})}, 1, {})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _parity_records(reach_at: int | None, rng, energy=False) -> list[dict]:
    """Accuracy curves that reach 0.99 at ``reach_at`` (None: never)."""
    out = []
    for s in STEPS:
        acc = 1.0 if reach_at is not None and s >= reach_at else 0.5 + 0.4 * s / 1000
        rec = {"step": s, "loss": 1.0 / (1 + s), "train_acc": acc, "val_acc": acc,
               "train/signal_loss": 0.2 / (1 + s / 200), "train/noise_loss": 0.5,
               "train/ce_signal": 0.7 / (1 + s / 200), "train/ce_noise": 0.69 + 0.001 * rng.normal(),
               "train/p_signal": 0.3, "train/signal_frac": 0.2}
        if energy:
            rec["energy"] = 0.1 + s / 1000
        out.append(rec)
    return out


def parity_task(objective: str, seed: int, window=None, **extra) -> dict:
    task = {"objective": objective, "model": "transformer", "n": 10, "k": 3, "train_size": 500, "seed": seed,
            "n_embd": 64, "loss_weighting": "inverse_t", "normalization": "tokens", **extra}
    if window is not None:
        task["sampler"] = f"window:{window[0]},{window[1]}"
    return task


def summarize_lm(results: Path) -> None:
    from experiments.lm.summarize import main
    assert main(["--results", str(results / "lm")]) == 0


def lm_records(loss: float, **extra) -> list[dict]:
    return [{"step": s, "full_range_test_loss": loss + 2 / (1 + s), "full_range_test_loss_se": 0.01, **extra,
             **{f"full_range_bin/{b + 0.05:.4f}": loss + b for b in np.arange(0, 1, 0.1)}}
            for s in range(0, 51, 10)]


def write_lm_curves(lm_dir: Path, runs: list[dict]) -> None:
    """What the sweep writes beside window_sweep.csv from its runs ({run, kind,
    objective, sampler, t0, t1, seed, records}): window_sweep_curves.csv (one
    row per evaluation) and window_sweep_loss_by_t.csv (the loss per t-bin of
    the last evaluation)."""
    keys = ("run", "kind", "objective", "sampler", "t0", "t1", "seed")
    curves = [{**{k: run[k] for k in keys}, "step": r["step"], "full_range_test_loss": r.get("full_range_test_loss"),
               "nll_test": r.get("nll_test")} for run in runs for r in run["records"]]
    bins = [{**{k: run[k] for k in keys}, "t": float(key.split("/")[1]), "loss": value}
            for run in runs for key, value in run["records"][-1].items() if key.startswith("full_range_bin/")]
    pd.DataFrame(curves).to_csv(lm_dir / "window_sweep_curves.csv", index=False)
    pd.DataFrame(bins, columns=[*keys, "t", "loss"]).to_csv(lm_dir / "window_sweep_loss_by_t.csv", index=False)


EXTRA_METRICS = ("train/ce_signal", "train/ce_noise", "train/signal_loss", "train/noise_loss", "energy")


@pytest.fixture
def results(tmp_path):
    from experiments.parity.summarize import summarize_root

    rng = np.random.default_rng(0)
    runs = tmp_path / "parity" / "runs"
    for seed in (0, 1):
        for wd in (0.1, 0.0):
            train = {"weight_decay": wd, "lr": 1e-3}
            _write_run(runs, f"os_wd{wd}_s{seed}", parity_task("os", seed), _parity_records(900, rng), train)
            _write_run(runs, f"ar_wd{wd}_s{seed}", parity_task("ar", seed), _parity_records(None, rng), train)
            for t1, reach in ((0.1, 600), (0.2, 300), (0.4, None)):
                _write_run(runs, f"md{t1}_wd{wd}_s{seed}", parity_task("md", seed, (0.0, t1)),
                           _parity_records(reach, rng), train)
    _write_run(runs, "mlp_s0", parity_task("md", 0, (0.0, 0.2), model="mlp"), _parity_records(200, rng, energy=True),
               {"weight_decay": 0.1, "lr": 1e-3})
    summarize_root(tmp_path / "parity")
    paper_mlp = tmp_path / "parity" / "paper_mlp"  # the Fig. 5 setting's own root
    for seed in (0, 1):
        train = {"weight_decay": 0.1, "lr": 1e-3, "batch_size": 5000}
        _write_run(paper_mlp / "runs", f"os_s{seed}", parity_task("os", seed, model="mlp"),
                   _parity_records(900, rng), train)
        _write_run(paper_mlp / "runs", f"md0.2_s{seed}", parity_task("md", seed, (0.0, 0.2), model="mlp"),
                   _parity_records(None, rng), train)
    summarize_root(paper_mlp)
    pd.DataFrame({"run": ["os_s0", "os_s1", "md0.2_s0"], "objective": ["os", "os", "md"], "t0": [None, None, 0.0],
                  "t1": [None, None, 0.2], "seed": [0, 1, 0], "ratio": [2.2, 2.1, 1.0]}).to_csv(
        paper_mlp / "selectivity.csv", index=False)  # as experiments.parity.selectivity writes it
    write_phase_root(tmp_path / "parity" / "phase")  # the (k, N) grid's own root, summarised
    # rho values a plot could not compute itself from these rows: the figure must read them
    tvs = pd.read_csv(tmp_path / "parity" / "theory_vs_speed.csv")
    tvs["spearman_rho_PS_speed"] = tvs["weight_decay"].map({0.0: 0.123, 0.1: -0.456})
    tvs.to_csv(tmp_path / "parity" / "theory_vs_speed.csv", index=False)

    lm_dir = tmp_path / "lm"
    sweep, lm_runs = [], []
    for a in np.round(np.arange(0, 1, 0.1), 1):
        for seed in (0, 1):
            loss = 3.6 + 4 * (a + 0.05 - 0.5) ** 2 + 0.01 * seed
            t1 = round(a + 0.1, 1)
            sweep.append({"kind": "window", "objective": "md", "t0": a, "t1": t1, "seed": seed, "steps": 50,
                          "full_range_test_loss": loss, "full_range_test_loss_se": 0.01,
                          "full_range_val_loss": loss + 0.05})
            # the run records stay for the aggregator (the device, the model's size); no figure reads them
            _write_run(lm_dir / "runs" / "quick", f"w{a}_s{seed}",
                       {"objective": "md", "sampler": f"window:{a},{t1}", "seed": seed}, lm_records(loss))
            lm_runs.append({"run": f"w{a}_s{seed}", "kind": "window", "objective": "md", "sampler": f"window:{a},{t1}",
                            "t0": a, "t1": t1, "seed": seed, "records": lm_records(loss)})
    sweep.append({"kind": "uniform", "objective": "md", "t0": 0.0, "t1": 1.0, "seed": 0, "steps": 50,
                  "full_range_test_loss": 3.9, "full_range_test_loss_se": 0.01, "full_range_val_loss": 3.95})
    pd.DataFrame(sweep).to_csv(lm_dir / "window_sweep.csv", index=False)
    write_lm_curves(lm_dir, lm_runs)
    write_durability_csv(lm_dir)  # summarized into durability_summary.csv below
    summarize_lm(tmp_path)
    (lm_dir / "predicted_t.json").write_text(json.dumps({"weights": {"2": 0.7, "3": 0.3}, "t_star": 0.44}))
    return tmp_path


def _has_theory() -> bool:
    try:
        import mdtheory.theory.numeric  # noqa: F401
    except ImportError:
        return False
    return True


def test_regime_diagram_matches_definition():
    rows = theory.mask_regimes(4, (0, 1))
    assert len(rows) == 32
    signal = [r for r in rows if r[2] == "signal"]
    # exactly one of the 3 elements of S' masked, any of the 2 others: 3 * 4
    assert len(signal) == 12
    for mask, status, regime in rows:
        identifiable = status.count("identifiable")
        assert identifiable == (1 if regime == "signal" else 0)
        assert all((s == "visible") == (m == 0) for m, s in zip(mask, status))
    # P_S(t) from the enumeration equals (k+1) t (1-t)^k at t = 0.3
    t = 0.3
    p = sum(t ** sum(m) * (1 - t) ** (5 - sum(m)) for m, _, r in rows if r == "signal")
    assert p == pytest.approx(3 * t * (1 - t) ** 2)


@pytest.mark.parametrize("name", sorted(set(parity.FIGURES) | set(lm.FIGURES)))
def test_result_figures_draw(results, tmp_path, name):
    apply_style()
    fig = ALL_FIGURES[name](results)
    paths = save_figure(fig, tmp_path / "out", name)
    assert all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:4] == b"%PDF"


@pytest.mark.skipif(not _has_theory(), reason="mdtheory.theory.numeric not present yet")
@pytest.mark.parametrize("name", sorted(theory.FIGURES))
def test_theory_figures_draw(tmp_path, name):
    apply_style()
    paths = save_figure(ALL_FIGURES[name](tmp_path), tmp_path / "out", name)
    assert paths[1].stat().st_size > 1000


def test_regime_diagram_needs_no_results(tmp_path):
    apply_style()
    paths = save_figure(theory.regime_diagram(tmp_path), tmp_path, "regimes")
    assert paths[0].exists()


def test_missing_results_are_skipped_not_drawn(tmp_path):
    for name in sorted(set(parity.FIGURES) | set(lm.FIGURES)):
        with pytest.raises(MissingData):
            ALL_FIGURES[name](tmp_path)
    outcome = draw_all(tmp_path, tmp_path / "figs", verbose=False)
    assert all(o.startswith("skipped") for n, o in outcome.items() if not n.startswith("theory"))
    assert not any(p.name.startswith(("parity", "lm")) for p in (tmp_path / "figs").glob("*"))


def test_seed_band_is_the_aggregators(results):
    curves = parity.curves_table(results)
    (cond, rows), = [(c, r) for c, r in parity.conditions(curves)
                     if c["objective"] == "md" and c["model"] == "transformer" and c["t1"] == 0.2
                     and c["weight_decay"] == 0.1]
    band = parity.band(rows, "val_acc")
    assert (band["lo"] <= band["centre"]).all() and (band["centre"] <= band["hi"]).all()
    assert band["seeds"].max() == 2
    written = rows[rows["metric"] == "val_acc"].sort_values("step")
    assert band["centre"].tolist() == written["mean"].tolist()  # the mean over seeds, as written
    assert band["lo"].tolist() == written["min"].tolist() and band["hi"].tolist() == written["max"].tolist()


def _md_val_line(fig):
    return [line for line in fig.axes[1].get_lines() if line.get_label().startswith("MD $U[0,0.2]$")][0]


def _md_val_written(curves: pd.DataFrame) -> pd.DataFrame:
    return curves[(curves["t1"] == 0.2) & (curves["model"] == "transformer") & (curves["weight_decay"] == 0.1)
                  & (curves["metric"] == "val_acc")].sort_values("step")


def test_the_mean_over_seeds_is_drawn_as_the_aggregator_writes_it(results):
    curves = pd.read_csv(results / "parity" / "curves.csv")
    assert {"mean", "median"} <= set(curves.columns)
    apply_style()
    fig = parity.accuracy(results)
    assert "median" not in fig.legends[0].get_title().get_text()  # the caption says: lines are means
    assert list(_md_val_line(fig).get_ydata()) == pytest.approx(list(_md_val_written(curves)["mean"]))
    # the mean column, not the median (equal here: two seeds with the same accuracies)
    path = results / "parity" / "curves.csv"
    curves.assign(mean=curves["mean"] + 0.001).to_csv(path, index=False)
    fig = parity.accuracy(results)
    assert list(_md_val_line(fig).get_ydata()) == pytest.approx(list(_md_val_written(curves)["mean"] + 0.001))


def test_a_curves_csv_without_a_mean_draws_the_median_and_says_so(results):
    path = results / "parity" / "curves.csv"
    curves = pd.read_csv(path).drop(columns="mean")  # written before the aggregator had the column
    curves.to_csv(path, index=False)
    apply_style()
    fig = parity.accuracy(results)
    assert "median" in fig.legends[0].get_title().get_text()
    assert list(_md_val_line(fig).get_ydata()) == pytest.approx(list(_md_val_written(curves)["median"]))


def test_curves_come_from_the_aggregator(results):
    mlp = [c for c, _ in parity.conditions(parity.curves_table(results)) if c["model"] == "mlp"]
    assert len(mlp) == 1 and mlp[0]["t1"] == 0.2 and mlp[0]["objective"] == "md"
    assert parity.main_setting(results) == (10, 3, 500)  # marked by the aggregator, not guessed here


def test_no_figure_reads_a_run_folder(results, tmp_path):
    """With every run folder gone, each figure draws from the aggregators' files alone."""
    for runs in sorted(results.rglob("runs"), reverse=True):
        shutil.rmtree(runs)
    assert not list(results.rglob("metrics.jsonl")) and not list(results.rglob("config.json"))
    outcome = draw_all(results, tmp_path / "figs", verbose=False)
    assert set(outcome.values()) == {"written"}, outcome


def test_window_table_is_the_aggregators_and_loss_by_t_the_sweeps(results):
    table = lm.window_table(results)
    assert len(table) == 11
    best = table.loc[table["loss"].idxmin()]
    assert best["t0"] == pytest.approx(0.4) and best["best_on_val"]
    assert table[(table["t0"] == 0) & (table["t1"] == 1.0)]["seeds"].item() == 1
    apply_style()
    lines = {c.get_label(): c.lines[0] for c in lm.loss_by_t(results).axes[0].containers}  # no se column: no bars
    assert len(lines) == 10  # one per window, the loss of each t-bin at the last evaluation, over seeds
    first = lines["$U[0,0.1]$"]
    assert list(first.get_xdata()) == pytest.approx(np.arange(0.05, 1, 0.1))
    assert first.get_ydata()[0] == pytest.approx(3.6 + 4 * 0.45 ** 2 + 0.005)  # mean of seeds 0, 1 in bin 0
    (results / "lm" / "window_sweep_loss_by_t.csv").unlink()
    with pytest.raises(MissingData, match="window_sweep_loss_by_t.csv"):
        lm.loss_by_t(results)


def test_cli_contract(results, tmp_path):
    cmd = [sys.executable, "-m", "mdtheory.plots"]
    bad = subprocess.run(cmd + ["--results", str(tmp_path / "nope")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1
    bad = subprocess.run(cmd + ["--results", str(results), "--only", "nofig"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    ok = subprocess.run(cmd + ["--results", str(results), "--out", str(tmp_path / "f"), "--only", "lm_window_sweep"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "f" / "lm_window_sweep.pdf").exists()


def test_regime_metric_prefers_per_token_ce(results):
    metrics = set(parity.curves_table(results)["metric"])
    assert parity.regime_metric(metrics, "signal") == "train/ce_signal"
    assert parity.regime_metric(metrics, "noise") == "train/ce_noise"
    assert parity.regime_metric(metrics - {"train/ce_signal"}, "signal") == "train/signal_loss"
    assert parity.regime_metric({"train_acc", "train/p_signal", "train/signal_frac"}, "signal") is None


def test_the_aggregator_writes_regime_loss_and_energy_curves(results):
    curves = parity.curves_table(results)
    for metric in EXTRA_METRICS:
        assert metric in set(curves["metric"]), metric
    # energy: only the MLP run logs it, so only its condition has energy rows
    assert set(curves.loc[curves["metric"] == "energy", "model"]) == {"mlp"}
    apply_style()
    assert len(parity.signal_noise(results).axes[0].get_lines()) >= 3  # a curve per MD window
    assert len(parity.energy(results).axes[0].get_lines()) == 1


def test_signal_noise_and_energy_wait_for_the_aggregators_curves(results):
    path = results / "parity" / "curves.csv"
    curves = pd.read_csv(path)
    # as summarize wrote curves.csv before it had these metrics
    curves[curves["metric"].isin(["train_acc", "val_acc"])].to_csv(path, index=False)
    for draw in (parity.signal_noise, parity.energy):
        with pytest.raises(MissingData, match="curves.csv"):
            draw(results)


def test_parity_summary_is_read_not_recomputed(results, tmp_path):
    path = results / "parity" / "summary.csv"
    written = pd.read_csv(path)
    pd.testing.assert_frame_equal(parity.summary_table(results), written)
    path.unlink()  # run folders never summarised: the figure says so, it does not summarise them
    with pytest.raises(MissingData, match="experiments.parity.summarize"):
        parity.summary_table(results)


def _legend_rhos(fig) -> dict[str, float]:
    out = {}
    legend = fig.legends[0] if fig.legends else fig.axes[0].get_legend()
    for text in legend.get_texts():
        label = text.get_text()
        if "rho=" in label:
            out[label.split(":")[0]] = float(label.split("rho=")[1].rstrip("$"))
    return out


def test_theory_vs_speed_legend_is_the_csv(results):
    apply_style()
    rhos = _legend_rhos(parity.theory_vs_speed(results))
    # one entry per weight decay, each the CSV's number with its sign
    assert rhos == {"$k=3$, wd=0": 0.12, "$k=3$, wd=0.1": -0.46}


REPO_RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.mark.skipif(not (REPO_RESULTS / "parity" / "theory_vs_speed.csv").exists(),
                    reason="committed parity results absent")
def test_theory_vs_speed_figure_matches_committed_csv():
    apply_style()
    rhos = _legend_rhos(parity.theory_vs_speed(REPO_RESULTS))
    tvs = pd.read_csv(REPO_RESULTS / "parity" / "theory_vs_speed.csv")
    tvs = tvs[(tvs["model"] == "transformer") & tvs["spearman_rho_PS_speed"].notna()]
    expected = {f"$k={r.k}$, wd={r.weight_decay:g}": round(r.spearman_rho_PS_speed, 2) for r in tvs.itertuples()}
    assert expected and rhos == expected


def test_corrupt_parity_curves_are_one_line_exit_2(results, tmp_path):
    # a damaged run record is the aggregator's concern, not the figure's
    (results / "parity" / "runs" / "os_wd0.1_s0" / "config.json").write_text("{not json")
    apply_style()
    parity.accuracy(results)
    (results / "parity" / "curves.csv").write_bytes(b'"step,metric\n\xff"x\n')
    with pytest.raises(UserError, match="curves.csv"):
        parity.curves_table(results)
    cmd = [sys.executable, "-m", "mdtheory.plots", "--results", str(results), "--out", str(tmp_path / "f"),
           "--only", "parity_accuracy"]
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "curves.csv" in bad.stderr


def test_lm_ar_runs_stay_apart_from_uniform(results):
    """The AR run's exact NLL (its own column of the sweep's curves) is not
    averaged into the U[0,1] masked-diffusion curve; a law without a window
    has no window to draw it by."""
    path = results / "lm" / "window_sweep_curves.csv"
    curves = pd.read_csv(path)
    rows = lambda run, objective, kind, sampler, t0, t1, **loss: pd.DataFrame(
        [{"run": run, "kind": kind, "objective": objective, "sampler": sampler, "t0": t0, "t1": t1, "seed": 0,
          "step": s, **loss} for s in range(0, 51, 10)])
    pd.concat([curves, rows("uniform_s0", "md", "uniform", "uniform", 0.0, 1.0, full_range_test_loss=3.0),
               rows("ar_s0", "ar", "ar", "", None, None, nll_test=2.0),
               rows("beta_s0", "md", "smooth", "predicted:law=beta", None, None, full_range_test_loss=1.0)]) \
        .to_csv(path, index=False)
    apply_style()
    fig = lm.loss_vs_step(results)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert np.allclose(lines["$U[0,1]$"].get_ydata(), 3.0)
    assert np.allclose(lines["AR (exact NLL)"].get_ydata(), 2.0)
    assert len(lines) == 12 and not any(np.allclose(line.get_ydata(), 1.0) for line in lines.values())


def test_phase_figures_read_the_aggregators_cells(results):
    apply_style()
    cells = parity.phase_cells(results)
    # OS, MD at the sample-complexity-optimal window and MD U[0,1] at N = 512; the optimal window at 2048
    assert sorted(cells["series"].unique()) == sorted([parity.PHASE_SERIES[("os", "")],
                                                      parity.PHASE_SERIES[("md", "sample-complexity optimal")],
                                                      parity.PHASE_SERIES[("md", "full range")]])
    fig = parity.phase_diagram(results)
    # the success rates drawn are cells.csv's, and the theory's bound of each MD window is a vertical line
    ax = fig.axes[0]
    drawn = sorted(y for line in ax.get_lines() for y in line.get_ydata() if line.get_marker() == "o")
    assert drawn == sorted(cells["success_rate"])
    verticals = sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--")
    md = cells[cells["objective"] == "md"].drop_duplicates("t1")
    assert verticals == pytest.approx(sorted(md["sample_complexity_bound"]))
    # plateau: OS memorised in 2 of 4 seeds, MD U[0,1] in 1 of 4
    plateau = sorted(y for line in parity.phase_plateau(results).axes[0].get_lines()
                     for y in line.get_ydata() if line.get_marker() == "o")
    assert plateau == [0.0, 0.0, 0.25, 0.5]


def test_km_panel_is_where_md_and_os_differ_most(results):
    cells = parity.phase_cells(results)
    # the only N with both MD and OS, then the largest N
    assert parity.km_cell_sizes(cells) == {4: (512, 2048)}
    apply_style()
    fig = parity.phase_km(results)
    ax = fig.axes[0]
    assert "N=512" in ax.get_title() and "p=0.88" in ax.get_title()
    steps = {line.get_label(): list(line.get_xdata()) for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert steps[parity.PHASE_SERIES[("md", "sample-complexity optimal")]] == [0, 400, 500, 600, 1000]
    assert steps[parity.PHASE_SERIES[("os", "")]] == [0, 200, 300, 1000]
    assert "N=2048" in fig.axes[1].get_title()


def test_phase_bound_delta_is_the_aggregators():
    from experiments.parity.summarize import BOUND_DELTA
    assert parity.BOUND_DELTA == BOUND_DELTA


# --- where figures and tables live ------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def test_studies_are_found_through_the_registry():
    assert [m.__name__ for m in registry.study_modules("figures")] == ["experiments.parity.figures",
                                                                         "experiments.lm.figures"]
    assert [m.__name__ for m in registry.study_modules("tables")] == ["experiments.parity.tables",
                                                                        "experiments.lm.tables"]
    # the figure names and their order are those of the CLI before the move (theory, parity, LM)
    assert list(ALL_FIGURES) == [*theory.FIGURES, *parity.FIGURES, *lm.FIGURES]


def test_mdtheory_plots_names_no_study_folder():
    for path in sorted((REPO / "mdtheory" / "plots").glob("*.py")):
        code = path.read_text()
        for name in ("results/lm", "results/parity", "parity/phase", '"lm"', '"parity"', "experiments.parity",
                     "experiments.lm"):
            assert name not in code, f"{path.name} names {name}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def test_figures_and_tables_do_not_import_each_other():
    for study in ("parity", "lm"):
        folder = REPO / "experiments" / study
        figures, tables = _imports(folder / "figures.py"), _imports(folder / "tables.py")
        assert not {m for m in figures if m.endswith((".tables", "paper_tables"))}, study
        assert not {m for m in tables if m.endswith(".figures") or ".plots.theory" in m}, study



def test_selectivity_draws_one_dot_per_run_and_the_median(results):
    apply_style()
    ax = parity.selectivity(results).axes[0]
    dots = [c.get_offsets()[:, 1].tolist() for c in ax.collections if hasattr(c, "get_offsets")
            and len(c.get_offsets()) and c.get_offsets().shape[1] == 2 and type(c).__name__ == "PathCollection"]
    assert sorted(map(sorted, dots)) == [[1.0], [2.1, 2.2]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["output sup.", "MD $U[0,0.2]$"]


def test_selectivity_over_training_is_the_median_the_aggregator_wrote(results):
    path = results / "parity" / "paper_mlp" / "curves.csv"
    curves = pd.read_csv(path)
    extra = curves[curves["metric"] == "val_acc"].assign(metric="secret_selectivity", median=lambda f: 1 + f["step"] / 1000)
    pd.concat([curves, extra]).to_csv(path, index=False)
    apply_style()
    fig = parity.selectivity(results)
    assert len(fig.axes) == 2
    lines = {line.get_label(): line for line in fig.axes[1].get_lines() if not line.get_label().startswith("_")}
    md = extra[extra["objective"] == "md"].sort_values("step")
    assert list(lines) == ["output sup. (2)", "MD $U[0,0.2]$ (2)"]
    assert list(lines["MD $U[0,0.2]$ (2)"].get_ydata()) == pytest.approx(list(md["median"]))
