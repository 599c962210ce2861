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

import numpy as np
import torch
import torch.nn.functional as F

from ..data.parity import MASK, VOCAB_SIZE, ParityData, autoregressive_pair, with_label_masked
from ..errors import UserError
from ..masking import DEFAULT_EPS, NORMALIZATIONS, parse_sampler
from ..models import MLPConfig, ReducedMLP, Transformer, TransformerConfig
from . import diagnostics
from .objectives import (OBJECTIVES, draw_masks, masked_diffusion_loss, next_token_loss,
                         output_supervision_loss)
from .task import step_generator

MODELS = ("transformer", "uniform-attention", "mlp")
# each t-bin costs a forward and backward pass at every evaluation
MAX_TBINS = 64
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


def estimate_memory(cfg: "ParityTaskConfig") -> dict[str, int]:
    """Rough peak bytes of a parity run, by part, before anything is allocated.

    data: both splits as int64 tokens, about three copies while they are
    built; model: fp32 weights, gradients and the two AdamW moments;
    activations: the larger of an evaluation chunk (no grad, one layer at a
    time) and the t-bin diagnostics' backward pass (every layer kept).
    The training batch is the engine's and is not counted.
    """
    L, V = cfg.n + 1, VOCAB_SIZE
    data = (cfg.train_size + cfg.val_size) * L * 8 * 3
    d, layers, heads = cfg.n_embd, cfg.n_layer, cfg.n_head
    eval_rows = min(cfg.eval_batch, max(min(cfg.train_size, cfg.eval_train_max), cfg.val_size))
    if cfg.model == "mlp":
        params = d * V * L + d * V
        # features of the energy estimate (float64) and its hidden x hidden pseudo-inverse
        activations = max(eval_rows * d * 4 * 3, cfg.energy_samples * d * 8 * 3 + d * d * 8 * 4)
    else:
        params = layers * 12 * d * d + (V + L) * d + d * V
        evaluation = eval_rows * L * (4 * d + heads * L) * 4 * 3
        backward = layers * cfg.tbin_batch * L * (16 * d + 2 * heads * L) * 4
        activations = max(evaluation, backward)
    return {"data": data, "model": params * 16, "activations": activations}


@dataclass
class ParityTaskConfig:
    n: int = 20
    k: int = 6
    train_size: int = 5000
    val_size: int = 1000
    seed: int = 0
    objective: str = "md"
    sampler: str = "window:0,0.2"       # mask-rate law of md (see mdtheory.masking.parse_sampler)
    eps: float = DEFAULT_EPS
    loss_weighting: str = "inverse_t"
    normalization: str = "tokens"
    model: str = "transformer"
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128                   # transformer width, or the MLP's hidden width
    eval_train_max: int = 4096
    eval_batch: int = 2048
    tbins: int = 4                      # 0 disables the t-bin diagnostics
    tbin_batch: int = 256
    energy_samples: int = 8192


