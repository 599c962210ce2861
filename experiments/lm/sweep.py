"""The mask-rate window sweep (paper Fig. 3 and 7) on the shared LM trainer.

    python -m experiments.lm.sweep --preset {quick,paper,tiny} [--jobs 2]
    python -m experiments.lm.sweep --text-file F [--corpus NAME] [--steps S] [--seeds 0 1 2]
                                   [--n-layer L --n-embd D --block-size T --batch-size B]
    python -m experiments.lm.sweep ... [--runs GLOB...] [--only GLOB] [--list] [--collect-only]
                                   [--executor local|slurm] [--partition P] [--time MIN]
                                   [--gpus-per-run G] [--cpus-per-run C] [--array-parallelism A]

With ``--text-file`` (or ``--corpus`` naming a built-in corpus) the sweep
runs on that corpus with the ``corpus`` preset's settings (the quick model
and budget, the ten windows, U[0, 1], the window centred on the corpus's
predicted t* from its training split, and the smooth laws with their mode
there), writes under results/lm/<corpus> (NAME, else the file's stem) and
ends with a recommendation (``experiments.lm.summarize``): the window chosen
on val, its test loss against U[0, 1] with a paired interval, where t* fell,
and how the predicted laws (``--sampler predicted[:law=...]``, no sweep
needed) did against both.

Trains every run of the preset (see experiments/lm/presets.py) with the
shared trainer (``mdtheory.train.train`` on an ``LMTask``), then writes

    RESULTS/window_sweep.csv          one row per run: preset, run, kind,
                                      objective, sampler (its --sampler spec),
                                      t0, t1, midpoint, seed,
                                      steps, tokens, full_range_{val,test}_loss(_se)
                                      (MD ELBOs), nll_{val,test}(_se) (AR
                                      exact NLL), bits_per_token, train_loss,
                                      unigram_entropy (of the test split),
                                      below_unigram (it minus the test loss),
                                      past_unigram (below_unigram > 0.05),
                                      eval_kind, run_dir
    RESULTS/window_sweep_curves.csv   loss-vs-step curves of every run
    RESULTS/window_sweep_loss_by_t.csv  the loss per evaluation t-bin of every
                                      run at its last evaluation: run, kind,
                                      objective, sampler, t0, t1, seed, t
                                      (the stratum's mean mask rate), loss and
                                      se (its standard error over test
                                      sequences; empty for runs scored before
                                      it was logged); none for AR
    RESULTS/window_sweep.json         preset, predicted window, provenance
    RESULTS/runs/<preset>/<run>/      config.json, metrics.jsonl, ckpt.pt

RESULTS defaults to results/lm (results/lm/tiny for the tiny preset); the
predicted window is read from RESULTS/predicted_t.json, computed there from the
corpus when absent.
Every setting is checked before the first run starts (seeds >= 0 and each
once, sizes, steps, every run's settings, each ``--runs`` glob matching a
run), so a refused sweep writes nothing. One process at a time holds
RESULTS (``RESULTS/.lock``, ``mdtheory.runfiles.hold_root``): a second sweep
or durability study on it is refused with the holder's pid.
The runs go through the common study runner (experiments/study.py):
finished runs are skipped, unfinished ones resume from their checkpoint, so
re-running the command after an interruption finishes the sweep.
``--executor local`` (default) trains ``--jobs`` runs at once, each in a
process of its own (``--threads`` torch threads, the GPUs this process
sees), under one progress bar on a terminal (``--no-progress`` hides it),
and rewrites the outputs as each run ends. ``--executor slurm`` submits the
runs left as one SLURM job array and returns after writing the outputs of
what is finished so far; ``--collect-only`` (or the same command once the
array is done) writes them again.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sys
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from mdtheory.cli import (OneLineParser, atomic_write_json, atomic_write_text, check_output_dir, run_cli,
                          write_provenance_json)
from mdtheory.errors import UserError
from mdtheory.provenance import provenance
from mdtheory.runfiles import LOSS_BY_T_SE_PREFIX, hold_root, read_metrics, read_run

from .. import study
from .presets import PRESETS, Preset

METRICS = ("full_range_val_loss", "full_range_val_loss_se", "full_range_test_loss", "full_range_test_loss_se",
           "nll_val", "nll_val_se", "nll_test", "nll_test_se")  # MD ELBOs, then the AR exact NLL
UNIGRAM_FIELDS = ("unigram_entropy", "below_unigram", "past_unigram")
CSV_FIELDS = ("preset", "run", "kind", "objective", "sampler", "t0", "t1", "midpoint", "seed", "steps", "tokens", *METRICS,
              "bits_per_token", "train_loss", *UNIGRAM_FIELDS, "eval_kind", "run_dir")
# settings of the task (model, block) and training (steps, batch) that the sweep's flags override
SIZE_FLAGS = ("steps", "n_layer", "n_head", "n_embd", "block_size", "batch_size")
# a run less than this far below the unigram entropy has learnt little beyond token frequencies
PAST_UNIGRAM_MARGIN = 0.05
CURVE_FIELDS = ("run", "kind", "objective", "sampler", "t0", "t1", "seed", "step", *METRICS, "train_loss")
LOSS_BY_T_FIELDS = ("run", "kind", "objective", "sampler", "t0", "t1", "seed", "t", "loss", "se")


@dataclass
class RunSpec:
    name: str
    kind: str          # window | uniform | predicted | smooth | ar
    t0: float          # the window (NaN for smooth and ar)
    t1: float
    seed: int
    law: str = ""      # a smooth law's --sampler spec

    @property
    def objective(self) -> str:
        return "ar" if self.kind == "ar" else "md"

    @property
    def sampler(self) -> str:
        """The run's law as a --sampler spec ("" for ar)."""
        if self.kind in ("ar", "smooth"):
            return self.law
        return "uniform" if self.kind == "uniform" else f"window:{self.t0:g},{self.t1:g}"

    def rate(self) -> dict:
        """What this run sets in the task: its mask-rate law, or the ar objective."""
        if self.kind == "ar":
            return {"objective": "ar"}
        if self.kind == "smooth":
            return {"sampler": self.law}
        return {"sampler": f"window:{float(self.t0)!r},{float(self.t1)!r}"}


