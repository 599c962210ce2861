"""The training engine: learning, exact resume, divergence, bad checkpoints."""
import json
import math

import pytest
import torch

from mdtheory.errors import UserError
from mdtheory.train import TrainConfig, TrainingDiverged, train
from mdtheory.runfiles import CKPT_NAME, METRICS_NAME
from mdtheory.train.engine import Accumulator, Runtime, load_checkpoint
from mdtheory.train.parity_task import ParityTask, ParityTaskConfig

TIMING_KEYS = ("elapsed_s", "tokens_per_s")


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models: one thread is fastest, and the machine is shared
    torch.set_num_threads(1)


def tiny_task(**overrides):
    cfg = dict(n=8, k=2, train_size=192, val_size=64, sampler="window:0,0.5", n_layer=1,
               n_head=2, n_embd=16, tbins=2, tbin_batch=32, seed=0)
    cfg.update(overrides)
    return ParityTask(ParityTaskConfig(**cfg))


def tiny_config(tmp_path=None, **overrides):
    cfg = dict(steps=30, batch_size=16, lr=3e-3, eval_every=10, ckpt_every=7, progress=False,
               device="cpu", out_dir=str(tmp_path) if tmp_path else None)
    cfg.update(overrides)
    return TrainConfig(**cfg)


def without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def read_records(out):
    return [json.loads(line) for line in (out / METRICS_NAME).read_text().splitlines()]


class Interrupt(Exception):
    pass


class StopAt:
    """Wraps a task and raises at a given step: a crash in the middle of a run."""

    def __init__(self, task, step):
        self.task, self.step = task, step

    def __getattr__(self, name):
        return getattr(self.task, name)

    def train_batch(self, step, *args, **kwargs):
        if step == self.step:
            raise Interrupt
        return self.task.train_batch(step, *args, **kwargs)


class PoisonAt(StopAt):
    """Makes the loss NaN from a given step on."""

    def train_batch(self, step, *args, **kwargs):
        batch = self.task.train_batch(step, *args, **kwargs)
        batch["poison"] = torch.tensor(step >= self.step)
        return batch

    def loss(self, model, batch):
        loss, diag = self.task.loss(model, {k: v for k, v in batch.items() if k != "poison"})
        return (loss * float("nan") if batch["poison"] else loss), diag


def test_records_and_files(tmp_path):
    result = train(tiny_task(), tiny_config(tmp_path))
    records = read_records(tmp_path)
    assert [r["step"] for r in records] == [0, 10, 20, 30]
    assert without_timing(records) == without_timing(json.loads(json.dumps(result.records)))
    for key in ("step", "loss", "train_acc", "val_acc", "grad_norm", "train/signal_loss",
                "train/noise_loss", "train/signal_frac", "train/p_signal", "tbin"):
        assert key in records[-1], key
    last = records[-1]
    # signal + noise parts add up to the loss (same normalisation, same steps)
    assert last["train/signal_loss"] + last["train/noise_loss"] == pytest.approx(last["loss"], rel=1e-6)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["task"]["data"]["secret"] and config["provenance"]["packages"]["torch"]
    assert load_checkpoint(tmp_path / CKPT_NAME)["step"] == 30


@pytest.mark.parametrize("objective, model", [("os", "transformer"), ("ar", "transformer"),
                                              ("md", "uniform-attention-transformer"), ("md", "mlp"),
                                              ("os", "mlp")])
def test_objectives_and_models_run(objective, model):
    extra = {"n_embd": 32} if model == "mlp" else {}
    task = tiny_task(objective=objective, model=model, energy_samples=256, energy_every=4, **extra)
    result = train(task, tiny_config(steps=4, eval_every=2))
    last = result.final
    assert math.isfinite(last["loss"]) and 0 <= last["val_acc"] <= 1
    if model == "mlp" and objective == "md":
        # E(W) at steps 0 and 4 (multiples of energy_every), not at the evaluation of step 2
        assert [("energy" in r) for r in result.records] == [True, False, True]
        assert math.isfinite(last["energy"]) and last["energy"] >= 0


