"""Speed of the training engine as interleaved A/B ratios.

    python -m experiments.bench_trainer [--only compile fused bf16 mlp_gather mlp_bag] [--pairs 5]
        [--steps S] [--tiny] [--threads T] [--json PATH] [--energy-steps S] [--stacking-steps S]

Each row is the median over ABBA pairs of tokens/s(B) / tokens/s(A) of the
real engine (experiments/ab_timing.py) on the parity study's model and an
LM-shaped transformer on random tokens; the mlp_* rows time the reduced
MLP's first layer at the paper's Fig. 5 size and the phase diagram's.
No MFU here: on a shared machine it means little; the GPU check reports it.
"""
from __future__ import annotations

import time
from dataclasses import replace

import torch

from mdtheory.cli import OneLineParser, atomic_write_json, run_cli
from mdtheory.errors import UserError
from mdtheory.masking import parse_sampler
from mdtheory.models import Transformer, TransformerConfig
from mdtheory.provenance import provenance
from mdtheory.train import train
from mdtheory.train.engine import setup_runtime
from mdtheory.train.objectives import MaskedDiffusion, masked_diffusion_loss
from mdtheory.train.parity_task import ENERGY_EVERY_DEFAULT, ParityTask, ParityTaskConfig
from mdtheory.train.task import step_generator

from .ab_timing import COMPARISONS, MLP_COMPARISONS, compare, interleaved_ab


class RandomTokenLM:
    """A masked-diffusion task on uniform random tokens: the LM's model and
    sequence shape without a corpus (for timing only)."""

    name = "random-lm"

    def __init__(self, vocab_size=512, block_size=256, n_layer=6, n_head=6, n_embd=384, seed=0):
        self.cfg = TransformerConfig(vocab_size=vocab_size + 1, block_size=block_size, n_layer=n_layer,
                                     n_head=n_head, n_embd=n_embd)
        self.mask_id, self.seed, self.tokens_per_sequence = vocab_size, seed, block_size
        self.sampler = parse_sampler("uniform")

    def config(self):
        return {"name": self.name, **vars(self.cfg)}

    def build_model(self):
        return Transformer(self.cfg)

    def train_batch(self, step, batch_size, device, shard=0):
        gen = step_generator(self.seed, step, shard)
        tokens = torch.randint(self.mask_id, (batch_size, self.cfg.block_size), generator=gen)
        return {k: v.to(device) for k, v in MaskedDiffusion().make_batch(tokens, self, gen).items()}

    def loss(self, model, batch):
        weight = self.sampler.weight(batch["t"])
        return masked_diffusion_loss(model, batch["tokens"], batch["noisy"], batch["mask"], weight).loss, {}

    def evaluate(self, model, step):
        return {}


def parity_timing_task(n, k, train_size, n_layer, n_head, n_embd, model="transformer") -> ParityTask:
    """The parity task of a model size, with light evaluation (for timing)."""
    return ParityTask(ParityTaskConfig(n=n, k=k, train_size=train_size, val_size=64, sampler="window:0,0.2",
                                       n_layer=n_layer, n_head=n_head, n_embd=n_embd, tbins=0,
                                       eval_train_max=64, model=model, energy_every=0))


