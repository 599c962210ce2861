"""The adaptive mask-rate sampler: spec, weights, what it learns, exact resume."""
import json

import numpy as np
import pytest
import torch

from mdtheory.errors import UserError
from mdtheory.masking import AdaptiveSampler, forward_process, parse_sampler
from mdtheory.theory.numeric import p_signal_at, signal_optimal_t
from mdtheory.train import TrainConfig, train
from mdtheory.train.engine import CKPT_NAME, METRICS_NAME, load_checkpoint
from mdtheory.train.parity_task import ParityTask, ParityTaskConfig


def test_spec_round_trips_and_bad_options_are_refused():
    for spec in ("adaptive", "adaptive:rule=loss_importance,bins=10",
                 "adaptive:rule=signal,bins=8,floor=0.3,fast=0.2,slow=0.05,history=4"):
        s = parse_sampler(spec)
        again = parse_sampler(s.spec())
        assert again.describe() == s.describe()
    assert parse_sampler("adaptive").describe()["rule"] == "signal"
    assert parse_sampler("adaptive:rule=loss_importance").floor == pytest.approx(0.001)
    for bad in ("adaptive:rule=magic", "adaptive:bins=1", "adaptive:bins=x", "adaptive:speed=2",
                "adaptive:floor=1.5", "adaptive:fast=0.01,slow=0.1", "adaptive:bins"):
        with pytest.raises(UserError):
            parse_sampler(bad)


def test_untrained_law_is_uniform_and_weights_are_inverse_t():
    s = parse_sampler("adaptive:bins=5")
    t = s.sample(4000, generator=torch.Generator().manual_seed(0))
    assert float(t.min()) >= 1e-3 and float(t.max()) <= 1.0
    assert float(t.mean()) == pytest.approx(0.5, abs=0.02)
    assert torch.allclose(s.weight(t), 1 / t)
    assert s.expect(lambda x: np.ones_like(x)) == pytest.approx(1.0)


def feed(sampler, profile, calls=400, batch=64, noise=0.05, seed=0):
    """Batches whose per-sequence loss falls at rate ``profile(t)`` per call."""
    gen = torch.Generator().manual_seed(seed)
    for n in range(calls):
        t = sampler.sample(batch, generator=gen)
        slope = torch.as_tensor(profile(t.double().numpy()))
        loss = 3.0 - 0.01 * slope * n + noise * torch.randn(batch, generator=gen, dtype=torch.float64)
        sampler.observe(t, loss)


@pytest.mark.parametrize("k", [2, 4])
def test_signal_rule_puts_its_mass_where_the_parity_signal_is(k):
    # the loss falls fastest where the k-parity signal share P_S(t) is largest
    s = parse_sampler("adaptive:bins=20")
    feed(s, lambda t: p_signal_at(t, k))
    centres = ((s.edges[:-1] + s.edges[1:]) / 2).numpy()
    mass = s.probs.numpy()
    # the peak lies within a bin and a half of t* = 1/(k+1), the shape follows P_S
    assert abs(centres[mass.argmax()] - signal_optimal_t(k)) <= 0.075
    assert np.corrcoef(mass, p_signal_at(centres, k))[0, 1] > 0.9
    assert mass[centres > 0.8].sum() < 0.25 * mass[np.abs(centres - signal_optimal_t(k)) < 0.1].sum()
    assert mass.min() >= s.floor / s.bins - 1e-12  # exploration floor
    # a flat profile (nothing is learnt anywhere) keeps the law near uniform
    flat = parse_sampler("adaptive:bins=20")
    feed(flat, lambda t: np.zeros_like(t))
    assert flat.probs.max() < 0.5


