"""Language modelling as a Task for the training engine (``lm`` subcommand).

    python -m mdtheory.train lm --corpus {shakespeare,wikitext2,wikitext103} \
        --tokenizer {char,bpe} --window T0 T1 --steps S --seed X --out DIR
        [--text-file PATH] [--sampler SPEC] [--objective {md,ar}] [--resume]

Objectives on one backbone (``mdtheory.models.Transformer``) and one data
stream:

md  (default) bidirectional attention; per sequence t is drawn from the
    mask-rate sampler (``--window T0 T1`` = U[T0, T1], ``--sampler SPEC`` any
    law of ``mdtheory.masking.parse_sampler``, default ``uniform``), tokens
    are replaced by the reserved mask id with probability t, and the loss is
    the 1/t-weighted cross-entropy on masked tokens divided by B*L
    (``mdtheory.train.objectives.masked_diffusion_loss``).
ar  causal attention, next-token cross-entropy: the baseline (it has no mask
    rate, so ``--window`` and ``--sampler`` are refused, not ignored).

Training batches: ``block_size`` contiguous tokens from random offsets in the
training split, drawn from ``step_generator(seed, step, shard)``, so a
resumed run sees exactly the batches an uninterrupted run would. Under DDP
(and with gradient accumulation) each shard draws its own micro-batch from
its own generator: the data of a step then differ from a single-process
run's, with the same statistics.

Evaluation (every ``--eval-every`` steps, merged into DIR/metrics.jsonl):
for md the full-range test loss of ``mdtheory.evaluate.full_range_loss``
(``--eval-blocks`` fixed test blocks spread over the test split, ``--eval-nt``
midpoint strata of t in [0, 1], masks fixed by ``--eval-seed``):
``full_range_test_loss`` (negative ELBO per token, nats),
``full_range_test_loss_se``, bits per token, the perplexity bound and one
``full_range_bin/<t>`` field per stratum, and ``full_range_val_loss(_se)``,
the same number on as many blocks of the validation split with the same mask
seeds. Choose windows or checkpoints on val; test is for reporting only.
For ar the same fields hold the exact next-token NLL per token, on blocks of
block_size + 1 tokens cut from the test (val) split (each block's first
token is context only), with ``eval_kind`` telling which is which. It is comparable to the md number
(an upper bound on the NLL) only in size, not token for token.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..cli import setting, setting_of
from ..data.corpus import CORPORA, load_corpus
from ..data.tokenize import DEFAULT_BPE_VOCAB, TOKENIZERS, build_tokenizer, encode_corpus
from ..errors import UserError
from ..evaluate import DEFAULT_SCHEME, SCHEMES, eval_blocks, full_range_loss
from ..predicted import law_for_corpus
from ..models import Transformer, TransformerConfig
from ..samplers import parse_sampler
from .config import TaskConfig
from .objectives import OBJECTIVES, make_objective
from .task import step_generator

# a language model has no label position to supervise alone
LM_OBJECTIVES = tuple(name for name, cls in OBJECTIVES.items() if not cls.needs_label)
MAX_EVAL_NT = 1024  # quadrature strata: far past the point where the SE over blocks dominates


@dataclass
class LMTaskConfig(TaskConfig):
    # nanoGPT shakespeare-char habits
    engine_defaults: ClassVar[dict] = dict(steps=2000, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99),
                                           warmup=50, lr_schedule="cosine", batch_size=64,
                                           eval_every=250, ckpt_every=250)

    corpus: str = setting("shakespeare", "training corpus", choices=CORPORA)
    text_file: str | None = setting(None, "any UTF-8 corpus (overrides --corpus)")
    tokenizer: str = setting("char", "tokenizer", choices=TOKENIZERS)
    vocab_size: int = setting(DEFAULT_BPE_VOCAB, "BPE vocabulary size (char: what the corpus has)")
    block_size: int = setting(128, "tokens per training sequence")
    objective: str = setting_of(TaskConfig, "objective", "md", choices=LM_OBJECTIVES)
    dropout: float = setting(0.0, "dropout probability")
    eval_blocks: int = setting(64, "test (and val) blocks scored")
    eval_nt: int = setting(16, "t strata of the full-range loss")
    eval_seed: int = setting(0, "seeds the fixed test masks")
    eval_scheme: str = setting(DEFAULT_SCHEME, "t quadrature of the full-range loss", choices=SCHEMES)
    eval_batch: int = setting(64, "blocks per evaluation forward pass")


class LMTask:
    name = "lm"

    def __init__(self, cfg: LMTaskConfig):
        self.objective = make_objective(cfg.objective, allowed=lambda cls: not cls.needs_label)
        if cfg.block_size < 2:
            raise UserError(f"block_size must be >= 2, got {cfg.block_size}")
        if cfg.eval_blocks < 2 or cfg.eval_nt < 1:
            raise UserError("eval_blocks must be >= 2 and eval_nt >= 1")
        if cfg.eval_nt > MAX_EVAL_NT:
            raise UserError(f"eval_nt must be <= {MAX_EVAL_NT} (each stratum is a full pass over the "
                            f"eval blocks), got {cfg.eval_nt}")
        if cfg.eval_scheme not in SCHEMES:
            raise UserError(f"unknown eval scheme {cfg.eval_scheme!r}; choose from {', '.join(SCHEMES)}")
        self.cfg = cfg
        parse_sampler(cfg.sampler, eps=cfg.eps, weighting=cfg.loss_weighting,
                      t_star=0.5)  # a bad spec is refused before the corpus is read
        corpus = load_corpus(cfg.corpus, text_file=cfg.text_file)
        self.predicted = None  # t* and the weights behind it, for --sampler predicted
        if cfg.sampler.strip().lower().startswith("predicted"):
            self.sampler, self.predicted = law_for_corpus(corpus, cfg.sampler, eps=cfg.eps,
                                                          weighting=cfg.loss_weighting)
        else:
            self.sampler = parse_sampler(cfg.sampler, eps=cfg.eps, weighting=cfg.loss_weighting)
        self.corpus_name, self.corpus_fingerprint = corpus.name, corpus.fingerprint()
        self.tok = build_tokenizer(cfg.tokenizer, corpus, cfg.vocab_size)
        # model and evaluation sizes are known now: refuse what cannot fit before allocating
        check_memory(cfg, self.tok.vocab_size, batch_size=1)
        ids = encode_corpus(self.tok, corpus, cfg.vocab_size)
        # ar reads block_size inputs and block_size targets: one token more
        self.span = cfg.block_size + self.objective.context_tokens
        if len(ids["train"]) <= self.span:
            raise UserError(f"training split has {len(ids['train'])} tokens, fewer than one block "
                            f"of {self.span}")
        self.train_ids = torch.from_numpy(ids["train"].astype(np.int64))
        # val picks windows and checkpoints, test only reports: both are scored
        # the same way (same block layout, same mask seeds)
        self.val = eval_blocks(ids["val"], self.span, cfg.eval_blocks, split="val")
        self.test = eval_blocks(ids["test"], self.span, cfg.eval_blocks)
        self.token_counts = {k: int(len(v)) for k, v in ids.items()}
        self.tokens_per_sequence = cfg.block_size

    # -- Task interface ------------------------------------------------------
    def config(self) -> dict:
        return {"name": self.name, **asdict(self.cfg), "sampler_law": self.sampler.describe(),
                "corpus_name": self.corpus_name, "corpus_fingerprint": self.corpus_fingerprint,
                "tokenizer_vocab_size": self.tok.vocab_size, "mask_id": self.tok.mask_id,
                "tokens": self.token_counts, "eval_blocks_used": int(self.test.shape[0]),
                **({"predicted": self.predicted} if self.predicted else {})}

    def build_model(self) -> Transformer:
        c = self.cfg
        return Transformer(TransformerConfig(
            vocab_size=self.tok.vocab_size, block_size=c.block_size, n_layer=c.n_layer,
            n_head=c.n_head, n_embd=c.n_embd, dropout=c.dropout,
            attention=self.objective.attention))

    def train_batch(self, step, batch_size, device, shard=0):
        gen = step_generator(self.cfg.seed, step, shard)
        starts = torch.randint(0, len(self.train_ids) - self.span + 1, (batch_size,), generator=gen)
        tokens = torch.stack([self.train_ids[s:s + self.span] for s in starts.tolist()])
        batch = self.objective.make_batch(tokens, self, gen)
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def loss(self, model, batch):
        return self.objective.loss(model, batch, self)

    @property
    def mask_id(self) -> int:
        return self.tok.mask_id

    def next_token_pair(self, tokens):
        return tokens[:, :-1], tokens[:, 1:]

    def masked_diagnostics(self, batch, out) -> dict:
        mask = batch["mask"]
        return {"t_mean": batch["t"].mean().detach(),
                "masked_ce": (out.ce * mask).sum() / mask.sum().clamp(min=1)}  # plain CE per masked token

    @torch.no_grad()
    def evaluate(self, model, step):
        """A causal model's likelihood is exact; a bidirectional one is scored
        by the full-range negative ELBO."""
        device = next(model.parameters()).device
        if self.objective.attention == "causal":
            test = self._evaluate_ar(model, self.test, device)
            val = self._evaluate_ar(model, self.val, device)
            return {"eval_kind": "ar_exact_nll", "full_range_test_loss": test[0],
                    "full_range_test_loss_se": test[1], "full_range_val_loss": val[0],
                    "full_range_val_loss_se": val[1],
                    "full_range_bits_per_token": test[0] / math.log(2),
                    "full_range_perplexity_bound": math.exp(min(test[0], 700.0))}
        kw = dict(n_t=self.cfg.eval_nt, seed=self.cfg.eval_seed, scheme=self.cfg.eval_scheme,
                  batch_size=self.cfg.eval_batch, device=device)
        test = full_range_loss(model, self.test, self.tok.mask_id, **kw)
        val = full_range_loss(model, self.val, self.tok.mask_id, **kw)
        return {"eval_kind": "md_full_range_nelbo", **test.metrics(),
                "full_range_val_loss": val.loss, "full_range_val_loss_se": val.se}

    def _evaluate_ar(self, model, blocks, device) -> tuple[float, float]:
        """Exact next-token NLL per token of ``blocks`` and its standard error."""
        per_seq = []
        for lo in range(0, blocks.shape[0], self.cfg.eval_batch):
            inputs, targets = self.next_token_pair(blocks[lo:lo + self.cfg.eval_batch].to(device))
            logits = model(inputs)
            ce = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(),
                                 reduction="none").view(inputs.size(0), -1)
            per_seq.append(ce.mean(dim=1).double().cpu())
        per_seq = torch.cat(per_seq)
        nll = float(per_seq.mean())
        se = float(per_seq.std() / math.sqrt(len(per_seq)))
        return nll, se

    def flops_per_token(self, model) -> float:
        return float(model.flops_per_token(self.cfg.block_size))

    def check_micro_batch(self, micro_batch: int) -> None:
        """Refuse, before training, a micro-batch that cannot fit (the engine calls this)."""
        check_memory(self.cfg, self.tok.vocab_size, micro_batch)


# ---------------------------------------------------------------------------
# memory: estimated before anything large is allocated
# ---------------------------------------------------------------------------

def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def memory_estimate(cfg: LMTaskConfig, vocab_size: int, batch_size: int,
                    bytes_per_activation: int = 4) -> dict[str, float]:
    """Lower estimates in bytes, so that only runs that surely cannot fit are
    refused: the fp32 training state (weights, gradients, two AdamW moments),
    the activations of one micro-batch (8 d numbers per token and layer, no
    attention matrix: fused attention never holds one, plus the logits), and
    the host arrays of one evaluation (the per-stratum loss table, one
    stratum's masks, one eval batch's logits)."""
    d, layers, t, v = float(cfg.n_embd), float(cfg.n_layer), float(cfg.block_size), float(vocab_size)
    params = layers * (12 * d * d + 13 * d) + 2 * v * d + t * d
    tokens = float(batch_size) * t
    activations = bytes_per_activation * tokens * (8 * d * layers + v)
    n_eval = float(cfg.eval_blocks)
    evaluation = 8 * cfg.eval_nt * n_eval + 5 * n_eval * t + 4 * min(cfg.eval_batch, n_eval) * t * v
    return {"parameters": params, "training": 16 * params + activations, "evaluation": evaluation}


def _memory_limit() -> tuple[float, str, int]:
    """Bytes we may use, what they are, and bytes per activation: the GPU's
    memory (bf16 autocast) when one is present, else the machine's RAM (fp32)."""
    if torch.cuda.is_available():
        return float(torch.cuda.get_device_properties(0).total_memory), "GPU memory", 2
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")), "RAM", 4
    except (ValueError, OSError, AttributeError):
        return float("inf"), "RAM", 4


def check_memory(cfg: LMTaskConfig, vocab_size: int, batch_size: int) -> None:
    """One UserError line, with the estimate, when the run cannot fit."""
    limit, what, per_activation = _memory_limit()
    est = memory_estimate(cfg, vocab_size, batch_size, per_activation)
    need = est["training"] + est["evaluation"]
    if need > limit:
        raise UserError(
            f"this run needs at least {_gib(need)} (model {est['parameters']:,.0f} parameters, training "
            f"{_gib(est['training'])}, evaluation {_gib(est['evaluation'])}) but the {what} is "
            f"{_gib(limit)}: lower --n-embd/--n-layer/--block-size/--batch-size/--eval-nt/--eval-blocks")
