"""The one training loop, shared by k-parity and language modelling.

``train(task, cfg)`` runs any object that follows the Task interface
(``mdtheory.train.task``): AdamW with linear warm-up and a constant or cosine
learning rate, gradient clipping and accumulation, bf16 autocast and optional
torch.compile on CUDA, DDP when launched with torchrun (WORLD_SIZE > 1: gloo
on CPU, NCCL on GPU; only rank 0 writes), a tqdm bar, and in ``out_dir``:

    config.json     task config, training config, provenance (+ resumes)
    metrics.jsonl   one JSON object per evaluation: step, loss (mean training
                    loss since the previous record), lr, grad_norm, the task's
                    evaluation metrics, "train/<key>" averages of the task's
                    per-step diagnostics, tokens_per_s, elapsed_s
    ckpt.pt         the latest checkpoint (model, optimizer, RNG states, step,
                    the diagnostics accumulated since the last record),
                    written to a temporary file and renamed, so a kill never
                    leaves a half-written checkpoint

Resume (``cfg.resume``) loads ckpt.pt, drops metrics.jsonl records past its
step and continues. Batches are a function of (seed, step), so on CPU with a
fixed seed a run killed with SIGKILL and resumed ends with exactly the
metrics of an uninterrupted run. A non-finite loss stops training with a
UserError (one line, exit 2 from the CLI) before any checkpoint is written
from the diverged state, so ckpt.pt stays the last good one.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..cli import atomic_write_json, atomic_write_text
from ..errors import UserError
from ..provenance import provenance
from ..runfiles import read_metrics

CKPT_NAME, METRICS_NAME, CONFIG_NAME = "ckpt.pt", "metrics.jsonl", "config.json"
LR_SCHEDULES = ("constant", "cosine")
DEVICES = ("auto", "cpu", "cuda")
# settings that may change between a run and its resumption
RESUMABLE_CHANGES = {"steps", "eval_every", "ckpt_every", "out_dir", "resume", "device",
                     "compile", "progress"}


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    warmup: int = 0
    lr_schedule: str = "constant"     # or "cosine" (decays to min_lr_frac * lr)
    min_lr_frac: float = 0.1
    batch_size: int = 64              # sequences per optimizer step, all ranks together
    grad_accum: int = 1               # micro-batches per step and rank
    grad_clip: float = 1.0            # 0 disables clipping
    eval_every: int = 100
    ckpt_every: int = 500
    out_dir: str | None = None        # None: write nothing (tests, benchmarks)
    resume: bool = False
    device: str = "auto"
    compile: bool = False
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        positive = ("steps", "batch_size", "grad_accum", "eval_every", "ckpt_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"{name} must be a positive integer, got {value!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"lr must be positive, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise UserError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise UserError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.warmup < 0 or not (math.isfinite(self.grad_clip) and self.grad_clip >= 0):
            raise UserError(f"warmup and grad_clip must be finite and >= 0, got {self.warmup}, {self.grad_clip}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"unknown lr schedule {self.lr_schedule!r}; choose from {LR_SCHEDULES}")
        if self.device not in DEVICES:
            raise UserError(f"unknown device {self.device!r}; choose from {DEVICES}")

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based): a pure function
        of the step, so resuming needs no scheduler state."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.lr_schedule == "constant":
            return self.lr
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        floor = self.min_lr_frac * self.lr
        return floor + 0.5 * (self.lr - floor) * (1 + math.cos(math.pi * min(progress, 1.0)))


@dataclass
class TrainResult:
    model: nn.Module
    records: list[dict] = field(default_factory=list)  # metrics written in this call

    @property
    def final(self) -> dict:
        return self.records[-1] if self.records else {}


# ---------------------------------------------------------------------------
# devices and distributed training
# ---------------------------------------------------------------------------

@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    owns_process_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_runtime(device: str) -> Runtime:
    """Pick the device; join a process group when torchrun set WORLD_SIZE > 1."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but CUDA is not available")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Runtime(torch.device("cuda" if use_cuda else "cpu"))
    import torch.distributed as dist
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    dev = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    return Runtime(dev, rank=rank, world_size=world_size, owns_process_group=owns)


def _barrier(rt: Runtime):
    if rt.distributed:
        torch.distributed.barrier()


def _all_reduce_sum(rt: Runtime, tensor: torch.Tensor) -> torch.Tensor:
    if rt.distributed:
        torch.distributed.all_reduce(tensor)
    return tensor


# ---------------------------------------------------------------------------
# optimizer, checkpoints, metrics file
# ---------------------------------------------------------------------------

