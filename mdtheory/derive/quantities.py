"""The numbers ``python -m mdtheory.derive`` reports, one record per k.

The JSON keys are a public contract (scripts and the paper read them): do not rename them.
"""
from __future__ import annotations

import math

from ..errors import UserError
from ..theory import numeric as num


def derive_record(k: int, window: tuple[float, float] | None = None,
                  n: int | None = None, delta: float = 0.05) -> dict:
    """Keys: k, P_S_full_range, signal_optimal_t, P_S_at_signal_optimal_t,
    signal_optimal_t1_given_t0_0, sample_complexity_optimal_t1; with a window
    also P_S_window, P_N_window; with n also N_bound (for the window, or the
    full range U[0,1] when no window is given)."""
    k = num.check_k(k)
    record = {
        "k": k,
        "P_S_full_range": float(num.p_signal(k, 0.0, 1.0)),
        "signal_optimal_t": float(num.signal_optimal_t(k)),
        "P_S_at_signal_optimal_t": float(num.p_signal_at(num.signal_optimal_t(k), k)),
        "signal_optimal_t1_given_t0_0": float(num.best_t1_given_t0_zero(k)),
        "sample_complexity_optimal_t1": float(num.sample_complexity_optimal_t1(k)),
    }
    if window is not None:
        t0, t1 = num.check_window(*window)
        record["P_S_window"] = float(num.p_signal(k, t0, t1))
        record["P_N_window"] = float(num.p_noise(k, t0, t1))
    if n is not None:
        t0, t1 = window if window is not None else (0.0, 1.0)
        bound = float(num.sample_complexity_bound(n, k, delta, t0, t1))
        if not math.isfinite(bound):
            raise UserError(f"the bound is infinite for the window [{t0}, {t1}] (E[t] E[(1-t)^k]^2 = 0)")
        record["N_bound"] = bound
    return record
