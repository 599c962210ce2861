"""The Task interface: everything the one training loop needs to know about
a problem (k-parity, language modelling, ...), and nothing more.

The engine (``mdtheory.train.engine.train``) owns the optimizer, the learning
rate schedule, mixed precision, torch.compile, DDP, logging, checkpoints and
resume. A task owns its data, its model and its objective. A task is any
object with these members (structural typing, no base class needed)::

    name: str
    def config(self) -> dict
        JSON-ready description of the task (data, model, objective); stored
        under "task" in DIR/config.json. On --resume the engine refuses to
        continue a run whose stored task config differs.
    def build_model(self) -> torch.nn.Module
        A fresh model. The engine seeds torch (cfg.seed) right before this
        call, so the initial weights are a function of the seed.
    def train_batch(self, step, batch_size, device, shard=0) -> dict[str, Tensor]
        The training batch of one optimizer step (``batch_size`` sequences,
        already on ``device``). It MUST be a deterministic function of
        (task seed, step, shard): that is what makes --resume exact and
        lets DDP ranks draw different data without talking to each other.
        ``shard`` numbers the micro-batches of one step across ranks and
        gradient-accumulation slices: shard = rank * grad_accum + micro.
        Use ``step_generator(seed, step, shard)`` below for the randomness
        (mask rates, masks, sampled indices).
    def loss(self, model, batch) -> tuple[Tensor, dict[str, Tensor | float]]
        Scalar training loss (what is back-propagated) and diagnostics. The
        engine averages each diagnostic over the steps between two
        evaluations (NaN entries, e.g. a regime absent from a batch, are
        skipped) and writes the averages as "train/<key>" fields. Return
        0-dim tensors rather than floats to avoid a GPU sync every step.
    def evaluate(self, model, step) -> dict[str, float]
        Evaluation metrics, merged into the metrics.jsonl record of ``step``
        (e.g. train_acc, val_acc). Called with model.eval(), under
        torch.no_grad() and the engine's autocast, on rank 0 only, with the
        unwrapped (non-DDP) model. Must not consume the training RNG
        streams (use its own generator) so results do not depend on when
        evaluation happens.

Optional member:
    def flops_per_token(self, model) -> float
        Model FLOPs per trained token (forward + backward); when present
        the engine logs throughput as tokens/s.
    tokens_per_sequence: int
        Tokens in one training sequence (for tokens/s).

The batch is a dict so tasks can carry whatever they need (ids, masks,
rates, labels); the engine only moves it around and never looks inside.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class Task(Protocol):
    name: str

    def config(self) -> dict: ...

    def build_model(self) -> nn.Module: ...

    def train_batch(self, step: int, batch_size: int, device: torch.device,
                    shard: int = 0) -> dict[str, Tensor]: ...

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict]: ...

    def evaluate(self, model: nn.Module, step: int) -> dict[str, float]: ...


def step_generator(seed: int, step: int, shard: int = 0, stream: int = 0,
                   device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator seeded from (seed, step, shard, stream) only.

    Batches drawn from it do not depend on what ran before, so a resumed run
    sees exactly the batches an uninterrupted run would have seen. ``stream``
    separates independent uses (e.g. 0 = training batches, 1 = evaluation).
    The mixing constants are large odd numbers so nearby tuples give
    unrelated seeds.
    """
    mixed = (int(seed) * 0x9E3779B1 + int(step) * 0x85EBCA77
             + int(shard) * 0xC2B2AE3D + int(stream) * 0x27D4EB2F) % (2**63 - 1)
    gen = torch.Generator(device=device)
    gen.manual_seed(mixed)
    return gen
