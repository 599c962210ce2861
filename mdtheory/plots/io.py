"""Reading the files that figures and tables are drawn from.

Figures and tables read only what the aggregators write (CSV and JSON under
a results root), never run folders. The readers here turn each way such a
file can be unusable into one of the two outcomes the entry points know:
:class:`MissingData` (absent, empty, or written before it had a needed
column: the figure or table is skipped, naming the command that writes it)
and :class:`UserError` (there but corrupt: one line, exit status 2).
Nothing here knows a study or its folders: callers pass full paths.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mdtheory.errors import UserError

from .style import MissingData


def read_csv(path, produced_by: str, needed=(), **kwargs) -> pd.DataFrame:
    """The CSV at ``path`` (``kwargs`` go to pandas); ``produced_by`` is the
    command that writes it, ``needed`` the columns the caller uses."""
    path = Path(path)
    if not path.exists():
        raise MissingData(f"{path} not found (run {produced_by})")
    if not path.is_file():
        raise UserError(f"{path} is not a file")
    try:
        table = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise MissingData(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is corrupt ({type(exc).__name__})") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    missing = sorted(set(needed) - set(table.columns))
    if missing:
        raise MissingData(f"{path} lacks the column(s) {', '.join(missing)} (rerun {produced_by})")
    return table


def read_json(path, produced_by: str) -> dict:
    """The JSON object at ``path``."""
    path = Path(path)
    if not path.exists():
        raise MissingData(f"{path} not found (run {produced_by})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        raise UserError(f"{path} is corrupt ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is corrupt (not a JSON object)")
    return data


def weights_by_order(weights) -> dict[int, float]:
    """Dependency weights as {order: weight}; a list starts at order 2."""
    if isinstance(weights, dict):
        return {int(k): float(v) for k, v in weights.items()}
    return {i + 2: float(w) for i, w in enumerate(weights)}


def read_predicted_t(path) -> dict | None:
    """A corpus's predicted_t.json (``python -m mdtheory.derive ngram``) with
    ``weights`` ({order: weight}) and ``t_star`` (float or None) checked;
    None when the file is absent (the corpus estimate was not derived)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        if data.get("weights"):
            data["weights"] = weights_by_order(data["weights"])
        if data.get("t_star") is not None:
            data["t_star"] = float(data["t_star"])
    except (OSError, ValueError, TypeError, AttributeError) as exc:  # ValueError: bad JSON or UTF-8
        raise UserError(f"{path} is corrupt: {' '.join(str(exc).split()) or type(exc).__name__}"
                        " (rewrite it with python -m mdtheory.derive ngram)") from None
    return data


def csv_devices(*paths) -> list[str]:
    """The devices in the ``device`` columns of the CSVs at ``paths`` ("cpu"
    or a card's name; a cell may name several, "; "-separated), each once.
    A missing or corrupt file adds none: the figure or table that needs it says so."""
    cells = []
    for path in paths:
        try:
            cells += list(pd.read_csv(path).get("device", pd.Series(dtype=object)).dropna())
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            continue
    return list(dict.fromkeys(d for cell in cells for d in str(cell).split("; ") if d))


def card_name(device) -> str:
    """A device cell in a few letters: "CPU", "H100" (from "NVIDIA H100 80GB HBM3");
    a cell naming several devices ("cpu; ...") gives them joined by "+"."""
    names = []
    for name in str(device).split("; "):
        words = name.replace("NVIDIA ", "").split()
        if words:
            names.append("CPU" if name == "cpu" else words[0])
    return "+".join(dict.fromkeys(names)) or "?"


def device_labels(table: pd.DataFrame, key: str) -> dict[str, str]:
    """{value of ``key``: its label}: the value, with the devices its rows ran
    on ("x4: H100") when the values did not all run on one."""
    cards = table.assign(_card=[card_name(d) for d in table["device"].fillna("")]) \
        .groupby(key, sort=False)["_card"].agg(lambda c: "+".join(dict.fromkeys(c)))
    named = cards.nunique() > 1
    return {value: f"{value}: {card}" if named else str(value) for value, card in cards.items()}
