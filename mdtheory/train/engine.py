"""The one training loop, shared by every task.

``train(task, cfg)`` runs any object that follows the Task interface
(``mdtheory.train.task``) with the settings of ``TrainConfig``: AdamW with
warm-up and a constant or cosine learning rate, clipping and accumulation,
bf16 autocast on CUDA, optional torch.compile, DDP under torchrun (only rank
0 writes). In ``out_dir`` it writes config.json (the run record, see
``mdtheory.runfiles``), metrics.jsonl (one record per evaluation: step, mean
training loss since the last record, lr, grad_norm, the task's metrics,
"train/<key>" averages of its per-step diagnostics, tokens_per_s, elapsed_s)
and ckpt.pt (model, optimizer, per-rank RNG states, step, settings, and the
task's learnt state when it has one, e.g. an adaptive mask-rate law, which
sees every trained batch through ``task.observe``; written atomically, read
with ``weights_only=True``).

The run folder is locked for the whole run; a non-empty folder that holds no
run of ours is refused. Resume checks that the task and settings are
unchanged (``steps`` may grow if the learning rates already used stay the
same), drops records past the checkpoint and continues: batches are a
function of (seed, step), so a killed and resumed CPU run ends with exactly
the metrics of an uninterrupted one. A non-finite loss stops training with a
UserError before any checkpoint of the diverged state is written. A write
that fails (a full disk) stops it with one line naming the file (an
OutputError), keeping the last good checkpoint and the records before it;
the temporary files a killed writer left behind are removed when the run
folder is next opened (resume, or a fresh start of our run).

``train(task, cfg, stop=rule)`` ends a run early: ``rule`` sees each new
metrics record and returns True to stop there (after a checkpoint); a later
resume with a larger ``steps`` or no rule continues from that step.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import pickle
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..cli import atomic_write_text, temp_prefix, write_failed
from ..errors import OutputError, UserError
from ..provenance import provenance
from .. import runfiles
from ..runfiles import read_metrics
from .config import TrainConfig

CKPT_NAME, METRICS_NAME, CONFIG_NAME = "ckpt.pt", "metrics.jsonl", "config.json"
# settings that may change between a run and its resumption (a change of the
# learning-rate horizon is checked on its own: see _check_lr_curve)
RESUMABLE_CHANGES = {"steps", "lr_decay_steps", "eval_every", "ckpt_every", "out_dir", "resume",
                     "device", "compile", "progress"}


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


# ---------------------------------------------------------------------------
# optimizer, checkpoints, metrics file
# ---------------------------------------------------------------------------

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


def rng_state() -> dict:
    """This process's RNG states as tensors and plain types (weights_only-safe)."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {"python": [py_version, list(py_state), py_gauss],
             "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos),
                       int(np_has_gauss), float(np_gauss)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np.asarray(np_keys, dtype=np.int64).astype(np.uint32),
                         np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states(rt: Runtime) -> list[dict]:
    """Every rank's RNG state, in rank order (complete on rank 0)."""
    state = rng_state()
    if not rt.distributed:
        return [state]
    states = [None] * rt.world_size
    torch.distributed.all_gather_object(states, state)
    return states


