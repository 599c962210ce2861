"""The corpus-predicted law: centred laws, the spec, the cache, and the LM task."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mdtheory.errors import UserError
from mdtheory.masking import parse_sampler
from mdtheory.predicted import centred_law, law_for_text, parse_options, predicted_t_star
from mdtheory.train.lm_task import LMTask, LMTaskConfig

WINDOW_SD = 0.1 / math.sqrt(12)


def _mean_sd(sampler):
    mean = sampler.expect(lambda t: t)
    return mean, math.sqrt(sampler.expect(lambda t: t * t) - mean ** 2)


@pytest.mark.parametrize("t_star", [0.05, 0.3, 0.44, 0.97])
def test_centred_laws_have_their_mode_at_t_star_and_the_windows_spread(t_star):
    window = centred_law(t_star, 0.1, "window")
    t0, t1 = window.t0, window.t1
    assert t1 - t0 == pytest.approx(0.1) and 0 <= t0 and t1 <= 1
    if 0.05 <= t_star <= 0.95:
        assert (t0 + t1) / 2 == pytest.approx(t_star)
    for law in ("beta", "logitnormal"):
        sampler = centred_law(t_star, 0.1, law)
        grid = np.linspace(0.001, 0.999, 99_801)
        assert grid[np.argmax(sampler.density(grid))] == pytest.approx(t_star, abs=2e-3), law
        assert _mean_sd(sampler)[1] == pytest.approx(WINDOW_SD, rel=0.02), law


def test_the_spec_needs_a_t_star_and_checks_its_options():
    assert parse_options("predicted") == (0.1, "window")
    assert parse_options("predicted:width=0.2,law=beta") == (0.2, "beta")
    assert parse_sampler("predicted:law=window,width=0.2", t_star=0.5).spec() == "window:0.4,0.6"
    with pytest.raises(UserError, match="t\\*"):
        parse_sampler("predicted")
    for bad in ("predicted:width=0", "predicted:width=x", "predicted:law=cauchy", "predicted:sharp"):
        with pytest.raises(UserError):
            parse_sampler(bad, t_star=0.4)
    assert parse_sampler("logitnormal:0,0.5").spec() == "logitnormal:0,0.5"


TEXT = "\n".join(["the cat sat on the mat and the dog sat on the log",
                  "a bird in the hand is worth two in the bush"] * 200)


def test_t_star_is_cached_by_corpus_fingerprint(tmp_path, monkeypatch):
    from mdtheory.data.corpus import Corpus
    from mdtheory.theory import ngram_weights

    monkeypatch.setenv("MDTHEORY_CACHE_DIR", str(tmp_path))
    corpus = Corpus("text", TEXT, "", "")
    first = predicted_t_star(corpus)
    assert 0 < first["t_star"] < 1 and first["fingerprint"] == corpus.fingerprint() and first["weights"]
    monkeypatch.setattr(ngram_weights, "estimate_weights", lambda *a, **k: pytest.fail("counted again"))
    assert predicted_t_star(corpus) == first
    sampler, info = law_for_text(TEXT, "predicted:law=beta")
    assert info["t_star"] == first["t_star"] and sampler.spec().startswith("beta:")


def test_lm_task_trains_on_the_law_at_its_corpus_t_star(tmp_path, monkeypatch):
    monkeypatch.setenv("MDTHEORY_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT + "\n")
    task = LMTask(LMTaskConfig(text_file=str(path), tokenizer="char", sampler="predicted:width=0.2",
                               block_size=16, n_layer=1, n_head=2, n_embd=16, eval_blocks=4, eval_nt=2))
    config = task.config()
    t_star = config["predicted"]["t_star"]
    law = config["sampler_law"]
    assert law["kind"] == "window" and (law["t0"] + law["t1"]) / 2 == pytest.approx(min(max(t_star, 0.1), 0.9))
    assert config["predicted"]["weights"] and config["predicted"]["law"] == "window"
    with pytest.raises(UserError):
        LMTask(LMTaskConfig(text_file=str(path), tokenizer="char", sampler="predicted:law=x", block_size=16,
                            n_layer=1, n_head=2, n_embd=16, eval_blocks=4, eval_nt=2))
