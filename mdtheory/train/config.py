"""Settings of a training run: the engine's (``TrainConfig``) and those every
task shares (``TaskConfig``: objective, mask-rate law and loss, transformer
size, seed). Each field is declared once, with its default and help text;
``python -m mdtheory.train`` makes a flag of every field.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import ClassVar

from ..cli import setting
from ..errors import UserError
from ..masking import NORMALIZATIONS
from ..samplers import DEFAULT_EPS, WEIGHTINGS

LR_SCHEDULES = ("constant", "cosine")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    steps: int = setting(1000, "optimizer steps")
    lr: float = setting(1e-3, "peak learning rate")
    weight_decay: float = setting(0.1, "AdamW decay of matrices and embeddings")
    betas: tuple[float, float] = setting((0.9, 0.95), "AdamW betas", metavar=("B1", "B2"))
    warmup: int = setting(0, "linear warm-up steps")
    lr_schedule: str = setting("constant", "cosine decays to min_lr_frac * lr", choices=LR_SCHEDULES)
    min_lr_frac: float = setting(0.1, "cosine floor as a fraction of --lr")
    lr_decay_steps: int | None = setting(
        None, "step at which the cosine reaches its floor (default: --steps); fix it to train "
              "in segments or to extend a run with --resume --steps")
    batch_size: int = setting(64, "sequences per optimizer step, all ranks together")
    grad_accum: int = setting(1, "micro-batches per step and rank")
    grad_clip: float = setting(1.0, "gradient-norm clip; 0 disables")
    eval_every: int = setting(100, "steps between metrics records")
    ckpt_every: int = setting(500, "steps between checkpoints")
    # None: write nothing (tests, benchmarks); the command line requires it
    out_dir: str | None = setting(None, "run folder for config.json, metrics.jsonl and ckpt.pt",
                                  flag="out", metavar="DIR")
    resume: bool = setting(False, "continue from DIR/ckpt.pt if present")
    device: str = setting("auto", "auto: CUDA if available", choices=DEVICES)
    compile: bool = setting(False, "torch.compile the model (CPU or CUDA; tens of seconds to compile)")
    seed: int = setting(0, "seeds data, masks and init")
    progress: bool = setting(True, "hide the progress bar")

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        positive = ("steps", "batch_size", "grad_accum", "eval_every", "ckpt_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"{name} must be a positive integer, got {value!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"lr must be positive, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise UserError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise UserError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.warmup < 0 or not (math.isfinite(self.grad_clip) and self.grad_clip >= 0):
            raise UserError(f"warmup and grad_clip must be finite and >= 0, got {self.warmup}, {self.grad_clip}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"unknown lr schedule {self.lr_schedule!r}; choose from {LR_SCHEDULES}")
        if self.device not in DEVICES:
            raise UserError(f"unknown device {self.device!r}; choose from {DEVICES}")
        if not (math.isfinite(self.min_lr_frac) and 0 <= self.min_lr_frac <= 1):
            raise UserError(f"min_lr_frac must be in [0, 1], got {self.min_lr_frac}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.lr_decay_steps is not None and (not isinstance(self.lr_decay_steps, int)
                                                or self.lr_decay_steps < 1):
            raise UserError(f"lr_decay_steps must be a positive integer, got {self.lr_decay_steps!r}")

    @property
    def lr_horizon(self) -> int | None:
        """Step at which the cosine reaches its floor (None: constant schedule)."""
        if self.lr_schedule == "constant":
            return None
        return self.lr_decay_steps if self.lr_decay_steps is not None else self.steps

    def record(self) -> dict:
        """The settings as stored in config.json and ckpt.pt (plain JSON)."""
        return json.loads(json.dumps({**asdict(self), "lr_horizon": self.lr_horizon}))

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based): a pure function
        of the step and the settings (the cosine runs over ``lr_horizon``
        steps, then stays at its floor), so resuming needs no scheduler state."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.lr_schedule == "constant":
            return self.lr
        progress = (step - self.warmup) / max(1, self.lr_horizon - self.warmup)
        floor = self.min_lr_frac * self.lr
        return floor + 0.5 * (self.lr - floor) * (1 + math.cos(math.pi * min(progress, 1.0)))


@dataclass
class TaskConfig:
    """The settings every task has. A task subclasses it, adds its own fields
    and may give a shared field another default (``mdtheory.cli.setting_of``)."""
    # engine settings this task trains with unless told otherwise
    engine_defaults: ClassVar[dict] = {}

    seed: int = setting(0, "seeds data, masks and init")
    objective: str = setting("md", "training objective")
    sampler: str = setting("uniform", "md mask-rate law (mdtheory.masking.parse_sampler), e.g. "
                                      "beta:2,8; --window T0 T1 is short for window:T0,T1")
    eps: float = setting(DEFAULT_EPS, "floor on t for the 1/t weight")
    loss_weighting: str = setting("inverse_t", "md loss weight", choices=WEIGHTINGS)
    normalization: str = setting("tokens", "md loss divided by all tokens or by the masked ones",
                                 choices=NORMALIZATIONS)
    n_layer: int = setting(4, "transformer layers")
    n_head: int = setting(4, "attention heads")
    n_embd: int = setting(128, "transformer width")

    def train_config(self, **settings) -> TrainConfig:
        """The engine's settings for this task: ``settings``, else the task's
        engine defaults; the seed is the task's."""
        return TrainConfig(**{**self.engine_defaults, **settings, "seed": self.seed})
