"""Interleaved A/B timing of the training engine (used by bench_trainer and gpu_check).

A speed ratio measured as "all runs of A, then all runs of B" mixes the
difference between A and B with whatever else changed in between (other
processes on a shared machine, clocks, caches). Here A and B alternate in
pairs (A B, B A, A B, ...), each pair gives one ratio rate_B / rate_A, and
the result is the median of those ratios (>= 5 pairs by default) with their
range. One untimed call of each variant comes first, so compilation and
allocator warm-up stay out of the pairs; its wall time is kept as the cold
cost.

``engine_rate`` measures one variant through the public training API
(``mdtheory.train.train``): tokens/s of the second half of a short run (the
engine reads its clock after a device synchronisation and outside
evaluations). A variant is a ``Variant``: torch.compile on or off, the
autocast dtype of the training loss, and fused or unfused AdamW. The engine
has no switch for the last two, so they are applied from outside the engine
and verified: the task wrapper records whether the model it was given was
compiled and whether autocast was on, and the AdamW override records the
optimizers it built. A comparison whose two sides did not actually differ
is reported as not measured, never as a ratio of 1.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from mdtheory.errors import UserError
from mdtheory.train import TrainConfig, train

PRECISIONS = ("engine", "fp32", "bf16")


@dataclass
class ABResult:
    label_a: str
    label_b: str
    requested_pairs: int
    rates_a: list[float] = field(default_factory=list)
    rates_b: list[float] = field(default_factory=list)
    first_call_s: dict = field(default_factory=dict)   # cold cost of each variant's untimed call

    @property
    def ratios(self) -> list[float]:
        """rate_B / rate_A of each pair (> 1: B is faster)."""
        return [b / a for a, b in zip(self.rates_a, self.rates_b)]

    def summary(self) -> dict:
        ratios = self.ratios
        out = {"a": self.label_a, "b": self.label_b, "pairs": len(ratios),
               "requested_pairs": self.requested_pairs, "complete": len(ratios) >= self.requested_pairs,
               "first_call_s": self.first_call_s, "ratios_b_over_a": ratios}
        if ratios:
            out.update(median_ratio=statistics.median(ratios), min_ratio=min(ratios),
                       max_ratio=max(ratios), median_rate_a=statistics.median(self.rates_a),
                       median_rate_b=statistics.median(self.rates_b))
        return out


def interleaved_ab(measure_a: Callable[[], float], measure_b: Callable[[], float], *,
                   pairs: int = 5, label_a: str = "A", label_b: str = "B",
                   deadline: float | None = None, warmup: bool = True,
                   clock: Callable[[], float] = time.monotonic) -> ABResult:
    """Alternate A and B (ABBA order) for ``pairs`` pairs or until ``deadline``
    (a ``clock()`` value); each measure returns a rate (higher is faster)."""
    if pairs < 1:
        raise UserError(f"pairs must be >= 1, got {pairs}")
    result = ABResult(label_a, label_b, pairs)

    def late() -> bool:
        return deadline is not None and clock() >= deadline

    for label, measure in ((label_a, measure_a), (label_b, measure_b)) if warmup else ():
        if late():
            return result
        t0 = clock()
        measure()
        result.first_call_s[label] = round(clock() - t0, 3)
    for i in range(pairs):
        if late():
            break
        # ABBA: a slow drift adds the same to both sides over two pairs
        if i % 2 == 0:
            a, b = measure_a(), measure_b()
        else:
            b, a = measure_b(), measure_a()
        result.rates_a.append(float(a))
        result.rates_b.append(float(b))
    return result


# --- variants of the engine ---

@dataclass(frozen=True)
class Variant:
    compile: bool = False
    precision: str = "engine"   # engine: as train() does it (bf16 autocast on CUDA, fp32 on CPU)
    fused_adamw: bool | None = None  # None: the engine's own choice
    first_layer: str | None = None   # the reduced MLP's first layer (models.mlp.ReducedMLP.first_layer)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; choose from {PRECISIONS}")

    @property
    def label(self) -> str:
        parts = ["compiled" if self.compile else "eager"]
        if self.precision != "engine":
            parts.append(self.precision)
        if self.fused_adamw is not None:
            parts.append("fused-adamw" if self.fused_adamw else "unfused-adamw")
        if self.first_layer is not None:
            parts = [f"{self.first_layer} first layer"]
        return " ".join(parts)


class ObservedTask:
    """A task as the engine sees it, plus a record of how the engine ran it:
    was the model it trained compiled, was autocast on in the loss. The
    loss runs under the variant's autocast (nested inside the engine's, so
    ``fp32`` turns the engine's bf16 off and ``bf16`` turns it on on CPU)."""

    def __init__(self, task, precision: str, device_type: str, first_layer: str | None = None):
        self._task, self._precision, self._device_type = task, precision, device_type
        self._first_layer = first_layer
        self.compiled: set[bool] = set()
        self.autocast: set[bool] = set()
        self.first_layer: set[str] = set()

    def __getattr__(self, name):  # everything else is the wrapped task's
        return getattr(self._task, name)

    def build_model(self):
        model = self._task.build_model()
        if self._first_layer is not None:
            model.first_layer = self._first_layer
        self.first_layer.add(getattr(model, "first_layer", "none"))
        return model

    def loss(self, model, batch):
        training = torch.is_grad_enabled()  # the engine's step-0 record calls loss under no_grad, uncompiled
        if training:
            self.compiled.add(hasattr(model, "_orig_mod"))  # what torch.compile returns
        with (contextlib.nullcontext() if self._precision == "engine" else
              torch.autocast(self._device_type, dtype=torch.bfloat16, enabled=self._precision == "bf16")):
            if training:
                self.autocast.add(bool(torch.is_autocast_enabled(self._device_type)))
            return self._task.loss(model, batch)


