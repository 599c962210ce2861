"""Paper numbers are generated from results: macros, tables and the
paper-vs-ours comparison, with "not run" where a result is missing. Each
study's numbers come from its own tables module (experiments/<study>/tables.py);
mdtheory.plots.paper_tables puts them together."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from experiments.lm import tables as lm_tables
from experiments.parity import tables as parity_tables
from mdtheory.plots import paper_tables
from test_plots import parity_task, results as plot_results, summarize_lm, _parity_records, _write_run  # noqa: F401


@pytest.fixture
def results(plot_results):  # noqa: F811
    """The plot fixture's sweep with val losses (the best window is chosen on
    them) and a second U[0,1] seed, so the paired difference has an interval."""
    import pandas as pd

    path = plot_results / "lm" / "window_sweep.csv"
    sweep = pd.read_csv(path)
    sweep["full_range_val_loss"] = sweep["full_range_test_loss"] + 0.05
    sweep["full_range_val_loss_se"] = 0.01
    uniform = sweep[(sweep.t0 == 0) & (sweep.t1 == 1.0)].assign(seed=1, full_range_test_loss=3.91,
                                                                 full_range_val_loss=3.96)
    pd.concat([sweep, uniform]).to_csv(path, index=False)
    summarize_lm(plot_results)
    return plot_results


def _macros(text: str) -> dict[str, str]:
    return dict(re.findall(r"\\csname res@(\w+)\\endcsname\{(.*)\}", text))


def test_macros_follow_results(results, tmp_path):  # noqa: F811
    paper_tables.write_all(results, tmp_path)
    macros = _macros((tmp_path / "results.tex").read_text())
    assert macros["parityN"] == "10" and macros["parityK"] == "3"
    assert macros["parityBestMDWindow"] == "$[0,0.2]$"
    assert macros["parityBestMDSteps"] == "300"
    assert macros["lmBestWindow"] == "$[0.4,0.5]$"
    assert macros["lmTStarInBest"] == "inside"
    assert float(macros["lmBaselineLoss"]) == pytest.approx(3.905)
    assert "lower than" in macros["lmOutcome"] and "on validation" in macros["lmOutcome"]
    # paired by seed: U[0,1] minus best = 3.90 - 3.61, 3.91 - 3.62
    assert float(macros["lmGain"]) == pytest.approx(0.29, abs=1e-3) and macros["lmGainSeeds"] == "2"
    assert macros["parityOSSteps"] == "900" and macros["parityARSteps"] == "not reached in 1{,}000"
    comparison = (tmp_path / "comparison.tex").read_text()
    assert "0.246" in comparison and "0.184" in comparison  # theory column from numeric
    assert comparison.count(paper_tables.NOT_RUN) >= len(paper_tables.PAPER_NOT_RUN_ROWS)
    assert "not reached (budget 1{,}000)" in (tmp_path / "parity_table.tex").read_text()


def test_changed_result_changes_the_paper(results, tmp_path):  # noqa: F811
    import pandas as pd

    sweep = pd.read_csv(results / "lm" / "window_sweep.csv")
    sweep.loc[(sweep.t0 == 0) & (sweep.t1 == 1.0), "full_range_test_loss"] = 3.0
    sweep.to_csv(results / "lm" / "window_sweep.csv", index=False)
    summarize_lm(results)
    macros = paper_tables.write_all(results, tmp_path)
    assert macros["lmBaselineLoss"] == "3.000"
    assert "higher than" in macros["lmOutcome"]


def test_best_window_is_chosen_on_val_not_test(results, tmp_path):  # noqa: F811
    import pandas as pd

    path = results / "lm" / "window_sweep.csv"
    sweep = pd.read_csv(path)
    sweep.loc[(sweep.t0 == 0.2) & (sweep.t1 == 0.3), "full_range_val_loss"] = 1.0  # best on val only
    sweep.to_csv(path, index=False)
    summarize_lm(results)
    macros = paper_tables.write_all(results, tmp_path)
    assert macros["lmBestWindow"] == "$[0.2,0.3]$"
    test_mean = sweep[(sweep.t0 == 0.2) & (sweep.t1 == 0.3)]["full_range_test_loss"].mean()
    assert float(macros["lmBestLoss"]) == pytest.approx(test_mean, abs=1e-3)
    table = (tmp_path / "lm_table.tex").read_text()
    assert "[0.2,0.3]^\\dagger$ & 0.25 & 2 & " in table  # seeds print as a count, not 2.0
    # a sweep without val losses cannot pick a window: the aggregator refuses, it never chooses on test
    from experiments.lm.summarize import summarize
    with pytest.raises(paper_tables.UserError, match="full_range_val_loss"):
        summarize(sweep.drop(columns="full_range_val_loss"))


def test_empty_results_write_not_run(tmp_path):
    (tmp_path / "res").mkdir()
    macros = paper_tables.write_all(tmp_path / "res", tmp_path / "gen")
    assert macros == {}
    for name in ("results.tex", "comparison.tex", "parity_table.tex", "lm_table.tex"):
        assert (tmp_path / "gen" / name).exists()
    assert "not run" in (tmp_path / "gen" / "parity_table.tex").read_text()


def test_cli_bad_results_dir(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mdtheory.plots.paper_tables", "--results", str(tmp_path / "x"),
                          "--out", str(tmp_path / "gen")], capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == "" and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "gen").exists()


def test_macro_names_are_latex_safe():
    from mdtheory import latex
    with pytest.raises(ValueError):
        latex.result_macro("bad_name", "1")
    with pytest.raises(ValueError):
        latex.newcommand("bad1", "1")
    assert latex.result_macro("ok1", "2") == "\\expandafter\\def\\csname res@ok1\\endcsname{2}\n"


def test_parity_outcome_prefers_the_window_that_reached_most_often(tmp_path):
    """A window that reached 0.99 in one seed out of five must not be called
    the fastest over one that reached it in four; the sentence gives counts."""
    from experiments.parity.summarize import summarize_root

    rng = __import__("numpy").random.default_rng(0)
    runs, train = tmp_path / "parity" / "runs", {"weight_decay": 0.1, "lr": 1e-3}
    for seed in range(5):
        _write_run(runs, f"os_s{seed}", parity_task("os", seed), _parity_records(100 if seed == 0 else None, rng), train)
        _write_run(runs, f"md3_s{seed}", parity_task("md", seed, (0.0, 0.3)),
                   _parity_records(500 if seed == 0 else None, rng), train)
        _write_run(runs, f"md2_s{seed}", parity_task("md", seed, (0.0, 0.2)),
                   _parity_records(700 + 100 * seed if seed < 4 else None, rng), train)
    summarize_root(tmp_path / "parity")
    macros, _ = parity_tables.parity_numbers(tmp_path)
    assert "0.2]" in macros["parityBestMDWindow"]
    assert "4 of 5 seeds" in macros["parityOutcome"]
    assert "1 of 5 seeds" in macros["parityOutcome"]  # output supervision
    assert macros["parityOSReached"] == "1 of 5 seeds"
    assert macros["parityBestMDReached"] == "4 of 5 seeds"


def _gpu_rows(comparison: str) -> list[list[str]]:
    """The cells of the paper-scale section's rows."""
    section = comparison.split("Paper scale")[1].split(r"\midrule")[0]
    return [[c.strip() for c in line.rstrip(" \\").split(" & ")] for line in section.splitlines()[1:] if " & " in line]


