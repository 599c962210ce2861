"""Survival statistics of the parity aggregator (cells.csv, km_curves.csv and
the bootstrap CIs of theory_vs_speed.csv), checked against hand-computed
values and a synthetic phase-grid root (no training)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.parity import summarize
from mdtheory.runfiles import write_config, write_marker
from mdtheory.theory.numeric import (best_t1_given_t0_zero, p_signal, sample_complexity_bound,
                                     sample_complexity_optimal_t1)

SC_T1 = round(sample_complexity_optimal_t1(4), 3)  # 0.261, as the phase preset rounds it
STEPS = range(0, 1001, 100)


def write_phase_run(root: Path, objective: str, seed: int, curve, *, k=4, n_train=512, window=None, wd=0.1,
                    batch=256, budget=1000, group="phase", lr=1e-3, finished=True, spec=None):
    """A run folder as experiments.parity.run leaves it; curve = [(step, train_acc, val_acc)].
    ``finished=False``: stopped below its budget, no run.json (as runs started before the runner
    wrote one); ``finished="running"``: run.json says it is still training; ``spec``: more run.json
    spec fields."""
    what = objective if window is None else f"md{window[0]:g}-{window[1]:g}"
    name = f"{what}_n16k{k}_N{n_train}_wd{wd:g}" + ("" if batch == 256 else f"_bs{batch}") \
        + ("" if lr == 1e-3 else f"_lr{lr:g}") + f"_s{seed}"
    run = root / "runs" / name
    run.mkdir(parents=True)
    task = {"name": "parity", "n": 16, "k": k, "train_size": n_train, "val_size": 1000, "seed": seed,
            "objective": objective, "model": "mlp", "n_layer": 2, "n_embd": 1024,
            "loss_weighting": "inverse_t", "normalization": "tokens"}
    if window is not None:
        task.update(sampler=f"window:{window[0]!r},{window[1]!r}",
                    sampler_law={"kind": "window", "t0": window[0], "t1": window[1]},
                    p_signal=p_signal(k, *window))
    write_config(run, task, {"steps": budget, "lr": lr, "weight_decay": wd, "batch_size": batch}, 1, {})
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "train_acc": a, "val_acc": v}) + "\n"
                                               for s, a, v in curve))
    if finished:
        status = "running" if finished == "running" else "early_stop" if curve[-1][2] >= 0.99 else "complete"
        write_marker(run, status, budget, curve[-1][0], spec={"group": group, **(spec or {})})
    return run


def _reaches(at: int):
    """Train and held-out accuracy rise together and reach 0.99 at ``at`` (the run stops there)."""
    return [(s, min(1.0, 0.5 + 0.5 * s / at), min(1.0, 0.5 + 0.5 * s / at)) for s in STEPS if s <= at]


def _memorises(fit_at: int | None):
    """Train accuracy 1 from ``fit_at`` on (None: never fits), held-out at chance to the budget."""
    return [(s, 1.0 if fit_at is not None and s >= fit_at else 0.6, 0.5) for s in STEPS]


def write_phase_root(root: Path) -> Path:
    """k = 4: at N = 512 OS, MD at the sample-complexity-optimal window and
    MD U[0,1], 4 paired seeds each; at N = 2048 the optimal window alone."""
    sc, full = (0.0, SC_T1), (0.0, 1.0)
    os_curves = [_reaches(300), _memorises(100), _memorises(100), _reaches(200)]
    md_curves = [_reaches(400), _reaches(500), _reaches(600), _memorises(None)]
    full_curves = [_memorises(200), _memorises(None), _memorises(None), _memorises(None)]
    for seed in range(4):
        write_phase_run(root, "os", seed, os_curves[seed])
        write_phase_run(root, "md", seed, md_curves[seed], window=sc)
        write_phase_run(root, "md", seed, full_curves[seed], window=full)
    for seed in range(2):
        write_phase_run(root, "md", seed, _reaches(300), window=sc, n_train=2048)
    summarize.summarize_root(root)
    return root


@pytest.fixture
def phase_root(tmp_path):
    return write_phase_root(tmp_path / "phase")


# --- the statistics against hand-computed values ------------------------------

def test_wilson_interval_by_hand():
    # p = 1/2, n = 10: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = 1.959964
    assert summarize.wilson_interval(5, 10) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    # no success in 6: [0, z^2 / (n + z^2)]
    assert summarize.wilson_interval(0, 6) == pytest.approx((0.0, 3.841459 / 9.841459), abs=1e-6)


def _runs(reached_at, censored_at=()):
    return pd.DataFrame({"steps_to_val_99": pd.array(list(reached_at) + [None] * len(censored_at), "Int64"),
                         "steps": list(reached_at) + list(censored_at)})


def test_kaplan_meier_and_median_by_hand():
    # events at 100, 200, 400; censored at 300 and 500:
    # S = 4/5, then 4/5 * 3/4 = 0.6, then (2 at risk at 400) 0.6 * 1/2 = 0.3
    curve = summarize.kaplan_meier(_runs([100, 200, 400], [300, 500]))
    assert list(curve["step"]) == [100, 200, 300, 400, 500]
    assert curve["survival"].tolist() == pytest.approx([0.8, 0.6, 0.6, 0.3, 0.3])
    assert list(curve["events"]) == [1, 1, 0, 1, 0] and list(curve["censored"]) == [0, 0, 1, 0, 1]
    # log-log band at 100: Greenwood V = 1/(5*4), se = sqrt(V)/|log 0.8|, S^exp(+-z se)
    assert (curve.loc[0, "survival_low"], curve.loc[0, "survival_high"]) == pytest.approx((0.20381, 0.96918), abs=1e-5)
    # at 400: V = 1/20 + 1/12 + 1/2: upper end 0.3^exp(-z se) = 0.7192 stays above 1/2
    assert curve.loc[3, "survival_high"] == pytest.approx(0.71922, abs=1e-5)
    assert summarize.km_median(curve) == (400, 100, None)  # no upper limit from 5 runs

    # ten events at 100, ..., 1000: S(j) = 1 - j/10, Greenwood V = j / (10 (10 - j));
    # the lower end first drops to 1/2 at j = 1 (0.473), the upper one at j = 8 (0.475; 0.578 at j = 7)
    curve = summarize.kaplan_meier(_runs(range(100, 1001, 100)))
    assert curve.loc[0, "survival_low"] == pytest.approx(0.47301, abs=1e-4)
    assert curve.loc[6:7, "survival_high"].tolist() == pytest.approx([0.57786, 0.47470], abs=1e-4)
    assert summarize.km_median(curve) == (500, 100, 800)


def test_kaplan_meier_without_events_or_with_all_events():
    never = summarize.kaplan_meier(_runs([], [1000, 1000]))
    assert never["survival"].tolist() == [1.0] and summarize.km_median(never) == (None, None, None)
    once = summarize.kaplan_meier(_runs([300]))
    # reached by the one run: band [0, 1], the median has no upper limit
    assert summarize.km_median(once) == (300, 300, None)


def test_logrank_by_hand():
    # events of x at 100, 200, 400 (censored 300, 500); y censored at 500 three times.
    # O - E = 3 - (5/8 + 4/7 + 2/5), V = 15/64 + 12/49 + 6/25: Z = 1.6550, p = 0.0979
    p = summarize.logrank_p(_runs([100, 200, 400], [300, 500]), _runs([], [500, 500, 500]))
    assert p == pytest.approx(0.097932, abs=1e-5)
    assert summarize.logrank_p(_runs([], [500]), _runs([], [500, 500])) is None  # no event: no test


# --- cells.csv of a synthetic root ------------------------------------------------

def test_cells_rows_are_exact(phase_root):
    cells = pd.read_csv(phase_root / "cells.csv")
    assert list(cells.columns[:6]) == ["k", "train_size", "objective", "t0", "t1", "weight_decay"]
    key = cells.assign(t1=cells["t1"].fillna(-1)).set_index(["train_size", "objective", "t1"])
    assert list(key.index) == [(512, "os", -1), (512, "md", SC_T1), (512, "md", 1.0), (2048, "md", SC_T1)]
    columns = ["runs", "reached", "success_rate", "wilson_low", "wilson_high", "km_median_steps", "km_median_low",
               "km_median_high", "logrank_p_vs_os", "paired_seeds", "reached_where_os_not",
               "os_reached_where_not", "train_99_reached", "plateau_runs", "plateau_share"]
    nan = float("nan")
    expected = {
        # OS: 300, never, never, 200 -> S = 3/4 at 200, 1/2 at 300; seeds 1, 2 memorise
        (512, "os", -1): [4, 2, 0.5, 0.150039, 0.849961, 300, 200, nan, nan, nan, nan, nan, 4, 2, 0.5],
        # MD: 400, 500, 600, never; log-rank Z = 0.1474 vs OS by hand; seeds 1, 2 reached where OS did not
        (512, "md", SC_T1): [4, 3, 0.75, 0.300642, 0.954413, 500, 400, nan, 0.882847, 4, 2, 1, 3, 0, 0.0],
        # U[0,1] never: log-rank Z = -1.5230 vs OS's two events; seed 0 memorises
        (512, "md", 1.0): [4, 0, 0.0, 0.0, 0.489891, nan, nan, nan, 0.127754, 4, 0, 2, 1, 1, 0.25],
        # no OS cell at N = 2048: nothing to compare with; Wilson low of 2/2 = n / (n + z^2)
        (2048, "md", SC_T1): [2, 2, 1.0, 0.342381, 1.0, 300, 300, nan, nan, nan, nan, nan, 2, 0, 0.0],
    }
    for index, values in expected.items():
        got = key.loc[index, columns].astype(float).tolist()
        assert got == pytest.approx(values, abs=1e-5, nan_ok=True), index
    md = key.loc[(512, "md", SC_T1)]
    assert md["theory_window"] == "sample-complexity optimal" and key.loc[(512, "md", 1.0), "theory_window"] == "full range"
    assert md["P_S"] == pytest.approx(p_signal(4, 0.0, SC_T1))
    # the theory's N-bound of that window at n = 16, delta = 0.05 (about 614)
    assert md["sample_complexity_bound"] == pytest.approx(sample_complexity_bound(16, 4, 0.05, 0.0, SC_T1))
    assert 600 < md["sample_complexity_bound"] < 630
    assert pd.isna(key.loc[(512, "os", -1), "sample_complexity_bound"])


def test_summary_has_the_phase_columns(phase_root):
    table = pd.read_csv(phase_root / "summary.csv", dtype=str, keep_default_na=False)
    for col in ("objective", "n", "k", "train_size", "weight_decay", "t0", "t1", "seed", "steps",
                "steps_to_train_99", "steps_to_val_99"):
        assert col in table.columns
    never = table[(table["objective"] == "md") & (table["t1"] == "1.0") & (table["seed"] == "1")].iloc[0]
    assert never["steps_to_val_99"] == "" and never["steps_to_train_99"] == "" and never["steps"] == "1000"
    assert set(table["group"]) == {"phase"}


def test_km_curves_are_the_cells(phase_root):
    km = pd.read_csv(phase_root / "km_curves.csv")
    md = km[(km["train_size"] == 512) & (km["t1"] == SC_T1)]
    assert md["step"].tolist() == [400, 500, 600, 1000]
    assert md["survival"].tolist() == pytest.approx([0.75, 0.5, 0.25, 0.25])
    assert md["events"].tolist() == [1, 1, 1, 0] and md["censored"].tolist() == [0, 0, 0, 1]
    assert (km["survival_low"] <= km["survival"]).all() and (km["survival"] <= km["survival_high"]).all()
    cells = pd.read_csv(phase_root / "cells.csv")
    assert len(km.groupby(["train_size", "objective", "t1"], dropna=False)) == len(cells)
    text = (phase_root / "cells.md").read_text()
    assert "| 0.75 [0.30, 0.95] | 500 [400, –] | 0.88 | 2 / 1 of 4 | 0/4 |" in text


# --- bootstrap CIs of the window-speed correlation ------------------------------

def test_bootstrap_resamples_whole_seeds():
    windows = np.tile([0.1, 0.2, 0.3], 4)
    seeds = np.repeat([0, 1, 2, 3], 3)
    # every seed ranks the windows the same way: every resample has rho = 1;
    # BCa is undefined for a constant bootstrap distribution: the percentile interval, said so
    assert summarize.bootstrap_spearman(seeds, windows, windows * 10, n_boot=200) == (1.0, 1.0, 200, "percentile")
    # seeds disagree (two rank them up, two down): the interval spans 0
    speed = np.concatenate([[1, 2, 3], [3, 2, 1], [1, 2, 3], [3, 2, 1]])
    low, high, count, method = summarize.bootstrap_spearman(seeds, windows, speed, n_boot=500)
    assert low < 0 < high and low >= -1 and high <= 1 and count <= 500 and method in ("BCa", "percentile")
    assert summarize.bootstrap_spearman(seeds, windows, speed, n_boot=500) == (low, high, count, method)  # seeded
    assert summarize.bootstrap_spearman(np.zeros(3), windows[:3], speed[:3]) == (None, None, 0, "")
    # a seed drawn twice brings its runs twice: with one seed ranking up and
    # one down, every resample is +1, -1 or 0 (both once), never anything else
    two = summarize.bootstrap_spearman(seeds[:6], windows[:6], speed[:6], n_boot=300)
    assert two[0] == pytest.approx(-1.0) and two[1] == pytest.approx(1.0)


def _six_seed_sweep():
    """6 seeds x 3 windows with speeds that the seeds order differently, so no
    resample (or jackknife sample) is degenerate: BCa is defined."""
    orders = [[1, 2, 3], [3, 1, 2], [1, 3, 2], [2, 1, 3], [1, 2, 3], [2, 3, 1]]
    return np.repeat(np.arange(6), 3), np.tile([0.1, 0.2, 0.3], 6), np.concatenate(orders).astype(float)


def test_bootstrap_is_bca_by_seed_cluster_and_deterministic():
    from scipy import stats
    seeds, windows, speed = _six_seed_sweep()
    low, high, count, method = summarize.bootstrap_spearman(seeds, windows, speed)
    rho = stats.spearmanr(windows, speed)[0]
    assert method == "BCa" and count == summarize.N_BOOT and -1 <= low < rho < high <= 1
    assert summarize.bootstrap_spearman(seeds, windows, speed) == (low, high, count, method)  # fixed seed
    # resampling runs instead of seeds would give a different interval: the clusters are seeds
    other = stats.bootstrap((windows, speed), lambda x, y: stats.spearmanr(x, y)[0], paired=True, vectorized=False,
                            n_resamples=summarize.N_BOOT, method="BCa", rng=np.random.default_rng(summarize.BOOT_SEED))
    assert (other.confidence_interval.low, other.confidence_interval.high) != pytest.approx((low, high))
    # scipy's BCa over seed indices, computed here directly, is the same interval
    members = [np.flatnonzero(seeds == s) for s in range(6)]

    def rho(drawn):
        rows = np.concatenate([members[j] for j in drawn])
        return stats.spearmanr(windows[rows], speed[rows])[0]
    direct = stats.bootstrap((np.arange(6),), rho, vectorized=False, n_resamples=summarize.N_BOOT, method="BCa",
                             rng=np.random.default_rng(summarize.BOOT_SEED))
    assert (low, high) == pytest.approx((direct.confidence_interval.low, direct.confidence_interval.high))


def test_theory_vs_speed_gets_bootstrap_cis(phase_root):
    tvs = pd.read_csv(phase_root / "theory_vs_speed.csv")
    row = tvs[tvs["train_size"] == 512].iloc[0]
    # U[0,0.261] (more signal, smaller bound) reaches 0.99 in 3 of 4 seeds, U[0,1] in none
    assert row["spearman_rho_PS_speed"] > 0 and row["spearman_rho_bound_speed"] < 0
    assert row["rho_low"] <= row["spearman_rho_PS_speed"] <= row["rho_high"]
    assert row["rho_bound_low"] <= row["spearman_rho_bound_speed"] <= row["rho_bound_high"]
    assert row["n_boot"] > 0 and row["sc_window_t1"] == SC_T1 and row["sc_window_rank"] == 1
    # 4 seeds, one of which never learns under either window: some resamples tie every speed
    assert row["ci_method"] in ("BCa", "percentile") and row["seed_clusters"] == 4
    assert "4 seed clusters" in row["ci_note"] and "descriptive" in row["ci_note"]


REPO_PARITY = Path(__file__).resolve().parents[1] / "results" / "parity"


@pytest.mark.skipif(not (REPO_PARITY / "theory_vs_speed.csv").exists(), reason="committed parity results absent")
def test_committed_rho_values_are_unchanged():
    committed = pd.read_csv(REPO_PARITY / "theory_vs_speed.csv")
    fresh = summarize.theory_vs_speed(summarize.summarize_runs(REPO_PARITY / "runs"))
    pd.testing.assert_series_equal(fresh["spearman_rho_PS_speed"], committed["spearman_rho_PS_speed"])


def test_paper_phase_table_and_macros(phase_root, tmp_path):
    from experiments.parity import tables as parity_tables
    results = phase_root.parent
    (results / "parity").mkdir()
    phase_root.rename(results / "parity" / "phase")
    macros, tex = parity_tables.parity_phase_numbers(results)
    # OS 2/4, MD 3/4 at N = 512: short of the target (MD >= 80%, OS <= 20%, p < 0.01)
    assert macros == {"parityPhaseRuns": "14", "parityPhaseSeedsMin": "2", "parityPhaseAimCells": "none",
                      "parityPhaseReverseCells": "none", "parityPhaseSlowerCells": "none",
                      "parityPhaseFailedCells": "none"}
    assert r"4 & 512 & 614 & 2/4 (0.15--0.85) & 3/4 (0.30--0.95) & 0/4 (0.00--0.49) & $0.88$ \\" in tex
    assert r"4 & 2{,}048 & 614 & -- & 2/2 (0.34--1.00) & -- & -- \\" in tex
    # a cell that meets it is named
    path = results / "parity" / "phase" / "cells.csv"
    cells = pd.read_csv(path)
    at_512 = cells["train_size"] == 512
    cells.loc[at_512 & (cells["objective"] == "os"), "success_rate"] = 0.0
    cells.loc[at_512 & (cells["t1"] == SC_T1), ["success_rate", "logrank_p_vs_os"]] = [0.9, 0.001]
    cells.to_csv(path, index=False)
    assert parity_tables.parity_phase_numbers(results)[0]["parityPhaseAimCells"] == "$k=4$, $N=512$"
    # and one where OS generalises and MD does not is named as the reverse
    cells.loc[at_512 & (cells["objective"] == "os"), "success_rate"] = 1.0
    cells.loc[at_512 & (cells["t1"] == SC_T1), ["success_rate", "logrank_p_vs_os"]] = [0.0, 0.02]
    cells.to_csv(path, index=False)
    macros = parity_tables.parity_phase_numbers(results)[0]
    assert macros["parityPhaseReverseCells"] == "$k=4$, $N=512$ ($p=0.02$)"
    # at 0.90 that cell is a failure of MD too, or only a slower MD, depending on its 0.90 columns
    md_512 = at_512 & (cells["t1"] == SC_T1)
    for rate_90, slower, failed in ((0.0, "none", "$k=4$, $N=512$"), (1.0, "$k=4$, $N=512$", "none")):
        cells.loc[md_512, ["success_rate_90", "reached_90", "mcnemar_p_vs_os_90"]] = [rate_90, 4 * rate_90, 0.125]
        cells.to_csv(path, index=False)
        macros = parity_tables.parity_phase_numbers(results)[0]
        assert macros["parityPhaseSlowerCells"].split(" (")[0] == slower
        assert macros["parityPhaseFailedCells"].split(" (")[0] == failed
    assert "McNemar $p=0.12" in macros["parityPhaseSlowerCells"]
    macros, tex = parity_tables.parity_phase_numbers(tmp_path / "nothing")
    assert macros == {} and "not run" in tex


def test_paper_window_sentence_needs_a_window_sweep(phase_root, tmp_path):
    from experiments.parity import tables as parity_tables
    results = phase_root.parent
    (results / "parity").mkdir()
    phase_root.rename(results / "parity" / "phase")
    assert parity_tables.phase_window_sentence(results) is None  # two windows per cell: no sweep
    path = results / "parity" / "phase" / "theory_vs_speed.csv"
    speed = pd.read_csv(path)
    speed.loc[0, ["windows", "fastest_t1", "spearman_rho_PS_speed", "rho_low", "rho_high"]] = [6, 0.1, -0.2, -0.3, 0.1]
    speed.to_csv(path, index=False)
    sentence = parity_tables.phase_window_sentence(results)
    row = speed.iloc[0]
    assert sentence.startswith(f"$k=4$, $N={row['train_size']}$ ({row['runs']} runs)")
    assert "fastest $U[0,0.1]$" in sentence and r"$\rho(P_S)=-0.20$ $[-0.30, 0.10]$" in sentence
    assert f"t_1^{{P_S}}={row['theory_best_t1']:.3g}" in sentence


def test_window_and_weight_decay_presets_extend_the_grid():
    from experiments.parity.presets import ROOTS, runs_of

    grid = {r.name: r for r in runs_of("phase")}
    windows = runs_of("phase_windows")
    assert ROOTS["phase_windows"] == ROOTS["phase_wd"] == ROOTS["phase"]
    for k in (3, 4, 5):
        t1s = sorted({r.t1 for r in windows if r.k == k})
        assert len(t1s) >= 5 and t1s[-1] == 1.0
        assert round(sample_complexity_optimal_t1(k), 3) in t1s
        assert round(best_t1_given_t0_zero(k), 3) in t1s
    # the grid's own windows at N = 8192 are the same runs (same folders), not copies
    shared = [r for r in windows if r.name in grid]
    assert len(shared) == 3 * 2 * 6 and all(grid[r.name] == r for r in shared)
    decay = runs_of("phase_wd")
    assert {r.weight_decay for r in decay} == {0.0}
    for r in decay:  # each has its weight-decay-0.1 twin in the grid: paired by seed
        assert any(g.weight_decay == 0.1 and (g.k, g.train_size, g.objective, g.t1, g.seed)
                   == (r.k, r.train_size, r.objective, r.t1, r.seed) for g in grid.values())


def test_phase_grid_has_more_seeds_where_objectives_disagreed_and_n_at_four_times_the_bound():
    from experiments.parity.presets import (PHASE_BOUND_CONTRAST_K, PHASE_BOUND_FACTOR, PHASE_CONTRAST_CELLS,
                                            PHASE_K, PHASE_N, PHASE_SEEDS, runs_of)

    grid = runs_of("phase")
    assert len({r.name for r in grid}) == len(grid)
    seeds = {}
    for r in grid:
        seeds.setdefault((r.k, r.train_size, r.objective, r.t1), set()).add(r.seed)
    for k in PHASE_K:
        sc_t1 = round(sample_complexity_optimal_t1(k), 3)
        for n_train in PHASE_N:
            want = 10 if (k, n_train) in PHASE_CONTRAST_CELLS else len(PHASE_SEEDS)
            assert len(seeds[(k, n_train, "os", None)]) == len(seeds[(k, n_train, "md", sc_t1)]) == want
            assert len(seeds[(k, n_train, "md", 1.0)]) == len(PHASE_SEEDS)
        # the extra N column: just above 4x the bound of the window, OS and the window only
        bound = float(sample_complexity_bound(16, k, summarize.BOUND_DELTA, 0.0, sc_t1))
        extra = {r.train_size for r in grid if r.k == k} - set(PHASE_N)
        assert len(extra) == 1
        n_extra = extra.pop()
        assert PHASE_BOUND_FACTOR * bound <= n_extra < PHASE_BOUND_FACTOR * bound + 1
        assert {(r.objective, r.t1) for r in grid if r.train_size == n_extra and r.k == k} == \
            {("os", None), ("md", sc_t1)}
        want = 10 if k in PHASE_BOUND_CONTRAST_K else len(PHASE_SEEDS)
        assert len(seeds[(k, n_extra, "os", None)]) == len(seeds[(k, n_extra, "md", sc_t1)]) == want


def test_paper_weight_decay_sentence_counts_seeds_run_at_both(phase_root, tmp_path):
    from experiments.parity import tables as parity_tables
    results = phase_root.parent
    assert parity_tables.weight_decay_sentence(results / "nothing") is None
    # weight decay 0 for OS on seeds 0 and 1 only, both generalising
    write_phase_run(phase_root, "os", 0, _reaches(400), wd=0.0)
    write_phase_run(phase_root, "os", 1, _reaches(300), wd=0.0)
    summarize.summarize_root(phase_root)
    (results / "parity").mkdir()
    phase_root.rename(results / "parity" / "phase")
    # seeds 0, 1 at wd 0.1: OS reached in seed 0 only (see write_phase_root); MD was not run at wd 0
    assert parity_tables.weight_decay_sentence(results) == \
        "reached 0.99 at weight decay 0.1 vs 0, same seeds: $k=4$, $N=512$: OS 1/2 vs 2/2"


# --- two thresholds, paired tests -------------------------------------------------

def _curve(at_90: int | None, at_99: int | None, final: float = 0.5, end: int = 1000):
    """Held-out accuracy 0.5 until ``at_90`` (then 0.95), 0.995 from ``at_99``
    on; a run that reaches 0.99 stops one evaluation later (early stop),
    one that does not ends at ``end`` with held-out ``final``."""
    out = []
    for s in range(0, end + 1, 100):
        val = 0.995 if at_99 is not None and s >= at_99 else 0.95 if at_90 is not None and s >= at_90 else 0.5
        out.append((s, 1.0 if val > 0.9 else 0.8, val))
        if at_99 is not None and s >= at_99 + 100:
            break
    if at_99 is None:
        out[-1] = (end, 1.0, final if at_90 is None else max(final, 0.95))
    return out


# (steps to 0.90, steps to 0.99, final held-out) of 6 seeds
OS_SEEDS = [(100, 200, 1.0)] * 5 + [(None, None, 0.5)]
MD_SEEDS = [(300, 600, 1.0), (300, None, 0.95), (400, None, 0.95), (500, None, 0.95), (None, None, 0.7),
            (300, 500, 1.0)]


@pytest.fixture
def threshold_root(tmp_path):
    root = tmp_path / "thresholds"
    for seed, ((o90, o99, ofin), (m90, m99, mfin)) in enumerate(zip(OS_SEEDS, MD_SEEDS)):
        write_phase_run(root, "os", seed, _curve(o90, o99, ofin))
        write_phase_run(root, "md", seed, _curve(m90, m99, mfin), window=(0.0, SC_T1))
    summarize.summarize_root(root)
    return root


def test_exact_mcnemar_is_the_binomial_of_the_discordant_pairs():
    # b = 1, c = 4: P(X <= 1) + P(X >= 4) for X ~ Bin(5, 1/2) = 2 * (1 + 5) / 32
    assert summarize.exact_binomial_p(1, 5) == pytest.approx(0.375)
    assert summarize.exact_binomial_p(0, 6) == pytest.approx(2 / 64)
    assert summarize.exact_binomial_p(24, 24) == pytest.approx(2 * 0.5 ** 24)  # the README's 1.2e-7
    assert summarize.exact_binomial_p(0, 0) == 1.0  # no discordant pair


def test_cells_at_both_thresholds(threshold_root):
    from scipy import stats
    cells = pd.read_csv(threshold_root / "cells.csv").set_index("objective")
    md, os_ = cells.loc["md"], cells.loc["os"]
    # at 0.99: MD reached in seeds 0 and 5, OS in 0-4: discordant MD-only {5}, OS-only {1, 2, 3, 4}
    assert (md["reached"], md["reached_where_os_not"], md["os_reached_where_not"]) == (2, 1, 4)
    assert md["mcnemar_p_vs_os_99"] == pytest.approx(0.375)
    # at 0.90: MD in 0, 1, 2, 3, 5, OS in 0-4: one discordant seed each way
    assert (md["reached_90"], md["reached_where_os_not_90"], md["os_reached_where_not_90"]) == (5, 1, 1)
    assert md["mcnemar_p_vs_os_90"] == pytest.approx(1.0)
    assert pd.isna(os_["mcnemar_p_vs_os_99"]) and pd.isna(os_["logrank_p_vs_os_90"])  # OS is the reference
    # Kaplan-Meier: 0.90 at 300 (3 of 6), 400, 500, one censored at 1000: median 300;
    # 0.99 at 500 and 600 only (S = 4/6 after): no median
    assert md["km_median_steps_90"] == 300 and pd.isna(md["km_median_steps"])
    assert os_["km_median_steps_90"] == 100 and os_["km_median_steps"] == 200
    assert md["success_rate_90"] == pytest.approx(5 / 6)
    assert (md["wilson_low_90"], md["wilson_high_90"]) == pytest.approx(summarize.wilson_interval(5, 6))
    # log-rank from event times written down here, not by the aggregator
    def times(events, censored):
        return stats.CensoredData(uncensored=np.array(events, float), right=np.array(censored, float))
    p_90 = stats.logrank(times([300, 300, 400, 500, 300], [1000]), times([100] * 5, [1000])).pvalue
    p_99 = stats.logrank(times([600, 500], [1000] * 4), times([200] * 5, [1000])).pvalue
    assert md["logrank_p_vs_os_90"] == pytest.approx(p_90) and md["logrank_p_vs_os"] == pytest.approx(p_99)
    assert md["logrank_p_vs_os_90"] != pytest.approx(md["logrank_p_vs_os"], rel=1e-2)
    # outcome counts: 2 reached 0.99, 3 passed 0.90 only, one ended at 0.7 (partial)
    assert [md[f"n_{o}"] for o in summarize.OUTCOMES] == [2, 3, 1, 0, 0]
    assert [os_[f"n_{o}"] for o in summarize.OUTCOMES] == [5, 0, 0, 1, 0]
    text = (threshold_root / "cells.md").read_text()
    assert "| 0.38 | 5/6 | 300 [300, –] |" in text and "| 2 / 3 / 1 / 0 |" in text


# --- each window against U[0,1] ------------------------------------------------------

@pytest.fixture
def window_root(tmp_path):
    """U[0,0.261] and U[0,0.1] against U[0,1], 5 seeds each, at N = 512 and 2048."""
    root = tmp_path / "windows"
    sc, narrow, full = (0.0, SC_T1), (0.0, 0.1), (0.0, 1.0)
    # per seed (window, U[0,1]) steps to 0.99 (None: never within the budget of 1000)
    sc_vs_full = [(400, 700), (500, None), (None, None), (None, 300), (600, 600)]
    for seed, (mine, theirs) in enumerate(sc_vs_full):
        write_phase_run(root, "md", seed, _curve(mine, mine), window=sc)
        write_phase_run(root, "md", seed, _curve(theirs, theirs), window=full)
        write_phase_run(root, "md", seed, _curve(200, 200), window=narrow)
    for seed in range(2):  # N = 2048: the window reaches 0.99, U[0,1] only 0.90
        write_phase_run(root, "md", seed, _curve(200, 300), window=sc, n_train=2048)
        write_phase_run(root, "md", seed, _curve(500, None, 0.95), window=full, n_train=2048)
    # a U[0,1] run with a budget of 400, ended without 0.99: the window's 0.99
    # at 600 comes later, so the pair is undecided, not a win
    write_phase_run(root, "md", 2, _curve(200, 600), window=sc, n_train=2048)
    write_phase_run(root, "md", 2, _curve(None, None, 0.8, end=400), window=full, n_train=2048, budget=400)
    summarize.summarize_root(root)
    return root


def test_window_vs_full_range_sign_test(window_root):
    table = pd.read_csv(window_root / "window_vs_full_range.csv")
    cell = table[(table["scope"] == "cell") & (table["train_size"] == 512) & (table["t1"] == SC_T1)].iloc[0]
    # seed 0 sooner (win), 1 U[0,1] never (win), 2 both never (tie), 3 the window
    # never while U[0,1] got there (loss), 4 same step (tie)
    assert (cell["wins_99"], cell["losses_99"], cell["ties_99"], cell["undecided_99"]) == (2, 1, 2, 0)
    assert cell["sign_test_p_99"] == pytest.approx(1.0)  # 2 of 3: P(X<=1 or X>=2) under Bin(3, 1/2)
    assert cell["window_kind"] == "sample-complexity optimal" and cell["paired_seeds"] == 5
    narrow = table[(table["scope"] == "cell") & (table["t1"] == 0.1)].iloc[0]
    assert (narrow["wins_99"], narrow["losses_99"], narrow["ties_99"]) == (5, 0, 0)  # 200 beats all
    assert narrow["sign_test_p_99"] == pytest.approx(2 / 32) and narrow["window_kind"] == "U[0,0.1]"
    big = table[(table["scope"] == "cell") & (table["train_size"] == 2048)].iloc[0]
    assert (big["wins_99"], big["losses_99"], big["ties_99"], big["undecided_99"]) == (2, 0, 0, 1)
    # at 0.90 U[0,1] got there too (at 500, after the window's 200): still wins; the short one never did, and
    # the window's 0.90 at 200 came within its 400 steps: a win
    assert (big["wins_90"], big["losses_90"], big["undecided_90"]) == (3, 0, 0)
    pooled = table[(table["scope"] == "pooled") & (table["window_kind"] == "sample-complexity optimal")].iloc[0]
    assert pooled["cells"] == 2 and pd.isna(pooled["train_size"]) and pooled["t1"] == SC_T1
    assert (pooled["wins_99"], pooled["losses_99"], pooled["ties_99"], pooled["undecided_99"]) == (4, 1, 2, 1)
    assert pooled["sign_test_p_99"] == pytest.approx(summarize.exact_binomial_p(4, 5)) == pytest.approx(0.375)


def test_window_vs_full_range_of_the_phase_fixture(phase_root):
    # U[0,0.261]: 400, 500, 600, never; U[0,1] never in all four: three wins, a tie
    table = pd.read_csv(phase_root / "window_vs_full_range.csv")
    assert list(table["scope"]) == ["cell", "pooled"]
    assert (table.loc[0, "wins_99"], table.loc[0, "losses_99"], table.loc[0, "ties_99"]) == (3, 0, 1)
    assert table.loc[0, "sign_test_p_99"] == pytest.approx(0.25)
