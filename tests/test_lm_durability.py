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
    assert len(rows) == 3 * 2 + 3  # U[0, 1], the val-chosen window and the window at t*, per seed
    assert {(r["stage"], r["seed"]) for r in rows} == {("x4", "0"), ("x4", "1"), ("wide-x4", "0")}
    assert {r["device"] for r in rows} == {"cpu"}
    assert "3/3 runs finished; 9 run(s) of all stages" in capsys.readouterr().out

    # a run trained on a card (copied in from a GPU machine) is named by its card
    run_dir = results / "durability" / "runs" / "x4" / "uniform_s1"
    config = read_json_object(run_dir / "config.json")
    config["provenance"].update(device="cuda", accelerator="NVIDIA H100 80GB HBM3")
    (run_dir / "config.json").write_text(json.dumps(config))
    missing = results / "durability" / "runs" / "wide-x4" / "uniform_s0"
    shutil.rmtree(missing)
    assert D.main(["--results", str(results), "--collect-only"]) == 0
    assert "8 finished run(s)" in capsys.readouterr().out and not missing.exists()  # nothing trained
    devices = {r["run"]: r["device"] for r in _rows(results) if r["stage"] == "x4"}
    assert devices["uniform_s1"] == "NVIDIA H100 80GB HBM3" and devices["uniform_s0"] == "cpu"