class ParityTask:
    name = "parity"

    def __init__(self, cfg: ParityTaskConfig):
        self.cfg = cfg
        if cfg.objective not in OBJECTIVES:
            raise UserError(f"unknown objective {cfg.objective!r}; choose from {OBJECTIVES}")
        if cfg.model not in MODELS:
            raise UserError(f"unknown model {cfg.model!r}; choose from {MODELS}")
        if cfg.objective == "ar" and cfg.model != "transformer":
            raise UserError(f"objective 'ar' needs causal attention; model {cfg.model!r} has none")
        if cfg.normalization not in NORMALIZATIONS:
            raise UserError(f"unknown normalization {cfg.normalization!r}; choose from {NORMALIZATIONS}")
        if not 0 <= cfg.tbins <= MAX_TBINS:
            raise UserError(f"tbins must lie in [0, {MAX_TBINS}] (0 turns the t-bin diagnostics off), "
                            f"got {cfg.tbins}")
        self.check_memory(cfg)
        self.data = ParityData(cfg.n, cfg.k, cfg.train_size, cfg.val_size, cfg.seed)
        self.sampler = parse_sampler(cfg.sampler, eps=cfg.eps, weighting=cfg.loss_weighting) \
            if cfg.objective == "md" else None
        self.tokens_per_sequence = self.data.seq_len
        self.in_secret = diagnostics.secret_mask(self.data.extended_secret, self.data.seq_len)
        self._energy_cache: dict = {}  # theory statistics for E(W), built once

    @staticmethod
    def check_memory(cfg: ParityTaskConfig, available: int | None = None) -> None:
        """Refuse, before allocating, a configuration that cannot fit in memory."""
        for name in ("n", "train_size", "val_size", "n_layer", "n_head", "n_embd"):
            value = getattr(cfg, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise UserError(f"{name} must be an integer >= 1, got {value!r}")
        parts = estimate_memory(cfg)
        need = sum(parts.values())
        available = available_memory_bytes() if available is None else available
        if available is not None and need > available:
            detail = ", ".join(f"{k} {v / GIB:.3g}" for k, v in parts.items())
            raise UserError(f"parity task would need about {need / GIB:.3g} GiB ({detail}) but "
                            f"{available / GIB:.3g} GiB is available: reduce --n, --train-size, "
                            f"--val-size, --n-embd or --n-layer")

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
        attention = {"transformer": "causal" if cfg.objective == "ar" else "bidirectional",
                     "uniform-attention": "uniform"}[cfg.model]
        return Transformer(TransformerConfig(vocab_size=VOCAB_SIZE, block_size=L, n_layer=cfg.n_layer,
                                             n_head=cfg.n_head, n_embd=cfg.n_embd, attention=attention))

    def train_batch(self, step, batch_size, device, shard=0):
        gen = step_generator(self.cfg.seed, step, shard)
        tokens = self.data.train_tokens[self.batch_rows(step, batch_size, shard, gen)]
        batch = {"tokens": tokens}
        if self.cfg.objective == "md":
            batch["t"], batch["mask"] = draw_masks(tokens, self.sampler, gen)
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def loss(self, model, batch):
        tokens, obj = batch["tokens"], self.cfg.objective
        if obj == "md":
            t, mask = batch["t"], batch["mask"]
            loss, weighted, ce, denom = masked_diffusion_loss(
                model, tokens, t, mask, MASK, self.sampler, self.cfg.normalization)
            diag = diagnostics.regime_split(weighted, ce, mask, self.in_secret.to(tokens.device), denom)
            diag["t_mean"] = t.mean()
            return loss, diag
        if obj == "os":
            loss, _ = output_supervision_loss(model, with_label_masked(tokens), tokens,
                                              self.data.label_position)
            return loss, {}
        inputs, targets = autoregressive_pair(tokens)
        loss, logits = next_token_loss(model, inputs, targets)
        label_ce = F.cross_entropy(logits[:, -1].float(), targets[:, -1])
        return loss, {"label_ce": label_ce}

    @torch.no_grad()
    def evaluate(self, model, step):
        device = next(model.parameters()).device
        train = self.data.train_tokens[: self.cfg.eval_train_max]
        record = {}
        for split, tokens in (("train", train), ("val", self.data.val_tokens)):
            acc, ce = self.label_accuracy(model, tokens, device)
            record[f"{split}_acc"], record[f"{split}_label_ce"] = acc, ce
        if self.cfg.objective == "md":
            if self.cfg.tbins > 0:
                lo, hi = self.sampler.support()
                edges = np.linspace(lo, hi, self.cfg.tbins + 1).tolist()
                diag_tokens = self.data.train_tokens[: self.cfg.tbin_batch].to(device)
                record["tbin"] = diagnostics.tbin_diagnostics(
                    model, diag_tokens, self.sampler, MASK, edges, self.cfg.seed, self.cfg.normalization)
            if self.cfg.model == "mlp":
                record["energy"] = diagnostics.mlp_energy(
                    model, self.data.train_tokens.to(device), self.sampler, self.data.secret,
                    MASK, samples=self.cfg.energy_samples, seed=self.cfg.seed, cache=self._energy_cache)
        return record

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
        if self.cfg.objective == "ar":
            inputs, _ = autoregressive_pair(tokens)
        else:
            inputs = with_label_masked(tokens)
        return model(inputs)[:, self.data.label_position, :2].float()

    def label_accuracy(self, model, tokens, device) -> tuple[float, float]:
        correct, ce_sum = 0, 0.0
        for chunk in tokens.split(self.cfg.eval_batch):
            chunk = chunk.to(device)
            logits = self.label_logits(model, chunk)
            labels = chunk[:, self.data.label_position]
            correct += int((logits.argmax(dim=1) == labels).sum())
            ce_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        return correct / len(tokens), ce_sum / len(tokens)
