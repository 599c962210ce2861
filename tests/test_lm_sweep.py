"""Window-sweep runner: plan, run, resume, CSV contract, summary."""
import csv
import json
from dataclasses import replace

import pytest

from experiments.lm import summarize as S
from experiments.lm import sweep
from experiments.lm.presets import PRESETS, TEN_WINDOWS


def test_presets_follow_the_issue():
    assert TEN_WINDOWS[0] == (0.0, 0.1) and TEN_WINDOWS[-1] == (0.9, 1.0) and len(TEN_WINDOWS) == 10
    quick, paper = PRESETS["quick"], PRESETS["paper"]
    assert len(quick.seeds) >= 2 and quick.windows == TEN_WINDOWS and quick.uniform and quick.predicted
    assert (paper.block_size, paper.batch_size, paper.steps) == (150, 1024, 6000)


def test_plan_has_windows_uniform_predicted(tmp_path):
    (tmp_path / "predicted_t.json").write_text(json.dumps({"t_star": 0.463}))
    runs, info = sweep.plan(PRESETS["quick"], tmp_path)
    assert info == {"t_star": 0.463, "window": [0.413, 0.513]}
    kinds = [r.kind for r in runs if r.seed == 0]
    assert kinds.count("window") == 10 and kinds.count("uniform") == 1 and kinds.count("predicted") == 1
    assert len({r.name for r in runs}) == len(runs)


@pytest.fixture
def micro(monkeypatch, tmp_path):
    monkeypatch.setenv("MDTHEORY_CACHE_DIR", str(tmp_path / "cache"))
    text = tmp_path / "corpus.txt"
    text.write_text("".join(f"verse {i % 23}: the quality of mercy is not strained\n" for i in range(300)))
    preset = replace(PRESETS["tiny"], name="micro", steps=2, eval_every=1, windows=((0.4, 0.5),),
                     predicted=False, ar_baseline=False, eval_blocks=4, eval_nt=2,
                     text_file=str(text))
    monkeypatch.setitem(sweep.PRESETS, "micro", preset)
    return preset


def test_micro_sweep_end_to_end_and_resume(micro, tmp_path, capsys):
    out = tmp_path / "res"
    assert sweep.main(["--preset", "micro", "--results", str(out)]) == 0
    rows = list(csv.DictReader((out / "window_sweep.csv").open()))
    assert [r["run"] for r in rows] == ["w0.40-0.50_s0", "uniform_s0"]
    for col in ("t0", "t1", "seed", "steps", "full_range_test_loss", "full_range_test_loss_se",
                "midpoint", "preset", "run_dir"):
        assert rows[0][col] != ""
    assert rows[0]["steps"] == "2" and float(rows[0]["midpoint"]) == pytest.approx(0.45)
    curves = list(csv.DictReader((out / "window_sweep_curves.csv").open()))
    assert [c["step"] for c in curves if c["run"] == "uniform_s0"] == ["0", "1", "2"]
    first = (out / "runs" / "micro" / "uniform_s0" / "metrics.jsonl").read_text()
    # finished runs are skipped: nothing is retrained, the metrics stay byte-identical
    assert sweep.main(["--preset", "micro", "--results", str(out), "--runs", "w*"]) == 0
    assert sweep.main(["--preset", "micro", "--results", str(out)]) == 0
    assert (out / "runs" / "micro" / "uniform_s0" / "metrics.jsonl").read_text() == first
    # summary
    assert S.main(["--results", str(out)]) == 0
    summary = json.loads((out / "window_sweep_summary.json").read_text())
    assert summary["best_window"]["t0"] == 0.4
    assert len(summary["best_minus_uniform"]["per_seed"]) == 1
    assert "| U[0, 1] |" in capsys.readouterr().out


def test_sweep_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        sweep.main(["--preset", "huge"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        S.main(["--results", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert "not found" in err


@pytest.mark.slow
def test_tiny_preset_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("MDTHEORY_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "tiny"
    assert sweep.main(["--preset", "tiny", "--results", str(out)]) == 0
    rows = list(csv.DictReader((out / "window_sweep.csv").open()))
    assert {r["kind"] for r in rows} == {"window", "uniform", "predicted", "ar"}
    assert S.main(["--results", str(out)]) == 0