def test_paper_scale_rows_come_from_results_gpu_and_name_the_card(tmp_path):
    from test_gpu_ingest import CARD, fake_check, ingest

    proc = ingest("--from", fake_check(tmp_path / "check"), "--results", tmp_path / "results" / "gpu")
    assert proc.returncode == 0, proc.stderr
    paper_tables.write_all(tmp_path / "results", tmp_path / "gen")
    comparison = (tmp_path / "gen" / "comparison.tex").read_text()
    assert f"results/gpu}} on {CARD}" in comparison
    ours = {cells[0]: cells[2] for cells in _gpu_rows(comparison)}
    assert ours["setting $(n,k)$"] == "$(20,6)$, wd 0.1"
    assert ours["output supervision: steps to 0.99 held-out"] == "not reached in 1{,}000 (0 of 2 seeds)"
    assert ours["masked diffusion: steps to 0.99 held-out (best window)"] == "350 (2 of 2 seeds)"
    assert ours["fastest MD window(s)"] == "$[0,0.2]$"
    assert ours["LM: model, corpus"] == "6x384, shakespeare, bpe 4096"
    assert ours["best window"] == "$[0.4,0.5]$" and ours["$U[0,1]$ baseline"] == "3.905"
    assert paper_tables.NOT_RUN not in "".join(ours.values())
    # the CPU sections still read results/parity and results/lm only (absent here)
    cpu_parity = comparison.split("Paper scale")[0].split("Parity;")[1]
    assert r"setting $(n,k)$ & $(20,6)$, wd 0.1 & \textit{not run}" in cpu_parity


