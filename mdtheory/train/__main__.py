"""``python -m mdtheory.train parity|lm ...``: the training CLI.

    python -m mdtheory.train parity --objective {md,os,ar} --n N --k K \
        --train-size NT --window T0 T1 --steps S --seed X --out DIR

writes DIR/config.json, DIR/metrics.jsonl and DIR/ckpt.pt (see
mdtheory.train.engine). ``--sampler SPEC`` replaces ``--window`` by any
mask-rate law of mdtheory.masking.parse_sampler. Bad arguments, a corrupt
checkpoint or a diverging loss end with one line on stderr and exit status 2.

The ``lm`` subcommand lives in mdtheory.train.lm_task, which provides
``add_arguments(parser)`` (its own flags; the engine's shared flags --steps
--seed --out --lr --batch-size --device --resume ... are added here by
``add_engine_arguments``, with optional per-task defaults in
``lm_task.ENGINE_DEFAULTS``) and ``run(args)``.
"""
from __future__ import annotations

import importlib
import sys

from ..cli import OneLineParser, run_cli
from ..errors import UserError
from ..masking import DEFAULT_EPS, NORMALIZATIONS, WEIGHTINGS
from .engine import add_engine_arguments, config_from_args, train
from .objectives import OBJECTIVES
from .parity_task import MODELS, ParityTask, ParityTaskConfig

PARITY_ENGINE_DEFAULTS = dict(steps=2000, lr=1e-3, weight_decay=0.1, batch_size=128,
                              eval_every=100, ckpt_every=500)
MODEL_WIDTH_DEFAULT = {"transformer": 128, "uniform-attention": 128, "mlp": 2560}


def _lm_module():
    try:
        return importlib.import_module(f"{__package__}.lm_task")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__package__}.lm_task":
            return None  # the LM task is not installed in this checkout
        raise


def add_parity_arguments(p) -> None:
    d = ParityTaskConfig()
    g = p.add_argument_group("k-parity task")
    g.add_argument("--objective", choices=OBJECTIVES, default=d.objective)
    g.add_argument("--n", type=int, default=d.n, help="number of input bits")
    g.add_argument("--k", type=int, default=d.k, help="size of the secret set")
    g.add_argument("--train-size", type=int, default=d.train_size, help="training sequences N")
    g.add_argument("--val-size", type=int, default=d.val_size, help="held-out sequences")
    g.add_argument("--window", type=float, nargs=2, metavar=("T0", "T1"), default=None,
                   help="md mask rate t ~ U[T0, T1] (default 0 0.2)")
    g.add_argument("--sampler", default=None, help="md mask-rate law, e.g. beta:2,8 (overrides --window)")
    g.add_argument("--eps", type=float, default=DEFAULT_EPS, help="floor on t for the 1/t weight")
    g.add_argument("--loss-weighting", choices=WEIGHTINGS, default=d.loss_weighting)
    g.add_argument("--normalization", choices=NORMALIZATIONS, default=d.normalization)
    g.add_argument("--model", choices=MODELS, default=d.model)
    g.add_argument("--n-layer", type=int, default=d.n_layer)
    g.add_argument("--n-head", type=int, default=d.n_head)
    g.add_argument("--n-embd", type=int, default=None,
                   help="transformer width (128) or MLP hidden width (2560)")
    g.add_argument("--tbins", type=int, default=d.tbins, help="t-bins of the md diagnostics (0: off)")


def parity_task_from_args(args) -> ParityTask:
    if args.objective != "md" and (args.window is not None or args.sampler is not None):
        # os and ar draw no mask rate: a window would be silently ignored
        flag = "--sampler" if args.sampler is not None else "--window"
        raise UserError(f"{flag} applies to --objective md only, not {args.objective}")
    if args.sampler is not None:
        sampler = args.sampler
    elif args.window is not None:
        sampler = f"window:{args.window[0]!r},{args.window[1]!r}"
    else:
        sampler = ParityTaskConfig.sampler
    return ParityTask(ParityTaskConfig(
        n=args.n, k=args.k, train_size=args.train_size, val_size=args.val_size, seed=args.seed,
        objective=args.objective, sampler=sampler, eps=args.eps, loss_weighting=args.loss_weighting,
        normalization=args.normalization, model=args.model, n_layer=args.n_layer, n_head=args.n_head,
        n_embd=MODEL_WIDTH_DEFAULT[args.model] if args.n_embd is None else args.n_embd,
        tbins=args.tbins))


def run_parity(args) -> int:
    cfg = config_from_args(args)
    task = parity_task_from_args(args)
    result = train(task, cfg)
    final = result.final
    if final:
        print(f"step {final['step']}: loss {final['loss']:.4f} "
              f"train_acc {final['train_acc']:.3f} val_acc {final['val_acc']:.3f} -> {cfg.out_dir}")
    return 0


def build_parser(lm_task=None) -> OneLineParser:
    # OneLineParser's --help shows every default (also in the subcommands)
    parser = OneLineParser(prog="python -m mdtheory.train",
                           description="Train on k-parity or a language-modelling corpus.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    p = sub.add_parser("parity", help="k-parity with objective md, os or ar")
    add_parity_arguments(p)
    add_engine_arguments(p, **PARITY_ENGINE_DEFAULTS)
    p.set_defaults(handler=run_parity)
    if lm_task is not None:
        lm = sub.add_parser("lm", help="masked-diffusion language model (mdtheory.train.lm_task)")
        add_engine_arguments(lm, **getattr(lm_task, "ENGINE_DEFAULTS", {}))
        lm_task.add_arguments(lm)
        lm.set_defaults(handler=lm_task.run)
    return parser


def main(argv=None) -> int:
    args = build_parser(_lm_module()).parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
