"""Bring a GPU check's results into the project: ``python -m experiments.gpu_check.ingest --from DIR``.

RESULTS (default results/gpu) is built in a staging folder with both studies' aggregators run there, then
swapped in whole; only a new, empty or earlier-ingest folder is ever replaced. A --tiny check needs --rehearsal.
"""
from __future__ import annotations

import json
import os
import shutil
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
    if not devices:
        raise UserError("the check's tarball holds neither parity/ nor lm/ results")
    return devices


def check_target(results: Path) -> None:
    """Refuse a RESULTS that is neither absent, empty, nor an earlier ingest."""
    try:
        entries = sorted(p.name for p in results.iterdir()) if results.exists() else []
    except OSError as exc:  # a file, or unreadable
        raise UserError(f"--results {results} is not a folder of an earlier ingest ({exc.strerror})") from None
    if results.is_symlink() or (entries and MARKER not in entries):
        raise UserError(f"--results {results} holds other files ({', '.join(entries[:3])}) and no {MARKER} "
                        f"of an earlier ingest: choose a new or empty folder (nothing was changed)")


def ingest(source: Path, results: Path, rehearsal: bool = False) -> dict:
    try:
        summary = json.loads((source / SUMMARY).read_text(encoding="utf-8"))
        mode = summary["check"]["mode"]
    except FileNotFoundError:
        raise UserError(f"{source / SUMMARY} not found: is {source} the --out folder of a GPU check?") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UserError(f"{source / SUMMARY} is not readable JSON of a GPU check ({type(exc).__name__})") from None
    if mode != "gpu" and not rehearsal:
        raise UserError(f"{source} holds a --{mode} check (a CPU rehearsal, not GPU results); "
                        "pass --rehearsal to ingest it anyway")
    results = Path(os.path.abspath(results))  # "." and "dir/" name a real parent and folder name
    if results.parent == results:
        raise UserError(f"--results {results} is a filesystem root; choose a folder for the GPU results")
    check_target(results)
    with hold_root(results.parent / f".{results.name}.ingest.lock", f"--results {results}"):
        check_target(results)  # again, now that no other ingest can change it
        staging, old = (results.parent / f".{results.name}.{what}-{os.getpid()}" for what in ("ingest", "old"))
        try:
            shutil.rmtree(staging, ignore_errors=True)  # left by a killed ingest of the same pid
            staging.mkdir()
            unpack(source / RUNS, staging)
            devices = aggregate(staging)
            for name in (SUMMARY, LOG):
                if (source / name).is_file():
                    shutil.copyfile(source / name, staging / name)
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
    raise SystemExit(run_cli(main))
