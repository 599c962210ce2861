"""`python -m mdtheory.train parity ...`: contract of the command line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mdtheory.train.__main__ import main
from test_failure_modes import cli as run_tool

REPO = Path(__file__).resolve().parent.parent
TINY = ["--n", "8", "--k", "2", "--train-size", "64", "--val-size", "32", "--n-layer", "1",
        "--n-head", "2", "--n-embd", "16", "--batch-size", "16", "--tbins", "0", "--threads", "1",
        "--no-progress"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def cli(argv, capsys):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    return run_tool(main, argv, capsys)


@pytest.mark.parametrize("bad", [
    ["--k", "9"],                          # k > n
    ["--window", "0.5", "0.1"],            # t0 > t1
    ["--window", "0", "1.5"],              # outside [0, 1]
    ["--window", "0", "0.2", "--eps", "0"],  # 1/t weight reaching t = 0
    ["--sampler", "gamma:1,2"],            # unknown sampler
    ["--objective", "xx"],
    ["--objective", "ar", "--model", "mlp"],
    ["--model", "rnn"],
    ["--steps", "0"],
    ["--n", "abc"],
    ["--train-size", "250"],               # 250 + 32 > 2^8 distinct strings
    ["--threads", "-1"],
    ["--lr", "-1"],
    ["--device", "tpu"],
    ["--n-embd", "0"],                     # must not fall back to the default width
    ["--grad-clip", "nan"],
    ["--tbins", "-3"],
])
def test_bad_arguments_exit_2_with_one_line(bad, tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, err = cli(["parity", *TINY, "--steps", "3", "--out", str(out_dir), *bad], capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "error" in err
    assert not (out_dir / "metrics.jsonl").exists() and not (out_dir / "ckpt.pt").exists()


def test_missing_out_and_subcommand(capsys):
    assert cli(["parity", *TINY], capsys)[0] == 2
    code, out, err = cli([], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1


def test_run_resume_and_corrupt_checkpoint(tmp_path, capsys):
    out_dir = tmp_path / "run"
    args = ["parity", *TINY, "--objective", "md", "--window", "0", "0.3", "--seed", "1",
            "--out", str(out_dir), "--eval-every", "4", "--ckpt-every", "4"]
    code, out, _ = cli([*args, "--steps", "8"], capsys)
    assert code == 0 and "val_acc" in out
    # an existing run is not overwritten without --resume
    assert cli([*args, "--steps", "8"], capsys)[0] == 2
    assert cli([*args, "--steps", "12", "--resume"], capsys)[0] == 0
    records = [json.loads(l) for l in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 4, 8, 12]
    assert json.loads((out_dir / "config.json").read_text())["resumes"][0]["from_step"] == 8
    (out_dir / "ckpt.pt").write_bytes(b"\x00garbage")
    code, out, err = cli([*args, "--steps", "16", "--resume"], capsys)
    assert code == 2 and out == "" and "corrupt" in err and len(err.strip().splitlines()) == 1


def test_real_process_contract(tmp_path):
    """The command exactly as the issue writes it, in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "mdtheory.train", "parity", "--objective", "md", "--n", "8",
           "--k", "2", "--train-size", "64", "--window", "0", "0.3", "--steps", "5", "--seed", "3",
           "--out", str(out_dir), "--val-size", "32", "--n-embd", "16", "--n-layer", "1",
           "--eval-every", "5", "--threads", "1", "--tbins", "0"]
    ok = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    record = json.loads((out_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"step", "loss", "train_acc", "val_acc"} <= set(record) and record["step"] == 5
    config = json.loads((out_dir / "config.json").read_text())
    assert config["task"]["objective"] == "md" and config["train"]["steps"] == 5
    bad = subprocess.run(cmd[:-12] + ["--k", "9", "--out", str(tmp_path / "bad")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1