def test_energy_every_zero_turns_the_energy_off_and_bad_values_are_refused():
    task = tiny_task(model="mlp", n_embd=32, energy_samples=256, energy_every=0)
    assert not any("energy" in r for r in train(task, tiny_config(steps=4, eval_every=2)).records)
    for bad in (-1, 2.5, True):
        with pytest.raises(UserError, match="energy_every"):
            tiny_task(model="mlp", n_embd=32, energy_every=bad)


def test_ar_rejects_models_without_causal_attention():
    with pytest.raises(UserError):
        tiny_task(objective="ar", model="mlp")


def test_resume_after_crash_is_exact(tmp_path):
    full_dir, crash_dir = tmp_path / "full", tmp_path / "crash"
    full = train(tiny_task(), tiny_config(full_dir))
    with pytest.raises(Interrupt):
        train(StopAt(tiny_task(), 17), tiny_config(crash_dir))
    assert load_checkpoint(crash_dir / CKPT_NAME)["step"] == 14
    # the crashed run had written records up to step 10; record 20 must not
    # be duplicated after resuming from step 14
    train(tiny_task(), tiny_config(crash_dir, resume=True))
    assert without_timing(read_records(crash_dir)) == without_timing(read_records(full_dir))
    assert without_timing(full.records)[-1] == without_timing(read_records(crash_dir))[-1]


def test_resume_truncates_records_past_the_checkpoint(tmp_path):
    train(tiny_task(), tiny_config(tmp_path, steps=20, ckpt_every=20))
    ckpt = load_checkpoint(tmp_path / CKPT_NAME)
    with open(tmp_path / METRICS_NAME, "a") as fh:  # a record written after the checkpoint
        fh.write(json.dumps({"step": 25, "loss": 0.0}) + "\n")
    result = train(tiny_task(), tiny_config(tmp_path, steps=30, ckpt_every=20, resume=True))
    assert ckpt["step"] == 20
    assert [r["step"] for r in read_records(tmp_path)] == [0, 10, 20, 30]
    assert [r["step"] for r in result.records] == [30]


def test_refuses_to_overwrite_and_to_resume_changed_settings(tmp_path):
    train(tiny_task(), tiny_config(tmp_path, steps=7))
    with pytest.raises(UserError, match="--resume"):
        train(tiny_task(), tiny_config(tmp_path, steps=7))
    with pytest.raises(UserError, match="lr"):
        train(tiny_task(), tiny_config(tmp_path, steps=14, lr=1e-2, resume=True))
    with pytest.raises(UserError, match="task"):
        train(tiny_task(k=3), tiny_config(tmp_path, steps=14, resume=True))


@pytest.mark.parametrize("garbage", [b"", b"not a checkpoint", None])
def test_corrupt_checkpoint_is_a_user_error(tmp_path, garbage):
    train(tiny_task(), tiny_config(tmp_path, steps=7))
    path = tmp_path / CKPT_NAME
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if garbage is None else garbage)
    with pytest.raises(UserError, match="corrupt"):
        train(tiny_task(), tiny_config(tmp_path, steps=14, resume=True))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match="step 16"):
        train(PoisonAt(tiny_task(), 16), tiny_config(tmp_path))
    ckpt = load_checkpoint(tmp_path / CKPT_NAME)
    assert ckpt["step"] == 14
    assert all(torch.isfinite(p).all() for p in ckpt["model"].values())


def test_lr_schedule():
    cfg = TrainConfig(steps=100, lr=1.0, warmup=10, lr_schedule="cosine", min_lr_frac=0.1)
    assert cfg.lr_at(0) == pytest.approx(0.1) and cfg.lr_at(9) == pytest.approx(1.0)
    assert cfg.lr_at(10) == pytest.approx(1.0) and cfg.lr_at(100) == pytest.approx(0.1)
    assert TrainConfig(lr=0.5).lr_at(50) == 0.5
    for bad in (dict(steps=0), dict(lr=-1.0), dict(device="tpu"), dict(lr_schedule="step"),
                dict(betas=(0.9, 1.0)), dict(batch_size=0)):
        with pytest.raises(UserError):
            TrainConfig(**bad)


def test_accumulator_skips_nan():
    acc = Accumulator()
    acc.add({"a": torch.tensor(1.0), "b": float("nan")})
    acc.add({"a": torch.tensor(3.0), "b": 2.0})
    avg = acc.averages(Runtime(torch.device("cpu")))
    assert avg == {"a": 2.0, "b": 2.0}


