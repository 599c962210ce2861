"""The training objectives: how clean sequences become model input and a loss.

md  masked diffusion: draw t per sequence from the task's mask-rate sampler,
    mask each token with probability t (``mdtheory.masking.corrupt``) and take
    the cross-entropy of the original tokens at the masked positions, weighted
    by the sampler's loss weight (1/t for the MDLM ELBO). Normalisation as in
    LLaDA/SMDM: ``tokens`` divides the weighted sum by B * L, an unbiased
    estimate of the per-token ELBO term; ``masked`` by the masked count.
os  output supervision: every bit visible, the label masked, cross-entropy
    of the label alone.
ar  autoregressive: a causal model predicts the sequence shifted by one (the
    task's ``next_token_pair``: k-parity puts a BOS in front, a language
    model reads one token more); mean next-token cross-entropy.

The task owns data, model sizes and evaluation; an objective reads from it
only ``mask_id``, ``sampler``, ``cfg.normalization`` and ``next_token_pair``,
and hands its per-batch pieces to the task's optional diagnostic hooks
(``masked_diagnostics``, ``next_token_diagnostics``). A new objective is a
subclass of ``Objective`` (in its own file if you like) plus one
``register_objective`` line; tasks and CLI choices pick it up by name.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..masking import MaskedLoss, corrupt, md_loss


class Objective:
    name = ""
    label = ""                    # what tables call it
    short_label = ""              # what figure legends call it
    attention = "bidirectional"   # what the backbone may attend to
    uses_sampler = False          # draws a mask rate per sequence from the task's sampler
    needs_label = False           # trains on the label position alone (k-parity)
    context_tokens = 0            # tokens read before the first prediction (lm blocks grow by this)

    def make_batch(self, tokens: torch.Tensor, task, generator: torch.Generator) -> dict:
        """Training batch (on the CPU) from clean sequences; may draw from ``generator``."""
        return {"tokens": tokens}

    def loss(self, model, batch: dict, task) -> tuple[torch.Tensor, dict]:
        """Scalar loss and the task's diagnostics of the batch (0-dim tensors)."""
        raise NotImplementedError

    def label_input(self, tokens: torch.Tensor, task) -> torch.Tensor:
        """Model input whose logits at the last position predict the last
        token of ``tokens`` (the parity label): all else visible, it masked."""
        out = tokens.clone()
        out[:, -1] = task.mask_id
        return out


def diagnose(task, hook: str, *parts) -> dict:
    """The task's diagnostics for one kind of batch, {} when it logs none."""
    fn = getattr(task, hook, None)
    return fn(*parts) if fn is not None else {}


def masked_diffusion_loss(model, tokens: torch.Tensor, noisy: torch.Tensor, mask: torch.Tensor,
                          weight: torch.Tensor, normalization: str = "tokens") -> MaskedLoss:
    """MD loss of ``model`` on ``noisy`` with per-sequence weights (B,)."""
    return md_loss(model(noisy), tokens, mask, weight, normalization, reduction="parts")


class MaskedDiffusion(Objective):
    name, label, short_label = "md", "masked diffusion", "MD"
    uses_sampler = True

    def mask_rate(self, n: int, task, generator: torch.Generator) -> torch.Tensor:
        return task.sampler.sample(n, generator=generator)

    def make_batch(self, tokens, task, generator):
        t = self.mask_rate(len(tokens), task, generator)
        noisy, mask = corrupt(tokens, t, task.mask_id, generator)
        return {"tokens": tokens, "noisy": noisy, "t": t, "mask": mask}

    def loss(self, model, batch, task):
        out = masked_diffusion_loss(model, batch["tokens"], batch["noisy"], batch["mask"],
                                    task.sampler.weight(batch["t"]), task.cfg.normalization)
        return out.loss, diagnose(task, "masked_diagnostics", batch, out)


class OutputSupervision(Objective):
    name, label, short_label = "os", "output supervision", "output sup."
    needs_label = True

    def loss(self, model, batch, task):
        tokens = batch["tokens"]
        logits = model(self.label_input(tokens, task))[:, -1]
        return F.cross_entropy(logits.float(), tokens[:, -1]), {}


class Autoregressive(Objective):
    name, label, short_label = "ar", "autoregressive", "AR"
    attention = "causal"
    context_tokens = 1

    def loss(self, model, batch, task):
        inputs, targets = task.next_token_pair(batch["tokens"])
        logits = model(inputs)
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        return loss, diagnose(task, "next_token_diagnostics", logits.detach(), targets)

    def label_input(self, tokens, task):
        return task.next_token_pair(tokens)[0]


OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Make ``cls`` available as ``objective=cls.name`` (usable as a decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name")
    OBJECTIVES[cls.name] = cls
    return cls


def objective_label(name, short: bool = False):
    """What tables (figure legends if ``short``) call objective ``name``; an
    unknown name as it is."""
    cls = OBJECTIVES.get(name)
    return name if cls is None else cls.short_label if short else cls.label


def make_objective(name: str, allowed=None) -> Objective:
    """The registered objective ``name``; ``allowed`` filters by capability."""
    choices = [n for n, cls in OBJECTIVES.items() if allowed is None or allowed(cls)]
    if name not in choices:
        raise UserError(f"unknown objective {name!r}; choose from {', '.join(choices)}")
    return OBJECTIVES[name]()


register_objective(MaskedDiffusion)
register_objective(OutputSupervision)
register_objective(Autoregressive)