def test_loss_importance_follows_the_loss_and_stays_unbiased():
    s = parse_sampler("adaptive:rule=loss_importance,bins=10,history=5")
    gen = torch.Generator().manual_seed(1)
    for _ in range(40):
        t = s.sample(64, generator=gen)
        s.observe(t, 1.0 + 4.0 * t.double())  # loss grows with t
    p = s.probs.numpy()
    assert np.all(np.diff(p) > 0)  # p_b proportional to sqrt(E[l_b^2]), l rising with t
    # weight (1/t) / (bins p_b): the sampler's expectation is the U[eps, 1] ELBO
    f = lambda x: np.cos(3 * x)
    weighted = s.expect(lambda x: s.weight(torch.as_tensor(x)).numpy() * f(x), nodes=400)
    from scipy.integrate import quad
    target = quad(lambda x: f(x) / x, 1e-3, 1.0, limit=200)[0] / (1 - 1e-3)
    assert weighted == pytest.approx(target, rel=1e-4)


def test_state_round_trips_and_mismatch_is_refused():
    s = parse_sampler("adaptive:bins=6,slow=0.2,fast=0.5")
    feed(s, lambda t: 1 - t, calls=40)
    fresh = parse_sampler("adaptive:bins=6,slow=0.2,fast=0.5")
    fresh.load_state_dict(s.state_dict())
    assert torch.equal(fresh.probs, s.probs) and not torch.allclose(s.probs, torch.full((6,), 1 / 6,
                                                                                        dtype=torch.float64))
    with pytest.raises(UserError):
        parse_sampler("adaptive:bins=7").load_state_dict(s.state_dict())


def test_forward_process_takes_the_object_not_the_string():
    ids = torch.randint(0, 10, (8, 16))
    with pytest.raises(UserError, match="object"):
        forward_process(ids, mask_id=10, sampler="adaptive")
    s = AdaptiveSampler(bins=4)
    noisy, mask, p_mask = forward_process(ids, mask_id=10, sampler=s)
    assert noisy.shape == ids.shape and p_mask.shape == ids.shape
    s.observe(p_mask[:, 0], torch.ones(8))
    assert int(s.state["calls"]) == 1


def tiny_parity(sampler):
    return ParityTask(ParityTaskConfig(n=8, k=2, train_size=192, val_size=64, sampler=sampler, n_layer=1,
                                       n_head=2, n_embd=16, tbins=0, seed=0))


def tiny_config(out, **kw):
    return TrainConfig(**{**dict(steps=30, batch_size=16, lr=3e-3, eval_every=10, ckpt_every=7,
                                 progress=False, device="cpu", out_dir=str(out)), **kw})


def records(out):
    return [{k: v for k, v in json.loads(line).items() if k not in ("elapsed_s", "tokens_per_s")}
            for line in (out / METRICS_NAME).read_text().splitlines()]


@pytest.mark.parametrize("spec", ["adaptive:bins=4,slow=0.2,fast=0.5",
                                  "adaptive:rule=loss_importance,bins=4,history=2"])
def test_segmented_run_equals_uninterrupted(tmp_path, spec):
    torch.set_num_threads(1)
    full, seg = tmp_path / "full", tmp_path / "seg"
    whole = tiny_parity(spec)
    train(whole, tiny_config(full))
    for end in (10, 20, 30):
        train(tiny_parity(spec), tiny_config(seg, steps=end, resume=end > 10))
    assert records(seg) == records(full)
    saved = load_checkpoint(seg / CKPT_NAME)["task_state"]["sampler"]
    assert int(saved["calls"]) == 30
    assert torch.equal(saved["history"], whole.sampler.state["history"])
    assert not torch.allclose(whole.sampler.probs, torch.full((4,), 0.25, dtype=torch.float64))


def test_resume_without_sampler_state_is_refused(tmp_path):
    train(tiny_parity("adaptive:bins=4"), tiny_config(tmp_path, steps=7))
    ckpt = load_checkpoint(tmp_path / CKPT_NAME)
    ckpt["task_state"] = {}
    torch.save(ckpt, tmp_path / CKPT_NAME)
    with pytest.raises(UserError, match="adaptive"):
        train(tiny_parity("adaptive:bins=4"), tiny_config(tmp_path, steps=14, resume=True))
