"""The one training loop, shared by every task.

``train(task, cfg)`` runs any object that follows the Task interface
(``mdtheory.train.task``) with the settings of ``TrainConfig``: AdamW with
warm-up and a constant or cosine learning rate, clipping and accumulation,
bf16 autocast on CUDA, optional torch.compile, DDP under torchrun (only rank
0 writes). Its run folder ``out_dir`` (``mdtheory.runfiles.RunFolder``: the
lock, the resume checks, config.json and metrics.jsonl) gets one metrics
record per evaluation (step, mean training loss since the last record, lr,
grad_norm, the task's metrics, "train/<key>" averages of its per-step
diagnostics, tokens_per_s, elapsed_s) and ckpt.pt (``checkpoint``: model,
optimizer, per-rank RNG states, step and settings).

Resume continues from the checkpoint: batches are a function of (seed,
step), so a killed and resumed CPU run ends with exactly the metrics of an
uninterrupted one. A non-finite loss stops training with a UserError before
any checkpoint of the diverged state is written. A write that fails (a full
disk) stops it with one line naming the file (an OutputError), keeping the
last good checkpoint and the records before it.

``train(task, cfg, stop=rule)`` ends a run early: ``rule`` sees each new
metrics record and returns True to stop there (after a checkpoint); a later
resume with a larger ``steps`` or no rule continues from that step.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import OutputError, UserError
from ..runfiles import RunFolder, settings_changes as _settings_changes  # noqa: F401 (old home)
from .accumulator import Accumulator
from .checkpoint import gather_rng_states, load_checkpoint, save_checkpoint, set_rng_state
from .config import TrainConfig


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    model: nn.Module
    records: list[dict] = field(default_factory=list)  # metrics written in this call
    stopped_early: bool = False  # the stop rule ended the run before cfg.steps

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


def _on_main_then_share(rt: Runtime, fn):
    """Run ``fn`` on rank 0 and give every rank its UserError (if any), so a
    refusal stops all ranks instead of leaving them waiting in a collective."""
    error, result = None, None
    if rt.is_main:
        try:
            result = fn()
        except UserError as exc:
            error = str(exc)
        except BaseException:
            error = "rank 0 failed while preparing the run folder"
            if not rt.distributed:
                raise
            torch.distributed.broadcast_object_list([error], src=0)
            raise
    if rt.distributed:
        box = [error]
        torch.distributed.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise UserError(error)
    return result


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device):
    """AdamW; weight decay on matrices and embeddings only (nanoGPT).

    The fused kernel (CPU and CUDA) is ~5-10% faster per step on CPU; it
    agrees with the plain loop to round-off (tests/test_engine.py states the
    tolerance) and is deterministic, so resume stays exact."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas,
                             fused=device.type in ("cpu", "cuda"))


# ---------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------

def train(task, cfg: TrainConfig, stop=None) -> TrainResult:
    """Train ``task`` as configured; ``stop(record) -> bool`` may end it early
    at an evaluation (see the module docstring)."""
    rt = setup_runtime(cfg.device)
    try:
        with contextlib.ExitStack() as cleanup:
            return _Training(task, cfg, rt, stop).run(cleanup)
    finally:
        if rt.owns_process_group:
            torch.distributed.destroy_process_group()


