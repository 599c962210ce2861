"""Bring a GPU check's results into the project: ``python -m experiments.gpu_check.ingest``.

    python -m experiments.gpu_check.ingest --from DIR [--results results/gpu] [--rehearsal]

DIR holds what ``python -m experiments.gpu_check --out DIR`` wrote. The
tarball's parity/ and lm/ are unpacked into RESULTS/parity and RESULTS/lm
and the two studies' aggregators run there (so their ``device`` columns name
the card); the check's summary and log are kept beside them. Everything is
built in a staging folder that then replaces RESULTS as a whole, so a failed
ingest leaves the old one. RESULTS must be new, empty, or an earlier ingest
(it carries the marker file ``.gpu_ingest.json``): anything else is refused
before a file is touched, so a mistyped --results never deletes results.
One ingest at a time holds RESULTS (a lock file beside it). A --tiny check ran on the CPU: it is refused
unless --rehearsal says that is meant (its device column then says "cpu").
``make all`` then fills the paper's paper-scale rows from results/gpu.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from mdtheory.cli import OneLineParser, run_cli
from mdtheory.errors import UserError
from mdtheory.runfiles import hold_root

from .__main__ import OUTPUTS

LOG, SUMMARY, RUNS = OUTPUTS
STUDIES = ("parity", "lm")
KEPT = ("phases",)  # the phase records (GEMM, timing rows) travel with the runs
MARKER = ".gpu_ingest.json"  # what an ingest leaves in RESULTS; only such a folder may be replaced


def read_summary(source: Path) -> dict:
    try:
        summary = json.loads((source / SUMMARY).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{source / SUMMARY} not found: is {source} the --out folder of a GPU check?") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{source / SUMMARY} is not readable JSON ({type(exc).__name__})") from None
    if not isinstance(summary, dict) or "check" not in summary:
        raise UserError(f"{source / SUMMARY} is not a GPU check summary")
    return summary


def unpack(tarball: Path, dest: Path) -> list[str]:
    """Extract the studies' files (plain files and folders only, no path that
    leaves DEST); returns the top-level folders found."""
    try:
        tar = tarfile.open(tarball, "r:gz")
    except FileNotFoundError:
        raise UserError(f"{tarball} not found") from None
    except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
        raise UserError(f"{tarball} is not a readable tar.gz ({type(exc).__name__})") from None
    with tar:
        members = []
        try:
            listing = tar.getmembers()
        except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:  # e.g. a truncated download
            raise UserError(f"{tarball} is damaged or truncated ({type(exc).__name__})") from None
        for m in listing:
            parts = Path(m.name).parts
            if m.name.startswith("/") or ".." in parts or not (m.isfile() or m.isdir()):
                raise UserError(f"{tarball} holds {m.name!r}, which is not a plain file inside it")
            if parts and parts[0] in STUDIES + KEPT:
                members.append(m)
        try:
            tar.extractall(dest, members=members)
        except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
            raise UserError(f"cannot unpack {tarball}: {exc}") from None
    return sorted({Path(m.name).parts[0] for m in members})


def aggregate(staging: Path) -> dict:
    """Run each study's aggregator on what came back; {study: devices}."""
    from ..lm.summarize import main as lm_summarize
    from ..parity.summarize import summarize_root

    devices = {}
    if (staging / "parity" / "runs").is_dir():
        table = summarize_root(staging / "parity")
        devices["parity"] = (len(table), sorted(set(table["device"].dropna())))
    if (staging / "lm" / "window_sweep.csv").is_file():
        if lm_summarize(["--results", str(staging / "lm")]) != 0:
            raise UserError("the LM aggregator failed on the GPU sweep")
        by_window = pd.read_csv(staging / "lm" / "window_sweep_by_window.csv")
        devices["lm"] = (int(by_window["seeds"].sum()),
                         sorted({d for cell in by_window["device"].dropna() for d in str(cell).split("; ")}))
    return devices