def test_accumulator_keeps_host_values_on_the_training_device():
    # the token rate is measured on the host while the loss lives on the GPU;
    # "meta" stands in for a second device so this runs without one
    acc = Accumulator("meta")
    acc.add({"loss": torch.tensor(1.0, device="meta"), "_tokens_per_s": torch.tensor(5.0), "rate": 2.0})
    assert {t.device.type for t in [*acc.sums.values(), *acc.counts.values()]} == {"meta"}
    acc.load_state_dict({"sums": {"a": torch.tensor(1.0)}, "counts": {"a": torch.tensor(1.0)}})
    assert acc.sums["a"].device.type == "meta"


@pytest.mark.slow
def test_tiny_md_run_learns_parity():
    """(n, k) = (8, 2) masked diffusion reaches full held-out accuracy on CPU."""
    task = tiny_task(n_layer=2, n_head=4, n_embd=64, tbins=0, seed=0)
    result = train(task, TrainConfig(steps=1000, batch_size=64, lr=3e-3, eval_every=250,
                                     progress=False, device="cpu"))
    assert result.final["train_acc"] == 1.0
    assert result.final["val_acc"] == 1.0


def test_reduced_mlp_learns_parity_and_energy_grows():
    """The theory's reduced MLP learns (8, 2)-parity with md in a few hundred
    steps, and its energy E(W) grows while it does (training maximises E)."""
    task = tiny_task(model="mlp", n_embd=64, tbins=0, energy_samples=4096, energy_every=100)
    result = train(task, TrainConfig(steps=300, batch_size=192, lr=1e-2, eval_every=100,
                                     progress=False, device="cpu"))
    assert result.final["train_acc"] == 1.0 and result.final["val_acc"] == 1.0
    energies = [r["energy"] for r in result.records]
    assert energies[-1] > 3 * energies[0]


def test_mlp_energy_comes_from_the_theory_landscape(monkeypatch):
    """For a window sampler, E(W) is the theory module's population quantity,
    not the Monte Carlo fallback (the parity vocabulary has 4 values)."""
    from mdtheory.theory import landscape

    calls = []
    real_energy = landscape.energy
    monkeypatch.setattr(landscape, "energy", lambda *a, **kw: calls.append(1) or real_energy(*a, **kw))
    task = tiny_task(model="mlp", n_embd=32, sampler="window:0,0.3", energy_samples=512)
    record = task.evaluate(task.build_model(), 0)
    assert calls, "mlp_energy fell back to Monte Carlo"
    assert math.isfinite(record["energy"])


def test_cosine_run_in_segments_equals_uninterrupted(tmp_path):
    """Resuming with a larger --steps each time (as the parity runner does)
    keeps the cosine curve when its horizon is fixed by lr_decay_steps."""
    cosine = dict(lr_schedule="cosine", warmup=3, min_lr_frac=0.05, eval_every=5, ckpt_every=5)
    whole = train(tiny_task(), tiny_config(tmp_path / "whole", steps=30, **cosine))
    seg = tmp_path / "segments"
    for end in (10, 20, 30):
        train(tiny_task(), tiny_config(seg, steps=end, lr_decay_steps=30, resume=end > 10, **cosine))
    assert without_timing(read_records(seg)) == without_timing(read_records(tmp_path / "whole"))
    assert [r["lr"] for r in read_records(seg)] == [r["lr"] for r in whole.records]
    final_whole, final_seg = (load_checkpoint(d / CKPT_NAME)["model"] for d in (tmp_path / "whole", seg))
    assert all(torch.equal(final_whole[k], final_seg[k]) for k in final_whole)


def test_cosine_resume_that_would_change_used_rates_is_refused(tmp_path):
    cosine = dict(lr_schedule="cosine", warmup=3, eval_every=5, ckpt_every=5)
    train(tiny_task(), tiny_config(tmp_path, steps=10, **cosine))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(UserError, match="lr_decay_steps"):
        train(tiny_task(), tiny_config(tmp_path, steps=20, resume=True, **cosine))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # the stored horizon extends the run on the same curve (floor after step 10)
    result = train(tiny_task(), tiny_config(tmp_path, steps=20, lr_decay_steps=10, resume=True, **cosine))
    assert result.records[-1]["lr"] == pytest.approx(0.1 * 3e-3)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["train"]["lr_horizon"] == 10 and config["train"]["steps"] == 20
    assert config["resumes"][0]["changed_from"]["steps"] == 10


