"""Interleaved A/B timing (experiments/ab_timing.py) and the trainer
benchmark that reports it instead of an MFU."""
import json

import pytest

from experiments.ab_timing import Variant, compare, interleaved_ab
from mdtheory.train.parity_task import ParityTask, ParityTaskConfig


def test_pairs_alternate_abba_after_one_warm_up_each():
    calls = []

    def measure(name, rate):
        def f():
            calls.append(name)
            return rate
        return f

    s = interleaved_ab(measure("A", 100.0), measure("B", 150.0), pairs=5)
    assert calls == ["A", "B", "A", "B", "B", "A", "A", "B", "B", "A", "A", "B"]
    assert s["pairs"] == 5 and s["complete"]
    assert s["median_ratio"] == pytest.approx(1.5)
    assert set(s["first_call_s"]) == {"A", "B"}


def test_ratio_is_the_median_of_paired_ratios_under_drift():
    # the machine slows down 10% per call: a paired ratio cancels most of it,
    # a ratio of medians over separate blocks would not
    state = {"speed": 1.0}

    def measure(base):
        def f():
            state["speed"] *= 0.9
            return base * state["speed"]
        return f

    res = interleaved_ab(measure(100.0), measure(200.0), pairs=6)
    ratios = res["ratios_b_over_a"]
    assert len(ratios) == 6
    # ABBA (after the two warm-ups): each pair's ratio is 2 x 0.9 or 2 / 0.9
    assert sorted({round(r, 6) for r in ratios}) == [round(2 * 0.9, 6), round(2 / 0.9, 6)]
    assert res["median_ratio"] == pytest.approx((2 * 0.9 + 2 / 0.9) / 2)


def test_deadline_stops_adding_pairs():
    now = {"t": 0.0}

    def clock():
        return now["t"]

    def measure():
        now["t"] += 1.0
        return 1.0

    s = interleaved_ab(measure, measure, pairs=5, deadline=6.0, clock=clock)
    assert s["pairs"] == 2 and not s["complete"]  # warm-ups take 2 s, each pair 2 s


def _task():
    return ParityTask(ParityTaskConfig(n=8, k=2, train_size=64, val_size=32, sampler="window:0,0.5",
                                       n_layer=1, n_head=2, n_embd=16, tbins=0, eval_train_max=32))


def test_a_variant_the_engine_ran_alike_gets_no_ratio():
    # on the CPU the engine's own precision is fp32, so "fp32" changes nothing
    row = compare(_task(), Variant(precision="engine"), Variant(precision="fp32"), batch_size=8, steps=1,
                  device="cpu", pairs=1)
    assert row["pairs"] == 1
    assert "median_ratio" not in row and row["not_applied"] == ["precision"]
    assert row["observed"]["a"]["autocast"] == row["observed"]["b"]["autocast"] == [False]


def test_fused_and_bf16_variants_are_applied_and_observed():
    fused = compare(_task(), Variant(fused_adamw=False), Variant(fused_adamw=True), batch_size=8, steps=1,
                    device="cpu", pairs=1)
    assert fused["observed"]["a"]["fused"] == [False] and fused["observed"]["b"]["fused"] == [True]
    assert fused["median_ratio"] > 0
    bf16 = compare(_task(), Variant(precision="fp32"), Variant(precision="bf16"), batch_size=8, steps=1,
                   device="cpu", pairs=1, flops_per_token=1e6, peak_flops=1e12)
    assert bf16["observed"]["b"]["autocast"] == [True] and bf16["median_ratio"] > 0
    assert bf16["mfu_a"] == pytest.approx(bf16["median_rate_a"] * 1e6 / 1e12)


def test_bench_trainer_reports_interleaved_ratios_and_no_mfu(tmp_path, capsys):
    from experiments.bench_trainer import main

    path = tmp_path / "bench.json"
    assert main(["--tiny", "--only", "fused", "--pairs", "5", "--steps", "1", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert len(data["rows"]) == 2  # parity study model and the LM shape
    for row in data["rows"]:
        assert row["comparison"] == "fused" and row["pairs"] == 5 and row["median_ratio"] > 0
        assert not any("mfu" in key for key in row)
    assert "B/A median" in capsys.readouterr().out


@pytest.mark.parametrize("flag", [["--pairs", "0"], ["--steps", "0"], ["--threads", "-1"]])
def test_bench_trainer_bad_input_exits_2(flag, capsys):
    from experiments.bench_trainer import main
    from mdtheory.cli import run_cli

    with pytest.raises(SystemExit) as exc:
        run_cli(main, ["--tiny", *flag])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow
def test_compiled_variant_is_observed_as_compiled():
    # the engine compiles on the CPU too (inductor, seconds per model)
    row = compare(_task(), Variant(), Variant(compile=True), batch_size=8, steps=1, device="cpu", pairs=1)
    if "error" in row:
        pytest.skip(f"torch.compile is not usable here: {row['error']}")
    assert row["observed"]["a"]["compiled"] == [False] and row["observed"]["b"]["compiled"] == [True]
    assert row["median_ratio"] > 0


def test_bench_trainer_times_the_mlp_first_layers_and_the_energy_cost(tmp_path):
    from experiments.bench_trainer import main

    path = tmp_path / "bench.json"
    assert main(["--tiny", "--only", "mlp_gather", "mlp_bag", "--pairs", "5", "--steps", "1",
                 "--energy-steps", "4", "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["rows"]
    first_layer = [r for r in rows if r.get("comparison") in ("mlp_gather", "mlp_bag")]
    assert len(first_layer) == 2 and all(r["config"].startswith("mlp") for r in first_layer)
    for row in first_layer:  # each side really ran its own first layer, and a ratio came out
        assert row["observed"]["a"]["first_layer"] != row["observed"]["b"]["first_layer"]
        assert row["observed"]["b"]["first_layer"] == ["onehot"] and row["pairs"] == 5 and row["median_ratio"] > 0
    energy = [r for r in rows if "energy" in r.get("b", "")]
    assert len(energy) == 1 and energy[0]["pairs"] == 5 and energy[0]["median_ratio"] > 0


def test_bench_trainer_times_stacked_runs_alone_when_asked(tmp_path):
    from experiments.bench_trainer import main

    path = tmp_path / "bench.json"
    assert main(["--tiny", "--only", "--pairs", "5", "--stacking-steps", "3", "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["rows"]
    assert len(rows) == 1 and rows[0]["b"] == "3 runs stacked" and rows[0]["pairs"] == 5
    assert rows[0]["median_ratio"] > 0 and "3 steps" in rows[0]["config"]
