"""A run folder: every file a training run keeps, read and written in one place.

A run folder holds ``config.json`` (task config, engine config, world size,
provenance, and one short entry per resume: step, time, git commit),
``metrics.jsonl`` (one record per evaluation), ``ckpt.pt`` (the model and
optimizer state, written and read by ``mdtheory.train.checkpoint``) and, for
runs launched by an experiment runner, ``run.json`` (status and budget).

Reading: ``read_run`` turns a folder into a ``RunRecord``; older layouts are
normalised here and nowhere else, so consumers never guess. ``hold_root``
keeps a results root to one process at a time.

Writing (the trainer, through ``RunFolder``): the folder is locked (flock)
for the whole run; a non-empty folder that holds no run of ours is refused; a
resume must keep the task and settings (``settings_changes``: ``steps`` may
grow if the learning rates already used stay the same) and drops the records
past its checkpoint. A metrics record that cannot be written (a full disk) is
cut off again and stops the run with one line naming the file (an
OutputError); the temporary files a killed writer left behind are removed
when the folder is next opened.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .cli import atomic_write_json, atomic_write_text, write_failed
from .errors import UserError
from .provenance import provenance

CONFIG_NAME, METRICS_NAME, MARKER_NAME = "config.json", "metrics.jsonl", "run.json"
CKPT_NAME = "ckpt.pt"
# settings that may change between a run and its resumption (a change of the
# learning-rate horizon is checked on its own: see _check_lr_curve)
RESUMABLE_CHANGES = {"steps", "lr_decay_steps", "eval_every", "ckpt_every", "out_dir", "resume",
                     "device", "compile", "progress"}
# temporary files written next to a run's outputs (atomic writes):
# ".<name>.<pid>.[random.]tmp", see mdtheory.cli.temp_prefix
OUR_TEMP_PREFIXES = tuple(f".{name}." for name in (CKPT_NAME, CONFIG_NAME, METRICS_NAME))

# An AR run's exact next-token NLL was logged under the MD ELBO's keys (only
# ``eval_kind`` tells them apart); the record gives it its own names.
AR_EVAL_KIND = "ar_exact_nll"
AR_METRIC_NAMES = {"full_range_test_loss": "nll_test", "full_range_test_loss_se": "nll_test_se",
                   "full_range_val_loss": "nll_val", "full_range_val_loss_se": "nll_val_se",
                   "full_range_bits_per_token": "nll_bits_per_token",
                   "full_range_perplexity_bound": "perplexity"}
LOSS_BY_T_PREFIX = "full_range_bin/"
LOSS_BY_T_SE_PREFIX = "full_range_bin_se/"  # its standard error over test sequences


def read_metrics(path: str | Path) -> list[dict]:
    """Records of a ``metrics.jsonl`` (or of the run folder holding one).

    A missing file gives []. Only the last line may be broken (a run killed
    while writing it): it is dropped (``no_records_reason`` says so when it
    was the only one). A broken line anywhere else, a file that is not
    UTF-8, a record whose ``step`` is not an integer >= 0, or steps that do
    not increase (two processes wrote into one run) is a UserError naming
    the file and line, so no later record is ever silently lost or mixed up.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_NAME
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (byte {exc.start}); not a metrics file of this "
                        f"trainer") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    records, previous = [], None
    for pos, (lineno, line) in enumerate(numbered):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            if pos == len(numbered) - 1 and record is None:
                break  # torn last line of a killed run
            raise UserError(f"{path} line {lineno} is not a metrics record; fix or remove it "
                            f"(only a torn last line is dropped)")
        step = record.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise UserError(f"{path} line {lineno}: step {step!r} is not an integer >= 0; not a "
                            f"metrics record of this trainer")
        if previous is not None and step <= previous:
            raise UserError(f"{path} line {lineno}: step {step} does not follow step {previous} "
                            f"(steps must increase: did two processes train into this run?)")
        previous = step
        records.append(record)
    return records


