"""The GPU path in one command: ``python -m experiments.gpu_check --out DIR [--tiny]``.

Phases info, tests, timing and grids (README.md, "The GPU path in one command") each run as a process
(``--phase NAME STATE``) with a deadline inside --budget, writing WORK/phase_<name>.json as they go, so a
phase stopped at its deadline still leaves what it measured; the check writes OUTPUTS to DIR.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch

from mdtheory.cli import OneLineParser, atomic_write_json, check_output_dir, run_cli
from mdtheory.errors import UserError
from mdtheory.provenance import provenance
from mdtheory.runfiles import read_metrics, read_runs

from .. import study
from ..ab_timing import COMPARISONS, compare

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = ("gpu_check.log", "gpu_check_summary.json", "gpu_check_runs.tar.gz")
PHASE_ENDS = {"info": 0.05, "tests": 0.20, "timing": 0.37, "grids": 1.0}  # fractions of the budget
GRACE_S = 15.0  # past its deadline a phase may still be writing what it measured
# the check on a GPU (False) and its --tiny rehearsal on the CPU (True); the timing's models are bench_trainer's
# (tar_s, aggregate_s: seconds kept at the end for the tarball, and for the grids' aggregators)
SIZES = {
    False: dict(gemm=8192, timing_steps=10, compile=True, probe_steps=40, tar_s=15.0, aggregate_s=10.0,
                parity={}, seeds=(0, 1, 2), parity_steps=(200, 20_000),  # the parity paper preset as it is
                # nanoGPT's shakespeare model on BPE-4096 Shakespeare
                lm=dict(tokenizer="bpe", vocab_size=4096, block_size=128, n_layer=6, n_head=6, n_embd=384,
                        batch_size=64, eval_blocks=256, eval_nt=16, lr=1e-3), lm_steps=(100, 6000)),
    True: dict(gemm=256, timing_steps=2, compile=False, probe_steps=4, tar_s=3.0, aggregate_s=3.0,
               parity=dict(n=8, k=2, train_size=64, val_size=64, n_layer=1, n_head=2, n_embd=16, batch_size=16),
               seeds=(0,), parity_steps=(4, 8),
               lm=dict(tokenizer="bpe", vocab_size=300, block_size=16, n_layer=1, n_head=2, n_embd=16,
                       batch_size=4, eval_blocks=4, eval_nt=2, lr=1e-3), lm_steps=(2, 4)),
}


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m experiments.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--out", help="folder for the three result files")
    p.add_argument("--tiny", action="store_true", help="the same phases on the CPU at toy sizes (about a minute)")
    p.add_argument("--budget", type=float, default=None, help="seconds for the whole check (default 420; --tiny 240)")
    p.add_argument("--text-file", default=None, help="LM corpus where Shakespeare's plays are not installed")
    p.add_argument("--workers", type=int, default=None, help="runs trained at once (default: cores - 2, <= 16)")
    p.add_argument("--stack", type=int, default=1, help="parity runs trained together in one process "
                   "(their models stacked and vmapped; 1: one run per process)")
    p.add_argument("--phase", nargs=2, metavar=("NAME", "STATE"), default=None, help="(internal) run one phase")
    args = p.parse_args(argv)
    if args.phase:  # the phase's exit code: 0 unless it failed
        phase = {"info": phase_info, "tests": phase_tests, "timing": phase_timing, "grids": phase_grids}[args.phase[0]]
        return phase(json.loads(Path(args.phase[1]).read_text())) or 0
    budget = args.budget if args.budget is not None else (240.0 if args.tiny else 420.0)
    for bad, message in (
            (not args.out, "--out DIR is required"),
            (args.workers is not None and args.workers < 1, f"--workers must be >= 1, got {args.workers}"),
            (args.stack < 1, f"--stack must be >= 1, got {args.stack}"),
            (not args.tiny and not torch.cuda.is_available(),
             "no CUDA device here: the full check needs a GPU (use --tiny for the CPU rehearsal)"),
            (not 10 <= budget <= 3600, f"--budget must be between 10 and 3600 seconds, got {budget:g}"),
            (args.text_file is not None and not Path(args.text_file).is_file(),
             f"--text-file {args.text_file} is not a file")):
        if bad:
            raise UserError(message)
    out = check_output_dir(args.out, "--out")
    with tempfile.TemporaryDirectory(prefix="gpu_check_", ignore_cleanup_errors=True) as work:
        return check(args, budget, out, Path(work))


def check(args, budget: float, out: Path, work: Path) -> int:
    """The phases one after another, then the summary and the tarball, whatever the phases did."""
    start, mode, s = time.time(), "tiny" if args.tiny else "gpu", SIZES[args.tiny]
    log_file = open(out / OUTPUTS[0], "w", encoding="utf-8")  # written as it comes: a killed check leaves it

    def log(line: str) -> None:
        for stream in (sys.stdout, log_file):
            print(line.rstrip("\n"), file=stream, flush=True)

    deadlines = {name: start + end * budget - (s["tar_s"] if name == "grids" else 0)
                 for name, end in PHASE_ENDS.items()}
    text_file = args.text_file and str(Path(args.text_file).resolve())
    atomic_write_json(work / "state.json", {
        "work": str(work), "tiny": args.tiny, "deadlines": deadlines, "text_file": text_file, "stack": args.stack,
        "workers": args.workers or (2 if args.tiny else max(1, min(16, (os.cpu_count() or 2) - 2)))})
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"OMP_NUM_THREADS": "1"} if args.tiny else {}),
           "MDTHEORY_CACHE_DIR": os.environ.get("MDTHEORY_CACHE_DIR") or str(work / "cache")}
    log(f"gpu_check ({mode}): budget {budget:g} s, text file {text_file}")
    phases = {}
    for name, deadline in deadlines.items():
        left = deadline - time.time()
        if left <= 1:
            phases[name] = {"status": "skipped", "reason": "no time left", "seconds": 0.0}
            log(f"phase {name}: skipped (no time left)")
            continue
        log(f"phase {name}: {left:.0f} s until its deadline")
        code, seconds = run_logged([sys.executable, "-m", "experiments.gpu_check", "--phase", name,
                                    str(work / "state.json")], log, left + GRACE_S, env)
        status = "timeout" if code is None else "ok" if code == 0 else "failed"
        phases[name] = {"status": status, "returncode": code, "seconds": seconds,
                        "deadline_s": round(deadline - start, 1)}
        log(f"phase {name}: {status} in {seconds:.1f} s")
    info, tests, timing, grids = (read_phase(work, name) for name in PHASE_ENDS)
    versions = info.get("info", {})
    summary = {"check": {"mode": mode, "budget_s": budget, "started_unix": round(start, 1),
                         "phase_ends": PHASE_ENDS, "argv": sys.argv[1:]},
               "device": versions.get("device"), "versions": versions, "gemm": info.get("gemm"), "phases": phases,
               "tests": tests, "timing": timing, "parity_grid": grids.get("parity", {}),
               "lm_sweep": grids.get("lm", {}), "files": dict(zip(("log", "summary", "runs"), OUTPUTS)),
               "how_to_read": "python -m experiments.gpu_check.ingest --from DIR (this folder), then make all",
               "provenance": provenance(device=versions.get("device"))}
    pack_runs(work, out / OUTPUTS[2])
    elapsed = summary["check"]["elapsed_s"] = round(time.time() - start, 1)
    atomic_write_json(out / OUTPUTS[1], summary)
    log(f"\n== gpu_check ({mode}) on {summary['device']}: {elapsed:.0f} s of {budget:g} s; phases "
        + ", ".join(f"{n} {p['status']} ({p['seconds']:.0f} s)" for n, p in phases.items()) + "; grids: "
        + ", ".join(f"{k} {g.get('runs_finished', 0)}/{g.get('runs_planned')} runs" for k, g in grids.items()))
    log_file.close()
    return 0 if all(p["status"] == "ok" for p in phases.values()) else 1


def run_logged(cmd: list[str], log, timeout: float, env: dict) -> tuple[int | None, float]:
    """(exit code or None if stopped at ``timeout``, seconds) of ``cmd`` run in a process group of its
    own, its output to ``log``; the group is killed at the end, so no worker outlives it."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)

    def pump():
        for line in proc.stdout:
            log(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        code = None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    reader.join(timeout=5)
    return code, round(time.time() - t0, 1)


def pack_runs(work: Path, dest: Path) -> None:
    """results/{parity,lm} without checkpoints or hidden files (locks, job files) and the phase
    records, as one tarball renamed into place once whole."""
    def keep(member: tarfile.TarInfo):
        name = Path(member.name).name
        return None if name.startswith(".") or name.endswith(".pt") else member  # None: leave it (and below) out

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for kind in ("parity", "lm"):
                if (work / "results" / kind).is_dir():
                    tar.add(work / "results" / kind, arcname=kind, filter=keep)
            for path in sorted(work.glob("phase_*.json")):
                tar.add(path, arcname=f"phases/{path.name}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


# --- the phases, each in a process of its own ----------------------------------------------------

def read_phase(work, name: str) -> dict:
    """What a phase recorded, {} if nothing (yet)."""
    try:
        return json.loads((Path(work) / f"phase_{name}.json").read_text())
    except (OSError, ValueError):
        return {}


def write_phase(state: dict, name: str, payload: dict) -> None:
    atomic_write_json(Path(state["work"]) / f"phase_{name}.json", payload)


def phase_info(state: dict) -> None:
    """Device, versions and measured GEMM rates (the MFU reference)."""
    from torch.utils.benchmark import Timer

    cuda = torch.cuda.is_available()
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda_runtime": torch.version.cuda,
            "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "device": f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(device=props.name, capability=f"{props.major}.{props.minor}",
                    multiprocessors=props.multi_processor_count, memory_gib=round(props.total_memory / 2 ** 30, 1))
        torch.backends.cuda.matmul.allow_tf32 = True  # as the engine sets it
    write_phase(state, "info", {"info": info})  # a phase cut in the GEMM still names the device
    size, gemm = SIZES[state["tiny"]]["gemm"], {}
    for name, dtype in ({"bf16": torch.bfloat16, "tf32": torch.float32} if cuda else {"fp32": torch.float32}).items():
        a, b = (torch.randn(size, size, device="cuda" if cuda else "cpu", dtype=dtype) for _ in range(2))
        timer = Timer("a @ b", globals={"a": a, "b": b}, num_threads=torch.get_num_threads())
        gemm[name] = 2 * size ** 3 / timer.blocked_autorange().median
    reference = next(iter(gemm))
    print(f"device: {info['device']}; torch {info['torch']} (CUDA {info['cuda_runtime']}); "
          + ", ".join(f"{k} GEMM {v / 1e12:.2f} TFLOP/s" for k, v in gemm.items()))
    write_phase(state, "info", {"info": info, "gemm": {
        "size": size, "flops": gemm, "reference": reference, "reference_flops": gemm[reference],
        "method": "median block of products on random data after a warm-up (torch.utils.benchmark, synchronised)"}})


def phase_tests(state: dict) -> int:
    """The tests marked ``gpu`` (skipped without CUDA), run here by pytest; a plugin keeps its counts."""
    import pytest

    files = sorted(str(f.relative_to(REPO)) for f in (REPO / "tests").glob("test_*.py")
                   if "pytest.mark.gpu" in f.read_text(encoding="utf-8", errors="replace"))
    write_phase(state, "tests", {"files": files})

    class Counts:  # pytest's own tally of outcomes, the one its last line prints
        def pytest_terminal_summary(self, terminalreporter):
            write_phase(state, "tests", {"files": files, "counts": {
                k: len(v) for k, v in terminalreporter.stats.items() if k not in ("", "warnings")}})

    code = pytest.main(["-q", "-m", "gpu", "-p", "no:cacheprovider", *files], plugins=[Counts()])
    return 0 if code in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED) else 1


