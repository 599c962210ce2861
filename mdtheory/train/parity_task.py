"""k-parity as a Task for the training engine (objectives md, os, ar).

Evaluation follows the paper: all n bits visible and the label masked (for
md/os) or predicted as the next token (for ar); the prediction is the argmax
over the two bit tokens at the label position. Accuracy on the training set
(at most ``eval_train_max`` of its sequences) and on the held-out set.

Logged per evaluation: train_acc, val_acc, train_label_ce, val_label_ce; for
md also the loss and gradient norm by t-bin ("tbin"), and for the reduced MLP
the energy E(W) ("energy"). Per-step diagnostics (averaged by the engine into
"train/<key>"): for md the signal/noise split of the loss (signal_loss,
noise_loss, ce_signal, ce_noise, signal_frac, p_signal) and the mean t.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..cli import setting, setting_of
from ..data.parity import BIT0, BIT1, MASK, VOCAB_SIZE, ParityData, autoregressive_pair
from ..errors import UserError
from ..masking import NORMALIZATIONS
from ..models import MLPConfig, ReducedMLP, Transformer, TransformerConfig
from ..samplers import parse_sampler
from . import diagnostics
from .config import TaskConfig
from .objectives import OBJECTIVES, make_objective
from .task import step_generator

# "uniform-attention-transformer" is a transformer whose attention is frozen to
# uniform weights: it keeps residuals, LayerNorm and per-position MLPs, so its
# output differs by position. The paper's reduced model (the same output at
# every position, f(z~) = v^T sigma(W z~)) is "mlp".
MODELS = ("transformer", "uniform-attention-transformer", "mlp")
MODEL_WIDTH_DEFAULT = {"transformer": 128, "uniform-attention-transformer": 128, "mlp": 2560}
# (its old name "uniform-attention" is read as this by mdtheory.runfiles.read_run)
# each t-bin costs a forward and backward pass at every evaluation
MAX_TBINS = 64
# E(W) inverts a hidden x hidden matrix: at this spacing it costs under 5% of a
# run of the phase diagram and of the paper's Fig. 5 setting (experiments/parity/README.md)
ENERGY_EVERY_DEFAULT = 5000
GIB = 2 ** 30


def available_memory_bytes() -> int | None:
    """Memory this process can still take (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def estimate_memory(cfg: "ParityTaskConfig", batch_size: int | None = None) -> dict[str, int]:
    """Rough peak bytes of a parity run, by part, before anything is allocated.

    data: both splits as int64 tokens, about three copies while they are
    built; model: fp32 weights, gradients and the two AdamW moments;
    activations: the largest of an evaluation chunk (no grad, one layer at a
    time), the t-bin diagnostics' backward pass (every layer kept) and, when
    ``batch_size`` (the engine's micro-batch) is given, one training step:
    the batch's token, mask and row tensors, and for the transformer every
    layer's activations and the logits, for the reduced MLP the one-hot z~
    (B, vocab * seq_len), its hidden pre-activations and activations
    (B, hidden) and the logits broadcast to every position (with gradients).
    """
    L, V = cfg.n + 1, VOCAB_SIZE
    data = (cfg.train_size + cfg.val_size) * L * 8 * 3
    d, layers, heads = cfg.n_embd, cfg.n_layer, cfg.n_head
    eval_rows = min(cfg.eval_batch, max(min(cfg.train_size, cfg.eval_train_max), cfg.val_size))
    tbin_rows = min(cfg.tbin_batch, cfg.train_size) if cfg.tbins else 0
    if cfg.model == "mlp":
        params = d * V * L + d * V
        # features of the energy estimate (float64) and its hidden x hidden pseudo-inverse
        energy = cfg.energy_samples * d * 8 * 3 + d * d * 8 * 4 if cfg.energy_every else 0
        per_row = (V * L + 4 * d + 3 * L * V) * 4  # z~, pre/act and their grads, logits and their grads
        activations = max(eval_rows * (d + V * L) * 4 * 3, energy, tbin_rows * per_row)
    else:
        params = layers * 12 * d * d + (V + L) * d + d * V
        per_row = L * (layers * (16 * d + 2 * heads * L) + 3 * V) * 4  # layers kept for backward, logits
        evaluation = eval_rows * L * (4 * d + heads * L) * 4 * 3
        activations = max(evaluation, tbin_rows * per_row)
    if batch_size is not None:
        # tokens, noisy tokens, rows (int64) and the mask, then the forward/backward pass
        activations = max(activations, int(batch_size) * (L * (3 * 8 + 1) + per_row))
    return {"data": data, "model": params * 16, "activations": activations}


@dataclass
class ParityTaskConfig(TaskConfig):
    engine_defaults: ClassVar[dict] = dict(steps=2000, lr=1e-3, weight_decay=0.1, batch_size=128,
                                           eval_every=100, ckpt_every=500)

    n: int = setting(20, "number of input bits")
    k: int = setting(6, "size of the secret set")
    train_size: int = setting(5000, "training sequences N")
    val_size: int = setting(1000, "held-out sequences")
    objective: str = setting_of(TaskConfig, "objective", "md", choices=OBJECTIVES)
    sampler: str = setting_of(TaskConfig, "sampler", "window:0,0.2")
    model: str = setting("transformer", "backbone (mlp: the paper's reduced model)", choices=MODELS)
    n_layer: int = setting_of(TaskConfig, "n_layer", 2)
    n_embd: int | None = setting_of(TaskConfig, "n_embd", None,
                                    help="transformer width, or the MLP's hidden width "
                                         "(default: 128, MLP 2560)")
    eval_train_max: int = setting(4096, "training sequences scored at each evaluation")
    eval_batch: int = setting(2048, "sequences per evaluation forward pass")
    tbins: int = setting(4, "t-bins of the md diagnostics (0: off)")
    tbin_batch: int = setting(256, "sequences of the t-bin diagnostics")
    energy_samples: int = setting(8192, "Monte Carlo samples of the MLP energy E(W)")
    energy_every: int = setting(ENERGY_EVERY_DEFAULT,
                                "steps between estimates of the MLP energy E(W), at evaluations (0: off)")

    def __post_init__(self):
        if self.n_embd is None:
            self.n_embd = MODEL_WIDTH_DEFAULT.get(self.model, 128)


class ParityTask:
    name = "parity"
    # diagnostics only: a resumed run may change them (training is the same)
    resumable_settings = frozenset({"energy_every"})

    def __init__(self, cfg: ParityTaskConfig):
        self.cfg = cfg
        self.objective = make_objective(cfg.objective)
        if cfg.model not in MODELS:
            raise UserError(f"unknown model {cfg.model!r}; choose from {MODELS}")
        if self.objective.attention == "causal" and cfg.model != "transformer":
            raise UserError(f"objective {cfg.objective!r} needs causal attention; model {cfg.model!r} has none")
        if cfg.normalization not in NORMALIZATIONS:
            raise UserError(f"unknown normalization {cfg.normalization!r}; choose from {NORMALIZATIONS}")
        if isinstance(cfg.energy_every, bool) or not isinstance(cfg.energy_every, int) or cfg.energy_every < 0:
            raise UserError(f"energy_every must be an integer >= 0 (0 turns E(W) off), got {cfg.energy_every!r}")
        if not 0 <= cfg.tbins <= MAX_TBINS:
            raise UserError(f"tbins must lie in [0, {MAX_TBINS}] (0 turns the t-bin diagnostics off), "
                            f"got {cfg.tbins}")
        self.check_memory(cfg)
        self.data = ParityData(cfg.n, cfg.k, cfg.train_size, cfg.val_size, cfg.seed)
        self.sampler = parse_sampler(cfg.sampler, eps=cfg.eps, weighting=cfg.loss_weighting) \
            if self.objective.uses_sampler else None
        self.mask_id = MASK
        self.tokens_per_sequence = self.data.seq_len
        self.in_secret = diagnostics.secret_mask(self.data.extended_secret, self.data.seq_len)
        self._energy_cache: dict = {}  # theory statistics for E(W), built once

    @staticmethod
    def check_memory(cfg: ParityTaskConfig, available: int | None = None,
                     batch_size: int | None = None) -> None:
        """Refuse, before allocating, a configuration that cannot fit in
        memory (with ``batch_size``: the engine's micro-batch too)."""
        for name in ("n", "train_size", "val_size", "n_layer", "n_head", "n_embd", "eval_batch",
                     "eval_train_max", "tbin_batch", "energy_samples"):
            value = getattr(cfg, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise UserError(f"{name} must be an integer >= 1, got {value!r}")
        parts = estimate_memory(cfg, batch_size)
        need = sum(parts.values())
        available = available_memory_bytes() if available is None else available
        if available is not None and need > available:
            detail = ", ".join(f"{k} {v / GIB:.3g}" for k, v in parts.items())
            flags = "--batch-size (or raise --grad-accum), " if batch_size is not None else ""
            raise UserError(f"parity task would need about {need / GIB:.3g} GiB ({detail}) but "
                            f"{available / GIB:.3g} GiB is available: reduce {flags}--n, --train-size, "
                            f"--val-size, --n-embd or --n-layer")

    def check_micro_batch(self, micro_batch: int) -> None:
        """Refuse, before training, a micro-batch that cannot fit (the engine calls this)."""
        self.check_memory(self.cfg, batch_size=micro_batch)

    # -- Task interface ---------------------------------------------------------
    def config(self) -> dict:
        out = {"name": self.name, **asdict(self.cfg), "data": self.data.describe()}
        if self.sampler is not None:
            out["sampler_law"] = self.sampler.describe()
            out["p_signal"] = self.sampler.p_signal(self.cfg.k)
        return out

    def build_model(self):
        cfg, L = self.cfg, self.data.seq_len
        if cfg.model == "mlp":
            return ReducedMLP(MLPConfig(vocab_size=VOCAB_SIZE, seq_len=L, hidden=cfg.n_embd))
        attention = self.objective.attention if cfg.model == "transformer" else "uniform"
        return Transformer(TransformerConfig(vocab_size=VOCAB_SIZE, block_size=L, n_layer=cfg.n_layer,
                                             n_head=cfg.n_head, n_embd=cfg.n_embd, attention=attention))

    def train_batch(self, step, batch_size, device, shard=0):
        gen = step_generator(self.cfg.seed, step, shard)
        tokens = self.data.train_tokens[self.batch_rows(step, batch_size, shard, gen)]
        # the secret set rides along for the diagnostics: runs stacked in one
        # process (mdtheory.train.stacked) share one task's loss code
        batch = {**self.objective.make_batch(tokens, self, gen), "in_secret": self.in_secret}
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def loss(self, model, batch):
        return self.objective.loss(model, batch, self)

    @torch.no_grad()
    def evaluate(self, model, step):
        device = next(model.parameters()).device
        train = self.data.train_tokens[: self.cfg.eval_train_max]
        record = {}
        for split, tokens in (("train", train), ("val", self.data.val_tokens)):
            acc, ce = self.label_accuracy(model, tokens, device)
            record[f"{split}_acc"], record[f"{split}_label_ce"] = acc, ce
        if self.cfg.model == "mlp":  # which input bits the first layer reads
            selectivity = diagnostics.bit_selectivity(model.W.weight, self.data.seq_len, BIT0, BIT1)
            record["secret_selectivity"] = diagnostics.secret_selectivity(selectivity, self.data.secret)
        if self.objective.uses_sampler:
            if self.cfg.tbins > 0:
                lo, hi = self.sampler.support()
                edges = np.linspace(lo, hi, self.cfg.tbins + 1).tolist()
                diag_tokens = self.data.train_tokens[: self.cfg.tbin_batch].to(device)
                record["tbin"] = diagnostics.tbin_diagnostics(
                    model, diag_tokens, self.sampler, MASK, edges, self.cfg.seed, self.cfg.normalization)
            if self.cfg.model == "mlp" and self.cfg.energy_every and step % self.cfg.energy_every == 0:
                record["energy"] = diagnostics.mlp_energy(
                    model, self.data.train_tokens.to(device), self.sampler, self.data.secret,
                    MASK, samples=self.cfg.energy_samples, seed=self.cfg.seed, cache=self._energy_cache)
        return record

    # -- what the objectives ask of the task ----------------------------------------
    def next_token_pair(self, tokens):
        return autoregressive_pair(tokens)

    def masked_diagnostics(self, batch, out) -> dict:
        """Signal/noise split of a masked batch's loss, and its mean rate."""
        in_secret = batch.get("in_secret", self.in_secret).to(out.ce.device)  # a batch made by hand lacks it
        diag = diagnostics.regime_split(out.weighted, out.ce, batch["mask"], in_secret, out.denom)
        diag["t_mean"] = batch["t"].mean()
        return diag

    def next_token_diagnostics(self, logits, targets) -> dict:
        return {"label_ce": F.cross_entropy(logits[:, -1].float(), targets[:, -1])}

    # -- helpers ---------------------------------------------------------------
    def batch_rows(self, step: int, batch_size: int, shard: int, gen: torch.Generator) -> torch.Tensor:
        """Training-set rows of one micro-batch (``batch_size`` of them).

        Smaller than the training set: drawn with replacement, independently
        per shard. At least the training set: passes over it, so that every
        string is used as evenly as the size allows. The shards of a step read
        consecutive slices of one sequence of passes (the first in stored
        order, the later ones shuffled by a generator fixed by (seed, step),
        the same on every rank), so shards never repeat one another's slice,
        and a single micro-batch of exactly N is the training set in order:
        plain full-batch training.
        """
        if batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {batch_size}")
        n_train = len(self.data.train_tokens)
        if batch_size < n_train:
            return torch.randint(n_train, (batch_size,), generator=gen)
        start = shard * batch_size
        first_pass, last_pass = start // n_train, (start + batch_size - 1) // n_train
        pass_gen = step_generator(self.cfg.seed, step, 0, stream=4)
        passes = []
        for index in range(last_pass + 1):
            order = torch.arange(n_train) if index == 0 else torch.randperm(n_train, generator=pass_gen)
            if index >= first_pass:
                passes.append(order)
        offset = start - first_pass * n_train
        return torch.cat(passes)[offset: offset + batch_size]

    def label_logits(self, model, tokens: torch.Tensor) -> torch.Tensor:
        """Logits over the two bit values at the label position (paper's eval)."""
        return model(self.objective.label_input(tokens, self))[:, self.data.label_position, :2].float()

    def label_accuracy(self, model, tokens, device) -> tuple[float, float]:
        correct, ce_sum = 0, 0.0
        for chunk in tokens.split(self.cfg.eval_batch):
            chunk = chunk.to(device)
            logits = self.label_logits(model, chunk)
            labels = chunk[:, self.data.label_position]
            correct += int((logits.argmax(dim=1) == labels).sum())
            ce_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        return correct / len(tokens), ce_sum / len(tokens)
