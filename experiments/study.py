"""One runner for every study: skip, resume, dispatch through submitit.

A study is a list of run specs (each with a ``name``; its folder is
ROOT/runs/<name> unless the study's ``folder`` function says otherwise), a
function that trains one spec into ROOT (resuming what is there) and returns
its status, and a function that says whether a spec is already finished.
``run_study`` then

* holds ROOT for this process (one runner per results root, a lock file);
* skips finished runs, so a repeated command only does what is left, and
  the training loop resumes a killed run from its last checkpoint;
* dispatches the rest through submitit: ``--executor local`` runs them as
  subprocesses of this machine, ``--jobs`` at a time, under one tqdm bar
  with an ETA (a study's ``after_each`` runs here as each one ends, e.g.
  to refresh its tables); ``--executor slurm`` submits one SLURM job array
  (submitit's AutoExecutor; ``--partition``, ``--time``, ``--gpus-per-run``,
  ``--cpus-per-run``, ``--array-parallelism``) and returns: run the same
  command again later to see what finished (finished runs are skipped, so
  it resubmits only what is left; while the array is still running, wait
  for it first: a run submitted twice is refused by its run-folder lock,
  which wastes the second allocation).

A caller that writes files of its own under ROOT around the runs holds
ROOT itself and passes ``hold=False``. Local jobs get no time limit unless
``--time`` is given, and see no GPU unless the study sets ``local_gpus``
(then they see the GPUs this process sees).

Job results are never unpickled: a run's outcome is read from its run
folder (the study's ``finished`` function), and a job that ended without one
is reported with the last line of its log. submitit's job files go to
ROOT/.submitit/.
"""
from __future__ import annotations

import argparse
import contextlib
import fnmatch
import os
import shlex
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

from mdtheory.errors import UserError
from mdtheory.runfiles import hold_root

EXECUTORS = ("local", "slurm")
POLL_S = 1.0
SLURM_TIME_MIN = 60             # --time when not given, on SLURM
LOCAL_TIME_MIN = 60 * 24 * 365  # none given locally: no limit (submitit's local default is 2 minutes)


@dataclass
class Study:
    name: str
    specs: Sequence                       # objects with a .name (their run folder) and .steps (the budget)
    execute: Callable[[object, str], tuple[str, str]]   # (spec, root) -> (name, status); picklable
    finished: Callable[[Path, object], str | None]      # (run folder, spec) -> status if nothing is left
    folder: Callable[[Path, object], Path] | None = None  # (root, spec) -> run folder; default ROOT/runs/<name>
    after_each: Callable[[], None] | None = None          # called here as each local run ends
    local_gpus: bool = False                              # --executor local: jobs see this process's GPUs

    def run_dir(self, root: Path, spec) -> Path:
        """Where ``spec``'s run lives under ROOT."""
        return self.folder(root, spec) if self.folder else root / "runs" / spec.name


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The runner's flags, the same for every study."""
    p.add_argument("--only", default=None, help="glob on run names (a plain word matches anywhere)")
    p.add_argument("--list", action="store_true", help="print the run names and exit")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time on this machine (--executor local)")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: subprocesses here; slurm: one SLURM job array through submitit")
    p.add_argument("--partition", default=None, help="SLURM partition")
    p.add_argument("--time", type=int, default=None,
                   help=f"time limit per run, minutes (SLURM: default {SLURM_TIME_MIN}; local: none unless given)")
    p.add_argument("--gpus-per-run", type=int, default=0, help="SLURM GPUs per run")
    p.add_argument("--cpus-per-run", type=int, default=1, help="SLURM CPUs per run")
    p.add_argument("--array-parallelism", type=int, default=64, help="SLURM array tasks running at once")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (it is shown only on a terminal anyway)")


def check_arguments(args) -> None:
    for flag, value, least in (("--jobs", args.jobs, 1), ("--time", args.time, 1),
                               ("--gpus-per-run", args.gpus_per_run, 0), ("--cpus-per-run", args.cpus_per_run, 1),
                               ("--array-parallelism", args.array_parallelism, 1)):
        if value is not None and value < least:
            raise UserError(f"{flag} must be >= {least}, got {value}")


def select(specs: Sequence, only: str | None) -> list:
    """The specs whose name matches the glob ``only`` (a plain word: anywhere)."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UserError("two runs of the study share a folder name")
    if not only:
        return list(specs)
    pattern = only if any(ch in only for ch in "*?[") else f"*{only}*"
    return [s for s in specs if fnmatch.fnmatch(s.name, pattern)]


def make_executor(args, folder: Path, local_gpus: bool = False):
    """submitit's AutoExecutor for --executor, with the run's resources.
    submitit's local executor hides every GPU from its jobs; ``local_gpus``
    hands them this process's CUDA_VISIBLE_DEVICES instead."""
    import submitit

    try:
        executor = submitit.AutoExecutor(folder=str(folder), cluster=args.executor)
    except RuntimeError as exc:  # e.g. no srun: not a SLURM machine
        raise UserError(f"--executor {args.executor}: {exc}") from None
    limit = args.time or (SLURM_TIME_MIN if args.executor == "slurm" else LOCAL_TIME_MIN)
    params = dict(timeout_min=limit, cpus_per_task=args.cpus_per_run, name="mdtheory")
    if args.executor == "slurm":
        params.update(slurm_array_parallelism=args.array_parallelism, gpus_per_node=args.gpus_per_run)
        if args.partition:
            params["slurm_partition"] = args.partition
    elif local_gpus:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        params["local_setup"] = ["unset CUDA_VISIBLE_DEVICES" if visible is None
                                 else f"export CUDA_VISIBLE_DEVICES={shlex.quote(visible)}"]
    executor.update_parameters(**params)
    return executor


