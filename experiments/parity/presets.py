"""Run lists of the parity study, one function per preset.

A run is a ``RunSpec``: the task and engine configs of one parity run
(``ParityTaskConfig`` and its ``train_config``, the task's defaults with the
settings the preset names replaced) and the study group it belongs to. Its
directory name says how it differs from the defaults, so re-running a
preset finds its own runs again (finished ones are skipped, unfinished ones
resumed).

Presets and where they write (``ROOTS``):

    tiny         seconds; a smoke test of the runner      results/parity/tiny
    quick        <= 20 min on 2 CPU cores: the main       results/parity/quick
                 comparison at wd 0.1, one seed, short
                 budget (what ``make all`` regenerates)
    calibration  the documented search for a CPU setting  results/parity/calibration
    full         main comparison (wd 0.1 and 0.0, 3       results/parity
                 seeds), k-sweep, uniform-attention transformer/MLP
    os_long      output supervision to 10k steps (does    results/parity/os_long
                 a memorising run grok later?)
    paper        the paper's (20,6) setup for a GPU        results/parity/paper
    phase_calibration  the search for the phase-diagram  results/parity/phase_calibration
                 model at n = 16 (reduced MLP, batch 256)
    phase        the (k, N) phase diagram at n = 16: OS,  results/parity/phase
                 MD at the sample-complexity-optimal
                 window and MD U[0,1], 6 seeds per cell
    phase_windows  windows U[0, t1] in the phase grid's   results/parity/phase
                 N = 8192 cells (where MD learns), same
                 seeds; reuses the grid's two windows
    phase_wd     weight decay 0 against the grid's 0.1    results/parity/phase
                 at the boundary cells, OS and MD
    phase_extend the phase cells where MD ended between   results/parity/phase_extend
                 0.90 and 0.99, every MD seed again with
                 3x the budget (same names as in phase):
                 the grid's theory-window cells at wd 0.1
    phase_extend_more  the same for U[0,1], wd 0 and the   results/parity/phase_extend
                 window sweep at N = 8192
    phase_batch  full batch against the grid's 256 at      results/parity/phase_batch
                 three cells, OS and MD, 6 seeds
    paper_mlp    the paper's Fig. 5 setting: (20,6),       results/parity/paper_mlp
                 N = 5000, full batch, reduced MLP 2560
                 wide, OS and MD windows, 25k steps

``quick`` and ``tiny`` have their own roots so that ``make all`` never
touches the committed full results; the figures read results/parity/runs.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, fields, replace

from mdtheory.runfiles import spec_window
from mdtheory.theory.numeric import best_t1_given_t0_zero, sample_complexity_optimal_t1
from mdtheory.train.config import TrainConfig
from mdtheory.train.parity_task import ParityTaskConfig

ROOTS = {
    "tiny": "results/parity/tiny",
    "quick": "results/parity/quick",
    "calibration": "results/parity/calibration",
    "full": "results/parity",
    "os_long": "results/parity/os_long",
    "paper": "results/parity/paper",
    "phase_calibration": "results/parity/phase_calibration",
    "phase": "results/parity/phase",
    # both extend the grid: same root, so the runs they share with it are one folder
    "phase_windows": "results/parity/phase",
    "phase_wd": "results/parity/phase",
    "phase_extend": "results/parity/phase_extend",
    "phase_extend_more": "results/parity/phase_extend",
    "phase_batch": "results/parity/phase_batch",
    "paper_mlp": "results/parity/paper_mlp",
}

# windows U[0, t1] of the main comparison; the theory's best t1 for k is added
MAIN_T1 = (0.1, 0.2, 0.3, 0.4, 1.0)


# the settings a spec shows flat (spec.n, spec.t1, ...) and its run.json
# "spec" record lists, in that order; each lives in the task or engine config
# (t0 and t1: the task's window sampler)
FLAT_SETTINGS = ("objective", "n", "k", "train_size", "steps", "seed", "t0", "t1", "weight_decay", "lr",
                 "batch_size", "model", "n_layer", "n_head", "n_embd", "val_size", "loss_weighting",
                 "normalization", "eval_every")
TASK_DEFAULTS = ParityTaskConfig()
TRAIN_DEFAULTS = TASK_DEFAULTS.train_config()
# settings of the md loss only: an os or ar run keeps the task's defaults
MD_ONLY = ("sampler", "loss_weighting", "normalization")
# Run names leave out the shape 2 layers, 4 heads, width 64 and the batch
# size 64: the study's defaults when the committed folders were named. The
# parity task's defaults are width 128 (MLP 2560) and batch 128, so these two
# stay fixed here to keep every folder name (layers, heads, lr, model, loss
# weighting and normalization are compared with the task's own defaults).
NAME_WIDTH, NAME_BATCH = 64, 64


_TASK_FIELDS = {f.name for f in fields(ParityTaskConfig)}
_TRAIN_FIELDS = {f.name for f in fields(TrainConfig)} - {"seed"}  # the engine's seed is the task's


def _window(task: ParityTaskConfig) -> tuple[float | None, float | None]:
    return spec_window(task.sampler) or (None, None)


def _window_sampler(t0, t1) -> str:
    """The sampler of the md window U[t0, t1]; t0 = t1 = None: the task's default."""
    if t0 is None and t1 is None:
        return TASK_DEFAULTS.sampler
    return f"window:{float(t0)!r},{float(t1)!r}"


