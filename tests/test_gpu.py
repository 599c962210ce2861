"""CUDA paths of the engine (bf16 autocast, torch.compile, fused AdamW).
Marked ``gpu``: skipped cleanly where CUDA is absent (conftest.py)."""
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