def no_records_reason(path: str | Path) -> str:
    """Why the run folder ``path`` has no metrics record to offer, in words
    (for the aggregators' notes on the folders they skip)."""
    path = Path(path)
    if not (path / CONFIG_NAME).is_file():
        return f"no {CONFIG_NAME}"
    metrics = path / METRICS_NAME
    if not metrics.is_file():
        return f"no {METRICS_NAME}"
    try:
        text = metrics.read_bytes()
    except OSError as exc:
        return f"unreadable {METRICS_NAME} ({exc.strerror or exc})"
    if not text.strip():
        return f"an empty {METRICS_NAME} (stopped before its first evaluation)"
    return f"only a torn line in {METRICS_NAME} (killed while writing its first record)"


def read_json_object(path: Path) -> dict:
    """A JSON object from ``path``, or one UserError line naming it."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        raise UserError(f"cannot read {path}: {exc}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} does not hold a JSON object")
    return value


def read_marker(path: str | Path) -> dict:
    """run.json of the run folder ``path`` (how a runner left it), {} if none."""
    marker = Path(path) / MARKER_NAME
    return read_json_object(marker) if marker.exists() else {}


def _named_metrics(record: dict) -> dict:
    if record.get("eval_kind") != AR_EVAL_KIND:
        return record
    return {AR_METRIC_NAMES.get(key, key): value for key, value in record.items()}


def _window(task: dict) -> tuple[float, float] | None:
    """(t0, t1) of a window-shaped mask-rate law; older configs name only the spec."""
    law = task.get("sampler_law") or {}
    if "t0" in law and "t1" in law:
        return float(law["t0"]), float(law["t1"])
    return spec_window(str(task.get("sampler", "")))


def spec_window(spec: str) -> tuple[float, float] | None:
    """(t0, t1) of a ``--sampler`` spec that is a window ("window:0.3,0.4",
    "stratified:...", "uniform"); None for any other law."""
    if spec.startswith(("window:", "stratified:")):
        t0, t1 = spec.split(":", 1)[1].split(",")
        return float(t0), float(t1)
    return (0.0, 1.0) if spec == "uniform" else None


@dataclass
class RunRecord:
    """One run folder: its settings, its metrics and, if any, its run.json."""
    path: Path
    task: dict
    train: dict
    provenance: dict = field(repr=False)
    metrics: list[dict] = field(repr=False)
    marker: dict = field(default_factory=dict)  # run.json of an experiment runner, {} if none
    world_size: int = 1
    resumes: list = field(default_factory=list, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def objective(self) -> str:
        return self.task.get("objective", "md")

    @property
    def seed(self):
        return self.task.get("seed", self.train.get("seed"))

    @property
    def window(self) -> tuple[float, float] | None:
        """The masked-diffusion training window; None for OS/AR runs and
        for laws that are not windows."""
        return _window(self.task) if self.objective == "md" else None

    @property
    def steps(self) -> int:
        return int(self.metrics[-1]["step"]) if self.metrics else 0

    @property
    def budget(self) -> int | None:
        return self.marker.get("budget", self.train.get("steps"))

    @property
    def status(self) -> str:
        if "status" in self.marker:
            return self.marker["status"]
        return "complete" if self.budget is not None and self.steps >= self.budget else "running"

    @property
    def final(self) -> dict:
        return self.metrics[-1] if self.metrics else {}

    def loss_by_t(self, record: dict | None = None, prefix: str = LOSS_BY_T_PREFIX) -> dict[float, float]:
        """Full-range loss per evaluation t-stratum (centre -> loss) of one
        record (default: the last); ``prefix=LOSS_BY_T_SE_PREFIX`` gives the
        per-stratum standard errors (runs scored before they were logged have
        none)."""
        record = self.final if record is None else record
        return dict(sorted((float(k[len(prefix):]), float(v)) for k, v in record.items()
                           if k.startswith(prefix) and v is not None))


def is_run(path: Path) -> bool:
    return (Path(path) / CONFIG_NAME).is_file() and (Path(path) / METRICS_NAME).is_file()


def read_run(path: str | Path) -> RunRecord:
    """The run in folder ``path``; one UserError line if it is not one."""
    path = Path(path)
    if not is_run(path):
        raise UserError(f"{path} holds no run ({CONFIG_NAME} and {METRICS_NAME} needed)")
    config = read_json_object(path / CONFIG_NAME)
    task, train = config.get("task"), config.get("train")
    if not (isinstance(task, dict) and isinstance(train, dict)):
        raise UserError(f"{path / CONFIG_NAME} is not the config of a run of this trainer "
                        f"(no task and train settings)")
    if task.get("model") == "uniform-attention":  # renamed: a transformer with attention frozen to uniform
        task = {**task, "model": "uniform-attention-transformer"}
    return RunRecord(path=path, task=task, train=train, provenance=config.get("provenance", {}),
                     metrics=[_named_metrics(r) for r in read_metrics(path / METRICS_NAME)],
                     marker=read_marker(path), world_size=int(config.get("world_size", 1)),
                     resumes=config.get("resumes", []))


def read_runs(runs_dir: str | Path, skipped: list | None = None) -> list[RunRecord]:
    """Every run directly under ``runs_dir`` that has evaluated at least once,
    by name. ``skipped``, when given, receives a (folder name, reason) pair
    for every other folder there (``no_records_reason``), so a caller can
    say what it left out; a damaged run is a UserError, never skipped."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    runs = []
    for folder in sorted(d for d in runs_dir.iterdir() if d.is_dir()):
        run = read_run(folder) if is_run(folder) else None
        if run is not None and run.metrics:
            runs.append(run)
        elif skipped is not None and not folder.name.startswith("."):  # .submitit and the like
            skipped.append((folder.name, no_records_reason(folder)))
    return runs