def _g(x) -> str:
    return f"{float(x):g}"


@dataclass(frozen=True, init=False)
class RunSpec:
    """One parity run: its task and engine settings (the real configs) and
    the study's bookkeeping (group, tag, early stop).

    ``RunSpec(n=12, k=3, t0=0.0, t1=0.3, steps=4000, ...)`` starts from the
    parity task's defaults (``ParityTaskConfig()`` and its ``train_config()``)
    and replaces each named setting in the config that has it (the seed in
    both; t0 and t1 make the window sampler; an os or ar run keeps the task's
    md-loss defaults). So ``dataclasses.replace(spec, t1=0.2, seed=1)``
    changes settings by name too, and ``spec.n``, ``spec.t1``, ... read them.
    The folder name says how the run differs from the defaults (``name``)."""
    task: ParityTaskConfig
    train: TrainConfig
    group: str = "main"                 # main, ksweep, models, calibration, ablation, ...
    tag: str = ""                       # distinguishes otherwise equal runs (e.g. "long")
    early_stop: bool = True             # stop at 0.99 (run.py); not in the name: the records agree up to the stop

    def __init__(self, task: ParityTaskConfig | None = None, train: TrainConfig | None = None,
                 group: str = "main", tag: str = "", early_stop: bool = True, **settings):
        task = TASK_DEFAULTS if task is None else task
        train = task.train_config() if train is None else train
        unknown = set(settings) - _TASK_FIELDS - _TRAIN_FIELDS - {"t0", "t1"}
        if unknown:
            raise TypeError(f"RunSpec got unknown settings {sorted(unknown)}")
        task = replace(task, **{k: v for k, v in settings.items() if k in _TASK_FIELDS})
        if "t0" in settings or "t1" in settings:
            task = replace(task, sampler=_window_sampler(settings.get("t0", _window(task)[0]),
                                                         settings.get("t1", _window(task)[1])))
        if task.objective != "md":
            task = replace(task, **{k: getattr(TASK_DEFAULTS, k) for k in MD_ONLY})
        train = replace(train, **{k: v for k, v in settings.items() if k in _TRAIN_FIELDS}, seed=task.seed)
        for name, value in (("task", task), ("train", train), ("group", group), ("tag", tag),
                            ("early_stop", early_stop)):
            object.__setattr__(self, name, value)

    @property
    def t0(self) -> float | None:
        """Lower end of the md window U[t0, t1]; None for os and ar."""
        return _window(self.task)[0] if self.objective == "md" else None

    @property
    def t1(self) -> float | None:
        return _window(self.task)[1] if self.objective == "md" else None

    @property
    def name(self) -> str:
        """Directory name: every setting that distinguishes runs, readable."""
        what = self.objective if self.objective != "md" else f"md{_g(self.t0)}-{_g(self.t1)}"
        parts = [what, f"n{self.n}k{self.k}", f"N{self.train_size}", f"wd{_g(self.weight_decay)}"]
        if self.model != TASK_DEFAULTS.model:  # folders keep the short name the model had when they were made
            parts.append({"uniform-attention-transformer": "uniform-attention"}.get(self.model, self.model))
        if (self.n_layer, self.n_head, self.n_embd) != (TASK_DEFAULTS.n_layer, TASK_DEFAULTS.n_head, NAME_WIDTH):
            parts.append(f"L{self.n_layer}H{self.n_head}D{self.n_embd}")
        if self.lr != TRAIN_DEFAULTS.lr:
            parts.append(f"lr{_g(self.lr)}")
        if self.batch_size != NAME_BATCH:
            parts.append(f"bs{self.batch_size}")
        for setting, label in (("loss_weighting", "w"), ("normalization", "norm")):
            if getattr(self.task, setting) != getattr(TASK_DEFAULTS, setting):  # md only (os, ar: defaults)
                parts.append(f"{label}-{getattr(self.task, setting)}")
        if self.tag:
            parts.append(self.tag)
        parts.append(f"s{self.seed}")
        return "_".join(parts)

    def configs(self) -> tuple[ParityTaskConfig, TrainConfig]:
        """(task, engine) settings of this run, copies of the spec's."""
        return replace(self.task), replace(self.train)

    def describe(self) -> dict:
        """The spec as run.json records it: name, the flat settings, bookkeeping."""
        return {"name": self.name, **{k: getattr(self, k) for k in FLAT_SETTINGS},
                "group": self.group, "tag": self.tag, "early_stop": self.early_stop}


