"""How noisy is the full-range evaluation? Re-score finished runs with other mask seeds.

    python -m experiments.lm.eval_noise --runs results/lm/runs/quick/uniform_s0 ... --seeds 5

Each run's final checkpoint (``ckpt.pt``, kept beside its record) is scored on
its own test blocks under every evaluation scheme and mask seed 0..S-1, and
one row per (run, scheme, seed) goes to OUT (default
results/lm/eval_noise.csv): the full-range loss and each stratum's loss and
standard error (``bin<k>``, ``bin<k>_se``). Every model of a sweep is scored
on the same masks, so a stratum that is high for every model under one seed
and not under others is mask noise shared by the models, not a property of
theirs; the rows show how large that noise is under each scheme.
"""
from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from mdtheory.cli import OneLineParser, atomic_write_text, check_output_file, run_cli, write_provenance_json
from mdtheory.errors import UserError
from mdtheory.evaluate import SCHEMES, full_range_loss
from mdtheory.provenance import provenance
from mdtheory.runfiles import read_run
from mdtheory.train.checkpoint import load_checkpoint
from mdtheory.train.lm_task import LMTask, LMTaskConfig

CHECKPOINT = "ckpt.pt"


def check_run(run_dir: Path) -> dict:
    """The task settings of a finished masked-diffusion LM run with its
    checkpoint; one UserError line otherwise (checked for every run before
    any is scored)."""
    run = read_run(run_dir)
    if not (run_dir / CHECKPOINT).is_file():
        raise UserError(f"{run_dir} has no {CHECKPOINT} (checkpoints are not committed: re-run it to score it)")
    if run.task.get("objective", "md") != "md":
        raise UserError(f"{run_dir} is not a masked-diffusion run: it has no full-range loss")
    settings = {f.name for f in fields(LMTaskConfig)}
    return {k: v for k, v in run.task.items() if k in settings}


def load_model(run_dir: Path, settings: dict):
    """(task, model) of a finished LM run: its task settings (``check_run``) and checkpoint."""
    task = LMTask(LMTaskConfig(**settings))
    model = task.build_model()
    model.load_state_dict(load_checkpoint(run_dir / CHECKPOINT)["model"])
    return task, model.eval()


def score(run_dir: Path, settings: dict, seeds: int, schemes) -> list[dict]:
    task, model = load_model(run_dir, settings)
    rows = []
    for scheme in schemes:
        for seed in range(seeds):
            result = full_range_loss(model, task.test, task.tok.mask_id, n_t=task.cfg.eval_nt, seed=seed,
                                     scheme=scheme, batch_size=task.cfg.eval_batch)
            strata = {f"bin{k}": v for k, v in enumerate(result.bin_loss)}
            errors = {f"bin{k}_se": v for k, v in enumerate(result.bin_se)}
            rows.append({"run": run_dir.name, "scheme": scheme, "seed": seed, "loss": result.loss, "se": result.se,
                         "t0_centre": result.t[0], **strata, **errors})
    return rows


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m experiments.lm.eval_noise", description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="finished LM run folders")
    p.add_argument("--seeds", type=int, default=5, help="evaluation mask seeds 0..S-1 (default 5)")
    p.add_argument("--schemes", nargs="+", choices=SCHEMES, default=["exact-count", "midpoint"])
    p.add_argument("--out", default="results/lm/eval_noise.csv")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    out = check_output_file(args.out)
    torch.set_num_threads(args.threads)
    runs = [(Path(r), check_run(Path(r))) for r in args.runs]  # every run checked before any is scored
    rows = []
    for run_dir, settings in tqdm(runs, desc="runs", unit="run"):
        rows += score(run_dir, settings, args.seeds, args.schemes)
    atomic_write_text(out, pd.DataFrame(rows).to_csv(index=False))
    write_provenance_json(out.with_suffix(".json"), {"runs": [str(r) for r in args.runs], "seeds": args.seeds,
                                                     "schemes": args.schemes, "provenance": provenance()},
                          describes=[out])
    print(pd.DataFrame(rows).groupby(["run", "scheme"])[["loss", "bin0", "bin1", "bin0_se"]]
          .agg(["mean", "std"]).round(4).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