def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device):
    """AdamW; weight decay on matrices and embeddings only (nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas,
                             fused=device.type == "cuda")


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save to a temporary sibling, fsync, rename: all or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


CKPT_KEYS = ("step", "model", "optimizer", "rng", "accumulator")


def load_checkpoint(path: Path) -> dict:
    """Load ckpt.pt; anything unreadable becomes one UserError line."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated zip, bad pickle, wrong file, ...
        raise UserError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or any(k not in payload for k in CKPT_KEYS):
        raise UserError(f"checkpoint {path} is corrupt: missing fields")
    return payload


def _json_safe(value):
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class MetricsLog:
    """metrics.jsonl: append one line per record, truncate on resume."""

    def __init__(self, path: Path | None):
        self.path = path

    def truncate_after(self, step: int) -> None:
        if self.path is None:
            return
        kept = [r for r in read_metrics(self.path) if r.get("step", -1) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def append(self, record: dict) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(_json_safe(record)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


# ---------------------------------------------------------------------------
# running averages of the per-step diagnostics
# ---------------------------------------------------------------------------

class Accumulator:
    """Sums and counts of per-step values between two records (NaN skipped).
    Kept on the device so steps do not sync; saved in checkpoints so a resumed
    run reports the same averages."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}

    def add(self, values: dict):
        for key, value in values.items():
            v = torch.as_tensor(value).detach().double().reshape(())
            ok = torch.isfinite(v)
            if key not in self.sums:
                self.sums[key] = torch.zeros((), dtype=torch.double, device=v.device)
                self.counts[key] = torch.zeros((), dtype=torch.double, device=v.device)
            self.sums[key] += torch.where(ok, v, torch.zeros_like(v))
            self.counts[key] += ok.double()

    def averages(self, rt: Runtime) -> dict[str, float]:
        if not self.sums:
            return {}
        keys = sorted(self.sums)
        packed = torch.stack([self.sums[k] for k in keys] + [self.counts[k] for k in keys])
        packed = _all_reduce_sum(rt, packed.to(rt.device)).cpu()
        n = len(keys)
        return {k: (float(packed[i] / packed[n + i]) if packed[n + i] > 0 else float("nan"))
                for i, k in enumerate(keys)}

    def state_dict(self) -> dict:
        return {"sums": {k: v.cpu() for k, v in self.sums.items()},
                "counts": {k: v.cpu() for k, v in self.counts.items()}}

    def load_state_dict(self, state: dict, device):
        self.sums = {k: v.to(device) for k, v in state["sums"].items()}
        self.counts = {k: v.to(device) for k, v in state["counts"].items()}

    def reset(self):
        self.sums, self.counts = {}, {}


# ---------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------

def _check_resume_compatible(stored: dict, task_config: dict, cfg: TrainConfig):
    if stored.get("task") != json.loads(json.dumps(task_config)):
        raise UserError("cannot resume: the task settings differ from the stored config.json")
    old = {k: v for k, v in stored.get("train", {}).items() if k not in RESUMABLE_CHANGES}
    new = {k: v for k, v in json.loads(json.dumps(asdict(cfg))).items() if k not in RESUMABLE_CHANGES}
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        raise UserError(f"cannot resume: training settings changed ({', '.join(changed)})")


def train(task, cfg: TrainConfig) -> TrainResult:
    """Train ``task`` as configured; see the module docstring."""
    rt = setup_runtime(cfg.device)
    try:
        return _train(task, cfg, rt)
    finally:
        if rt.owns_process_group:
            torch.distributed.destroy_process_group()


def _train(task, cfg: TrainConfig, rt: Runtime) -> TrainResult:
    shards = rt.world_size * cfg.grad_accum
    if cfg.batch_size % shards:
        raise UserError(f"batch_size={cfg.batch_size} is not divisible by world_size x grad_accum = {shards}")
    micro_batch = cfg.batch_size // shards
    device, cuda = rt.device, rt.device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    out = Path(cfg.out_dir) if cfg.out_dir else None
    ckpt_path = out / CKPT_NAME if out else None
    task_config = task.config()

    # ---- model and optimizer (same init on every rank: seeded before build)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    random.seed(cfg.seed)
    raw_model = task.build_model().to(device)
    optimizer = build_optimizer(raw_model, cfg, device)
    acc = Accumulator()
    start_step = 0

    # ---- fresh start or resume
    if out is not None:
        has_run = (out / CONFIG_NAME).exists() or (ckpt_path.exists())
        if has_run and not cfg.resume:
            raise UserError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        if cfg.resume and ckpt_path.exists():
            ckpt = load_checkpoint(ckpt_path)
            if (out / CONFIG_NAME).exists():
                try:
                    stored = json.loads((out / CONFIG_NAME).read_text())
                except json.JSONDecodeError:
                    raise UserError(f"{out / CONFIG_NAME} is corrupt") from None
                _check_resume_compatible(stored, task_config, cfg)
            try:
                raw_model.load_state_dict(ckpt["model"])
                optimizer.load_state_dict(ckpt["optimizer"])
            except (RuntimeError, KeyError, ValueError) as exc:
                raise UserError(f"checkpoint {ckpt_path} does not match this model "
                                f"({str(exc).splitlines()[0]})") from None
            set_rng_state(ckpt["rng"])
            acc.load_state_dict(ckpt["accumulator"], device)
            start_step = int(ckpt["step"])
    _barrier(rt)  # every rank checks for an existing run before rank 0 writes one
    metrics = MetricsLog(out / METRICS_NAME if (out and rt.is_main) else None)
    if rt.is_main and out is not None:
        out.mkdir(parents=True, exist_ok=True)
        metrics.truncate_after(start_step if start_step > 0 else -1)
        _write_config(out, task_config, cfg, rt, resumed_from=start_step or None)
    _barrier(rt)

    model = raw_model
    if rt.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(model, device_ids=[device.index] if cuda else None)
    if cfg.compile and cuda:  # compile after wrapping, as the DDP docs advise
        model = torch.compile(model)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    tokens_per_seq = getattr(task, "tokens_per_sequence", None)

    def evaluate(step: int) -> dict:
        """One metrics record (rank 0 evaluates; every rank joins the reduce)."""
        averages = acc.averages(rt)
        acc.reset()
        if not rt.is_main:
            return {}
        raw_model.eval()
        with torch.no_grad(), autocast():
            if "loss" in averages:
                train_loss = averages.pop("loss")
            else:  # step 0: loss of the first batch, no update
                batch = task.train_batch(0, micro_batch, device, shard=0)
                train_loss = float(task.loss(raw_model, batch)[0])
            record = {"step": step, "loss": train_loss, "lr": cfg.lr_at(max(step - 1, 0))}
            # engine-level averages are stored under "_name", task diagnostics under "train/name"
            record.update({k[1:]: v for k, v in averages.items() if k.startswith("_")})
            record.update(task.evaluate(raw_model, step))
        raw_model.train()
        record.update({f"train/{k}": v for k, v in averages.items() if not k.startswith("_")})
        record["elapsed_s"] = round(time.time() - t_start, 3)
        metrics.append(record)
        return record

    records: list[dict] = []
    t_start = time.time()
    if start_step == 0:
        rec = evaluate(0)
        if rec:
            records.append(rec)

    bar = tqdm(total=cfg.steps, initial=start_step, disable=None if (cfg.progress and rt.is_main) else True,
               dynamic_ncols=True, desc=getattr(task, "name", "train"))
    raw_model.train()
    interval_t0, interval_tokens = time.time(), 0
    step = start_step
    while step < cfg.steps:
        lr = cfg.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = torch.zeros((), device=device)
        micro_diags: list[dict] = []
        for micro in range(cfg.grad_accum):
            batch = task.train_batch(step, micro_batch, device,
                                     shard=rt.rank * cfg.grad_accum + micro)
            sync = contextlib.nullcontext()
            if rt.distributed and micro < cfg.grad_accum - 1:
                sync = model.no_sync()
            with sync:
                with autocast():
                    loss, diag = task.loss(model, batch)
                (loss / cfg.grad_accum).backward()
            step_loss += loss.detach().float() / cfg.grad_accum
            micro_diags.append(diag)
        grad_norm = nn.utils.clip_grad_norm_(raw_model.parameters(),
                                             cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        # Non-finite loss: stop before the update and before any checkpoint
        # of the diverged state (one scalar sync per step).
        finite = torch.isfinite(step_loss) & torch.isfinite(grad_norm)
        finite = _all_reduce_sum(rt, (~finite).float()) == 0
        if not bool(finite):
            bar.close()
            where = f"; last good checkpoint: {ckpt_path}" if ckpt_path and ckpt_path.exists() else ""
            raise TrainingDiverged(f"loss became non-finite at step {step} "
                                   f"(loss={float(step_loss)}){where}")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        acc.add({"loss": step_loss, "_grad_norm": grad_norm})
        # one entry per micro-batch: a NaN diagnostic (e.g. no identifiable
        # position in that micro-batch) then drops only that micro-batch
        for diag in micro_diags:
            acc.add(diag)
        if tokens_per_seq:
            interval_tokens += cfg.batch_size * tokens_per_seq
        bar.update(1)
        if step % 10 == 0 or step == cfg.steps:
            bar.set_postfix(loss=f"{float(step_loss):.4f}", refresh=False)

        if step % cfg.eval_every == 0 or step == cfg.steps:
            if tokens_per_seq:
                if cuda:
                    torch.cuda.synchronize(device)
                acc.add({"_tokens_per_s": torch.tensor(interval_tokens / (time.time() - interval_t0))})
            rec = evaluate(step)
            if rec:
                records.append(rec)
                bar.set_postfix(loss=f"{rec['loss']:.4f}",
                                **{k: f"{rec[k]:.3f}" for k in ("train_acc", "val_acc") if k in rec})
            interval_t0, interval_tokens = time.time(), 0
        if ckpt_path is not None and (step % cfg.ckpt_every == 0 or step == cfg.steps):
            if rt.is_main:
                save_checkpoint(ckpt_path, {
                    "step": step, "model": raw_model.state_dict(),
                    "optimizer": optimizer.state_dict(), "rng": rng_state(),
                    "accumulator": acc.state_dict(), "task": task_config})
            _barrier(rt)
    bar.close()
    return TrainResult(model=raw_model, records=records)


def _write_config(out: Path, task_config: dict, cfg: TrainConfig, rt: Runtime,
                  resumed_from: int | None):
    path = out / CONFIG_NAME
    prov = provenance(device=str(rt.device))
    if resumed_from and path.exists():
        stored = json.loads(path.read_text())
        stored.setdefault("resumes", []).append({"from_step": resumed_from, "provenance": prov})
        stored["train"]["steps"] = cfg.steps
        atomic_write_json(path, stored)
        return
    atomic_write_json(path, {"task": task_config, "train": asdict(cfg),
                             "world_size": rt.world_size, "provenance": prov})


# ---------------------------------------------------------------------------
# command-line flags shared by every training subcommand (parity, lm)
# ---------------------------------------------------------------------------

def add_engine_arguments(parser: argparse.ArgumentParser, **defaults) -> None:
    """Add the engine's flags; ``defaults`` overrides per subcommand
    (e.g. lr=3e-4, batch_size=256)."""
    d = {f.name: f.default for f in fields(TrainConfig)}
    d.update(defaults)
    g = parser.add_argument_group("training engine")
    g.add_argument("--steps", type=int, default=d["steps"], help="optimizer steps")
    g.add_argument("--seed", type=int, default=d["seed"], help="seeds data, masks and init")
    g.add_argument("--out", default=d.get("out"), help="run directory (config.json, metrics.jsonl, ckpt.pt)")
    g.add_argument("--lr", type=float, default=d["lr"])
    g.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    g.add_argument("--betas", type=float, nargs=2, default=list(d["betas"]), metavar=("B1", "B2"))
    g.add_argument("--warmup", type=int, default=d["warmup"], help="linear warm-up steps")
    g.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=d["lr_schedule"])
    g.add_argument("--batch-size", type=int, default=d["batch_size"], help="sequences per step (all ranks)")
    g.add_argument("--grad-accum", type=int, default=d["grad_accum"])
    g.add_argument("--grad-clip", type=float, default=d["grad_clip"], help="0 disables")
    g.add_argument("--eval-every", type=int, default=d["eval_every"])
    g.add_argument("--ckpt-every", type=int, default=d["ckpt_every"])
    g.add_argument("--resume", action="store_true", help="continue from DIR/ckpt.pt if present")
    g.add_argument("--device", choices=DEVICES, default=d["device"])
    g.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA only)")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g.add_argument("--threads", type=int, default=0,
                   help="CPU threads for torch (0: torch's default); 1 is fastest on a busy machine")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from the shared flags (also applies --threads)."""
    if not args.out:
        raise UserError("--out DIR is required")
    if args.threads < 0:
        raise UserError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    return TrainConfig(
        steps=args.steps, lr=args.lr, weight_decay=args.weight_decay, betas=tuple(args.betas),
        warmup=args.warmup, lr_schedule=args.lr_schedule, batch_size=args.batch_size,
        grad_accum=args.grad_accum, grad_clip=args.grad_clip, eval_every=args.eval_every,
        ckpt_every=args.ckpt_every, out_dir=args.out, resume=args.resume, device=args.device,
        compile=args.compile, seed=args.seed, progress=not args.no_progress)