def test_paper_scale_rows_say_not_run_without_gpu_results(results, tmp_path):  # noqa: F811
    paper_tables.write_all(results, tmp_path)
    comparison = (tmp_path / "comparison.tex").read_text()
    assert "results/gpu} (no GPU results yet)" in comparison
    rows = _gpu_rows(comparison)
    assert len(rows) == 9 and all(cells[2] == paper_tables.NOT_RUN for cells in rows)
    assert "50M" in rows[5][1]  # the paper's LM setup stands beside "not run"


def test_a_one_seed_sweep_has_a_gain_but_no_interval(plot_results, tmp_path):  # noqa: F811
    # U[0,1] ran one seed (as in the GPU check's sweep): the summary stores no interval
    macros = paper_tables.write_all(plot_results, tmp_path)
    assert macros["lmGainSeeds"] == "1" and "lmGainCI" not in macros
    assert "one seed, no interval" in macros["lmOutcome"]


def test_laws_without_a_window_are_named_in_the_lm_table(results, tmp_path):  # noqa: F811
    import pandas as pd

    path = results / "lm" / "window_sweep.csv"
    sweep = pd.read_csv(path)
    smooth = sweep[sweep["kind"] == "uniform"].assign(kind="smooth", sampler="predicted:law=logitnormal",
                                                       t0=float("nan"), t1=float("nan"), midpoint=float("nan"))
    pd.concat([sweep, smooth]).to_csv(path, index=False)
    summarize_lm(results)
    paper_tables.write_all(results, tmp_path)
    table = (tmp_path / "lm_table.tex").read_text()
    assert "\\texttt{predicted:law=logitnormal} & -- & " in table
    assert "nan" not in table


