"""The LM aggregator outputs that both the figures and the tables read."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mdtheory.plots.io import read_csv, read_predicted_t
from mdtheory.plots.style import MissingData

LM = Path("lm")  # the LM results under a results root
SUMMARIZE = "python -m experiments.lm.summarize"
BY_WINDOW = "window_sweep_by_window.csv"


def lm_root(results: Path) -> Path:
    return Path(results) / LM


def window_table(results: Path, folder: Path | None = None) -> pd.DataFrame:
    """The masked-diffusion laws of the sweep in ``folder`` (default
    results/lm), as summarize wrote them: mean loss over seeds (``loss``),
    its error bar (``err``: the larger of the standard error across seeds and
    the mean within-run one), seeds, the mean val loss (``val_loss``), the
    midpoint (``mid``) and whether the window was chosen on val."""
    path = Path(folder or lm_root(results)) / BY_WINDOW
    table = read_csv(path, SUMMARIZE, ("objective",))
    table = table[table["objective"] == "md"]
    if table.empty:
        raise MissingData(f"{path} has no masked-diffusion rows")
    return table.rename(columns={"midpoint": "mid", "loss_mean": "loss", "val_loss_mean": "val_loss"}) \
        .sort_values(["t0", "t1"]).reset_index(drop=True)


def predicted_t_star(results: Path, folder: Path | None = None):
    """The corpus-predicted t* of the sweep in ``folder`` (default results/lm); None when not derived."""
    data = read_predicted_t(Path(folder or lm_root(results)) / "predicted_t.json")
    return None if data is None else data.get("t_star")
