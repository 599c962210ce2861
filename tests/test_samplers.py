"""The sampler registry: every kind parses from its spec and back, a new law
is one registration, and unknown kinds are refused with the list of kinds."""
from __future__ import annotations

import pytest
import torch

from mdtheory import masking, predicted, samplers
from mdtheory.errors import UserError
from mdtheory.samplers import (SAMPLER_KINDS, SAMPLERS, MaskRateSampler, PointSampler, SamplerSpec,
                               parse_sampler, register_sampler, unregister_sampler)

BUILT_IN = ("window", "uniform", "stratified", "beta", "logitnormal", "point", "signal-optimal", "mixture",
            "predicted")
# one spec per registered kind: a kind added without a spec here fails test_every_kind_has_a_spec
REPRESENTATIVE = {
    "window": "window:0.3,0.4",
    "uniform": "uniform",
    "stratified": "stratified:0.2,0.6",
    "beta": "beta:2,5",
    "logitnormal": "logitnormal:-0.5,0.7",
    "point": "point:0.25",
    "signal-optimal": "signal-optimal:3,0.1",
    "mixture": "mixture:0.25*uniform+0.75*beta:2,2",
    "predicted": "predicted:law=beta,width=0.2",
}
T_STAR = 0.44


def test_kinds_are_the_registry_keys_in_registration_order():
    assert list(SAMPLER_KINDS) == list(SAMPLERS) == list(BUILT_IN)
    assert masking.SAMPLER_KINDS is samplers.SAMPLER_KINDS


def test_every_kind_has_a_spec():
    assert set(REPRESENTATIVE) == set(SAMPLER_KINDS)


@pytest.mark.parametrize("kind", BUILT_IN)
@pytest.mark.parametrize("settings", [{}, {"eps": 0.01, "weighting": "none"}])
def test_spec_round_trips(kind, settings):
    sampler = parse_sampler(REPRESENTATIVE[kind], t_star=T_STAR, **settings)
    again = parse_sampler(sampler.spec(), **settings)  # the spec of a centred law needs no t* any more
    assert again.spec() == sampler.spec() and type(again) is type(sampler)
    # spec() rounds to 6 digits (a signal-optimal window's t1 = t0 + width does not): from then on it is fixed
    assert parse_sampler(again.spec(), **settings).describe() == again.describe()


def test_describe_is_what_run_records_store():
    # a resumed run compares these with its config.json: they must not change
    assert parse_sampler("window:0.3,0.4").describe() == {"kind": "window", "t0": 0.3, "t1": 0.4, "eps": 0.001,
                                                          "weighting": "inverse_t"}
    assert parse_sampler("uniform", eps=0.01).describe() == {"kind": "uniform", "t0": 0.0, "t1": 1.0,
                                                             "eps": 0.01, "weighting": "inverse_t"}
    assert parse_sampler("mixture:0.5*point:0.2+0.5*beta:2,3").describe() == {"kind": "mixture", "components": [
        {"weight": 0.5, "kind": "point", "t": 0.2, "weighting": "inverse_t"},
        {"weight": 0.5, "kind": "beta", "a": 2.0, "b": 3.0, "eps": 0.001, "weighting": "inverse_t"}]}
    assert parse_sampler("signal_optimal:4").spec() == "point:0.2"


def test_draws_are_the_same_torch_calls():
    """Committed runs depend on each law's stream of random numbers."""
    def gen():
        return torch.Generator().manual_seed(5)

    g = gen()
    law = parse_sampler("window:0.2,0.6")
    assert torch.equal(law.sample(7, generator=gen()), 0.2 + (0.6 - 0.2) * torch.rand(7, generator=g))
    g = gen()
    offset = torch.rand(1, generator=g)
    perm = torch.randperm(8, generator=g)
    expected = 0.2 + (0.6 - 0.2) * ((torch.arange(8, dtype=offset.dtype) + offset) / 8)[perm]
    assert torch.equal(parse_sampler("stratified:0.2,0.6").sample(8, generator=gen()), expected)
    g = gen()
    ga = torch._standard_gamma(torch.full((6,), 2.0), generator=g)
    gb = torch._standard_gamma(torch.full((6,), 3.0), generator=g)
    assert torch.equal(parse_sampler("beta:2,3").sample(6, generator=gen()), (ga / (ga + gb)).clamp(0.001, 1.0))
    g = gen()
    z = torch.sigmoid(0.5 + 0.7 * torch.randn(6, generator=g)).clamp(0.001, 1.0)
    assert torch.equal(parse_sampler("logitnormal:0.5,0.7").sample(6, generator=gen()), z)
    g = gen()
    choice = torch.multinomial(torch.tensor([0.5, 0.5]), 9, replacement=True, generator=g)
    window = 0.1 + (0.2 - 0.1) * torch.rand(9, generator=g)
    expected = torch.where(choice == 1, window, torch.full((9,), 0.3))
    assert torch.equal(parse_sampler("mixture:0.5*point:0.3+0.5*window:0.1,0.2").sample(9, generator=gen()),
                       expected)


