"""Window-sweep presets (paper Fig. 3 and 7): what to train and for how long.

Every run of a preset shares the corpus, model, batch, block and number of
steps (so equal tokens); only the mask-rate law and the seed change. The
windows are the ten width-0.1 windows [a, a+0.1], a = 0.0..0.9, the
standard U[0, 1], a width-0.1 window centred on the corpus-predicted t*
(results/lm/predicted_t.json, ``python -m mdtheory.derive ngram``), and
smooth laws with their mode at t*: Beta and logit-normal with the window's
standard deviation and with twice it (``--sampler predicted:law=...``).

tiny   seconds: a smoke test of the whole pipeline (3 windows + U[0,1] +
       predicted + one smooth law, 1 seed, a 1-layer 32-wide model, 6 steps)
quick  <= 45 min on 2 CPU cores (measured here: 38 min for all 45 runs on one
       core shared with other jobs, one torch thread per run; every
       evaluation scores val and test): character-level Shakespeare,
       2-layer 64-wide bidirectional transformer (~0.1M parameters), block 64,
       batch 32, 1000 steps (2.0M tokens per run), 3 seeds: the ten windows,
       U[0,1], the predicted window, the four smooth laws around t*, and an
       AR baseline per seed on the same backbone
corpus the quick settings for a corpus of one's own (``--text-file``), AR
       baseline left out
paper  the paper's scale: WikiText-103 with a 32k BPE, a ~50M-parameter
       model (10 layers, width 640), block 150, batch 1024, 6000 steps
       (needs GPUs; the paper's own optimiser settings are not stated,
       ours are nanoGPT's)
"""
from __future__ import annotations

from dataclasses import dataclass, field

# smooth laws with their mode at the corpus's t*: the window's spread (sd 0.1/sqrt 12) and twice it
SMOOTH_LAWS = ("predicted:law=beta", "predicted:law=logitnormal",
               "predicted:law=beta,width=0.2", "predicted:law=logitnormal,width=0.2")
TEN_WINDOWS = tuple((round(a / 10, 1), round(a / 10 + 0.1, 1)) for a in range(10))


@dataclass(frozen=True)
class Preset:
    name: str
    corpus: str
    tokenizer: str
    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    batch_size: int
    steps: int
    eval_every: int
    eval_blocks: int
    eval_nt: int
    lr: float
    warmup: int
    seeds: tuple[int, ...]
    windows: tuple[tuple[float, float], ...] = TEN_WINDOWS
    uniform: bool = True
    predicted: bool = True
    ar_baseline: bool = False
    text_file: str | None = None      # any UTF-8 corpus instead of ``corpus``
    smooth: tuple[str, ...] = ()      # further laws as --sampler specs (``predicted:law=...``)
    extra_engine: dict = field(default_factory=dict)  # further TrainConfig settings

    def configs(self, seed: int, **rate):
        """(task, engine) settings of one run: the preset's corpus, model,
        evaluation and training, the seed, and ``rate`` (``sampler=...`` or
        ``objective="ar"``); the LM task's engine defaults fill the rest."""
        from mdtheory.train.lm_task import LMTaskConfig

        task = LMTaskConfig(corpus=self.corpus, text_file=self.text_file or None, tokenizer=self.tokenizer,
                            vocab_size=self.vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                            n_head=self.n_head, n_embd=self.n_embd, eval_blocks=self.eval_blocks,
                            eval_nt=self.eval_nt, seed=seed, **rate)
        return task, task.train_config(**{
            "steps": self.steps, "eval_every": self.eval_every, "ckpt_every": self.eval_every,
            "lr": self.lr, "warmup": self.warmup, "batch_size": self.batch_size, **self.extra_engine})


PRESETS = {
    "tiny": Preset("tiny", "shakespeare", "char", 4096, block_size=32, n_layer=1, n_head=2,
                   n_embd=32, batch_size=8, steps=6, eval_every=3, eval_blocks=8, eval_nt=4,
                   lr=1e-3, warmup=0, seeds=(0,), windows=((0.0, 0.1), (0.4, 0.5), (0.9, 1.0)),
                   ar_baseline=True, smooth=SMOOTH_LAWS[:1]),
    "quick": Preset("quick", "shakespeare", "char", 4096, block_size=64, n_layer=2, n_head=4,
                    n_embd=64, batch_size=32, steps=1000, eval_every=250, eval_blocks=128,
                    eval_nt=16, lr=2e-3, warmup=50, seeds=(0, 1, 2), ar_baseline=True,
                    smooth=SMOOTH_LAWS),
    # a corpus of one's own (python -m experiments.lm.sweep --text-file F): the
    # quick model and budget, the ten windows, U[0, 1], the window centred on
    # the corpus's t* and the smooth laws around it
    "corpus": Preset("corpus", "shakespeare", "char", 4096, block_size=64, n_layer=2, n_head=4,
                     n_embd=64, batch_size=32, steps=1000, eval_every=250, eval_blocks=128,
                     eval_nt=16, lr=2e-3, warmup=50, seeds=(0, 1, 2),
                     smooth=SMOOTH_LAWS),
    "paper": Preset("paper", "wikitext103", "bpe", 32768, block_size=150, n_layer=10, n_head=10,
                    n_embd=640, batch_size=1024, steps=6000, eval_every=500, eval_blocks=1024,
                    eval_nt=32, lr=6e-4, warmup=300, seeds=(0,)),
}
