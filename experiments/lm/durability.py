"""Does the window's gain last with more training, and with a larger model?

    python -m experiments.lm.durability [--jobs 2] [--stages x4 x16 wide-x4 bpe] [--seeds 0 1] [--collect-only]
        [--threads T] [--only GLOB] [--list] [--executor local|slurm] [--partition P] [--time MIN]
        [--gpus-per-run G] [--cpus-per-run C] [--array-parallelism A] [--no-progress]

Trains, on the quick preset's corpus, data and evaluation, U[0, 1], the
window chosen on val by the committed quick sweep
(RESULTS/window_sweep_summary.json) and the window centred on the predicted
t* (RESULTS/predicted_t.json), in four stages:

    x4       the quick model, 4x the quick preset's steps
    x16      the quick model, 16x its steps; also the Beta and logit-normal
             laws with mode t* and the window's spread
    wide-x4  a 4x larger model (width 128 instead of 64), 4x the steps
    bpe      a 2.6M-parameter model (4 layers, width 192) on a 4096-token
             byte-level BPE of the same corpus, 2500 steps of 32 x 64 tokens:
             U[0, 1], the window centred on t* and the smooth law best on
             val in the quick sweep (no val-chosen window: it was chosen for
             characters); t* is the corpus's character-level one

and writes RESULTS/durability.csv (one row per run: stage, sampler, kind,
n_params, steps, tokens, seed, full_range_{val,test}_loss(_se), device) from
the run records under RESULTS/durability/runs/<stage>/<run>/: every finished
run of every stage, also those of stages or seeds not asked for in this call
(trained earlier, or elsewhere and copied in). The runs go through the
common study runner like the sweep's (one bar, ``--jobs`` local processes or
one SLURM job array, run names ``<stage>/<run>`` for ``--only``): finished
runs are skipped, interrupted ones resume exactly. With ``--executor slurm``
the command submits and returns; ``--collect-only`` (or the same command
again) writes the CSV once the array has run.
``python -m experiments.lm.summarize`` turns the CSV into the gap to U[0, 1]
per stage and sampler.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from mdtheory.cli import OneLineParser, atomic_write_json, atomic_write_text, run_cli
from mdtheory.errors import UserError
from mdtheory.runfiles import hold_root, read_runs

from .. import study
from . import sweep
from .presets import PRESETS, SMOOTH_LAWS, Preset
from .summarize import folder_device, folder_n_params

# name: changes to the quick preset, settings of its task or training config by name (presets.Preset:
# each is a dataclasses.replace of that config; eval_every alone moves ckpt_every with it)
STAGES = {
    "x4": dict(steps=4000, eval_every=500),
    "x16": dict(steps=16000, eval_every=1000, smooth=SMOOTH_LAWS[:2]),
    "wide-x4": dict(steps=4000, eval_every=500, n_embd=128),
    # lr 1e-3 (nanoGPT's for small models) fixed before any run, not tuned
    "bpe": dict(steps=2500, eval_every=500, tokenizer="bpe", vocab_size=4096, n_layer=4, n_embd=192, lr=1e-3),
}
WINDOWLESS = {"bpe"}  # stages without the val-chosen character-level window
BEST_SMOOTH = {"bpe"}  # stages that add the smooth law chosen on val in the quick sweep
SEEDS = (0, 1)
FIELDS = ("stage", "run", "sampler", "kind", "n_params", "steps", "tokens", "seed", "full_range_val_loss",
          "full_range_val_loss_se", "full_range_test_loss", "full_range_test_loss_se", *sweep.UNIGRAM_FIELDS,
          "device", "run_dir")


def best_window(results: Path) -> tuple[float, float]:
    """The window the committed quick sweep chose on val."""
    path = results / "window_sweep_summary.json"
    try:
        best = json.loads(path.read_text(encoding="utf-8"))["best_window"]
        return float(best["t0"]), float(best["t1"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{path} holds no best window; run python -m experiments.lm.summarize first") from None


def best_smooth(results: Path) -> str | None:
    """The smooth law with the lowest val loss in the committed quick sweep (None before it has one)."""
    try:
        best = json.loads((results / "window_sweep_summary.json").read_text(encoding="utf-8"))["best_smooth"]
        return str(best["sampler"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stage_preset(stage: str, window: tuple[float, float], seeds, results: Path) -> Preset:
    changes = {"smooth": (), **STAGES[stage]}
    smooth = best_smooth(results) if stage in BEST_SMOOTH else None
    if smooth:
        changes["smooth"] = (*changes["smooth"], smooth)
    return replace(PRESETS["quick"], name=stage, windows=() if stage in WINDOWLESS else (window,), uniform=True,
                   predicted=True, ar_baseline=False, seeds=tuple(seeds), **changes)


def stage_root(results: Path, stage: str) -> Path:
    return results / "durability" / "runs" / stage


def stage_plan(stage: str, window: tuple[float, float], seeds, results: Path, pending: dict | None = None):
    """(preset, runs, run folder) of one stage (``pending``: see ``sweep.predicted_window``)."""
    preset = stage_preset(stage, window, seeds, results)
    runs, _ = sweep.plan(preset, results, pending)
    return preset, runs, stage_root(results, stage)


def write_csv(results: Path, window: tuple[float, float], seeds=SEEDS) -> int:
    """RESULTS/durability.csv from every finished run on disk, whatever this
    call trains: separate calls (--stages x4, then --stages x16) never drop
    each other's rows."""
    rows = []
    for stage in STAGES:
        on_disk = {run.seed for run in read_runs(stage_root(results, stage)) if run.seed is not None}
        preset, runs, root = stage_plan(stage, window, sorted(set(seeds) | on_disk), results)
        for row in sweep.collect(preset, runs, root)[0]:
            run_dir = Path(row["run_dir"])
            rows.append({**{k: row.get(k) for k in FIELDS}, "stage": stage, "n_params": folder_n_params(run_dir),
                         "device": folder_device(run_dir)})
    atomic_write_text(results / "durability.csv", sweep._csv(rows, FIELDS))
    return len(rows)


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m experiments.lm.durability", description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results/lm", help="holds the quick sweep's summary and predicted_t.json")
    p.add_argument("--stages", nargs="+", choices=sorted(STAGES), default=list(STAGES))
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--collect-only", action="store_true",
                   help="train nothing: write durability.csv from the finished runs on disk (e.g. copied in)")
    study.add_arguments(p)  # --jobs, --only, --list, --executor and its resources, --no-progress
    return p