def phase_timing(state: dict) -> None:
    """Interleaved A/B ratios of engine variants on bench_trainer's parity and
    LM configurations (on CUDA: the parity and LM paper presets' models)."""
    from ..bench_trainer import configurations, format_table, stacking_row

    s, deadline, cuda = SIZES[state["tiny"]], state["deadlines"]["timing"], torch.cuda.is_available()
    gemm, flops = read_phase(state["work"], "info").get("gemm") or {}, {}
    configs = configurations(cuda, state["tiny"])
    # compiling comes last: a cold compile may take the rest of the phase
    plan = [(0, "bf16"), (1, "bf16"), (1, "fused"), (0, "stacking")] + (
        [(0, "compile"), (1, "compile")] if s["compile"] else [])
    record = {"rows": [], "mfu_reference": gemm or None, "skipped": [] if s["compile"] else [
        "eager vs compiled: not in --tiny (a CPU compile takes tens of seconds per model)"]}
    for i, name in plan:
        (label, task, batch, _), (title, a, b) = configs[i], COMPARISONS.get(name, ("one by one vs stacked",) * 3)
        until, row = time.monotonic() + deadline - time.time(), None
        if time.time() >= deadline:
            record["skipped"].append(f"{label}: {title}: no time left")
        elif name == "stacking":  # on CUDA the paper preset's transformer (mdtheory.train.stacked)
            row = {"comparison": title, **stacking_row(5, 5 * s["timing_steps"], state["tiny"], cuda, deadline=until)}
        else:
            flops[i] = flops.get(i) or float(task.build_model().flops_per_token(task.tokens_per_sequence))
            row = {"config": label, "comparison": title, **compare(
                task, a, b, batch_size=batch, steps=s["timing_steps"], device="auto", pairs=5,
                flops_per_token=flops[i], deadline=until, peak_flops=gemm.get("reference_flops"))}
        if row:
            record["rows"].append(row)
            print(f"timing {title}:\n{format_table([row], header=False)}")
        write_phase(state, "timing", record)


