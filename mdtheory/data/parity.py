"""k-parity data in the token format every parity objective shares.

A secret set S of k positions out of n is fixed by the seed. A sequence is
n uniform random bits followed by their parity over S (XOR of the 0/1 bits,
the 0/1 image of y = prod_{j in S} x_j for x in {-1, 1}):

    position:  0 .. n-1          n
    token:     bit_0 .. bit_{n-1} label         (length n' = n + 1)

Token ids: 0 and 1 are the bit values, MASK = 2 replaces a masked token,
BOS = 3 starts the input of an autoregressive model (which reads
[BOS, bit_0 .. bit_{n-1}] and predicts [bit_0 .. bit_{n-1}, label]). The
vocabulary always has 4 entries so one model size serves all objectives.

The training set holds ``train_size`` distinct bit strings; the held-out set
holds ``val_size`` other distinct strings, disjoint from the training set,
so held-out accuracy measures generalisation and not memorisation (with
n = 20 drawing distinct strings is practically the paper's i.i.d. draw).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError

BIT0, BIT1, MASK, BOS = 0, 1, 2, 3
VOCAB_SIZE = 4


def parity_labels(bits: np.ndarray, secret: np.ndarray) -> np.ndarray:
    """XOR of the bits at the secret positions, per row."""
    return (bits[:, secret].sum(axis=1) % 2).astype(bits.dtype)


def _distinct_bit_strings(count: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct uniform bit strings of length n, in random order."""
    if n <= 24:
        # enumerate codes without replacement, exact for small n
        codes = rng.choice(2 ** n, size=count, replace=False)
        return ((codes[:, None] >> np.arange(n)[None, :]) & 1).astype(np.int64)
    rows = np.empty((0, n), dtype=np.int64)
    while len(rows) < count:  # collisions are rare for n > 24: top up until enough
        extra = rng.integers(0, 2, size=(count - len(rows) + 16, n), dtype=np.int64)
        merged = np.concatenate([rows, extra])
        _, first = np.unique(merged, axis=0, return_index=True)
        rows = merged[np.sort(first)]
    return rows[:count]


@dataclass
class ParityData:
    """Training and held-out k-parity sequences for one seed."""

    n: int
    k: int
    train_size: int
    val_size: int = 1000
    seed: int = 0

    def __post_init__(self):
        for name in ("n", "k", "train_size", "val_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise UserError(f"{name} must be an integer, got {value!r}")
        if self.n < 1:
            raise UserError(f"n must be >= 1, got {self.n}")
        if not 1 <= self.k <= self.n:
            raise UserError(f"k must satisfy 1 <= k <= n, got k={self.k}, n={self.n}")
        if self.train_size < 1 or self.val_size < 1:
            raise UserError("train_size and val_size must be >= 1")
        if self.n <= 62 and self.train_size + self.val_size > 2 ** self.n:
            raise UserError(f"train_size + val_size = {self.train_size + self.val_size} exceeds the "
                            f"{2 ** self.n} distinct strings of n={self.n} bits")
        rng = np.random.default_rng(self.seed)
        self.secret = np.sort(rng.choice(self.n, size=self.k, replace=False))
        bits = _distinct_bit_strings(self.train_size + self.val_size, self.n, rng)
        tokens = np.concatenate([bits, parity_labels(bits, self.secret)[:, None]], axis=1)
        self.train_tokens = torch.from_numpy(tokens[: self.train_size]).long()
        self.val_tokens = torch.from_numpy(tokens[self.train_size:]).long()

    @property
    def seq_len(self) -> int:
        return self.n + 1

    @property
    def label_position(self) -> int:
        return self.n

    @property
    def extended_secret(self) -> np.ndarray:
        """S' = S plus the label position: any element is the XOR of the others."""
        return np.append(self.secret, self.n)

    def describe(self) -> dict:
        return {"n": self.n, "k": self.k, "train_size": self.train_size, "val_size": self.val_size,
                "seed": self.seed, "secret": self.secret.tolist(),
                "tokens": {"bit0": BIT0, "bit1": BIT1, "mask": MASK, "bos": BOS,
                           "vocab_size": VOCAB_SIZE, "layout": "n bits then the label"}}


def with_label_masked(tokens: torch.Tensor) -> torch.Tensor:
    """Evaluation input of bidirectional models: all bits visible, label masked."""
    out = tokens.clone()
    out[:, -1] = MASK
    return out


def autoregressive_pair(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, target) for next-token prediction: [BOS, bits] -> [bits, label]."""
    bos = torch.full_like(tokens[:, :1], BOS)
    return torch.cat([bos, tokens[:, :-1]], dim=1), tokens
