"""Provenance recorded beside every result: code version, packages, machine."""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from importlib import metadata
from pathlib import Path

_PACKAGES = ("numpy", "scipy", "sympy", "torch", "pandas", "matplotlib", "tokenizers")
_REPO_ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=_REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(device: str | None = None) -> dict:
    """A JSON-ready record of where and with what a result was produced."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    record = {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if device is not None:
        record["device"] = device
        if device.startswith("cuda"):
            record["accelerator"] = accelerator_name(device)
    return record


def accelerator_name(device: str) -> str | None:
    """The card behind a CUDA device string ("cuda", "cuda:1"), as the driver names it."""
    import torch  # only here: most provenance records never touch torch

    try:
        return torch.cuda.get_device_name(torch.device(device))
    except (RuntimeError, AssertionError, ValueError):  # no CUDA or a bad index: name unknown
        return None


def device_label(record: dict) -> str:
    """What a result ran on, from its provenance: "cpu", the card's name, or
    the bare device string ("cuda") when the record predates card names;
    "" when the record does not say."""
    device = str(record.get("device") or "")
    if device.startswith("cuda"):
        return record.get("accelerator") or device
    return "cpu" if device == "cpu" else device


def write_provenance_record(path, command: list[str], output: str) -> bool:
    """Record the command and where it ran beside the output it printed.

    The record names the output's sha256 and is rewritten only when the
    command or the output changed: regenerating the same numbers leaves it
    (and ``git status``) as it was.
    """
    import hashlib

    from .cli import atomic_write_json

    record = {"command": list(command),
              "output_sha256": hashlib.sha256(output.encode("utf-8")).hexdigest(),
              **provenance()}
    return atomic_write_json(path, record, keep_provenance_if_unchanged=True)
