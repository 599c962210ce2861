"""The sweep's summary of the laws centred on t* and of the unigram level:
smooth laws paired by seed against U[0, 1] and the chosen window, the smooth
law and the law of any kind chosen on val, and the warning when U[0, 1] or
the chosen law ended at the unigram entropy."""
from __future__ import annotations

import pandas as pd
import pytest

from experiments.lm import summarize as S
from experiments.lm.sweep import PAST_UNIGRAM_MARGIN, unigram_columns

NAN = float("nan")
# (kind, sampler, t0, t1, per-seed val, per-seed test)
LAWS = [("uniform", "uniform", 0.0, 1.0, (3.10, 3.12, 3.14), (3.11, 3.13, 3.15)),
        ("window", "window:0.3,0.4", 0.3, 0.4, (2.90, 2.92, 2.94), (2.91, 2.93, 2.95)),
        ("window", "window:0.8,0.9", 0.8, 0.9, (3.20, 3.21, 3.22), (3.20, 3.21, 3.22)),
        ("predicted", "window:0.41,0.51", 0.41, 0.51, (2.88, 2.90, 2.92), (2.89, 2.90, 2.93)),
        ("smooth", "predicted:law=beta", NAN, NAN, (2.95, 2.96, 2.97), (2.95, 2.96, 2.98)),
        ("smooth", "predicted:law=logitnormal", NAN, NAN, (2.85, 2.87, 2.89), (2.86, 2.88, 2.90))]


def sweep_frame(entropy: float = 3.3) -> pd.DataFrame:
    rows = []
    for kind, sampler, t0, t1, vals, tests in LAWS:
        for seed, (val, test) in enumerate(zip(vals, tests)):
            rows.append({"kind": kind, "objective": "md", "sampler": sampler, "t0": t0, "t1": t1, "seed": seed,
                         "steps": 100, S.VAL: val, S.TEST: test, f"{S.TEST}_se": 0.01,
                         **unigram_columns({S.TEST: test}, entropy)})
    return pd.DataFrame(rows)


def test_smooth_laws_are_paired_by_seed_and_the_best_is_chosen_on_val():
    out = S.summarize(sweep_frame())
    assert out["best_smooth"]["sampler"] == "predicted:law=logitnormal" and out["best_smooth"]["selected_on"] == "val"
    beta = next(g for g in out["smooth"] if g["sampler"] == "predicted:law=beta")
    assert beta["minus_uniform"]["per_seed"] == pytest.approx([2.95 - 3.11, 2.96 - 3.13, 2.98 - 3.15])
    assert beta["minus_best_window"]["per_seed"] == pytest.approx([0.04, 0.03, 0.03])
    assert beta["minus_predicted"]["per_seed"] == pytest.approx([0.06, 0.06, 0.05])
    # the law of any kind with the lowest val loss, with its paired test gap to U[0, 1]
    assert out["best_law"]["sampler"] == "predicted:law=logitnormal"
    assert out["best_law"]["minus_uniform"]["mean"] == pytest.approx((-0.25 - 0.25 - 0.25) / 3)
    text = S.recommendation(out)
    assert "`--sampler predicted" in text and "(the smooth law best on val)" in text
    assert "unigram" not in text  # every law ended well below the unigram entropy


def test_unigram_flags_and_the_recommendation_warning():
    assert unigram_columns({S.TEST: 3.0}, 3.3)["past_unigram"] is True
    edge = unigram_columns({S.TEST: 3.3 - PAST_UNIGRAM_MARGIN / 2}, 3.3)
    assert edge["past_unigram"] is False and edge["below_unigram"] == pytest.approx(PAST_UNIGRAM_MARGIN / 2)
    assert unigram_columns({"nll_test": 2.0}, 3.3)["below_unigram"] == pytest.approx(1.3)  # AR: its exact NLL
    # at an entropy of 3.14 U[0, 1] (3.11-3.15) has not left the unigram level; the windows have
    out = S.summarize(sweep_frame(entropy=3.14))
    uniform = next(g for g in out["groups"] if g["kind"] == "uniform")
    assert uniform["past_unigram"] is False and uniform["unigram_entropy"] == pytest.approx(3.14)
    assert out["best_window"]["past_unigram"] is True
    text = S.recommendation(out)
    assert "U[0, 1] ended within 0.05 nats of the test split's unigram entropy (3.1400)" in text
