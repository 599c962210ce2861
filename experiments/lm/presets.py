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

A preset holds what its runs share as the real settings: ``task``, an
``LMTaskConfig`` (corpus, tokenizer, model, evaluation), and ``train``, the
``TrainConfig`` of ``task.train_config(...)`` (budget, optimiser, evaluation
and checkpoint cadence); a setting it does not name keeps that config's own
default. Each run sets only its seed and its mask-rate law (``configs``).
The rest is the study's bookkeeping: seeds, windows, U[0, 1], the predicted
window, the AR baseline and the smooth laws. A setting of either config may
also be given by its name, to ``Preset(...)`` or ``dataclasses.replace``:
``replace(preset, steps=4000, n_embd=128)`` is the preset with
``replace(preset.train, steps=4000)`` and ``replace(preset.task, n_embd=128)``.
A preset checkpoints at each evaluation: ``eval_every`` given alone sets
``ckpt_every`` too. ``PRESETS`` is built on first use (the configs' module
imports torch, which a reader of ``SMOOTH_LAWS`` does not need).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mdtheory.train.config import TrainConfig
    from mdtheory.train.lm_task import LMTaskConfig

# smooth laws with their mode at the corpus's t*: the window's spread (sd 0.1/sqrt 12) and twice it
SMOOTH_LAWS = ("predicted:law=beta", "predicted:law=logitnormal",
               "predicted:law=beta,width=0.2", "predicted:law=logitnormal,width=0.2")
TEN_WINDOWS = tuple((round(a / 10, 1), round(a / 10 + 0.1, 1)) for a in range(10))
PER_RUN = ("seed", "sampler", "objective")  # what each run sets (configs), not the preset
# run-time settings of the engine that the sweep sets per run (sweep.train_run)
PER_TRAINING = ("out_dir", "resume", "progress")


@lru_cache(maxsize=None)
def setting_names() -> tuple[frozenset, frozenset]:
    """The settings a preset may change by name: those of LMTaskConfig and
    those of TrainConfig (not the seed: each run has its own)."""
    from mdtheory.train.config import TrainConfig
    from mdtheory.train.lm_task import LMTaskConfig

    return (frozenset(f.name for f in fields(LMTaskConfig)) - {"seed"},
            frozenset(f.name for f in fields(TrainConfig)) - {"seed"})


@dataclass(frozen=True, init=False)
class Preset:
    name: str
    task: LMTaskConfig      # corpus, tokenizer, model, evaluation; each run sets its seed and law
    train: TrainConfig      # budget, optimiser, cadence: task.train_config(...) or a replace of it
    seeds: tuple[int, ...]
    windows: tuple[tuple[float, float], ...]
    uniform: bool
    predicted: bool
    ar_baseline: bool
    smooth: tuple[str, ...]  # further laws as --sampler specs (``predicted:law=...``)

    def __init__(self, name: str, task: LMTaskConfig | None = None, train: TrainConfig | None = None, *,
                 seeds: tuple[int, ...], windows: tuple[tuple[float, float], ...] = TEN_WINDOWS,
                 uniform: bool = True, predicted: bool = True, ar_baseline: bool = False,
                 smooth: tuple[str, ...] = (), **settings):
        """``settings``: settings of the task or training config by name (see
        the module's docstring); without ``task`` (``train``), LMTaskConfig's
        defaults (``task.train_config()``'s) fill the rest."""
        of_task, of_train = setting_names()
        if "seed" in settings:
            raise TypeError("Preset takes seeds, not seed: each run has its own (configs)")
        unknown = sorted(set(settings) - of_task - of_train)
        if unknown:
            raise TypeError(f"Preset got {', '.join(unknown)}: neither a setting of LMTaskConfig nor of TrainConfig")
        if "text_file" in settings:
            settings["text_file"] = settings["text_file"] or None  # "": no file of one's own
        if task is None:
            from mdtheory.train.lm_task import LMTaskConfig
            task = LMTaskConfig()
        task = replace(task, **{k: v for k, v in settings.items() if k in of_task})
        changes = {k: v for k, v in settings.items() if k in of_train}
        if "eval_every" in changes:
            changes.setdefault("ckpt_every", changes["eval_every"])
        train = task.train_config(**changes) if train is None else replace(train, **changes)
        for key, value in dict(name=name, task=task, train=train, seeds=tuple(seeds), windows=tuple(windows),
                               uniform=uniform, predicted=predicted, ar_baseline=ar_baseline,
                               smooth=tuple(smooth)).items():
            object.__setattr__(self, key, value)

    def configs(self, seed: int, **rate):
        """(task, engine) settings of one run: the preset's, with the seed and
        ``rate`` (``sampler=...`` or ``objective="ar"``)."""
        task = replace(self.task, seed=seed, **rate)
        return task, replace(self.train, seed=task.seed)

    def record(self) -> dict:
        """The preset as one flat record (window_sweep.json): its bookkeeping and
        every setting its runs share, by name."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("task", "train")}
        shared = {k: v for k, v in {**asdict(self.task), **asdict(self.train)}.items()
                  if k not in PER_RUN + PER_TRAINING}
        return {**own, **shared}


def build_presets() -> dict[str, Preset]:
    """The presets; every setting not named is LMTaskConfig's default or its
    engine default (LMTaskConfig.engine_defaults)."""
    from mdtheory.train.lm_task import LMTaskConfig

    tiny = LMTaskConfig(block_size=32, n_layer=1, n_head=2, n_embd=32, eval_blocks=8, eval_nt=4)
    quick = LMTaskConfig(block_size=64, n_layer=2, n_embd=64, eval_blocks=128)
    paper = LMTaskConfig(corpus="wikitext103", tokenizer="bpe", vocab_size=32768, block_size=150, n_layer=10,
                         n_head=10, n_embd=640, eval_blocks=1024, eval_nt=32)
    presets = {
        "tiny": Preset("tiny", tiny, tiny.train_config(steps=6, eval_every=3, ckpt_every=3, warmup=0, batch_size=8),
                       seeds=(0,), windows=((0.0, 0.1), (0.4, 0.5), (0.9, 1.0)), ar_baseline=True,
                       smooth=SMOOTH_LAWS[:1]),
        "quick": Preset("quick", quick, quick.train_config(steps=1000, lr=2e-3, batch_size=32), seeds=(0, 1, 2),
                        ar_baseline=True, smooth=SMOOTH_LAWS),
        "paper": Preset("paper", paper, paper.train_config(steps=6000, eval_every=500, ckpt_every=500, lr=6e-4,
                                                           warmup=300, batch_size=1024), seeds=(0,)),
    }
    # a corpus of one's own (python -m experiments.lm.sweep --text-file F): the
    # quick model and budget, the ten windows, U[0, 1], the window centred on
    # the corpus's t* and the smooth laws around it
    presets["corpus"] = replace(presets["quick"], name="corpus", ar_baseline=False)
    return presets


def __getattr__(name: str):
    """``PRESETS``, built on first use (see the module's docstring)."""
    if name == "PRESETS":
        presets = globals()["PRESETS"] = build_presets()
        return presets
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
