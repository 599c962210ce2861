"""The paper build (scripts/build_paper.py): quiet on success, and a failure
on any overfull box > 1 pt, i.e. text in the margin or a table off the page."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "build_paper.py"

spec = importlib.util.spec_from_file_location("build_paper", SCRIPT)
build_paper = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_paper)

# excerpts of a real pdflatex log of this paper before its layout was fixed
LOG = r"""(./sections/theory.tex [2]
Overfull \hbox (16.86174pt too wide) in paragraph at lines 47--55
 []\OT1/cmr/bx/n/10 Sample com-plex-ity.[]
 []

[3 <../figures//theory_signal_curves.pdf>]) (./sections/experiments.tex
Overfull \hbox (0.5pt too wide) in paragraph at lines 2--105
) (./sections/comparison.tex (./generated/comparison.tex
Underfull \hbox (badness 10000) in paragraph at lines 10--11
) [5]) (./sections/limitations.tex [6]
Overfull \vbox (216.67175pt too high) has occurred while \output is active []
[7])
"""


def test_overfull_boxes_beyond_1pt_are_reported():
    problems = build_paper.layout_problems(LOG)
    assert len(problems) == 2  # the 0.5 pt box and the underfull box are tolerated
    assert "16.9pt" in problems[0] and "page 3" in problems[0] and "sections/theory.tex" in problems[0]
    assert "216.7pt" in problems[1] and "page 7" in problems[1] and "runs off the page" in problems[1]
    assert build_paper.layout_problems(LOG, max_pt=20) == [build_paper.layout_problems(LOG)[1]]
    assert build_paper.layout_problems("no boxes here") == []


def _paper_copy(tmp_path: Path) -> Path:
    """paper/ as `make paper` builds it: sources, tables regenerated from results/, figures."""
    paper = tmp_path / "paper"
    paper.mkdir()
    for item in ("main.tex", "refs.bib", "sections"):
        src = REPO / "paper" / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, paper / item)
    shutil.copytree(REPO / "paper" / "generated", paper / "generated")
    tables = subprocess.run([sys.executable, "-m", "mdtheory.plots.paper_tables", "--results", str(REPO / "results"),
                             "--out", str(paper / "generated")], capture_output=True, text=True, cwd=REPO)
    assert tables.returncode == 0, tables.stderr
    (tmp_path / "figures").symlink_to(REPO / "figures")
    return paper


@pytest.mark.skipif(shutil.which("latexmk") is None and not os.environ.get("CI"), reason="latexmk not installed")
def test_the_paper_builds_without_layout_defects(tmp_path):
    paper = _paper_copy(tmp_path)
    run = subprocess.run([sys.executable, str(SCRIPT), str(paper)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("wrote ") and len(run.stdout.splitlines()) == 1  # quiet: no latexmk transcript
    assert (paper / "build" / "main.pdf").read_bytes()[:4] == b"%PDF"


@pytest.mark.skipif(shutil.which("latexmk") is None and not os.environ.get("CI"), reason="latexmk not installed")
@pytest.mark.parametrize("where", ["in the text", "in a float"])
def test_a_table_off_the_page_fails_the_build(tmp_path, where):
    paper = tmp_path / "paper"
    paper.mkdir()
    table = "\\begin{tabular}{lr}\n" + "\n".join(f"row {i} & {i} \\\\" for i in range(90)) + "\n\\end{tabular}"
    if where == "in a float":
        table = "\\begin{table}[h]\n" + table + "\n\\end{table}"
    (paper / "main.tex").write_text("\\documentclass{article}\\begin{document}\nSome text.\n\n"
                                    + table + "\n\\end{document}\n")
    run = subprocess.run([sys.executable, str(SCRIPT), str(paper)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout
    assert "runs off the page" in run.stderr
    assert "Latexmk" not in run.stderr + run.stdout  # the transcript is not printed for a layout failure