# spec.objective, spec.n, ...: read-only views of the configs
for _name in FLAT_SETTINGS:
    if _name not in ("t0", "t1"):
        setattr(RunSpec, _name, property(lambda spec, name=_name: getattr(
            spec.task if name in _TASK_FIELDS else spec.train, name)))


def md_windows(k: int) -> list[tuple[float, float]]:
    """U[0, t1] for the main t1 values plus the theory's best t1 for k."""
    best = round(best_t1_given_t0_zero(k), 3)
    return [(0.0, t1) for t1 in sorted(set(MAIN_T1) | {best})]


def comparison(base: RunSpec, seeds, windows=None, objectives=("os", "ar", "md")) -> list[RunSpec]:
    """OS, AR and MD windows on one backbone/data/optimizer, for each seed."""
    windows = md_windows(base.k) if windows is None else windows
    runs = []
    for seed in seeds:
        for obj in objectives:
            if obj == "md":
                runs += [replace(base, objective="md", t0=t0, t1=t1, seed=seed) for t0, t1 in windows]
            else:
                runs.append(replace(base, objective=obj, t0=None, t1=None, seed=seed))
    return runs


# --- the calibrated CPU setting (see experiments/parity/README.md) ----------
# Chosen by the calibration grid below as the largest problem on which both OS
# and MD reach 0.99 within a few thousand steps on this CPU. NB: output
# supervision shows no memorisation plateau here (see the README): (12,4) and
# (12,5) make OS memorise slowly without generalising, but MD was not
# CPU-feasible there.
MAIN = RunSpec(objective="md", n=12, k=3, train_size=64, steps=4000, n_embd=64, batch_size=64)
SIDE_STEPS = 2000     # budget of the k-sweep and model runs
OS_LONG_STEPS = 10_000
KSWEEP_K = (2, 3, 4)


def preset_tiny() -> list[RunSpec]:
    base = replace(MAIN, n=8, k=2, val_size=64, steps=40, eval_every=10, group="tiny")
    return comparison(base, seeds=[0], windows=[(0.0, 0.3)])


def preset_quick() -> list[RunSpec]:
    """The main comparison at wd 0.1, one seed, a shorter budget."""
    return comparison(replace(MAIN, steps=1500, group="main"), seeds=[0])


def preset_main() -> list[RunSpec]:
    runs = comparison(replace(MAIN, group="main", weight_decay=0.1), seeds=[0, 1, 2])
    runs += comparison(replace(MAIN, group="main", weight_decay=0.0), seeds=[0, 1, 2])
    return runs


