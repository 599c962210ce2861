"""The Makefile's step logic, with a stand-in for python that only records
what it was asked to run (no training, no TeX): a deleted run folder is
retrained by `make all`, and a second `make all` redoes nothing it need not."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

FAKE_PY = """#!/bin/sh
echo "$*" >> "$STEP_LOG"
case "$*" in
  *experiments.parity.run*)   # a runner: trains the runs that are missing, skips the others
    [ -f results/parity/quick/r/metrics.jsonl ] || { mkdir -p results/parity/quick/r;
      echo '{"step": 1}' > results/parity/quick/r/metrics.jsonl; } ;;
  *"mdtheory.derive --k"*) echo '{"k": 6}' ;;
  *build_paper.py*) mkdir -p paper/build && echo pdf > paper/build/main.pdf
    if [ -f LAYOUT_DEFECT ]; then exit 1; fi ;;   # latexmk wrote a PDF, but the layout check refused it
esac
"""

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for rel, text in {"Makefile": (REPO / "Makefile").read_text(), "pyproject.toml": "", "scripts/setup.sh": "",
                      "scripts/build_paper.py": "", "mdtheory/x.py": "", "experiments/x.py": "",
                      "paper/main.tex": "", "results/parity/quick/r/metrics.jsonl": '{"step": 1}\n'}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    fake = root / "fakepy"
    fake.write_text(FAKE_PY)
    fake.chmod(0o755)
    old = 1_000_000_000  # sources older than the set-up stamp: set-up is done
    for path in root.rglob("*"):
        os.utime(path, (old, old))
    (root / ".cache" / "stamps").mkdir(parents=True)
    (root / ".cache" / "stamps" / "setup").write_text("")
    return root


def _make(root: Path, expect_ok: bool = True) -> list[str]:
    log = root / "steps.log"
    log.write_text("")
    run = subprocess.run(["make", "all", f"PY={root / 'fakepy'}"], cwd=root, capture_output=True, text=True,
                         env={**os.environ, "STEP_LOG": str(log)}, timeout=120)
    assert (run.returncode == 0) == expect_ok, run.stdout + run.stderr
    return [line.split()[1] if line.startswith("-m ") else line.split()[0].rsplit("/", 1)[-1]
            for line in log.read_text().splitlines()]


def test_second_make_all_redoes_only_the_runner_calls(tmp_path):
    root = _project(tmp_path)
    first = _make(root)
    assert {"mdtheory.derive", "experiments.parity.run", "mdtheory.plots", "build_paper.py"} <= set(first)
    second = _make(root)
    # the runners are always called (they skip finished runs); nothing else changed, so nothing else runs
    assert "experiments.parity.run" in second
    assert not {"mdtheory.derive", "mdtheory.plots", "mdtheory.plots.paper_tables", "build_paper.py"} & set(second)


def test_deleted_runs_are_retrained_and_redrawn(tmp_path):
    root = _project(tmp_path)
    _make(root)
    shutil.rmtree(root / "results" / "parity" / "quick")
    again = _make(root)
    assert "experiments.parity.run" in again
    assert (root / "results" / "parity" / "quick" / "r" / "metrics.jsonl").exists()
    assert {"mdtheory.plots", "build_paper.py"} <= set(again)  # new results: figures and paper redone


def test_a_changed_result_file_redraws_figures(tmp_path):
    root = _project(tmp_path)
    _make(root)
    (root / "results" / "parity" / "summary.csv").write_text("a\n1\n")
    assert {"mdtheory.plots", "build_paper.py"} <= set(_make(root))


def test_a_refused_paper_is_rebuilt_next_time(tmp_path):
    root = _project(tmp_path)
    (root / "LAYOUT_DEFECT").write_text("")
    _make(root, expect_ok=False)
    assert not (root / "paper" / "build" / "main.pdf").exists()  # not left to look up to date
    (root / "LAYOUT_DEFECT").unlink()
    assert "build_paper.py" in _make(root)
