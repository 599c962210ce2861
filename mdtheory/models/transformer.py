"""A small nanoGPT-style transformer for parity and language modelling.

Token + learned position embeddings, pre-LayerNorm blocks with residual
connections, a GELU MLP, and attention through F.scaled_dot_product_attention.
One switch chooses how positions talk to each other:

    attention="bidirectional"  every position sees every position (masked
                               diffusion, output supervision)
    attention="causal"         position i sees positions <= i (autoregressive)
    attention="uniform"        attention frozen to the uniform average over all
                               positions (no queries or keys): the variant the
                               paper reduces to an MLP on z~ (its section on
                               the model reduction)

The model maps token ids (B, L) to logits (B, L, vocab_size).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

ATTENTION_MODES = ("bidirectional", "causal", "uniform")


@dataclass
class TransformerConfig:
    vocab_size: int
    block_size: int
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    attention: str = "bidirectional"
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = False  # share token embedding and output head (LM habit)

    def __post_init__(self):
        if self.attention not in ATTENTION_MODES:
            raise UserError(f"unknown attention mode {self.attention!r}; choose from {ATTENTION_MODES}")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise UserError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise UserError(f"dropout must lie in [0, 1), got {self.dropout}")


class SelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.mode = cfg.attention
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout
        # uniform attention ignores queries and keys, so it only needs values
        width = cfg.n_embd if self.mode == "uniform" else 3 * cfg.n_embd
        self.c_attn = nn.Linear(cfg.n_embd, width, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        B, L, C = x.shape
        if self.mode == "uniform":
            v = self.c_attn(x)
            y = v.mean(dim=1, keepdim=True).expand(B, L, C)
        else:
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (z.view(B, L, self.n_head, C // self.n_head).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=self.mode == "causal",
                dropout_p=self.dropout if self.training else 0.0)
            y = y.transpose(1, 2).contiguous().view(B, L, C)
        return self.resid_drop(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2 init: shrink the residual projections with depth
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, L = idx.shape
        if L > self.config.block_size:
            raise UserError(f"sequence length {L} exceeds block_size {self.config.block_size}")
        pos = torch.arange(L, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wpe.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward + backward), PaLM/nanoGPT style:
        6 N for the weights plus 12 * layers * width * L for attention scores."""
        L = seq_len or self.config.block_size
        cfg = self.config
        attn = 0 if cfg.attention == "uniform" else 12 * cfg.n_layer * cfg.n_embd * L
        return 6.0 * self.num_params() + attn

    def describe(self) -> dict:
        return {"kind": "transformer", **asdict(self.config), "n_params": self.num_params(False)}