def test_unknown_kind_names_the_kinds():
    for spec in ("nosuch:1", "adaptive", "adaptive:rule=loss_importance", "mixture:1*adaptive"):
        with pytest.raises(UserError, match="unknown sampler 'adaptive'|unknown sampler 'nosuch'") as err:
            parse_sampler(spec)
        assert f"choose from {', '.join(BUILT_IN)}" in str(err.value)


class Halfway(MaskRateSampler):
    """A toy law for the registry tests: a point mass at (t0 + t1) / 2."""
    kind, fields = "halfway", ("t", "weighting")

    def __init__(self, t0, t1, weighting="inverse_t"):
        self.t, self.weighting = (t0 + t1) / 2, weighting

    @classmethod
    def from_spec(cls, spec: SamplerSpec):
        return cls(*spec.numbers(2), weighting=spec.weighting)

    def sample(self, n, generator=None, device=None):
        return torch.full((n,), self.t, device=device)

    def atoms(self):
        return [(1.0, self.t)]

    def spec(self):
        return f"halfway:{2 * self.t - 0.5:g},0.5"


@pytest.fixture
def registered():
    """Registers the toy laws, and forgets them whatever the test did."""
    register_sampler("halfway", Halfway, aliases=("mid",))
    register_sampler("twice", lambda spec: PointSampler(2 * spec.numbers(1)[0], weighting=spec.weighting))
    try:
        yield
    finally:
        unregister_sampler("halfway")
        unregister_sampler("twice")


def test_a_registered_kind_is_parsed(registered):
    law = parse_sampler("Halfway:0.2,0.4", weighting="none")
    assert isinstance(law, Halfway) and law.t == pytest.approx(0.3) and law.weighting == "none"
    assert parse_sampler(law.spec()).t == pytest.approx(law.t)
    assert isinstance(parse_sampler("mid:0.1,0.3"), Halfway)  # an alias
    assert parse_sampler("twice:0.2").spec() == "point:0.4"  # a parser function
    assert list(SAMPLER_KINDS) == [*BUILT_IN, "halfway", "twice"]
    assert isinstance(parse_sampler("mixture:0.5*halfway:0.2,0.4+0.5*uniform").components[0][1], Halfway)
    with pytest.raises(UserError, match="takes 2 numbers"):
        parse_sampler("halfway:0.2")
    with pytest.raises(UserError, match="halfway, twice"):
        parse_sampler("nosuch")


def test_registration_is_cleaned_up():
    assert list(SAMPLER_KINDS) == list(BUILT_IN)
    with pytest.raises(UserError, match="unknown sampler 'mid'"):
        parse_sampler("mid:0.1,0.3")


def test_a_kind_cannot_be_registered_twice_or_misspelt():
    with pytest.raises(ValueError, match="already registered"):
        register_sampler("window", Halfway)
    with pytest.raises(ValueError, match="already registered"):
        register_sampler("halfway", Halfway, aliases=("signal_optimal",))
    for bad in ("Halfway", "half:way", ""):
        with pytest.raises(ValueError, match="lower-case"):
            register_sampler(bad, Halfway)
    assert list(SAMPLER_KINDS) == list(BUILT_IN)


def test_the_old_import_paths_still_work():
    for name in ("WindowSampler", "UniformSampler", "StratifiedSampler", "BetaSampler", "PointSampler",
                 "MixtureSampler", "MaskRateSampler", "signal_optimal", "parse_sampler", "DEFAULT_EPS"):
        assert getattr(masking, name) is getattr(samplers, name), name
    assert predicted.LogitNormalSampler is samplers.LogitNormalSampler
    assert predicted.centred_law is samplers.centred_law
    assert not hasattr(masking, "AdaptiveSampler") and not hasattr(samplers, "AdaptiveSampler")
