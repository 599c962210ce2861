"""A GPU check's results into the project: the ingest command unpacks the
check's tarball, runs both studies' aggregators there and keeps the card's
name (a synthetic check with a made-up card stands in for a device run);
provenance names the card a run trained on."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mdtheory.runfiles import write_config
from test_plots import _parity_records, lm_records, parity_task

REPO = Path(__file__).resolve().parents[1]
CARD = "Fake GPU 9000 80GB"
WINDOWS = ((0.0, 0.1), (0.0, 0.2), (0.0, 0.3))


def _run(root: Path, name: str, task: dict, records: list[dict], device: str, card: str | None) -> None:
    run = root / name
    run.mkdir(parents=True)
    prov = {"device": device, **({"accelerator": card} if card else {})}
    write_config(run, task, {"steps": records[-1]["step"], "weight_decay": 0.1, "lr": 1e-3}, 1, prov)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def fake_check(out: Path, card: str | None = CARD, mode: str = "gpu") -> Path:
    """The three files of a GPU check, as if it had run on ``card`` (None:
    on the CPU): a (20,6) parity grid (OS never reaches 0.99, MD U[0,0.2]
    fastest) and an LM sweep of three windows and U[0,1] over two seeds."""
    work = out.parent / f"{out.name}_work"
    device = "cuda:0" if card else "cpu"
    rng = np.random.default_rng(0)
    runs = work / "parity" / "runs"
    for seed in (0, 1):
        _run(runs, f"os_s{seed}", parity_task("os", seed, n=20, k=6), _parity_records(None, rng), device, card)
        for (t0, t1), reach in zip(WINDOWS, (600, 300, 500)):
            _run(runs, f"md{t1}_s{seed}", parity_task("md", seed, (t0, t1), n=20, k=6),
                 _parity_records(reach + 100 * seed, rng), device, card)
    lm, sweep = work / "lm", []
    for kind, (t0, t1), loss in [("window", (0.2, 0.3), 3.7), ("window", (0.4, 0.5), 3.5),
                                 ("window", (0.6, 0.7), 3.8), ("uniform", (0.0, 1.0), 3.9)]:
        for seed in (0, 1):
            name = f"{kind}{t0}-{t1}_s{seed}"
            _run(lm / "runs" / "gpu_check", name,
                 {"objective": "md", "sampler": f"window:{t0},{t1}", "seed": seed}, lm_records(loss), device, card)
            sweep.append({"preset": "gpu_check", "run": name, "kind": kind, "objective": "md", "t0": t0, "t1": t1,
                          "seed": seed, "steps": 50, "full_range_test_loss": loss + 0.01 * seed,
                          "full_range_test_loss_se": 0.01, "full_range_val_loss": loss + 0.05,
                          "run_dir": f"/tmp/elsewhere/{name}"})  # where the device trained it
    pd.DataFrame(sweep).to_csv(lm / "window_sweep.csv", index=False)
    (lm / "window_sweep.json").write_text(json.dumps({"preset": {
        "n_layer": 6, "n_embd": 384, "corpus": "shakespeare", "tokenizer": "bpe", "vocab_size": 4096}}))
    (work / "phase_info.json").write_text(json.dumps({"info": {"device": card}}))
    out.mkdir(parents=True)
    with tarfile.open(out / "gpu_check_runs.tar.gz", "w:gz") as tar:
        for path in sorted((work / "parity").rglob("*")) + sorted((work / "lm").rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(work)))
        tar.add(work / "phase_info.json", arcname="phases/phase_info.json")
    (out / "gpu_check_summary.json").write_text(json.dumps({"check": {"mode": mode}, "device": card or "CPU"}))
    (out / "gpu_check.log").write_text("the check's log\n")
    return out


def ingest(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.gpu_check.ingest", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def gpu_results(tmp_path) -> Path:
    """results/ holding only results/gpu, ingested from a synthetic check."""
    proc = ingest("--from", fake_check(tmp_path / "check"), "--results", tmp_path / "results" / "gpu")
    assert proc.returncode == 0, proc.stderr
    assert f"on {CARD}" in proc.stdout and f"parity: 8 runs, device column {CARD}" in proc.stdout
    return tmp_path / "results"


def test_ingest_runs_both_aggregators_and_names_the_card(gpu_results):
    gpu = gpu_results / "gpu"
    runs = pd.read_csv(gpu / "parity" / "summary.csv")
    assert len(runs) == 8 and set(runs["device"]) == {CARD}
    assert (gpu / "parity" / "summary_by_condition.csv").is_file()
    by_window = pd.read_csv(gpu / "lm" / "window_sweep_by_window.csv")
    assert len(by_window) == 4 and set(by_window["device"]) == {CARD}
    assert by_window.loc[by_window["best_on_val"], "t0"].item() == 0.4
    assert json.loads((gpu / "gpu_check_summary.json").read_text())["device"] == CARD
    assert (gpu / "gpu_check.log").is_file() and (gpu / "phases" / "phase_info.json").is_file()
    # nothing left beside it but the lock file: the staging folder was renamed into place
    assert sorted(p.name for p in gpu_results.iterdir()) == [".gpu.ingest.lock", "gpu"]
    assert json.loads((gpu / ".gpu_ingest.json").read_text())["card"] == CARD


def test_ingest_again_replaces_the_results(gpu_results, tmp_path):
    (gpu_results / "gpu" / "stale.txt").write_text("from before")
    proc = ingest("--from", fake_check(tmp_path / "check2", card="Other Card"), "--results", gpu_results / "gpu")
    assert proc.returncode == 0, proc.stderr
    assert not (gpu_results / "gpu" / "stale.txt").exists()
    assert set(pd.read_csv(gpu_results / "gpu" / "parity" / "summary.csv")["device"]) == {"Other Card"}


def test_a_tiny_check_is_a_rehearsal(tmp_path):
    check = fake_check(tmp_path / "check", card=None, mode="tiny")
    proc = ingest("--from", check, "--results", tmp_path / "gpu")
    assert proc.returncode == 2 and "--rehearsal" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "gpu").exists()
    proc = ingest("--from", check, "--results", tmp_path / "gpu", "--rehearsal")
    assert proc.returncode == 0, proc.stderr
    assert set(pd.read_csv(tmp_path / "gpu" / "parity" / "summary.csv")["device"]) == {"cpu"}


def test_a_tarball_that_escapes_its_folder_is_refused_and_old_results_kept(gpu_results, tmp_path):
    check = fake_check(tmp_path / "check2")
    with tarfile.open(check / "gpu_check_runs.tar.gz", "w:gz") as tar:
        data = b"not yours"
        info = tarfile.TarInfo("parity/../../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    before = (gpu_results / "gpu" / "parity" / "summary.csv").read_text()
    proc = ingest("--from", check, "--results", gpu_results / "gpu")
    assert proc.returncode == 2 and "not a plain file inside it" in proc.stderr
    assert (gpu_results / "gpu" / "parity" / "summary.csv").read_text() == before
    assert sorted(p.name for p in gpu_results.iterdir()) == [".gpu.ingest.lock", "gpu"]
    assert not list(tmp_path.rglob("escaped.txt"))


@pytest.mark.parametrize("damage, message", [
    (lambda c: (c / "gpu_check_summary.json").unlink(), "the --out folder of a GPU check?"),
    (lambda c: (c / "gpu_check_summary.json").write_text("{"), "not readable JSON"),
    (lambda c: (c / "gpu_check_runs.tar.gz").write_bytes(b"garbage"), "not a readable tar.gz"),
    (lambda c: (c / "gpu_check_runs.tar.gz").unlink(), "not found"),
    # a download cut short: the gzip stream ends inside the archive
    (lambda c: (c / "gpu_check_runs.tar.gz").write_bytes((c / "gpu_check_runs.tar.gz").read_bytes()[:300]),
     "tar.gz"),
])
def test_bad_check_folder_is_one_line_and_exit_2(tmp_path, damage, message):
    check = fake_check(tmp_path / "check")
    damage(check)
    proc = ingest("--from", check, "--results", tmp_path / "gpu")
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "gpu").exists() and not list(tmp_path.glob(".gpu.ingest-*"))


def test_missing_from_folder(tmp_path):
    proc = ingest("--from", tmp_path / "nowhere", "--results", tmp_path / "gpu")
    assert proc.returncode == 2 and "is not a folder" in proc.stderr


def test_provenance_names_the_card_on_cuda(monkeypatch):
    import torch

    from mdtheory.provenance import device_label, provenance

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: CARD)
    record = provenance(device="cuda:0")
    assert record["device"] == "cuda:0" and record["accelerator"] == CARD
    assert device_label(record) == CARD
    assert "accelerator" not in provenance(device="cpu")
    assert device_label({"device": "cpu"}) == "cpu"
    assert device_label({"device": "cuda"}) == "cuda"  # a record from before card names
    assert device_label({}) == ""


def test_no_card_name_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is here")
    from mdtheory.provenance import provenance

    assert provenance(device="cuda")["accelerator"] is None


@pytest.mark.parametrize("card", [CARD, None])
def test_figures_name_the_card_only_for_gpu_results(tmp_path, monkeypatch, card):
    import mdtheory.plots.__main__ as plots

    proc = ingest("--from", fake_check(tmp_path / "check", card=card, mode="gpu" if card else "tiny"),
                  "--results", tmp_path / "gpu", "--rehearsal")
    assert proc.returncode == 0, proc.stderr
    notes = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, out, name: notes.update({name: [t.get_text() for t in fig.texts]}))
    plots.draw_all(tmp_path / "gpu", tmp_path / "figs", only=["parity_accuracy", "lm_window_sweep"], verbose=False)
    assert set(notes) == {"parity_accuracy", "lm_window_sweep"}
    for texts in notes.values():
        assert (f"trained on {CARD}" in texts) if card else not [t for t in texts if "trained on" in t]


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("target", ["results", "dot", "file"])
def test_ingest_never_replaces_a_folder_it_did_not_write(tmp_path, target):
    """--results naming the whole results tree, the working folder or a file is
    refused with one line before anything is touched."""
    check = fake_check(tmp_path / "check")
    work = tmp_path / "work"
    (work / "results" / "lm" / "mine").mkdir(parents=True)
    (work / "results" / "lm" / "mine" / "run.json").write_text("uncommitted work")
    (work / "afile").write_text("keep me")
    before = _tree(work)
    arg = {"results": "results", "dot": ".", "file": "afile"}[target]
    proc = subprocess.run([sys.executable, "-m", "experiments.gpu_check.ingest", "--from", str(check),
                           "--results", arg], cwd=work, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert _tree(work) == before


def test_ingest_into_an_empty_folder_and_then_again(tmp_path):
    (tmp_path / "gpu").mkdir()
    assert ingest("--from", fake_check(tmp_path / "check"), "--results", tmp_path / "gpu").returncode == 0
    assert (tmp_path / "gpu" / ".gpu_ingest.json").is_file()


def test_a_second_ingest_into_the_same_target_is_refused_naming_the_holder(tmp_path):
    from mdtheory.runfiles import hold_root

    with hold_root(tmp_path / ".gpu.ingest.lock", "test"):
        proc = ingest("--from", fake_check(tmp_path / "check"), "--results", tmp_path / "gpu")
    assert proc.returncode == 2 and f"pid {os.getpid()}" in proc.stderr
    assert not (tmp_path / "gpu").exists()
