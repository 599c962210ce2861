"""Failure modes that once ended in a traceback, an OOM kill or silently wrong
results: memory of the training batch, two sweeps on one results root,
repeated seeds, a full disk, stale
temporary files, files that are not regular files, damaged metrics, late
validation, file modes and over-confident recommendations.

The disk-full tests mount a 200 KiB tmpfs (root only); elsewhere they skip.
"""
from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from mdtheory.cli import atomic_write_json, atomic_write_text, run_cli
from mdtheory.errors import OutputError, UserError
from mdtheory.runfiles import CKPT_NAME, METRICS_NAME, MetricsLog, hold_root, read_metrics, read_runs
from mdtheory.train.__main__ import main as train_main
from mdtheory.train.checkpoint import load_checkpoint
from mdtheory.train.parity_task import ParityTask, ParityTaskConfig, estimate_memory

from experiments.lm import durability as D
from experiments.lm import summarize as S
from experiments.lm import sweep
from test_lm_sweep import micro  # noqa: F401  (the same tiny sweep preset, a fixture)

REPO = Path(__file__).resolve().parent.parent
P = ["parity", "--n", "8", "--k", "2", "--train-size", "64", "--val-size", "32", "--n-layer", "1",
     "--n-head", "1", "--n-embd", "8", "--batch-size", "16", "--steps", "4", "--eval-every", "2",
     "--no-progress", "--threads", "1"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def cli(main, argv, capsys):
    """Run a tool in-process; (exit status, stdout, stderr)."""
    try:
        code = run_cli(main, argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code, err, *words):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# ---- 2: the training batch's memory is estimated before allocation -----------------------

@pytest.mark.parametrize("model", ["transformer", "mlp"])
def test_parity_batch_size_is_counted_in_the_memory_estimate(model):
    cfg = ParityTaskConfig(n=8, k=2, train_size=64, val_size=32, n_layer=1, n_head=1, n_embd=8, model=model)
    small, big = (sum(estimate_memory(cfg, b).values()) for b in (16, 100_000_000))
    assert big > 50 * 2 ** 30 > small  # ~22 GB were allocated before the OOM kill
    ParityTask.check_memory(cfg, available=2 ** 30, batch_size=16)
    with pytest.raises(UserError, match="--batch-size"):
        ParityTask.check_memory(cfg, available=20 * 2 ** 30, batch_size=100_000_000)


@contextlib.contextmanager
def address_space_limit(extra: int = 4 << 30):
    """At most ``extra`` bytes more address space: code that tries to
    allocate tens of GB fails here (MemoryError) instead of being OOM-killed
    along with whatever else runs on the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as fh:
        vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    cap = vm + extra if hard == resource.RLIM_INFINITY else min(vm + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("model", ["transformer", "mlp"])
def test_parity_huge_batch_is_one_line_before_the_run_folder_exists(model, tmp_path, capsys):
    out = tmp_path / "run"
    with address_space_limit():
        try:
            code, _, err = cli(train_main, [*P, "--model", model, "--batch-size", "100000000", "--out", str(out)],
                               capsys)
        except MemoryError:
            pytest.fail("the batch was allocated instead of refused")
    one_line(code, err, "GiB", "--batch-size")
    assert not out.exists()


# ---- 3: one process per results root; metrics whose steps do not increase -----------------

def _hold_in_another_process(lock: Path):
    """A separate process holding ``lock`` (as a running sweep would); it
    prints its pid once it holds it."""
    code = ("import sys, time; from mdtheory.runfiles import hold_root\n"
            "with hold_root(sys.argv[1], 'root'):\n"
            "    print('held', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True,
                            cwd=REPO)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_lm_sweep_on_one_results_root_is_refused(micro, tmp_path, capsys):
    results = tmp_path / "res"
    results.mkdir()
    holder = _hold_in_another_process(results / ".lock")
    try:
        code, _, err = cli(sweep.main, ["--preset", "micro", "--results", str(results), "--no-progress"], capsys)
    finally:
        holder.kill()
        holder.wait()
    one_line(code, err, "in use by another process", f"pid {holder.pid}")
    assert files_under(results) == [".lock"]  # nothing trained, nothing written
    # once the holder is gone the sweep runs (the lock goes with its process)
    assert cli(sweep.main, ["--preset", "micro", "--results", str(results), "--no-progress"], capsys)[0] == 0


def test_durability_and_parity_runner_hold_their_roots(tmp_path, capsys):
    from experiments.parity import run as parity_run

    results = tmp_path / "lm"
    results.mkdir()
    (results / "window_sweep_summary.json").write_text(json.dumps({"best_window": {"t0": 0.3, "t1": 0.4}}))
    root = tmp_path / "parity"
    with hold_root(results / ".lock", "a sweep"), hold_root(root / ".lock", "a parity study"):
        code, _, err = cli(D.main, ["--results", str(results), "--collect-only"], capsys)
        one_line(code, err, "in use by another process")
        code, _, err = cli(parity_run.main, ["--preset", "tiny", "--root", str(root), "--no-progress"], capsys)
        one_line(code, err, "in use by another process")
    assert not (root / "runs").exists() or not any((root / "runs").iterdir())


def test_metrics_whose_steps_do_not_increase_are_refused(tmp_path):
    # two sweeps training one run at once: their records interleave
    path = tmp_path / METRICS_NAME
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (0, 2, 0, 2, 4)))
    with pytest.raises(UserError, match=r"line 3: step 0 does not follow step 2"):
        read_metrics(path)
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (0, 2, 2)))
    with pytest.raises(UserError, match="line 3"):
        read_metrics(path)
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (0, 2, 4)) + '{"step": 1')
    assert [r["step"] for r in read_metrics(path)] == [0, 2, 4]  # a torn last line is still dropped


# ---- 4: repeated seeds -------------------------------------------------------------------

def test_repeated_seeds_are_refused_before_anything_is_written(micro, tmp_path, capsys):
    results = tmp_path / "res"
    code, _, err = cli(sweep.main, ["--preset", "micro", "--seeds", "0", "0", "--results", str(results),
                                    "--no-progress"], capsys)
    one_line(code, err, "--seeds lists seed 0 more than once")
    assert not results.exists()
    lm = tmp_path / "lm"
    code, _, err = cli(D.main, ["--results", str(lm), "--seeds", "1", "1", "--no-progress"], capsys)
    one_line(code, err, "--seeds lists seed 1 more than once")
    assert not lm.exists()
    with pytest.raises(UserError, match="more than once"):
        sweep.plan(replace(micro, seeds=(0, 0)), tmp_path)


# ---- 5: a full disk, unreadable text files, non-finite sampler settings ----------------

@pytest.fixture
def tiny_disk(tmp_path):
    """A 200 KiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill(disk: Path, leave: int) -> Path:
    """A filler file leaving about ``leave`` bytes free on ``disk``."""
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(_free(disk) - leave, 0))
    return filler


