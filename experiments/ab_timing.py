"""Interleaved A/B timing of the training engine (bench_trainer, gpu_check).

A and B alternate in ABBA order and the result is the median of the paired ratios rate_B / rate_A, so a
drifting machine moves both sides of a pair alike. A variant the engine ran like the other side (observed,
not assumed) gets no ratio rather than a false 1.0x.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass, fields
from unittest import mock

import torch

from mdtheory.errors import UserError
from mdtheory.models.mlp import ReducedMLP
from mdtheory.train import TrainConfig, train


def interleaved_ab(measure_a, measure_b, *, pairs: int = 5, label_a: str = "A", label_b: str = "B",
                   deadline: float = float("inf"), clock=time.monotonic) -> dict:
    """Up to ``pairs`` ABBA pairs of two rate measures (higher is faster) until ``deadline`` (a ``clock()``
    value), after one untimed call of each (compilation, allocator warm-up) whose wall time is kept."""
    first, rates = {}, []
    for label, measure in ((label_a, measure_a), (label_b, measure_b)):
        if clock() < deadline:
            t0 = clock()
            measure()
            first[label] = round(clock() - t0, 3)
    while len(rates) < pairs and clock() < deadline:  # every second pair measures B first
        rates.append((measure_a(), measure_b()) if len(rates) % 2 == 0 else (measure_b(), measure_a())[::-1])
    ratios = [b / a for a, b in rates]
    out = {"a": label_a, "b": label_b, "pairs": len(ratios), "requested_pairs": pairs,
           "complete": len(ratios) >= pairs, "first_call_s": first, "ratios_b_over_a": ratios}
    if rates:
        rates_a, rates_b = zip(*rates)
        out.update(median_ratio=statistics.median(ratios), min_ratio=min(ratios), max_ratio=max(ratios),
                   median_rate_a=statistics.median(rates_a), median_rate_b=statistics.median(rates_b))
    return out


@dataclass(frozen=True)
class Variant:
    compile: bool = False
    precision: str = "engine"        # engine (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16
    fused_adamw: bool | None = None  # None: the engine's own choice
    first_layer: str | None = None   # the reduced MLP's first layer (models.mlp.ReducedMLP)

    @property
    def label(self) -> str:
        changed = [f"{f.name}={getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name) != f.default]
        return ", ".join(changed) or "engine defaults"


# what the engine was seen doing for each Variant field (``observed`` in compare's rows)
OBSERVED = {"compile": "compiled", "precision": "autocast", "fused_adamw": "fused", "first_layer": "first_layer"}


def engine_rate(task, variant: Variant, *, batch_size: int, steps: int, device: str, seen: dict) -> float:
    """Tokens/s of ``steps`` engine steps after as many warm-up steps, the variant applied to ``task``;
    what the engine really did (OBSERVED: the model it trained, autocast in its loss, AdamW) goes to ``seen``."""
    loss, adamw = task.loss, torch.optim.AdamW
    device_type = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"

    def observed_loss(model, batch):
        # nested in the engine's own autocast: fp32 turns bf16 off on CUDA, bf16 turns it on on CPU
        with (contextlib.nullcontext() if variant.precision == "engine" else
              torch.autocast(device_type, dtype=torch.bfloat16, enabled=variant.precision == "bf16")):
            if torch.is_grad_enabled():  # not the engine's step-0 record (no_grad, uncompiled)
                seen["compiled"].add(hasattr(model, "_orig_mod"))
                seen["autocast"].add(torch.is_autocast_enabled(device_type))
                seen["first_layer"].add(getattr(model, "first_layer", "none"))  # a compiled model passes it on
            return loss(model, batch)

    def forced_adamw(*args, **kwargs):  # the engine has no switch for it
        seen["fused"].add(variant.fused_adamw)
        return adamw(*args, **{**kwargs, "fused": variant.fused_adamw})

    cfg = TrainConfig(steps=2 * steps, eval_every=steps, ckpt_every=10 ** 9, batch_size=batch_size,
                      device=device, compile=variant.compile, progress=False, lr=1e-4)
    with mock.patch.object(task, "loss", observed_loss), \
            mock.patch.object(torch.optim, "AdamW", adamw if variant.fused_adamw is None else forced_adamw), \
            mock.patch.object(ReducedMLP, "first_layer", variant.first_layer or ReducedMLP.first_layer):  # class-wide
        rate = train(task, cfg).final.get("tokens_per_s")
    if not rate:
        raise UserError(f"the engine reported no tokens/s for {getattr(task, 'name', 'task')}")
    return float(rate)


def compare(task, a: Variant, b: Variant, *, batch_size: int, steps: int, device: str, pairs: int = 5,
            deadline: float = float("inf"), flops_per_token: float | None = None,
            peak_flops: float | None = None) -> dict:
    """One interleaved comparison; given FLOPs per token and a measured peak, also achieved FLOP/s and
    MFU. A variant the engine refuses is reported (``error``), not raised: a finding, not a crash."""
    seen = {side: {what: set() for what in OBSERVED.values()} for side in "ab"}
    out = {"a": a.label, "b": b.label, "batch_size": batch_size, "steps_timed": steps}
    try:
        out.update(interleaved_ab(
            lambda: engine_rate(task, a, batch_size=batch_size, steps=steps, device=device, seen=seen["a"]),
            lambda: engine_rate(task, b, batch_size=batch_size, steps=steps, device=device, seen=seen["b"]),
            pairs=pairs, label_a=a.label, label_b=b.label, deadline=deadline))
    except Exception as exc:
        return {**out, "error": f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"}
    observed = out["observed"] = {side: {k: sorted(v) for k, v in s.items()} for side, s in seen.items()}
    # a field that differs between A and B counts only if each side was seen running one value, not the same
    not_applied = [f for f, what in OBSERVED.items() if getattr(a, f) != getattr(b, f) and not (
        len(observed["a"][what]) == len(observed["b"][what]) == 1 and observed["a"][what] != observed["b"][what])]
    if out["pairs"] and not_applied:
        out = {k: v for k, v in out.items() if not k.endswith("_ratio")}  # median, min and max
        out.update(not_applied=not_applied,
                   note=f"the engine ran both sides alike in {', '.join(not_applied)}: no ratio reported")
    if flops_per_token and "median_rate_a" in out:
        achieved = {side: flops_per_token * out[f"median_rate_{side}"] for side in "ab"}
        out.update(flops_per_token=flops_per_token, **{f"achieved_flops_{k}": v for k, v in achieved.items()},
                   **({f"mfu_{k}": v / peak_flops for k, v in achieved.items()} if peak_flops else {}))
    return out


# name -> (title, A, B); the mlp_* ones apply only to the reduced MLP
COMPARISONS = {
    "compile": ("eager vs compiled", Variant(), Variant(compile=True)),
    "fused": ("unfused vs fused AdamW", Variant(fused_adamw=False), Variant(fused_adamw=True)),
    "bf16": ("fp32 vs bf16", Variant(precision="fp32"), Variant(precision="bf16")),
    "mlp_gather": ("gathered rows vs one-hot product", Variant(first_layer="gather"), Variant(first_layer="onehot")),
    "mlp_bag": ("embedding_bag vs one-hot product", Variant(first_layer="embedding_bag"),
                Variant(first_layer="onehot")),
}
MLP_COMPARISONS = ("mlp_gather", "mlp_bag")
