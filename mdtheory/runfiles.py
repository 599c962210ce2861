"""Reading the files a training run writes (one reader for every consumer:
the engine on resume, the experiment runners and summarizers, the plots)."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError


def read_metrics(path: str | Path) -> list[dict]:
    """Records of a ``metrics.jsonl`` (or of the run folder holding one).

    A missing file gives []. Only the last line may be broken (a run killed
    while writing it): it is dropped. A broken line anywhere else, or a file
    that is not UTF-8, is a UserError naming the file and line, so no later
    record is ever silently lost.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (byte {exc.start}); not a metrics file of this "
                        f"trainer") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    records = []
    for pos, (lineno, line) in enumerate(numbered):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif pos == len(numbered) - 1 and record is None:
            break  # torn last line of a killed run
        else:
            raise UserError(f"{path} line {lineno} is not a metrics record; fix or remove it "
                            f"(only a torn last line is dropped)")
    return records
