"""Launch every run of a parity preset: ``python -m experiments.parity.run``.

    python -m experiments.parity.run --preset NAME [--root DIR] [--patience P]
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
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per run: the machine is shared

import sys
from dataclasses import replace
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


def execute(spec: RunSpec, root: str, patience: int = 2) -> tuple[str, str]:
    """Train one run to its budget (or early stop); returns (name, status)."""
    import torch
    from mdtheory.train import train
    from mdtheory.train.engine import TrainingDiverged
    from mdtheory.train.parity_task import ParityTask

    torch.set_num_threads(1)
    out = Path(root) / "runs" / spec.name
    status = run_status(out, spec)
    if status is not None:
        return spec.name, f"{status} (skipped)"
    out.mkdir(parents=True, exist_ok=True)
    records = read_metrics(out) if (out / "ckpt.pt").exists() else []
    rule = EarlyStop(patience, records) if spec.early_stop else None
    rule_text = f"train_acc and val_acc >= {ACC} at {patience} consecutive evaluations" \
        if spec.early_stop else "none: trained to the budget"
    status = "complete"
    if rule is not None and converged(records, patience) and records[-1]["step"] < spec.steps:
        status = "early_stop"  # stopped by the rule before; the marker was lost
    else:
        task, cfg = spec.configs()

        def stop(record: dict) -> bool:
            # a run stopped mid-way still names its spec (group, early stop) to the aggregator
            write_marker(out, "running", spec.steps, record["step"], early_stop_rule=rule_text,
                         spec=spec.describe())
            return rule is not None and rule(record)

        try:
            result = train(ParityTask(task), replace(cfg, out_dir=str(out), resume=True, progress=False),
                           stop=stop)
            status = "early_stop" if result.stopped_early else "complete"
        except TrainingDiverged:
            status = "diverged"
        records = read_metrics(out)
    write_marker(out, status, spec.steps, records[-1]["step"] if records else 0,
                 early_stop_rule=rule_text, spec=spec.describe())
    return spec.name, status


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m experiments.parity.run", description=__doc__.split("\n")[0])
    p.add_argument("--preset", required=True, choices=sorted(PRESETS))
    p.add_argument("--root", default=None, help="results root (default: per preset, see presets.ROOTS)")
    p.add_argument("--patience", type=int, default=2, help="evaluations at >= 0.99 before an early stop")
    study.add_arguments(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.patience < 1:
        raise UserError(f"--patience must be >= 1, got {args.patience}")
    root = args.root or ROOTS[args.preset]
    study.run_study(study.Study(f"parity {args.preset}", PRESETS[args.preset](),
                                partial(execute, patience=args.patience), run_status,
                                local_gpus=True), root, args)  # a local GPU trains the presets meant for one
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
