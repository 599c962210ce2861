"""Full-range evaluation of a masked diffusion language model.

The paper (Huang & Mirzasoleiman, arXiv:2601.22450, Sec. 5 and Fig. 3)
trains with t restricted to a window but always *tests* with t over all of
[0, 1]. This module computes that number deterministically.

What is computed
    For a test sequence x of L tokens and a rate t, mask every position
    independently with probability t and score

        g(x, t) = (1/t) * (1/L) * sum over masked j of -log p(x_j | x_masked).

    The full-range loss is  G(x) = integral_0^1 g(x, t) dt  averaged over
    test sequences. With the MDLM linear schedule (alpha_t = 1 - t) the
    continuous-time negative ELBO of x is  L * E_t E_mask[ g(x, t) ]  with
    t ~ U[0, 1]  (the 1/t is -alpha'_t / (1 - alpha_t)), so G is the
    **negative ELBO per token**, in nats: an upper bound on the true
    negative log-likelihood per token. Hence

        bits_per_token    = G / ln 2      (bits per character for --tokenizer char)
        perplexity_bound  = exp(G)        (>= the model's true perplexity)

How the integral is taken (deterministic)
    ``scheme='midpoint'``: [0, 1] is cut into n_t equal strata and
    g is evaluated at each stratum's midpoint (k + 1/2) / n_t, weight 1/n_t.
    Midpoints never touch t = 0, where the 1/t weight is singular; the
    integrand itself stays finite there (about t*L masked tokens times 1/t).
    ``scheme='gauss-legendre'``: n_t Gauss-Legendre nodes on [0, 1] (also
    interior). For every node k and sequence n the mask is drawn from its own
    generator seeded by (seed, k), so the same seed, data and model give the
    same number whatever the batch size, and different checkpoints are scored
    on identical masks.

Exact counts (``scheme='exact-count'``, the default)
    Integrating t out of the Bernoulli masks gives the same negative ELBO
    as a sum over the number m of masked tokens, since
    integral_0^1 (1/t) C(L,m) t^m (1-t)^(L-m) dt = 1/m:

        G(x) = (1/L) * sum_{m=1..L} E_{|M| = m} [ mean over j in M of -log p(x_j | x_M) ]

    (M a uniformly random set of m positions). The counts 1..L are cut into
    n_t consecutive strata; in stratum k each sequence gets one m drawn
    uniformly from the stratum and exactly m masked positions, and scores the
    mean cross-entropy over them; the strata are weighted by their share of
    1..L. This is an unbiased, stratified estimate of G, with no 1/t factor
    and no noise from the realised count (with Bernoulli masks at small t a
    few masked tokens carry the whole 1/(tL) weight). Its node t_k is the
    stratum's mean m / L.

Error bars
    Each sequence gets its own quadrature estimate G_n; the reported loss is
    their mean and ``full_range_test_loss_se`` is std(G_n) / sqrt(N). It
    covers the sampling of sequences and masks, not the quadrature error
    (which shrinks with n_t; compare n_t = 16 and 32 to check). The loss per
    t-bin (``bin_loss``) is the mean of g at each node, with its own error.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError
from .masking import corrupt

SCHEMES = ("midpoint", "gauss-legendre", "exact-count")
DEFAULT_SCHEME = "exact-count"  # no noise from the realised masked count (see the module's docstring)


@dataclass
class FullRangeResult:
    loss: float                 # mean over sequences of the quadrature estimate (nats/token)
    se: float                   # its standard error over sequences
    t: list[float]              # quadrature nodes
    weights: list[float]        # quadrature weights (sum to 1)
    bin_loss: list[float]       # mean g(x, t_k) per node (nats/token)
    bin_se: list[float]
    n_sequences: int
    seq_len: int
    scheme: str
    seed: int

    @property
    def bits_per_token(self) -> float:
        return self.loss / math.log(2)

    @property
    def perplexity_bound(self) -> float:
        return math.exp(min(self.loss, 700.0))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bits_per_token"] = self.bits_per_token
        d["perplexity_bound"] = self.perplexity_bound
        return d

    def metrics(self, prefix: str = "full_range_test_loss") -> dict[str, float]:
        """Flat fields for a metrics.jsonl record."""
        out = {prefix: self.loss, f"{prefix}_se": self.se,
               "full_range_bits_per_token": self.bits_per_token,
               "full_range_perplexity_bound": self.perplexity_bound}
        for t, v, se in zip(self.t, self.bin_loss, self.bin_se):
            out[f"full_range_bin/{t:.4f}"] = v
            out[f"full_range_bin_se/{t:.4f}"] = se
        return out


def quadrature(n_t: int, scheme: str = "midpoint") -> tuple[np.ndarray, np.ndarray]:
    """Nodes in (0, 1) and weights summing to 1."""
    if scheme not in SCHEMES:
        raise UserError(f"unknown quadrature scheme {scheme!r}; choose from {', '.join(SCHEMES)}")
    if int(n_t) < 1:
        raise UserError(f"n_t must be >= 1, got {n_t}")
    n_t = int(n_t)
    if scheme == "midpoint":
        return (np.arange(n_t) + 0.5) / n_t, np.full(n_t, 1.0 / n_t)
    x, w = np.polynomial.legendre.leggauss(n_t)
    return 0.5 * (x + 1.0), 0.5 * w


def count_strata(n_t: int, length: int) -> list[np.ndarray]:
    """The counts 1..length cut into n_t consecutive, near-equal strata."""
    if not 1 <= int(n_t) <= int(length):
        raise UserError(f"exact-count strata need 1 <= n_t <= sequence length ({length}), got {n_t}")
    edges = np.round(np.linspace(0, length, int(n_t) + 1)).astype(int)
    return [np.arange(lo + 1, hi + 1) for lo, hi in zip(edges[:-1], edges[1:])]


def exact_count_masks(n: int, length: int, counts: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """(n, length) masks: each row draws m from ``counts`` and masks exactly m
    positions chosen uniformly at random."""
    m = torch.from_numpy(counts)[torch.randint(len(counts), (n,), generator=generator)]
    ranks = torch.rand((n, length), generator=generator).argsort(dim=1).argsort(dim=1)
    return ranks < m[:, None]


def _node_generator(seed: int, node: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed((int(seed) * 1_000_003 + int(node) * 7_919 + 17) % (2**63 - 1))
    return gen


@torch.no_grad()
def full_range_loss(model: Callable[[torch.Tensor], torch.Tensor], sequences: torch.Tensor,
                    mask_id: int, n_t: int = 16, seed: int = 0, scheme: str = DEFAULT_SCHEME,
                    batch_size: int = 64, device: torch.device | str | None = None,
                    progress: bool = False) -> FullRangeResult:
    """Full-range (t over [0, 1]) masked-diffusion test loss of ``model``.

    ``model`` maps ids (B, L) long to logits (B, L, V); ``sequences`` is a
    (N, L) long tensor of test blocks. Masks are drawn on the CPU from
    generators seeded by (seed, node), then moved to ``device``.
    """
    if sequences.dim() != 2 or sequences.numel() == 0:
        raise UserError(f"sequences must be a non-empty (N, L) tensor, got shape {tuple(sequences.shape)}")
    n, length = sequences.shape
    if scheme == "exact-count":
        strata = count_strata(n_t, length)
        nodes = np.array([c.mean() / length for c in strata])
        weights = np.array([len(c) / length for c in strata])
    else:
        nodes, weights = quadrature(n_t, scheme)
    device = torch.device(device) if device is not None else sequences.device
    per_node = np.zeros((len(nodes), n))  # g(x_n, t_k)
    it = range(len(nodes))
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="full-range eval", leave=False)
    for k in it:
        t = float(nodes[k])
        if scheme == "exact-count":
            masks = exact_count_masks(n, length, strata[k], _node_generator(seed, k))
            noisy = torch.where(masks, torch.full_like(sequences.cpu(), mask_id), sequences.cpu())
        else:
            noisy, masks = corrupt(sequences.cpu(), t, mask_id, _node_generator(seed, k))
        for lo in range(0, n, batch_size):
            x = sequences[lo:lo + batch_size].to(device)
            m = masks[lo:lo + batch_size].to(device)
            logits = model(noisy[lo:lo + batch_size].to(device))
            ce = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), x.reshape(-1),
                                 reduction="none").view_as(x)
            # exact counts: the mean over the m masked tokens; Bernoulli: the 1/(tL)-weighted sum
            g = (ce * m).sum(dim=1) / (m.sum(dim=1) if scheme == "exact-count" else t * length)
            per_node[k, lo:lo + x.size(0)] = g.double().cpu().numpy()
    per_seq = weights @ per_node  # quadrature estimate per sequence
    se = float(per_seq.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    bin_se = (per_node.std(axis=1, ddof=1) / math.sqrt(n)) if n > 1 else np.full(len(nodes), np.nan)
    return FullRangeResult(
        loss=float(per_seq.mean()), se=se, t=nodes.tolist(), weights=weights.tolist(),
        bin_loss=per_node.mean(axis=1).tolist(), bin_se=np.asarray(bin_se).tolist(),
        n_sequences=int(n), seq_len=int(length), scheme=scheme, seed=int(seed))


def eval_blocks(ids: np.ndarray, block_size: int, max_blocks: int | None = None,
                split: str = "test") -> torch.Tensor:
    """Non-overlapping blocks of a token stream; with ``max_blocks``, that
    many blocks spread evenly over the stream (deterministic)."""
    n_full = len(ids) // block_size
    if n_full < 1:
        raise UserError(f"{split} split has {len(ids)} tokens, fewer than one block of {block_size}")
    starts = np.arange(n_full) * block_size
    if max_blocks is not None and max_blocks < n_full:
        starts = starts[np.linspace(0, n_full - 1, int(max_blocks)).round().astype(int)]
    blocks = np.stack([ids[s:s + block_size] for s in starts])
    return torch.from_numpy(blocks.astype(np.int64))
