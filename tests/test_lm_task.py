"""The LM task on the shared engine and the `python -m mdtheory.train lm` CLI."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mdtheory.train.lm_task import LMTask, LMTaskConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--block-size", "32", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
        "--batch-size", "8", "--eval-blocks", "8", "--eval-nt", "4", "--eval-every", "5",
        "--ckpt-every", "5", "--no-progress"]


@pytest.fixture
def text_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MDTHEORY_CACHE_DIR", str(tmp_path / "cache"))
    lines = ["Shall I compare thee to a summer's day?", "Thou art more lovely and more temperate:",
             "Rough winds do shake the darling buds of May,", "And summer's lease hath all too short a date;"]
    path = tmp_path / "sonnet.txt"
    path.write_text("\n".join(lines[i % 4] for i in range(400)) + "\n")
    return path


def cli(*args, env_cache):
    env = {**os.environ, "MDTHEORY_CACHE_DIR": str(env_cache)}
    return subprocess.run([sys.executable, "-m", "mdtheory.train", "lm", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)


def records(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_cli_contract_and_resume(text_file, tmp_path):
    cache = tmp_path / "cache"
    full, part = tmp_path / "full", tmp_path / "part"
    base = ["--text-file", str(text_file), "--tokenizer", "char", "--window", "0.4", "0.5",
            "--seed", "3", *TINY]
    proc = cli(*base, "--steps", "10", "--out", str(full), env_cache=cache)
    assert proc.returncode == 0, proc.stderr
    recs = records(full)
    assert [r["step"] for r in recs] == [0, 5, 10]
    for r in recs:
        assert {"step", "full_range_test_loss", "full_range_test_loss_se", "full_range_val_loss",
                "full_range_val_loss_se"} <= set(r)
        assert r["full_range_test_loss_se"] > 0
    cfg = json.loads((full / "config.json").read_text())
    assert cfg["task"]["sampler"] == "window:0.4,0.5" and cfg["task"]["objective"] == "md"
    # stop at 5, resume to 10: identical metrics (batches are a function of seed and step)
    assert cli(*base, "--steps", "5", "--out", str(part), env_cache=cache).returncode == 0
    proc = cli(*base, "--steps", "10", "--out", str(part), "--resume", env_cache=cache)
    assert proc.returncode == 0, proc.stderr
    a, b = records(full)[-1], records(part)[-1]
    assert a["full_range_test_loss"] == pytest.approx(b["full_range_test_loss"], rel=1e-6)
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
    # an existing run is not overwritten without --resume
    proc = cli(*base, "--steps", "10", "--out", str(full), env_cache=cache)
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [
    ["--window", "0.6", "0.4"],
    ["--text-file", "/no/such/file.txt"],
    ["--sampler", "gaussian:1"],
    ["--tokenizer", "words"],
    ["--dropout", "2"],
    ["--objective", "ar", "--window", "0.4", "0.5"],   # ar has no mask rate: not silently ignored
    ["--objective", "ar", "--sampler", "beta:2,2"],
    ["--text-file", "/"],                              # a directory
])
def test_cli_bad_input_is_one_line(args, tmp_path, text_file):
    base = ["--text-file", str(text_file)] if "--text-file" not in args else []
    out = tmp_path / "run"
    proc = cli(*base, *args, "--steps", "2", "--out", str(out), *TINY, env_cache=tmp_path / "cache")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert not (out / "metrics.jsonl").exists()


def _task(text_file, **kw):
    cfg = dict(text_file=str(text_file), block_size=16, n_layer=1, n_head=2, n_embd=16,
               eval_blocks=4, eval_nt=2)
    cfg.update(kw)
    return LMTask(LMTaskConfig(**cfg))


def test_batches_are_a_function_of_seed_step_shard(text_file):
    task = _task(text_file, sampler="window:0.2,0.3")
    a = task.train_batch(7, 4, "cpu", shard=1)
    b = task.train_batch(7, 4, "cpu", shard=1)
    c = task.train_batch(7, 4, "cpu", shard=0)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["tokens"], c["tokens"])
    assert a["t"].min() >= 0.2 and a["t"].max() <= 0.3
    assert a["tokens"].max() < task.tok.mask_id


def test_md_loss_is_weighted_masked_ce(text_file):
    task = _task(text_file, sampler="point:0.5")
    torch.manual_seed(0)
    model = task.build_model()
    batch = task.train_batch(0, 4, "cpu")
    loss, diag = task.loss(model, batch)
    # with t = 1/2 fixed: loss = 2 * sum_masked CE / (B L) = 2 * masked_ce * masked fraction
    frac = batch["mask"].float().mean()
    assert float(loss.detach()) == pytest.approx(2 * float(diag["masked_ce"]) * float(frac), rel=1e-5)


def test_ar_baseline_same_backbone(text_file):
    task = _task(text_file, objective="ar")
    torch.manual_seed(0)
    model = task.build_model()
    assert model.config.attention == "causal"
    batch = task.train_batch(0, 4, "cpu")
    assert batch["tokens"].shape == (4, 17) and "mask" not in batch
    loss, _ = task.loss(model, batch)
    assert 0 < float(loss.detach()) < 10
    ev = task.evaluate(model.eval(), 0)
    assert ev["eval_kind"] == "ar_exact_nll" and ev["full_range_test_loss_se"] > 0
    md = _task(text_file)
    assert md.build_model().config.attention == "bidirectional"


@pytest.mark.parametrize("objective", ["md", "ar"])
def test_every_evaluation_scores_val_like_test(text_file, objective):
    from mdtheory.evaluate import full_range_loss

    task = _task(text_file, objective=objective)
    torch.manual_seed(0)
    model = task.build_model().eval()
    ev = task.evaluate(model, 0)
    assert ev["full_range_val_loss_se"] > 0 and ev["full_range_test_loss_se"] > 0
    assert task.val.shape == task.test.shape and not torch.equal(task.val, task.test)
    if objective == "md":  # same strata and mask seeds, val blocks
        ref = full_range_loss(model, task.val, task.tok.mask_id, n_t=task.cfg.eval_nt,
                              seed=task.cfg.eval_seed, scheme=task.cfg.eval_scheme)
        assert ev["full_range_val_loss"] == pytest.approx(ref.loss, rel=1e-9)
        assert ev["full_range_val_loss_se"] == pytest.approx(ref.se, rel=1e-9)
    else:  # exact NLL of the val blocks
        x = task.val
        with torch.no_grad():
            ce = torch.nn.functional.cross_entropy(model(x[:, :-1]).transpose(1, 2), x[:, 1:])
        assert ev["full_range_val_loss"] == pytest.approx(float(ce), rel=1e-5)


@pytest.mark.parametrize("args", [
    ["--eval-nt", "1000000000"],
    ["--eval-blocks", "1000000000000"],
    ["--n-embd", "1000000", "--n-head", "1"],
    ["--block-size", "30000000", "--batch-size", "4096"],
])
def test_huge_sizes_are_refused_with_an_estimate(args, tmp_path, text_file):
    out = tmp_path / "run"
    tiny = [a for a in TINY]
    proc = cli("--text-file", str(text_file), *tiny, *args, "--steps", "2", "--out", str(out),
               env_cache=tmp_path / "cache")
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert proc.stdout == "" and len(err.splitlines()) == 1
    assert "GiB" in err or "eval_nt must be" in err
    assert not out.exists() or not any(out.iterdir())


def test_memory_estimate_grows_with_the_sizes():
    from mdtheory.train.lm_task import memory_estimate

    base = memory_estimate(LMTaskConfig(), 100, 32)
    wide = memory_estimate(LMTaskConfig(n_embd=256), 100, 32)
    strata = memory_estimate(LMTaskConfig(eval_nt=64), 100, 32)
    assert wide["training"] > 2 * base["training"] and wide["parameters"] > 3 * base["parameters"]
    assert strata["evaluation"] > base["evaluation"]