def check_target(results: Path) -> None:
    """RESULTS may be replaced only if it is absent, an empty folder, or an
    earlier ingest's folder (its marker file); refuse anything else."""
    if not results.exists():
        return
    if not results.is_dir() or results.is_symlink():
        raise UserError(f"--results {results} exists and is not a folder of an earlier ingest")
    try:
        entries = [p.name for p in results.iterdir()]
    except OSError as exc:
        raise UserError(f"cannot read --results {results}: {exc.strerror or exc}") from None
    if entries and MARKER not in entries:
        raise UserError(f"--results {results} holds other files ({', '.join(sorted(entries)[:3])}"
                        f"{', ...' if len(entries) > 3 else ''}) and no {MARKER} of an earlier ingest: "
                        f"choose a new or empty folder (nothing was changed)")


def ingest(source: Path, results: Path, rehearsal: bool = False) -> dict:
    summary = read_summary(source)
    mode = summary["check"].get("mode")
    if mode != "gpu" and not rehearsal:
        raise UserError(f"{source} holds a --{mode} check (a CPU rehearsal, not GPU results); "
                        "pass --rehearsal to ingest it anyway")
    results = Path(os.path.abspath(results))  # "." and "dir/" name a real parent and folder name
    if results.parent == results:
        raise UserError(f"--results {results} is a filesystem root; choose a folder for the GPU results")
    check_target(results)
    with hold_root(results.parent / f".{results.name}.ingest.lock", f"--results {results}"):
        check_target(results)  # again, now that no other ingest can change it
        return _replace(source, results, summary, mode)


def _replace(source: Path, results: Path, summary: dict, mode: str) -> dict:
    """Build the new RESULTS in a staging folder, then swap it in by renames."""
    staging = results.parent / f".{results.name}.ingest-{os.getpid()}"
    old = results.parent / f".{results.name}.old-{os.getpid()}"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as exc:
        raise UserError(f"cannot write next to --results {results}: {exc.strerror or exc}") from None
    try:
        found = unpack(source / RUNS, staging)
        if not set(found) & set(STUDIES):
            raise UserError(f"{source / RUNS} holds neither parity/ nor lm/ results")
        devices = aggregate(staging)
        try:
            shutil.copyfile(source / SUMMARY, staging / SUMMARY)
            if (source / LOG).is_file():
                shutil.copyfile(source / LOG, staging / LOG)
            (staging / MARKER).write_text(json.dumps({
                "ingested_from": str(source.resolve()), "card": summary.get("device"), "mode": mode,
                "ingested_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}, indent=2) + "\n")
        except OSError as exc:
            raise UserError(f"cannot write the GPU results next to {results}: {exc.strerror or exc}") from None
        if results.exists():
            results.rename(old)
        try:
            staging.rename(results)
        except OSError as exc:
            if old.exists():
                old.rename(results)  # put the previous results back
            raise UserError(f"cannot move the GPU results into {results}: {exc.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return {"card": summary.get("device"), "mode": mode, "studies": devices}


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m experiments.gpu_check.ingest", description=__doc__.split("\n")[0])
    p.add_argument("--from", dest="source", metavar="DIR", required=True,
                   help=f"folder holding {SUMMARY} and {RUNS} (the check's --out)")
    p.add_argument("--results", default="results/gpu", help="where the GPU results go (replaced as a whole)")
    p.add_argument("--rehearsal", action="store_true", help="accept a --tiny check (it ran on the CPU)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    source = Path(args.source)
    if not source.is_dir():
        raise UserError(f"--from {source} is not a folder")
    report = ingest(source, Path(args.results), args.rehearsal)
    print(f"{args.results}: check ({report['mode']}) on {report['card']}")
    for study, (runs, devices) in report["studies"].items():
        print(f"  {study}: {runs} runs, device column {', '.join(devices) or '(empty)'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
