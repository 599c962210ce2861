"""The GPU check's phases, each run as ``python -m experiments.gpu_check --phase NAME STATE``.

Each writes WORK/phase_<name>.json as it goes, so a phase stopped at its
deadline still leaves what it measured.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from mdtheory.cli import atomic_write_json
from mdtheory.runfiles import read_metrics, read_runs

from .. import study
from ..ab_timing import COMPARISONS, compare, gemm_rate, timing_line

REPO = Path(__file__).resolve().parents[2]
# the check on a GPU (False) and its --tiny rehearsal on the CPU (True); the timing's models are bench_trainer's
SIZES = {
    False: dict(gemm=8192, timing_steps=10, compile=True, probe_steps=40,
                parity={}, seeds=(0, 1, 2), parity_steps=(200, 20_000),  # the parity paper preset as it is
                # nanoGPT's shakespeare model on BPE-4096 Shakespeare
                lm=dict(tokenizer="bpe", vocab_size=4096, block_size=128, n_layer=6, n_head=6, n_embd=384,
                        batch_size=64, eval_blocks=256, eval_nt=16, lr=1e-3), lm_steps=(100, 6000)),
    True: dict(gemm=256, timing_steps=2, compile=False, probe_steps=4,
               parity=dict(n=8, k=2, train_size=64, val_size=64, n_layer=1, n_head=2, n_embd=16, batch_size=16),
               seeds=(0,), parity_steps=(4, 8),
               lm=dict(tokenizer="bpe", vocab_size=300, block_size=16, n_layer=1, n_head=2, n_embd=16,
                       batch_size=4, eval_blocks=4, eval_nt=2, lr=1e-3), lm_steps=(2, 4)),
}


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
    cuda = torch.cuda.is_available()
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda_runtime": torch.version.cuda,
            "cpu_count": os.cpu_count(), "platform": platform.platform()}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(device=props.name, capability=f"{props.major}.{props.minor}",
                    multiprocessors=props.multi_processor_count, memory_gib=round(props.total_memory / 2 ** 30, 1))
        torch.backends.cuda.matmul.allow_tf32 = True  # as the engine sets it
    else:
        info["device"] = f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"
    write_phase(state, "info", {"info": info})
    size = SIZES[state["tiny"]]["gemm"]
    dtypes = {"bf16": torch.bfloat16, "tf32": torch.float32} if cuda else {"fp32": torch.float32}
    gemm = {name: gemm_rate(torch.device("cuda" if cuda else "cpu"), size, dtype) for name, dtype in dtypes.items()}
    reference = next(iter(gemm))
    print(f"device: {info['device']}; torch {info['torch']} (CUDA {info['cuda_runtime']}); "
        + ", ".join(f"{k} GEMM {v / 1e12:.2f} TFLOP/s" for k, v in gemm.items()))
    write_phase(state, "info", {"info": info, "gemm": {
        "size": size, "flops": gemm, "reference": reference, "reference_flops": gemm[reference],
        "method": "median of 10 products on random data after 2 warm-ups, device synchronised"}})


def phase_timing(state: dict) -> None:
    """Interleaved A/B ratios of engine variants on bench_trainer's parity and
    LM configurations (on CUDA: the parity and LM paper presets' models)."""
    from ..bench_trainer import configurations

    s, deadline = SIZES[state["tiny"]], state["deadlines"]["timing"]
    gemm, flops = read_phase(state["work"], "info").get("gemm") or {}, {}
    configs = configurations(torch.cuda.is_available(), state["tiny"])
    # compiling comes last: a cold compile may take the rest of the phase
    plan = [(0, "bf16"), (1, "bf16"), (1, "fused")] + ([(0, "compile"), (1, "compile")] if s["compile"] else [])
    record = {"rows": [], "mfu_reference": gemm or None, "skipped": [] if s["compile"] else [
        "eager vs compiled: not in --tiny (a CPU compile takes tens of seconds per model)"]}
    for i, name in plan:
        (label, task, batch, _), (title, a, b) = configs[i], COMPARISONS[name]
        if time.time() >= deadline:
            record["skipped"].append(f"{label}: {title}: no time left")
            continue
        flops[i] = flops.get(i) or float(task.build_model().flops_per_token(task.tokens_per_sequence))
        record["rows"].append({"config": label, "comparison": title, **compare(
            task, a, b, batch_size=batch, steps=s["timing_steps"], device="auto", pairs=5, flops_per_token=flops[i],
            deadline=time.monotonic() + deadline - time.time(), peak_flops=gemm.get("reference_flops"))})
        print(f"timing {title}: {timing_line(record['rows'][-1])}")
        write_phase(state, "timing", record)
    write_phase(state, "timing", record)


class Deadline(BaseException):
    """Raised into the study runner at a deadline: it kills its jobs on the way out."""


def within(until: float, fn, *args) -> bool:
    """Run ``fn(*args)`` until time ``until``; False if it was cut there."""
    def ring(signum, frame):
        raise Deadline

    signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, until - time.time()))
    try:
        try:
            fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except Deadline:
        return False
    return True