def test_full_disk_during_training_is_one_line_and_keeps_the_last_checkpoint(tiny_disk, capsys):
    out = tiny_disk / "run"
    args = [*P, "--ckpt-every", "2", "--out", str(out)]
    assert cli(train_main, [*args, "--steps", "2"], capsys)[0] == 0
    ckpt_size = (out / CKPT_NAME).stat().st_size
    _fill(tiny_disk, ckpt_size // 2)  # room for config.json and a record, not for a second checkpoint
    code, _, err = cli(train_main, [*args, "--resume"], capsys)
    one_line(code, err, f"cannot write the checkpoint {out / CKPT_NAME}", "No space left on device",
             "last good checkpoint")
    assert load_checkpoint(out / CKPT_NAME)["step"] == 2
    assert [r["step"] for r in read_metrics(out)] in ([0, 2], [0, 2, 4])
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    # no room at all: the first write of the resume fails, and nothing is lost
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _fill(tiny_disk, 0)
    (tiny_disk / "filler2").write_bytes(b"\0" * _free(tiny_disk))
    code, _, err = cli(train_main, [*args, "--resume"], capsys)
    one_line(code, err, "cannot write", str(out), "No space left on device")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # with room again the run finishes where it left off
    for filler in tiny_disk.glob("filler*"):
        filler.unlink()
    assert cli(train_main, [*args, "--resume"], capsys)[0] == 0
    assert [r["step"] for r in read_metrics(out)] == [0, 2, 4]


def test_full_disk_cuts_a_torn_metrics_record_off(tiny_disk):
    log = MetricsLog(tiny_disk / METRICS_NAME)
    log.append({"step": 0, "loss": 1.0})
    before = (tiny_disk / METRICS_NAME).read_bytes()
    _fill(tiny_disk, 0)
    (tiny_disk / "filler2").write_bytes(b"\0" * _free(tiny_disk))
    with pytest.raises(OutputError, match="No space left on device") as info:
        log.append({"step": 1, "note": "x" * 20000})  # larger than the page it could still fill
    assert isinstance(info.value, OSError) and str(tiny_disk / METRICS_NAME) in str(info.value)
    assert (tiny_disk / METRICS_NAME).read_bytes() == before
    with pytest.raises(OutputError, match=f"cannot write {tiny_disk / 'a.json'}"):
        atomic_write_json(tiny_disk / "a.json", {"x": "y" * 20000})
    assert not (tiny_disk / "a.json").exists() and not list(tiny_disk.glob(".a.json.*"))


def test_full_disk_during_a_sweep_is_one_line(micro, tiny_disk, capsys):
    code, _, err = cli(sweep.main, ["--preset", "micro", "--results", str(tiny_disk / "res"), "--no-progress"],
                       capsys)
    one_line(code, err, "No space left on device", str(tiny_disk))


@pytest.mark.parametrize("argv", [
    ["lm", "--text-file", "/proc/self/mem"],
    ["ngram", "--text-file", "/proc/self/mem"],
])
def test_unreadable_text_file_is_one_line(argv, tmp_path, capsys):
    from mdtheory.derive.__main__ import main as derive_main

    main = train_main if argv[0] == "lm" else derive_main
    code, _, err = cli(main, [*argv, "--out", str(tmp_path / ("run" if argv[0] == "lm" else "t.json"))], capsys)
    one_line(code, err, "cannot read --text-file /proc/self/mem")


@pytest.mark.parametrize("spec, words", [
    ("signal-optimal:inf", "integer k"), ("signal-optimal:nan", "integer k"),
    ("signal-optimal:-inf,0.1", "integer k"),
])
def test_non_finite_sampler_settings_are_one_line(spec, words, tmp_path, capsys):
    code, _, err = cli(train_main, [*P, "--sampler", spec, "--out", str(tmp_path / "run")], capsys)
    one_line(code, err, words)


# ---- 6: stale temporary files of a killed writer ---------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_resume_and_fresh_start_remove_our_stale_temp_files(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*P, "--ckpt-every", "2", "--out", str(out)]
    assert cli(train_main, [*args, "--steps", "2"], capsys)[0] == 0
    dead, alive = _dead_pid(), os.getppid()
    stale = [f".ckpt.pt.{dead}.tmp", f".config.json.{dead}.k2j4h1.tmp", f".metrics.jsonl.{dead}.abc.tmp",
             ".config.json.x8q1zz_p.tmp", f".ckpt.pt.{os.getpid()}.tmp"]
    for name in stale:
        (out / name).write_bytes(b"\0" * 4096)
    (out / f".ckpt.pt.{alive}.tmp").write_bytes(b"being written")  # a live writer's: left alone
    (out / "notes.tmp").write_text("not ours")
    assert cli(train_main, [*args, "--resume"], capsys)[0] == 0
    left = sorted(p.name for p in out.iterdir())
    assert not set(stale) & set(left)
    assert f".ckpt.pt.{alive}.tmp" in left and "notes.tmp" in left
    # a fresh start in a folder of ours that stopped before its first checkpoint
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / f".ckpt.pt.{dead}.tmp").write_bytes(b"\0" * 4096)
    assert cli(train_main, [*P, "--out", str(fresh)], capsys)[0] == 0
    assert not list(fresh.glob("*.tmp"))