def _seed_everything(seed: int):
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class _Training:
    """One call of ``train``: its settings, model, optimizer, run folder
    (rank 0 writes it; every rank knows where the checkpoint is) and the
    state of the loop."""

    def __init__(self, task, cfg: TrainConfig, rt: Runtime, stop=None):
        self.task, self.cfg, self.rt, self.stop = task, cfg, rt, stop
        self.device, self.cuda = rt.device, rt.device.type == "cuda"
        self.folder = RunFolder(cfg.out_dir) if cfg.out_dir else None
        self.ckpt_path = self.folder.ckpt_path if self.folder else None
        self.tokens_per_seq = getattr(task, "tokens_per_sequence", None)
        self.records: list[dict] = []

    def run(self, cleanup: contextlib.ExitStack) -> TrainResult:
        self._check_settings()
        ckpt = self._open_folder(cleanup)
        start_step = self._build(ckpt)
        self.saved_step = start_step if ckpt is not None else None  # the step of the checkpoint on disk
        self.t_start = time.time()
        if start_step == 0:
            self._evaluate(0)
        return self._loop(start_step)

    # ---- setup and resume

    def _check_settings(self):
        """The refusals that need no file: batch shape, the task's own check, a compiler."""
        cfg, task = self.cfg, self.task
        shards = self.rt.world_size * cfg.grad_accum
        if cfg.batch_size % shards:
            raise UserError(f"batch_size={cfg.batch_size} is not divisible by world_size x grad_accum = {shards}")
        self.micro_batch = cfg.batch_size // shards
        check = getattr(task, "check_micro_batch", None)
        if check is not None:  # e.g. a memory estimate that needs the batch size
            check(self.micro_batch)
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.task_config = task.config()
        self.task_json = json.loads(json.dumps(self.task_config))
        if cfg.compile and not self.cuda and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
            raise UserError("--compile on CPU needs a C++ compiler (g++), and none was found")

    def _open_folder(self, cleanup: contextlib.ExitStack) -> dict | None:
        """Lock and check the run folder (rank 0 decides, every rank learns a
        refusal); the checkpoint to resume from, or None."""
        if self.folder is None:
            return None

        def prepare():
            ckpt = self.folder.open(self.task_json, self.cfg, load_checkpoint,
                                    frozenset(getattr(self.task, "resumable_settings", ())))
            cleanup.callback(self.folder.release)  # the lock is held until training ends
            return ckpt
        ckpt = _on_main_then_share(self.rt, prepare)
        if self.rt.distributed:
            box = [ckpt is not None]
            torch.distributed.broadcast_object_list(box, src=0)
            if box[0] and not self.rt.is_main:
                ckpt = load_checkpoint(self.ckpt_path)
        return ckpt

    def _build(self, ckpt: dict | None) -> int:
        """Model and optimizer (same init on every rank: seeded before the
        build), restored from ``ckpt``; config.json written. The first step."""
        cfg, rt, device = self.cfg, self.rt, self.device
        _seed_everything(cfg.seed)
        self.raw_model = self.task.build_model().to(device)
        self.optimizer = build_optimizer(self.raw_model, cfg, device)
        if rt.rank > 0:  # dropout and other draws differ between ranks (nanoGPT: seed + rank)
            _seed_everything(cfg.seed + rt.rank)
        self.acc = Accumulator(device)
        start_step = 0 if ckpt is None else self._restore(ckpt)
        if rt.is_main and self.folder is not None:
            self.folder.start(self.task_config, cfg, rt.world_size, str(device),
                              resumed_from=start_step if ckpt is not None else None)
        _barrier(rt)
        model = self.raw_model
        if rt.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP
            model = DDP(model, device_ids=[device.index] if self.cuda else None)
        if cfg.compile:  # after wrapping, as the DDP docs advise; CPU works too (inductor)
            model = torch.compile(model)
        self.model = model
        self.autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if self.cuda
                         else contextlib.nullcontext)
        return start_step

    def _restore(self, ckpt: dict) -> int:
        try:
            self.raw_model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise UserError(f"checkpoint {self.ckpt_path} does not match this model "
                            f"({str(exc).splitlines()[0]})") from None
        if self.rt.rank < len(ckpt["rng"]):  # a rank the saved run did not have keeps seed + rank
            set_rng_state(ckpt["rng"][self.rt.rank])
        if self.rt.is_main:  # the saved sums are already totals over the ranks
            self.acc.load_state_dict(ckpt["accumulator"])
        return int(ckpt["step"])

    # ---- the loop

    def _loop(self, start_step: int) -> TrainResult:
        cfg = self.cfg
        self.bar = tqdm(total=cfg.steps, initial=start_step,
                        disable=None if (cfg.progress and self.rt.is_main) else True,
                        dynamic_ncols=True, desc=getattr(self.task, "name", "train"))
        self.raw_model.train()
        self.interval_t0, self.interval_tokens = time.time(), 0
        step, stopping = start_step, False
        while step < cfg.steps and not stopping:
            self._step(step)
            step += 1
            if step % cfg.eval_every == 0 or step == cfg.steps:
                stopping = self._evaluate_and_ask(step)
            if self.ckpt_path is not None and (step % cfg.ckpt_every == 0 or step == cfg.steps or stopping):
                self._checkpoint(step)
        self.bar.close()
        return TrainResult(model=self.raw_model, records=self.records, stopped_early=stopping)

    def _step(self, step: int):
        """Optimizer step ``step`` (0-based): its micro-batches, clipping, the update."""
        cfg, rt, model = self.cfg, self.rt, self.model
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr_at(step)
        step_loss = torch.zeros((), device=self.device)
        micro_diags: list[dict] = []
        for micro in range(cfg.grad_accum):
            batch = self.task.train_batch(step, self.micro_batch, self.device,
                                          shard=rt.rank * cfg.grad_accum + micro)
            sync = contextlib.nullcontext()
            if rt.distributed and micro < cfg.grad_accum - 1:
                sync = model.no_sync()
            with sync:
                with self.autocast():
                    loss, diag = self.task.loss(model, batch)
                (loss / cfg.grad_accum).backward()
            step_loss += loss.detach().float() / cfg.grad_accum
            micro_diags.append(diag)
        grad_norm = nn.utils.clip_grad_norm_(self.raw_model.parameters(),
                                             cfg.grad_clip if cfg.grad_clip > 0 else float("inf"),
                                             foreach=True)
        # Non-finite loss: stop before the update and before any checkpoint
        # of the diverged state (one scalar sync per step).
        finite = torch.isfinite(step_loss) & torch.isfinite(grad_norm)
        finite = _all_reduce_sum(rt, (~finite).float()) == 0
        if not bool(finite):
            self.bar.close()
            path = self.ckpt_path
            where = f"; last good checkpoint: {path}" if path and path.exists() else ""
            raise TrainingDiverged(f"loss became non-finite at step {step} "
                                   f"(loss={float(step_loss)}){where}")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.acc.add({"loss": step_loss, "_grad_norm": grad_norm})
        # one entry per micro-batch: a NaN diagnostic (e.g. no identifiable
        # position in that micro-batch) then drops only that micro-batch
        for diag in micro_diags:
            self.acc.add(diag)
        if self.tokens_per_seq:
            self.interval_tokens += cfg.batch_size * self.tokens_per_seq
        self.bar.update(1)
        if (step + 1) % 10 == 0 or step + 1 == cfg.steps:
            self.bar.set_postfix(loss=f"{float(step_loss):.4f}", refresh=False)

    # ---- evaluation and checkpoints

    def _evaluate(self, step: int) -> dict:
        """One metrics record (rank 0 evaluates and writes it; every rank joins the reduce)."""
        averages = self.acc.averages(self.rt)
        self.acc.reset()
        if not self.rt.is_main:
            return {}
        task, raw_model = self.task, self.raw_model
        raw_model.eval()
        with torch.no_grad(), self.autocast():
            if "loss" in averages:
                train_loss = averages.pop("loss")
            else:  # step 0: loss of the first batch, no update
                batch = task.train_batch(0, self.micro_batch, self.device, shard=0)
                train_loss = float(task.loss(raw_model, batch)[0])
            record = {"step": step, "loss": train_loss, "lr": self.cfg.lr_at(max(step - 1, 0))}
            # engine-level averages are stored under "_name", task diagnostics under "train/name"
            record.update({k[1:]: v for k, v in averages.items() if k.startswith("_")})
            record.update(task.evaluate(raw_model, step))
        raw_model.train()
        record.update({f"train/{k}": v for k, v in averages.items() if not k.startswith("_")})
        record["elapsed_s"] = round(time.time() - self.t_start, 3)
        if self.folder is not None:
            self.folder.append_metrics(record)
        self.records.append(record)
        return record

    def _evaluate_and_ask(self, step: int) -> bool:
        """The record of ``step`` (with the token rate since the last one);
        whether the stop rule ends the run here (rank 0 decides, every rank stops)."""
        if self.tokens_per_seq:
            if self.cuda:
                torch.cuda.synchronize(self.device)
            rate = self.interval_tokens / (time.time() - self.interval_t0)
            self.acc.add({"_tokens_per_s": torch.tensor(rate)})
        rec = self._evaluate(step)
        if rec:
            self.bar.set_postfix(loss=f"{rec['loss']:.4f}",
                                 **{k: f"{rec[k]:.3f}" for k in ("train_acc", "val_acc") if k in rec})
        self.interval_t0, self.interval_tokens = time.time(), 0
        if self.stop is None:
            return False
        wants = torch.tensor(float(bool(rec) and bool(self.stop(rec))), device=self.device)
        return bool(_all_reduce_sum(self.rt, wants) > 0) and step < self.cfg.steps

    def _checkpoint(self, step: int):
        """ckpt.pt after ``step`` (every rank gives its RNG state; rank 0 writes)."""
        rng_states, acc_state = gather_rng_states(self.rt), self.acc.state_dict(self.rt)  # collectives
        if self.rt.is_main:
            try:
                save_checkpoint(self.ckpt_path, {
                    "step": step, "model": self.raw_model.state_dict(),
                    "optimizer": self.optimizer.state_dict(), "rng": rng_states,
                    "accumulator": acc_state, "task": self.task_json, "train": self.cfg.record()})
            except OutputError as exc:
                self.bar.close()
                kept = (f"; the last good checkpoint (step {self.saved_step}) is kept and --resume "
                        f"continues from it" if self.saved_step is not None else "")
                raise OutputError(f"{exc}{kept}", exc.errno, exc.strerror, exc.filename) from None
            self.saved_step = step
        _barrier(self.rt)
