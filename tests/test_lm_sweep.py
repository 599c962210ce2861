"""Window-sweep runner: plan, run (through the common study runner), resume,
CSV contract, summary."""
import csv
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import pandas as pd

from experiments import study
from experiments.lm import summarize as S
from experiments.lm import sweep
from experiments.lm.presets import PRESETS, TEN_WINDOWS
from mdtheory.cli import run_cli

REPO = Path(__file__).resolve().parents[1]


def test_presets_match_the_paper_setup():
    assert TEN_WINDOWS[0] == (0.0, 0.1) and TEN_WINDOWS[-1] == (0.9, 1.0) and len(TEN_WINDOWS) == 10
    quick, paper = PRESETS["quick"], PRESETS["paper"]
    assert len(quick.seeds) >= 2 and quick.windows == TEN_WINDOWS and quick.uniform and quick.predicted
    assert (paper.task.block_size, paper.train.batch_size, paper.train.steps) == (150, 1024, 6000)


def test_plan_has_windows_uniform_predicted(tmp_path):
    (tmp_path / "predicted_t.json").write_text(json.dumps({"t_star": 0.463}))
    runs, info = sweep.plan(PRESETS["quick"], tmp_path)
    assert info == {"t_star": 0.463, "window": [0.413, 0.513]}
    kinds = [r.kind for r in runs if r.seed == 0]
    assert kinds.count("window") == 10 and kinds.count("uniform") == 1 and kinds.count("predicted") == 1
    assert len({r.name for r in runs}) == len(runs)


@pytest.fixture
def micro(monkeypatch, tmp_path):
    monkeypatch.setenv("MDTHEORY_CACHE_DIR", str(tmp_path / "cache"))
    text = tmp_path / "corpus.txt"
    text.write_text("".join(f"verse {i % 23}: the quality of mercy is not strained\n" for i in range(300)))
    preset = replace(PRESETS["tiny"], name="micro", steps=2, eval_every=1, windows=((0.4, 0.5),),
                     predicted=False, ar_baseline=False, smooth=(), eval_blocks=4, eval_nt=2,
                     text_file=str(text))
    monkeypatch.setitem(sweep.PRESETS, "micro", preset)
    return preset


@pytest.fixture
def bar_shown(monkeypatch):
    """The runner's bar, shown although a test has no terminal."""
    real_tqdm = study.tqdm
    monkeypatch.setattr(study, "tqdm", lambda *a, **kwargs: real_tqdm(*a, **{**kwargs, "disable": False}))


def test_micro_sweep_end_to_end_and_resume(micro, tmp_path, capsys, bar_shown):
    out = tmp_path / "res"
    assert sweep.main(["--preset", "micro", "--results", str(out)]) == 0
    bar = capsys.readouterr().err  # one progress bar: runs done / total
    assert "lm sweep (micro)" in bar and "2/2" in bar
    rows = list(csv.DictReader((out / "window_sweep.csv").open()))
    assert [r["run"] for r in rows] == ["w0.40-0.50_s0", "uniform_s0"]
    for col in ("t0", "t1", "seed", "steps", "full_range_test_loss", "full_range_test_loss_se",
                "full_range_val_loss", "full_range_val_loss_se", "midpoint", "preset", "run_dir"):
        assert rows[0][col] != ""
    assert rows[0]["steps"] == "2" and float(rows[0]["midpoint"]) == pytest.approx(0.45)
    curves = list(csv.DictReader((out / "window_sweep_curves.csv").open()))
    assert all(c["full_range_val_loss"] != "" for c in curves)
    assert [c["step"] for c in curves if c["run"] == "uniform_s0"] == ["0", "1", "2"]
    check_loss_by_t(out, tmp_path / "figures")
    first = (out / "runs" / "micro" / "uniform_s0" / "metrics.jsonl").read_text()
    # finished runs are skipped: nothing is retrained, the metrics stay byte-identical
    assert sweep.main(["--preset", "micro", "--results", str(out), "--runs", "w*"]) == 0
    assert sweep.main(["--preset", "micro", "--results", str(out)]) == 0
    assert (out / "runs" / "micro" / "uniform_s0" / "metrics.jsonl").read_text() == first
    # summary
    assert S.main(["--results", str(out)]) == 0
    summary = json.loads((out / "window_sweep_summary.json").read_text())
    assert summary["best_window"]["t0"] == 0.4
    assert len(summary["best_minus_uniform"]["per_seed"]) == 1
    assert "| U[0, 1] |" in capsys.readouterr().out