@contextlib.contextmanager
def adamw_fused(flag: bool | None):
    """Make every torch.optim.AdamW built inside the block fused (or not);
    yields the list of flags actually used (empty: nothing was built)."""
    built: list[bool] = []
    if flag is None:
        yield built
        return
    original = torch.optim.AdamW

    class ForcedAdamW(original):
        def __init__(self, *args, **kwargs):
            kwargs["fused"] = flag
            if flag:
                kwargs.pop("foreach", None)
            built.append(flag)
            super().__init__(*args, **kwargs)

    torch.optim.AdamW = ForcedAdamW
    try:
        yield built
    finally:
        torch.optim.AdamW = original


@dataclass
class Observation:
    """What a variant's runs actually did (from ObservedTask / adamw_fused)."""
    compiled: set = field(default_factory=set)
    autocast: set = field(default_factory=set)
    fused: set = field(default_factory=set)
    first_layer: set = field(default_factory=set)

    def as_dict(self) -> dict:
        return {k: sorted(v) for k, v in asdict(self).items()}


def engine_rate(task, variant: Variant, *, batch_size: int, steps: int, device: str,
                observation: Observation | None = None, lr: float = 1e-4) -> float:
    """Tokens/s of ``steps`` engine steps after ``steps`` warm-up steps."""
    device_type = "cuda" if (device == "cuda" or (device == "auto" and torch.cuda.is_available())) else "cpu"
    observed = ObservedTask(task, variant.precision, device_type, variant.first_layer)
    cfg = TrainConfig(steps=2 * steps, eval_every=steps, ckpt_every=10 ** 9, batch_size=batch_size,
                      device=device, compile=variant.compile, progress=False, lr=lr)
    with adamw_fused(variant.fused_adamw) as built:
        result = train(observed, cfg)
    if observation is not None:
        observation.compiled |= observed.compiled
        observation.autocast |= observed.autocast
        observation.fused |= set(built)
        observation.first_layer |= observed.first_layer
    rate = result.final.get("tokens_per_s")
    if not rate:
        raise UserError(f"the engine reported no tokens/s for {getattr(task, 'name', 'task')}")
    return float(rate)


def differs(a: Observation, b: Observation, what: str) -> bool:
    """Did variants A and B really differ in ``what`` (compiled, autocast, fused)?"""
    sa, sb = getattr(a, what), getattr(b, what)
    return len(sa) == 1 and len(sb) == 1 and sa != sb


CHANGED_BY = {"compile": "compiled", "precision": "autocast", "fused_adamw": "fused",
              "first_layer": "first_layer"}


