"""Build the paper quietly and fail on layout defects.

    python scripts/build_paper.py [PAPER_DIR]      (default: paper)

Runs latexmk in PAPER_DIR (output in PAPER_DIR/build). The latexmk/pdflatex
transcript is printed only when the build fails. A build that succeeds is
still refused (exit 1) when its log shows an overfull box wider or taller
than 1 pt: an overfull hbox is text or a table running into the margin, an
overfull vbox is a page (typically a table) running off the bottom. Prints
one line on success.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

MAX_OVERFULL_PT = 1.0
LATEXMK = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-outdir=build", "main.tex"]

_OVERFULL = re.compile(r"^Overfull \\([hv])box \(([0-9.]+)pt too (?:wide|high)\)(.*)$", re.MULTILINE)
_PAGE = re.compile(r"\[(\d+)")
_FLOAT_TOO_LARGE = re.compile(r"LaTeX Warning: Float too large for page by ([0-9.]+)pt on input line (\d+)")


def layout_problems(log: str, max_pt: float = MAX_OVERFULL_PT) -> list[str]:
    """One line per overfull box beyond ``max_pt`` in a pdflatex log, naming
    its size, where it is (source lines, or the page being shipped out) and
    the current input file."""
    problems = []
    for match in _OVERFULL.finditer(log):
        kind, size, where = match.group(1), float(match.group(2)), match.group(3).strip()
        if size <= max_pt:
            continue
        before = log[:match.start()]
        # pdflatex writes "[N" when it ships out page N: the box is on page N+1
        pages = _PAGE.findall(before)
        page = int(pages[-1]) + 1 if pages else 1
        files = re.findall(r"\(\.?/?([\w./-]+\.tex)", before)
        source = files[-1] if files else "?"
        what = ("page content too tall: a table or figure runs off the page" if kind == "v"
                else "line too wide: text or a table runs into the margin")
        problems.append(f"overfull \\{kind}box {size:.1f}pt on page {page} (last file opened: "
                        f"{source}; {where or 'while shipping out the page'}): {what}")
    for match in _FLOAT_TOO_LARGE.finditer(log):
        size = float(match.group(1))
        if size > max_pt:
            problems.append(f"float too large for the page by {size:.1f}pt on input line {match.group(2)}: "
                            "a table or figure runs off the page")
    return problems


def build(paper_dir: Path) -> int:
    paper_dir = Path(paper_dir)
    if not (paper_dir / "main.tex").is_file():
        print(f"error: {paper_dir}/main.tex not found", file=sys.stderr)
        return 2
    try:
        run = subprocess.run(LATEXMK, cwd=paper_dir, capture_output=True, text=True,
                             errors="replace", stdin=subprocess.DEVNULL, timeout=600)
    except FileNotFoundError:
        print("error: latexmk is not installed (bash scripts/setup.sh installs it)", file=sys.stderr)
        return 2
    if run.returncode != 0:
        sys.stderr.write(run.stdout + run.stderr)
        print(f"error: latexmk failed with status {run.returncode} (its transcript is above; "
              f"full log: {paper_dir}/build/main.log)", file=sys.stderr)
        return 1
    log = (paper_dir / "build" / "main.log").read_text(encoding="utf-8", errors="replace")
    problems = layout_problems(log)
    if problems:
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        print(f"error: the paper has {len(problems)} layout defect(s) above "
              f"(full log: {paper_dir}/build/main.log)", file=sys.stderr)
        return 1
    pages = re.search(r"Output written on \S+ \((\d+) pages?", log)
    print(f"wrote {paper_dir}/build/main.pdf" + (f" ({pages.group(1)} pages)" if pages else ""))
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        sys.exit(2)
    sys.exit(build(Path(args[0] if args else "paper")))
