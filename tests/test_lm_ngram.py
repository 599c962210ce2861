"""Corpus dependency weights and the predicted mask rate t* (derive ngram)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mdtheory.data.corpus import Corpus
from mdtheory.derive.ngram import predict
from mdtheory.errors import UserError
from mdtheory.theory import ngram_weights as nw
from mdtheory.theory.numeric import PAPER_WIKITEXT_WEIGHTS, mixture_argmax

ROOT = Path(__file__).resolve().parents[1]


def test_paper_wikitext_weights_give_0463():
    assert mixture_argmax(PAPER_WIKITEXT_WEIGHTS) == pytest.approx(0.463, abs=5e-4)
    corpus = Corpus("toy", "a b c a b c a b c a b c a b c a b c\n", "a\n", "b\n")
    assert predict(corpus, min_count=2)["paper_wikitext"]["t_star"] == pytest.approx(0.463, abs=5e-4)


def test_words_and_ids():
    assert nw.words("Th' King's  men,\nand 2 DOGS!") == ["th", "king's", "men", "and", "2", "dogs"]
    ids, vocab = nw.word_ids("b a b c b")
    assert vocab[0] == "b" and ids.tolist() == [0, 1, 0, 2, 0]


def test_distinct_and_mass_frequent_by_hand():
    # 0 1 0 1 ... 0 1 0 2 0 2: bigrams 01:6, 10:6, 02:2, 20:1
    ids = np.array([0, 1] * 6 + [0, 2, 0, 2])
    assert sorted(nw.ngram_counts(ids, 2).tolist()) == [1, 2, 6, 6]
    # trigrams 010:6, 101:5, 102, 020, 202: two are frequent at min_count 5
    assert sorted(nw.ngram_counts(ids, 3).tolist()) == [1, 1, 1, 5, 6]
    assert nw.distinct_frequent(ids, orders=(2, 3), min_count=5) == {2: 0.5, 3: 0.5}
    # occurrences covered by frequent n-grams: 12 bigrams, 11 trigrams
    assert nw.mass_frequent(ids, orders=(2, 3), min_count=5) == pytest.approx({2: 12 / 23, 3: 11 / 23})


def test_lag_mi_finds_the_dependency_range():
    rng = np.random.default_rng(0)
    n = 60_000
    ids = rng.integers(0, 20, n)
    ids[3:] = np.where(rng.random(n - 3) < 0.9, ids[:-3], ids[3:])  # x_j copies x_{j-3}
    w = nw.lag_mi(ids, orders=(2, 3, 4, 5), mi_vocab=30)
    assert max(w, key=w.get) == 4   # lag 3 = order 4


def test_estimator_errors():
    with pytest.raises(UserError, match="unknown estimator"):
        nw.estimate_weights(np.arange(10), "magic")
    with pytest.raises(UserError, match="no dependencies"):
        nw.estimate_weights(np.arange(50), "distinct-frequent", min_count=5)
    with pytest.raises(UserError, match="no words"):
        nw.word_ids("... !!!")


def _toy_text(path):
    rng = np.random.default_rng(1)
    phrases = ["the king is dead", "long live the king", "to be or not to be",
               "my lord the queen", "what news my lord"]
    path.write_text("\n".join(phrases[i] for i in rng.integers(0, 5, 600)) + "\n")


def test_cli_writes_predicted_t(tmp_path):
    text, out = tmp_path / "toy.txt", tmp_path / "pred.json"
    _toy_text(text)
    proc = subprocess.run([sys.executable, "-m", "mdtheory.derive.ngram", "--text-file", str(text),
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert set(res["weights"]) == {"2", "3", "4", "5", "6"}
    assert sum(res["weights"].values()) == pytest.approx(1, abs=1e-5)
    assert 0 < res["t_star"] < 1 and res["estimator"] == "distinct-frequent"
    assert {"lag-mi", "mass-frequent@min_count=5"} <= set(res["alternatives"])
    assert res["sensitivity"]["t_star_min"] <= res["t_star"] <= res["sensitivity"]["t_star_max"]
    assert "git_commit" in res["provenance"]


def test_cli_bad_input_is_one_line(tmp_path):
    out = tmp_path / "pred.json"
    proc = subprocess.run([sys.executable, "-m", "mdtheory.derive.ngram", "--text-file",
                           str(tmp_path / "missing.txt"), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_dispatch_from_mdtheory_derive(tmp_path):
    if not (ROOT / "mdtheory" / "derive" / "__main__.py").exists():
        pytest.skip("mdtheory.derive dispatcher not present")
    text, out = tmp_path / "toy.txt", tmp_path / "pred.json"
    _toy_text(text)
    proc = subprocess.run([sys.executable, "-m", "mdtheory.derive", "ngram", "--text-file", str(text),
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "t_star" in json.loads(out.read_text())
