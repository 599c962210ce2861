"""Runs stacked in one process (mdtheory.train.stacked) against the same runs trained one by one."""
import json
import math

import pytest
import torch

from mdtheory.errors import UserError
from mdtheory.train import train
from mdtheory.train.checkpoint import load_checkpoint
from mdtheory.train.parity_task import ParityTask, ParityTaskConfig
from mdtheory.train.stacked import train_stacked

RUNS = ((0, "window:0,0.2"), (1, "window:0,0.4"), (2, "uniform"))
TOL = 1e-5


def make(seed, sampler, model="mlp", objective="md", **extra):
    cfg = ParityTaskConfig(n=8, k=2, train_size=48, val_size=32, seed=seed, sampler=sampler, model=model,
                           objective=objective, n_layer=1, n_head=2, n_embd=16, tbins=2, tbin_batch=16,
                           energy_every=2, energy_samples=128, **extra)
    return ParityTask(cfg), cfg.train_config(steps=6, eval_every=2, ckpt_every=4, batch_size=16, progress=False)


def folder(tmp_path, kind, i):
    return str(tmp_path / kind / f"run{i}")


def records(path):
    with open(f"{path}/metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def assert_close(a, b, where=""):
    """Equal to TOL, numbers and nested dicts and lists alike (timings left out)."""
    if isinstance(a, dict):
        keys = set(a) - {"elapsed_s", "tokens_per_s"}
        assert keys == set(b) - {"elapsed_s", "tokens_per_s"}, where
        for k in keys:
            assert_close(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    elif isinstance(a, (int, float)):
        assert b == pytest.approx(a, rel=TOL, abs=TOL), where
    else:
        assert a == b, where


def assert_same_checkpoint(path_a, path_b):
    a, b = load_checkpoint(f"{path_a}/ckpt.pt"), load_checkpoint(f"{path_b}/ckpt.pt")
    assert a["step"] == b["step"]
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=TOL, atol=TOL)
    for key, state in a["optimizer"]["state"].items():
        for field, value in state.items():
            torch.testing.assert_close(b["optimizer"]["state"][key][field], value, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("model,objective", [("mlp", "md"), ("transformer", "md"), ("transformer", "os")])
def test_stacked_runs_write_what_separate_runs_write(tmp_path, model, objective):
    pairs = [make(seed, sampler, model, objective) for seed, sampler in RUNS]
    results = train_stacked([t for t, _ in pairs],
                            [with_folder(c, folder(tmp_path, "stacked", i)) for i, (_, c) in enumerate(pairs)])
    for i, (seed, sampler) in enumerate(RUNS):
        task, cfg = make(seed, sampler, model, objective)
        alone = train(task, with_folder(cfg, folder(tmp_path, "alone", i)))
        stacked, separate = records(folder(tmp_path, "stacked", i)), records(folder(tmp_path, "alone", i))
        assert [r["step"] for r in stacked] == [0, 2, 4, 6]
        assert_close(separate, stacked, f"run {i}")
        assert_close(alone.records, results[i].records, f"run {i} (returned)")
        assert_same_checkpoint(folder(tmp_path, "alone", i), folder(tmp_path, "stacked", i))
    if objective == "md":  # the diagnostics see each run's own secret set, not the first run's
        assert stacked[-1]["train/p_signal"] != records(folder(tmp_path, "stacked", 0))[-1]["train/p_signal"]


def with_folder(cfg, path, **changes):
    return cfg.__class__(**{**vars(cfg), "out_dir": path, **changes})


def test_a_stopped_run_leaves_the_stack_and_the_others_go_on(tmp_path):
    def stop_at_4(record):
        return record["step"] >= 4

    pairs = [make(seed, sampler) for seed, sampler in RUNS[:2]]
    results = train_stacked([t for t, _ in pairs], [with_folder(c, folder(tmp_path, "stacked", i))
                                                    for i, (_, c) in enumerate(pairs)], stops=[stop_at_4, None])
    assert results[0].stopped_early and not results[1].stopped_early
    assert [r["step"] for r in records(folder(tmp_path, "stacked", 0))] == [0, 2, 4]
    for i, stop in enumerate((stop_at_4, None)):
        task, cfg = make(*RUNS[i])
        train(task, with_folder(cfg, folder(tmp_path, "alone", i)), stop=stop)
        assert_close(records(folder(tmp_path, "alone", i)), records(folder(tmp_path, "stacked", i)))
        assert_same_checkpoint(folder(tmp_path, "alone", i), folder(tmp_path, "stacked", i))


def test_a_stacked_checkpoint_resumes_alone_and_an_alone_one_stacked(tmp_path):
    pairs = [make(seed, sampler) for seed, sampler in RUNS[:2]]
    # run 0: 4 steps stacked, then 2 alone; run 1: 4 steps alone, then 2 stacked with run 0's twin
    train_stacked([pairs[0][0], make(*RUNS[2])[0]],
                  [with_folder(pairs[0][1], folder(tmp_path, "mixed", 0), steps=4),
                   with_folder(make(*RUNS[2])[1], folder(tmp_path, "mixed", 2), steps=4)])
    train(make(*RUNS[0])[0], with_folder(pairs[0][1], folder(tmp_path, "mixed", 0), resume=True))
    train(pairs[1][0], with_folder(pairs[1][1], folder(tmp_path, "mixed", 1), steps=4))
    train_stacked([make(*RUNS[1])[0], make(*RUNS[2])[0]],
                  [with_folder(pairs[1][1], folder(tmp_path, "mixed", 1), resume=True),
                   with_folder(make(*RUNS[2])[1], folder(tmp_path, "mixed", 2), resume=True)])
    for i in range(3):
        task, cfg = make(*RUNS[i])
        train(task, with_folder(cfg, folder(tmp_path, "alone", i)))
        assert_close(records(folder(tmp_path, "alone", i)), records(folder(tmp_path, "mixed", i)), f"run {i}")
        assert_same_checkpoint(folder(tmp_path, "alone", i), folder(tmp_path, "mixed", i))


def test_runs_that_cannot_share_a_step_are_refused(tmp_path):
    a, b = make(0, "uniform"), make(1, "uniform", model="transformer")
    with pytest.raises(UserError, match="task differs in .*model"):
        train_stacked([a[0], b[0]], [a[1], b[1]])
    c = make(1, "uniform")
    with pytest.raises(UserError, match="training settings differ"):
        train_stacked([a[0], c[0]], [a[1], with_folder(c[1], None, lr=1e-2)])
    with pytest.raises(UserError, match="grad_accum = 1"):
        train_stacked([a[0], c[0]], [with_folder(a[1], None, grad_accum=2), with_folder(c[1], None, grad_accum=2)])
    train(a[0], with_folder(a[1], folder(tmp_path, "x", 0), steps=2))
    with pytest.raises(UserError, match="resume from one step"):
        train_stacked([make(0, "uniform")[0], c[0]], [with_folder(a[1], folder(tmp_path, "x", 0), resume=True),
                                                      with_folder(c[1], folder(tmp_path, "x", 1))])