def test_durability_table_pairs_gaps_and_names_devices(tmp_path):
    (tmp_path / "res" / "lm").mkdir(parents=True)
    rows = [
        "stage,sampler,kind,n_params,steps,tokens,device,seeds,test_loss_mean,val_loss_mean,gap_test_mean,"
        "gap_test_ci_low,gap_test_ci_high,gap_test_per_seed",
        "x1,uniform,uniform,114048,1000,2048000,cpu,0;1,3.0,3.0,0,0,0,0:0;1:0",
        'x1,"window:0.3,0.4",window,114048,1000,2048000,cpu,0;1,2.8,2.8,-0.2,-0.5,0.1,0:-0.1;1:-0.3',
        "x4,uniform,uniform,114048,4000,8192000,NVIDIA H100 80GB HBM3,0,2.5,2.5,0,,,0:0",
        "x4,predicted:law=beta,smooth,114048,4000,8192000,NVIDIA H100 80GB HBM3,0,2.6,2.6,0.1,,,0:0.1",
    ]
    (tmp_path / "res" / "lm" / "durability_summary.csv").write_text("\n".join(rows) + "\n")
    paper_tables.write_all(tmp_path / "res", tmp_path / "gen")
    table = (tmp_path / "gen" / "lm_durability_table.tex").read_text()
    assert "x1: CPU & 0.11M & 2.0M & $[0.3,0.4]$ (val) & 2 & 2.800 & -0.200 [-0.500, 0.100]" in table
    # a law without a window by its spec; one seed: no interval
    assert "x4: H100 & 0.11M & 8.2M & \\texttt{predicted:law=beta} & 1 & 2.600 & 0.100 \\\\" in table
    (tmp_path / "res" / "lm" / "durability_summary.csv").unlink()
    paper_tables.write_all(tmp_path / "res", tmp_path / "gen")
    assert "not run" in (tmp_path / "gen" / "lm_durability_table.tex").read_text()


def test_tables_come_from_each_studys_module_in_order(results, tmp_path):  # noqa: F811
    assert paper_tables.table_names() == ("comparison.tex", *parity_tables.TABLES, *lm_tables.TABLES)
    macros = paper_tables.write_all(results, tmp_path)
    assert macros == {**parity_tables.numbers(results)[0], **lm_tables.numbers(results)[0]}
    for study in (parity_tables, lm_tables):
        for name, text in study.numbers(results)[1].items():
            assert (tmp_path / name).read_text().endswith(text)
    # comparison.tex: theory (with our corpus's t* from the LM study), parity, LM, paper scale, beyond compute
    comparison = (tmp_path / "comparison.tex").read_text()
    heads = ["Theory ($k=6$)", "t^*$ from our corpus", "Parity; ours", "Language model: full-range", "Paper scale",
             "LLaDA-8B"]
    assert [comparison.index(h) for h in heads] == sorted(comparison.index(h) for h in heads)


def test_two_studies_may_not_define_the_same_macro(results, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(lm_tables, "numbers", lambda r: ({"parityN": "7"}, {n: "" for n in lm_tables.TABLES}))
    with pytest.raises(ValueError, match="parityN"):
        paper_tables.write_all(results, tmp_path)


def test_p_values_are_written_for_math_mode():
    from mdtheory.latex import fmt_p
    assert fmt_p(0.025) == "0.025" and fmt_p(0.001) == "0.001"
    assert fmt_p(1.26e-5) == r"1.3\times10^{-5}" and fmt_p(4.58e-4) == r"4.6\times10^{-4}"


def test_the_fig5_setting_sentences_come_from_its_root(results, tmp_path):  # noqa: F811
    paper_tables.write_all(results, tmp_path)
    macros = _macros((tmp_path / "results.tex").read_text())
    # the plot fixture: OS reaches 0.99 at 900 on both seeds, MD U[0,0.2] passes 0.90 at 1,000, never 0.99
    assert macros["parityPaperMLP"].startswith("OS: 2/2 reach 0.90") and "2/2 0.99 (900)" in macros["parityPaperMLP"]
    assert "MD $U[0,0.2]$: 2/2 reach 0.90 (KM median 1{,}000), 0/2 0.99 (not reached) (vs OS on 2 seed pairs: " \
        "McNemar $p=1$ at 0.90 and $0.5$ at 0.99, log-rank $p=" in macros["parityPaperMLP"]
    assert macros["parityPaperMLPSelectivity"] == "OS 2.20, 2.10; MD $U[0,0.2]$ 1.00"
    (results / "parity" / "paper_mlp" / "selectivity.csv").unlink()
    paper_tables.write_all(results, tmp_path)
    assert "parityPaperMLPSelectivity" not in _macros((tmp_path / "results.tex").read_text())
