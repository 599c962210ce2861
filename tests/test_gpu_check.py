"""The one-command GPU check, rehearsed on the CPU (--tiny): its three output
files, the summary's fields, the run folders the aggregators read (through
the ingest command, into the paper's paper-scale rows), its deadlines and
its bad-input handling."""
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = {"gpu_check.log", "gpu_check_summary.json", "gpu_check_runs.tar.gz"}
SUMMARY_KEYS = {"check", "device", "versions", "gemm", "phases", "tests", "timing", "parity_grid",
                "lm_sweep", "files", "how_to_read", "provenance"}


def run_check(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "experiments.gpu_check", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    # a small English text that the BPE and the n-gram t* estimate can work with
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_text((REPO / "README.md").read_text(encoding="utf-8") * 6, encoding="utf-8")
    return path


@pytest.mark.slow
def test_tiny_check_writes_three_files_the_aggregators_read(tmp_path, text_file):
    out = tmp_path / "out"
    # a generous budget: phases that end early pass their time on, so it only
    # keeps a busy test machine from cutting a phase
    proc = run_check("--tiny", "--budget", "240", "--out", str(out), "--text-file", str(text_file),
                     "--workers", "2", "--stack", "3", timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert {p.name for p in out.iterdir()} == OUTPUTS
    summary = json.loads((out / "gpu_check_summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["check"]["mode"] == "tiny"
    assert summary["check"]["elapsed_s"] <= summary["check"]["budget_s"]
    assert {n: p["status"] for n, p in summary["phases"].items()} == \
        {"info": "ok", "tests": "ok", "timing": "ok", "grids": "ok"}
    assert summary["gemm"]["reference_flops"] > 0
    assert summary["tests"]["files"] == ["tests/test_gpu.py"]
    rows = summary["timing"]["rows"]
    assert {r["comparison"] for r in rows} >= {"fp32 vs bf16", "unfused vs fused AdamW", "one by one vs stacked"}
    for r in rows:  # MFU where the row times one run's tokens
        assert r["pairs"] >= 5 and r["median_ratio"] > 0 and (r["b"] == "3 runs stacked" or 0 < r["mfu_a"] < 1)
    parity = summary["parity_grid"]
    assert parity["runs_finished"] == parity["runs_planned"] == 7  # 6 MD windows + OS, one seed
    assert parity["jobs_planned"] == 3  # --stack 3: the MD windows in two stacks, OS alone
    lm = summary["lm_sweep"]
    assert lm["runs_finished"] == lm["runs_planned"] >= 11  # ten windows + U[0,1] (+ predicted t*)
    assert len(lm["final"]) == lm["runs_planned"] and not lm["unfinished"]
    # the runs come back as the CPU studies' layout, without checkpoints
    with tarfile.open(out / "gpu_check_runs.tar.gz") as tar:
        names = tar.getnames()
        assert not [n for n in names if n.endswith(".pt")]
        assert "lm/window_sweep.csv" in names and "parity/summary.csv" in names
    # ingested as GPU results would be, through the same aggregators, into the paper's paper-scale rows
    from experiments.gpu_check.ingest import main as ingest
    from mdtheory.plots import paper_tables
    assert ingest(["--from", str(out), "--results", str(tmp_path / "results" / "gpu"), "--rehearsal"]) == 0
    runs = pd.read_csv(tmp_path / "results" / "gpu" / "parity" / "summary.csv")
    assert len(runs) == 7 and set(runs["device"]) == {"cpu"}  # a CPU rehearsal says so
    by_window = pd.read_csv(tmp_path / "results" / "gpu" / "lm" / "window_sweep_by_window.csv")
    assert set(by_window["device"]) == {"cpu"} and by_window["best_on_val"].sum() == 1
    paper_tables.write_all(tmp_path / "results", tmp_path / "tables")
    paper_scale = (tmp_path / "tables" / "comparison.tex").read_text().split("Paper scale")[1].split("midrule")[0]
    assert "results/gpu} on cpu" in paper_scale and "$(8,2)$, wd 0.1" in paper_scale
    log = (out / "gpu_check.log").read_text()
    assert "phase grids: ok" in log and "== gpu_check (tiny)" in log


@pytest.mark.slow
def test_phases_that_run_past_their_deadline_are_cut_and_the_summary_still_written(tmp_path, text_file):
    out = tmp_path / "out"
    # 10 s cannot hold four phases that each start Python and torch: some are
    # skipped or stopped, and the check still ends with its three files
    proc = run_check("--tiny", "--budget", "10", "--out", str(out), "--text-file", str(text_file), timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert {p.name for p in out.iterdir()} == OUTPUTS
    summary = json.loads((out / "gpu_check_summary.json").read_text())
    statuses = {p["status"] for p in summary["phases"].values()}
    assert statuses & {"timeout", "skipped"}
    assert summary["check"]["elapsed_s"] < 10 + 20  # the grace a stopped phase gets, at most


@pytest.mark.parametrize("args, message", [
    (["--tiny", "--budget", "1", "--out", "OUT"], "--budget must be between"),
    (["--tiny"], "--out DIR is required"),
    (["--tiny", "--out", "FILE"], "is not a folder"),
    (["--tiny", "--out", "OUT", "--text-file", "MISSING"], "is not a file"),
    (["--tiny", "--out", "OUT", "--workers", "0"], "--workers must be >= 1"),
    (["--tiny", "--out", "OUT", "--stack", "0"], "--stack must be >= 1"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message, capsys):
    (tmp_path / "FILE").write_text("mine")
    args = [str(tmp_path / a) if a in ("OUT", "FILE", "MISSING") else a for a in args]
    err = _exit_2(args, capsys)
    assert message in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "FILE").read_text() == "mine"
    assert not (tmp_path / "OUT").exists()


def _exit_2(args, capsys) -> str:
    from experiments.gpu_check.__main__ import main
    from mdtheory.cli import run_cli

    with pytest.raises(SystemExit) as exc:
        run_cli(main, args)
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_the_full_check_needs_cuda(tmp_path, capsys):
    if __import__("torch").cuda.is_available():
        pytest.skip("CUDA is here")
    assert "no CUDA device here" in _exit_2(["--out", str(tmp_path / "out")], capsys)
    assert not (tmp_path / "out").exists()