def run_label(spec: str) -> str:
    """A folder-safe name for a sampler spec (predicted:law=beta -> predicted-law-beta)."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", spec).strip("-")


def predicted_window(results: Path, corpus: str, width: float = 0.1,
                     text_file: str | None = None, pending: dict | None = None) -> tuple[float, float, float]:
    """(t*, t0, t1): a width-0.1 window centred on the corpus-predicted t*
    (n-gram weights of the training split only). A t* computed here is
    written to RESULTS/predicted_t.json, or, with ``pending``, put there
    under that file name for the caller to write once it holds the folder."""
    path = results / "predicted_t.json"  # only --results: never a file of another folder
    if path.exists():
        try:
            t_star = float(json.loads(path.read_text(encoding="utf-8"))["t_star"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path} is corrupt ({type(exc).__name__}); delete it to recompute") from None
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    else:
        from mdtheory.data.corpus import load_corpus
        from mdtheory.derive.ngram import predict
        result = predict(load_corpus(corpus, text_file=text_file))
        if pending is None:
            atomic_write_json(path, result, keep_provenance_if_unchanged=True)
        else:
            pending[path.name] = result
        t_star = result["t_star"]
    t0 = min(max(round(t_star - width / 2, 3), 0.0), 1.0 - width)
    return t_star, t0, round(t0 + width, 3)


def plan(preset: Preset, results: Path, pending: dict | None = None) -> tuple[list[RunSpec], dict]:
    """The runs of ``preset`` (and the predicted window, see ``predicted_window``
    for ``pending``). Two runs never share a folder: a seed listed twice is refused."""
    check_seeds(preset.seeds)
    runs, info = [], {}
    if preset.predicted:
        t_star, p0, p1 = predicted_window(results, preset.task.corpus, text_file=preset.task.text_file,
                                          pending=pending)
        info = {"t_star": t_star, "window": [p0, p1]}
    for seed in preset.seeds:
        for t0, t1 in preset.windows:
            runs.append(RunSpec(f"w{t0:.2f}-{t1:.2f}_s{seed}", "window", t0, t1, seed))
        if preset.uniform:
            runs.append(RunSpec(f"uniform_s{seed}", "uniform", 0.0, 1.0, seed))
        if preset.predicted:
            runs.append(RunSpec(f"pred{p0:.3f}-{p1:.3f}_s{seed}", "predicted", p0, p1, seed))
        for law in preset.smooth:
            runs.append(RunSpec(f"{run_label(law)}_s{seed}", "smooth", float("nan"), float("nan"), seed, law))
        if preset.ar_baseline:
            runs.append(RunSpec(f"ar_s{seed}", "ar", float("nan"), float("nan"), seed))
    names = [r.name for r in runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"two runs of preset {preset.name!r} share a folder name ({', '.join(twice[:3])})")
    return runs, info


def check_seeds(seeds, flag: str = "--seeds") -> None:
    """Seeds are integers >= 0, each listed once (a repeat would train the
    same run twice and count it as two seeds)."""
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad:
        raise UserError(f"{flag} must be integers >= 0, got {bad[0]!r}")
    twice = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if twice:
        raise UserError(f"{flag} lists seed {', '.join(map(str, twice))} more than once; give each seed once")


def check_runs(preset: Preset, runs: list[RunSpec]) -> None:
    """Build every run's settings without training, so that a bad setting
    (steps, seed, model size, mask-rate law, a model that cannot fit) is one
    line before any run starts, not one failure per run after all of them."""
    from mdtheory.masking import parse_sampler
    from mdtheory.models import TransformerConfig
    from mdtheory.train.lm_task import check_memory

    for spec in runs:
        task, cfg = preset.configs(spec.seed, **spec.rate())  # TrainConfig checks steps, seed, batch
        if task.objective == "md":  # t* is the corpus's; any value checks the spec
            parse_sampler(task.sampler, eps=task.eps, weighting=task.loss_weighting, t_star=0.5)
    if runs:
        if task.block_size < 2:
            raise UserError(f"--block-size must be >= 2, got {task.block_size}")
        TransformerConfig(vocab_size=2, block_size=task.block_size, n_layer=task.n_layer,
                          n_head=task.n_head, n_embd=task.n_embd)
        check_memory(task, vocab_size=2, batch_size=cfg.batch_size)  # a lower estimate: the vocabulary comes later


def select(runs: list[RunSpec], patterns: list[str] | None) -> list[RunSpec]:
    """The runs whose name matches one of the globs; a glob that matches no
    run of the sweep is refused (a typo would otherwise train nothing)."""
    if not patterns:
        return list(runs)
    unmatched = [pat for pat in patterns if not any(fnmatch(s.name, pat) for s in runs)]
    if unmatched:
        names = ", ".join(s.name for s in runs[:4]) + (", ..." if len(runs) > 4 else "")
        raise UserError(f"--runs {' '.join(unmatched)} matches no run of this sweep (runs: {names})")
    return [s for s in runs if any(fnmatch(s.name, pat) for pat in patterns)]


def is_finished(run_dir: Path, steps: int) -> bool:
    recs = read_metrics(run_dir)
    return bool(recs) and recs[-1].get("step") == steps and "full_range_test_loss" in recs[-1]


@dataclass(frozen=True)
class Job:
    """One run as the study runner (experiments/study.py) sees it: all a job
    process (local or on SLURM) needs to train it, so it looks nothing up."""
    name: str       # unique in the study; what --only and the bar show
    folder: str     # the run folder, relative to RESULTS
    preset: Preset
    run: RunSpec
    threads: int = 1

    @property
    def steps(self) -> int:
        return self.preset.train.steps


def make_jobs(preset: Preset, runs: list[RunSpec], folder: str, threads: int, prefix: str = "") -> list[Job]:
    """The jobs of ``runs``, each in RESULTS/<folder>/<run>."""
    return [Job(prefix + spec.name, f"{folder}/{spec.name}", preset, spec, threads) for spec in runs]


def job_folder(root: Path, job: Job) -> Path:
    """The run folder: the sweep's and the durability study's runs share RESULTS, each in its own place."""
    return Path(root) / job.folder


def job_status(run_dir: Path, job: Job) -> str | None:
    """'complete' once the run holds its final evaluation, else None (train it)."""
    return "complete" if is_finished(run_dir, job.steps) else None


def train_run(preset: Preset, spec: RunSpec, run_dir: str, threads: int | None) -> None:
    """Train (or resume) one run in this process; a refused setting raises UserError."""
    import torch
    from mdtheory.train import train
    from mdtheory.train.lm_task import LMTask

    if threads:
        torch.set_num_threads(threads)
    run_dir = Path(run_dir)
    resume = (run_dir / "ckpt.pt").exists()
    if not resume and run_dir.exists():
        shutil.rmtree(run_dir)  # killed before its first checkpoint: start over
    task, cfg = preset.configs(spec.seed, **spec.rate())
    train(LMTask(task), replace(cfg, out_dir=str(run_dir), resume=resume, progress=False))


def train_job(job: Job, root: str) -> tuple[str, str]:
    """One job of the study runner. A refused run prints its one line last on
    stderr: the runner reports a failed run by its log's last line."""
    try:
        train_run(job.preset, job.run, str(job_folder(Path(root), job)), job.threads)
    except UserError as exc:
        print(exc, file=sys.stderr)
        return job.name, "failed"
    return job.name, "complete"


