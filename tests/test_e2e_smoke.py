"""End to end, tiny: derive -> two tiny parity runs (MD and OS) through the
training CLI -> figures -> generated tables -> paper PDF, all in a temporary
folder so the repository's results, figures and paper are untouched.

The PDF step is the one `make paper` runs (scripts/build_paper.py), so a
table running off the page or an overfull line fails this test.

With the environment variable CI set, every failing step fails the test
(a missing latexmk included); without it, a machine lacking latexmk skips
the PDF step only.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = bool(os.environ.get("CI"))
TINY_RUN = ["--n", "8", "--k", "2", "--train-size", "128", "--val-size", "64",
            "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "32", "--steps", "60",
            "--eval-every", "20", "--seed", "0", "--no-progress", "--threads", "1"]


def _run(cmd, cwd=REPO, timeout=300, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stderr[-3000:]}"
    return out


def test_derive_runs_figures_paper(tmp_path):
    py = sys.executable
    results, figures, paper = tmp_path / "results", tmp_path / "figures", tmp_path / "paper"

    # 1. theory numbers and LaTeX
    (results / "theory").mkdir(parents=True)
    derive = _run([py, "-m", "mdtheory.derive", "--k", "2", "6", "--window", "0", "0.2", "--n", "20",
                   "--delta", "0.05", "--json"])
    (results / "theory" / "derive.json").write_text(derive.stdout)
    _run([py, "-m", "mdtheory.derive", "--latex", str(paper / "generated")])

    # 2. two tiny parity runs through the public CLI
    for objective in ("md", "os"):
        window = ["--window", "0", "0.3"] if objective == "md" else []  # a window is refused for os
        _run([py, "-m", "mdtheory.train", "parity", "--objective", objective, *TINY_RUN, *window,
              "--out", str(results / "parity" / "runs" / f"{objective}_s0")])

    _run([py, "-m", "experiments.parity.summarize", "--root", str(results / "parity")])  # as make experiments

    # 3. figures from those results only
    drawn = _run([py, "-m", "mdtheory.plots", "--results", str(results), "--out", str(figures)])
    for name in ("theory_regime_diagram", "theory_signal_curves", "parity_accuracy", "parity_os_long"):
        assert (figures / f"{name}.pdf").stat().st_size > 1000, drawn.stdout
    assert "lm_window_sweep" in drawn.stdout and "skipped" in drawn.stdout  # no LM results here
    assert not (figures / "lm_window_sweep.pdf").exists()

    # 4. generated numbers and the paper, built in a copy of paper/
    for item in ("main.tex", "refs.bib", "sections"):
        src = REPO / "paper" / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, paper / item)
    _run([py, "-m", "mdtheory.plots.paper_tables", "--results", str(results), "--out", str(paper / "generated")])
    macros = (paper / "generated" / "results.tex").read_text()
    assert "res@parityN\\endcsname{8}" in macros and "res@parityK\\endcsname{2}" in macros

    if shutil.which("latexmk") is None:
        if IN_CI:
            pytest.fail("latexmk is not installed (CI must install texlive-latex-base/-recommended, "
                        "texlive-fonts-recommended, latexmk)")
        pytest.skip("latexmk not installed; the paper step needs it")
    # as `make paper` builds it: quiet, and failing on any overfull box > 1 pt
    built = _run([py, str(REPO / "scripts" / "build_paper.py"), str(paper)], timeout=240,
                 stdin=subprocess.DEVNULL)
    assert len(built.stdout.splitlines()) == 1, built.stdout
    pdf = paper / "build" / "main.pdf"
    assert pdf.read_bytes()[:4] == b"%PDF" and pdf.stat().st_size > 20_000
    log = (paper / "build" / "main.log").read_text(errors="replace")
    assert not re.search(r"Citation `[^']*' .*undefined", log), "unresolved citations in the paper"