def test_constant_schedule_may_extend_steps_on_resume(tmp_path):
    train(tiny_task(), tiny_config(tmp_path, steps=10))
    result = train(tiny_task(), tiny_config(tmp_path, steps=20, resume=True))
    assert result.records[-1]["step"] == 20


def test_warmup_only_prefix_may_change_horizon(tmp_path):
    """Steps still in warm-up used the same rates under any horizon."""
    cosine = dict(lr_schedule="cosine", warmup=50, eval_every=5, ckpt_every=5)
    train(tiny_task(), tiny_config(tmp_path, steps=10, **cosine))
    assert train(tiny_task(), tiny_config(tmp_path, steps=20, resume=True, **cosine)).final["step"] == 20


def test_fused_adamw_agrees_with_the_plain_loop():
    """The engine uses fused AdamW on CPU; after 50 steps on the same
    gradients it agrees with the for-loop AdamW to 1e-6 relative."""
    from mdtheory.train.engine import build_optimizer

    cfg = tiny_config()
    models = [tiny_task().build_model() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    fused = build_optimizer(models[0], cfg, torch.device("cpu"))
    assert fused.defaults["fused"]
    names = {id(p): n for n, p in models[0].named_parameters()}
    twin = dict(models[1].named_parameters())
    plain = torch.optim.AdamW([{"params": [twin[names[id(p)]] for p in g["params"]],
                                "weight_decay": g["weight_decay"]} for g in fused.param_groups],
                              lr=cfg.lr, betas=cfg.betas, foreach=False)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        for p, q in zip(models[0].parameters(), models[1].parameters()):
            g = torch.randn(p.shape, generator=gen)
            p.grad, q.grad = g.clone(), g.clone()
        fused.step()
        plain.step()
    for (name, p), q in zip(models[0].named_parameters(), models[1].parameters()):
        assert torch.allclose(p, q, rtol=1e-6, atol=1e-7), name


def test_compile_is_applied_on_cpu(tmp_path, monkeypatch):
    """--compile is not silently ignored on CPU: the model goes through
    torch.compile and config.json says so."""
    import mdtheory.train.engine as engine

    compiled = []
    monkeypatch.setattr(engine.torch, "compile", lambda model, **kw: compiled.append(model) or model)
    train(tiny_task(), tiny_config(tmp_path, steps=4, eval_every=4, compile=True))
    assert len(compiled) == 1
    assert json.loads((tmp_path / "config.json").read_text())["train"]["compile"] is True


@pytest.mark.slow
def test_compiled_cpu_run_matches_eager(tmp_path):
    """A real torch.compile on CPU (tens of seconds): same losses as eager to 1e-4."""
    eager = train(tiny_task(), tiny_config(steps=10, eval_every=5))
    compiled = train(tiny_task(), tiny_config(steps=10, eval_every=5, compile=True))
    for a, b in zip(eager.records, compiled.records):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)


def test_rng_state_is_plain_data_and_round_trips():
    import io
    import random

    import numpy as np

    from mdtheory.train.checkpoint import rng_state, set_rng_state

    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    state = rng_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    expected = (random.random(), np.random.rand(), torch.rand(()).item())
    set_rng_state(torch.load(buffer, weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(()).item()) == expected


def test_task_checks_its_micro_batch_before_anything_is_written(tmp_path):
    """A task that can refuse a micro-batch (the LM task's memory estimate)
    is asked with batch_size / grad_accum before the run folder is touched."""
    task, seen = tiny_task(), []

    def refuse(micro_batch):
        seen.append(micro_batch)
        raise UserError("too big")

    task.check_micro_batch = refuse
    with pytest.raises(UserError, match="too big"):
        train(task, tiny_config(tmp_path / "run", batch_size=16, grad_accum=4))
    assert seen == [4] and not (tmp_path / "run").exists()
