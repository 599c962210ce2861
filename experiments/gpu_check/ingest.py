"""Bring a GPU check's results into the project: ``python -m experiments.gpu_check.ingest --from DIR``.

RESULTS (default results/gpu) is built in a staging folder with both
studies' aggregators run there, then swapped in whole; only a new, empty or
earlier-ingest folder is ever replaced. A --tiny check needs --rehearsal.
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
KEPT = ("parity", "lm", "phases")  # the studies, and the phase records (GEMM, timing rows)
MARKER = ".gpu_ingest.json"  # what an ingest leaves in RESULTS; only such a folder is replaced


def unpack(tarball: Path, dest: Path) -> None:
    """Extract the KEPT folders; tarfile's "data" filter refuses a member that
    would land outside DEST ('..', a link out) or is a device."""
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            members = tar.getmembers()  # reads the whole archive: a truncated one fails here
            tar.extractall(dest, [m for m in members if m.name.split("/")[0] in KEPT], filter="data")
    except tarfile.FilterError as exc:
        raise UserError(f"{tarball} holds {exc.tarinfo.name!r}, which is not a plain file inside it") from None
    except FileNotFoundError:
        raise UserError(f"{tarball} not found") from None
    except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
        raise UserError(f"{tarball} is not a readable tar.gz (damaged or truncated: {type(exc).__name__})") from None
    if not ((dest / "parity").is_dir() or (dest / "lm").is_dir()):
        raise UserError(f"{tarball} holds neither parity/ nor lm/ results")


def aggregate(staging: Path) -> dict:
    """Run each study's aggregator on what came back; {study: (runs, devices)}."""
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
    """Refuse a RESULTS that is neither absent, empty, nor an earlier ingest."""
    if results.exists() and (not results.is_dir() or results.is_symlink()):
        raise UserError(f"--results {results} exists and is not a folder of an earlier ingest")
    try:
        entries = sorted(p.name for p in results.iterdir()) if results.exists() else []
    except OSError as exc:
        raise UserError(f"cannot read --results {results}: {exc.strerror or exc}") from None
    if entries and MARKER not in entries:
        raise UserError(f"--results {results} holds other files ({', '.join(entries[:3])}"
                        f"{', ...' if len(entries) > 3 else ''}) and no {MARKER} of an earlier ingest: "
                        f"choose a new or empty folder (nothing was changed)")


def ingest(source: Path, results: Path, rehearsal: bool = False) -> dict:
    try:
        summary = json.loads((source / SUMMARY).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{source / SUMMARY} not found: is {source} the --out folder of a GPU check?") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{source / SUMMARY} is not readable JSON ({type(exc).__name__})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("check"), dict):
        raise UserError(f"{source / SUMMARY} is not a GPU check summary")
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
        staging = results.parent / f".{results.name}.ingest-{os.getpid()}"
        old = results.parent / f".{results.name}.old-{os.getpid()}"
        try:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            unpack(source / RUNS, staging)
            devices = aggregate(staging)
            shutil.copyfile(source / SUMMARY, staging / SUMMARY)
            if (source / LOG).is_file():
                shutil.copyfile(source / LOG, staging / LOG)
            (staging / MARKER).write_text(json.dumps({
                "ingested_from": str(source.resolve()), "card": summary.get("device"), "mode": mode,
                "ingested_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}, indent=2) + "\n")
            if results.exists():
                results.rename(old)
            try:
                staging.rename(results)
            except OSError:
                if old.exists():
                    old.rename(results)  # put the previous results back
                raise
        except OSError as exc:
            raise UserError(f"cannot write the GPU results at {results}: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
    return {"card": summary.get("device"), "mode": mode, "studies": devices}


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m experiments.gpu_check.ingest", description=__doc__.split("\n")[0])
    p.add_argument("--from", dest="source", metavar="DIR", required=True,
                   help=f"folder holding {SUMMARY} and {RUNS} (the check's --out)")
    p.add_argument("--results", default="results/gpu", help="where the GPU results go (replaced as a whole)")
    p.add_argument("--rehearsal", action="store_true", help="accept a --tiny check (it ran on the CPU)")
    args = p.parse_args(argv)
    if not Path(args.source).is_dir():
        raise UserError(f"--from {args.source} is not a folder")
    report = ingest(Path(args.source), Path(args.results), args.rehearsal)
    print(f"{args.results}: check ({report['mode']}) on {report['card']}")
    for study, (runs, devices) in report["studies"].items():
        print(f"  {study}: {runs} runs, device column {', '.join(devices) or '(empty)'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