def parity_grid(s: dict, workers: int, root: Path, text_file: str | None) -> tuple:
    """The parity paper preset's MD windows U[0,0.1..0.4] and the theory's
    U[0,t1*], U[0,1] and OS for each seed, trained by the parity runner;
    returns (its report, ``grid(steps, probing)``: the study)."""
    from mdtheory.theory.numeric import best_t1_given_t0_zero

    from ..parity.presets import preset_paper
    from ..parity.run import execute, run_status

    base = replace(preset_paper()[0], **s["parity"], group="gpu_check")
    t1s = (0.1, 0.2, 0.3, 0.4, round(best_t1_given_t0_zero(base.k), 3), 1.0)
    specs = [spec for seed in s["seeds"] for spec in [replace(base, t0=0.0, t1=t1, seed=seed) for t1 in t1s]
             + [replace(base, objective="os", t0=None, t1=None, seed=seed)]]

    def grid(steps: int, probing: bool = False) -> study.Study:  # a probe trains one run per slot
        runs = [replace(specs[i % len(specs)], seed=100 + i) for i in range(workers)] if probing else specs
        return study.Study("gpu_check parity grid", [replace(r, steps=steps, early_stop=not probing, eval_every=max(
            1, steps // (2 if probing else 10))) for r in runs], execute, run_status, local_gpus=True)

    return {"runs_planned": len(specs), "seeds": list(s["seeds"])}, grid


def lm_grid(s: dict, workers: int, root: Path, text_file: str | None) -> tuple:
    """The LM window sweep (ten windows, U[0,1], the window around the
    predicted t*, one seed), trained as experiments.lm.sweep trains it."""
    from mdtheory.data.corpus import load_corpus
    from mdtheory.data.tokenize import build_tokenizer, encode_corpus

    from ..lm.presets import Preset
    from ..lm.sweep import lm_study, make_jobs, plan

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
        jobs = make_jobs(preset(steps, max(1, steps // (2 if probing else 4))), runs[:workers] if probing else runs,
                         "runs/gpu_check", threads=1)
        return lm_study("gpu_check lm sweep", jobs)

    return {"runs_planned": len(runs), "corpus": corpus.name, "corpus_fingerprint": corpus.fingerprint(),
            "text_file": text_file, "predicted_window": window}, grid


def probe(grid: study.Study, root: Path, args, until: float) -> tuple[float, float]:
    """(seconds per step, start-up seconds per run) with every slot busy."""
    t0 = time.time()
    within(until, study.run_study, grid, root, args)
    records = [read_metrics(grid.run_dir(root, spec))[-2:] for spec in grid.specs]
    rates = [(r[1]["elapsed_s"] - r[0]["elapsed_s"]) / (r[1]["step"] - r[0]["step"]) for r in records if len(r) == 2]
    if not rates:
        raise RuntimeError("no probe run evaluated twice in time")
    per_step = statistics.median(rates)
    return per_step, max(0.0, time.time() - t0 - grid.specs[0].steps * per_step)


def phase_grids(state: dict) -> None:
    """The parity grid, then the LM sweep, each through its study's runner
    ``workers`` runs at a time; a probe of every slot sets the step budgets
    (two thirds of the time to parity, one third to the LM sweep)."""
    s, workers, work = SIZES[state["tiny"]], state["workers"], Path(state["work"])
    end = state["deadlines"]["grids"] - state["aggregate_s"]  # then aggregate what finished
    roots, report, grids, trained = {k: work / "results" / k for k in ("parity", "lm")}, {}, {}, {}
    for kind, make in (("parity", parity_grid), ("lm", lm_grid)):
        try:
            report[kind], grids[kind] = make(s, workers, roots[kind], state["text_file"])
        except Exception as exc:  # e.g. no corpus for the LM sweep here: the other grid still runs
            report[kind] = {"status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}
    write_phase(state, "grids", report)
    parser = argparse.ArgumentParser()
    study.add_arguments(parser)
    args, n, rates = parser.parse_args(["--jobs", str(workers), "--no-progress"]), s["probe_steps"], {}
    until = time.time() + 0.4 * (end - time.time())  # the probes may take 40% of the time
    for kind, grid in grids.items():
        try:
            rates[kind] = probe(grid(n, probing=True), work / "probes" / kind, args, until)
        except Exception as exc:
            report[kind].update(status="skipped", reason=f"probe failed: {type(exc).__name__}: {exc}")
    report["probe"] = {"steps": n, "workers": workers, "sec_per_step": {k: r[0] for k, r in rates.items()},
                       "startup_s": {k: r[1] for k, r in rates.items()}}
    shutil.rmtree(work / "probes", ignore_errors=True)
    for kind, (per_step, startup) in rates.items():
        left, share = end - time.time(), 2 / 3 if kind == "parity" and len(rates) == 2 else 1.0
        waves, (least, most) = -(-report[kind]["runs_planned"] // workers), s[f"{kind}_steps"]
        steps = max(least, min(most, int((0.75 * share * left / waves - startup) / per_step)))
        g = trained[kind] = grids[kind](steps)
        report[kind]["steps"] = steps
        write_phase(state, "grids", report)
        print(f"grids: {len(g.specs)} {kind} runs x {steps} steps, {workers} at once")
        try:
            if not within(time.time() + share * left, study.run_study, g, roots[kind], args):
                report[kind]["cut"] = "at its deadline"
        except Exception as exc:  # a run failed: the others still count
            report[kind]["error"] = f"{type(exc).__name__}: {exc}"
        unfinished = [r.name for r in g.specs if g.finished(g.run_dir(roots[kind], r), r) is None]
        report[kind].update(unfinished=unfinished, runs_finished=len(g.specs) - len(unfinished))
        write_phase(state, "grids", report)
    aggregate(report, roots, trained)
    write_phase(state, "grids", report)


def aggregate(report: dict, roots: dict, trained: dict) -> None:
    """The CPU studies' own summaries of what finished."""
    from ..lm.sweep import write_outputs
    from ..parity.summarize import summarize_root

    if "parity" in trained:
        try:
            summarize_root(roots["parity"])
            report["parity"]["final"] = [{"run": r.name, **{k: r.final.get(k) for k in ("step", "train_acc",
                                         "val_acc")}} for r in read_runs(roots["parity"] / "runs")]
        except Exception as exc:
            report["parity"]["summary_error"] = f"{type(exc).__name__}: {exc}"
    if "lm" in trained:
        jobs = trained["lm"].specs
        try:
            rows = write_outputs(jobs[0].preset, [j.run for j in jobs], roots["lm"] / "runs" / "gpu_check",
                                 roots["lm"], report["lm"]["predicted_window"])
            report["lm"]["final"] = [{k: r[k] for k in ("run", "kind", "t0", "t1", "full_range_test_loss",
                                                        "full_range_test_loss_se")} for r in rows]
        except Exception as exc:
            report["lm"]["summary_error"] = f"{type(exc).__name__}: {exc}"


def run_phase(name: str, state_path: str) -> int:
    {"info": phase_info, "timing": phase_timing, "grids": phase_grids}[name](json.loads(Path(state_path).read_text()))
    return 0
