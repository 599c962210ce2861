"""Run folders: a user's files are never overwritten, a refused command
changes nothing, two trainers never share a folder, checkpoints never run code."""
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mdtheory.errors import UserError
from mdtheory.runfiles import CKPT_NAME, CONFIG_NAME, METRICS_NAME, read_metrics
from mdtheory.train import train
from mdtheory.train.__main__ import main
from mdtheory.train.checkpoint import load_checkpoint

from test_engine import tiny_config, tiny_task
from test_train_cli import cli

REPO = Path(__file__).resolve().parent.parent
TINY = ["parity", "--n", "8", "--k", "2", "--train-size", "64", "--val-size", "32", "--n-layer", "1",
        "--n-head", "2", "--n-embd", "16", "--batch-size", "16", "--tbins", "0", "--threads", "1",
        "--no-progress", "--eval-every", "5", "--ckpt-every", "10", "--seed", "1"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)




def snapshot(folder: Path) -> dict:
    """Every file's bytes, to show that a refused command changed nothing."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def assert_refused(code, out, err, *words):
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, (word, err)


def make_run(out: Path, capsys, *extra, steps=20):
    code, _, err = cli([*TINY, "--window", "0", "0.2", "--steps", str(steps), "--out", str(out), *extra],
                       capsys)
    assert code == 0, err


# ---- a folder that is not a run of ours --------------------------------------------

def test_foreign_folder_is_refused_and_left_alone(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / METRICS_NAME).write_text('{"my": "own numbers"}\n')
    (mine / "notes.txt").write_text("keep me")
    before = snapshot(mine)
    code, out, err = cli([*TINY, "--steps", "5", "--out", str(mine)], capsys)
    assert_refused(code, out, err, "not empty", str(mine))
    assert snapshot(mine) == before
    # also with --resume, and with a config.json that is not ours
    assert cli([*TINY, "--steps", "5", "--out", str(mine), "--resume"], capsys)[0] == 2
    (mine / CONFIG_NAME).write_text('{"learning_rate": 1}')
    before = snapshot(mine)
    code, out, err = cli([*TINY, "--steps", "5", "--out", str(mine)], capsys)
    assert_refused(code, out, err, CONFIG_NAME)
    assert snapshot(mine) == before


def test_empty_folder_is_fine(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    make_run(empty, capsys, steps=5)
    assert [r["step"] for r in read_metrics(empty)] == [0, 5]


# ---- metrics.jsonl --------------------------------------------------------------------

def test_bad_line_in_the_middle_refuses_resume(tmp_path, capsys):
    out = tmp_path / "run"
    make_run(out, capsys, "--ckpt-every", "20")
    lines = (out / METRICS_NAME).read_text().splitlines()
    lines[2] = lines[2][:10]  # broken record in the middle, later ones intact
    (out / METRICS_NAME).write_text("\n".join(lines) + "\n")
    before = snapshot(out)
    code, outs, err = cli([*TINY, "--window", "0", "0.2", "--steps", "30", "--out", str(out),
                           "--resume", "--ckpt-every", "20"], capsys)
    assert_refused(code, outs, err, "line 3")
    assert snapshot(out) == before
    with pytest.raises(UserError, match="line 3"):
        read_metrics(out)


def test_torn_last_line_is_dropped_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    make_run(out, capsys, "--ckpt-every", "20")
    with open(out / METRICS_NAME, "a") as fh:
        fh.write('{"step": 25, "lo')  # killed while writing
    assert [r["step"] for r in read_metrics(out)] == [0, 5, 10, 15, 20]
    make_run(out, capsys, "--ckpt-every", "20", "--resume", steps=30)
    assert [r["step"] for r in read_metrics(out)] == [0, 5, 10, 15, 20, 25, 30]


def test_non_utf8_metrics_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    make_run(out, capsys)
    with open(out / METRICS_NAME, "ab") as fh:
        fh.write(b'{"step": 21, "note": "\xff\xfe"}\n')
    with pytest.raises(UserError, match="UTF-8"):
        read_metrics(out)
    before = snapshot(out)
    code, outs, err = cli([*TINY, "--window", "0", "0.2", "--steps", "30", "--out", str(out),
                           "--resume"], capsys)
    assert_refused(code, outs, err, "UTF-8")
    assert snapshot(out) == before


# ---- the lock -------------------------------------------------------------------------

def test_second_trainer_on_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    make_run(out, capsys, steps=10)
    before = snapshot(out)
    # another process holds the folder: a separate open file description
    # conflicts with ours exactly as another process's would
    holder = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, outs, err = cli([*TINY, "--window", "0", "0.2", "--steps", "20", "--out", str(out),
                               "--resume"], capsys)
        assert_refused(code, outs, err, "in use")
        assert snapshot(out) == before
    finally:
        os.close(holder)
    make_run(out, capsys, "--resume", steps=20)  # released: it runs


def test_lock_between_real_processes(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    hold = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.run([sys.executable, "-m", "mdtheory.train", *TINY, "--steps", "5",
                               "--out", str(out)], capture_output=True, text=True, env=env, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2 and "in use" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert list(out.iterdir()) == []


# ---- a run that fails at its start ------------------------------------------------------

class FailFirstEvaluation:
    """Wraps a task whose first evaluation crashes (out of memory, a bug, ...)."""

    def __init__(self, task):
        self.task = task

    def __getattr__(self, name):
        return getattr(self.task, name)

    def evaluate(self, model, step):
        raise MemoryError("simulated")


def test_run_failing_at_start_can_be_retried(tmp_path):
    with pytest.raises(MemoryError):
        train(FailFirstEvaluation(tiny_task()), tiny_config(tmp_path, steps=10))
    # the same command again, with or without --resume, starts the run
    result = train(tiny_task(), tiny_config(tmp_path, steps=10))
    assert [r["step"] for r in result.records] == [0, 10]
    assert [r["step"] for r in read_metrics(tmp_path)] == [0, 10]


def test_stopped_run_without_checkpoint_keeps_its_records_for_other_arguments(tmp_path, capsys):
    out = tmp_path / "run"
    make_run(out, capsys, "--ckpt-every", "100", steps=20)  # records, but its only ckpt is at the end
    (out / CKPT_NAME).unlink()  # as if killed before its first checkpoint
    before = snapshot(out)
    for window, steps, field in (("0.9", "20", "task.sampler"), ("0.2", "10", "steps")):
        for extra in (["--resume"], []):
            code, outs, err = cli([*TINY, "--window", "0", window, "--steps", steps, "--out", str(out),
                                   "--ckpt-every", "100", *extra], capsys)
            assert_refused(code, outs, err, field)
            assert snapshot(out) == before
    make_run(out, capsys, "--ckpt-every", "100", "--resume", steps=20)  # same arguments: starts again
    assert [r["step"] for r in read_metrics(out)] == [0, 5, 10, 15, 20]


# ---- resume checks ----------------------------------------------------------------------

def test_resume_without_config_json_checks_the_checkpoint_task(tmp_path, capsys):
    out = tmp_path / "run"
    make_run(out, capsys)
    (out / CONFIG_NAME).unlink()
    before = snapshot(out)
    code, outs, err = cli([*TINY, "--window", "0", "0.9", "--steps", "30", "--out", str(out),
                           "--resume"], capsys)
    assert_refused(code, outs, err, "task.sampler")
    assert snapshot(out) == before
    # the same task resumes and writes a new config.json
    make_run(out, capsys, "--resume", steps=30)
    assert json.loads((out / CONFIG_NAME).read_text())["train"]["steps"] == 30


def test_resume_with_fewer_steps_than_done_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    make_run(out, capsys)
    before = snapshot(out)
    code, outs, err = cli([*TINY, "--window", "0", "0.2", "--steps", "10", "--out", str(out),
                           "--resume"], capsys)
    assert_refused(code, outs, err, "steps=10", "20")
    assert snapshot(out) == before


@pytest.mark.parametrize("extra, field", [(["--lr", "0.01"], "lr"), (["--k", "3"], "task."),
                                          (["--batch-size", "32"], "batch_size")])
def test_resume_mismatch_names_the_field(tmp_path, capsys, extra, field):
    out = tmp_path / "run"
    make_run(out, capsys)
    before = snapshot(out)
    code, outs, err = cli([*TINY, "--window", "0", "0.2", "--steps", "30", "--out", str(out),
                           "--resume", *extra], capsys)
    assert_refused(code, outs, err, field)
    assert snapshot(out) == before


# ---- checkpoints never run code ---------------------------------------------------------

class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path, capsys):
    out, marker = tmp_path / "run", tmp_path / "pwned"
    make_run(out, capsys)
    ckpt = load_checkpoint(out / CKPT_NAME)
    ckpt["accumulator"] = Payload(marker)
    torch.save(ckpt, out / CKPT_NAME)
    before = snapshot(out)
    code, outs, err = cli([*TINY, "--window", "0", "0.2", "--steps", "30", "--out", str(out),
                           "--resume"], capsys)
    assert_refused(code, outs, err, CKPT_NAME)
    assert not marker.exists()
    assert snapshot(out) == before


def test_checkpoint_loads_with_weights_only(tmp_path, capsys):
    out = tmp_path / "run"
    make_run(out, capsys)
    payload = torch.load(out / CKPT_NAME, weights_only=True)
    assert payload["step"] == 20 and len(payload["rng"]) == 1
    assert payload["train"]["steps"] == 20 and payload["task"]["objective"] == "md"


# ---- output paths and arguments ---------------------------------------------------------

def test_bad_out_paths_are_one_line(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    for out in ("/proc/mdtheory-test/run", str(a_file), str(a_file / "run")):
        code, outs, err = cli([*TINY, "--steps", "3", "--out", out], capsys)
        assert_refused(code, outs, err, out)
    assert a_file.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_is_one_line(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, outs, err = cli([*TINY, "--steps", "3", "--out", str(locked / "run")], capsys)
        assert_refused(code, outs, err)
        code, outs, err = cli([*TINY, "--steps", "3", "--out", str(locked)], capsys)
        assert_refused(code, outs, err, "not writable")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("bad, word", [(["--seed", "-1"], "seed"),
                                       (["--objective", "ar", "--window", "0", "0.5"], "--window"),
                                       (["--objective", "os", "--sampler", "uniform"], "--sampler"),
                                       (["--lr-decay-steps", "0"], "lr_decay_steps"),
                                       (["--min-lr-frac", "2"], "min_lr_frac")])
def test_bad_arguments_are_refused(tmp_path, capsys, bad, word):
    out = tmp_path / "run"
    code, outs, err = cli([*TINY, "--steps", "3", "--out", str(out), *bad], capsys)
    assert_refused(code, outs, err, word)
    assert not out.exists() or list(out.iterdir()) == []


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["parity", "--help"])
    text = " ".join(capsys.readouterr().out.split("options:", 1)[1].split())
    for flag, default in [("--objective {md,os,ar}", "md"), ("--n-layer N_LAYER", "2"),
                          ("--steps STEPS", "2000"), ("--lr-schedule {constant,cosine}", "constant"),
                          ("--loss-weighting {inverse_t,none}", "inverse_t")]:
        assert f"{flag} " in text and f"(default: {default})" in text.split(flag, 1)[1][:200], flag
