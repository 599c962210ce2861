"""Speed of the training engine as interleaved A/B ratios.

    python -m experiments.bench_trainer [--device auto|cpu|cuda] [--pairs P]
        [--steps S] [--only NAME ...] [--tiny] [--threads T] [--json PATH]
        [--energy-steps S]

Each comparison runs the real engine (``mdtheory.train.train``) on one
configuration with two variants, alternating A and B for P pairs (default
5; see experiments/ab_timing.py), and reports the median over pairs of
tokens/s(B) / tokens/s(A) with its range. Each measurement is the tokens/s
of S steps after S warm-up steps. Comparisons:

    compile   eager vs torch.compile
    fused     unfused vs fused AdamW
    bf16      fp32 vs bf16 autocast of the training loss (CUDA only)
    mlp_gather, mlp_bag
              the reduced MLP's first layer: one gathered row per position
              summed, or F.embedding_bag, against the one-hot product z~ @ W

on two configurations: the parity study's model (CPU: the calibrated main
setting (12,3), 2x64, batch 64; CUDA: the ``paper`` preset's (20,6),
6x384, batch 256) and an LM-shaped transformer on random tokens (no corpus
needed); the MLP comparisons run on the reduced MLP at the paper's Fig. 5
size ((20,6), hidden 2560, full batch of 5000) and at the phase diagram's
(n = 16, hidden 1024, batch 256). A variant the engine refuses, or one it silently ran like the other
side (e.g. --compile ignored), is reported as such with no ratio.

``--energy-steps S`` adds a row of wall times of whole reduced-MLP runs
(evaluations included), E(W) off against its default spacing.

No MFU here: a single machine's GEMM peak and a small model's step rate,
measured at different times on a shared machine, do not make a meaningful
fraction; ``python -m experiments.gpu_check`` reports MFU on a dedicated GPU.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from mdtheory.cli import OneLineParser, atomic_write_json, run_cli
from mdtheory.errors import UserError
from mdtheory.masking import parse_sampler
from mdtheory.models import Transformer, TransformerConfig
from mdtheory.provenance import provenance
from mdtheory.train.engine import setup_runtime
from mdtheory.train.objectives import MaskedDiffusion, masked_diffusion_loss
from mdtheory.train.parity_task import ParityTask, ParityTaskConfig
from mdtheory.train.task import step_generator

from .ab_timing import COMPARISONS, MLP_COMPARISONS, compare, interleaved_ab


class RandomTokenLM:
    """A Task with a masked-diffusion loss on uniform random tokens: the LM
    model and sequence shape, without a corpus (only for timing)."""

    name = "random-lm"

    def __init__(self, vocab_size=512, block_size=256, n_layer=6, n_head=6, n_embd=384, seed=0):
        self.cfg = TransformerConfig(vocab_size=vocab_size + 1, block_size=block_size, n_layer=n_layer,
                                     n_head=n_head, n_embd=n_embd)
        self.mask_id, self.seed = vocab_size, seed
        self.sampler = parse_sampler("uniform")
        self.tokens_per_sequence = block_size

    def config(self):
        return {"name": self.name, **vars(self.cfg)}

    def build_model(self):
        return Transformer(self.cfg)

    def train_batch(self, step, batch_size, device, shard=0):
        gen = step_generator(self.seed, step, shard)
        tokens = torch.randint(self.mask_id, (batch_size, self.cfg.block_size), generator=gen)
        return {k: v.to(device) for k, v in MaskedDiffusion().make_batch(tokens, self, gen).items()}

    def loss(self, model, batch):
        loss = masked_diffusion_loss(model, batch["tokens"], batch["noisy"], batch["mask"],
                                     self.sampler.weight(batch["t"])).loss
        return loss, {}

    def evaluate(self, model, step):
        return {}


def parity_timing_task(n, k, train_size, n_layer, n_head, n_embd, model="transformer") -> ParityTask:
    """The parity task of a model size, with light evaluation (for timing)."""
    return ParityTask(ParityTaskConfig(n=n, k=k, train_size=train_size, val_size=64, sampler="window:0,0.2",
                                       n_layer=n_layer, n_head=n_head, n_embd=n_embd, tbins=0,
                                       eval_train_max=64, model=model, energy_every=0))


def mlp_configurations(tiny: bool = False):
    """(label, task, batch size) of the reduced MLP: the paper's Fig. 5 run
    (full batch) and the phase diagram's size."""
    sizes = [(20, 6, 5000, 2560, 5000), (16, 4, 2048, 1024, 256)]
    if tiny:
        sizes = [(8, 2, 64, 32, 64)]
    return [(f"mlp ({n},{k}) h={h} batch {b}", parity_timing_task(n, k, N, 1, 1, h, model="mlp"), b)
            for n, k, N, h, b in sizes]


def configurations(cuda: bool, tiny: bool = False):
    """(label, task, batch size): the parity study's own configuration
    (presets) and an LM-shaped transformer."""
    from .parity.presets import MAIN, preset_paper

    spec = preset_paper()[0] if cuda else MAIN
    if tiny:
        spec = replace(spec, n=8, k=2, train_size=64, n_layer=1, n_head=2, n_embd=16, batch_size=16)
    parity = parity_timing_task(spec.n, spec.k, spec.train_size, spec.n_layer, spec.n_head, spec.n_embd)
    lm = dict(n_layer=6, n_head=6, n_embd=384, block_size=256) if cuda else \
        dict(n_layer=4, n_head=4, n_embd=256, block_size=128)
    if tiny:
        lm = dict(vocab_size=64, n_layer=1, n_head=2, n_embd=16, block_size=16)
    return [(f"parity ({spec.n},{spec.k}) {spec.n_layer}x{spec.n_embd}", parity, spec.batch_size),
            (f"lm random tokens {lm['n_layer']}x{lm['n_embd']} L={lm['block_size']}", RandomTokenLM(**lm),
             64 if cuda else 8)]


