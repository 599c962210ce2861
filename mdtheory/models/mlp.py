"""The reduced model of the theory: a 2-layer MLP on z~ = sum_j e_(value_j, j).

With attention frozen to uniform, a one-layer transformer with one-hot
(value, position) embeddings sees its input only through z~, the sum over
positions j of the one-hot vector of the pair (token value at j, j); its
output is then the same at every position:  f(z~) = v^T sigma(W z~)
(paper, section on the model reduction). The mask token is a value of its
own, so z~ has dimension vocab_size * seq_len (3 n' for bits + mask).

W z~ is a sum of columns of W, one per position. It is computed as the
matrix product of the one-hot z~ (B, vocab_size * seq_len) with W: no
(B, seq_len, hidden) tensor is formed. Training steps on one CPU thread were
2.0x (batch 256, hidden 1024) and 9.8x (full batch of 5000, hidden 2560)
faster than gathering one row per position and summing them, and 1.15x and
1.25x faster than ``F.embedding_bag`` (results/bench/mlp_first_layer.txt,
``python -m experiments.bench_trainer --only mlp_gather mlp_bag``). The output
layer maps the hidden units to vocabulary logits so the same objectives and
cross-entropy as for the transformer apply; the logits are broadcast to every
position (B, L, vocab_size).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh}


@dataclass
class MLPConfig:
    vocab_size: int
    seq_len: int
    hidden: int = 2560
    activation: str = "relu"
    bias: bool = False  # the theory's f has no biases

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise UserError(f"unknown activation {self.activation!r}; choose from {sorted(ACTIVATIONS)}")
        for name in ("vocab_size", "seq_len", "hidden"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")


class ReducedMLP(nn.Module):
    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.config = cfg
        d_in = cfg.vocab_size * cfg.seq_len
        # W as an embedding table: row (value * seq_len + j) is W e_(value, j)
        self.W = nn.Embedding(d_in, cfg.hidden)
        self.b = nn.Parameter(torch.zeros(cfg.hidden)) if cfg.bias else None
        self.v = nn.Linear(cfg.hidden, cfg.vocab_size, bias=cfg.bias)
        nn.init.normal_(self.W.weight, std=1.0 / cfg.seq_len ** 0.5)  # z~ has seq_len ones
        nn.init.normal_(self.v.weight, std=1.0 / cfg.hidden ** 0.5)
        self.register_buffer("offsets", torch.arange(cfg.seq_len) , persistent=False)

    # how W z~ is computed: "onehot" (z~ @ W), or the slower "gather" (one row
    # per position, summed) and "embedding_bag", kept for the benchmark and tests
    first_layer: str = "onehot"

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """Hidden activations h = sigma(W z~), shape (B, hidden)."""
        B, L = idx.shape
        if L != self.config.seq_len:
            raise UserError(f"the reduced MLP expects length {self.config.seq_len}, got {L}")
        rows = idx * L + self.offsets[:L]
        if self.first_layer == "onehot":
            pre = self._one_hot(rows) @ self.W.weight
        elif self.first_layer == "embedding_bag":
            pre = F.embedding_bag(rows, self.W.weight, mode="sum")
        elif self.first_layer == "gather":
            pre = self.W(rows).sum(dim=1)
        else:
            raise UserError(f"unknown first_layer {self.first_layer!r}")
        if self.b is not None:
            pre = pre + self.b
        return ACTIVATIONS[self.config.activation](pre)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        out = self.v(self.features(idx))
        return out[:, None, :].expand(-1, idx.shape[1], -1)

    def _one_hot(self, rows: torch.Tensor) -> torch.Tensor:
        # each position owns its own columns, so a row of z~ holds seq_len distinct ones
        z = torch.zeros(rows.shape[0], self.W.num_embeddings, device=rows.device, dtype=self.W.weight.dtype)
        return z.scatter(1, rows, 1.0)  # out of place: vmap (mdtheory.train.stacked) has no rule for scatter_

    def z_tilde(self, idx: torch.Tensor) -> torch.Tensor:
        """The explicit one-hot sum z~ (B, vocab_size * seq_len), for analysis."""
        L = idx.shape[1]
        return self._one_hot(idx * L + self.offsets[:L])

    def num_params(self, non_embedding: bool = False) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int | None = None) -> float:
        # forward: L rows of W summed (what z~ @ W does with non-zero work) + hidden x vocab; x3 for backward.
        # One output per sequence, charged to its seq_len tokens.
        cfg = self.config
        per_seq = cfg.seq_len * cfg.hidden + 2 * cfg.hidden * cfg.vocab_size
        return 3.0 * per_seq / cfg.seq_len

    def describe(self) -> dict:
        return {"kind": "mlp", **asdict(self.config), "n_params": self.num_params()}