def write_config(path: Path, task: dict, train: dict, world_size: int, provenance: dict,
                 resume: dict | None = None, changed_from: dict | None = None) -> None:
    """config.json of a fresh run (``resume`` None), or the stored one with a
    short entry for ``resume`` (from_step, provenance, world_size) appended:
    the step, time and git commit, plus only those provenance fields (device,
    packages, ...) that differ from the run's first provenance. "train" then
    holds the settings that ran last, and ``changed_from`` the old values of
    the settings this resume changed."""
    path = Path(path) / CONFIG_NAME
    fresh = {"task": task, "train": dict(train), "world_size": world_size, "provenance": provenance}
    if resume is None:
        atomic_write_json(path, fresh)
        return
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
    else:  # config.json was deleted; the checkpoint vouched for the settings
        stored = {**fresh, "config_json_rewritten_at_step": resume["from_step"]}
    now, first = resume["provenance"], stored.get("provenance") or {}
    entry = {"from_step": resume["from_step"], "time": now.get("created_utc"),
             "git_commit": now.get("git_commit")}
    changed_provenance = {k: v for k, v in now.items()
                          if k not in ("created_utc", "git_commit") and first.get(k) != v}
    if changed_provenance:
        entry["provenance_changes"] = changed_provenance
    if changed_from:
        entry["changed_from"] = changed_from
        stored["train"].update({k: train[k] for k in changed_from})
    entry["world_size"] = resume["world_size"]
    stored.setdefault("resumes", []).append(entry)
    atomic_write_json(path, stored)


def write_marker(path: Path, status: str, budget: int, steps_done: int, **details) -> None:
    """run.json: how an experiment runner left the run (its status and budget)."""
    atomic_write_json(Path(path) / MARKER_NAME,
                      {"status": status, "budget": budget, "steps_done": steps_done, **details})