def test_list_only_and_slurm_go_through_the_study_runner(durability, sbatch_scripts, capsys):
    """--list names the run folders and writes nothing; --executor slurm submits
    the runs --only picks as one job array and returns with the CSV of what finished."""
    D, results = durability
    before = sorted(p.name for p in results.iterdir())
    assert D.main(["--results", str(results), "--seeds", "0", "--list", "--only", "uniform"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{results / 'durability' / 'runs' / stage / 'uniform_s0'}  (2 steps)" for stage in ("x4", "wide-x4")]
    assert sorted(p.name for p in results.iterdir()) == before
    with pytest.raises(SystemExit) as info:
        D.main(["--results", str(results), "--only", "nomatch*"])
    assert info.value.code == 2 and "matches" in capsys.readouterr().err
    assert not (results / "durability").exists()

    scripts = sbatch_scripts
    assert D.main(["--results", str(results), "--only", "x4/*", "--executor", "slurm", "--time", "90",
                   "--array-parallelism", "3"]) == 0
    assert len(scripts) == 1 and "#SBATCH --array=0-5%3" in scripts[0] and "#SBATCH --time=90" in scripts[0]
    printed = capsys.readouterr().out
    assert "6 submitted" in printed and "job array 4242" in printed and "0/12 runs finished" in printed
    assert _rows(results) == [] and not any((results / "durability" / "runs" / "x4").iterdir())


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

SMOOTH = "predicted:law=beta"  # a law without a window, in place of the removed adaptive law
BPE = ("bpe", 2500, (0, 1), "cpu", 3_400_000)  # stage, steps, seeds, device, parameters


def _smooth_instead_of_adaptive(path):
    """The rows of the adaptive law (if the runner fixture above still writes
    them) as the smooth law SMOOTH, kind "smooth"."""
    table = pd.read_csv(path)
    adaptive = table["sampler"] == "adaptive"
    table.loc[adaptive, "sampler"] = SMOOTH
    table.loc[adaptive, "kind"] = "smooth"
    table.to_csv(path, index=False)


def add_bpe_stage(lm_dir, stage=BPE):
    """durability.csv rows of a BPE stage: U[0,1], the window centred on t*
    and SMOOTH, gaps -0.05 and -0.04 (its tokens are BPE tokens)."""
    name, steps, seeds, device, n_params = stage
    runs = []
    for seed in seeds:
        for sampler, kind, t0, t1, offset in (("uniform", "uniform", 0.0, 1.0, 0.0),
                                              ("window:0.411,0.511", "predicted", 0.411, 0.511, -0.05),
                                              (SMOOTH, "smooth", float("nan"), float("nan"), -0.04)):
            loss = 5 + offset + 0.01 * seed
            runs.append({"stage": name, "run": f"{kind}_s{seed}", "n_params": n_params, "device": device,
                         "kind": kind, "objective": "md", "sampler": sampler, "t0": t0, "t1": t1, "seed": seed,
                         "steps": steps, "tokens": steps * 2048, "full_range_test_loss": loss,
                         "full_range_test_loss_se": 0.01, "full_range_val_loss": loss + 0.5,
                         "full_range_val_loss_se": 0.01})
    path = lm_dir / "durability.csv"
    pd.concat([pd.read_csv(path), pd.DataFrame(runs)], ignore_index=True).to_csv(path, index=False)


@pytest.fixture
def lm_results(tmp_path):
    """results/: a quick sweep with durability runs of every stage (x4 on a
    card, a BPE stage) and a smooth law; a second corpus swept on its own."""
    results = tmp_path / "results"
    lm_dir = results / "lm"
    write_durability_fixture(lm_dir, STAGES + (WIDE,))
    add_bpe_stage(lm_dir)
    for name in ("window_sweep.csv", "durability.csv"):
        _smooth_instead_of_adaptive(lm_dir / name)
    (lm_dir / "predicted_t.json").write_text(json.dumps({"t_star": 0.46}))
    assert S.main(["--results", str(lm_dir)]) == 0
    second = lm_dir / "second"
    write_quick_sweep(second)
    _smooth_instead_of_adaptive(second / "window_sweep.csv")
    sweep = pd.read_csv(second / "window_sweep.csv")
    sweep.loc[sweep["sampler"] == SMOOTH, "full_range_test_loss"] += 0.5
    sweep.to_csv(second / "window_sweep.csv", index=False)
    (second / "predicted_t.json").write_text(json.dumps({"t_star": 0.41}))
    (second / "window_sweep.json").write_text(json.dumps({"preset": {"corpus": "shakespeare",
                                                                     "text_file": "/data/second_corpus.txt"}}))
    assert S.main(["--results", str(second)]) == 0
    return results


def _containers(ax) -> dict:
    return {c.get_label(): c.lines[0] for c in ax.containers if not c.get_label().startswith("_")}


def test_durability_figure_reads_the_aggregators_gaps(lm_results):
    from experiments.lm import figures as lm

    table = lm.durability_table(lm_results).set_index(["stage", "sampler"])
    assert table.loc[("x4", "window:0.3,0.4"), "seed_gaps"] == pytest.approx({0: -0.2, 1: -0.3})
    assert table.loc[("wide-x4", "window:0.3,0.4"), "seed_gaps"] == pytest.approx({0: -0.3, 1: -0.3})
    # wider: more parameters than the smallest model on the same tokens (the BPE model is not "wide")
    assert table["wide"].groupby("stage").all().to_dict() == {"wide-x4": True, "x1": False, "x4": False,
                                                               "x16": False, "bpe": False}
    assert table["bpe"].groupby("stage").all().to_dict() == {"wide-x4": False, "x1": False, "x4": False,
                                                              "x16": False, "bpe": True}
    labels = lm.stage_labels(table.reset_index())
    assert labels == {"x1": "x1: CPU", "x4": "x4: H100", "x16": "x16: CPU", "wide-x4": "wide-x4: CPU",
                      "bpe": "bpe: CPU"}
    ax = lm.durability(lm_results).axes[0]
    lines = _containers(ax)
    window = lines["$U[0.3,0.4]$ (chosen on val)"]
    # the character-level base model only, by tokens: x1 (2.0M), x4 (8.2M), x16 (32.8M)
    assert window.get_ydata() == pytest.approx([-0.2, -0.25, -0.2])
    ratio = np.asarray(window.get_xdata()) / np.array([2048000, 8192000, 32768000])
    assert ratio == pytest.approx(np.full(3, ratio[0]))
    assert lines[SMOOTH].get_ydata() == pytest.approx([0.05, 0.0, 0.05])  # x4: +0.05 and -0.05
    texts = {t.get_text() for t in ax.texts}
    assert {"x4: H100", "wide-x4: CPU"} <= texts and "bpe: CPU" not in texts  # the BPE stage has its own panel


def test_the_bpe_stage_is_drawn_apart_and_said_to_count_bpe_tokens(lm_results):
    from experiments.lm import figures as lm

    fig = lm.durability(lm_results)
    ax, right = fig.axes[:2]
    # its own panel and scale: gaps in nats per BPE token would squash the character-level axis
    assert right.get_title().startswith("BPE model (bpe: CPU): 3.4M parameters, 5.12M BPE tokens")
    assert "BPE token" in right.get_ylabel() and "characters" in ax.get_xlabel()
    squares = [line for line in right.get_lines() if line.get_marker() == "s" and len(line.get_ydata())]
    assert sorted(np.round([line.get_ydata()[0] for line in squares], 6)) == [-0.05, -0.04]
    assert sorted(line.get_xdata()[0] for line in squares) == [0, 1]  # one column per law
    # the left panel keeps the character-level models only
    assert all(2500 * 2048 not in np.round(c.lines[0].get_xdata()) for c in ax.containers)
    assert not [c for c in ax.containers if c.lines[0].get_marker() == "s"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "BPE model: mean over seeds (no interval drawn)" in legend
    # the aggregator's own tokenizer column, where it writes one, decides
    path = lm_results / "lm" / "durability_summary.csv"
    table = pd.read_csv(path)
    table.assign(stage=table["stage"].replace({"bpe": "big"}),
                 tokenizer=np.where(table["stage"] == "bpe", "bpe", "char")).to_csv(path, index=False)
    marked = lm.durability_table(lm_results)
    assert set(marked.loc[marked["bpe"], "stage"]) == {"big"} and not marked["wide"][marked["bpe"]].any()


def test_durability_figure_names_no_device_when_all_ran_on_one(lm_results):
    from experiments.lm import figures as lm

    path = lm_results / "lm" / "durability_summary.csv"
    table = pd.read_csv(path)
    table.assign(device="cpu").to_csv(path, index=False)
    assert set(lm.stage_labels(lm.durability_table(lm_results)).values()) == {"x1", "x4", "x16", "wide-x4", "bpe"}
    path.unlink()
    with pytest.raises(MissingData):
        lm.durability(lm_results)


def test_window_sweep_has_one_panel_per_corpus(lm_results):
    from experiments.lm import figures as lm

    fig = lm.window_sweep(lm_results)
    first, second = fig.axes[:2]
    assert (first.get_title(), second.get_title()) == ("lm", "second_corpus")

    def levels(ax):
        return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}

    # the smooth law's level and t*, per corpus (the second's smooth runs are 0.5 worse), one colour in both
    assert levels(first)[SMOOTH].get_ydata()[0] == pytest.approx(3.06)
    assert levels(second)[SMOOTH].get_ydata()[0] == pytest.approx(3.56)
    assert levels(first)[SMOOTH].get_color() == levels(second)[SMOOTH].get_color()
    assert levels(second)["corpus-predicted $t^*$"].get_xdata()[0] == pytest.approx(0.41)
    assert levels(first)["corpus-predicted $t^*$"].get_xdata()[0] == pytest.approx(0.46)
