"""Throughput of the training engine: tokens/s and an MFU estimate.

    python -m experiments.bench_trainer [--device auto|cpu|cuda] [--steps S]
        [--compile] [--json PATH]

For each configuration the script runs the real engine (``mdtheory.train.
engine.train``) for S steps, reads the tokens/s of the second half of the run
(the first half absorbs warm-up and compilation), and divides the model's
training FLOPs per token x tokens/s by a GEMM peak measured here, on the same
device, with the engine's matmul dtype (float32 on CPU, bf16 on CUDA):

    MFU = flops_per_token * tokens_per_s / measured_gemm_peak

Configurations: (20,6)-parity with masked diffusion on the default 2-layer
transformer and on the reduced MLP, and a small LM-sized transformer on
random tokens (so the benchmark needs no corpus). The measured peak is what
this machine reaches on one large matmul, not the vendor's datasheet number.
"""
from __future__ import annotations

import time

import torch

from mdtheory.cli import OneLineParser, atomic_write_json, run_cli
from mdtheory.masking import parse_sampler
from mdtheory.models import Transformer, TransformerConfig
from mdtheory.provenance import provenance
from mdtheory.train.engine import TrainConfig, setup_runtime, train
from mdtheory.train.objectives import draw_masks, masked_diffusion_loss
from mdtheory.train.parity_task import ParityTask, ParityTaskConfig
from mdtheory.train.task import step_generator


def gemm_peak(device: torch.device, size: int, dtype: torch.dtype, repeats: int = 10) -> float:
    """Best FLOP/s of one size x size matmul (2 size^3 FLOPs)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for i in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        (a @ b).sum()  # .sum() keeps the result alive; negligible next to the matmul
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:  # skip warm-up
            best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best


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
        t, mask = draw_masks(tokens, self.sampler, gen)
        return {"tokens": tokens.to(device), "t": t.to(device), "mask": mask.to(device)}

    def loss(self, model, batch):
        loss, *_ = masked_diffusion_loss(model, batch["tokens"], batch["t"], batch["mask"],
                                         self.mask_id, self.sampler)
        return loss, {}

    def evaluate(self, model, step):
        return {}


def configurations(cuda: bool):
    """(label, task, batch size, steps scale). Sizes grow on a GPU."""
    parity = dict(n=20, k=6, train_size=5000, val_size=1000, sampler="window:0,0.2", tbins=0,
                  eval_train_max=512)
    lm = dict(n_layer=6, n_head=6, n_embd=384, block_size=256) if cuda else \
        dict(n_layer=4, n_head=4, n_embd=256, block_size=128)
    return [
        ("parity md transformer 2x128", ParityTask(ParityTaskConfig(**parity)), 512 if cuda else 128),
        ("parity md reduced MLP 2560", ParityTask(ParityTaskConfig(**parity, model="mlp", n_embd=2560)),
         5000 if cuda else 512),
        (f"lm md {lm['n_layer']}x{lm['n_embd']} L={lm['block_size']}", RandomTokenLM(**lm),
         64 if cuda else 8),
    ]


def bench(task, batch_size: int, steps: int, device: str, compile_model: bool) -> dict:
    half = max(steps // 2, 1)
    cfg = TrainConfig(steps=2 * half, eval_every=half, ckpt_every=10 ** 9, batch_size=batch_size,
                      device=device, compile=compile_model, progress=False, lr=1e-4)
    result = train(task, cfg)
    tokens_per_s = result.final["tokens_per_s"]
    model = result.model
    seq = task.tokens_per_sequence
    return {"tokens_per_s": tokens_per_s, "flops_per_token": model.flops_per_token(seq),
            "params": model.num_params(), "batch_size": batch_size, "seq_len": seq,
            "steps_timed": half}


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m experiments.bench_trainer", description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--steps", type=int, default=None, help="steps per config (default 40 CPU / 200 GPU)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    p.add_argument("--json", default=None, help="also write the table here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rt = setup_runtime(args.device)
    cuda = rt.device.type == "cuda"
    steps = args.steps or (200 if cuda else 40)
    dtype = torch.bfloat16 if cuda else torch.float32
    peak = gemm_peak(rt.device, 8192 if cuda else 1024, dtype)
    rows = []
    for label, task, batch in configurations(cuda):
        row = {"config": label, **bench(task, batch, steps, args.device, args.compile)}
        row["achieved_flops"] = row["flops_per_token"] * row["tokens_per_s"]
        row["mfu"] = row["achieved_flops"] / peak
        rows.append(row)
    device_name = torch.cuda.get_device_name(rt.device) if cuda else \
        f"CPU x{torch.get_num_threads()} threads"
    print(f"device: {device_name}; GEMM peak ({'bf16' if cuda else 'fp32'}, measured): "
          f"{peak / 1e12:.3f} TFLOP/s; compile={args.compile}")
    print(f"{'config':<34} {'batch':>6} {'params':>10} {'FLOP/tok':>10} {'tokens/s':>12} "
          f"{'TFLOP/s':>9} {'MFU':>7}")
    for r in rows:
        print(f"{r['config']:<34} {r['batch_size']:>6} {r['params']:>10,} {r['flops_per_token']:>10.3g} "
              f"{r['tokens_per_s']:>12,.0f} {r['achieved_flops'] / 1e12:>9.4f} {r['mfu']:>7.2%}")
    if args.json:
        atomic_write_json(args.json, {"device": device_name, "gemm_peak_flops": peak,
                                      "compile": args.compile, "rows": rows,
                                      "provenance": provenance(device=str(rt.device))})
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