def lm_study(name: str, jobs: list[Job], after_each=None) -> study.Study:
    """The study runner over ``jobs``; ``after_each`` refreshes the outputs as runs end."""
    return study.Study(name, jobs, train_job, job_status, folder=job_folder, after_each=after_each,
                       local_gpus=True)


def unigram_entropy(preset: Preset) -> float:
    """Entropy (nats per token) of the test split's own token frequencies:
    the loss of a model that has learnt nothing but those frequencies."""
    from mdtheory.data.corpus import load_corpus
    from mdtheory.data.tokenize import build_tokenizer, encode_corpus

    task = preset.task
    corpus = load_corpus(task.corpus, text_file=task.text_file)
    ids = encode_corpus(build_tokenizer(task.tokenizer, corpus, task.vocab_size), corpus, task.vocab_size)["test"]
    p = np.bincount(ids)
    p = p[p > 0] / len(ids)
    return float(-(p * np.log(p)).sum())


def unigram_columns(final: dict, entropy: float) -> dict:
    """How far a run's test loss (ELBO, or AR NLL) ended below the unigram entropy."""
    loss = final.get("full_range_test_loss", final.get("nll_test"))
    if loss is None:
        return {"unigram_entropy": round(entropy, 6), "below_unigram": None, "past_unigram": None}
    below = entropy - float(loss)
    return {"unigram_entropy": round(entropy, 6), "below_unigram": round(below, 6),
            "past_unigram": below > PAST_UNIGRAM_MARGIN}


