"""The parity aggregator outputs that both the figures and the tables read."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mdtheory.plots.io import read_csv
from mdtheory.plots.style import MissingData

PARITY = Path("parity")  # the parity results under a results root
SUMMARIZE = "python -m experiments.parity.summarize"


def main_conditions(results: Path) -> tuple[pd.DataFrame, tuple]:
    """The conditions of the setting that summarize marked as the main one, and its (n, k, N)."""
    cond = read_csv(Path(results) / PARITY / "summary_by_condition.csv", SUMMARIZE, ())
    main = cond[cond["main_setting"]] if "main_setting" in cond else cond.iloc[:0]
    if main.empty:
        raise MissingData("summary_by_condition.csv marks no main setting (no transformer runs)")
    return main.reset_index(drop=True), tuple(int(main.iloc[0][key]) for key in ("n", "k", "train_size"))