def _write_error_reason(exc: BaseException) -> str | None:
    """What a failed write ran into (e.g. "No space left on device"), from an
    OSError or torch's RuntimeError around one; None for anything else."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return seen.strerror or str(seen)
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if isinstance(exc, RuntimeError) and ("inline_container" in text or "write" in text.lower()):
        return text.splitlines()[0] if text else type(exc).__name__
    return None


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save to a temporary sibling (``.ckpt.pt.<pid>.tmp``), fsync,
    rename: all or nothing. A failed write (disk full, ...) removes the
    temporary file, keeps the last good checkpoint and raises an
    OutputError naming ``path``."""
    tmp = path.with_name(f"{temp_prefix(path)}tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        reason = _write_error_reason(exc)
        if reason is None:
            raise
        raise OutputError(f"cannot write the checkpoint {path}: {reason}", getattr(exc, "errno", None),
                          reason, str(path)) from None
    finally:
        if tmp.exists():
            tmp.unlink()


CKPT_KEYS = ("step", "model", "optimizer", "rng", "accumulator")


def load_checkpoint(path: Path) -> dict:
    """Load ckpt.pt; anything unreadable becomes one UserError line.

    ``weights_only=True``: a file that would need to import or call anything
    (a crafted pickle) is refused before any of it runs."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"checkpoint {path} is refused: it holds objects other than tensors and "
                        f"plain data, so it was not written by this trainer") from None
    except Exception as exc:  # truncated zip, wrong file, unreadable, ...
        raise UserError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or any(k not in payload for k in CKPT_KEYS):
        raise UserError(f"checkpoint {path} is corrupt: missing fields")
    rng = payload["rng"]
    payload["rng"] = [rng] if isinstance(rng, dict) else rng  # one state per rank
    if not isinstance(payload["rng"], list) or not all(isinstance(r, dict) for r in payload["rng"]):
        raise UserError(f"checkpoint {path} is corrupt: bad RNG states")
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
        if step < 0:  # a fresh start: nothing to keep, nothing to read
            atomic_write_text(self.path, "")
            return
        kept = [r for r in read_metrics(self.path) if r.get("step", -1) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def append(self, record: dict) -> None:
        """One line; a failed write (disk full, ...) is cut off again, so the
        file keeps exactly its earlier records, and raises an OutputError."""
        if self.path is None:
            return
        line = json.dumps(_json_safe(record)) + "\n"
        try:
            size = self.path.stat().st_size
        except OSError:
            size = 0
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            try:
                os.truncate(self.path, size)
            except OSError:
                pass  # then the torn last line is what a reader drops
            raise write_failed(self.path, exc) from None


# ---------------------------------------------------------------------------
# running averages of the per-step diagnostics
# ---------------------------------------------------------------------------

class Accumulator:
    """Sums and counts of per-step values between two records (NaN skipped).
    Kept on the training device so steps do not sync (host-side values such as
    the token rate are moved there too, or the pack in ``averages`` would mix
    devices); saved in checkpoints so a resumed run reports the same averages."""

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}

    def add(self, values: dict):
        for key, value in values.items():
            v = torch.as_tensor(value).detach().to(self.device, torch.double).reshape(())
            ok = torch.isfinite(v)
            if key not in self.sums:
                self.sums[key] = torch.zeros((), dtype=torch.double, device=self.device)
                self.counts[key] = torch.zeros((), dtype=torch.double, device=self.device)
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

    def state_dict(self, rt: Runtime | None = None) -> dict:
        """Sums and counts, totalled over the ranks when distributed (every
        rank must call it then); rank 0 alone reloads them on resume."""
        sums, counts = dict(self.sums), dict(self.counts)
        if rt is not None and rt.distributed and sums:
            keys = sorted(sums)
            packed = torch.stack([sums[k] for k in keys] + [counts[k] for k in keys])
            packed = _all_reduce_sum(rt, packed.to(rt.device))
            sums = {k: packed[i] for i, k in enumerate(keys)}
            counts = {k: packed[len(keys) + i] for i, k in enumerate(keys)}
        return {"sums": {k: v.cpu() for k, v in sums.items()},
                "counts": {k: v.cpu() for k, v in counts.items()}}

    def load_state_dict(self, state: dict):
        self.sums = {k: v.to(self.device) for k, v in state["sums"].items()}
        self.counts = {k: v.to(self.device) for k, v in state["counts"].items()}

    def reset(self):
        self.sums, self.counts = {}, {}


# ---------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------

def _changed_fields(old, new, prefix: str = "") -> list[str]:
    """Dotted names of the entries that differ between two JSON-like values."""
    if isinstance(old, dict) and isinstance(new, dict):
        changed = []
        for key in sorted(set(old) | set(new), key=str):
            changed += _changed_fields(old.get(key), new.get(key), f"{prefix}{key}.")
        return changed
    return [prefix.rstrip(".")] if old != new else []


def _settings_changes(stored_task, stored_train, task_json: dict, cfg: TrainConfig,
                      resumable_task: frozenset = frozenset()) -> list[str]:
    """Fields of the task (``task.<name>``) and of the training settings that
    differ from a stored run; settings that may change on resume are ignored,
    the task's own included (``resumable_task``: e.g. a diagnostic's spacing)."""
    changed = [] if stored_task is None else [
        f for f in _changed_fields(stored_task, task_json, "task.")
        if f.split(".")[1] not in resumable_task]
    if stored_train is not None:
        skip = RESUMABLE_CHANGES | {"lr_horizon"}
        old = {k: v for k, v in stored_train.items() if k not in skip}
        new = {k: v for k, v in cfg.record().items() if k not in skip}
        changed += _changed_fields(old, new)
    return changed


def _stored_lr_horizon(ckpt: dict, stored: dict | None):
    """The cosine horizon the run has used so far (old runs: their steps)."""
    for train in (ckpt.get("train"), (stored or {}).get("train")):
        if isinstance(train, dict):
            if "lr_horizon" in train:
                return train["lr_horizon"]
            return train.get("lr_decay_steps") or train.get("steps")
    return None


def _check_lr_curve(old_horizon, done: int, cfg: TrainConfig):
    """The learning rates of the steps already run must be those the new
    settings give, or the resumed run would not equal an uninterrupted one."""
    if cfg.lr_schedule == "constant" or old_horizon is None or old_horizon == cfg.lr_horizon:
        return
    old = TrainConfig(**{**asdict(cfg), "lr_decay_steps": int(old_horizon)})
    if any(old.lr_at(s) != cfg.lr_at(s) for s in range(done)):
        raise UserError(f"cannot resume: lr_decay_steps (the cosine horizon) would change from "
                        f"{old_horizon} to {cfg.lr_horizon} after {done} steps already run; pass "
                        f"--lr-decay-steps {old_horizon} to extend training on the same curve")


def _check_resume(ckpt: dict, stored: dict | None, task_json: dict, cfg: TrainConfig,
                  resumable_task: frozenset = frozenset()) -> None:
    """Refuse a resume whose task or settings differ from the run's, naming
    the fields. The checkpoint's own copy is checked too, so a deleted
    config.json does not let a different run continue."""
    changed = []
    for stored_task, stored_train in ((ckpt.get("task"), ckpt.get("train")),
                                      ((stored or {}).get("task"), (stored or {}).get("train"))):
        changed += [f for f in _settings_changes(stored_task, stored_train, task_json, cfg, resumable_task)
                    if f not in changed]
    if changed:
        raise UserError(f"cannot resume: settings differ from the stored run ({', '.join(changed)})")
    done = int(ckpt["step"])
    if cfg.steps < done:
        raise UserError(f"cannot resume: steps={cfg.steps} is below the {done} steps already run")
    _check_lr_curve(_stored_lr_horizon(ckpt, stored), done, cfg)


# temporary files this module writes next to its outputs (atomic writes):
# ".<name>.<pid>.[random.]tmp", see mdtheory.cli.temp_prefix
OUR_TEMP_PREFIXES = tuple(f".{name}." for name in (CKPT_NAME, CONFIG_NAME, METRICS_NAME))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def _remove_stale_temps(out: Path) -> list[str]:
    """Remove the temporary files of ours that a killed writer left in the
    run folder ``out`` (a SIGTERM during a checkpoint write leaves a
    checkpoint-sized ``.ckpt.pt.<pid>.tmp``): those whose pid is not a live
    process, or is this process's own (it writes none before training
    starts). Called with the folder locked, once the run is known to be
    ours; returns the names removed."""
    removed = []
    for entry in out.iterdir():
        prefix = next((p for p in OUR_TEMP_PREFIXES if entry.name.startswith(p)), None)
        if prefix is None or not entry.name.endswith(".tmp") or not entry.is_file():
            continue
        pid_text = entry.name[len(prefix):].split(".")[0]
        pid = int(pid_text) if pid_text.isdigit() else None  # no pid: an older writer's
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            continue
        try:
            entry.unlink()
            removed.append(entry.name)
        except OSError:
            pass
    return removed


def _read_stored_config(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):  # JSON or UTF-8 errors, a directory, ...
        stored = None
    if not (isinstance(stored, dict) and isinstance(stored.get("task"), dict)
            and isinstance(stored.get("train"), dict)):
        raise UserError(f"{path} is corrupt or not the config of a run of this trainer; "
                        f"choose another --out")
    return stored


def _lock_run_folder(out: Path) -> int:
    """Create the run folder if needed and lock it for this process (flock on
    the directory itself, so nothing is added to the folder)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise UserError(f"cannot create the run folder {out}: {exc.strerror or exc}") from None
    try:
        if not os.access(out, os.W_OK | os.X_OK):
            raise UserError(f"the run folder {out} is not writable")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise UserError(f"{out} is in use by another training process") from None
            raise UserError(f"cannot lock the run folder {out}: {exc.strerror or exc}") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _prepare_run_folder(out: Path, task_json: dict, cfg: TrainConfig, resumable_task: frozenset = frozenset()):
    """Lock ``out`` and decide how to start; every refusal happens here,
    before anything in the folder is changed.

    Returns (lock fd, checkpoint to resume from or None)."""
    fd = _lock_run_folder(out)
    try:
        stored = _read_stored_config(out / CONFIG_NAME)
        ckpt_path = out / CKPT_NAME
        if ckpt_path.exists():
            if not cfg.resume:
                raise UserError(f"{out} already holds a run; pass --resume to continue it "
                                f"or choose another --out")
            ckpt = load_checkpoint(ckpt_path)
            _check_resume(ckpt, stored, task_json, cfg, resumable_task)
            read_metrics(out / METRICS_NAME)  # a damaged file is refused before anything is written
            _remove_stale_temps(out)
            return fd, ckpt
        if stored is None:
            others = sorted(p.name for p in out.iterdir() if not p.name.startswith(OUR_TEMP_PREFIXES))
            if others:
                raise UserError(f"--out {out} is not empty ({', '.join(others[:3])}"
                                f"{', ...' if len(others) > 3 else ''}) and holds no run of this "
                                f"trainer; choose an empty or new folder")
            _remove_stale_temps(out)
            return fd, None
        # a run of ours that stopped before its first checkpoint: the same
        # command starts it again (its records will be the same); others are refused
        changed = _settings_changes(stored["task"], stored["train"], task_json, cfg, resumable_task)
        same_command = RESUMABLE_CHANGES - {"resume", "progress", "out_dir", "device", "compile"}
        changed += [k for k in sorted(same_command) if stored["train"].get(k) != cfg.record().get(k)]
        if changed:
            raise UserError(f"{out} holds a run with other settings ({', '.join(changed)}) that "
                            f"stopped before its first checkpoint; repeat its command or choose "
                            f"another --out")
        _remove_stale_temps(out)
        return fd, None
    except BaseException:
        os.close(fd)
        raise


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