def preset_ksweep() -> list[RunSpec]:
    """MD window sweep for several k on the main backbone (the main k is in main)."""
    runs = []
    for k in KSWEEP_K:
        if k == MAIN.k:
            continue
        runs += comparison(replace(MAIN, k=k, steps=SIDE_STEPS, group="ksweep"), seeds=[0, 1, 2],
                           objectives=("md",))
    return runs


def preset_models() -> list[RunSpec]:
    """Uniform-attention transformer and the reduced MLP (paper Fig 5), OS and MD."""
    runs = []
    for model, width in (("uniform-attention-transformer", 64), ("mlp", 512)):
        base = replace(MAIN, model=model, n_embd=width, steps=SIDE_STEPS, group="models")
        best = round(best_t1_given_t0_zero(MAIN.k), 3)
        runs += comparison(base, seeds=[0], windows=[(0.0, 0.2), (0.0, best)], objectives=("os", "md"))
    return runs


def preset_os_long() -> list[RunSpec]:
    """Output supervision run on past the main budget: does a memorising run
    ever generalise (the paper's late grokking)? Runs that generalise early stop."""
    return [replace(MAIN, objective="os", seed=seed, weight_decay=wd, steps=OS_LONG_STEPS, group="os_long",
                    tag="long") for wd in (0.1, 0.0) for seed in (0, 1, 2)]


def preset_extra_seeds() -> list[RunSpec]:
    """Seeds 3 and 4 of the main comparison at wd 0.1 (added when the first
    three seeds turned out to disagree with each other)."""
    return comparison(replace(MAIN, group="main", weight_decay=0.1), seeds=[3, 4])


def preset_full() -> list[RunSpec]:
    # priority order: main at wd 0.1 (all seeds) first, then wd 0.0, then k-sweep, then models
    main = preset_main()
    main.sort(key=lambda r: (-r.weight_decay, r.seed))
    return main + preset_ksweep() + preset_models() + preset_extra_seeds()


def preset_calibration() -> list[RunSpec]:
    """The search for a CPU-feasible setting; every row is reported in the README."""
    c = dict(group="calibration")
    os_, md = dict(objective="os", **c), dict(objective="md", t0=0.0, t1=0.3, **c)
    return [  # on MAIN's backbone and optimiser, n = 12
        # 1) which (n, k, N) makes output supervision memorise before it generalises?
        replace(MAIN, k=3, train_size=150, steps=1500, **os_),
        replace(MAIN, k=3, train_size=64, steps=1000, **os_),
        replace(MAIN, k=4, train_size=300, steps=2000, **os_),
        replace(MAIN, k=5, train_size=500, steps=2000, **os_),
        replace(MAIN, k=3, train_size=150, steps=600, lr=3e-3, **os_),
        # 2) can MD learn there at all, and does a larger lr help?
        replace(MAIN, k=3, train_size=150, steps=2000, **md),
        replace(MAIN, k=3, train_size=150, steps=1000, lr=3e-3, **md),
        replace(MAIN, k=3, train_size=64, steps=2000, **md),
        # 3) clearly-labelled ablation of the MD loss variants on the main setting
        replace(MAIN, steps=2000, t0=0.0, t1=0.3, loss_weighting="none", group="ablation"),
        replace(MAIN, steps=2000, t0=0.0, t1=0.3, normalization="masked", group="ablation"),
    ]


def preset_paper() -> list[RunSpec]:
    """The paper's (20,6) setup (GPU), seeds 0-2: nanoGPT-sized model, wd 0.1,
    20k MD steps per window, a long OS run. N and the width are not stated in
    the paper; we use N = 5000 and a 6-layer, 384-wide, 6-head transformer."""
    base = RunSpec(objective="md", n=20, k=6, train_size=5000, steps=20_000, n_layer=6, n_head=6,
                   n_embd=384, batch_size=256, eval_every=250, group="paper")
    runs = []
    for seed in range(3):
        runs += [replace(base, seed=seed, t0=0.0, t1=t1) for t1 in (0.1, 0.2, 0.3, 0.4)]
        runs.append(replace(base, seed=seed, t0=0.0, t1=round(best_t1_given_t0_zero(6), 3)))
        runs.append(replace(base, seed=seed, objective="os", t0=None, t1=None, steps=400_000, eval_every=2000))
    return runs


