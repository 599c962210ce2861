"""The `python -m mdtheory.derive` contract: JSON keys, values, errors, LaTeX."""
import json
import os
import re
import subprocess
import sys
import time

import pytest

from mdtheory.cli import run_cli
from mdtheory.derive.__main__ import main
from mdtheory.latex import spell_k, spell_rate

BASE_KEYS = {"k", "P_S_full_range", "signal_optimal_t", "P_S_at_signal_optimal_t",
             "signal_optimal_t1_given_t0_0", "sample_complexity_optimal_t1"}


def run(*args):
    return subprocess.run([sys.executable, "-m", "mdtheory.derive", *args],
                          capture_output=True, text=True, timeout=60)


def run_inproc(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_single_k_json(capsys):
    code, out, _ = run_inproc(capsys, "--k", "6", "--json")
    rec = json.loads(out)
    assert code == 0 and set(rec) == BASE_KEYS
    assert all(isinstance(v, (int, float)) for v in rec.values())
    assert rec["k"] == 6
    assert rec["P_S_full_range"] == pytest.approx(1 / 8)
    assert rec["signal_optimal_t"] == pytest.approx(1 / 7)
    assert rec["P_S_at_signal_optimal_t"] == pytest.approx((6 / 7) ** 6)
    assert rec["signal_optimal_t1_given_t0_0"] == pytest.approx(0.2459, abs=1e-4)
    assert rec["sample_complexity_optimal_t1"] == pytest.approx(0.1844, abs=1e-4)


def test_several_k_with_window_and_bound(capsys):
    code, out, _ = run_inproc(capsys, "--k", "2", "3", "6", "--window", "0", "0.2",
                              "--n", "20", "--delta", "0.05", "--json")
    recs = json.loads(out)
    assert code == 0 and isinstance(recs, list) and [r["k"] for r in recs] == [2, 3, 6]
    for r in recs:
        assert set(r) == BASE_KEYS | {"P_S_window", "P_N_window", "N_bound"}
        assert r["P_S_window"] + r["P_N_window"] == pytest.approx(1)
    assert recs[2]["P_S_window"] == pytest.approx(0.3104, abs=1e-4)
    assert recs[2]["N_bound"] == pytest.approx(926.13, abs=0.01)


def test_window_only_adds_window_keys(capsys):
    _, out, _ = run_inproc(capsys, "--k", "6", "--window", "0.3", "0.3", "--json")
    rec = json.loads(out)
    assert set(rec) == BASE_KEYS | {"P_S_window", "P_N_window"}
    assert rec["P_S_window"] == pytest.approx(7 * 0.3 * 0.7 ** 6)


def test_readable_report(capsys):
    code, out, _ = run_inproc(capsys, "--k", "6", "--window", "0", "0.2", "--n", "20")
    assert code == 0
    assert "P_S = 1/(k+2)" in out and "0.125000" in out and "0.245933" in out
    assert "0.4630" in out and "0.4814" in out and "numeric (CRootOf" in out


@pytest.mark.parametrize("args", [
    ["--window", "0.3", "0.2"], ["--window", "0", "1.5"], ["--window", "-0.1", "0.2"],
    ["--k", "0"], ["--k", "-3"], ["--k", "6", "--n", "5"], ["--k", "2", "8", "--n", "7"],
    ["--n", "20", "--delta", "0"], ["--n", "20", "--delta", "1"], ["--n", "20", "--delta", "1.5"],
    ["--k", "abc"], ["--k", "6.5"], ["--window", "0", "x"], ["--n", "ten"], ["--window", "0", "nan"],
    ["--n", "20", "--delta", "inf"], ["--delta", "0.1"], ["--n", "20", "--window", "0", "0"],
    ["--json", "--k"], ["--bogus"],
])
def test_invalid_input_one_line_exit_2(args, capsys):
    argv = args if "--json" in args else [*args, "--json"]
    with pytest.raises(SystemExit) as exc:
        run_cli(main, argv)
    out = capsys.readouterr()
    assert exc.value.code == 2
    assert out.out == ""
    assert len(out.err.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["--window", "0.3", "0.2"], ["--k", "abc"], ["--k", "6", "--n", "3"]])
def test_invalid_input_as_a_process(args):
    res = run(*args, "--json")
    assert res.returncode == 2, res
    assert res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_unwritable_latex_dir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = run("--latex", str(blocker / "sub"))
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_help():
    res = run("--help")
    assert res.returncode == 0 and "--window" in res.stdout and "--latex" in res.stdout


def test_ngram_dispatch_reaches_the_ngram_tool():
    res = run("ngram", "--help")
    # either the ngram tool answers its help, or (module missing) one error line, exit 2
    assert res.returncode in (0, 2)
    if res.returncode == 2:
        assert len(res.stderr.strip().splitlines()) == 1


