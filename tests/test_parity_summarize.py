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


# --- per-run endpoints, outcomes, unfinished runs ------------------------------------

def _outcome_root(root):
    from test_parity_phase import write_phase_run
    curves = {
        # reaches 0.99 at 300, then dips to 0.97 (train at 0.98 keeps it going), back to 1.0
        0: [(0, .5, .5), (100, .8, .93), (200, .9, .95), (300, .98, .995), (400, .98, .97), (500, 1., 1.),
            (600, 1., 1.)],
        1: [(0, .5, .5), (500, .9, .91), (1000, 1., .95)],     # slower: 0.90 at 500, never 0.99
        2: [(0, .5, .5), (500, .9, .7), (1000, 1., .6)],       # partial: never 0.90, final exactly 0.60
        3: [(0, .5, .5), (500, .9, .85), (1000, 1., .55)],     # did_not_learn: peaked at 0.85, ended at chance
        4: [(0, .5, .5), (300, .9, .5)],                       # unfinished: no run.json, 300 of 1000 steps
        5: [(0, .5, .5), (300, .9, .92)],                      # still training (run.json), past 0.90
    }
    for seed, curve in curves.items():
        write_phase_run(root, "md", seed, curve, window=(0.0, 0.261), finished="running" if seed == 5 else seed < 4,
                        spec={"early_stop": seed != 0})
    return root


def test_outcomes_and_endpoints(tmp_path):
    root = _outcome_root(tmp_path / "outcomes")
    table = summarize.summarize_runs(root / "runs").set_index("seed")
    assert list(table["outcome"]) == ["reached_99", "slower", "partial", "did_not_learn", "unfinished", "unfinished"]
    assert table.loc[0, "steps_to_val_90"] == 100 and table.loc[0, "steps_to_val_99"] == 300
    assert table.loc[0, "min_val_after_99"] == pytest.approx(0.97)  # the dip after the first 0.99
    assert table.loc[1, "steps_to_val_90"] == 500 and pd.isna(table.loc[1, "min_val_after_99"])
    assert pd.isna(table.loc[2, "steps_to_val_90"]) and pd.isna(table.loc[3, "steps_to_val_90"])
    assert table.loc[4, "status"] == "running" and table.loc[5, "steps_to_val_90"] == 300
    assert table.loc[5, "status"] == "running" and table.loc[5, "group"] == "phase"  # run.json: running
    # early_stop comes from run.json's spec; a run without run.json has none
    assert table.loc[0, "early_stop"] is False and table.loc[1, "early_stop"] is True
    assert table.loc[4, "early_stop"] is None and table.loc[5, "early_stop"] is True
    cond = summarize.by_condition(table.reset_index())
    finished = cond[cond["group"] == "phase"].iloc[0]  # seed 4 has no group (no run.json)
    assert [finished[f"n_{o}"] for o in summarize.OUTCOMES] == [1, 1, 1, 1, 1]  # the last: unfinished
    assert finished["val_90_reached"] == 3 and finished["val_90_median"] == 300
    text = summarize.markdown_table(cond)
    assert "| 1 / 1 / 1 / 1 (+1 unfinished) |" in text and "| 0 / 0 / 0 / 0 (+1 unfinished) |" in text
    by_seed = summarize.by_seed_markdown(table.reset_index())
    assert "– (0.95; 0.90 at 500)" in by_seed and "– (0.55)" in by_seed
    assert "– (0.92; 0.90 at 300; running)" in by_seed