def train(task, cfg: TrainConfig, stop=None) -> TrainResult:
    """Train ``task`` as configured; ``stop(record) -> bool`` may end it early
    at an evaluation (see the module docstring)."""
    rt = setup_runtime(cfg.device)
    try:
        with contextlib.ExitStack() as cleanup:
            return _train(task, cfg, rt, cleanup, stop)
    finally:
        if rt.owns_process_group:
            torch.distributed.destroy_process_group()


def _seed_everything(seed: int):
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _train(task, cfg: TrainConfig, rt: Runtime, cleanup: contextlib.ExitStack, stop=None) -> TrainResult:
    shards = rt.world_size * cfg.grad_accum
    if cfg.batch_size % shards:
        raise UserError(f"batch_size={cfg.batch_size} is not divisible by world_size x grad_accum = {shards}")
    micro_batch = cfg.batch_size // shards
    check = getattr(task, "check_micro_batch", None)
    if check is not None:  # e.g. a memory estimate that needs the batch size
        check(micro_batch)
    device, cuda = rt.device, rt.device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    out = Path(cfg.out_dir) if cfg.out_dir else None
    ckpt_path = out / CKPT_NAME if out else None
    task_config = task.config()
    task_json = json.loads(json.dumps(task_config))

    if cfg.compile and not cuda and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise UserError("--compile on CPU needs a C++ compiler (g++), and none was found")

    # ---- lock the run folder, check it, and find the checkpoint (rank 0 decides)
    ckpt = None
    if out is not None:
        def prepare():
            fd, main_ckpt = _prepare_run_folder(out, task_json, cfg,
                                                frozenset(getattr(task, "resumable_settings", ())))
            cleanup.callback(os.close, fd)  # the lock is held until training ends
            return main_ckpt
        ckpt = _on_main_then_share(rt, prepare)
        if rt.distributed:
            box = [ckpt is not None]
            torch.distributed.broadcast_object_list(box, src=0)
            if box[0] and not rt.is_main:
                ckpt = load_checkpoint(ckpt_path)

    # ---- model and optimizer (same init on every rank: seeded before build)
    _seed_everything(cfg.seed)
    raw_model = task.build_model().to(device)
    optimizer = build_optimizer(raw_model, cfg, device)
    if rt.rank > 0:  # dropout and other draws differ between ranks (nanoGPT: seed + rank)
        _seed_everything(cfg.seed + rt.rank)
    acc = Accumulator(device)
    start_step = 0
    if ckpt is not None:
        try:
            raw_model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise UserError(f"checkpoint {ckpt_path} does not match this model "
                            f"({str(exc).splitlines()[0]})") from None
        if rt.rank < len(ckpt["rng"]):  # a rank the saved run did not have keeps seed + rank
            set_rng_state(ckpt["rng"][rt.rank])
        if rt.is_main:  # the saved sums are already totals over the ranks
            acc.load_state_dict(ckpt["accumulator"])
        start_step = int(ckpt["step"])
        load_task_state = getattr(task, "load_state_dict", None)
        if load_task_state is not None:  # what the task learnt from past steps (older checkpoints: none)
            load_task_state(ckpt.get("task_state") or {})
    observe = getattr(task, "observe", None)
    metrics = MetricsLog(out / METRICS_NAME if (out and rt.is_main) else None)
    if rt.is_main and out is not None:
        metrics.truncate_after(start_step if ckpt is not None else -1)
        _write_config(out, task_config, cfg, rt, resumed_from=start_step if ckpt is not None else None)
    _barrier(rt)

    model = raw_model
    if rt.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(model, device_ids=[device.index] if cuda else None)
    if cfg.compile:  # after wrapping, as the DDP docs advise; CPU works too (inductor)
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
    saved_step = start_step if ckpt is not None else None  # the step of the checkpoint on disk
    t_start = time.time()
    if start_step == 0:
        rec = evaluate(0)
        if rec:
            records.append(rec)

    bar = tqdm(total=cfg.steps, initial=start_step, disable=None if (cfg.progress and rt.is_main) else True,
               dynamic_ncols=True, desc=getattr(task, "name", "train"))
    raw_model.train()
    interval_t0, interval_tokens = time.time(), 0
    step, stopping = start_step, False
    while step < cfg.steps and not stopping:
        lr = cfg.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = torch.zeros((), device=device)
        micro_diags: list[dict] = []
        micro_batches: list[dict] = []
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
            micro_batches.append(batch)
        grad_norm = nn.utils.clip_grad_norm_(raw_model.parameters(),
                                             cfg.grad_clip if cfg.grad_clip > 0 else float("inf"),
                                             foreach=True)
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
        if observe is not None:  # e.g. a mask-rate law that learns from the losses
            for batch in micro_batches:
                observe(batch)
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
            if stop is not None:  # rank 0 decides, every rank stops
                wants = torch.tensor(float(bool(rec) and bool(stop(rec))), device=device)
                stopping = bool(_all_reduce_sum(rt, wants) > 0) and step < cfg.steps
        if ckpt_path is not None and (step % cfg.ckpt_every == 0 or step == cfg.steps or stopping):
            rng_states, acc_state = gather_rng_states(rt), acc.state_dict(rt)  # collectives
            if rt.is_main:
                try:
                    save_checkpoint(ckpt_path, {
                        "step": step, "model": raw_model.state_dict(),
                        "optimizer": optimizer.state_dict(), "rng": rng_states,
                        "accumulator": acc_state, "task": task_json, "train": cfg.record(),
                        "task_state": task.state_dict() if hasattr(task, "state_dict") else {}})
                except OutputError as exc:
                    bar.close()
                    kept = (f"; the last good checkpoint (step {saved_step}) is kept and --resume continues "
                            f"from it" if saved_step is not None else "")
                    raise OutputError(f"{exc}{kept}", exc.errno, exc.strerror, exc.filename) from None
                saved_step = step
            _barrier(rt)
    bar.close()
    return TrainResult(model=raw_model, records=records, stopped_early=stopping)


def _write_config(out: Path, task_config: dict, cfg: TrainConfig, rt: Runtime,
                  resumed_from: int | None):
    """config.json through the run record's writer; a resume lists the
    settings it changed with their old values."""
    prov = provenance(device=str(rt.device))
    record = cfg.record()
    resume, changed = None, None
    if resumed_from is not None:
        resume = {"from_step": resumed_from, "provenance": prov, "world_size": rt.world_size}
        stored = _read_stored_config(out / CONFIG_NAME)
        old = stored["train"] if stored else record
        recorded = (RESUMABLE_CHANGES | {"lr_horizon"}) - {"resume", "progress"}
        changed = {k: old.get(k) for k in sorted(recorded) if old.get(k) != record.get(k)}
    runfiles.write_config(out, task_config, record, rt.world_size, prov, resume, changed)