# --- the (k, N) phase diagram at n = 16 (see experiments/parity/README.md) ---
# The reduced MLP learns k = 4, 5 under MD once N is large enough; the small
# transformer did not (calibration). One model and optimiser for every cell.
PHASE = RunSpec(objective="md", n=16, k=4, train_size=2048, steps=10_000, model="mlp", n_embd=1024,
                batch_size=256, eval_every=250, group="phase")
PHASE_K = (3, 4, 5)
PHASE_N = (128, 512, 2048, 8192)
PHASE_SEEDS = tuple(range(6))
PHASE_OS_STEPS = 4000   # OS reached 0.99 within 1,250 steps wherever it generalised in calibration
# OS reached 0.99 and MD did not in every one of seeds 0-2 at these (k, N), so
# OS and MD at the theory's window get seeds up to 10 for the log-rank test
PHASE_CONTRAST_CELLS = ((3, 512), (4, 2048), (5, 2048))
PHASE_CONTRAST_SEEDS = tuple(range(6, 10))
# the grid's N are 4x apart, too coarse to say whether MD's boundary lies
# within 4x of the bound: OS and MD at the theory's window at N = 4 x bound
PHASE_BOUND_FACTOR = 4
# there OS learnt in 6/6 seeds and MD in 4/6 (k = 4) and 0/6 (k = 5): seeds up to 10
PHASE_BOUND_CONTRAST_K = (4, 5)


def sample_complexity_window(k: int) -> tuple[float, float]:
    """U[0, t1] with t1 minimising the theory's sample-complexity bound."""
    return 0.0, round(sample_complexity_optimal_t1(k), 3)


def phase_cell(k: int, n_train: int, seed: int, md_full_range: bool = True) -> list[RunSpec]:
    """OS, MD at the sample-complexity window (and MD U[0,1]) on one seed's data."""
    cell = replace(PHASE, k=k, train_size=n_train, seed=seed)
    windows = (sample_complexity_window(k), (0.0, 1.0)) if md_full_range else (sample_complexity_window(k),)
    return [replace(cell, objective="os", steps=PHASE_OS_STEPS),
            *(replace(cell, t0=t0, t1=t1) for t0, t1 in windows)]


def n_at_bound_factor(k: int) -> int:
    """PHASE_BOUND_FACTOR times the theory's N-bound of the sample-complexity window."""
    from experiments.parity.summarize import BOUND_DELTA
    from mdtheory.theory.numeric import sample_complexity_bound
    t0, t1 = sample_complexity_window(k)
    return math.ceil(PHASE_BOUND_FACTOR * float(sample_complexity_bound(PHASE.n, k, BOUND_DELTA, t0, t1)))


def preset_phase() -> list[RunSpec]:
    """Seed-major order, so a half-finished grid has every cell at equal depth;
    then more seeds where OS and MD disagreed, then N at 4x the bound (with
    more seeds where they disagreed there)."""
    runs = [run for seed in PHASE_SEEDS for k in PHASE_K for n_train in PHASE_N
            for run in phase_cell(k, n_train, seed)]
    runs += [run for seed in PHASE_CONTRAST_SEEDS for k, n_train in PHASE_CONTRAST_CELLS
             for run in phase_cell(k, n_train, seed, md_full_range=False)]
    n_bound = {k: n_at_bound_factor(k) for k in PHASE_K}  # one quadrature per k
    runs += [run for seed in PHASE_SEEDS for k in PHASE_K
             for run in phase_cell(k, n_bound[k], seed, md_full_range=False)]
    runs += [run for seed in PHASE_CONTRAST_SEEDS for k in PHASE_BOUND_CONTRAST_K
             for run in phase_cell(k, n_bound[k], seed, md_full_range=False)]
    return runs