def test_cli_says_what_it_skipped_and_what_is_unfinished(tmp_path, capsys):
    root = _outcome_root(tmp_path / "outcomes")
    (root / "runs" / "no_files").mkdir()
    not_evaluated = root / "runs" / "not_evaluated"
    not_evaluated.mkdir()
    (not_evaluated / "config.json").write_text(json.dumps({"task": {"objective": "os"}, "train": {}}))
    (not_evaluated / "metrics.jsonl").write_text("")
    assert summarize.main(["--root", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{root}: 6 runs -> {root / 'summary.csv'}"
    assert "skipped 2 folders" in out[1] and "1 with no config.json and metrics.jsonl" in out[1] \
        and "1 with no evaluation yet" in out[1]
    assert out[2].startswith("  2 runs unfinished (still training or stopped below their budget)") and "censored at their last evaluation" in out[2]
    assert json.loads((root / "summary_provenance.json").read_text())["skipped"] == \
        {summarize.SKIP_NO_FILES: 1, summarize.SKIP_NO_EVAL: 1}


def test_long_budget_without_early_stop(tmp_path):
    """paper_mlp / phase_extend runs: budgets of 25,000-30,000 steps, and runs
    that train on past 0.99 (spec early_stop false)."""
    from test_parity_phase import write_phase_run
    root = tmp_path / "long"
    curve = [(s, 1.0, 0.5 if s < 20000 else 0.991 if s == 20000 else 0.995 if s == 25000 else 1.0)
             for s in range(0, 30001, 2500)]
    write_phase_run(root, "os", 0, curve, budget=30000, spec={"early_stop": False})
    write_phase_run(root, "md", 0, [(s, 0.9, 0.5) for s in range(0, 25001, 2500)], window=(0.0, 0.2),
                    budget=25000, spec={"early_stop": True})
    summarize.summarize_root(root)
    table = pd.read_csv(root / "summary.csv").set_index("objective")
    assert table.loc["os", "budget"] == 30000 and table.loc["os", "steps_to_val_99"] == 20000
    # the lowest held-out accuracy after (not at) the first evaluation at 0.99
    assert table.loc["os", "min_val_after_99"] == pytest.approx(0.995) and not table.loc["os", "early_stop"]
    assert table.loc["md", "budget"] == 25000 and table.loc["md", "outcome"] == "did_not_learn"
    cells = pd.read_csv(root / "cells.csv").set_index("objective")
    assert cells.loc["md", "budget"] == 25000 and cells.loc["os", "km_median_steps"] == 20000


# --- pairing with a baseline root ----------------------------------------------------

def _pair_roots(tmp_path):
    """BASE: batch 256, budget 1000, group "phase"; ROOT: full batch (512),
    budget 3000, group "phase_batch"; same settings and seeds otherwise."""
    from test_parity_phase import write_phase_run
    base, root = tmp_path / "base", tmp_path / "batch"
    sc = (0.0, 0.261)

    def reach(at90, at99, end):
        return [(s, 1.0, 0.995 if at99 is not None and s >= at99 else 0.95 if at90 is not None and s >= at90 else 0.5)
                for s in range(0, end + 1, 100)]
    # (BASE, ROOT) steps to (0.90, 0.99) of MD per seed
    md = [((300, None), (200, 400)), ((400, None), (200, 800)), ((200, 600), (100, 300)), ((None, None), (900, None)),
          ((300, 900), (600, None))]
    for seed, (mine_base, mine_root) in enumerate(md):
        write_phase_run(base, "md", seed, reach(*mine_base, 1000), window=sc)
        write_phase_run(root, "md", seed, reach(*mine_root, 3000), window=sc, batch=512, budget=3000,
                        group="phase_batch")
        write_phase_run(base, "os", seed, reach(100, 200, 1000))
        write_phase_run(root, "os", seed, reach(100, 200, 3000), batch=512, budget=3000, group="phase_batch")
    # no baseline: seed 9 (BASE has seeds 0-4), and a run with another learning rate
    write_phase_run(root, "md", 9, reach(200, 300, 3000), window=sc, batch=512, budget=3000, group="phase_batch")
    write_phase_run(root, "os", 0, reach(100, 200, 3000), batch=512, budget=3000, group="phase_batch", lr=3e-3)
    return base, root


def test_baseline_pairing(tmp_path, capsys):
    base, root = _pair_roots(tmp_path)
    assert summarize.main(["--root", str(root), "--baseline", str(base)]) == 0
    out = capsys.readouterr().out
    assert f"10 of 12 runs paired with a baseline run -> {root / 'paired_with_baseline.csv'} (2 without one)" in out
    assert not (base / "summary.csv").exists()  # the baseline root is only read
    runs = pd.read_csv(root / "paired_with_baseline_runs.csv")
    unmatched = runs[runs["baseline_run"].isna()]
    assert sorted(unmatched["run"]) == ["md0-0.261_n16k4_N512_wd0.1_bs512_s9", "os_n16k4_N512_wd0.1_bs512_lr0.003_s0"]
    assert unmatched[["baseline_steps_to_val_99", "baseline_budget", "baseline_final_val_acc"]].isna().all().all()
    seed0 = runs[runs["run"] == "md0-0.261_n16k4_N512_wd0.1_bs512_s0"].iloc[0]
    assert seed0["baseline_run"] == "md0-0.261_n16k4_N512_wd0.1_s0" and seed0["baseline_matches"] == 1
    assert (seed0["batch_size"], seed0["baseline_batch_size"], seed0["budget"], seed0["baseline_budget"]) == \
        (512, 256, 3000, 1000)
    assert seed0["step_ratio_90"] == pytest.approx(200 / 300) and pd.isna(seed0["step_ratio_99"])

    cells = pd.read_csv(root / "paired_with_baseline.csv")
    md = cells[(cells["objective"] == "md") & (cells["lr"] == 1e-3)].iloc[0]
    assert (md["runs"], md["runs_paired"], md["runs_unmatched"]) == (6, 5, 1)
    assert (md["batch_size"], md["baseline_batch_size"], md["budget"], md["baseline_budget"]) == (512, 256, 3000, 1000)
    # 0.99: ROOT reached in seeds 0, 1, 2; BASE in 2, 4 -> only ROOT {0, 1}, only BASE {4}
    assert (md["reached_99"], md["baseline_reached_99"], md["only_root_99"], md["only_baseline_99"]) == (3, 2, 2, 1)
    assert md["mcnemar_p_99"] == pytest.approx(1.0)  # Bin(3, 1/2): P(X <= 1 or X >= 2) = 1
    # 0.90: ROOT all five, BASE all but seed 3 -> only ROOT {3}
    assert (md["reached_90"], md["baseline_reached_90"], md["only_root_90"], md["only_baseline_90"]) == (5, 4, 1, 0)
    assert md["mcnemar_p_90"] == pytest.approx(1.0)
    # step ratios ROOT / BASE where both reached: 0.90 of seeds 0, 1, 2, 4: 2/3, 1/2, 1/2, 2; 0.99 of seed 2: 1/2
    assert md["pairs_both_90"] == 4 and md["median_step_ratio_90"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert md["pairs_both_99"] == 1 and md["median_step_ratio_99"] == pytest.approx(0.5)
    assert md["final_val_acc_median"] == pytest.approx(0.995) and md["baseline_final_val_acc_median"] == \
        pytest.approx(0.95)
    os_ = cells[(cells["objective"] == "os") & (cells["lr"] == 1e-3)].iloc[0]
    assert (os_["runs_paired"], os_["reached_99"], os_["baseline_reached_99"]) == (5, 5, 5)
    assert os_["mcnemar_p_99"] == 1.0 and os_["median_step_ratio_99"] == 1.0
    lonely = cells[cells["lr"] == 3e-3].iloc[0]  # a cell without a match: empty baseline columns
    assert lonely["runs_paired"] == 0 and pd.isna(lonely["mcnemar_p_99"]) and pd.isna(lonely["baseline_budget"])


def test_baseline_pairing_mcnemar_by_hand(tmp_path):
    """Six seeds where ROOT reaches 0.99 and BASE does not: p = 2 / 2^6."""
    from test_parity_phase import write_phase_run
    base, root = tmp_path / "base", tmp_path / "root"
    for seed in range(6):
        write_phase_run(base, "os", seed, [(0, .5, .5), (1000, 1., .95)])
        write_phase_run(root, "os", seed, [(0, .5, .5), (1000, 1., .95), (2000, 1., .995)], budget=3000)
    # a seventh ROOT run still training, not at 0.99 yet: no outcome to pair
    write_phase_run(base, "os", 6, [(0, .5, .5), (1000, 1., .995)])
    write_phase_run(root, "os", 6, [(0, .5, .5), (1000, 1., .95)], budget=3000, finished="running")
    summarize.main(["--root", str(root), "--baseline", str(base)])
    cell = pd.read_csv(root / "paired_with_baseline.csv").iloc[0]
    assert cell["runs_paired"] == 7 and cell["runs_unfinished"] == 1
    assert (cell["only_root_99"], cell["only_baseline_99"]) == (6, 0)
    assert cell["mcnemar_p_99"] == pytest.approx(2 / 64) and cell["mcnemar_p_90"] == 1.0


@pytest.mark.parametrize("bad", ["missing", "a_file", "no_runs", "empty_runs"])
def test_bad_baseline_is_one_line_exit_2(synthetic_root, tmp_path, capsys, bad):
    from mdtheory.cli import run_cli
    target = tmp_path / bad
    if bad == "a_file":
        target.write_text("x")
    elif bad == "no_runs":
        target.mkdir()
    elif bad == "empty_runs":
        (target / "runs" / "not_a_run").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(summarize.main, ["--root", str(synthetic_root), "--baseline", str(target)])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--baseline" in err
    assert not (synthetic_root / "summary.csv").exists()  # refused before anything was written


def test_a_paired_root_stays_paired_when_summarised_without_baseline(tmp_path, capsys):
    """make all summarises every root without --baseline: a root paired once is
    paired again from its provenance, so nothing it wrote goes stale."""
    base, root = _pair_roots(tmp_path)
    assert summarize.main(["--root", str(root), "--baseline", str(base)]) == 0
    before = (root / "paired_with_baseline.csv").read_text()
    (root / "paired_with_baseline.csv").unlink()
    assert summarize.main(["--root", str(root)]) == 0
    assert (root / "paired_with_baseline.csv").read_text() == before
    assert json.loads((root / "summary_provenance.json").read_text())["baseline"] == str(base)


def test_a_run_still_training_below_the_threshold_is_not_paired_with_os():
    nan = float("nan")
    os_runs = pd.DataFrame({"seed": [0, 1, 2, 3], "steps_to_val_99": [300.0, 400.0, 500.0, nan],
                            "steps": [1000] * 4, "status": ["complete"] * 3 + ["running"]})
    md = pd.DataFrame({"seed": [0, 1, 2, 3], "steps_to_val_99": [nan, nan, 800.0, 900.0],
                       "steps": [1000, 600, 800, 900], "status": ["complete", "running", "running", "running"]})
    row, _ = summarize.threshold_stats(md, os_runs, "99")
    # seed 0: decided, OS only; seed 1: MD still training, not there yet -> left out; seed 2: MD already there
    # (final); seed 3: OS still training and not there yet -> left out
    assert row["paired_seeds"] == 2
    assert (row["reached_where_os_not"], row["os_reached_where_not"]) == (0, 1)
