"""Reading the files a training run writes (one reader for every consumer:
the engine on resume, the experiment runners and summarizers, the plots)."""
from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path: str | Path) -> list[dict]:
    """Records of a ``metrics.jsonl`` (or of the run folder holding one).

    A missing file gives []. A line that is not JSON can only be the torn last
    line of a killed run: it and anything after it are dropped, as the
    engine's resume does.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records