def test_latex_output(tmp_path, capsys):
    code, out, _ = run_inproc(capsys, "--latex", str(tmp_path / "gen"))
    assert code == 0 and "theory.tex" in out
    tex = (tmp_path / "gen" / "theory.tex").read_text()
    names = re.findall(r"\\newcommand\{\\([^}]*)\}", tex)
    assert names and all(name.isalpha() for name in names)
    assert len(names) == len(set(names))
    macros = dict(re.findall(r"\\newcommand\{\\([A-Za-z]+)\}\{([^%\n]*)\}", tex))
    assert macros["PSfullRangeKsix"] == "0.1250"
    assert macros["BestTOneGivenTZeroKsix"] == "0.2459"
    assert macros["SampleComplexityOptimalTOneKsix"] == "0.1844"
    assert macros["PSwindowZeroToPointTwoKsix"] == "0.3104"
    assert macros["MixtureArgmaxWikiText"] == "0.463"
    assert macros["MixtureArgmaxSquaredWikiText"] == "0.481"
    formulas = (tmp_path / "gen" / "theory_formulas.tex").read_text()
    assert r"\frac{1}{k + 2}" in formulas and r"\begin{align*}" in formulas


def test_spelling():
    assert spell_k(6) == "six" and spell_k(20) == "twenty" and spell_k(15) == "onefive"
    assert spell_rate(0.45) == "PointFourFive" and spell_rate(1.0) == "One" and spell_rate(0) == "Zero"


def test_makefile_command_runs_fast():
    res = run("--k", *map(str, range(1, 21)), "--window", "0", "0.2", "--n", "20",
              "--delta", "0.05", "--json")
    assert res.returncode == 0 and len(json.loads(res.stdout)) == 20


def test_provenance_left_alone_while_the_output_is_the_same(tmp_path, capsys):
    prov = tmp_path / "derive.provenance.json"
    args = ["--k", "6", "--json", "--provenance", str(prov)]
    assert main(args) == 0
    first = prov.read_text()
    record = json.loads(first)
    assert record["command"][:3] == ["python", "-m", "mdtheory.derive"] and "--provenance" in record["command"]
    assert len(record["output_sha256"]) == 64
    os.utime(prov, (1_000_000_000, 1_000_000_000))
    assert main(args) == 0  # same numbers: same file, same modification time
    assert prov.read_text() == first and prov.stat().st_mtime == 1_000_000_000
    assert main(["--k", "5", "--json", "--provenance", str(prov)]) == 0  # other numbers: new record
    assert json.loads(prov.read_text())["output_sha256"] != record["output_sha256"]


@pytest.mark.parametrize("where", ["dir", "under_file"])
def test_bad_provenance_path_is_one_line_and_nothing_printed(tmp_path, capsys, where):
    (tmp_path / "afile").write_text("x")
    target = tmp_path if where == "dir" else tmp_path / "afile" / "p.json"
    with pytest.raises(SystemExit) as exc:
        run_cli(main, ["--k", "6", "--json", "--provenance", str(target)])
    out = capsys.readouterr()
    assert exc.value.code == 2 and out.out == "" and len(out.err.strip().splitlines()) == 1


def test_text_report_for_large_k_is_fast(capsys):
    start = time.perf_counter()
    code, out, _ = run_inproc(capsys, "--k", "1000")
    assert code == 0 and "k = 1000" in out
    assert "checked for k <= 30 only" in out
    assert time.perf_counter() - start < 10  # was minutes: sympy solved a degree-1000 polynomial


def test_ngram_bad_out_is_refused_before_counting(tmp_path, capsys):
    from mdtheory.derive import ngram
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        ngram.main(["--out", str(tmp_path)])
    assert exc.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    assert time.perf_counter() - start < 5  # refused before reading the corpus


def test_ngram_rerun_leaves_predicted_t_unchanged(tmp_path, capsys):
    import random

    from mdtheory.derive import ngram
    rng = random.Random(0)
    words = [f"w{i}" for i in range(40)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words[:8] if j % 3 else words) for j in range(12)) + "."
                                for _ in range(3000)))
    out = tmp_path / "predicted_t.json"
    args = ["--text-file", str(corpus), "--out", str(out)]
    assert ngram.main(args) == 0
    first = out.read_text()
    os.utime(out, (1_000_000_000, 1_000_000_000))
    assert ngram.main(args) == 0  # new timestamp in the provenance, same numbers
    assert out.read_text() == first and out.stat().st_mtime == 1_000_000_000
    assert "left unchanged" in capsys.readouterr().out