def configurations(cuda: bool, tiny: bool) -> list[tuple[str, object, int, list[str]]]:
    """(label, task, batch size, comparisons that apply): the parity study's
    model (CPU: the main setting; CUDA: the paper preset), an LM shape (CUDA:
    the LM paper preset's model), and the reduced MLP at Fig. 5's size (full
    batch) and the phase diagram's. The GPU check times the first two."""
    from .parity.presets import MAIN, preset_paper

    spec = preset_paper()[0] if cuda else MAIN
    lm = dict(vocab_size=32768, n_layer=10, n_head=10, n_embd=640, block_size=150) if cuda else \
        dict(n_layer=4, n_head=4, n_embd=256, block_size=128)
    mlps = [(20, 6, 5000, 2560, 5000), (16, 4, 2048, 1024, 256)]
    if tiny:
        spec = replace(spec, n=8, k=2, train_size=64, n_layer=1, n_head=2, n_embd=16, batch_size=16)
        lm, mlps = dict(vocab_size=64, n_layer=1, n_head=2, n_embd=16, block_size=16), [(8, 2, 64, 32, 64)]
    engine = [n for n in COMPARISONS if n not in MLP_COMPARISONS]
    return [(f"parity ({spec.n},{spec.k}) {spec.n_layer}x{spec.n_embd} batch {spec.batch_size}", parity_timing_task(
                spec.n, spec.k, spec.train_size, spec.n_layer, spec.n_head, spec.n_embd), spec.batch_size, engine),
            (f"lm random tokens {lm['n_layer']}x{lm['n_embd']} L={lm['block_size']} V={lm.get('vocab_size', 512)} "
             f"batch {64 if cuda else 8}", RandomTokenLM(**lm), 64 if cuda else 8, engine)] + \
        [(f"mlp ({n},{k}) h={h} batch {b}", parity_timing_task(n, k, N, 1, 1, h, model="mlp"), b,
          list(MLP_COMPARISONS)) for n, k, N, h, b in mlps]


