"""Durability runner: the CSV lists every finished run of every stage, with
the device each one trained on; the aggregator's gap-to-uniform summary."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from experiments.lm import summarize as S
from mdtheory.plots.style import MissingData
from mdtheory.runfiles import read_json_object, write_config
from test_lm_sweep import micro  # noqa: F401 - the tiny preset on a tiny corpus


def _rows(results):
    return list(csv.DictReader((results / "durability.csv").open()))


@pytest.fixture
def durability(micro, monkeypatch, tmp_path):  # noqa: F811
    from experiments.lm import durability as D

    results = tmp_path / "lm"
    results.mkdir()
    (results / "window_sweep_summary.json").write_text(json.dumps({"best_window": {"t0": 0.3, "t1": 0.4}}))
    (results / "predicted_t.json").write_text(json.dumps({"t_star": 0.46}))
    monkeypatch.setitem(D.PRESETS, "quick", micro)
    monkeypatch.setattr(D, "STAGES", {"x4": dict(steps=2, eval_every=2), "wide-x4": dict(steps=2, n_embd=64)})
    return D, results


def test_separate_calls_keep_each_others_rows_and_name_the_device(durability, capsys):
    D, results = durability
    assert D.main(["--results", str(results), "--stages", "x4", "--seeds", "0", "1", "--no-progress"]) == 0
    assert {(r["stage"], r["seed"]) for r in _rows(results)} == {("x4", "0"), ("x4", "1")}
    # a later call for another stage and one seed still lists x4 and seed 1
    assert D.main(["--results", str(results), "--stages", "wide-x4", "--seeds", "0", "--no-progress"]) == 0
    rows = _rows(results)
    assert len(rows) == 4 * 2 + 4
    assert {(r["stage"], r["seed"]) for r in rows} == {("x4", "0"), ("x4", "1"), ("wide-x4", "0")}
    assert {r["device"] for r in rows} == {"cpu"}
    assert "4/4 runs finished; 12 run(s) of all stages" in capsys.readouterr().out

    # a run trained on a card (copied in from a GPU machine) is named by its card
    run_dir = results / "durability" / "runs" / "x4" / "uniform_s1"
    config = read_json_object(run_dir / "config.json")
    config["provenance"].update(device="cuda", accelerator="NVIDIA H100 80GB HBM3")
    (run_dir / "config.json").write_text(json.dumps(config))
    missing = results / "durability" / "runs" / "wide-x4" / "uniform_s0"
    shutil.rmtree(missing)
    assert D.main(["--results", str(results), "--collect-only"]) == 0
    assert "11 finished run(s)" in capsys.readouterr().out and not missing.exists()  # nothing trained
    devices = {r["run"]: r["device"] for r in _rows(results) if r["stage"] == "x4"}
    assert devices["uniform_s1"] == "NVIDIA H100 80GB HBM3" and devices["uniform_s0"] == "cpu"


SAMPLERS = {"uniform": ("uniform", 0.0, 1.0), "window:0.3,0.4": ("window", 0.3, 0.4),
            "window:0.411,0.511": ("predicted", 0.411, 0.511), "adaptive": ("adaptive", float("nan"), float("nan"))}
OFFSET = {"uniform": 0.0, "window:0.3,0.4": -0.2, "window:0.411,0.511": -0.1, "adaptive": 0.05}


def _run(sampler, seed, loss, steps, **extra):
    kind, t0, t1 = SAMPLERS.get(sampler, ("window", 0.8, 0.9))
    return {"kind": kind, "objective": "md", "sampler": sampler, "t0": t0, "t1": t1, "seed": seed, "steps": steps,
            "tokens": steps * 2048, "full_range_test_loss": loss, "full_range_test_loss_se": 0.01,
            "full_range_val_loss": loss + 0.5, "full_range_val_loss_se": 0.01, **extra}


MODEL = {"tokenizer_vocab_size": 11, "block_size": 8, "n_layer": 1, "n_head": 1, "n_embd": 8}
STAGES = (("x4", 4000, (0, 1), "NVIDIA H100 80GB HBM3"), ("x16", 16000, (0,), "cpu"))
WIDE = ("wide-x4", 4000, (0, 1), "cpu")


def write_quick_sweep(lm_dir, device="cpu"):
    """A quick sweep of the four durability samplers and one more window,
    seeds 0-2, with run records that name ``device`` and the model."""
    lm_dir.mkdir(parents=True, exist_ok=True)
    sweep = [_run(s, seed, 3 + OFFSET[s] + 0.01 * seed, 1000, preset="quick", run=f"{s}_s{seed}")
             for seed in (0, 1, 2) for s in OFFSET]
    sweep.append(_run("window:0.8,0.9", 0, 3.5, 1000, preset="quick", run="w0.8_s0"))
    for row in sweep:
        write_config(lm_dir / "runs" / "quick" / row["run"], {**MODEL, "seed": row["seed"]}, {"steps": 1000}, 1,
                     {"device": device})
        (lm_dir / "runs" / "quick" / row["run"] / "metrics.jsonl").write_text("")
    pd.DataFrame(sweep).to_csv(lm_dir / "window_sweep.csv", index=False)


def write_durability_csv(lm_dir, stages=STAGES, base_params=1000):
    """durability.csv: test loss = 3 + the sampler's offset + 0.01 * seed
    (the uniform run of seed 1 at x4: +0.1 more), val = test + 0.5; a
    wide stage has 4x the parameters and gaps 0.1 larger."""
    runs = []
    for stage, steps, seeds, device in stages:
        wide = stage.startswith("wide")
        for seed in seeds:
            for s in OFFSET:
                loss = 3 + OFFSET[s] * (1.5 if wide else 1) + 0.01 * seed \
                    + (0.1 if (stage, s, seed) == ("x4", "uniform", 1) else 0)
                runs.append({"stage": stage, "run": f"{s}_s{seed}", "n_params": base_params * (4 if wide else 1),
                             "device": device, **_run(s, seed, loss, steps)})
    pd.DataFrame(runs).to_csv(lm_dir / "durability.csv", index=False)


def write_durability_fixture(lm_dir, stages=STAGES):
    """A quick sweep and durability runs: x4 with seeds 0 and 1 on a card,
    x16 with seed 0 only on the CPU, wide-x4 not run (unless ``stages`` says)."""
    write_quick_sweep(lm_dir)
    write_durability_csv(lm_dir, stages, base_params=S.folder_n_params(lm_dir / "runs" / "quick" / "uniform_s0"))


def _summary(lm_dir):
    assert S.main(["--results", str(lm_dir)]) == 0
    return pd.read_csv(lm_dir / "durability_summary.csv", keep_default_na=False, na_values=[""])


def test_durability_summary_gaps_are_paired_by_seed_within_each_stage(tmp_path):
    from scipy import stats

    lm_dir = tmp_path / "lm"
    write_durability_fixture(lm_dir)
    table = _summary(lm_dir).set_index(["stage", "sampler"])
    assert list(dict.fromkeys(table.index.get_level_values(0))) == ["x1", "x4", "x16"]  # wide-x4 not run
    assert ("x1", "window:0.8,0.9") not in table.index  # not a durability sampler
    x1 = table.loc[("x1", "window:0.3,0.4")]
    assert x1["seeds"] == "0;1;2" and x1["steps"] == 1000 and x1["tokens"] == 2048000 and x1["device"] == "cpu"
    assert x1["n_params"] == table.loc[("x4", "uniform"), "n_params"] > 0  # the sweep's model, from its record
    assert x1["gap_test_mean"] == pytest.approx(-0.2) and x1["gap_test_ci_high"] == pytest.approx(-0.2)
    # x4, seed 1's uniform run is 0.1 worse: gaps -0.2 and -0.3, interval over 2 seeds
    x4 = table.loc[("x4", "window:0.3,0.4")]
    assert x4["gap_test_per_seed"] == "0:-0.200000;1:-0.300000"
    half = stats.t.ppf(0.975, 1) * 0.05  # t_{0.975,1} * sd / sqrt(2), sd = 0.05 sqrt(2)
    assert x4["gap_test_mean"] == pytest.approx(-0.25)
    assert (x4["gap_test_ci_low"], x4["gap_test_ci_high"]) == pytest.approx((-0.25 - half, -0.25 + half))
    assert x4["gap_val_mean"] == pytest.approx(-0.25) and x4["device"] == "NVIDIA H100 80GB HBM3"
    assert x4["test_loss_mean"] == pytest.approx(2.805) and x4["val_loss_mean"] == pytest.approx(3.305)
    # one seed: a mean, no interval
    x16 = table.loc[("x16", "adaptive")]
    assert x16["gap_test_mean"] == pytest.approx(0.05) and pd.isna(x16["gap_test_ci_low"])
    assert x16["device"] == "cpu" and x16["tokens"] == 16000 * 2048
    assert table.loc[("x4", "uniform"), "gap_test_mean"] == pytest.approx(0.0)


def test_durability_summary_absent_or_partial(tmp_path):
    lm_dir = tmp_path / "lm"
    write_durability_fixture(lm_dir)
    (lm_dir / "durability.csv").unlink()
    assert S.main(["--results", str(lm_dir)]) == 0
    assert not (lm_dir / "durability_summary.csv").exists()
    # a stage without its U[0, 1] runs: losses, no gap
    write_durability_fixture(lm_dir)
    runs = pd.read_csv(lm_dir / "durability.csv")
    runs[~((runs["stage"] == "x16") & (runs["sampler"] == "uniform"))].to_csv(lm_dir / "durability.csv", index=False)
    table = _summary(lm_dir).set_index(["stage", "sampler"])
    assert pd.isna(table.loc[("x16", "adaptive"), "gap_test_mean"])
    assert table.loc[("x16", "adaptive"), "test_loss_mean"] == pytest.approx(3.05)


# --- figures -------------------------------------------------------------------

def write_adaptive_run(runs_dir, name, seed, masses, rule="signal"):
    """An adaptive-sampler run whose evaluations (every 100 steps) log ``masses``."""
    spec = "adaptive" if rule == "signal" else f"adaptive:rule={rule}"
    law = {"kind": "adaptive", "rule": rule, "bins": len(masses[0]), "eps": 0.001}
    write_config(runs_dir / name, {**MODEL, "objective": "md", "sampler": spec, "sampler_law": law, "seed": seed},
                 {"steps": 100 * (len(masses) - 1)}, 1, {"device": "cpu"})
    (runs_dir / name / "metrics.jsonl").write_text("".join(
        json.dumps({"step": 100 * i, "full_range_test_loss": 3.0, "full_range_test_loss_se": 0.01,
                    "sampler_mass": list(mass)}) + "\n" for i, mass in enumerate(masses)))


FLAT, LOW, HIGH = [0.25] * 4, [0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]


@pytest.fixture
def lm_results(tmp_path):
    """results/: a quick sweep with durability runs of every stage (x4 on a
    card) and adaptive runs; a second corpus swept on its own."""
    results = tmp_path / "results"
    lm_dir = results / "lm"
    write_durability_fixture(lm_dir, STAGES + (WIDE,))
    (lm_dir / "predicted_t.json").write_text(json.dumps({"t_star": 0.46}))
    write_adaptive_run(lm_dir / "runs" / "quick", "adaptive_s0", 0, [FLAT, LOW, HIGH])
    write_adaptive_run(lm_dir / "runs" / "quick", "adaptive_s1", 1, [FLAT, FLAT])  # seed 1: not drawn
    write_adaptive_run(lm_dir / "durability" / "runs" / "x16", "adaptive_s0", 0, [FLAT, HIGH, HIGH, HIGH])
    assert S.main(["--results", str(lm_dir)]) == 0
    second = lm_dir / "second"
    write_quick_sweep(second)
    sweep = pd.read_csv(second / "window_sweep.csv")
    sweep.loc[sweep["sampler"] == "adaptive", "full_range_test_loss"] += 0.5
    sweep.to_csv(second / "window_sweep.csv", index=False)
    (second / "predicted_t.json").write_text(json.dumps({"t_star": 0.41}))
    (second / "window_sweep.json").write_text(json.dumps({"preset": {"corpus": "shakespeare",
                                                                     "text_file": "/data/second_corpus.txt"}}))
    write_adaptive_run(second / "runs" / "quick", "adaptive-rule-loss_importance_s0", 0, [FLAT, LOW],
                       rule="loss_importance")
    assert S.main(["--results", str(second)]) == 0
    return results


def test_durability_figure_reads_the_aggregators_gaps(lm_results):
    from mdtheory.plots import lm

    table = lm.durability_table(lm_results).set_index(["stage", "sampler"])
    assert table.loc[("x4", "window:0.3,0.4"), "seed_gaps"] == pytest.approx({0: -0.2, 1: -0.3})
    assert table.loc[("wide-x4", "window:0.3,0.4"), "seed_gaps"] == pytest.approx({0: -0.3, 1: -0.3})
    assert table["wide"].groupby("stage").all().to_dict() == {"wide-x4": True, "x1": False, "x4": False,
                                                               "x16": False}
    labels = lm.stage_labels(table.reset_index())
    assert labels == {"x1": "x1: CPU", "x4": "x4: H100", "x16": "x16: CPU", "wide-x4": "wide-x4: CPU"}
    ax = lm.durability(lm_results).axes[0]
    lines = {c.get_label(): c.lines[0] for c in ax.containers if not c.get_label().startswith("_")}
    window = lines["$U[0.3,0.4]$ (chosen on val)"]
    # base width only, by tokens: x1 (2.0M), x4 (8.2M), x16 (32.8M)
    assert window.get_ydata() == pytest.approx([-0.2, -0.25, -0.2])
    ratio = np.asarray(window.get_xdata()) / np.array([2048000, 8192000, 32768000])
    assert ratio == pytest.approx(np.full(3, ratio[0]))
    assert lines["adaptive"].get_ydata() == pytest.approx([0.05, 0.0, 0.05])  # x4: +0.05 and -0.05
    texts = {t.get_text() for t in ax.texts}
    assert {"x4: H100", "wide-x4: CPU"} <= texts


def test_durability_figure_names_no_device_when_all_ran_on_one(lm_results):
    from mdtheory.plots import lm

    path = lm_results / "lm" / "durability_summary.csv"
    table = pd.read_csv(path)
    table.assign(device="cpu").to_csv(path, index=False)
    assert set(lm.stage_labels(lm.durability_table(lm_results)).values()) == {"x1", "x4", "x16", "wide-x4"}
    path.unlink()
    with pytest.raises(MissingData):
        lm.durability(lm_results)


def test_adaptive_mass_panels_are_the_logged_mass_with_t_star_and_the_chosen_window(lm_results):
    from mdtheory.plots import lm

    panels = lm.adaptive_mass_panels(lm_results)
    assert [p["title"] for p in panels] == ["lm: signal (seed 0)", "second_corpus: loss_importance (seed 0)",
                                            "lm, x16: signal (seed 0)"]
    first = panels[0]
    assert first["steps"].tolist() == [0, 100, 200]
    assert first["density"] == pytest.approx(4 * np.array([FLAT, LOW, HIGH]))  # mass x bins: 1 is uniform
    assert first["edges"] == pytest.approx([0.001, 0.25075, 0.5005, 0.75025, 1.0])
    assert first["t_star"] == 0.46 and first["best_window"] == pytest.approx((0.3, 0.4))
    assert panels[1]["t_star"] == 0.41 and panels[2]["t_star"] == 0.46
    fig = lm.adaptive_mass(lm_results)
    ax = fig.axes[0]
    assert [line.get_ydata()[0] for line in ax.get_lines()] == pytest.approx([0.46, 0.3, 0.4])


def test_window_sweep_has_one_panel_per_corpus(lm_results):
    from mdtheory.plots import lm

    fig = lm.window_sweep(lm_results)
    first, second = fig.axes[:2]
    assert (first.get_title(), second.get_title()) == ("lm", "second_corpus")

    def levels(ax):
        return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}

    # the adaptive sampler's level and t*, per corpus (the second's adaptive runs are 0.5 worse)
    assert levels(first)["adaptive"].get_ydata()[0] == pytest.approx(3.06)
    assert levels(second)["adaptive"].get_ydata()[0] == pytest.approx(3.56)
    assert levels(second)["corpus-predicted $t^*$"].get_xdata()[0] == pytest.approx(0.41)
    assert levels(first)["corpus-predicted $t^*$"].get_xdata()[0] == pytest.approx(0.46)
