"""The mask-rate window sweep (paper Fig. 3 and 7) on the shared LM trainer.

    python -m experiments.lm.sweep --preset {quick,paper,tiny} [--jobs 2]

Trains every run of the preset (see experiments/lm/presets.py) with the
shared trainer (``mdtheory.train.train`` on an ``LMTask``), then writes

    RESULTS/window_sweep.csv          one row per run: preset, run, kind,
                                      objective, t0, t1, midpoint, seed,
                                      steps, tokens, full_range_{val,test}_loss(_se)
                                      (MD ELBOs), nll_{val,test}(_se) (AR
                                      exact NLL), bits_per_token, train_loss,
                                      eval_kind, run_dir
    RESULTS/window_sweep_curves.csv   loss-vs-step curves of every run
    RESULTS/window_sweep.json         preset, predicted window, provenance
    RESULTS/runs/<preset>/<run>/      config.json, metrics.jsonl, ckpt.pt

RESULTS defaults to results/lm (results/lm/tiny for the tiny preset); the
predicted window is read from RESULTS/predicted_t.json, computed there from the
corpus when absent.
Resumable: finished runs are skipped, unfinished ones resume from their
checkpoint, so re-running the command after an interruption finishes the
sweep. ``--jobs N`` trains N runs at once in separate processes, one torch
thread each. One progress bar counts finished runs (``--no-progress`` hides it).
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from fnmatch import fnmatch
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm

from mdtheory.cli import OneLineParser, atomic_write_json, atomic_write_text, run_cli, write_provenance_json
from mdtheory.errors import UserError
from mdtheory.provenance import provenance
from mdtheory.runfiles import read_metrics, read_run

from .presets import PRESETS, Preset

METRICS = ("full_range_val_loss", "full_range_val_loss_se", "full_range_test_loss", "full_range_test_loss_se",
           "nll_val", "nll_val_se", "nll_test", "nll_test_se")  # MD ELBOs, then the AR exact NLL
CSV_FIELDS = ("preset", "run", "kind", "objective", "t0", "t1", "midpoint", "seed", "steps", "tokens", *METRICS,
              "bits_per_token", "train_loss", "eval_kind", "run_dir")
CURVE_FIELDS = ("run", "kind", "objective", "t0", "t1", "seed", "step", *METRICS, "train_loss")


@dataclass
class RunSpec:
    name: str
    kind: str          # window | uniform | predicted | ar
    t0: float
    t1: float
    seed: int

    @property
    def objective(self) -> str:
        return "ar" if self.kind == "ar" else "md"

    def rate(self) -> dict:
        """What this run sets in the task: its mask-rate window, or the ar objective."""
        if self.kind == "ar":
            return {"objective": "ar"}
        return {"sampler": f"window:{float(self.t0)!r},{float(self.t1)!r}"}


def predicted_window(results: Path, corpus: str, width: float = 0.1) -> tuple[float, float, float]:
    """(t*, t0, t1): a width-0.1 window centred on the corpus-predicted t*."""
    path = results / "predicted_t.json"  # only --results: never a file of another folder
    if path.exists():
        try:
            t_star = float(json.loads(path.read_text(encoding="utf-8"))["t_star"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path} is corrupt ({type(exc).__name__}); delete it to recompute") from None
    else:
        from mdtheory.data.corpus import load_corpus
        from mdtheory.derive.ngram import predict
        result = predict(load_corpus(corpus))
        atomic_write_json(results / "predicted_t.json", result, keep_provenance_if_unchanged=True)
        t_star = result["t_star"]
    t0 = min(max(round(t_star - width / 2, 3), 0.0), 1.0 - width)
    return t_star, t0, round(t0 + width, 3)


def plan(preset: Preset, results: Path) -> tuple[list[RunSpec], dict]:
    runs, info = [], {}
    if preset.predicted:
        t_star, p0, p1 = predicted_window(results, preset.corpus)
        info = {"t_star": t_star, "window": [p0, p1]}
    for seed in preset.seeds:
        for t0, t1 in preset.windows:
            runs.append(RunSpec(f"w{t0:.2f}-{t1:.2f}_s{seed}", "window", t0, t1, seed))
        if preset.uniform:
            runs.append(RunSpec(f"uniform_s{seed}", "uniform", 0.0, 1.0, seed))
        if preset.predicted:
            runs.append(RunSpec(f"pred{p0:.3f}-{p1:.3f}_s{seed}", "predicted", p0, p1, seed))
        if preset.ar_baseline:
            runs.append(RunSpec(f"ar_s{seed}", "ar", float("nan"), float("nan"), seed))
    return runs, info


def is_finished(run_dir: Path, steps: int) -> bool:
    recs = read_metrics(run_dir)
    return bool(recs) and recs[-1].get("step") == steps and "full_range_test_loss" in recs[-1]


def train_one(preset: Preset, spec: RunSpec, run_dir: str, threads: int | None) -> str | None:
    """Train (or resume) one run; returns an error line or None."""
    import torch
    from mdtheory.train import train
    from mdtheory.train.lm_task import LMTask

    if threads:
        torch.set_num_threads(threads)
    run_dir = Path(run_dir)
    resume = (run_dir / "ckpt.pt").exists()
    if not resume and run_dir.exists():
        shutil.rmtree(run_dir)  # killed before its first checkpoint: start over
    try:
        task, cfg = preset.configs(spec.seed, **spec.rate())
        train(LMTask(task), replace(cfg, out_dir=str(run_dir), resume=resume, progress=False))
    except UserError as exc:
        return f"{spec.name}: {exc}"
    return None


def collect(preset: Preset, runs: list[RunSpec], run_root: Path) -> tuple[list[dict], list[dict]]:
    """One row per finished run and one per evaluation, from the run records."""
    rows, curves = [], []
    for spec in runs:
        run_dir = run_root / spec.name
        if not is_finished(run_dir, preset.steps):
            continue
        run = read_run(run_dir)
        final, mid = run.final, (spec.t0 + spec.t1) / 2
        described = {"run": spec.name, "kind": spec.kind, "objective": spec.objective, "t0": spec.t0,
                     "t1": spec.t1, "seed": spec.seed}
        rows.append({
            **described, "preset": preset.name, "midpoint": round(mid, 4),
            "steps": final["step"], "tokens": final["step"] * preset.batch_size * preset.block_size,
            **{key: final.get(key) for key in METRICS},
            "bits_per_token": final.get("full_range_bits_per_token", final.get("nll_bits_per_token")),
            "train_loss": final.get("loss"), "eval_kind": final.get("eval_kind"), "run_dir": str(run_dir)})
        curves += [{**described, "step": r["step"], **{key: r.get(key) for key in METRICS},
                    "train_loss": r.get("loss")} for r in run.metrics]
    return rows, curves


def _csv(rows: list[dict], fields) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_outputs(preset: Preset, runs, run_root: Path, results: Path, info: dict) -> list[dict]:
    rows, curves = collect(preset, runs, run_root)
    atomic_write_text(results / "window_sweep.csv", _csv(rows, CSV_FIELDS))
    atomic_write_text(results / "window_sweep_curves.csv", _csv(curves, CURVE_FIELDS))
    write_provenance_json(results / "window_sweep.json", {
        "preset": asdict(preset), "predicted": info, "runs_planned": len(runs),
        "runs_finished": len(rows), "provenance": provenance()},
        describes=[results / "window_sweep.csv", results / "window_sweep_curves.csv"])
    return rows


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m experiments.lm.sweep", description="Mask-rate window sweep.")
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    p.add_argument("--results", default=None, help="output folder (default results/lm, tiny: results/lm/tiny)")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    # One thread per run: these models are small, and two threads fighting
    # another busy process for 2 cores ran ~6x slower than one (measured).
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the preset's seeds")
    p.add_argument("--runs", nargs="+", default=None, metavar="PATTERN",
                   help="train only runs whose name matches a glob, e.g. 'uniform_s*' (outputs still list all finished runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def writable_folder(path: Path) -> Path:
    """``path`` as an existing folder we can write into, or one UserError line."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--results {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"--results {path} is not a writable folder ({exc.strerror or type(exc).__name__})") from None
    return path


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    preset = PRESETS[args.preset]
    if args.seeds:
        preset = replace(preset, seeds=tuple(args.seeds))
    results = writable_folder(Path(args.results or ("results/lm/tiny" if preset.name == "tiny" else "results/lm")))
    run_root = results / "runs" / preset.name
    runs, info = plan(preset, results)
    todo = todo_all = [s for s in runs if not is_finished(run_root / s.name, preset.steps)]
    if args.runs:
        todo = [s for s in todo if any(fnmatch(s.name, pat) for pat in args.runs)]
    errors = []
    threads = args.threads
    # one bar per sweep, also when stdout is a log file: runs done / total and ETA
    bar = tqdm(total=len(runs) - len(todo_all) + len(todo), initial=len(runs) - len(todo_all),
               desc=f"lm sweep ({preset.name})", unit="run", disable=args.no_progress,
               file=sys.stderr, dynamic_ncols=True)
    if args.jobs == 1:
        for spec in todo:
            err = train_one(preset, spec, str(run_root / spec.name), threads)
            errors += [err] if err else []
            write_outputs(preset, runs, run_root, results, info)
            bar.update(1)
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(train_one, preset, s, str(run_root / s.name), threads)
                       for s in todo]
            for fut in futures:
                err = fut.result()
                errors += [err] if err else []
                write_outputs(preset, runs, run_root, results, info)
                bar.update(1)
    bar.close()
    rows = write_outputs(preset, runs, run_root, results, info)
    if errors:
        raise UserError(f"{len(errors)} run(s) failed; first: {errors[0]}")
    print(f"{len(rows)}/{len(runs)} runs finished -> {results / 'window_sweep.csv'}")
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
