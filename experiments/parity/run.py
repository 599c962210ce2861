"""Launch every run of a parity preset: ``python -m experiments.parity.run``.

    python -m experiments.parity.run --preset NAME [--root DIR] [--patience P] [--stack K]
        [--only PATTERN] [--list] [--jobs J] [--executor local|slurm] [--partition P]
        [--time MIN] [--gpus-per-run G] [--cpus-per-run C] [--array-parallelism A] [--no-progress]

The runs go through the common study runner (experiments/study.py): finished
runs are skipped, the rest run --jobs at a time on this machine or as one
SLURM job array (--executor slurm), e.g. the whole phase diagram on a cluster:

    python -m experiments.parity.run --preset phase --executor slurm --partition cpu --time 60

Each run trains with the project's one training loop (mdtheory.train) into
ROOT/runs/<run>/ (config.json, metrics.jsonl, ckpt.pt) and ROOT/runs/<run>/run.json
(the spec, its status and the budget; status "running" while it trains).

Each run is one call of the training loop with a stop rule, so that

* a run killed at any point continues from its last checkpoint next time;
* a finished run (run.json with a final status, same budget) is skipped;
* a run stops early once train and held-out accuracy have both been >= 0.99
  for ``--patience`` consecutive evaluations: the study measures the time to
  0.99, and the budget is spent on runs that have not got there yet. A spec
  with ``early_stop=False`` trains to its budget (its records up to the
  stop are those of the early-stopped run: training does not depend on the
  rule), and continues a run that an earlier rule had stopped.

A diverged run (the engine's TrainingDiverged) is recorded (status
"diverged") and the sweep goes on. On a terminal one progress bar shows the
sweep: runs done / total and the time left.
PATTERN is a glob on run names (a plain word matches anywhere in the name).

``--stack K`` trains up to K runs that differ only in seed and mask-rate
window (and have the same budget) in one process, their models stacked
and vmapped (mdtheory.train.stacked): each run's folder, statuses and
resume are as above. It pays on a GPU, where one small model leaves the
device idle; members resuming from different steps are trained apart.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per run: the machine is shared

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from mdtheory.cli import OneLineParser, run_cli
from mdtheory.errors import UserError
from mdtheory.runfiles import read_marker, read_metrics, write_marker

from .. import study
from .presets import PRESETS, ROOTS, RunSpec

ACC = 0.99


def converged(records: list[dict], patience: int) -> bool:
    """Train and held-out accuracy >= 0.99 at the last ``patience`` evaluations."""
    last = records[-patience:]
    return len(last) == patience and all(
        r.get("train_acc", 0) >= ACC and r.get("val_acc", 0) >= ACC for r in last)


class EarlyStop:
    """The engine's stop rule: ``converged`` over the run's records so far
    (those written before a resume included)."""

    def __init__(self, patience: int, records: list[dict]):
        self.patience, self.records = patience, list(records)

    def __call__(self, record: dict) -> bool:
        self.records.append(record)
        return converged(self.records, self.patience)


def run_status(run_dir: Path, spec: RunSpec) -> str | None:
    """'complete'/'early_stop'/'diverged' if the run needs no more training."""
    info = read_marker(run_dir)
    if info.get("status") == "diverged" or (info.get("status") == "early_stop" and spec.early_stop):
        return info["status"]
    if info.get("status") == "complete" and info.get("budget", 0) >= spec.steps:
        return "complete"
    return None  # not finished, a larger budget than last time, or no early stop now: continue


def _prepare(spec: RunSpec, root: str, patience: int):
    """(run folder, stop rule, its text, status if no training is left) of one run."""
    out = Path(root) / "runs" / spec.name
    rule_text = f"train_acc and val_acc >= {ACC} at {patience} consecutive evaluations" \
        if spec.early_stop else "none: trained to the budget"
    status = run_status(out, spec)
    if status is not None:
        return out, None, rule_text, f"{status} (skipped)"
    out.mkdir(parents=True, exist_ok=True)
    records = read_metrics(out) if (out / "ckpt.pt").exists() else []
    rule = EarlyStop(patience, records) if spec.early_stop else None
    if rule is not None and converged(records, patience) and records[-1]["step"] < spec.steps:
        write_marker(out, "early_stop", spec.steps, records[-1]["step"], early_stop_rule=rule_text,
                     spec=spec.describe())  # stopped by the rule before; the marker was lost
        return out, None, rule_text, "early_stop"
    return out, rule, rule_text, None


def _stop_rule(spec: RunSpec, out: Path, rule, rule_text: str):
    def stop(record: dict) -> bool:
        # a run stopped mid-way still names its spec (group, early stop) to the aggregator
        write_marker(out, "running", spec.steps, record["step"], early_stop_rule=rule_text, spec=spec.describe())
        return rule is not None and rule(record)
    return stop


def _finish(spec: RunSpec, out: Path, rule_text: str, status: str) -> tuple[str, str]:
    records = read_metrics(out)
    write_marker(out, status, spec.steps, records[-1]["step"] if records else 0,
                 early_stop_rule=rule_text, spec=spec.describe())
    return spec.name, status


def _train_configs(spec: RunSpec, out: Path):
    from mdtheory.train.parity_task import ParityTask

    task, cfg = spec.configs()
    return ParityTask(task), replace(cfg, out_dir=str(out), resume=True, progress=False)


def execute(spec: RunSpec, root: str, patience: int = 2) -> tuple[str, str]:
    """Train one run to its budget (or early stop); returns (name, status)."""
    import torch
    from mdtheory.train import train
    from mdtheory.train.engine import TrainingDiverged

    torch.set_num_threads(1)
    out, rule, rule_text, status = _prepare(spec, root, patience)
    if status is not None:
        return spec.name, status
    try:
        result = train(*_train_configs(spec, out), stop=_stop_rule(spec, out, rule, rule_text))
        status = "early_stop" if result.stopped_early else "complete"
    except TrainingDiverged:
        status = "diverged"
    return _finish(spec, out, rule_text, status)


@dataclass(frozen=True)
class Stack:
    """Runs trained together in one process (mdtheory.train.stacked); named after its first."""
    members: tuple

    @property
    def name(self) -> str:
        return self.members[0].name + (f" (+{len(self.members) - 1} stacked)" if len(self.members) > 1 else "")

    @property
    def steps(self) -> int:
        return max(m.steps for m in self.members)


def stacks(specs: list, size: int) -> list[Stack]:
    """``specs`` in groups of at most ``size`` runs that can share a step: the
    same settings but for seed and mask-rate window, and the same budget."""
    groups: dict = {}
    for spec in specs:
        task, cfg = spec.configs()
        key = (replace(task, seed=0, sampler=""), replace(cfg, seed=0), spec.steps)
        groups.setdefault(repr(key), []).append(spec)
    out = [Stack(tuple(g[i:i + size])) for g in groups.values() for i in range(0, len(g), size)]
    return sorted(out, key=lambda stack: specs.index(stack.members[0]))  # size 1: the specs' own order


def stack_status(run_dir: Path, stack: Stack) -> str | None:
    """The stack's status once no member needs training (its folder is its first member's)."""
    statuses = [run_status(run_dir.parent / m.name, m) for m in stack.members]
    return None if None in statuses else statuses[0]


def execute_stack(stack: Stack, root: str, patience: int = 2) -> tuple[str, str]:
    """Train a stack's unfinished members together, those resuming from one
    step at a time; a stack with a diverged member is trained run by run."""
    import torch
    from mdtheory.train.checkpoint import load_checkpoint
    from mdtheory.train.engine import TrainingDiverged
    from mdtheory.train.stacked import train_stacked

    torch.set_num_threads(1)
    todo, by_step = [], {}
    for spec in stack.members:
        out, rule, rule_text, status = _prepare(spec, root, patience)
        if status is None:
            step = int(load_checkpoint(out / "ckpt.pt")["step"]) if (out / "ckpt.pt").exists() else 0
            by_step.setdefault(step, []).append((spec, out, rule, rule_text))
    for group in by_step.values():
        if len(group) == 1:  # a stack of one is a plain run
            todo.append(group[0][0])
            continue
        try:
            results = train_stacked(*zip(*[(*_train_configs(spec, out), _stop_rule(spec, out, rule, text))
                                           for spec, out, rule, text in group]))
        except TrainingDiverged:
            todo += [spec for spec, *_ in group]
            continue
        for (spec, out, _, text), result in zip(group, results):
            _finish(spec, out, text, "early_stop" if result.stopped_early else "complete")
    for spec in todo:
        execute(spec, root, patience)
    return stack.name, stack_status(Path(root) / "runs" / stack.members[0].name, stack) or "unfinished"


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m experiments.parity.run", description=__doc__.split("\n")[0])
    p.add_argument("--preset", required=True, choices=sorted(PRESETS))
    p.add_argument("--root", default=None, help="results root (default: per preset, see presets.ROOTS)")
    p.add_argument("--patience", type=int, default=2, help="evaluations at >= 0.99 before an early stop")
    p.add_argument("--stack", type=int, default=1, help="runs trained together in one process, their "
                   "models stacked and vmapped (for small models on a GPU; 1: one run per process)")
    study.add_arguments(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.patience < 1:
        raise UserError(f"--patience must be >= 1, got {args.patience}")
    if args.stack < 1:
        raise UserError(f"--stack must be >= 1, got {args.stack}")
    root, specs = args.root or ROOTS[args.preset], PRESETS[args.preset]()
    if args.stack == 1:
        runs = study.Study(f"parity {args.preset}", specs, partial(execute, patience=args.patience), run_status,
                           local_gpus=True)  # a local GPU trains the presets meant for one
    else:  # --only picks runs, not stacks
        specs = study.selected(study.Study("", specs, execute, run_status), args)
        if args.list:
            groups = stacks(specs, args.stack)
            print("\n".join(f"{Path(root) / 'runs' / m.name}  ({m.steps} steps; stack {i} of {len(groups)})"
                            for i, group in enumerate(groups, 1) for m in group.members))
            return 0
        runs = study.Study(f"parity {args.preset}", stacks(specs, args.stack),
                           partial(execute_stack, patience=args.patience), stack_status,
                           folder=lambda root, stack: Path(root) / "runs" / stack.members[0].name, local_gpus=True)
        args = argparse.Namespace(**{**vars(args), "only": None})
    study.run_study(runs, root, args)
    if args.stack > 1:  # the runner counted stacks
        counts = Counter(run_status(Path(root) / "runs" / m.name, m) or "unfinished"
                         for stack in runs.specs for m in stack.members)
        print(f"{sum(counts.values())} runs in {len(runs.specs)} stacks: "
              + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
