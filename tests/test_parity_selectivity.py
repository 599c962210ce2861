"""Per-position weight selectivity of finished reduced-MLP runs."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
import torch

from experiments.parity import run as runner
from experiments.parity import selectivity
from experiments.parity.presets import RunSpec
from mdtheory.cli import run_cli
from mdtheory.train.diagnostics import bit_selectivity, secret_selectivity

SPEC = RunSpec(objective="os", model="mlp", n=6, k=2, train_size=32, val_size=16, steps=20, n_embd=16,
               eval_every=10, batch_size=32, lr=3e-3, group="test", early_stop=False)


def test_selectivity_reads_the_two_bit_rows_of_each_position():
    seq_len, hidden, secret = 5, 3, [1, 3]
    W = torch.zeros(4 * seq_len, hidden)  # rows value * seq_len + j, as in ReducedMLP
    for j in range(seq_len):
        W[1 * seq_len + j] = 2.0 if j in secret else 0.5  # bit 1 rows; bit 0 rows stay 0
    W[2 * seq_len:] = 100.0  # the mask token's rows do not count
    s = bit_selectivity(W, seq_len, bit0=0, bit1=1)
    assert s == pytest.approx([0.5 * 3 ** 0.5 if j not in secret else 2 * 3 ** 0.5 for j in range(seq_len)])
    assert secret_selectivity(s, secret) == pytest.approx(4.0)  # the last position (the label) is left out


def test_finished_runs_are_scored_and_rows_without_a_checkpoint_kept(tmp_path, capsys):
    for seed in (0, 1):
        runner.execute(replace(SPEC, seed=seed), str(tmp_path))
    assert run_cli(selectivity.main, ["--root", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "selectivity.csv")
    assert list(table["seed"]) == [0, 1] and set(table["step"]) == {20}
    secret = [int(x) for x in table.loc[0, "secret"].split()]
    s = [table.loc[0, f"s{j}"] for j in range(SPEC.n + 1)]
    assert table.loc[0, "secret_mean"] == pytest.approx(sum(s[j] for j in secret) / len(secret))
    assert table.loc[0, "ratio"] == pytest.approx(table.loc[0, "secret_mean"] / table.loc[0, "other_mean"])
    # the final checkpoint is the model of the last evaluation, which logged the same ratio
    last = runner.read_metrics(tmp_path / "runs" / table.loc[0, "run"])[-1]
    assert last["secret_selectivity"] == pytest.approx(table.loc[0, "ratio"], rel=1e-6)
    # a checkpoint that is not here any more (not committed) keeps its run's row
    first = table.loc[0, "run"]
    (tmp_path / "runs" / first / "ckpt.pt").unlink()
    assert run_cli(selectivity.main, ["--root", str(tmp_path)]) == 0
    again = pd.read_csv(tmp_path / "selectivity.csv")
    assert list(again["run"]) == list(table["run"]) and again.loc[0, "ratio"] == pytest.approx(table.loc[0, "ratio"])


def test_a_root_without_runs_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(selectivity.main, ["--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "has no runs/ folder" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "runs").mkdir()
    with pytest.raises(SystemExit) as exc:
        run_cli(selectivity.main, ["--root", str(tmp_path)])
    assert exc.value.code == 2 and "no finished reduced-MLP run" in capsys.readouterr().err
    assert not (tmp_path / "selectivity.csv").exists()


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"a,b\n1,2\n"])
def test_a_damaged_or_foreign_csv_is_one_line_and_kept(tmp_path, capsys, content):
    runner.execute(SPEC, str(tmp_path))
    (tmp_path / "selectivity.csv").write_bytes(content)
    with pytest.raises(SystemExit) as exc:
        run_cli(selectivity.main, ["--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1 and "selectivity.csv" in err
    assert (tmp_path / "selectivity.csv").read_bytes() == content