def _log_tail(job) -> str:
    """The last non-empty line of a job's logs (submitit writes them as text)."""
    for read in (job.stderr, job.stdout):
        try:
            text = read() or ""
        except OSError:
            continue
        lines = [line for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1].strip()
    return "no log"


def selected(study: Study, args) -> list:
    """The runs this call is about, after checking the runner's flags: a
    caller checks them before it writes anything of its own."""
    check_arguments(args)
    specs = select(study.specs, args.only)
    if not specs:
        raise UserError(f"no run of {study.name!r} matches {args.only!r}")
    return specs


def run_study(study: Study, root: str | Path, args, hold: bool = True) -> dict[str, str]:
    """Train every selected run of ``study`` under ROOT; returns {name: status}.
    ``hold=False``: the caller already holds ROOT (see ``hold_root``)."""
    root = Path(root)
    specs = selected(study, args)
    if args.list:
        print("\n".join(f"{study.run_dir(root, s)}  ({s.steps} steps)" for s in specs))
        return {}
    runs_dir = Path(os.path.commonpath([study.run_dir(root, s).parent for s in specs]))
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. ROOT names a file, or a read-only place
        raise UserError(f"cannot use {runs_dir} for the runs: {exc.strerror or exc}") from None
    with hold_root(root / ".lock", f"results root {root}") if hold else contextlib.nullcontext():
        statuses, todo = {}, []
        for spec in specs:
            status = study.finished(study.run_dir(root, spec), spec)
            if status is None:
                todo.append(spec)
            else:
                statuses[spec.name] = f"{status} (skipped)"
        if todo:
            executor = make_executor(args, root / ".submitit", study.local_gpus)
            if args.executor == "slurm":
                statuses.update(_submit_array(executor, study, todo, root))
            else:
                statuses.update(_run_local(executor, study, todo, root, args, len(specs)))
    counts = Counter(statuses.values())
    print(f"{len(specs)} runs under {runs_dir}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return statuses


def _submit_array(executor, study: Study, todo: list, root: Path) -> dict[str, str]:
    """One SLURM job array of the runs left; returns without waiting."""
    with executor.batch():
        jobs = [executor.submit(study.execute, spec, str(root)) for spec in todo]
    array = jobs[0].job_id.split("_")[0]
    print(f"submitted {len(jobs)} runs as SLURM job array {array} (logs in {root / '.submitit'}); "
          f"run the same command again to see what finished")
    return {spec.name: "submitted" for spec in todo}


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _terminate_tree(job) -> None:
    """Kill a local job's controller and everything under it. submitit's own
    cancel (SIGINT to the controller) leaves the training process running
    and its run folder locked, and submitit's job process ignores SIGTERM
    (it keeps that for preemption), so this sends SIGKILL: the run resumes
    from its last checkpoint (written atomically) next time."""
    process = getattr(job, "_process", None)
    if process is None:
        job.cancel(check=False)
        return
    # a signal sent to the whole process group may already have ended the
    # controller, leaving its children with init as parent: they still name
    # the job's folder on their command line
    for pid in {*_descendants(process.pid), process.pid, *_naming(str(job.paths.folder))}:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _naming(text: str) -> list[int]:
    """Other processes whose command line contains ``text`` (from /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace") and int(cmdline.parent.name) != os.getpid():
                found.append(int(cmdline.parent.name))
        except (OSError, ValueError):
            continue
    return found


def _wait_gone(job, timeout_s: float = 30.0) -> None:
    """Wait until a cancelled local job has exited (its run folder's lock is free)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not job.done():
        time.sleep(0.1)


def _run_local(executor, study: Study, todo: list, root: Path, args, total: int) -> dict[str, str]:
    """``--jobs`` subprocesses at a time; a finished job's status is read
    from its run folder."""
    bar = tqdm(total=total, initial=total - len(todo), desc=study.name, unit="run",
               disable=None if args.progress else True, dynamic_ncols=True)
    statuses, waiting, running = {}, list(todo), {}

    def stop(signum, frame):  # a SIGTERM ends the runner like Ctrl-C: its jobs are stopped too
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
    try:
        while waiting or running:
            while waiting and len(running) < args.jobs:
                spec = waiting.pop(0)
                running[spec.name] = (spec, executor.submit(study.execute, spec, str(root)))
            time.sleep(POLL_S)
            for name, (spec, job) in list(running.items()):
                if not job.done():
                    continue
                del running[name]
                status = study.finished(study.run_dir(root, spec), spec)
                statuses[name] = status or f"failed: {_log_tail(job)}"
                bar.set_postfix_str(name, refresh=False)
                bar.update(1)
                if study.after_each is not None:
                    study.after_each()
    except BaseException:
        for _, job in running.values():  # Ctrl-C or a signal: stop the children too (they resume later)
            _terminate_tree(job)
        for _, job in running.values():
            _wait_gone(job)
        raise
    finally:
        bar.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    failed = [f"{n}: {s[len('failed: '):]}" for n, s in statuses.items() if s.startswith("failed")]
    if failed:
        raise UserError(f"{len(failed)} run(s) failed, first {failed[0]}")
    return statuses