@contextlib.contextmanager
def hold_root(lock_path: str | Path, what: str):
    """Hold ``lock_path`` (an flock on a small file holding our pid) for the
    block: one process per results root. A second process gets a one-line
    UserError naming the holder's pid; the lock goes with the process, so a
    killed holder never leaves a stale one."""
    lock_path = Path(lock_path)
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot lock {what} ({lock_path}): {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise UserError(f"{what} is in use by another process (pid {holder}; lock {lock_path})") from None
            raise UserError(f"cannot lock {what} ({lock_path}): {exc.strerror or exc}") from None
        try:  # the pid is only for the message of a second process: a full disk does not matter
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# writing a run folder: the trainer's side
# ---------------------------------------------------------------------------

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


def _changed_fields(old, new, prefix: str = "") -> list[str]:
    """Dotted names of the entries that differ between two JSON-like values."""
    if isinstance(old, dict) and isinstance(new, dict):
        changed = []
        for key in sorted(set(old) | set(new), key=str):
            changed += _changed_fields(old.get(key), new.get(key), f"{prefix}{key}.")
        return changed
    return [prefix.rstrip(".")] if old != new else []


def settings_changes(stored_task, stored_train, task_json: dict, cfg,
                     resumable_task: frozenset = frozenset()) -> list[str]:
    """Fields of the task (``task.<name>``) and of the training settings
    (``cfg``, a TrainConfig) that differ from a stored run; settings that may
    change on resume are ignored, the task's own included (``resumable_task``:
    e.g. a diagnostic's spacing)."""
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


def _check_lr_curve(old_horizon, done: int, cfg) -> None:
    """The learning rates of the steps already run must be those the new
    settings give, or the resumed run would not equal an uninterrupted one."""
    if cfg.lr_schedule == "constant" or old_horizon is None or old_horizon == cfg.lr_horizon:
        return
    old = replace(cfg, lr_decay_steps=int(old_horizon))
    if any(old.lr_at(s) != cfg.lr_at(s) for s in range(done)):
        raise UserError(f"cannot resume: lr_decay_steps (the cosine horizon) would change from "
                        f"{old_horizon} to {cfg.lr_horizon} after {done} steps already run; pass "
                        f"--lr-decay-steps {old_horizon} to extend training on the same curve")


def check_resume(ckpt: dict, stored: dict | None, task_json: dict, cfg,
                 resumable_task: frozenset = frozenset()) -> None:
    """Refuse a resume whose task or settings differ from the run's, naming
    the fields. The checkpoint's own copy is checked too, so a deleted
    config.json does not let a different run continue."""
    changed = []
    for stored_task, stored_train in ((ckpt.get("task"), ckpt.get("train")),
                                      ((stored or {}).get("task"), (stored or {}).get("train"))):
        changed += [f for f in settings_changes(stored_task, stored_train, task_json, cfg, resumable_task)
                    if f not in changed]
    if changed:
        raise UserError(f"cannot resume: settings differ from the stored run ({', '.join(changed)})")
    done = int(ckpt["step"])
    if cfg.steps < done:
        raise UserError(f"cannot resume: steps={cfg.steps} is below the {done} steps already run")
    _check_lr_curve(_stored_lr_horizon(ckpt, stored), done, cfg)


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


def remove_stale_temps(out: Path) -> list[str]:
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


def read_stored_config(path: Path) -> dict | None:
    """config.json of a run of ours, None if there is none; anything else
    there is one UserError line."""
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


class RunFolder:
    """The run folder ``path`` as the trainer writes it. ``open`` locks it and
    decides how the run starts (every refusal happens there, before anything
    in the folder changes); ``start`` writes the config and cuts the metrics
    log back to the checkpoint; ``append_metrics`` adds one record;
    ``release`` drops the lock (it also goes with the process)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_path = self.path / CONFIG_NAME
        self.ckpt_path = self.path / CKPT_NAME
        self.metrics = MetricsLog(self.path / METRICS_NAME)
        self.fd: int | None = None

    def lock(self) -> None:
        """Create the folder if needed and lock it for this process (flock on
        the directory itself, so nothing is added to the folder)."""
        out = self.path
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
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def open(self, task_json: dict, cfg, load_checkpoint: Callable[[Path], dict],
             resumable_task: frozenset = frozenset()) -> dict | None:
        """Lock the folder and return the checkpoint to resume from (read with
        ``load_checkpoint``), or None for a fresh start; a refusal releases
        the lock and changes nothing."""
        self.lock()
        try:
            stored = read_stored_config(self.config_path)
            ckpt = None
            if self.ckpt_path.exists():
                ckpt = self.resume_check(stored, task_json, cfg, load_checkpoint, resumable_task)
            elif stored is None:
                self._check_empty()
            else:
                self._check_unstarted(stored, task_json, cfg, resumable_task)
            remove_stale_temps(self.path)
            return ckpt
        except BaseException:
            self.release()
            raise

    def resume_check(self, stored: dict | None, task_json: dict, cfg, load_checkpoint,
                     resumable_task: frozenset = frozenset()) -> dict:
        """The checkpoint of a run that ``cfg`` may resume, or a UserError."""
        if not cfg.resume:
            raise UserError(f"{self.path} already holds a run; pass --resume to continue it "
                            f"or choose another --out")
        ckpt = load_checkpoint(self.ckpt_path)
        check_resume(ckpt, stored, task_json, cfg, resumable_task)
        read_metrics(self.metrics.path)  # a damaged file is refused before anything is written
        return ckpt

    def _check_empty(self) -> None:
        """A folder without config.json must hold nothing but our temporaries."""
        others = sorted(p.name for p in self.path.iterdir() if not p.name.startswith(OUR_TEMP_PREFIXES))
        if others:
            raise UserError(f"--out {self.path} is not empty ({', '.join(others[:3])}"
                            f"{', ...' if len(others) > 3 else ''}) and holds no run of this "
                            f"trainer; choose an empty or new folder")

    def _check_unstarted(self, stored: dict, task_json: dict, cfg, resumable_task: frozenset) -> None:
        """A run of ours that stopped before its first checkpoint: the same
        command starts it again (its records will be the same); others are refused."""
        changed = settings_changes(stored["task"], stored["train"], task_json, cfg, resumable_task)
        same_command = RESUMABLE_CHANGES - {"resume", "progress", "out_dir", "device", "compile"}
        changed += [k for k in sorted(same_command) if stored["train"].get(k) != cfg.record().get(k)]
        if changed:
            raise UserError(f"{self.path} holds a run with other settings ({', '.join(changed)}) that "
                            f"stopped before its first checkpoint; repeat its command or choose "
                            f"another --out")

    def start(self, task_config: dict, cfg, world_size: int, device: str,
              resumed_from: int | None) -> None:
        """Cut metrics.jsonl back to the checkpoint's step (empty it for a
        fresh start) and write config.json."""
        self.metrics.truncate_after(resumed_from if resumed_from is not None else -1)
        self.write_config(task_config, cfg, world_size, device, resumed_from)

    def write_config(self, task_config: dict, cfg, world_size: int, device: str,
                     resumed_from: int | None) -> None:
        """config.json through ``write_config``; a resume lists the settings it
        changed with their old values."""
        prov = provenance(device=device)
        record = cfg.record()
        resume, changed = None, None
        if resumed_from is not None:
            resume = {"from_step": resumed_from, "provenance": prov, "world_size": world_size}
            stored = read_stored_config(self.config_path)
            old = stored["train"] if stored else record
            recorded = (RESUMABLE_CHANGES | {"lr_horizon"}) - {"resume", "progress"}
            changed = {k: old.get(k) for k in sorted(recorded) if old.get(k) != record.get(k)}
        write_config(self.path, task_config, record, world_size, prov, resume, changed)

    def append_metrics(self, record: dict) -> None:
        self.metrics.append(record)