def energy_cost_row(pairs: int, steps: int, tiny: bool) -> dict:
    """Wall time of whole phase-diagram runs (evaluations included) with E(W)
    off and at its default spacing; B/A > 1: E(W) costs that fraction."""
    size = dict(n=8, k=2, train_size=64, n_embd=32) if tiny else dict(n=16, k=4, train_size=2048, n_embd=1024)
    every = max(steps // 2, 1) if tiny else ENERGY_EVERY_DEFAULT

    def wall(energy_every):
        cfg = ParityTaskConfig(**size, val_size=64 if tiny else 1000, model="mlp", sampler="window:0,0.261",
                               energy_every=energy_every)
        start = time.perf_counter()
        train(ParityTask(cfg), cfg.train_config(steps=steps, batch_size=min(256, size["train_size"]),
                                                eval_every=max(steps // 40, 1), progress=False))
        return time.perf_counter() - start

    row = interleaved_ab(lambda: wall(0), lambda: wall(every), pairs=pairs, label_a="energy off",
                         label_b=f"energy every {every}")
    return {"config": f"mlp ({size['n']},{size['k']}) h={size['n_embd']} {steps} steps", **row,
            "unit": "seconds per run"}


def stacking_row(pairs: int, steps: int, tiny: bool, cuda: bool = False, runs: int = 3,
                 deadline: float = float("inf")) -> dict:
    """Tokens/s of ``runs`` parity runs (seeds and windows apart) trained one
    after another (A) and stacked in one process (B, ``mdtheory.train.stacked``);
    each side builds its runs too. CPU: the phase diagram's reduced MLP; CUDA:
    the paper preset's transformer."""
    from mdtheory.train.stacked import train_stacked

    n, k, size, layers, width, model, batch = (8, 2, 64, 1, 32, "mlp", 64) if tiny else \
        (20, 6, 5000, 6, 384, "transformer", 256) if cuda else (16, 4, 2048, 1, 1024, "mlp", 256)
    base = parity_timing_task(n, k, size, layers, layers, width, model=model)

    def rate(stacked: bool) -> float:
        start, pairs_ = time.perf_counter(), []
        for seed in range(runs):
            cfg = replace(base.cfg, seed=seed, sampler=f"window:0,{0.2 + 0.1 * seed:g}")
            pairs_.append((ParityTask(cfg), cfg.train_config(steps=steps, eval_every=steps, ckpt_every=10 ** 9,
                                                             batch_size=batch, progress=False)))
        if stacked:
            train_stacked(*zip(*pairs_))
        else:
            for task, cfg in pairs_:
                train(task, cfg)
        if cuda:
            torch.cuda.synchronize()
        return runs * steps * batch * base.tokens_per_sequence / (time.perf_counter() - start)

    row = interleaved_ab(lambda: rate(False), lambda: rate(True), pairs=pairs, label_a=f"{runs} runs one by one",
                         label_b=f"{runs} runs stacked", deadline=deadline)
    return {"config": f"{model} ({n},{k}) {layers}x{width} batch {batch} {steps} steps", **row}


def format_table(rows: list[dict], header: bool = True) -> str:
    """The rows of ``compare`` (and the energy row) as a table; the GPU check prints its rows one at a time."""
    head = f"{'config':<44} {'A -> B':<44} {'B/A median':>10} {'range':>11} {'A rate':>10} {'B rate':>10} pairs"
    lines = [head] if header else []
    for r in rows:
        ratio, spread = (f"{r['median_ratio']:.3f}x", f"{r['min_ratio']:.2f}-{r['max_ratio']:.2f}") \
            if "median_ratio" in r else ("-", "-")
        number = "{:,.2f}" if "unit" in r else "{:,.0f}"  # the energy row: seconds per run
        rate_a, rate_b = (number.format(r[k]) if k in r else "-" for k in ("median_rate_a", "median_rate_b"))
        lines.append(f"{r['config']:<44} {r['a'] + ' -> ' + r['b']:<44} {ratio:>10} {spread:>11} {rate_a:>10} "
                     f"{rate_b:>10} {r.get('pairs', 0):>5}")
        lines += [f"    {r[k]}" for k in ("error", "note") if r.get(k)]
        if "mfu_a" in r:  # the GPU check's rows, against its measured GEMM rate
            lines.append(f"    MFU {r['mfu_a']:.1%} -> {r['mfu_b']:.1%}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m experiments.bench_trainer", description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA if present")
    p.add_argument("--pairs", type=int, default=5, help="A/B pairs per comparison (median over pairs)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per measurement, after as many "
                                                           "warm-up steps (default 10 on CPU, 50 on CUDA)")
    p.add_argument("--only", nargs="*", choices=sorted(COMPARISONS), default=None,
                   help="comparisons to run (default: all that apply; bf16 only on CUDA; none: only the "
                        "--energy-steps and --stacking-steps rows)")
    p.add_argument("--tiny", action="store_true", help="toy sizes (seconds; for tests)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--energy-steps", type=int, default=0, help="also time whole reduced-MLP runs of this many "
                   "steps with E(W) off and at its default spacing (0: skip; 10000: a phase-diagram run)")
    p.add_argument("--stacking-steps", type=int, default=0, help="also time 3 parity runs of this many steps "
                   "one by one against stacked in one process (CPU: reduced MLP; CUDA: transformer; 0: skip)")
    args = p.parse_args(argv)
    for flag, value, least in (("--pairs", args.pairs, 1), ("--steps", args.steps, 1),
                               ("--threads", args.threads, 0), ("--energy-steps", args.energy_steps, 0),
                               ("--stacking-steps", args.stacking_steps, 0)):
        if value is not None and value < least:
            raise UserError(f"{flag} must be >= {least}, got {value}")
    if args.threads:
        torch.set_num_threads(args.threads)
    rt = setup_runtime(args.device)
    cuda = rt.device.type == "cuda"
    steps = args.steps or (50 if cuda else 10)
    names = args.only if args.only is not None else [n for n in COMPARISONS if cuda or n != "bf16"]
    rows = [{"config": label, "comparison": name,
             **compare(task, *COMPARISONS[name][1:], batch_size=batch, steps=steps, device=args.device,
                       pairs=args.pairs)}
            for label, task, batch, applies in configurations(cuda, args.tiny) for name in names if name in applies]
    if args.energy_steps:
        rows.append(energy_cost_row(args.pairs, args.energy_steps, args.tiny))
    if args.stacking_steps:
        rows.append(stacking_row(args.pairs, args.stacking_steps, args.tiny, cuda))
    device = torch.cuda.get_device_name(rt.device) if cuda else f"CPU x{torch.get_num_threads()} threads"
    print(f"device: {device}; {args.pairs} interleaved pairs of {steps} timed steps each")
    print(format_table(rows))
    if args.json:
        atomic_write_json(args.json, {"device": device, "pairs": args.pairs, "steps": steps, "rows": rows,
                                      "provenance": provenance(device=str(rt.device))})
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
