"""ckpt.pt: the model, optimizer, per-rank RNG and accumulator state of a run.

Written atomically (a temporary sibling, fsync, rename), read with
``weights_only=True`` so a crafted file runs nothing; anything unreadable or
unwritable is one line (UserError / OutputError) naming the file. Where the
file lives and when a run may resume from it: ``mdtheory.runfiles``.
"""
from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch

from ..cli import temp_prefix
from ..errors import OutputError, UserError

CKPT_KEYS = ("step", "model", "optimizer", "rng", "accumulator")


def rng_state() -> dict:
    """This process's RNG states as tensors and plain types (weights_only-safe)."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {"python": [py_version, list(py_state), py_gauss],
             "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos),
                       int(np_has_gauss), float(np_gauss)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np.asarray(np_keys, dtype=np.int64).astype(np.uint32),
                         np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states(rt) -> list[dict]:
    """Every rank's RNG state, in rank order (complete on rank 0); ``rt`` is
    the engine's Runtime."""
    state = rng_state()
    if not rt.distributed:
        return [state]
    states = [None] * rt.world_size
    torch.distributed.all_gather_object(states, state)
    return states


def _write_error_reason(exc: BaseException) -> str | None:
    """What a failed write ran into (e.g. "No space left on device"), from an
    OSError or torch's RuntimeError around one; None for anything else."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return seen.strerror or str(seen)
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if isinstance(exc, RuntimeError) and ("inline_container" in text or "write" in text.lower()):
        return text.splitlines()[0] if text else type(exc).__name__
    return None


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save to a temporary sibling (``.ckpt.pt.<pid>.tmp``), fsync,
    rename: all or nothing. A failed write (disk full, ...) removes the
    temporary file, keeps the last good checkpoint and raises an
    OutputError naming ``path``."""
    tmp = path.with_name(f"{temp_prefix(path)}tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        reason = _write_error_reason(exc)
        if reason is None:
            raise
        raise OutputError(f"cannot write the checkpoint {path}: {reason}", getattr(exc, "errno", None),
                          reason, str(path)) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: Path) -> dict:
    """Load ckpt.pt; anything unreadable becomes one UserError line.

    ``weights_only=True``: a file that would need to import or call anything
    (a crafted pickle) is refused before any of it runs."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"checkpoint {path} is refused: it holds objects other than tensors and "
                        f"plain data, so it was not written by this trainer") from None
    except Exception as exc:  # truncated zip, wrong file, unreadable, ...
        raise UserError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or any(k not in payload for k in CKPT_KEYS):
        raise UserError(f"checkpoint {path} is corrupt: missing fields")
    rng = payload["rng"]
    payload["rng"] = [rng] if isinstance(rng, dict) else rng  # one state per rank
    if not isinstance(payload["rng"], list) or not all(isinstance(r, dict) for r in payload["rng"]):
        raise UserError(f"checkpoint {path} is corrupt: bad RNG states")
    return payload
