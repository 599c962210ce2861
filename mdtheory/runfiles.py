"""What a training run writes, read and written in one place.

A run folder holds ``config.json`` (task config, engine config, world size,
provenance, resumes), ``metrics.jsonl`` (one record per evaluation) and, for
runs launched by an experiment runner, ``run.json`` (status and budget).
``read_run`` turns a folder into a ``RunRecord``; older layouts are
normalised here and nowhere else, so consumers never guess. ``hold_root``
keeps a results root to one process at a time.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .cli import atomic_write_json
from .errors import UserError

CONFIG_NAME, METRICS_NAME, MARKER_NAME = "config.json", "metrics.jsonl", "run.json"

# An AR run's exact next-token NLL was logged under the MD ELBO's keys (only
# ``eval_kind`` tells them apart); the record gives it its own names.
AR_EVAL_KIND = "ar_exact_nll"
AR_METRIC_NAMES = {"full_range_test_loss": "nll_test", "full_range_test_loss_se": "nll_test_se",
                   "full_range_val_loss": "nll_val", "full_range_val_loss_se": "nll_val_se",
                   "full_range_bits_per_token": "nll_bits_per_token",
                   "full_range_perplexity_bound": "perplexity"}
LOSS_BY_T_PREFIX = "full_range_bin/"


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

    def loss_by_t(self, record: dict | None = None) -> dict[float, float]:
        """Full-range loss per evaluation t-stratum (centre -> loss) of one
        record (default: the last)."""
        record = self.final if record is None else record
        return dict(sorted((float(k[len(LOSS_BY_T_PREFIX):]), float(v)) for k, v in record.items()
                           if k.startswith(LOSS_BY_T_PREFIX) and v is not None))


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