def last_evaluation(metrics: list[dict]) -> dict:
    """The last record of a run that holds an evaluation ({} if none)."""
    return next((r for r in reversed(metrics) if "eval_kind" in r), {})


def collect(preset: Preset, runs: list[RunSpec], run_root: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """From the run records: one row per finished run, one per evaluation
    (the curves) and one per t-bin of each run's last evaluation (none for
    AR: its exact NLL has no mask rate)."""
    rows, curves, bins = [], [], []
    entropy = None
    for spec in runs:
        run_dir = run_root / spec.name
        if not is_finished(run_dir, preset.train.steps):
            continue
        run = read_run(run_dir)
        final, mid = run.final, (spec.t0 + spec.t1) / 2
        entropy = unigram_entropy(preset) if entropy is None else entropy
        described = {"run": spec.name, "kind": spec.kind, "objective": spec.objective,
                     "sampler": spec.sampler, "t0": spec.t0, "t1": spec.t1, "seed": spec.seed}
        rows.append({
            **described, "preset": preset.name, "midpoint": round(mid, 4),
            "steps": final["step"], "tokens": final["step"] * preset.train.batch_size * preset.task.block_size,
            **{key: final.get(key) for key in METRICS},
            "bits_per_token": final.get("full_range_bits_per_token", final.get("nll_bits_per_token")),
            "train_loss": final.get("loss"), **unigram_columns(final, entropy),
            "eval_kind": final.get("eval_kind"), "run_dir": str(run_dir)})
        curves += [{**described, "step": r["step"], **{key: r.get(key) for key in METRICS},
                    "train_loss": r.get("loss")} for r in run.metrics]
        last = last_evaluation(run.metrics)
        errors = run.loss_by_t(last, prefix=LOSS_BY_T_SE_PREFIX)
        bins += [{**described, "t": t, "loss": loss, "se": errors.get(t)}
                 for t, loss in run.loss_by_t(last).items()]
    return rows, curves, bins


def _csv(rows: list[dict], fields) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_outputs(preset: Preset, runs, run_root: Path, results: Path, info: dict) -> list[dict]:
    rows, curves, bins = collect(preset, runs, run_root)
    outputs = {"window_sweep.csv": _csv(rows, CSV_FIELDS), "window_sweep_curves.csv": _csv(curves, CURVE_FIELDS),
               "window_sweep_loss_by_t.csv": _csv(bins, LOSS_BY_T_FIELDS)}
    for name, text in outputs.items():
        atomic_write_text(results / name, text)
    write_provenance_json(results / "window_sweep.json", {
        "preset": preset.record(), "predicted": info, "runs_planned": len(runs),
        "runs_finished": len(rows), "provenance": provenance()},
        describes=[results / name for name in outputs])
    return rows


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m experiments.lm.sweep", description="Mask-rate window sweep.")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="default quick; corpus when --text-file or --corpus is given")
    p.add_argument("--results", default=None, help="output folder (default results/lm, tiny: results/lm/tiny, "
                                                   "a corpus of its own: results/lm/<corpus>)")
    p.add_argument("--text-file", default=None, metavar="PATH", help="sweep this UTF-8 corpus (split 90/5/5)")
    p.add_argument("--corpus", default=None, metavar="NAME",
                   help="a built-in corpus to sweep, or the name of --text-file's corpus (default: its stem)")
    sizes = p.add_argument_group("overrides of the preset's budget and model")
    for flag in SIZE_FLAGS:
        sizes.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=int, default=None)
    p.add_argument("--smooth", nargs="*", default=None, metavar="SPEC",
                   help="further laws to train, as --sampler specs (default: the preset's "
                        "predicted:law=beta|logitnormal laws; none: --smooth)")
    # One thread per run: these models are small, and two threads fighting
    # another busy process for 2 cores ran ~6x slower than one (measured).
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the preset's seeds")
    p.add_argument("--runs", nargs="+", default=None, metavar="PATTERN",
                   help="train only runs whose name matches a glob, e.g. 'uniform_s*'; each glob must match a "
                        "run (outputs still list all finished runs)")
    p.add_argument("--collect-only", action="store_true",
                   help="train nothing: write the outputs from the finished runs on disk (e.g. after a SLURM array)")
    study.add_arguments(p)  # --jobs, --only, --list, --executor and its resources, --no-progress
    return p