# Windows U[0, t1] where MD learns at every k (N = 8192): is the fastest window
# where P_S (best_t1_given_t0_zero) or the sample-complexity bound puts it?
PHASE_WINDOW_T1 = (0.1, 0.2, 0.5)
PHASE_WINDOW_N = 8192
# weight decay 0 at the cells where OS generalises and MD does not yet (and
# one where both learn): does OS's generalisation need weight decay?
PHASE_WD_CELLS = ((3, 512), (4, 2048), (5, 2048), (4, 8192))


def phase_windows(k: int) -> list[tuple[float, float]]:
    """U[0, t1] for the fixed t1s, both theory t1s and 1.0, in increasing t1."""
    t1s = {*PHASE_WINDOW_T1, sample_complexity_window(k)[1], round(best_t1_given_t0_zero(k), 3), 1.0}
    return [(0.0, t1) for t1 in sorted(t1s)]


def preset_phase_windows() -> list[RunSpec]:
    return [replace(PHASE, k=k, train_size=PHASE_WINDOW_N, seed=seed, t0=t0, t1=t1)
            for seed in PHASE_SEEDS for k in PHASE_K for t0, t1 in phase_windows(k)]


def preset_phase_wd() -> list[RunSpec]:
    runs = []
    for seed in PHASE_SEEDS:
        for k, n_train in PHASE_WD_CELLS:
            cell = replace(PHASE, k=k, train_size=n_train, seed=seed, weight_decay=0.0)
            runs += [replace(cell, objective="os", steps=PHASE_OS_STEPS),
                     replace(cell, t0=sample_complexity_window(k)[0], t1=sample_complexity_window(k)[1])]
    return runs


def preset_phase_calibration() -> list[RunSpec]:
    """What was tried before fixing PHASE (one seed unless stated; README table)."""
    c = replace(PHASE, group="phase_calibration", steps=4000)
    md = lambda k, n_train, **kw: replace(c, k=k, train_size=n_train, t0=0.0,
                                          t1=sample_complexity_window(k)[1], **kw)
    os_ = lambda k, n_train, **kw: replace(c, objective="os", k=k, train_size=n_train, **kw)
    long = dict(steps=12_000)
    return [
        md(4, 512, **long), md(4, 2048, **long), md(4, 4096, **long), md(4, 8192, **long),
        replace(c, k=4, train_size=8192, t0=0.0, t1=0.338, steps=12_000),  # the P_S-optimal t1
        md(4, 2048, seed=1), md(4, 2048, seed=2), md(3, 2048, **long), md(5, 2048), md(5, 8192, **long),
        os_(4, 256), os_(4, 256, weight_decay=0.0), os_(4, 512), os_(4, 512, weight_decay=0.0),
        os_(4, 2048), os_(4, 2048, seed=1), os_(4, 2048, seed=2), os_(4, 8192),
        os_(3, 512), os_(5, 512), os_(5, 2048), os_(5, 8192),
    ]


# MD cells (k, N, t1, weight decay) of the phase presets where a run ended at
# its 10k budget with held-out accuracy in [0.90, 0.99) (results/parity/phase/summary.csv):
# first the cells of the grid's verdict (the sample-complexity window at wd 0.1) ...
PHASE_EXTEND_CELLS = ((3, 1896, 0.328, 0.1), (4, 2048, 0.261, 0.1), (4, 2458, 0.261, 0.1),
                      (5, 2048, 0.216, 0.1), (5, 3021, 0.216, 0.1))
# ... then U[0,1], weight decay 0 and the window sweep at N = 8192
PHASE_EXTEND_MORE_CELLS = ((3, 2048, 1.0, 0.1), (4, 2048, 1.0, 0.1), (4, 2048, 0.261, 0.0),
                           (5, 2048, 0.216, 0.0), (5, 8192, 0.2, 0.1), (5, 8192, 0.216, 0.1),
                           (5, 8192, 0.285, 0.1), (5, 8192, 0.5, 0.1))
PHASE_EXTEND_FACTOR = 3