def energy_cost_row(pairs: int, steps: int, tiny: bool = False) -> dict:
    """Wall time of whole phase-diagram runs (evaluations included) with the
    MLP energy off and at its default spacing, interleaved; ratio B/A > 1
    means the run with E(W) took longer."""
    from mdtheory.train import train
    from mdtheory.train.parity_task import ENERGY_EVERY_DEFAULT

    size = dict(n=8, k=2, train_size=64, n_embd=32) if tiny else dict(n=16, k=4, train_size=2048, n_embd=1024)
    every = max(steps // 2, 1) if tiny else ENERGY_EVERY_DEFAULT

    def wall(energy_every):
        cfg = ParityTaskConfig(**size, val_size=64 if tiny else 1000, model="mlp", sampler="window:0,0.261",
                               energy_every=energy_every)
        start = time.perf_counter()
        train(ParityTask(cfg), cfg.train_config(steps=steps, batch_size=min(256, size["train_size"]),
                                                eval_every=max(steps // 40, 1), progress=False))
        return time.perf_counter() - start

    ab = interleaved_ab(lambda: wall(0), lambda: wall(every), pairs=pairs, label_a="energy off",
                        label_b=f"energy every {every}")
    return {"config": f"mlp ({size['n']},{size['k']}) h={size['n_embd']} {steps} steps", **ab.summary(),
            "unit": "seconds per run (B/A > 1: E(W) costs that fraction)"}


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m experiments.bench_trainer", description=__doc__.split("\n")[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA if present")
    p.add_argument("--pairs", type=int, default=5, help="A/B pairs per comparison (median over pairs)")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per measurement, after as many warm-up steps (default 10 CPU / 50 GPU)")
    p.add_argument("--only", nargs="+", choices=sorted(COMPARISONS), default=None,
                   help="comparisons to run (default: all that apply to the device)")
    p.add_argument("--tiny", action="store_true", help="toy sizes (seconds; for tests)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    p.add_argument("--json", default=None, help="also write the table here")
    p.add_argument("--energy-steps", type=int, default=0,
                   help="also time whole reduced-MLP runs of this many steps with E(W) off and at its "
                        "default spacing (0: skip; 10000 is a phase-diagram run)")
    args = p.parse_args(argv)
    for flag, value, least in (("--pairs", args.pairs, 1), ("--steps", args.steps, 1), ("--threads", args.threads, 0),
                               ("--energy-steps", args.energy_steps, 0)):
        if value is not None and value < least:
            raise UserError(f"{flag} must be >= {least}, got {value}")
    if args.threads:
        torch.set_num_threads(args.threads)
    rt = setup_runtime(args.device)
    cuda = rt.device.type == "cuda"
    steps = args.steps or (50 if cuda else 10)
    names = args.only or [n for n in COMPARISONS if cuda or n != "bf16"]
    rows = []
    plan = [(config, [n for n in names if n not in MLP_COMPARISONS]) for config in configurations(cuda, args.tiny)]
    plan += [(config, [n for n in names if n in MLP_COMPARISONS]) for config in mlp_configurations(args.tiny)]
    for (label, task, batch), config_names in plan:
        for name in config_names:
            _, a, b = COMPARISONS[name]
            row = compare(task, a, b, batch_size=batch, steps=steps, device=args.device, pairs=args.pairs)
            rows.append({"config": label, "comparison": name, **row})
    if args.energy_steps:
        rows.append(energy_cost_row(args.pairs, args.energy_steps, args.tiny))
    device_name = torch.cuda.get_device_name(rt.device) if cuda else \
        f"CPU x{torch.get_num_threads()} threads"
    print(f"device: {device_name}; {args.pairs} interleaved pairs of {steps} timed steps each")
    print(format_table(rows))
    if args.json:
        atomic_write_json(args.json, {"device": device_name, "pairs": args.pairs, "steps": steps,
                                      "rows": rows, "provenance": provenance(device=str(rt.device))})
    return 0


def format_table(rows: list[dict]) -> str:
    lines = [f"{'config':<30} {'A -> B':<34} {'B/A median':>10} {'range':>13} {'A tok/s':>10} "
             f"{'B tok/s':>10} {'pairs':>5}"]
    for r in rows:
        ab = f"{r['a']} -> {r['b']}"
        ratio, spread = (f"{r['median_ratio']:.3f}x", f"{r['min_ratio']:.2f}-{r['max_ratio']:.2f}") \
            if "median_ratio" in r else ("-", "-")
        number = "{:,.2f}" if "unit" in r else "{:,.0f}"  # the energy row times seconds per run
        rate_a, rate_b = (number.format(r[key]) if key in r else "-" for key in ("median_rate_a", "median_rate_b"))
        lines.append(f"{r['config']:<30} {ab:<34} {ratio:>10} {spread:>13} {rate_a:>10} {rate_b:>10} "
                     f"{r.get('pairs', 0):>5}")
        note = r.get("error") or r.get("note")
        if note:
            lines.append(f"    {note}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
