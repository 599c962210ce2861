"""Objectives as objects: what each builds, and that a new one is a class
(here, in this file) plus one registration line."""
import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from mdtheory.data.parity import BOS, MASK
from mdtheory.errors import UserError
from mdtheory.masking import forward_process, md_loss
from mdtheory.train import TrainConfig, train
from mdtheory.train import lm_task, parity_task
from mdtheory.train.objectives import (OBJECTIVES, MaskedDiffusion, Objective, make_objective,
                                       register_objective)
from mdtheory.train.parity_task import ParityTask, ParityTaskConfig


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def registry():
    """Registrations made inside a test do not leak into the others."""
    before = dict(OBJECTIVES)
    yield OBJECTIVES
    OBJECTIVES.clear()
    OBJECTIVES.update(before)


def tiny_task(**overrides) -> ParityTask:
    cfg = dict(n=8, k=2, train_size=128, val_size=32, sampler="window:0,0.5", n_layer=1,
               n_head=2, n_embd=16, tbins=2, tbin_batch=16, seed=0)
    cfg.update(overrides)
    return ParityTask(ParityTaskConfig(**cfg))


def tiny_run(task, steps=6):
    return train(task, TrainConfig(steps=steps, batch_size=16, lr=3e-3, eval_every=steps,
                                   ckpt_every=steps, progress=False, device="cpu"))


# --- the three registered objectives ---------------------------------------------

def test_registry_holds_md_os_ar_with_their_attention():
    assert list(OBJECTIVES) == ["md", "os", "ar"]
    assert {name: cls.attention for name, cls in OBJECTIVES.items()} == \
        {"md": "bidirectional", "os": "bidirectional", "ar": "causal"}
    assert [name for name, cls in OBJECTIVES.items() if cls.uses_sampler] == ["md"]
    assert lm_task.LM_OBJECTIVES == ("md", "ar")  # os needs a label position
    with pytest.raises(UserError, match="unknown objective 'nope'"):
        make_objective("nope")
    with pytest.raises(UserError, match="choose from md, ar"):
        make_objective("os", allowed=lambda cls: not cls.needs_label)


def test_md_batch_is_the_forward_process_and_its_loss_is_md_loss():
    task = tiny_task(objective="md")
    tokens = task.data.train_tokens[:64]
    batch = task.objective.make_batch(tokens, task, torch.Generator().manual_seed(3))
    # the same generator through the user-facing helper gives the same corruption
    noisy, mask, p_mask = forward_process(tokens, MASK, sampler=task.sampler,
                                          generator=torch.Generator().manual_seed(3))
    assert torch.equal(batch["noisy"], noisy) and torch.equal(batch["mask"], mask)
    assert torch.equal(batch["t"], p_mask[:, 0])
    assert torch.equal(batch["noisy"] == MASK, batch["mask"])
    model = task.build_model()
    loss, diag = task.loss(model, batch)
    expected = md_loss(model(noisy), tokens, mask, task.sampler.weight(batch["t"]))
    assert torch.allclose(loss, expected)
    # the parity diagnostics split the loss exactly
    assert torch.allclose(diag["signal_loss"] + diag["noise_loss"], loss)


def test_os_and_ar_read_the_label_the_way_they_train():
    tokens = tiny_task().data.train_tokens[:4]
    os_task, ar_task = tiny_task(objective="os"), tiny_task(objective="ar")
    os_input = os_task.objective.label_input(tokens, os_task)
    assert torch.equal(os_input[:, :-1], tokens[:, :-1]) and (os_input[:, -1] == MASK).all()
    ar_input = ar_task.objective.label_input(tokens, ar_task)
    assert (ar_input[:, 0] == BOS).all() and torch.equal(ar_input[:, 1:], tokens[:, :-1])
    assert set(os_task.objective.make_batch(tokens, os_task, None)) == {"tokens"}
    assert ar_task.build_model().config.attention == "causal"
    assert os_task.sampler is None and "sampler_law" not in os_task.config()


def test_tasks_ask_the_objective_instead_of_switching_on_its_name():
    for cls in (parity_task.ParityTask, lm_task.LMTask):
        source = inspect.getsource(cls)
        assert "objective ==" not in source and "objective !=" not in source, cls.__name__


# --- adding an objective: one class and one registration line ------------------------

class LabelSmoothedOutputSupervision(Objective):
    """os with label smoothing: the label's cross-entropy against a softened target."""
    name = "os-smooth"
    needs_label = True
    smoothing = 0.2

    def loss(self, model, batch, task):
        tokens = batch["tokens"]
        logits = model(self.label_input(tokens, task))[:, -1, :2]
        return F.cross_entropy(logits.float(), tokens[:, -1], label_smoothing=self.smoothing), {}


class FixedRateMaskedDiffusion(MaskedDiffusion):
    """md with every sequence masked at one rate, whatever the sampler says."""
    name = "md-fixed"
    rate = 0.25

    def mask_rate(self, n, task, generator):
        return torch.full((n,), self.rate)


def test_a_new_objective_trains_through_the_engine(registry):
    register_objective(LabelSmoothedOutputSupervision)
    task = tiny_task(objective="os-smooth")
    batch = task.train_batch(0, 16, "cpu")
    model = task.build_model()
    loss, _ = task.loss(model, batch)
    logits = model(task.objective.label_input(batch["tokens"], task))[:, -1, :2]
    plain = F.cross_entropy(logits, batch["tokens"][:, -1])
    assert not torch.allclose(loss, plain)  # the toy loss, not os's
    result = tiny_run(task)
    assert task.config()["objective"] == "os-smooth"
    assert math.isfinite(result.final["loss"]) and 0 <= result.final["val_acc"] <= 1


def test_a_subclassed_objective_keeps_the_task_diagnostics(registry):
    register_objective(FixedRateMaskedDiffusion)
    task = tiny_task(objective="md-fixed")
    batch = task.train_batch(0, 16, "cpu")
    assert (batch["t"] == 0.25).all()
    final = tiny_run(task).final
    assert final["train/t_mean"] == pytest.approx(0.25)
    assert {"train/signal_loss", "train/noise_loss", "tbin"} <= set(final)


def test_tables_and_legends_name_objectives_from_the_registry():
    from mdtheory.train.objectives import objective_label

    assert [objective_label(o) for o in ("md", "os", "ar")] == \
        ["masked diffusion", "output supervision", "autoregressive"]
    assert [objective_label(o, short=True) for o in ("os", "ar")] == ["output sup.", "AR"]
    assert objective_label("nosuch") == "nosuch"  # an unregistered name is shown as it is