def durability_study(results: Path, window: tuple[float, float], args, pending: dict | None = None):
    """The study runner over the stages asked for (runs named <stage>/<run>)
    and their (preset, runs, run folder), every run's settings checked."""
    stages = list(dict.fromkeys(args.stages))  # a stage named twice is trained once
    plans = [stage_plan(stage, window, args.seeds, results, pending) for stage in stages]
    jobs = []
    for stage, (preset, runs, root) in zip(stages, plans):
        sweep.check_runs(preset, runs)
        jobs += sweep.make_jobs(preset, runs, str(root.relative_to(results)), args.threads, f"{stage}/")
    return sweep.lm_study("lm durability", jobs, lambda: write_csv(results, window, args.seeds)), plans


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    study.check_arguments(args)
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    sweep.check_seeds(args.seeds)
    if args.list:  # reads the committed sweep, writes nothing
        results = sweep.usable_folder(Path(args.results))
        study.run_study(durability_study(results, best_window(results), args, pending={})[0], results, args)
        return 0
    results = sweep.writable_folder(Path(args.results))
    # one process per results root: the sweep and this study share results/lm (predicted_t.json)
    with hold_root(results / ".lock", f"results root {results}"):
        window = best_window(results)
        if args.collect_only:
            print(f"{write_csv(results, window, args.seeds)} finished run(s) -> {results / 'durability.csv'}")
            return 0
        pending: dict = {}  # a t* computed here is written once --only is known to match
        runner, plans = durability_study(results, window, args, pending)
        study.selected(runner, args)
        for name, record in pending.items():
            atomic_write_json(results / name, record, keep_provenance_if_unchanged=True)
        study.run_study(runner, results, args, hold=False)
        listed = write_csv(results, window, args.seeds)
        total = sum(len(runs) for _, runs, _ in plans)
        finished = sum(sweep.is_finished(root / s.name, preset.train.steps)
                       for preset, runs, root in plans for s in runs)
    print(f"{finished}/{total} runs finished; {listed} run(s) of all stages -> {results / 'durability.csv'}")
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
