"""The parity summarizer on a tiny synthetic run directory (no training)."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from experiments.parity import summarize
from experiments.parity.presets import RunSpec, md_windows, runs_of
from experiments.parity.run import converged
from mdtheory.theory.numeric import best_t1_given_t0_zero, p_signal


def _write_run(root, name, objective, curve, *, seed=0, k=4, window=(0.0, 0.3), wd=0.1, status="complete",
               p_signal_in_config=True):
    """A run directory as the engine + runner write it; curve = [(step, train, val)]."""
    d = root / "runs" / name
    d.mkdir(parents=True)
    task = {"name": "parity", "n": 12, "k": k, "train_size": 300, "val_size": 1000, "seed": seed,
            "objective": objective, "model": "transformer", "n_layer": 2, "n_embd": 64,
            "loss_weighting": "inverse_t", "normalization": "tokens"}
    if objective == "md":
        task["sampler"] = f"window:{window[0]:g},{window[1]:g}"
        task["sampler_law"] = {"kind": "window", "t0": window[0], "t1": window[1]}
        if p_signal_in_config:
            task["p_signal"] = p_signal(k, *window)
    train = {"steps": curve[-1][0], "lr": 1e-3, "weight_decay": wd, "batch_size": 64, "seed": seed}
    (d / "config.json").write_text(json.dumps({"task": task, "train": train}))
    lines = [json.dumps({"step": s, "loss": 0.5, "train_acc": a, "val_acc": v}) for s, a, v in curve]
    (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (d / "run.json").write_text(json.dumps({"status": status, "budget": 1000, "spec": {"group": "main"}}))
    return d


@pytest.fixture
def synthetic_root(tmp_path):
    # OS: memorises at step 100, held-out at chance until 500, 0.99 at 700 (grokking signature)
    _write_run(tmp_path, "os_s0", "os", [(0, .5, .5), (100, 1., .5), (300, 1., .55), (500, 1., .8),
                                         (700, 1., .995), (800, 1., 1.)])
    # MD U[0,0.3]: train and held-out rise together; seed 1 is slower
    _write_run(tmp_path, "md03_s0", "md", [(0, .5, .5), (100, .7, .7), (200, .995, .99), (300, 1., 1.)])
    _write_run(tmp_path, "md03_s1", "md", [(0, .5, .5), (200, .7, .7), (400, 1., .995)], seed=1)
    # MD U[0,1]: never reaches 0.99 (=> empty cells), P_S computed from theory when absent in config
    _write_run(tmp_path, "md1_s0", "md", [(0, .5, .5), (500, .6, .55), (1000, .9, .6)], window=(0.0, 1.0),
               p_signal_in_config=False)
    # a torn last line from a killed run must not break the reader
    with open(tmp_path / "runs" / "md1_s0" / "metrics.jsonl", "a") as f:
        f.write('{"step": 11')
    (tmp_path / "runs" / "empty_dir").mkdir()
    return tmp_path


def test_summary_rows_and_never_reached_is_empty(synthetic_root):
    summarize.summarize_root(synthetic_root)
    table = pd.read_csv(synthetic_root / "summary.csv", dtype=str, keep_default_na=False)
    assert list(table["run"]) == ["md03_s0", "md03_s1", "md1_s0", "os_s0"]  # empty_dir skipped
    for col in ["objective", "model", "n", "k", "train_size", "weight_decay", "t0", "t1", "P_S", "seed",
                "steps", "steps_to_train_99", "steps_to_val_99"]:
        assert col in table.columns
    row = table.set_index("run")
    assert row.loc["md03_s0", "steps_to_val_99"] == "200"
    assert row.loc["md03_s1", "steps_to_train_99"] == "400"
    never = row.loc["md1_s0"]
    assert never["steps_to_val_99"] == "" and never["steps_to_train_99"] == ""  # empty, not 0 or NaN text
    assert never["steps"] == "1000"  # the torn line is ignored
    assert float(never["P_S"]) == pytest.approx(p_signal(4, 0.0, 1.0))
    assert row.loc["os_s0", "P_S"] == "" and row.loc["os_s0", "t1"] == ""


def test_grokking_signature_and_plateau(synthetic_root):
    table = summarize.summarize_runs(synthetic_root / "runs").set_index("run")
    os_row = table.loc["os_s0"]
    assert os_row["steps_to_train_99"] == 100 and os_row["steps_to_val_60"] == 500
    assert os_row["plateau_steps"] == 400 and bool(os_row["grokking_signature"])
    assert not table.loc["md03_s0", "grokking_signature"]  # no plateau: train and val rise together
    assert pd.isna(table.loc["md1_s0", "plateau_steps"])  # never fitted the training set


def test_by_condition_medians_and_spread(synthetic_root):
    cond = summarize.by_condition(summarize.summarize_runs(synthetic_root / "runs"))
    md03 = cond[(cond["objective"] == "md") & (cond["t1"] == 0.3)].iloc[0]
    assert md03["seeds"] == 2 and md03["val_99_reached"] == 2
    assert md03["val_99_median"] == 300 and md03["val_99_min"] == 200 and md03["val_99_max"] == 400
    md1 = cond[(cond["objective"] == "md") & (cond["t1"] == 1.0)].iloc[0]
    assert md1["val_99_reached"] == 0 and pd.isna(md1["val_99_median"]) and math.isinf(md1["val_99_median_all"])
    assert list(cond["objective"]) == ["os", "md", "md"]  # OS first, then windows by t1
    assert cond["main_setting"].all()  # one transformer setting: it is the main one
    text = summarize.markdown_table(cond)
    assert "output supervision" in text and "MD U[0,0.3]" in text and "never" in text


def test_main_setting_is_the_one_with_most_conditions(synthetic_root):
    _write_run(synthetic_root, "other_md_s0", "md", [(0, .5, .5), (100, 1., 1.)], k=3)
    cond = summarize.by_condition(summarize.summarize_runs(synthetic_root / "runs"))
    assert set(cond.loc[cond["main_setting"], "k"]) == {4} and (~cond.loc[cond["k"] == 3, "main_setting"]).all()


def test_theory_vs_speed(synthetic_root):
    tvs = summarize.theory_vs_speed(summarize.summarize_runs(synthetic_root / "runs"))
    assert len(tvs) == 1
    row = tvs.iloc[0]
    # U[0,0.3] has the larger P_S for k=4 and is the faster window: rho > 0
    assert p_signal(4, 0, 0.3) > p_signal(4, 0, 1.0)
    assert row["spearman_rho_PS_speed"] > 0 and row["fastest_t1"] == 0.3
    assert row["theory_best_t1"] == pytest.approx(best_t1_given_t0_zero(4), abs=1e-4)
    assert row["theory_window_rank"] == 1  # U[0,0.3] is the run window nearest the theory's t1


def test_cli_writes_all_outputs_and_rejects_missing_root(synthetic_root, tmp_path, capsys):
    assert summarize.main(["--root", str(synthetic_root)]) == 0
    text = summarize.by_seed_markdown(summarize.summarize_runs(synthetic_root / "runs"))
    assert "| 0.1 | 0 | 700 | 200 | – (0.60) |" in text  # OS, MD U[0,0.3], MD U[0,1] for seed 0
    for name in ("summary.csv", "summary_by_condition.csv", "summary_by_condition.md", "summary_by_seed.md",
                 "theory_vs_speed.csv",
                 "summary_provenance.json"):
        assert (synthetic_root / name).exists()
    from mdtheory.cli import run_cli
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(summarize.main, ["--root", str(tmp_path / "nope")])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1


def test_presets_are_well_formed():
    for preset in ("tiny", "quick", "calibration", "full", "paper"):
        runs = runs_of(preset)
        assert runs and len({r.name for r in runs}) == len(runs)
    full = runs_of("full")
    main = [r for r in full if r.group == "main"]
    # every main condition has >= 3 seeds, at both weight decays
    conditions = {}
    for r in main:
        conditions.setdefault((r.objective, r.t1, r.weight_decay), set()).add(r.seed)
    assert all(len(seeds) >= 3 for seeds in conditions.values())
    assert {wd for _, _, wd in conditions} == {0.0, 0.1}
    assert {o for o, _, _ in conditions} == {"os", "ar", "md"}
    best = round(best_t1_given_t0_zero(main[0].k), 3)
    assert (0.0, best) in md_windows(main[0].k)
    spec = RunSpec(objective="md", n=12, k=3, train_size=10, steps=5, t0=0.0, t1=0.3)
    assert spec.configs()[0].sampler == "window:0.0,0.3" and spec.name.startswith("md0-0.3_")


def test_converged_rule():
    recs = [{"train_acc": 1.0, "val_acc": v} for v in (0.5, 0.995, 0.99, 1.0)]
    assert converged(recs, 3) and not converged(recs, 4) and not converged(recs[:2], 3)


def test_runner_skips_finished_runs_and_extends_budgets(tmp_path):
    """execute(): trains through the engine, writes run.json, skips a finished
    run, and continues (does not restart) a run whose budget was raised."""
    from dataclasses import replace

    from experiments.parity.run import execute
    from mdtheory.runfiles import read_metrics as read_records, read_run

    spec = RunSpec(objective="md", n=6, k=2, train_size=16, val_size=16, steps=20, t0=0.0, t1=0.5,
                   n_embd=16, n_layer=1, n_head=2, eval_every=10, group="test")
    name, status = execute(spec, str(tmp_path))
    run_dir = tmp_path / "runs" / name
    assert status == "complete" and json.loads((run_dir / "run.json").read_text())["budget"] == 20
    assert [r["step"] for r in read_records(run_dir)] == [0, 10, 20]
    assert execute(spec, str(tmp_path))[1] == "complete (skipped)"
    first = read_records(run_dir)
    assert execute(replace(spec, steps=40), str(tmp_path))[1] == "complete"
    records = read_records(run_dir)
    assert [r["step"] for r in records] == [0, 10, 20, 30, 40]
    assert records[:3] == first  # continued from the checkpoint, history untouched
    row = summarize.summarize_run(read_run(run_dir))
    assert row["steps"] == 40 and row["budget"] == 40 and row["group"] == "test"


def test_corrupt_config_is_one_line_exit_2(synthetic_root, capsys):
    from mdtheory.cli import run_cli
    (synthetic_root / "runs" / "md03_s1" / "config.json").write_text('{"task": {')
    with pytest.raises(SystemExit) as exit_info:
        run_cli(summarize.main, ["--root", str(synthetic_root)])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "config.json" in err


def test_summary_path_that_is_a_directory_is_one_line_exit_2(synthetic_root, capsys):
    from mdtheory.cli import run_cli
    (synthetic_root / "summary.csv").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(summarize.main, ["--root", str(synthetic_root)])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "summary.csv" in err
    # nothing else was written either
    assert not (synthetic_root / "theory_vs_speed.csv").exists()


def test_non_utf8_metrics_is_one_line_exit_2(synthetic_root, capsys):
    from mdtheory.cli import run_cli
    (synthetic_root / "runs" / "md03_s1" / "metrics.jsonl").write_bytes(b'{"step": 0, "val_acc": 0.5}\n\xff\xfe\n')
    with pytest.raises(SystemExit) as exit_info:
        run_cli(summarize.main, ["--root", str(synthetic_root)])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1


def test_summary_provenance_is_kept_when_numbers_do_not_change(synthetic_root):
    summarize.summarize_root(synthetic_root)
    path = synthetic_root / "summary_provenance.json"
    first = path.read_text()
    data = json.loads(first)
    data["created_utc"] = "2000-01-01T00:00:00Z"
    path.write_text(json.dumps(data))
    summarize.summarize_root(synthetic_root)
    assert json.loads(path.read_text())["created_utc"] == "2000-01-01T00:00:00Z"
