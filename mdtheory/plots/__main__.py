"""Redraw every figure from result files (no training).

    python -m mdtheory.plots --results results --out figures [--only NAME ...]

A figure whose result files are missing is skipped with a one-line message on
stdout. Bad arguments (an --out that is a file or cannot be created) and
corrupt result files (figure modules raise UserError) stop with one line on
stderr and exit status 2; a figure that fails for any other reason (a bug) is
reported with its traceback, the others are still drawn, and the status is 1.

The theory figures are this package's (mdtheory.plots.theory); each study's
come from its experiments/<study>/figures.py (mdtheory.plots.registry): a
module-level ``FIGURES = {name: draw}``, where ``draw(results)`` returns a
matplotlib Figure drawn from the study's aggregator outputs under the
results root or raises MissingData, and optionally ``devices(results)``, the
devices those results were trained on (a figure of results trained on a GPU
names the card).
"""
from __future__ import annotations

import sys
import traceback
from pathlib import Path

from mdtheory.cli import OneLineParser, check_output_dir, run_cli
from mdtheory.errors import UserError

from . import registry, theory
from .style import MissingData, apply_style, save_figure

STUDY_FIGURES = registry.study_modules("figures")
ALL_FIGURES = {**theory.FIGURES, **{name: draw for study in STUDY_FIGURES for name, draw in study.FIGURES.items()}}


def trained_on(results: Path) -> dict[str, list[str]]:
    """{figure: the cards its study's results were trained on} (CPU results: no entry)."""
    cards = {}
    for study in STUDY_FIGURES:
        devices = [d for d in getattr(study, "devices", lambda results: [])(results) if d != "cpu"]
        cards.update({name: devices for name in study.FIGURES if devices})
    return cards


def draw_all(results: Path, out: Path, only=None, verbose: bool = True) -> dict[str, str]:
    """Draw each figure; returns {name: 'written' | 'skipped: why' | 'failed: why'}."""
    apply_style()
    outcome = {}
    # results trained on a GPU name the card on their figures; CPU results draw as before
    cards = trained_on(Path(results))
    for name, draw in ALL_FIGURES.items():
        if only and name not in only:
            continue
        try:
            fig = draw(Path(results))
        except MissingData as why:
            outcome[name] = f"skipped: {why}"
        except UserError:
            raise  # bad input files: one line and exit 2, not a traceback
        except Exception as exc:  # noqa: BLE001 - one bad figure must not stop the rest
            traceback.print_exc(file=sys.stderr)
            outcome[name] = f"failed: {type(exc).__name__}: {exc}"
        else:
            if cards.get(name):
                # just above the figure: the tight bounding box grows to hold it, so it covers nothing
                fig.text(1.0, 1.0, "trained on " + ", ".join(cards[name]), ha="right", va="bottom",
                         fontsize=5, color="0.4")
            save_figure(fig, out, name)
            outcome[name] = "written"
        if verbose:
            print(f"{name:28s} {outcome[name]}")
    return outcome


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m mdtheory.plots", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="results folder")
    parser.add_argument("--out", default="figures", help="output folder (created if missing)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="draw only these figures")
    args = parser.parse_args(argv)
    results = Path(args.results)
    if not results.is_dir():
        raise UserError(f"results folder {results} " + ("is not a folder" if results.exists() else "does not exist"))
    if args.only:
        unknown = sorted(set(args.only) - set(ALL_FIGURES))
        if unknown:
            raise UserError(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(ALL_FIGURES)}")
    check_output_dir(args.out)  # before drawing: a bad --out is one line, not a traceback per figure
    outcome = draw_all(results, Path(args.out), args.only)
    failed = [n for n, o in outcome.items() if o.startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
