"""Running averages of the per-step values between two metrics records."""
from __future__ import annotations

import torch


def _sum_over_ranks(rt, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the ranks of ``rt`` (the engine's Runtime)."""
    if rt.distributed:
        torch.distributed.all_reduce(tensor)
    return tensor


class Accumulator:
    """Sums and counts of per-step values between two records (NaN skipped).
    Kept on the training device so steps do not sync (host-side values such as
    the token rate are moved there too, or the pack in ``averages`` would mix
    devices); saved in checkpoints so a resumed run reports the same averages."""

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}

    def add(self, values: dict):
        for key, value in values.items():
            v = torch.as_tensor(value).detach().to(self.device, torch.double).reshape(())
            ok = torch.isfinite(v)
            if key not in self.sums:
                self.sums[key] = torch.zeros((), dtype=torch.double, device=self.device)
                self.counts[key] = torch.zeros((), dtype=torch.double, device=self.device)
            self.sums[key] += torch.where(ok, v, torch.zeros_like(v))
            self.counts[key] += ok.double()

    def averages(self, rt) -> dict[str, float]:
        if not self.sums:
            return {}
        keys = sorted(self.sums)
        packed = torch.stack([self.sums[k] for k in keys] + [self.counts[k] for k in keys])
        packed = _sum_over_ranks(rt, packed.to(rt.device)).cpu()
        n = len(keys)
        return {k: (float(packed[i] / packed[n + i]) if packed[n + i] > 0 else float("nan"))
                for i, k in enumerate(keys)}

    def state_dict(self, rt=None) -> dict:
        """Sums and counts, totalled over the ranks when distributed (every
        rank must call it then); rank 0 alone reloads them on resume."""
        sums, counts = dict(self.sums), dict(self.counts)
        if rt is not None and rt.distributed and sums:
            keys = sorted(sums)
            packed = torch.stack([sums[k] for k in keys] + [counts[k] for k in keys])
            packed = _sum_over_ranks(rt, packed.to(rt.device))
            sums = {k: packed[i] for i, k in enumerate(keys)}
            counts = {k: packed[len(keys) + i] for i, k in enumerate(keys)}
        return {"sums": {k: v.cpu() for k, v in sums.items()},
                "counts": {k: v.cpu() for k, v in counts.items()}}

    def load_state_dict(self, state: dict):
        self.sums = {k: v.to(self.device) for k, v in state["sums"].items()}
        self.counts = {k: v.to(self.device) for k, v in state["counts"].items()}

    def reset(self):
        self.sums, self.counts = {}, {}
