"""The phases of the GPU check, each run in its own process by __main__.py.

Every phase reads the shared state file (sizes, deadlines, folders), does its
work through the project's own code (engine, presets, parity runner, sweep
outputs) and writes ``WORK/phase_<name>.json`` as it goes, so a phase killed
at its deadline still leaves what it had measured.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import torch

from mdtheory.cli import atomic_write_json
from mdtheory.errors import UserError

from ..ab_timing import COMPARISONS, compare, gemm_rate, timing_line

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sizes:
    """Everything that differs between the GPU check and its --tiny rehearsal."""
    gemm_size: int
    # timing: parity model, LM model (random tokens, the LM paper preset's shape)
    timing_parity: dict
    timing_parity_batch: int
    timing_lm: dict
    timing_lm_batch: int
    timing_steps: int
    timing_pairs: int
    timing_compile: bool
    # parity grid
    parity_base: dict            # RunSpec fields
    parity_seeds: tuple
    parity_steps: tuple          # (min, max) step budget
    # LM window sweep
    lm_model: dict               # Preset fields
    lm_steps: tuple              # (min, max)
    probe_steps: int
    workers: int


def sizes_for(tiny: bool, workers: int | None = None) -> Sizes:
    cores = os.cpu_count() or 2
    if tiny:
        return Sizes(
            gemm_size=256,
            timing_parity=dict(n=8, k=2, train_size=64, n_layer=1, n_head=2, n_embd=16), timing_parity_batch=16,
            timing_lm=dict(vocab_size=64, n_layer=1, n_head=2, n_embd=16, block_size=16), timing_lm_batch=8,
            timing_steps=2, timing_pairs=5, timing_compile=False,
            parity_base=dict(n=8, k=2, train_size=64, val_size=64, n_layer=1, n_head=2, n_embd=16,
                             batch_size=16),
            parity_seeds=(0,), parity_steps=(4, 8),
            lm_model=dict(tokenizer="bpe", vocab_size=300, block_size=16, n_layer=1, n_head=2, n_embd=16,
                          batch_size=4, eval_blocks=4, eval_nt=2, lr=1e-3),
            lm_steps=(2, 4), probe_steps=4, workers=workers or 2)
    return Sizes(
        gemm_size=8192,
        # the parity `paper` preset's model and batch; the LM `paper` preset's model
        # (10 layers, width 640, block 150, 32k vocabulary) on random tokens
        timing_parity=dict(n=20, k=6, train_size=5000, n_layer=6, n_head=6, n_embd=384), timing_parity_batch=256,
        timing_lm=dict(vocab_size=32768, n_layer=10, n_head=10, n_embd=640, block_size=150), timing_lm_batch=64,
        timing_steps=10, timing_pairs=5, timing_compile=True,
        parity_base={},  # the paper preset as it is
        parity_seeds=(0, 1, 2), parity_steps=(200, 20_000),
        # nanoGPT's shakespeare size on BPE-4096 Shakespeare
        lm_model=dict(tokenizer="bpe", vocab_size=4096, block_size=128, n_layer=6, n_head=6, n_embd=384,
                      batch_size=64, eval_blocks=256, eval_nt=16, lr=1e-3),
        lm_steps=(100, 6000), probe_steps=40, workers=workers or max(1, min(16, cores - 2)))


def read_phase(work, name: str) -> dict:
    """What a phase recorded in WORK/phase_<name>.json, {} if nothing (yet)."""
    try:
        return json.loads((Path(work) / f"phase_{name}.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def write_phase(state: dict, name: str, payload: dict) -> None:
    atomic_write_json(Path(state["work"]) / f"phase_{name}.json", payload)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- phase: info (device, versions, GEMM rates) ------------------------------

def phase_info(state: dict) -> None:
    sizes = Sizes(**state["sizes"])
    cuda = torch.cuda.is_available()
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cuda_runtime": torch.version.cuda, "cpu_count": os.cpu_count(),
            "platform": platform.platform()}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(device=torch.cuda.get_device_name(0), capability=f"{props.major}.{props.minor}",
                    multiprocessors=props.multi_processor_count,
                    memory_gib=round(props.total_memory / 2 ** 30, 1),
                    cudnn=torch.backends.cudnn.version())
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            info["nvidia_smi"] = smi.stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            info["nvidia_smi"] = f"unavailable ({type(exc).__name__})"
    else:
        info["device"] = f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"
    write_phase(state, "info", {"info": info})
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True  # as the engine sets it
    dtypes = {"bf16": torch.bfloat16, "tf32": torch.float32} if cuda else {"fp32": torch.float32}
    gemm = {name: gemm_rate(torch.device("cuda" if cuda else "cpu"), sizes.gemm_size, dtype)
            for name, dtype in dtypes.items()}
    reference = next(iter(gemm))
    gemm_info = {"size": sizes.gemm_size, "flops": gemm, "reference": reference,
                 "reference_flops": gemm[reference],
                 "method": "median of 10 products on random data after 2 warm-ups, device synchronised"}
    log(f"device: {info['device']}; torch {info['torch']} (CUDA {info['cuda_runtime']}); "
        + ", ".join(f"{k} GEMM {v / 1e12:.2f} TFLOP/s" for k, v in gemm.items()))
    write_phase(state, "info", {"info": info, "gemm": gemm_info})


# --- phase: timing (interleaved A/B ratios of engine variants) ---------------

def timing_tasks(sizes: Sizes) -> list:
    """(label, task, batch size): the parity model and the LM model."""
    from ..bench_trainer import RandomTokenLM, parity_timing_task

    p, lm = sizes.timing_parity, sizes.timing_lm
    return [(f"parity ({p['n']},{p['k']}) {p['n_layer']}x{p['n_embd']} batch {sizes.timing_parity_batch}",
             parity_timing_task(**p), sizes.timing_parity_batch),
            (f"lm {lm['n_layer']}x{lm['n_embd']} L={lm['block_size']} V={lm['vocab_size']} "
             f"batch {sizes.timing_lm_batch}", RandomTokenLM(**lm), sizes.timing_lm_batch)]


def timing_plan(sizes: Sizes) -> list[tuple[int, str]]:
    """(index of the task, comparison) in priority order; compiling comes
    last: a cold compile may take most of the phase."""
    return [(0, "bf16"), (1, "bf16"), (1, "fused")] + ([(0, "compile"), (1, "compile")] if sizes.timing_compile else [])


def phase_timing(state: dict) -> None:
    sizes = Sizes(**state["sizes"])
    deadline = state["deadlines"]["timing"]
    gemm = read_phase(state["work"], "info").get("gemm")
    tasks = timing_tasks(sizes)
    rows, flops_of = [], {}
    skipped = [] if sizes.timing_compile else ["eager vs compiled: skipped in --tiny (a CPU compile takes "
                                                "tens of seconds per model)"]
    for index, comparison in timing_plan(sizes):
        label, task, batch = tasks[index]
        name, a, b = COMPARISONS[comparison]
        if time.time() >= deadline:
            skipped.append(f"{label}: {name}: no time left")
        else:
            if label not in flops_of:
                flops_of[label] = float(task.build_model().flops_per_token(task.tokens_per_sequence))
            row = compare(task, a, b, batch_size=batch, steps=sizes.timing_steps, device="auto",
                          pairs=sizes.timing_pairs, deadline=time.monotonic() + (deadline - time.time()),
                          flops_per_token=flops_of[label], peak_flops=(gemm or {}).get("reference_flops"))
            rows.append({"config": label, "comparison": name, **row})
            log(f"timing {name}: {timing_line(rows[-1])}")
        write_phase(state, "timing", {"rows": rows, "skipped": skipped, "mfu_reference": gemm})


# --- phase: grids (paper-scale parity grid and LM window sweep, one GPU, at once)

def parity_specs(sizes: Sizes) -> list:
    """The parity paper preset's MD windows (U[0,0.1..0.4], the theory's
    U[0, t1*]) plus U[0,1] and OS, for each seed; steps are set later."""
    from ..parity.presets import preset_paper
    from mdtheory.theory.numeric import best_t1_given_t0_zero

    base = next(replace(r, **sizes.parity_base) for r in preset_paper() if r.objective == "md")
    windows = [(0.0, t1) for t1 in (0.1, 0.2, 0.3, 0.4, round(best_t1_given_t0_zero(base.k), 3), 1.0)]
    specs = []
    for seed in sizes.parity_seeds:
        specs += [replace(base, t0=t0, t1=t1, seed=seed, group="gpu_check") for t0, t1 in windows]
        specs.append(replace(base, objective="os", t0=None, t1=None, seed=seed, group="gpu_check"))
    return specs


def lm_preset(sizes: Sizes, steps: int, text_file: str | None, predicted: bool, eval_every: int | None = None):
    from ..lm.presets import Preset

    m = sizes.lm_model
    return Preset("gpu_check", "shakespeare", m["tokenizer"], m["vocab_size"], steps=steps,
                  eval_every=eval_every or max(1, steps // 4), warmup=min(100, steps // 10), seeds=(0,),
                  predicted=predicted, text_file=text_file,
                  **{k: m[k] for k in ("block_size", "n_layer", "n_head", "n_embd", "batch_size", "eval_blocks",
                                       "eval_nt", "lr")})


def prepare_lm(sizes: Sizes, lm_root: Path, text_file: str | None) -> dict:
    """Load the corpus, train/cache the tokenizer once (not in every worker)
    and write the predicted t* the sweep centres a window on."""
    from mdtheory.data.corpus import load_corpus
    from mdtheory.data.tokenize import build_tokenizer, encode_corpus

    corpus = load_corpus("shakespeare", text_file=text_file)
    m = sizes.lm_model
    tok = build_tokenizer(m["tokenizer"], corpus, m["vocab_size"])
    encode_corpus(tok, corpus, m["vocab_size"])
    lm_root.mkdir(parents=True, exist_ok=True)
    committed = REPO / "results" / "lm" / "predicted_t.json"
    predicted = True
    if text_file is None and committed.exists():
        shutil.copy(committed, lm_root / "predicted_t.json")
    else:
        from mdtheory.derive.ngram import predict
        try:
            atomic_write_json(lm_root / "predicted_t.json", predict(corpus))
        except UserError as exc:
            log(f"lm: no predicted t* for this corpus ({exc}); sweep without it")
            predicted = False
    return {"corpus": corpus.name, "corpus_fingerprint": corpus.fingerprint(),
            "text_file": text_file, "predicted": predicted}


def _worker_init():
    torch.set_num_threads(1)  # many runs share the machine's cores


def _seconds_per_step(out: str) -> float:
    from mdtheory.runfiles import read_metrics

    a, b = read_metrics(Path(out))[-2:]
    return (b["elapsed_s"] - a["elapsed_s"]) / max(1, b["step"] - a["step"])


def probe_parity(spec, steps: int, out: str) -> float:
    """Seconds per step of one parity run while the other probes run too."""
    from mdtheory.train import train
    from mdtheory.train.parity_task import ParityTask

    task, cfg = replace(spec, steps=steps, eval_every=max(1, steps // 2)).configs()
    train(ParityTask(task), replace(cfg, out_dir=out, progress=False))
    return _seconds_per_step(out)


def probe_lm(preset, spec, out: str) -> float:
    run_lm(preset, spec, out)
    return _seconds_per_step(out)


def run_parity(spec, root: str) -> tuple[str, str]:
    from ..parity.run import execute

    return execute(spec, root)


def run_lm(preset, spec, out: str) -> tuple[str, str]:
    """One run of the window sweep, exactly as experiments.lm.sweep trains it."""
    from ..lm.sweep import train_one

    error = train_one(preset, spec, out, threads=None)
    if error:
        raise UserError(error)
    return spec.name, "complete"


def choose_steps(seconds: float, workers: int, share: float, n_runs: int, sec_per_step: float,
                 bounds: tuple[int, int], safety: float = 0.75) -> int:
    """Steps per run so that ``n_runs`` runs, sharing ``workers`` slots for a
    ``share`` of ``seconds``, finish in time at the probed rate."""
    if n_runs == 0 or sec_per_step <= 0:
        return bounds[0]
    waves = -(-n_runs // workers)  # runs one slot trains one after another
    slots = min(workers, n_runs)
    per_run = safety * seconds * share * workers / (slots * waves)
    steps = int(per_run / sec_per_step)
    steps = max(bounds[0], min(bounds[1], steps))
    return max(bounds[0], steps - steps % (10 if steps >= 100 else 2))


def phase_grids(state: dict) -> None:
    from ..lm.sweep import is_finished, plan, write_outputs

    sizes = Sizes(**state["sizes"])
    deadline = state["deadlines"]["grids"] - state.get("aggregate_s", 0)  # time left to aggregate
    results = Path(state["work"]) / "results"
    parity_root, lm_root = results / "parity", results / "lm"
    report = {"parity": {}, "lm": {}}

    def save():
        write_phase(state, "grids", report)

    specs = parity_specs(sizes)
    report["parity"] = {"runs_planned": len(specs), "model": _spec_model(specs[0]),
                        "seeds": list(sizes.parity_seeds)}
    # LM: the corpus must be there (the device has no network)
    lm_runs, lm_info = [], {}
    try:
        lm_info = prepare_lm(sizes, lm_root, state.get("text_file"))
        probe_preset = lm_preset(sizes, sizes.probe_steps, state.get("text_file"), lm_info["predicted"],
                                 eval_every=max(1, sizes.probe_steps // 2))
        lm_runs, predicted = plan(probe_preset, lm_root)
        lm_info["predicted_window"] = predicted
    except Exception as exc:  # no corpus on this machine (or no tokenizer): the parity grid still runs
        report["lm"] = {"status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}
        log(f"lm sweep skipped: {exc}")
    save()

    workers = sizes.workers
    ctx = get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init)
    probe_dir = Path(state["work"]) / "probes"
    submitted = []  # every future, to know whether the pool can be shut down normally
    try:
        # 1) probe: every slot trains a few steps at once, so the rate includes the sharing
        n_probes = max(workers, 2 if lm_runs else 1)  # at least one probe of each grid
        n_lm_probe = 0 if not lm_runs else max(1, min(n_probes - 1, round(n_probes * len(lm_runs)
                                                                          / (len(lm_runs) + len(specs)))))
        probes = []
        for i in range(n_probes):
            out = str(probe_dir / f"p{i}")
            probes.append(("lm", pool.submit(probe_lm, probe_preset, lm_runs[i % len(lm_runs)], out))
                          if i < n_lm_probe else
                          ("parity", pool.submit(probe_parity, replace(specs[i % len(specs)], seed=0),
                                                 sizes.probe_steps, out)))
        submitted += [f for _, f in probes]
        # the probe may take at most 40% of the grids' time (worker start-up included)
        done, _ = wait([f for _, f in probes], timeout=max(1.0, 0.4 * (deadline - time.time())))
        rates = {"parity": [], "lm": []}
        for kind, fut in probes:
            if fut in done and fut.exception() is None:
                rates[kind].append(fut.result())
            elif fut in done:
                report[kind]["probe_error"] = f"{type(fut.exception()).__name__}: {fut.exception()}"
        sec = {k: statistics.median(v) for k, v in rates.items() if v}
        report["probe"] = {"steps": sizes.probe_steps, "workers": workers, "lm_probes": n_lm_probe,
                           "sec_per_step": sec}
        shutil.rmtree(probe_dir, ignore_errors=True)
        if "parity" not in sec:
            raise RuntimeError(f"parity probe failed: {report['parity'].get('probe_error', 'timed out')}")
        # 2) step budgets: 2/3 of the slot-time to parity, 1/3 to the LM sweep (when it runs)
        remaining = deadline - time.time() - 5
        lm_share = (1 / 3) if (lm_runs and "lm" in sec) else 0.0
        parity_steps = choose_steps(remaining, workers, 1 - lm_share, len(specs), sec["parity"],
                                    sizes.parity_steps)
        parity_eval = max(1, parity_steps // 10)
        specs = [replace(s, steps=parity_steps, eval_every=parity_eval) for s in specs]
        report["parity"].update(steps=parity_steps, eval_every=parity_eval,
                                note="same step budget for every run (OS too); the runner stops a run "
                                     "early once train and held-out accuracy are >= 0.99 twice")
        jobs = [("parity", s.name, pool.submit(run_parity, s, str(parity_root))) for s in specs]
        if lm_share:
            lm_steps = choose_steps(remaining, workers, lm_share, len(lm_runs), sec["lm"], sizes.lm_steps)
            preset = lm_preset(sizes, lm_steps, state.get("text_file"), lm_info["predicted"])
            report["lm"] = {**lm_info, "steps": lm_steps, "preset": asdict(preset),
                            "runs_planned": len(lm_runs)}
            run_root = lm_root / "runs" / preset.name
            lm_jobs = [("lm", s.name, pool.submit(run_lm, preset, s, str(run_root / s.name))) for s in lm_runs]
            jobs = _interleave(jobs, lm_jobs)
        elif lm_runs:
            report["lm"] = {**lm_info, "status": "skipped", "reason": report["lm"].get("probe_error", "probe failed")}
        submitted += [f for _, _, f in jobs]
        save()
        log(f"grids: {len(specs)} parity runs x {parity_steps} steps"
            + (f", {len(lm_runs)} LM runs x {report['lm']['steps']} steps" if lm_share else "")
            + f", {workers} at once; probe s/step {sec}")
        # 3) train until done or the deadline
        pending = {f for _, _, f in jobs}
        while pending and time.time() < deadline:
            done, pending = wait(pending, timeout=max(0.1, deadline - time.time()), return_when=FIRST_COMPLETED)
        status = {name: "cut at the deadline" if not fut.done() else
                  f"error: {type(fut.exception()).__name__}: {fut.exception()}" if fut.exception() is not None
                  else fut.result()[1] for _, name, fut in jobs}
        for kind in ("parity", "lm"):
            mine = {name: status[name] for k, name, _ in jobs if k == kind}
            if mine:
                report[kind]["status"] = mine
                report[kind]["runs_finished"] = sum(1 for s in mine.values()
                                                    if s in ("complete", "early_stop"))
        save()
    except Exception as exc:  # record, then still aggregate whatever finished
        report["error"] = f"{type(exc).__name__}: {exc}"
        save()
    finally:
        _stop_pool(pool, graceful=all(f.done() for f in submitted))
    # 4) aggregate with the project's own tools (the same files the CPU studies write)
    if (parity_root / "runs").is_dir():
        try:
            from ..parity.summarize import summarize_root
            summarize_root(parity_root)
            report["parity"]["summary"] = "parity/summary.csv"
        except Exception as exc:
            report["parity"]["summary_error"] = f"{type(exc).__name__}: {exc}"
    if report["lm"].get("steps"):
        try:
            rows = write_outputs(preset, lm_runs, run_root, lm_root, lm_info.get("predicted_window", {}))
            report["lm"]["final"] = [{k: r[k] for k in ("run", "kind", "t0", "t1", "full_range_test_loss",
                                                        "full_range_test_loss_se")} for r in rows]
            report["lm"]["unfinished"] = [s.name for s in lm_runs if not is_finished(run_root / s.name,
                                                                                     preset.steps)]
        except Exception as exc:
            report["lm"]["summary_error"] = f"{type(exc).__name__}: {exc}"
    report["parity"]["final"] = _parity_finals(parity_root)
    save()


def _spec_model(spec) -> dict:
    return {key: getattr(spec, key) for key in ("n", "k", "train_size", "n_layer", "n_head", "n_embd",
                                                 "batch_size", "lr", "weight_decay")}


def _interleave(a: list, b: list) -> list:
    """a0 b0 a1 b1 ...: both grids make progress from the start."""
    out = []
    for i in range(max(len(a), len(b))):
        out += a[i:i + 1] + b[i:i + 1]
    return out


def _parity_finals(root: Path) -> list[dict]:
    from mdtheory.runfiles import read_metrics

    finals = []
    for run in sorted(p for p in (root / "runs").glob("*") if p.is_dir()):
        try:
            last = read_metrics(run)[-1]
        except Exception:  # no record (yet), or a broken one
            continue
        finals.append({"run": run.name, **{key: last.get(key) for key in ("step", "train_acc", "val_acc")}})
    return finals


def _stop_pool(pool: ProcessPoolExecutor, graceful: bool) -> None:
    """End the workers: a normal shutdown when every run is done, else cancel
    the queued runs and kill the workers this phase started (by pid)."""
    if graceful:
        pool.shutdown(wait=True)
        return
    procs = list(getattr(pool, "_processes", {}).values())  # no public handle on the workers
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
    for proc in procs:
        proc.join(timeout=5)


PHASES = {"info": phase_info, "timing": phase_timing, "grids": phase_grids}


def run_phase(name: str, state_path: str) -> int:
    PHASES[name](json.loads(Path(state_path).read_text()))
    return 0
