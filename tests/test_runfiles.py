"""The run record: every committed run loads through the one reader, AR
results are never named like MD ELBOs, and the writer round-trips."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mdtheory.errors import UserError
from mdtheory.runfiles import LOSS_BY_T_SE_PREFIX, read_run, write_config, write_marker

RESULTS = Path(__file__).resolve().parents[1] / "results"
WINDOW_LAWS = ("window", "uniform", "stratified")
COMMITTED = sorted([*RESULTS.glob("parity/runs/*"), *RESULTS.glob("parity/*/runs/*"),
                    *RESULTS.glob("lm/runs/*/*")])


@pytest.mark.skipif(not COMMITTED, reason="committed results absent")
def test_every_committed_run_loads():
    objectives = set()
    for path in COMMITTED:
        run = read_run(path)
        objectives.add(run.objective)
        assert run.metrics and run.steps > 0, path
        assert run.objective in ("md", "os", "ar"), path
        law = (run.task.get("sampler_law") or {}).get("kind", "window")  # older records name only the spec
        if run.objective == "md" and law in WINDOW_LAWS:
            assert run.window is not None and 0 <= run.window[0] < run.window[1] <= 1, path
        elif run.objective == "md":
            assert run.window is None, path  # Beta, logit-normal, or a retired law: no fixed window
        else:
            assert run.window is None
        assert run.seed is not None and run.budget, path
        if "parity" in path.parts:  # finished, or a long run committed mid-way with the checkpoint it resumes from
            assert run.status in ("complete", "early_stop", "diverged", "stopped_by_hand") or (
                run.status == "running" and run.steps < run.budget and (path / "ckpt.pt").exists()), path
    assert objectives == {"md", "os", "ar"}


@pytest.mark.skipif(not (RESULTS / "lm" / "runs").is_dir(), reason="committed LM runs absent")
def test_ar_runs_expose_nll_not_elbo_names():
    ar = [read_run(p) for p in COMMITTED if p.name.startswith("ar_") and "lm" in p.parts]
    md = [read_run(p) for p in COMMITTED if p.name.startswith("w0.") and "lm" in p.parts]
    assert ar and md
    for run in ar:
        assert "nll_test" in run.final and "full_range_test_loss" not in run.final
        assert run.loss_by_t() == {}
    assert all("full_range_test_loss" in r.final and "nll_test" not in r.final for r in md)
    # exact-count strata of 64 characters: the first holds 1..4 masked, centre 2.5 / 64
    assert len(md[0].loss_by_t()) == 16 and min(md[0].loss_by_t()) == pytest.approx(0.0391)
    errors = md[0].loss_by_t(prefix=LOSS_BY_T_SE_PREFIX)
    assert set(errors) == set(md[0].loss_by_t()) and all(se > 0 for se in errors.values())


def test_writer_round_trip_and_resume(tmp_path):
    task = {"objective": "md", "sampler": "window:0,0.2", "seed": 3}
    write_config(tmp_path, task, {"steps": 10, "lr": 0.1}, 1, {"git": "x"})
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 1.0}) + "\n")
    run = read_run(tmp_path)
    assert run.window == (0.0, 0.2) and run.seed == 3 and run.status == "complete" and run.marker == {}
    write_config(tmp_path, task, {"steps": 20, "lr": 0.1}, 2, {"git": "y"},
                 resume={"from_step": 10, "provenance": {"git": "y"}, "world_size": 2},
                 changed_from={"steps": 10})
    run = read_run(tmp_path)
    assert run.train["steps"] == 20 and run.resumes[0]["changed_from"] == {"steps": 10}
    assert run.status == "running"
    write_marker(tmp_path, "early_stop", 20, 10)
    assert read_run(tmp_path).status == "early_stop"


@pytest.mark.parametrize("config", ["{not json", "[1]", '{"task": {}}'])
def test_bad_config_is_one_user_error(tmp_path, config):
    (tmp_path / "config.json").write_text(config)
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(UserError, match="config.json"):
        read_run(tmp_path)


def test_run_marker_is_read_in_one_place(tmp_path):
    from mdtheory.runfiles import read_marker

    assert read_marker(tmp_path) == {}  # no run.json yet
    write_marker(tmp_path, "complete", 10, 10)
    assert read_marker(tmp_path)["status"] == "complete"
    (tmp_path / "run.json").write_text("{torn")
    with pytest.raises(UserError, match="run.json"):
        read_marker(tmp_path)


def test_the_renamed_uniform_attention_model_reads_under_its_new_name_and_keeps_its_folders():
    from experiments.parity.presets import ROOTS, runs_of

    old = [p for p in COMMITTED if p.name.endswith("uniform-attention_s0")]
    if not old:
        pytest.skip("committed results absent")
    assert {read_run(p).task["model"] for p in old} == {"uniform-attention-transformer"}
    specs = [r for r in runs_of("full") if r.model == "uniform-attention-transformer"]
    assert specs and all((Path(ROOTS["full"]) / "runs" / r.name).is_dir() for r in specs)