def check_loss_by_t(out: Path, root: Path) -> None:
    """window_sweep_loss_by_t.csv: one row per run and t-bin of its last
    evaluation record (step 2), listed in window_sweep.json; lm_loss_by_t
    draws from it alone (the file copied to a results root without runs)."""
    bins = list(csv.DictReader((out / "window_sweep_loss_by_t.csv").open()))
    assert list(bins[0]) == list(sweep.LOSS_BY_T_FIELDS)
    for run in ("w0.40-0.50_s0", "uniform_s0"):
        last = [json.loads(line) for line in (out / "runs" / "micro" / run / "metrics.jsonl").open()][-1]
        expected = {float(k.split("/")[1]): v for k, v in last.items() if k.startswith("full_range_bin/")}
        mine = [b for b in bins if b["run"] == run]
        assert last["step"] == 2 and len(expected) == 2  # eval_nt strata
        assert {float(b["t"]): float(b["loss"]) for b in mine} == pytest.approx(expected)
        errors = {float(k.split("/")[1]): v for k, v in last.items() if k.startswith("full_range_bin_se/")}
        assert set(errors) == set(expected) and all(se > 0 for se in errors.values())
        assert {float(b["t"]): float(b["se"]) for b in mine} == pytest.approx(errors)
        assert {(b["kind"], b["objective"], b["seed"]) for b in mine} == \
            {("window" if run.startswith("w") else "uniform", "md", "0")}
    assert {(b["t0"], b["t1"]) for b in bins if b["run"] == "w0.40-0.50_s0"} == {("0.4", "0.5")}
    meta = json.loads((out / "window_sweep.json").read_text())
    assert set(meta["outputs_sha256"]) == {"window_sweep.csv", "window_sweep_curves.csv",
                                           "window_sweep_loss_by_t.csv"}
    from experiments.lm import figures

    (root / "lm").mkdir(parents=True)
    shutil.copy(out / "window_sweep_loss_by_t.csv", root / "lm")
    lines = {c.get_label(): c.lines[0] for c in figures.loss_by_t(root).axes[0].containers}
    assert set(lines) == {"$U[0.4,0.5]$", "$U[0,1]$"}
    drawn = lines["$U[0.4,0.5]$"]
    window = {float(b["t"]): float(b["loss"]) for b in bins if b["run"] == "w0.40-0.50_s0"}
    assert list(drawn.get_xdata()) == pytest.approx(sorted(window))
    assert list(drawn.get_ydata()) == pytest.approx([window[t] for t in sorted(window)])
    # one seed: the error bar is 1.96 of the run's own standard error per stratum
    bar = next(c for c in figures.loss_by_t(root).axes[0].containers if c.get_label() == "$U[0.4,0.5]$")
    half = [(seg[1, 1] - seg[0, 1]) / 2 for seg in bar.lines[2][0].get_segments()]
    errors = {float(b["t"]): float(b["se"]) for b in bins if b["run"] == "w0.40-0.50_s0"}
    assert half == pytest.approx([1.96 * errors[t] for t in sorted(errors)])


