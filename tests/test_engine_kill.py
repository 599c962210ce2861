"""A run killed with SIGKILL and resumed ends exactly like an uninterrupted one."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mdtheory.train.engine import load_checkpoint

REPO = Path(__file__).resolve().parent.parent
TIMING_KEYS = ("elapsed_s", "tokens_per_s")


def command(out_dir, steps, resume=False):
    cmd = [sys.executable, "-m", "mdtheory.train", "parity", "--objective", "md", "--n", "8",
           "--k", "2", "--train-size", "128", "--val-size", "64", "--window", "0", "0.4",
           "--steps", str(steps), "--seed", "5", "--out", str(out_dir), "--n-layer", "1",
           "--n-head", "2", "--n-embd", "32", "--batch-size", "32", "--eval-every", "40",
           "--ckpt-every", "15", "--threads", "1", "--no-progress", "--tbins", "2"]
    return cmd + (["--resume"] if resume else [])


def records(out_dir):
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(l).items() if k not in TIMING_KEYS} for l in lines]


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    steps = 400
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    proc = subprocess.Popen(command(killed, steps), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = killed / "ckpt.pt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and load_checkpoint(ckpt)["step"] >= 60:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(ckpt)["step"]
    assert 60 <= killed_at < steps
    subprocess.run(command(killed, steps, resume=True), env=env, check=True, timeout=600,
                   capture_output=True)
    subprocess.run(command(ref, steps), env=env, check=True, timeout=600, capture_output=True)
    assert records(killed) == records(ref)
    assert [r["step"] for r in records(killed)] == list(range(0, steps + 1, 40))
    final_ref = load_checkpoint(ref / "ckpt.pt")["model"]
    final_killed = load_checkpoint(ckpt)["model"]
    assert all(torch.equal(final_ref[k], final_killed[k]) for k in final_ref)
