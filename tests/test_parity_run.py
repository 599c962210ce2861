"""The parity sweep runner: divergence by exception type, one progress bar
per sweep, and one-line errors for broken run markers."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from experiments.parity import run as runner
from experiments.parity.presets import RunSpec
from mdtheory.cli import run_cli
from mdtheory.errors import UserError
from mdtheory.train.engine import TrainingDiverged

SPEC = RunSpec(objective="md", n=6, k=2, train_size=16, val_size=16, steps=20, t0=0.0, t1=0.5,
               n_embd=16, n_layer=1, n_head=2, eval_every=10, group="test")


def test_divergence_is_recognised_by_its_type_not_its_message(tmp_path, monkeypatch):
    def diverge(task, cfg, stop=None):
        raise TrainingDiverged("the loss blew up")  # no "non-finite" in the text

    monkeypatch.setattr("mdtheory.train.train", diverge)
    name, status = runner.execute(SPEC, str(tmp_path))
    assert status == "diverged"
    assert json.loads((tmp_path / "runs" / name / "run.json").read_text())["status"] == "diverged"


def test_other_user_errors_are_not_taken_for_divergence(tmp_path, monkeypatch):
    def bad(task, cfg, stop=None):
        raise UserError("checkpoint is non-finite garbage")  # the old text match took this for divergence

    monkeypatch.setattr("mdtheory.train.train", bad)
    with pytest.raises(UserError, match="garbage"):
        runner.execute(SPEC, str(tmp_path))
    assert not (tmp_path / "runs" / SPEC.name / "run.json").exists()


def test_corrupt_run_marker_is_one_line_exit_2(tmp_path):
    run_dir = tmp_path / "runs" / SPEC.name
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text("{torn")
    with pytest.raises(UserError, match="run.json"):
        runner.run_status(run_dir, SPEC)


def test_root_that_is_a_file_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(runner.main, ["--preset", "tiny", "--root", str(tmp_path / "afile")])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and "afile" in err


def test_stop_rule_ends_a_run_and_a_run_without_it_continues_to_the_budget(tmp_path):
    """The early-stop rule ends training inside one engine call; the same run
    with early_stop=False continues from there to its budget, and its records
    up to the stop are those of the stopped run."""
    spec = RunSpec(objective="os", n=6, k=1, train_size=32, val_size=16, steps=400, n_embd=32, n_layer=1,
                   n_head=2, eval_every=10, batch_size=32, lr=3e-3, group="test")
    name, status = runner.execute(spec, str(tmp_path))
    run_dir = tmp_path / "runs" / name
    stopped = runner.read_metrics(run_dir)
    assert status == "early_stop" and stopped[-1]["step"] < 400
    assert runner.converged(stopped, 2) and not runner.converged(stopped[:-1], 2)
    config = json.loads((run_dir / "config.json").read_text())
    assert "resumes" not in config  # one engine call, not segments that each resume
    name, status = runner.execute(replace(spec, early_stop=False), str(tmp_path))
    full = runner.read_metrics(run_dir)
    assert status == "complete" and full[-1]["step"] == 400
    assert [r["val_acc"] for r in full[: len(stopped)]] == [r["val_acc"] for r in stopped]
    entry = json.loads((run_dir / "config.json").read_text())["resumes"][0]
    assert set(entry) <= {"from_step", "time", "git_commit", "provenance_changes", "changed_from", "world_size"}
    assert runner.run_status(run_dir, spec) == "complete"  # at its budget: skipped either way


def stacked_specs():
    base = replace(SPEC, objective="md", n=6, k=1, train_size=32, steps=150, eval_every=10, n_embd=32,
                   batch_size=32)
    return [replace(base, seed=0, t1=0.5, early_stop=True), replace(base, seed=1, t1=1.0),
            replace(base, seed=2, t1=0.3), replace(base, seed=3, t1=0.5),
            replace(base, seed=0, objective="os", t0=None, t1=None)]


def test_stacks_group_runs_that_differ_only_in_seed_and_window():
    md_a, md_b, md_c, _, os_run = stacked_specs()
    groups = runner.stacks([md_a, os_run, md_b, md_c, replace(md_a, steps=80)], 2)
    assert [g.members for g in groups] == [(md_a, md_b), (os_run,), (md_c,), (replace(md_a, steps=80),)]
    assert [g.members for g in runner.stacks([md_a, os_run, md_b], 1)] == [(md_a,), (os_run,), (md_b,)]
    assert groups[0].name == md_a.name + " (+1 stacked)" and groups[2].name == md_c.name


def test_a_stacked_sweep_writes_what_a_run_by_run_sweep_writes(tmp_path):
    """The same run folders to round-off, run.json statuses alike: run 0 stops
    early (it reaches 0.99 by step 100) and leaves the stack while run 2 goes
    on; run 1 resumes from a checkpoint at step 20 (a stack of its own);
    run 3, already finished, is skipped."""
    specs = stacked_specs()[:4]
    for spec in specs:
        runner.execute(spec, str(tmp_path / "alone"))
    runner.execute(replace(specs[1], steps=20), str(tmp_path / "stacked"))
    runner.execute(specs[3], str(tmp_path / "stacked"))
    stack = runner.stacks(specs, 4)[0]
    runner.execute_stack(stack, str(tmp_path / "stacked"))
    assert runner.stack_status(tmp_path / "stacked" / "runs" / specs[0].name, stack) is not None
    for spec in specs:
        alone, stacked = (tmp_path / kind / "runs" / spec.name for kind in ("alone", "stacked"))
        marks = [json.loads((d / "run.json").read_text()) for d in (alone, stacked)]
        assert (marks[0]["status"], marks[0]["steps_done"]) == (marks[1]["status"], marks[1]["steps_done"])
        assert marks[1]["status"] == ("early_stop" if spec is specs[0] else "complete")
        lines = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
                 for d in (alone, stacked)]
        assert [r["step"] for r in lines[0]] == [r["step"] for r in lines[1]]
        for a, b in zip(*lines):
            assert b["val_acc"] == pytest.approx(a["val_acc"], abs=1e-6)
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)


def test_stack_flag_lists_members_and_refuses_zero(tmp_path, capsys):
    assert runner.main(["--preset", "tiny", "--root", str(tmp_path), "--stack", "2", "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(runner.PRESETS["tiny"]()) and "stack 1 of" in lines[0]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(runner.main, ["--preset", "tiny", "--root", str(tmp_path), "--stack", "0"])
    assert exit_info.value.code == 2 and "--stack" in capsys.readouterr().err


def test_the_runner_trains_stacks_through_submitit_and_counts_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(runner.PRESETS, "tiny", lambda: stacked_specs()[:3])
    args = ["--preset", "tiny", "--root", str(tmp_path), "--stack", "3", "--jobs", "1", "--no-progress"]
    assert runner.main(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "3 runs in 1 stacks: 2 complete, 1 early_stop"
    assert runner.main(args) == 0  # nothing left: skipped
    assert "3 runs in 1 stacks: 2 complete, 1 early_stop" in capsys.readouterr().out
