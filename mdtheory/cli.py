"""Shared command-line plumbing: one-line errors and exit status 2.

Every ``python -m mdtheory.*`` entry point builds its parser with
:class:`OneLineParser` and wraps its body in :func:`run_cli`, so bad input
never prints a traceback or a multi-line usage block, and never leaves
half-written output behind (writers use :func:`atomic_write_text`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from .errors import UserError

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse parser whose errors are a single stderr line, exit 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(EXIT_USAGE)


def fail(message: str) -> NoReturn:
    """Print one line (newlines folded) to stderr and exit with status 2."""
    one_line = " ".join(str(message).split())
    sys.stderr.write(f"error: {one_line}\n")
    sys.exit(EXIT_USAGE)


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv=None) -> int:
    """Run ``main(argv)``; map UserError (and KeyboardInterrupt) to exits."""
    try:
        code = main(argv)
    except UserError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return int(code or 0)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file via a temporary sibling and rename, so readers never see
    a half-written file even if the process is killed mid-write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