@pytest.mark.slow
def test_sigterm_during_a_checkpoint_write_leaves_nothing_after_resume(tmp_path, capsys):
    """A real SIGTERM while torch.save writes the checkpoint."""
    out = tmp_path / "run"
    args = [*P, "--ckpt-every", "2", "--out", str(out)]
    assert cli(train_main, [*args, "--steps", "2"], capsys)[0] == 0
    script = textwrap.dedent("""
        import os, signal, sys, time, torch
        from mdtheory.cli import run_cli
        from mdtheory.train.__main__ import main
        def save(obj, fh, *args, **kwargs):
            fh.write(b"\\0" * 65536); fh.flush()
            os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)
        torch.save = save
        sys.exit(run_cli(main, sys.argv[1:]))
    """)
    done = subprocess.run([sys.executable, "-c", script, *args, "--resume"], cwd=REPO, capture_output=True,
                          timeout=120)
    assert done.returncode == -signal.SIGTERM
    temps = [p.name for p in out.glob(".ckpt.pt.*.tmp")]
    assert len(temps) == 1 and (out / temps[0]).stat().st_size >= 65536
    assert cli(train_main, [*args, "--resume"], capsys)[0] == 0
    assert not list(out.glob("*.tmp"))
    assert load_checkpoint(out / CKPT_NAME)["step"] == 4