def test_sweep_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        sweep.main(["--preset", "huge"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        S.main(["--results", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert "not found" in err


@pytest.mark.slow
def test_tiny_preset_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("MDTHEORY_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "tiny"
    out.mkdir()
    # the committed corpus estimate, copied: --results never reads another folder's file
    shutil.copy(Path(__file__).resolve().parents[1] / "results" / "lm" / "predicted_t.json", out)
    assert sweep.main(["--preset", "tiny", "--results", str(out)]) == 0
    rows = list(csv.DictReader((out / "window_sweep.csv").open()))
    assert {r["kind"] for r in rows} == {"window", "uniform", "predicted", "smooth", "ar"}
    assert S.main(["--results", str(out)]) == 0


def _sweep_table(val_best=(0.4, 0.5), test_best=(0.3, 0.4), seeds=(0, 1, 2)):
    """A window_sweep table whose best window on val differs from the one on test."""
    rows = []
    for seed in seeds:
        for t0, t1 in ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6)):
            val = 2.8 if (t0, t1) == val_best else 2.9
            test = 2.7 if (t0, t1) == test_best else 2.95
            rows.append({"kind": "window", "objective": "md", "t0": t0, "t1": t1, "seed": seed, "steps": 10,
                         "full_range_val_loss": val + 0.01 * seed, "full_range_test_loss": test + 0.02 * seed,
                         "full_range_test_loss_se": 0.01})
        rows.append({"kind": "uniform", "objective": "md", "t0": 0.0, "t1": 1.0, "seed": seed, "steps": 10,
                     "full_range_val_loss": 3.1, "full_range_test_loss": 3.0 + 0.05 * seed ** 2,
                     "full_range_test_loss_se": 0.01})
    import pandas as pd
    return pd.DataFrame(rows)


def test_best_window_is_chosen_on_val_and_reported_on_test():
    from scipy import stats

    summary = S.summarize(_sweep_table())
    best = summary["best_window"]
    assert (best["t0"], best["t1"]) == (0.4, 0.5) and best["selected_on"] == "val"
    assert best["loss_mean"] == pytest.approx(2.95 + 0.02)  # its test loss, not the lower one of [0.3, 0.4]
    diff = summary["best_minus_uniform"]
    expected = [2.95 + 0.02 * s - (3.0 + 0.05 * s ** 2) for s in (0, 1, 2)]
    assert diff["per_seed"] == pytest.approx(expected)
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(expected), scale=stats.sem(expected))
    assert (diff["ci_low"], diff["ci_high"]) == pytest.approx((lo, hi))
    assert "t-interval" in S.table(summary)


def test_summary_refuses_a_sweep_without_val(tmp_path, capsys):
    df = _sweep_table().drop(columns="full_range_val_loss")
    df.to_csv(tmp_path / "window_sweep.csv", index=False)
    with pytest.raises(SystemExit) as info:
        S.main(["--results", str(tmp_path)])
    assert info.value.code == 2 and "full_range_val_loss" in capsys.readouterr().err
    (tmp_path / "window_sweep.csv").write_text("")
    with pytest.raises(SystemExit) as info:
        S.main(["--results", str(tmp_path)])
    assert info.value.code == 2


def test_predicted_window_reads_only_the_results_folder(tmp_path, monkeypatch):
    import mdtheory.derive.ngram as ngram
    import mdtheory.data.corpus as corpus

    # a predicted_t.json in the working directory's results/lm must not be used
    cwd = tmp_path / "cwd"
    (cwd / "results" / "lm").mkdir(parents=True)
    (cwd / "results" / "lm" / "predicted_t.json").write_text(json.dumps({"t_star": 0.9}))
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(corpus, "load_corpus", lambda name, text_file=None: name)
    monkeypatch.setattr(ngram, "predict", lambda c: {"t_star": 0.3, "corpus": c})
    results = tmp_path / "elsewhere"
    results.mkdir()
    t_star, t0, t1 = sweep.predicted_window(results, "shakespeare")
    assert (t_star, t0, t1) == (0.3, 0.25, 0.35)
    assert json.loads((results / "predicted_t.json").read_text())["t_star"] == 0.3
    (results / "predicted_t.json").write_text("{not json")
    with pytest.raises(sweep.UserError, match="corrupt"):
        sweep.predicted_window(results, "shakespeare")


@pytest.mark.parametrize("where", ["file", "proc"])
def test_results_must_be_a_writable_folder(where, tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("mine")
    path = str(target) if where == "file" else "/proc/mdtheory-no-such-dir"
    with pytest.raises(SystemExit) as info:
        sweep.main(["--preset", "tiny", "--results", path])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1 and "--results" in err
    assert target.read_text() == "mine"


def test_presets_build_the_settings_of_the_committed_runs():
    """Preset.configs gives exactly the task and engine settings stored by the
    committed quick runs (one of each kind), so the sweep still resumes and skips them."""
    from mdtheory.train.engine import _settings_changes
    from mdtheory.train.lm_task import LMTask

    results = Path(__file__).resolve().parents[1] / "results" / "lm"
    preset = PRESETS["quick"]
    runs, _ = sweep.plan(preset, results)
    runs = list({r.kind: r for r in runs if r.seed == 0}.values())
    for spec in runs:
        stored = json.loads((results / "runs" / "quick" / spec.name / "config.json").read_text())
        task, cfg = preset.configs(spec.seed, **spec.rate())
        task_json = json.loads(json.dumps(LMTask(task).config()))
        assert _settings_changes(stored["task"], stored["train"], task_json, cfg) == [], spec.name
    assert {r.kind for r in runs} == {"window", "uniform", "predicted", "ar", "smooth"}


COMMITTED = Path(__file__).resolve().parents[1] / "results" / "lm"


@pytest.mark.skipif(not (COMMITTED / "runs" / "quick").is_dir(), reason="committed LM sweep absent")
def test_collect_keeps_ar_nll_apart_from_md_elbos():
    preset = PRESETS["quick"]
    runs, _ = sweep.plan(preset, COMMITTED)
    rows, curves, bins = sweep.collect(preset, runs, COMMITTED / "runs" / "quick")
    ar = [r for r in rows if r["objective"] == "ar"]
    md = [r for r in rows if r["objective"] == "md"]
    assert ar and md and len(rows) == len(runs)
    assert all(r["full_range_test_loss"] is None and r["nll_test"] > 0 for r in ar)
    assert all(r["nll_test"] is None and r["full_range_test_loss"] > 0 for r in md)
    assert all(c["full_range_test_loss"] is None for c in curves if c["objective"] == "ar")
    # loss per t-bin: 16 strata per MD run, none for AR (its exact NLL has no mask rate)
    per_run = {r["run"]: sum(b["run"] == r["run"] for b in bins) for r in rows}
    assert all(per_run[r["run"]] == (0 if r["objective"] == "ar" else 16) for r in rows)
    committed = COMMITTED / "window_sweep_loss_by_t.csv"
    if committed.exists():  # the committed output is what the sweep writes from the committed runs
        assert committed.read_text() == sweep._csv(bins, sweep.LOSS_BY_T_FIELDS)
    summary = S.summarize(__import__("pandas").DataFrame(rows))
    assert "loss_mean" not in summary["ar_baseline"] and summary["ar_baseline"]["nll_test_mean"] > 0


def test_sweep_of_a_text_file_end_to_end(monkeypatch, tmp_path, capsys):
    """--text-file: t* from the file's training split, the ten windows, U[0, 1],
    the predicted window and the smooth laws around t*, unigram flags, a
    recommendation naming the predicted law, all under results/lm/<stem>."""
    monkeypatch.setenv("MDTHEORY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    # the runs train in job processes, which start here and import the project by name
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setitem(sweep.PRESETS, "corpus", replace(PRESETS["corpus"], eval_blocks=4, eval_nt=2))
    words = "the quality of mercy is not strained it droppeth as gentle rain from heaven".split()
    rng = np.random.default_rng(0)
    text = tmp_path / "poems.txt"
    text.write_text("".join(" ".join(words[(i + j) % len(words)] if rng.random() > 0.3 else
                                     words[rng.integers(len(words))] for j in range(9)) + "\n"
                            for i in range(400)))
    small = ["--steps", "2", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16",
             "--batch-size", "8", "--seeds", "0", "--no-progress"]
    assert sweep.main(["--text-file", str(text), *small]) == 0
    out = tmp_path / "results" / "lm" / "poems"
    rows = list(csv.DictReader((out / "window_sweep.csv").open()))
    samplers = [r["sampler"] for r in rows]
    assert len(rows) == 16 and samplers[3] == "window:0.3,0.4" and "uniform" in samplers
    assert set(PRESETS["corpus"].smooth) <= set(samplers)
    for col in ("t0", "t1", "seed", "steps", "full_range_val_loss", "full_range_val_loss_se",
                "full_range_test_loss", "full_range_test_loss_se", "unigram_entropy", "below_unigram",
                "past_unigram"):
        assert all(r[col] != "" for r in rows if r["kind"] != "smooth" or col not in ("t0", "t1"))
    # two steps learn nothing: every run sits at (or above) the unigram level and is flagged
    assert {r["past_unigram"] for r in rows} == {"False"}
    assert len({r["unigram_entropy"] for r in rows}) == 1
    predicted = json.loads((out / "predicted_t.json").read_text())
    # n-gram weights of the training split (90% of the file) only
    assert predicted["corpus"]["name"] == "poems"
    assert 0.85 < predicted["corpus"]["words"] / len(text.read_text().split()) < 0.95
    pred = next(r for r in rows if r["kind"] == "predicted")
    assert float(pred["t0"]) <= predicted["t_star"] <= float(pred["t1"])
    printed = capsys.readouterr().out
    assert "## Recommendation" in printed and "--sampler window:" in printed and "t* =" in printed
    assert "`--sampler predicted" in printed and "`predicted:law=beta`" in printed
    assert "unigram entropy" in printed  # the flagged runs are named in the recommendation
    assert (out / "recommendation.md").read_text() in printed
    by_law = list(csv.DictReader((out / "window_sweep_by_window.csv").open()))
    assert sum(r["kind"] == "smooth" for r in by_law) == 4  # each law stays apart
    assert (out / "runs" / "corpus" / "predicted-law-beta-width-0.2_s0" / "config.json").exists()
    # a second call finds everything finished and trains nothing
    stamp = (out / "runs" / "corpus" / "uniform_s0" / "metrics.jsonl").read_text()
    assert sweep.main(["--text-file", str(text), "--corpus", "poems", *small]) == 0
    assert (out / "runs" / "corpus" / "uniform_s0" / "metrics.jsonl").read_text() == stamp


def test_corpus_sweep_bad_input(tmp_path, capsys):
    for argv in (["--text-file", str(tmp_path / "missing.txt")],
                 ["--corpus", "no-such-corpus"],
                 ["--preset", "quick", "--steps", "5"],            # would mix settings in the committed folder
                 ["--text-file", __file__, "--corpus", "a b"],
                 ["--text-file", __file__, "--smooth", "predicted:law=gamma"]):
        with pytest.raises(SystemExit) as info:
            sweep.main(argv + ["--results", str(tmp_path / "r")] * (argv[1] == "a b"))
        assert info.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_durability_runner_end_to_end(micro, monkeypatch, tmp_path, capsys):
    from experiments.lm import durability as D

    results = tmp_path / "lm"
    results.mkdir()
    (results / "window_sweep_summary.json").write_text(json.dumps({"best_window": {"t0": 0.3, "t1": 0.4}}))
    (results / "predicted_t.json").write_text(json.dumps({"t_star": 0.46}))
    monkeypatch.setitem(D.PRESETS, "quick", micro)
    monkeypatch.setattr(D, "STAGES", {"x4": dict(steps=3, eval_every=3, smooth=("predicted:law=beta",)),
                                      "wide-x4": dict(steps=3, n_embd=64, smooth=("predicted:law=beta",))})
    assert D.main(["--results", str(results), "--seeds", "0", "1", "--no-progress"]) == 0
    rows = list(csv.DictReader((results / "durability.csv").open()))
    assert len(rows) == 2 * 2 * 4
    assert {r["sampler"] for r in rows} == {"uniform", "window:0.3,0.4", "window:0.41,0.51", "predicted:law=beta"}
    params = {r["stage"]: int(r["n_params"]) for r in rows}
    assert params["wide-x4"] > 2 * params["x4"]
    assert all(r["steps"] == "3" and r["full_range_test_loss"] != "" for r in rows)
    assert "16/16 runs finished" in capsys.readouterr().out


def test_local_executor_trains_runs_in_job_processes_then_skips(micro, tmp_path, capsys):
    out = tmp_path / "res"
    argv = ["--preset", "micro", "--results", str(out), "--executor", "local", "--jobs", "2", "--no-progress"]
    assert sweep.main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 runs under" in printed and "2 complete" in printed and "2/2 runs finished" in printed
    run_dirs = sorted((out / "runs" / "micro").iterdir())
    assert [d.name for d in run_dirs] == ["uniform_s0", "w0.40-0.50_s0"]
    logs = sorted((out / ".submitit").glob("*_log.err"))
    assert len(logs) == 2  # one job process per run, not this one
    assert all(sweep.is_finished(d, micro.train.steps) for d in run_dirs)
    stamps = {d.name: (d / "metrics.jsonl").read_text() for d in run_dirs}
    table = (out / "window_sweep.csv").read_text()
    assert sweep.main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 complete (skipped)" in printed and "2/2 runs finished" in printed
    assert len(list((out / ".submitit").glob("*_log.err"))) == 2  # nothing submitted again
    assert {d.name: (d / "metrics.jsonl").read_text() for d in run_dirs} == stamps
    assert (out / "window_sweep.csv").read_text() == table


def test_a_run_that_fails_in_its_job_is_one_line_and_the_others_are_listed(micro, tmp_path, capsys):
    out = tmp_path / "res"
    bad = out / "runs" / "micro" / "uniform_s0"
    bad.mkdir(parents=True)
    (bad / "ckpt.pt").write_bytes(b"not a checkpoint")  # refused when the job resumes it
    with pytest.raises(SystemExit) as info:
        sweep.main(["--preset", "micro", "--results", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1
    assert "1 run(s) failed" in err[0] and "uniform_s0: checkpoint" in err[0]
    assert [r["run"] for r in csv.DictReader((out / "window_sweep.csv").open())] == ["w0.40-0.50_s0"]


def test_slurm_executor_submits_one_job_array_and_returns(micro, tmp_path, sbatch_scripts, capsys):
    scripts = sbatch_scripts
    out = tmp_path / "res"
    assert sweep.main(["--preset", "micro", "--results", str(out), "--executor", "slurm", "--partition", "gpu",
                       "--time", "30", "--gpus-per-run", "1", "--cpus-per-run", "4",
                       "--array-parallelism", "2"]) == 0
    assert len(scripts) == 1
    for line in ("#SBATCH --array=0-1%2", "#SBATCH --partition=gpu", "#SBATCH --time=30",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=4"):
        assert line in scripts[0], line
    printed = capsys.readouterr().out
    assert "job array 4242" in printed and "2 submitted" in printed and "0/2 runs finished" in printed
    # nothing trained here; the outputs list the finished runs (none yet)
    assert not any((out / "runs" / "micro").iterdir())
    assert (out / "window_sweep.csv").read_text().count("\n") == 1


def test_runner_flags_are_checked_before_anything_is_written(micro, tmp_path, capsys):
    out = tmp_path / "res"
    for argv, message in ((["--jobs", "0"], "--jobs"), (["--only", "nomatch*"], "matches"),
                          (["--runs", "nomatch*"], "--runs"), (["--time", "0"], "--time"),
                          (["--executor", "pbs"], "invalid choice"), (["--threads", "0"], "--threads")):
        with pytest.raises(SystemExit) as info:
            sweep.main(["--preset", "micro", "--results", str(out), *argv])
        err = capsys.readouterr().err
        assert info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, argv
        assert not out.exists()
    assert sweep.main(["--preset", "micro", "--results", str(out), "--list", "--only", "uniform"]) == 0
    assert capsys.readouterr().out == f"{out / 'runs' / 'micro' / 'uniform_s0'}  (2 steps)\n"
    assert not out.exists()


@pytest.mark.parametrize("visible", [None, "3", ""])
def test_local_jobs_see_the_gpus_this_process_sees(tmp_path, monkeypatch, visible):
    """submitit's local executor hides every GPU from its jobs; the LM runs
    (local_gpus) see what the sweep itself sees, as its old process pool did."""
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    parser = sweep.build_parser()
    executor = study.make_executor(parser.parse_args([]), tmp_path, local_gpus=True)
    seen = executor.submit(os.getenv, "CUDA_VISIBLE_DEVICES", "unset").result()
    assert seen == ("unset" if visible is None else visible)


def test_eval_noise_rescores_a_finished_run_with_other_mask_seeds(micro, tmp_path, capsys):
    """experiments.lm.eval_noise: scheme x mask seed rows from a run's final
    checkpoint; at the run's own scheme and seed it reproduces the logged loss."""
    from experiments.lm import eval_noise

    out = tmp_path / "res"
    assert sweep.main(["--preset", "micro", "--results", str(out), "--no-progress"]) == 0
    run_dir = out / "runs" / "micro" / "w0.40-0.50_s0"
    table = tmp_path / "noise.csv"
    assert eval_noise.main(["--runs", str(run_dir), "--seeds", "2", "--out", str(table)]) == 0
    rows = pd.read_csv(table)
    assert sorted(zip(rows["scheme"], rows["seed"])) == [("exact-count", 0), ("exact-count", 1),
                                                          ("midpoint", 0), ("midpoint", 1)]
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()][-1]
    own = rows[(rows["scheme"] == "exact-count") & (rows["seed"] == 0)].iloc[0]
    assert own["loss"] == pytest.approx(logged["full_range_test_loss"], rel=1e-9)
    assert own["bin0_se"] == pytest.approx(logged[f"full_range_bin_se/{own['t0_centre']:.4f}"], rel=1e-9)
    (run_dir / "ckpt.pt").unlink()
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run_cli(eval_noise.main, ["--runs", str(run_dir), "--out", str(tmp_path / "other.csv")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ckpt.pt" in err[0] and not (tmp_path / "other.csv").exists()
