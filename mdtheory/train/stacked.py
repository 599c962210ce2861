"""Several runs in one process: ``train_stacked(tasks, cfgs, stops)``.

A small model leaves a GPU mostly idle, and processes sharing one GPU take
turns on it. Here the runs' models are stacked (``torch.func.stack_module_state``)
and each step is one vmapped forward and backward pass over all of them, with
one AdamW over the stacked weights (AdamW acts element by element, so this is
each run's own AdamW) and gradients clipped run by run. Every run keeps its
own data, masks, initial weights, run folder, metrics, evaluations,
checkpoints and stop rule, and ends with what ``train(task, cfg, stop)``
would have written, to round-off (tests/test_stacked.py): a stacked run
resumes alone and the other way round.

Runs stack when their task configs differ only in PER_RUN_TASK_KEYS (seed,
mask-rate law and what follows from them) and their TrainConfigs only in seed
and run folder, and when they start from the same step. Not with DDP,
gradient accumulation or torch.compile. A run whose stop rule fires leaves
the stack; a diverged run stops them all (each keeps its last checkpoint).
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import replace

import torch
from torch.func import functional_call, stack_module_state
from tqdm.auto import tqdm

from ..errors import UserError
from .checkpoint import gather_rng_states, set_rng_state
from .engine import TrainingDiverged, TrainResult, _Training, setup_runtime

# what may differ between the tasks of one stack: the loss code reads none of
# these except through the batch (the mask rates, masks and secret set are in it)
PER_RUN_TASK_KEYS = frozenset({"seed", "sampler", "eps", "sampler_law", "p_signal", "data"})


class _Functional:
    """One slice of the stacked weights, called like the model it came from."""

    def __init__(self, base, params, buffers):
        self.base, self.params, self.buffers = base, params, buffers

    def __call__(self, *args):
        return functional_call(self.base, (self.params, self.buffers), args)


def train_stacked(tasks: list, cfgs: list, stops: list | None = None) -> list[TrainResult]:
    """Train run i (``tasks[i]``, ``cfgs[i]``, stop rule ``stops[i]``) for every
    i at once; one TrainResult per run, in order (see the module docstring)."""
    stops = list(stops) if stops is not None else [None] * len(tasks)
    if not tasks or not len(tasks) == len(cfgs) == len(stops):
        raise UserError("train_stacked needs as many tasks, configs and stop rules, at least one")
    check_stackable(tasks, cfgs)
    rt = setup_runtime(cfgs[0].device)
    if rt.distributed:
        raise UserError("stacked runs do not run under torchrun (one process trains them all)")
    with contextlib.ExitStack() as cleanup:
        runs = [_Training(task, cfg, rt, stop) for task, cfg, stop in zip(tasks, cfgs, stops)]
        checkpoints = []
        for run in runs:
            run._check_settings()
            checkpoints.append(run._open_folder(cleanup))
        starts = {0 if c is None else int(c["step"]) for c in checkpoints}
        if len(starts) > 1:
            raise UserError(f"stacked runs must resume from one step; their checkpoints are at {sorted(starts)}")
        for run, ckpt in zip(runs, checkpoints):
            run._build(ckpt)
            run.saved_step = None if ckpt is None else int(ckpt["step"])
            run.rng_after_build = gather_rng_states(rt)  # what its own process would checkpoint
        return _StackedLoop(runs, starts.pop()).run()


def check_stackable(tasks: list, cfgs: list) -> None:
    """Refuse runs that cannot share one vmapped step (one line: what differs)."""
    def shared_task(task):
        return {k: v for k, v in task.config().items() if k not in PER_RUN_TASK_KEYS}

    def shared_cfg(cfg):
        return replace(cfg, seed=0, out_dir=None, resume=False, progress=False)

    first, first_cfg = shared_task(tasks[0]), shared_cfg(cfgs[0])
    for i, (task, cfg) in enumerate(zip(tasks, cfgs)):
        if type(task) is not type(tasks[0]) or shared_task(task) != first:
            differ = sorted(k for k in {*first, *shared_task(task)} if first.get(k) != shared_task(task).get(k))
            raise UserError(f"run {i} cannot stack with run 0: its task differs in {', '.join(differ) or 'type'}")
        if shared_cfg(cfg) != first_cfg:
            raise UserError(f"run {i} cannot stack with run 0: its training settings differ beyond seed and folder")
        weight = getattr(type(getattr(task, "sampler", None)), "weight", None)
        if weight is not getattr(type(getattr(tasks[0], "sampler", None)), "weight", None):
            raise UserError(f"run {i} cannot stack with run 0: its mask-rate law weights the loss differently")
    if cfgs[0].grad_accum != 1 or cfgs[0].compile:
        raise UserError("stacked runs need grad_accum = 1 and no torch.compile")
    if len({c.out_dir for c in cfgs if c.out_dir}) < sum(1 for c in cfgs if c.out_dir):
        raise UserError("two stacked runs share a run folder")


class _StackedLoop:
    """The runs still training, their stacked weights and optimizer, and the loop.
    Each run's ``_Training`` keeps the canonical state (its model and optimizer),
    copied from the stack at evaluations and checkpoints."""

    def __init__(self, runs: list, start_step: int):
        self.runs, self.step0 = runs, start_step
        self.cfg, self.device = runs[0].cfg, runs[0].device
        self.template = runs[0].task  # the loss code; per-run pieces come in the batch

    def run(self) -> list[TrainResult]:
        cfg, results = self.cfg, {}
        for run in self.runs:
            run.t_start = time.time()
            if self.step0 == 0:
                run._evaluate(0)
            run.raw_model.train()
            run.bar = tqdm(disable=True)
            run.interval_t0, run.interval_tokens = time.time(), 0
        bar = tqdm(total=cfg.steps, initial=self.step0, disable=None if cfg.progress else True,
                   dynamic_ncols=True, desc=f"{len(self.runs)} stacked runs")
        active, step = list(self.runs), self.step0
        self.stack(active)
        while step < cfg.steps and active:
            self.train_step(active, step)
            step += 1
            bar.update(1)
            evaluating = step % cfg.eval_every == 0 or step == cfg.steps
            checkpointing = step % cfg.ckpt_every == 0 or step == cfg.steps
            if not (evaluating or checkpointing):
                continue
            self.unstack(active)
            stopping = [run._evaluate_and_ask(step) if evaluating else False for run in active]
            for run, stops in zip(active, stopping):
                if run.ckpt_path is not None and (checkpointing or stops):
                    set_rng_state(run.rng_after_build[0])
                    run._checkpoint(step)
                if stops:
                    results[id(run)] = TrainResult(run.raw_model, run.records, stopped_early=True)
            if any(stopping):
                active = [run for run, stops in zip(active, stopping) if not stops]
                self.stack(active)
        bar.close()
        return [results.get(id(run)) or TrainResult(run.raw_model, run.records) for run in self.runs]

    # ---- between the runs' own models and the stack

    def stack(self, runs: list) -> None:
        """Stacked weights, buffers and AdamW state from the runs' own."""
        if not runs:
            return
        models = [run.raw_model for run in runs]
        self.base = copy.deepcopy(models[0]).to("meta")
        self.params, self.buffers = stack_module_state(models)
        names = {id(p): n for n, p in models[0].named_parameters()}
        self.names = [[names[id(p)] for p in g["params"]] for g in runs[0].optimizer.param_groups]
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [self.params[n] for n in group]}
                  for g, group in zip(runs[0].optimizer.param_groups, self.names)]
        self.optimizer = torch.optim.AdamW(groups, fused=runs[0].optimizer.defaults.get("fused"))
        for g, group in enumerate(self.names):
            for j, name in enumerate(group):
                states = [run.optimizer.state.get(run.optimizer.param_groups[g]["params"][j], {}) for run in runs]
                if states[0]:
                    self.optimizer.state[self.params[name]] = {
                        k: v.clone() if v.dim() == 0 else torch.stack([s[k] for s in states])
                        for k, v in states[0].items()}

    @torch.no_grad()
    def unstack(self, runs: list) -> None:
        """Copy the stacked weights and AdamW state back into each run's own."""
        own_params = [dict(run.raw_model.named_parameters()) for run in runs]
        for g, group in enumerate(self.names):
            for run in runs:
                run.optimizer.param_groups[g]["lr"] = self.optimizer.param_groups[g]["lr"]
            for j, name in enumerate(group):
                state = self.optimizer.state.get(self.params[name], {})
                for i, run in enumerate(runs):
                    own_params[i][name].copy_(self.params[name][i])
                    if state:
                        run.optimizer.state[run.optimizer.param_groups[g]["params"][j]] = {
                            k: v.clone() if v.dim() == 0 else v[i].clone() for k, v in state.items()}

    # ---- one step of every run

    def _loss(self, params, buffers, batch):
        return self.template.loss(_Functional(self.base, params, buffers), batch)

    def train_step(self, runs: list, step: int) -> None:
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr_at(step)
        batches = [run.task.train_batch(step, run.micro_batch, self.device, shard=0) for run in runs]
        batch = {k: torch.stack([b[k] for b in batches]) for k in batches[0]}
        with runs[0].autocast():
            losses, diagnostics = torch.vmap(self._loss)(self.params, self.buffers, batch)
        losses.sum().backward()
        # clip_grad_norm_ run by run: each run's norm over all of its gradients
        grads = [p.grad for p in self.params.values()]
        norms = torch.stack([g.flatten(1).float().norm(dim=1) for g in grads]).norm(dim=0)
        limit = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        scale = (limit / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))
        losses = losses.detach().float()
        finite = torch.isfinite(losses) & torch.isfinite(norms)
        if not bool(finite.all()):
            bad = [i for i, ok in enumerate(finite.tolist()) if not ok]
            raise TrainingDiverged(f"loss became non-finite at step {step} in stacked run(s) "
                                   + ", ".join(str(runs[i].cfg.out_dir or i) for i in bad)
                                   + "; each run keeps its last checkpoint")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        for i, run in enumerate(runs):
            run.acc.add({"loss": losses[i], "_grad_norm": norms[i]})
            run.acc.add({k: v[i] for k, v in diagnostics.items()})
            if run.tokens_per_seq:
                run.interval_tokens += cfg.batch_size * run.tokens_per_seq
