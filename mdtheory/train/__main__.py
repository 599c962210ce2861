"""``python -m mdtheory.train parity|lm ...``: the training command line.

    python -m mdtheory.train parity --objective {md,os,ar} --n N --k K \
        --train-size NT --window T0 T1 --steps S --seed X --out DIR
    python -m mdtheory.train lm --corpus shakespeare --tokenizer char \
        --window T0 T1 --steps S --seed X --out DIR

Both subcommands are built the same way: every field of the task's config
(``ParityTaskConfig``, ``LMTaskConfig``) and of the engine's ``TrainConfig``
is a flag, with the task's engine defaults. ``--window T0 T1`` is short for
``--sampler window:T0,T1``. Writes DIR/config.json, DIR/metrics.jsonl and
DIR/ckpt.pt (see mdtheory.train.engine); bad input ends with one line on
stderr and exit status 2.
"""
from __future__ import annotations

import sys

import torch

from ..cli import OneLineParser, add_config_arguments, config_from_args, run_cli
from ..errors import UserError
from .config import TrainConfig
from .engine import train
from .lm_task import LMTask, LMTaskConfig
from .parity_task import ParityTask, ParityTaskConfig

TASKS = {"parity": (ParityTask, ParityTaskConfig, "k-parity with objective md, os or ar"),
         "lm": (LMTask, LMTaskConfig, "masked-diffusion (or ar) language model on a text corpus")}
# metrics of the closing summary line, those the task logs
SUMMARY = ("loss", "train_acc", "val_acc", "full_range_val_loss", "full_range_test_loss",
           "full_range_bits_per_token")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m mdtheory.train",
                           description="Train on k-parity or a language-modelling corpus.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, (_, config, text) in TASKS.items():
        p = sub.add_parser(name, help=text)
        task = add_config_arguments(p, config, f"{name} task")
        task.add_argument("--window", type=float, nargs=2, metavar=("T0", "T1"),
                       help="md mask rate t ~ U[T0, T1]: short for --sampler window:T0,T1")
        engine = add_config_arguments(p, TrainConfig, "training engine", config.engine_defaults)
        engine.add_argument("--threads", type=int, default=0,
                       help="CPU threads for torch (0: as many as torch picks); 1 is fastest on a busy machine")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    task_class, config_class, _ = TASKS[args.command]
    rate_flag = "--sampler" if hasattr(args, "sampler") else "--window" if args.window else None
    if args.window and not hasattr(args, "sampler"):
        args.sampler = f"window:{args.window[0]!r},{args.window[1]!r}"
    cfg = config_from_args(TrainConfig, args, **config_class.engine_defaults)
    task_cfg = config_from_args(config_class, args)
    if rate_flag and task_cfg.objective != "md":
        # os and ar draw no mask rate: a window would be silently ignored
        raise UserError(f"{rate_flag} applies to --objective md only, not {task_cfg.objective}")
    if not cfg.out_dir:
        raise UserError("--out DIR is required")
    if args.threads < 0:
        raise UserError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    final = train(task_class(task_cfg), cfg).final
    if final:
        shown = ", ".join(f"{k} {final[k]:.4f}" for k in SUMMARY if isinstance(final.get(k), float))
        print(f"step {final['step']}: {shown} -> {cfg.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