# ---- 7: a FIFO or a device as --text-file --------------------------------------------------

def test_fifo_and_device_are_named_for_what_they_are(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO"), (Path("/dev/null"), "a character device")):
        code, _, err = cli(train_main, ["lm", "--text-file", str(path), "--out", str(tmp_path / "run")], capsys)
        one_line(code, err, "is not a regular file", kind)
        code, _, err = cli(sweep.main, ["--text-file", str(path), "--corpus", "x",
                                        "--results", str(tmp_path / "res")], capsys)
        one_line(code, err, "is not a regular file", kind)
    assert not (tmp_path / "run").exists() and not (tmp_path / "res").exists()


# ---- 8: damaged metrics are refused, and skipped runs are counted ---------------------

@pytest.mark.parametrize("step", ['"twenty"', "2.5", "true", "-1", "null"])
def test_non_integer_step_is_refused(step, tmp_path):
    path = tmp_path / METRICS_NAME
    path.write_text('{"step": 0, "loss": 1}\n' + f'{{"step": {step}, "loss": 1}}\n')
    with pytest.raises(UserError, match=f"{METRICS_NAME} line 2: step .* is not an integer"):
        read_metrics(path)


def test_read_runs_says_which_folders_it_skipped(tmp_path):
    config = json.dumps({"task": {"name": "parity"}, "train": {"steps": 4}})
    for name, metrics in (("good", '{"step": 0}\n'), ("torn", '{"step": 0, "lo'), ("empty", "")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(config)
        (tmp_path / name / METRICS_NAME).write_text(metrics)
    (tmp_path / "stray").mkdir()
    skipped = []
    assert [r.name for r in read_runs(tmp_path, skipped)] == ["good"]
    reasons = dict(skipped)
    assert "torn line" in reasons["torn"] and "empty" in reasons["empty"] and "config.json" in reasons["stray"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(config)
    (tmp_path / "bad" / METRICS_NAME).write_text('{"step": "twenty"}\n')
    with pytest.raises(UserError, match="bad/metrics.jsonl line 1"):
        read_runs(tmp_path, [])


def test_lm_summary_prints_the_runs_it_skipped(micro, tmp_path, capsys):
    results = tmp_path / "res"
    assert cli(sweep.main, ["--preset", "micro", "--results", str(results), "--no-progress"], capsys)[0] == 0
    runs = results / "runs" / "micro"
    # a run killed while writing its first record, and one that is damaged
    (runs / "killed").mkdir()
    (runs / "killed" / "config.json").write_text((runs / "uniform_s0" / "config.json").read_text())
    (runs / "killed" / METRICS_NAME).write_text('{"step": 0, "lo')
    (runs / "words").mkdir()
    (runs / "words" / "config.json").write_text((runs / "uniform_s0" / "config.json").read_text())
    (runs / "words" / METRICS_NAME).write_text('{"step": "twenty"}\n')
    code, out, err = cli(S.main, ["--results", str(results)], capsys)
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("skipped")]
    assert len(lines) == 2, out
    assert any("1 run(s) with only a torn line in metrics.jsonl" in line and "killed" in line for line in lines)
    assert any("step 'twenty' is not an integer" in line and "words" in line for line in lines)


# ---- 9: the LM sweep validates everything before any run starts -------------------------

@pytest.mark.parametrize("extra, words", [
    (["--runs", "nomatch*"], "--runs nomatch* matches no run"),
    (["--runs", "uniform_s*", "typo*"], "--runs typo* matches no run"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--seeds", "-1"], "--seeds must be integers >= 0"),
    (["--n-head", "3"], "not divisible"),
])
def test_lm_sweep_refuses_bad_settings_before_writing_anything(extra, words, micro, tmp_path, capsys):
    results = tmp_path / "res"
    code, out, err = cli(sweep.main, ["--preset", "micro", "--results", str(results), "--no-progress", *extra],
                         capsys)
    one_line(code, err, words)
    assert not results.exists() and out == ""


# ---- 10: result files get the umask's mode, not mkstemp's 0600 --------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "a\n")
        atomic_write_json(tmp_path / "b.json", {"b": 1})
        atomic_write_text(tmp_path / "a.txt", "replaced\n")
        with open(tmp_path / "plain.txt", "w") as fh:  # what a plain write gives
            fh.write("x")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.json", "plain.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


# ---- 11: the recommendation says when the sweep cannot tell -------------------------------

def _summary(per_seed_gaps):
    rows = []
    for seed, gap in enumerate(per_seed_gaps):
        for kind, t0, t1, test in (("window", 0.4, 0.5, 3.0 + gap), ("window", 0.6, 0.7, 3.2),
                                   ("uniform", 0.0, 1.0, 3.0)):
            rows.append({"kind": kind, "objective": "md", "t0": t0, "t1": t1, "seed": seed, "steps": 10,
                         "full_range_val_loss": test - (0.1 if (t0, t1) == (0.4, 0.5) else 0),
                         "full_range_test_loss": test, "full_range_test_loss_se": 0.044})
    return json.loads(json.dumps(S._finite(S.summarize(pd.DataFrame(rows)))))  # as read back from JSON


def test_recommendation_with_one_seed_cannot_tell():
    text = S.recommendation(_summary([-0.007]))
    assert "better in every seed" not in text and "Train with" not in text
    assert "Cannot tell whether `--sampler window:0.4,0.5`" in text and "at least 2 seeds" in text


def test_recommendation_whose_interval_contains_zero_cannot_tell():
    text = S.recommendation(_summary([-0.14, -0.19, -0.42]))  # the README's Shakespeare gaps: CI [-0.63, 0.13]
    assert "Cannot tell" in text and "contains 0" in text and "Train with" not in text
    text = S.recommendation(_summary([-0.20, -0.21, -0.22]))
    assert "* Train with `--sampler window:0.4,0.5`" in text and "better in every seed" in text
    text = S.recommendation(_summary([0.20, 0.21, 0.22]))
    assert "Keep U[0, 1]" in text
