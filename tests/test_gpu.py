"""CUDA paths of the engine (bf16 autocast, torch.compile, fused AdamW) and
of the GPU check (experiments/gpu_check).
Marked ``gpu``: skipped cleanly where CUDA is absent (conftest.py)."""
import json
import math

import pytest

from mdtheory.train import TrainConfig, train
from mdtheory.train.parity_task import ParityTask, ParityTaskConfig


def _task():
    return ParityTask(ParityTaskConfig(n=8, k=2, train_size=192, val_size=64,
                                       sampler="window:0,0.5", n_layer=1, n_head=2,
                                       n_embd=32, seed=0))


@pytest.mark.gpu
@pytest.mark.parametrize("compile_model", [False, True])
def test_parity_trains_on_cuda(tmp_path, compile_model):
    cfg = TrainConfig(steps=40, batch_size=32, lr=3e-3, eval_every=20, ckpt_every=20,
                      progress=False, device="cuda", compile=compile_model,
                      out_dir=str(tmp_path / "run"))
    result = train(_task(), cfg)
    assert next(result.model.parameters()).is_cuda
    assert result.final["step"] == 40
    assert math.isfinite(result.final["loss"])
    # resume on the GPU from the checkpoint written at step 40 (no more steps)
    resumed = train(_task(), TrainConfig(**{**cfg.__dict__, "steps": 60, "resume": True}))
    assert resumed.final["step"] == 60


@pytest.mark.gpu
def test_engine_trains_in_bf16_on_cuda_and_fp32_when_asked():
    # what the GPU check's fp32-vs-bf16 timing relies on: the engine's own
    # autocast is bf16 on CUDA, and the fp32 variant really turns it off
    from experiments.ab_timing import Variant, compare

    row = compare(_task(), Variant(precision="fp32"), Variant(precision="engine"), batch_size=32, steps=2,
                  device="cuda", pairs=1)
    assert "error" not in row, row.get("error")
    assert row["observed"]["a"]["autocast"] == [False]
    assert row["observed"]["b"]["autocast"] == [True]
    assert row["median_ratio"] > 0


@pytest.mark.gpu
def test_gpu_check_info_phase_names_the_card_and_measures_bf16(tmp_path):
    from experiments.gpu_check.__main__ import phase_info

    phase_info({"work": str(tmp_path), "tiny": True})  # a 256^3 GEMM is enough here
    info = json.loads((tmp_path / "phase_info.json").read_text())
    assert info["info"]["device"] and info["info"]["cuda_runtime"]
    assert info["gemm"]["reference"] == "bf16" and info["gemm"]["flops"]["bf16"] > 0


@pytest.mark.gpu
def test_stacked_runs_train_on_cuda_as_separate_runs_do(tmp_path):
    # vmap over the transformer (attention included) under the engine's bf16 autocast: the stacked runs'
    # records follow the separate runs' to bf16 round-off
    from mdtheory.train.stacked import train_stacked

    def setup(seed, kind):
        task = ParityTask(ParityTaskConfig(n=8, k=2, train_size=192, val_size=64, sampler=f"window:0,{0.3 + seed / 5}",
                                           n_layer=1, n_head=2, n_embd=32, seed=seed, tbins=0))
        return task, TrainConfig(steps=20, batch_size=32, lr=3e-3, eval_every=10, ckpt_every=10, progress=False,
                                 device="cuda", seed=seed, out_dir=str(tmp_path / kind / str(seed)))

    stacked = train_stacked(*zip(*[setup(seed, "stacked") for seed in (0, 1)]))
    for seed in (0, 1):
        alone = train(*setup(seed, "alone"))
        assert [r["step"] for r in stacked[seed].records] == [r["step"] for r in alone.records] == [0, 10, 20]
        for a, b in zip(alone.records, stacked[seed].records):
            assert b["loss"] == pytest.approx(a["loss"], rel=0.05)
