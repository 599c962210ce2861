"""The LM trainer under torchrun (2 CPU processes, gloo) matches one process.

With world size 2 the engine gives rank r the micro-batch shard r; one
process with --grad-accum 2 draws the same two shards and averages their
gradients the same way, so the runs must agree up to float round-off.
Tolerance: relative 1e-4 on the logged training loss and on the full-range
test loss after a few steps.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(prefix, out, text, cache, extra, steps=4):
    args = ["lm", "--text-file", str(text), "--tokenizer", "char", "--window", "0.3", "0.6",
            "--steps", str(steps), "--seed", "5", "--out", str(out), "--block-size", "32", "--n-layer", "1",
            "--n-head", "2", "--n-embd", "32", "--batch-size", "8", "--eval-blocks", "8",
            "--eval-nt", "4", "--eval-every", "2", "--ckpt-every", "4", "--no-progress",
            "--device", "cpu", *extra]
    env = {**os.environ, "MDTHEORY_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*prefix, "-m", "mdtheory.train", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]


def _torchrun():
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
            "--master_addr=127.0.0.1", f"--master_port={_free_port()}"]


def _corpus(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("".join(f"line {i % 37} of a tiny corpus, said {i % 5}.\n" for i in range(600)))
    return text


def test_torchrun_two_cpu_processes_match_single_process(tmp_path):
    text, cache = _corpus(tmp_path), tmp_path / "cache"
    single = _run([sys.executable], tmp_path / "single", text, cache, ["--grad-accum", "2"])
    ddp = _run(_torchrun(), tmp_path / "ddp", text, cache, [])
    assert [r["step"] for r in ddp] == [r["step"] for r in single] == [0, 2, 4]
    cfg = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert cfg["world_size"] == 2
    for a, b in zip(single[1:], ddp[1:]):
        assert b["loss"] == pytest.approx(a["loss"], rel=TOL)
        assert b["full_range_test_loss"] == pytest.approx(a["full_range_test_loss"], rel=TOL)


def _without_timing(records):
    return [{k: v for k, v in r.items() if k not in ("elapsed_s", "tokens_per_s")} for r in records]


@pytest.mark.slow
def test_ddp_ranks_draw_different_dropout_and_resume_exactly(tmp_path):
    """Each rank seeds its RNG with seed + rank after the (identical) model
    init, and each rank's RNG state is saved and restored: a DDP run with
    dropout stopped at step 2 and resumed equals the uninterrupted DDP run."""
    import torch

    text, cache = _corpus(tmp_path), tmp_path / "cache"
    dropout = ["--dropout", "0.3", "--ckpt-every", "2"]
    whole = _run(_torchrun(), tmp_path / "whole", text, cache, dropout)
    _run(_torchrun(), tmp_path / "part", text, cache, dropout, steps=2)
    rng = torch.load(tmp_path / "part" / "ckpt.pt", weights_only=True)["rng"]
    assert len(rng) == 2 and not torch.equal(rng[0]["torch"], rng[1]["torch"])
    part = _run(_torchrun(), tmp_path / "part", text, cache, [*dropout, "--resume"])
    assert _without_timing(part) == _without_timing(whole)