def _phase_extended(cells) -> list[RunSpec]:
    """Every MD seed of those cells, trained again (the committed runs kept no
    checkpoint) with 3x the budget; a run that reaches 0.99 stops as before."""
    cells = set(cells)
    runs = [r for r in preset_phase() + preset_phase_windows() + preset_phase_wd()
            if r.objective == "md" and (r.k, r.train_size, r.t1, r.weight_decay) in cells]
    runs = list({r.name: replace(r, steps=PHASE_EXTEND_FACTOR * r.steps, group="phase_extend")
                 for r in runs}.values())  # the presets share some runs
    return sorted(runs, key=lambda r: (r.seed, r.k, r.train_size, r.t1))


def preset_phase_extend() -> list[RunSpec]:
    return _phase_extended(PHASE_EXTEND_CELLS)


def preset_phase_extend_more() -> list[RunSpec]:
    return _phase_extended(PHASE_EXTEND_MORE_CELLS)


# full batch against the grid's minibatch of 256, where MD was slowest or failed
PHASE_BATCH_CELLS = ((3, 512), (4, 2048), (5, None))   # None: N = 4 x the bound (3021 at k = 5)


def preset_phase_batch() -> list[RunSpec]:
    runs = []
    for seed in PHASE_SEEDS:
        for k, n_train in PHASE_BATCH_CELLS:
            n_train = n_train or n_at_bound_factor(k)
            runs += [replace(r, batch_size=n_train, group="phase_batch")
                     for r in phase_cell(k, n_train, seed, md_full_range=False)]
    return runs


# --- the paper's Fig. 5 setting: reduced MLP, full batch (see the README) ----
PAPER_MLP = RunSpec(objective="md", n=20, k=6, train_size=5000, steps=25_000, model="mlp", n_embd=2560,
                    batch_size=5000, eval_every=250, group="paper_mlp")
PAPER_MLP_T1 = (0.1, 0.2, 0.3, 0.4, 1.0)
PAPER_MLP_SEEDS = {"os": 5, 0.2: 5}          # seeds per arm; the other windows get 3
PAPER_MLP_NO_EARLY_STOP = {"os": 3, 0.2: 3}  # seeds 0..2 of these train to the full budget


def preset_paper_mlp() -> list[RunSpec]:
    """OS and MD U[0, t1] on one model, data and seeds. Order: the first three
    seeds of OS, U[0,0.2] and U[0,1], then the other windows, then seeds 3-4."""
    arms = ["os", *PAPER_MLP_T1]
    runs = []
    for seed in range(max(PAPER_MLP_SEEDS.values())):
        for arm in arms:
            if seed >= PAPER_MLP_SEEDS.get(arm, 3):
                continue
            spec = replace(PAPER_MLP, seed=seed, early_stop=seed >= PAPER_MLP_NO_EARLY_STOP.get(arm, 0))
            runs.append(replace(spec, objective="os") if arm == "os" else replace(spec, t0=0.0, t1=arm))
    first = {"os", 0.2, 1.0}
    return sorted(runs, key=lambda r: (r.seed >= 3, (r.t1 if r.objective == "md" else "os") not in first, r.seed))


PRESETS = {"tiny": preset_tiny, "quick": preset_quick, "calibration": preset_calibration,
           "full": preset_full, "os_long": preset_os_long, "paper": preset_paper,
           "phase_calibration": preset_phase_calibration, "phase": preset_phase,
           "phase_windows": preset_phase_windows, "phase_wd": preset_phase_wd,
           "phase_extend": preset_phase_extend, "phase_extend_more": preset_phase_extend_more,
           "phase_batch": preset_phase_batch,
           "paper_mlp": preset_paper_mlp}


def runs_of(preset: str, only: str | None = None) -> list[RunSpec]:
    """The runs of ``preset`` whose name matches the glob ``only`` (if given)."""
    runs = PRESETS[preset]()
    names = [r.name for r in runs]
    assert len(set(names)) == len(names), "two runs of a preset share a directory name"
    if only:
        pattern = only if any(ch in only for ch in "*?[") else f"*{only}*"
        runs = [r for r in runs if fnmatch.fnmatch(r.name, pattern)]
    return runs
