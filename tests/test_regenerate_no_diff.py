"""Regenerating the paper's tables from unchanged results changes no file
(not even its modification time), so a second `make all` leaves git status
clean and make sees nothing new."""
from __future__ import annotations

import os

from mdtheory.plots import paper_tables
from test_paper_tables import results  # noqa: F401 - the synthetic results fixture
from test_plots import results as plot_results  # noqa: F401 - the fixture that one builds on

OLD = 1_000_000_000


def test_paper_tables_twice_is_a_no_op(results, tmp_path):  # noqa: F811
    out = tmp_path / "generated"
    paper_tables.write_all(results, out)
    written = sorted(out.iterdir())
    assert {p.name for p in written} >= {"results.tex", "comparison.tex", "paper_tables.provenance.json"}
    snapshot = {p.name: p.read_bytes() for p in written}
    for p in written:
        os.utime(p, (OLD, OLD))
    paper_tables.write_all(results, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == snapshot
    assert all(p.stat().st_mtime == OLD for p in out.iterdir())


def test_comparison_table_breaks_across_pages(results, tmp_path):  # noqa: F811
    paper_tables.write_all(results, tmp_path / "generated")
    text = (tmp_path / "generated" / "comparison.tex").read_text()
    # a tabular cannot break: at its length it ran off the page
    assert "\\begin{longtable}" in text and "\\endhead" in text and "\\begin{tabular}" not in text
