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