def compare(task, a: Variant, b: Variant, *, batch_size: int, steps: int, device: str,
            pairs: int = 5, deadline: float | None = None, flops_per_token: float | None = None,
            peak_flops: float | None = None) -> dict:
    """Interleaved engine comparison of two variants on one task: the median
    ratio B/A, each side's median tokens/s and, given the model FLOPs per
    token and a measured peak, achieved FLOP/s and MFU. Errors (a variant the
    engine refuses) and variants that turned out identical are reported in
    the result instead of raised."""
    obs_a, obs_b = Observation(), Observation()
    out = {"a": a.label, "b": b.label, "batch_size": batch_size, "steps_timed": steps}
    try:
        ab = interleaved_ab(
            lambda: engine_rate(task, a, batch_size=batch_size, steps=steps, device=device, observation=obs_a),
            lambda: engine_rate(task, b, batch_size=batch_size, steps=steps, device=device, observation=obs_b),
            pairs=pairs, label_a=a.label, label_b=b.label, deadline=deadline)
    except Exception as exc:  # a refused or crashing variant is a finding, not a crash of the check
        first_line = (str(exc).splitlines() or [""])[0]
        return {**out, "error": f"{type(exc).__name__}: {first_line}"}
    out.update(ab.summary())
    out["observed"] = {"a": obs_a.as_dict(), "b": obs_b.as_dict()}
    changed = [f for f in CHANGED_BY if getattr(a, f) != getattr(b, f)]
    not_applied = [f for f in changed if not differs(obs_a, obs_b, CHANGED_BY[f])]
    if ab.ratios and not_applied:
        out["not_applied"] = not_applied
        out["note"] = f"the engine ran both sides alike in {', '.join(not_applied)}: no ratio reported"
        for key in ("median_ratio", "min_ratio", "max_ratio"):
            out.pop(key, None)
    if flops_per_token and "median_rate_a" in out:
        out["flops_per_token"] = flops_per_token
        for side in ("a", "b"):
            achieved = flops_per_token * out[f"median_rate_{side}"]
            out[f"achieved_flops_{side}"] = achieved
            if peak_flops:
                out[f"mfu_{side}"] = achieved / peak_flops
    return out


# the comparisons both benchmarks run: name -> (title, A, B)
COMPARISONS = {
    "compile": ("eager vs compiled", Variant(), Variant(compile=True)),
    "fused": ("unfused vs fused AdamW", Variant(fused_adamw=False), Variant(fused_adamw=True)),
    "bf16": ("fp32 vs bf16", Variant(precision="fp32"), Variant(precision="bf16")),
    # the reduced MLP's first layer: row gather + sum, and embedding_bag, each against z~ @ W
    "mlp_gather": ("gathered rows vs one-hot product", Variant(first_layer="gather"), Variant(first_layer="onehot")),
    "mlp_bag": ("embedding_bag vs one-hot product", Variant(first_layer="embedding_bag"),
                Variant(first_layer="onehot")),
}
# comparisons that apply only to the reduced MLP (and the MLP configurations only to them)
MLP_COMPARISONS = ("mlp_gather", "mlp_bag")


def timing_line(r: dict) -> str:
    """A row of ``compare`` (with its ``config``) in one line."""
    head = f"{r['config']}: {r['a']} -> {r['b']}"
    if "median_ratio" not in r:
        return f"{head}: {r.get('error') or r.get('note') or 'no pair measured'}"
    mfu = f", MFU {r['mfu_a']:.1%} -> {r['mfu_b']:.1%}" if "mfu_a" in r else ""
    return (f"{head}: B/A {r['median_ratio']:.3f}x (range {r['min_ratio']:.2f}-{r['max_ratio']:.2f}, "
            f"{r['pairs']} pairs), tokens/s {r['median_rate_a']:,.0f} -> {r['median_rate_b']:,.0f}{mfu}")


def gemm_rate(device: torch.device, size: int, dtype: torch.dtype, repeats: int = 10) -> float:
    """Median FLOP/s of a size x size x size matmul on random data (2 size^3
    FLOPs), after two warm-up products; the device is synchronised around
    each product."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda _: None)
    times = []
    for i in range(repeats + 2):
        sync(device)
        t0 = time.perf_counter()
        c = a @ b
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
        del c
    return 2 * size ** 3 / statistics.median(times)
