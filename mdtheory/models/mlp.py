"""The reduced model of the theory: a 2-layer MLP on z~ = sum_j e_(value_j, j).

With attention frozen to uniform, a one-layer transformer with one-hot
(value, position) embeddings sees its input only through z~, the sum over
positions j of the one-hot vector of the pair (token value at j, j); its
output is then the same at every position:  f(z~) = v^T sigma(W z~)
(paper, section on the model reduction). The mask token is a value of its
own, so z~ has dimension vocab_size * seq_len (3 n' for bits + mask).

W z~ is a sum of columns of W, one per position, which we compute as an
embedding lookup of the index value * seq_len + j, summed over j. The output
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

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """Hidden activations h = sigma(W z~), shape (B, hidden)."""
        B, L = idx.shape
        if L != self.config.seq_len:
            raise UserError(f"the reduced MLP expects length {self.config.seq_len}, got {L}")
        pre = self.W(idx * L + self.offsets[:L]).sum(dim=1)
        if self.b is not None:
            pre = pre + self.b
        return ACTIVATIONS[self.config.activation](pre)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        out = self.v(self.features(idx))
        return out[:, None, :].expand(-1, idx.shape[1], -1)

    def z_tilde(self, idx: torch.Tensor) -> torch.Tensor:
        """The explicit one-hot sum z~ (B, vocab_size * seq_len), for analysis."""
        B, L = idx.shape
        z = torch.zeros(B, self.config.vocab_size * L, device=idx.device)
        z.scatter_(1, idx * L + self.offsets[:L], 1.0)
        return z

    def num_params(self, non_embedding: bool = False) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int | None = None) -> float:
        # forward: L gathered rows summed + hidden x vocab; x3 for backward.
        # One output per sequence, charged to its seq_len tokens.
        cfg = self.config
        per_seq = cfg.seq_len * cfg.hidden + 2 * cfg.hidden * cfg.vocab_size
        return 3.0 * per_seq / cfg.seq_len

    def describe(self) -> dict:
        return {"kind": "mlp", **asdict(self.config), "n_params": self.num_params()}
