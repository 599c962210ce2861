"""The common study runner: real subprocesses through submitit's local
executor (skip, resume a killed run), the SLURM job array it would submit,
one runner per results root, and one-line errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import study
from experiments.parity import run as parity_run
from experiments.parity.presets import RunSpec
from mdtheory.cli import run_cli
from mdtheory.runfiles import hold_root, read_marker, read_metrics

REPO = Path(__file__).resolve().parents[1]
LONG = RunSpec(objective="os", n=8, k=2, train_size=64, val_size=64, steps=8000, n_layer=1, n_head=2, n_embd=16,
               eval_every=50, group="test", lr=1e-7, weight_decay=0.0)  # learns nothing: never stops early


def parity_study(specs, local_gpus: bool = False) -> study.Study:
    return study.Study("test", specs, parity_run.execute, parity_run.run_status, local_gpus=local_gpus)


def args(*argv):
    p = parity_run.OneLineParser(prog="test")
    study.add_arguments(p)
    return p.parse_args(list(argv))


@pytest.mark.slow
def test_local_executor_trains_in_subprocesses_then_skips(tmp_path, capsys):
    assert run_cli(parity_run.main, ["--preset", "tiny", "--root", str(tmp_path), "--jobs", "2"]) == 0
    assert "3 complete" in capsys.readouterr().out
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 3 and all(read_marker(r)["status"] == "complete" for r in runs)
    assert run_cli(parity_run.main, ["--preset", "tiny", "--root", str(tmp_path)]) == 0
    assert "3 complete (skipped)" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigkill-group", "sigterm-runner", "sigterm-group"])
def test_a_killed_run_resumes_from_its_checkpoint(tmp_path, how):
    """SIGKILL the runner and its job mid-run, or SIGTERM the runner alone or
    its whole process group (as ``kill -- -PGID`` does; submitit's controller
    dies first and leaves its training process orphaned unless the runner
    finds it): no process may be left behind; the same study again continues
    the run."""
    script = (f"import sys; sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(REPO / 'tests')!r})\n"
              f"from test_study import LONG, parity_study, args\n"
              f"from experiments import study\n"
              # the parity presets' setting: a shell between submitit's controller and Python
              f"study.run_study(parity_study([LONG], {how == 'sigterm-group'}), {str(tmp_path)!r}, args())\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = tmp_path / "runs" / LONG.name
    deadline = time.time() + 120
    while not (run_dir / "ckpt.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    assert (run_dir / "ckpt.pt").exists(), "the run never wrote a checkpoint"
    if how == "sigkill-group":
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and submitit's job share its process group
    elif how == "sigterm-group":
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    proc.wait()
    gone = False
    for _ in range(100):  # until the whole group is gone (and the run folder's lock with it)
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            gone = True
            break
        time.sleep(0.1)
    if not gone:
        os.killpg(proc.pid, signal.SIGKILL)
    assert gone, "the runner left its job running"
    marker = read_marker(run_dir)  # the runner names the spec of a run still training
    assert marker["status"] == "running", "the run finished before it was killed: the test decides nothing"
    assert marker["spec"]["name"] == LONG.name
    killed_at = read_metrics(run_dir)[-1]["step"]
    assert killed_at < LONG.steps
    statuses = study.run_study(parity_study([LONG]), tmp_path, args())
    assert statuses[LONG.name] in ("complete", "early_stop")
    resumes = json.loads((run_dir / "config.json").read_text())["resumes"]
    assert len(resumes) == 1 and 0 < resumes[0]["from_step"] <= killed_at
    steps = [r["step"] for r in read_metrics(run_dir)]
    assert steps == sorted(set(steps))  # one record per evaluation, no step twice


def test_slurm_submits_one_job_array_with_the_resources(tmp_path, sbatch_scripts, capsys):
    scripts = sbatch_scripts
    specs = [RunSpec(objective="os", n=8, k=2, train_size=64, steps=10, seed=s) for s in range(3)]
    statuses = study.run_study(parity_study(specs), tmp_path,
                               args("--executor", "slurm", "--partition", "gpu", "--time", "30",
                                    "--gpus-per-run", "1", "--array-parallelism", "2", "--cpus-per-run", "4"))
    assert set(statuses.values()) == {"submitted"} and len(scripts) == 1
    sbatch = scripts[0]
    for line in ("#SBATCH --array=0-2%2", "#SBATCH --partition=gpu", "#SBATCH --time=30",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=4"):
        assert line in sbatch, line
    assert "job array 4242" in capsys.readouterr().out


def test_one_runner_per_results_root(tmp_path, capsys):
    with hold_root(tmp_path / ".lock", "test"):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(parity_run.main, ["--preset", "tiny", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"pid {os.getpid()}" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["--jobs", "0"], "--jobs"), (["--only", "nomatch*"], "matches"), (["--time", "0"], "--time"),
    (["--executor", "pbs"], "invalid choice"),
])
def test_bad_runner_flags_are_one_line_exit_2(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(parity_run.main, ["--preset", "tiny", "--root", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_slurm_without_slurm_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun, no sbatch
    with pytest.raises(SystemExit) as exit_info:
        run_cli(parity_run.main, ["--preset", "tiny", "--root", str(tmp_path / "r"), "--executor", "slurm"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--executor slurm" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_one_progress_bar_per_study_counts_finished_runs(tmp_path, monkeypatch, capsys):
    """The bar shows runs done / total with an ETA; finished runs count as done from the start."""
    specs = [RunSpec(objective="os", n=8, k=2, train_size=64, val_size=64, steps=20, n_layer=1, n_head=2,
                     n_embd=16, eval_every=10, seed=seed) for seed in range(3)]
    done = tmp_path / "runs" / specs[0].name
    done.mkdir(parents=True)
    (done / "run.json").write_text(json.dumps({"status": "complete", "budget": 20}))
    bars = []
    real_tqdm = study.tqdm

    def recording_tqdm(*a, **kwargs):
        kwargs["disable"] = False  # a test has no terminal
        bars.append(real_tqdm(*a, **kwargs))
        return bars[-1]

    monkeypatch.setattr(study, "tqdm", recording_tqdm)
    statuses = study.run_study(parity_study(specs), tmp_path, args("--jobs", "2"))
    assert len(bars) == 1 and bars[0].total == 3 and bars[0].n == 3
    assert statuses == {specs[0].name: "complete (skipped)", specs[1].name: "complete",
                        specs[2].name: "complete"}
    err = capsys.readouterr().err
    assert "1/3" in err and "3/3" in err and "<" in err  # tqdm's "elapsed<remaining"