# A grid is (its report, (``grid(steps, probing)``: its study (a probe: the first ``workers`` runs,
# evaluated twice), ``final(study)``: the study's own aggregator run on what finished, a row per run)).

def parity_grid(s: dict, workers: int, root: Path, text_file: str | None) -> tuple:
    """The parity paper preset's MD windows U[0,0.1..0.4] and the theory's
    U[0,t1*], U[0,1] and OS for each seed, trained by the parity runner."""
    from ..parity.presets import comparison, preset_paper
    from ..parity.run import execute_stack, stack_status, stacks
    from ..parity.summarize import summarize_root

    base = replace(preset_paper()[0], **s["parity"], group="gpu_check")
    specs = comparison(base, s["seeds"], objectives=("md", "os"))  # md_windows: the paper's, t1* and 1

    def grid(steps: int, probing: bool = False) -> study.Study:  # a job trains a stack of runs (--stack)
        jobs = stacks([replace(r, steps=steps, early_stop=not probing, eval_every=max(
            1, steps // (2 if probing else 10))) for r in specs], s["stack"])[:workers if probing else None]
        return study.Study("gpu_check parity grid", jobs, execute_stack, stack_status,
                           lambda root, job: root / "runs" / job.members[0].name, local_gpus=True)

    def final(g: study.Study) -> list[dict]:
        summarize_root(root)
        return [{"run": r.name, **{k: r.final.get(k) for k in ("step", "train_acc", "val_acc")}}
                for r in read_runs(root / "runs")]

    return {"runs_planned": len(specs), "jobs_planned": len(stacks(specs, s["stack"])), "stack": s["stack"],
            "seeds": list(s["seeds"])}, (grid, final)


def lm_grid(s: dict, workers: int, root: Path, text_file: str | None) -> tuple:
    """The LM window sweep (ten windows, U[0,1], the window around the
    predicted t*, one seed), trained as experiments.lm.sweep trains it."""
    from mdtheory.data.corpus import load_corpus
    from mdtheory.data.tokenize import build_tokenizer, encode_corpus

    from ..lm.presets import Preset
    from ..lm.sweep import lm_study, make_jobs, plan, write_outputs

    corpus, m = load_corpus("shakespeare", text_file=text_file), s["lm"]
    encode_corpus(build_tokenizer(m["tokenizer"], corpus, m["vocab_size"]), corpus, m["vocab_size"])  # once here
    root.mkdir(parents=True, exist_ok=True)
    if text_file is None and (REPO / "results" / "lm" / "predicted_t.json").exists():  # the CPU sweep's t*
        shutil.copy(REPO / "results" / "lm" / "predicted_t.json", root / "predicted_t.json")

    def preset(steps: int, eval_every: int = 1) -> Preset:
        return Preset(name="gpu_check", corpus="shakespeare", steps=steps, eval_every=eval_every, seeds=(0,),
                      warmup=min(100, steps // 10), text_file=text_file, **m)

    runs, window = plan(preset(1), root)
    runs.sort(key=lambda r: r.kind == "window")  # U[0,1] and the predicted window first

    def grid(steps: int, probing: bool = False) -> study.Study:
        jobs = make_jobs(preset(steps, max(1, steps // (2 if probing else 4))), runs[:workers if probing else None],
                         "runs/gpu_check", threads=1)
        return lm_study("gpu_check lm sweep", jobs)

    def final(g: study.Study) -> list[dict]:
        rows = write_outputs(g.specs[0].preset, [j.run for j in g.specs], root / "runs" / "gpu_check", root, window)
        return [{k: r[k] for k in ("run", "kind", "t0", "t1", "full_range_test_loss", "full_range_test_loss_se")}
                for r in rows]

    return {"runs_planned": len(runs), "corpus": corpus.name, "corpus_fingerprint": corpus.fingerprint(),
            "text_file": text_file, "predicted_window": window}, (grid, final)


def within(until: float, fn, *args) -> bool:
    """Run ``fn(*args)`` until time ``until``; False if it was cut there. The
    alarm raises KeyboardInterrupt, on which the study runner kills its jobs."""
    signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, until - time.time()))
    try:
        try:
            fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except KeyboardInterrupt:
        return False
    return True


def step_budget(probing: study.Study, root: Path, args, until: float, waves: int, least: int, most: int) -> tuple:
    """(steps per run, the probe's record): the steps that let ``waves`` waves of runs end by 75% of the time
    until ``until``, from ``probing`` (the first wave for a few steps, in at most 40% of that time)."""
    t0 = time.time()
    within(t0 + 0.4 * (until - t0), study.run_study, probing, root, args)
    records = [read_metrics(probing.run_dir(root, spec))[-2:] for spec in probing.specs]
    rates = [(r[1]["elapsed_s"] - r[0]["elapsed_s"]) / (r[1]["step"] - r[0]["step"]) for r in records if len(r) == 2]
    if not rates:
        raise RuntimeError("no probe run evaluated twice in time")
    per_step, probe_steps = statistics.median(rates), probing.specs[0].steps
    startup = max(0.0, time.time() - t0 - probe_steps * per_step)  # per run: the process, data, model
    steps = int((0.75 * (until - time.time()) / waves - startup) / per_step)
    return max(least, min(most, steps)), {"steps": probe_steps, "sec_per_step": per_step, "startup_s": startup}


def phase_grids(state: dict) -> None:
    """The parity grid, then the LM sweep, each through its study's runner ``workers`` runs at a time and
    then its aggregator, for the steps its probe allows; two thirds of the time go to parity."""
    s, workers, work = {**SIZES[state["tiny"]], "stack": state["stack"]}, state["workers"], Path(state["work"])
    end = state["deadlines"]["grids"] - s["aggregate_s"]  # then aggregate what finished
    parser = argparse.ArgumentParser()
    study.add_arguments(parser)
    args = parser.parse_args(["--jobs", str(workers), "--no-progress"])
    report, grids = {}, {}
    for kind, make in (("parity", parity_grid), ("lm", lm_grid)):
        try:
            report[kind], grids[kind] = make(s, workers, work / "results" / kind, state["text_file"])
        except Exception as exc:  # e.g. no corpus for the LM sweep here: the other grid still runs
            report[kind] = {"status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}
    write_phase(state, "grids", report)
    for kind, (grid, final) in grids.items():
        share = 2 / 3 if kind == "parity" and len(grids) == 2 else 1.0
        root, until = work / "results" / kind, time.time() + share * (end - time.time())
        try:
            report[kind]["steps"], report[kind]["probe"] = step_budget(
                grid(s["probe_steps"], probing=True), work / "probes" / kind, args, until,
                -(-report[kind].get("jobs_planned", report[kind]["runs_planned"]) // workers), *s[f"{kind}_steps"])
        except Exception as exc:
            report[kind].update(status="skipped", reason=f"probe failed: {type(exc).__name__}: {exc}")
            continue
        g = grid(report[kind]["steps"])
        write_phase(state, "grids", report)
        print(f"grids: {len(g.specs)} {kind} runs x {report[kind]['steps']} steps, {workers} at once")
        try:
            if not within(until, study.run_study, g, root, args):
                report[kind]["cut"] = "at its deadline"
        except Exception as exc:  # a run failed: the others still count
            report[kind]["error"] = f"{type(exc).__name__}: {exc}"
        left = [r for r in g.specs if g.finished(g.run_dir(root, r), r) is None]  # a stack: all its runs
        report[kind].update(unfinished=[r.name for r in left], runs_finished=report[kind]["runs_planned"] - sum(
            len(getattr(r, "members", (r,))) for r in left))
        try:
            report[kind]["final"] = final(g)
        except Exception as exc:
            report[kind]["summary_error"] = f"{type(exc).__name__}: {exc}"
        write_phase(state, "grids", report)


if __name__ == "__main__":
    sys.exit(run_cli(main))