def writable_folder(path: Path) -> Path:
    """``path`` as an existing folder we can write into, or one UserError line."""
    return check_output_dir(path, "--results")


def usable_folder(path: Path) -> Path:
    """Refuse, without creating anything, a --results that names a file."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--results {path} exists and is not a folder")
    return path


def corpus_name(text_file: str | None, corpus: str | None) -> str | None:
    """The folder name of a corpus sweep: --corpus, else the text file's stem."""
    if text_file is None and corpus is None:
        return None
    name = corpus if corpus is not None else Path(text_file).stem
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name or ""):
        raise UserError(f"corpus name {name!r} must be letters, digits, '.', '_' or '-' (it names a folder); "
                        f"pass --corpus NAME")
    return name


def configure(args) -> tuple[Preset, Path, bool]:
    """The preset with the command line's corpus and overrides, the results
    folder (not created yet), and whether this is a sweep of a corpus of
    one's own. Every flag is checked here, before anything is written."""
    from mdtheory.data.corpus import CORPORA, check_text_file

    name = corpus_name(args.text_file, args.corpus)
    preset = PRESETS[args.preset or ("corpus" if name else "quick")]
    if args.text_file is not None:
        check_text_file(args.text_file)
        preset = replace(preset, text_file=str(Path(args.text_file).resolve()))
    elif name is not None:
        if name not in CORPORA:
            raise UserError(f"unknown corpus {name!r}; choose from {', '.join(CORPORA)} or pass --text-file")
        preset = replace(preset, corpus=name, text_file=None)
    sizes = {k: getattr(args, k) for k in SIZE_FLAGS if getattr(args, k) is not None}
    for flag, value in sizes.items():
        if value < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    if sizes and name is None and args.results is None:
        # a preset's runs are never mixed with runs of other settings in its folder
        raise UserError(f"changing the {preset.name} preset's {', '.join(sorted(sizes))} needs --results DIR")
    preset = replace(preset, **sizes)  # each into the task's or the training settings (presets.Preset)
    if args.seeds:
        check_seeds(args.seeds)
        preset = replace(preset, seeds=tuple(args.seeds))
    if args.smooth is not None:
        preset = replace(preset, smooth=tuple(args.smooth))
    for law in preset.smooth:
        from mdtheory.masking import parse_sampler
        parse_sampler(law, t_star=0.5)  # a bad spec is one line before anything is written
    default = (f"results/lm/{name}" if name else
               "results/lm/tiny" if preset.name == "tiny" else "results/lm")
    return preset, usable_folder(Path(args.results or default)), name is not None


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    study.check_arguments(args)
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    preset, results, own_corpus = configure(args)
    # everything is checked before anything is written: a refused sweep leaves no trace
    pending: dict = {}
    runs, info = plan(preset, results, pending)
    check_runs(preset, runs)
    run_root = results / "runs" / preset.name
    runner = lm_study(f"lm sweep ({preset.name})",
                      make_jobs(preset, select(runs, args.runs), f"runs/{preset.name}", args.threads),
                      lambda: write_outputs(preset, runs, run_root, results, info))
    study.selected(runner, args)
    if args.list:
        study.run_study(runner, results, args)  # prints the run folders, writes nothing
        return 0
    results = writable_folder(results)
    with hold_root(results / ".lock", f"results root {results}"):
        for name, record in pending.items():
            atomic_write_json(results / name, record, keep_provenance_if_unchanged=True)
        statuses = {} if args.collect_only else study.run_study(runner, results, args, hold=False)
        rows = write_outputs(preset, runs, run_root, results, info)
        print(f"{len(rows)}/{len(runs)} runs finished -> {results / 'window_sweep.csv'}")
        if own_corpus and rows and "submitted" not in statuses.values():
            recommend(results)
    return 0


def recommend(results: Path) -> None:
    """Summarise the sweep (the aggregator's files) and print and write the recommendation."""
    from . import summarize

    summarize.main(["--results", str(results)])
    summary = json.loads((results / "window_sweep_summary.json").read_text(encoding="utf-8"))
    text = summarize.recommendation(summary)
    atomic_write_text(results / "recommendation.md", text)
    print(text, end="")


def main(argv=None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
