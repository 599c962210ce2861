"""The parity task: what a training batch is, bounded t-bin diagnostics and
refusal of configurations that cannot fit in memory."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch

from mdtheory.errors import UserError
from mdtheory.masking import DEFAULT_EPS
from mdtheory.train import TrainConfig, train
from mdtheory.train.parity_task import MAX_TBINS, ParityTask, ParityTaskConfig, estimate_memory

N_TRAIN = 24


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def tiny_task(**overrides) -> ParityTask:
    cfg = dict(n=8, k=2, train_size=N_TRAIN, val_size=32, sampler="window:0,0.5", n_layer=1,
               n_head=2, n_embd=16, tbins=2, tbin_batch=16, seed=0)
    cfg.update(overrides)
    return ParityTask(ParityTaskConfig(**cfg))


def _strings(tokens: torch.Tensor) -> Counter:
    return Counter(tuple(row) for row in tokens.tolist())


# --- what a batch is --------------------------------------------------------

def test_one_shard_of_exactly_n_is_the_training_set_in_order():
    task = tiny_task()
    batch = task.train_batch(5, N_TRAIN, "cpu", shard=0)
    assert torch.equal(batch["tokens"], task.data.train_tokens)


def test_mini_batch_is_sampled_per_shard():
    task = tiny_task()
    a, b = (task.train_batch(3, 8, "cpu", shard=s)["tokens"] for s in (0, 1))
    assert a.shape == b.shape == (8, 9) and not torch.equal(a, b)


@pytest.mark.parametrize("micro", [N_TRAIN, N_TRAIN + 10, 2 * N_TRAIN + 5])
def test_micro_batches_of_at_least_n_keep_their_size_and_differ(micro):
    """Under grad-accum (or DDP) with a micro-batch >= N the shards used to
    be the same N strings: a --batch-size above N silently became N."""
    task = tiny_task()
    shards = [task.train_batch(7, micro, "cpu", shard=s)["tokens"] for s in range(2)]
    assert all(len(t) == micro for t in shards)
    assert not torch.equal(shards[0], shards[1])
    # over the whole step every string is used as evenly as the size allows
    counts = _strings(torch.cat(shards))
    assert set(counts) == set(_strings(task.data.train_tokens))
    assert max(counts.values()) - min(counts.values()) <= 1
    # and the draw is a function of (seed, step, shard) only
    assert torch.equal(task.train_batch(7, micro, "cpu", shard=1)["tokens"], shards[1])


def test_engine_grad_accum_trains_on_the_batch_size_asked_for():
    task = tiny_task(objective="os")
    seen = []
    draw = task.train_batch

    def spy(step, batch_size, device, shard=0):
        batch = draw(step, batch_size, device, shard)
        if step == 0:
            seen.append(batch["tokens"])
        return batch

    task.train_batch = spy
    train(task, TrainConfig(steps=1, batch_size=2 * N_TRAIN, grad_accum=2, eval_every=1, progress=False,
                            device="cpu"))
    shards = seen[-2:]  # the step's two micro-batches (the first call is the step-0 loss record)
    assert [len(t) for t in shards] == [N_TRAIN, N_TRAIN]
    assert not torch.equal(shards[0], shards[1])
    assert sum(_strings(torch.cat(shards)).values()) == 2 * N_TRAIN


# --- t-bin diagnostics --------------------------------------------------------

@pytest.mark.parametrize("spec", ["beta:2,2", "mixture:0.5*beta:2,2+0.5*window:0.2,0.4"])
def test_tbins_stay_above_the_eps_floor(spec):
    task = tiny_task(sampler=spec, tbins=4)
    rates = []
    weight = task.sampler.weight

    def recording_weight(t):
        rates.append(float(t.min()))
        return weight(t)

    task.sampler.weight = recording_weight
    torch.manual_seed(0)
    model = task.build_model().eval()
    record = task.evaluate(model, 0)["tbin"]
    assert record["edges"][0] >= DEFAULT_EPS
    assert min(rates) >= DEFAULT_EPS
    assert all(math.isfinite(v) for v in record["loss"] + record["grad_norm"])
    # an untrained model's MD loss is about log(4) per masked token under the 1/t weight
    assert all(0 < v < 10 for v in record["loss"])


def test_tbin_below_the_floor_is_clipped_to_it():
    from mdtheory.train.diagnostics import tbin_diagnostics
    from mdtheory.train.parity_task import MASK

    task = tiny_task(sampler="beta:2,2")
    rates = []
    weight = task.sampler.weight
    task.sampler.weight = lambda t: (rates.append(float(t.min())), weight(t))[1]
    torch.manual_seed(0)
    out = tbin_diagnostics(task.build_model(), task.data.train_tokens, task.sampler, MASK,
                           [0.0, 1e-5, 0.5], seed=0)
    assert min(rates) >= DEFAULT_EPS and all(math.isfinite(v) for v in out["loss"])


# --- bounds ---------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [dict(n_embd=1_000_000), dict(n=1_000_000, k=3),
                                       dict(train_size=10 ** 9), dict(model="mlp", n_embd=10 ** 7)])
def test_configs_that_cannot_fit_are_refused_before_allocating(overrides):
    started = time.perf_counter()
    with pytest.raises(UserError, match="GiB"):
        tiny_task(**overrides)
    assert time.perf_counter() - started < 5


def test_memory_check_uses_the_estimate():
    cfg = ParityTaskConfig(n=8, k=2, train_size=N_TRAIN, val_size=32, n_embd=16)
    need = sum(estimate_memory(cfg).values())
    ParityTask.check_memory(cfg, available=need + 1)
    with pytest.raises(UserError, match="GiB"):
        ParityTask.check_memory(cfg, available=need - 1)


def test_study_configs_pass_the_memory_check():
    for cfg in (ParityTaskConfig(), ParityTaskConfig(n=12, k=3, train_size=64, n_embd=64),
                ParityTaskConfig(n=20, k=6, train_size=5000, n_layer=6, n_embd=384)):
        assert sum(estimate_memory(cfg).values()) < 2 * 2 ** 30


@pytest.mark.parametrize("tbins", [-1, MAX_TBINS + 1, 1_000_000])
def test_tbins_are_bounded(tbins):
    with pytest.raises(UserError, match="tbins"):
        tiny_task(tbins=tbins)
    tiny_task(tbins=MAX_TBINS)


@pytest.mark.parametrize("args", [["--n-embd", "1000000"], ["--n", "1000000"], ["--tbins", "1000000"]])
def test_cli_refuses_with_one_line(tmp_path, args):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "mdtheory.train", "parity", *args, "--steps", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
