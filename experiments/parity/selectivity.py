"""Which input bits does a trained reduced MLP read? Per-position weight selectivity.

    python -m experiments.parity.selectivity --root results/parity/paper_mlp

Per position j, s_j = ||W e_(1,j) - W e_(0,j)|| of the final checkpoint's
first layer, and ``ratio`` = mean s_j over the secret set S / mean over the
other input bits (mdtheory.train.diagnostics: bit selectivity; runs log the
ratio at every evaluation as ``secret_selectivity``): about 1 when the model
reads every bit alike, larger the more it has singled out S.

Every finished reduced-MLP run under ROOT/runs whose final checkpoint is on
disk gets one row in ROOT/selectivity.csv (checkpoints are not committed, so
rows of runs whose checkpoint is absent here are kept as they are; a row is
replaced only when its run is scored again).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch

from mdtheory.cli import OneLineParser, atomic_write_text, run_cli, write_provenance_json
from mdtheory.errors import UserError
from mdtheory.provenance import provenance
from mdtheory.runfiles import CKPT_NAME, read_runs
from mdtheory.train.checkpoint import load_checkpoint
from mdtheory.train.diagnostics import bit_selectivity, secret_selectivity

OUT_NAME = "selectivity.csv"
KEY = "run"
FINISHED = ("complete", "early_stop")


def score(run) -> dict:
    data = run.task["data"]
    tokens, secret, n = data["tokens"], data["secret"], data["n"]
    ckpt = load_checkpoint(run.path / CKPT_NAME)
    s = bit_selectivity(ckpt["model"]["W.weight"], n + 1, tokens["bit0"], tokens["bit1"])
    window = run.window
    return {KEY: run.name, "objective": run.objective, "t0": window[0] if window else None,
            "t1": window[1] if window else None, "seed": run.seed, "step": int(ckpt["step"]),
            "final_val_acc": run.final.get("val_acc"), "secret": " ".join(map(str, secret)),
            "secret_mean": sum(s[j] for j in secret) / len(secret),
            "other_mean": sum(s[j] for j in range(n) if j not in secret) / (n - len(secret)),
            "ratio": secret_selectivity(s, secret), "label_position": s[n], **{f"s{j}": v for j, v in enumerate(s)}}


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m experiments.parity.selectivity", description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="a parity results root (its runs/ holds the run folders)")
    args = p.parse_args(argv)
    root = Path(args.root)
    if not (root / "runs").is_dir():
        raise UserError(f"--root {root} has no runs/ folder")
    # finished by the runner (run.json): its checkpoint is the model at its last evaluation
    runs = [r for r in read_runs(root / "runs") if r.task.get("model") == "mlp"
            and r.marker.get("status") in FINISHED and (r.path / CKPT_NAME).is_file()]
    out = root / OUT_NAME
    try:
        old = pd.read_csv(out) if out.is_file() else pd.DataFrame(columns=[KEY])
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' parser and empty-data errors are ValueErrors
        raise UserError(f"{out} is not a readable CSV ({type(exc).__name__}): move it away to rescore") from None
    if KEY not in old.columns:
        raise UserError(f"{out} has no {KEY!r} column: it was not written by this command; move it away")
    if not runs and old.empty:
        raise UserError(f"no finished reduced-MLP run with its {CKPT_NAME} under {root / 'runs'}")
    torch.set_num_threads(1)
    new = pd.DataFrame([score(r) for r in runs], columns=None if runs else [KEY])
    kept = old[~old[KEY].isin(new[KEY])]
    table = (new if kept.empty else kept if new.empty else pd.concat([kept, new], ignore_index=True)).sort_values(KEY)
    atomic_write_text(out, table.to_csv(index=False))
    write_provenance_json(out.with_suffix(".json"), {"scored_now": sorted(new[KEY]),
                                                     "provenance": provenance()}, describes=[out])
    print(table[[KEY, "step", "final_val_acc", "secret_mean", "other_mean", "ratio"]].round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
