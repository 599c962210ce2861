"""Flags generated from the config dataclasses: a new field is a new flag."""
from dataclasses import dataclass, fields

import pytest

from mdtheory.cli import OneLineParser, add_config_arguments, config_from_args, setting
from mdtheory.train import TrainConfig
from mdtheory.train.__main__ import build_parser
from mdtheory.train.config import TaskConfig
from mdtheory.train.lm_task import LMTaskConfig
from mdtheory.train.parity_task import ParityTaskConfig


@dataclass
class ToyConfig(ParityTaskConfig):
    label_noise: float = setting(0.0, "fraction of flipped labels")
    schedule: str = setting("flat", "noise schedule", choices=("flat", "ramp"))
    window_pair: tuple[float, float] = setting((0.0, 1.0), "a pair")
    tag: str | None = setting(None, "free text")
    verbose: bool = setting(False, "say more")
    check: bool = setting(True, "run the check")


def parse(cls, argv, **defaults):
    parser = OneLineParser(prog="toy")
    add_config_arguments(parser, cls, "toy", defaults)
    return parser, parser.parse_args(argv)


def test_a_new_field_is_a_new_flag():
    parser, args = parse(ToyConfig, ["--label-noise", "0.25", "--schedule", "ramp", "--window-pair",
                                     "0.1", "0.2", "--tag", "x", "--verbose", "--no-check", "--k", "3"])
    cfg = config_from_args(ToyConfig, args)
    assert (cfg.label_noise, cfg.schedule, cfg.window_pair, cfg.tag) == (0.25, "ramp", [0.1, 0.2], "x")
    assert cfg.verbose and not cfg.check and cfg.k == 3
    help_text = " ".join(parser.format_help().split())
    assert "--label-noise LABEL_NOISE fraction of flipped labels (default: 0.0)" in help_text
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--schedule", "steep"])  # choices come from the metadata
    assert info.value.code == 2


def test_flags_not_given_keep_the_dataclass_or_task_defaults():
    _, args = parse(ToyConfig, [])
    assert vars(args) == {}  # nothing given: the dataclass decides
    assert config_from_args(ToyConfig, args) == ToyConfig()
    _, args = parse(TrainConfig, ["--lr", "0.5"], steps=7)
    assert config_from_args(TrainConfig, args, steps=7) == TrainConfig(lr=0.5, steps=7)


def test_every_config_field_is_on_the_training_cli():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    for name, config in (("parity", ParityTaskConfig), ("lm", LMTaskConfig)):
        dests = {a.dest for a in sub[name]._actions}
        assert {f.name for f in fields(config)} | {f.name for f in fields(TrainConfig)} <= dests
    args = parser.parse_args(["lm", "--eval-seed", "3", "--seed", "2", "--out", "x", "--no-progress"])
    cfg = config_from_args(TrainConfig, args, **LMTaskConfig.engine_defaults)
    assert config_from_args(LMTaskConfig, args).eval_seed == 3
    assert (cfg.seed, cfg.out_dir, cfg.progress, cfg.lr_schedule) == (2, "x", False, "cosine")


def test_shared_fields_live_in_one_config():
    shared = {f.name for f in fields(TaskConfig)}
    assert {"objective", "sampler", "eps", "loss_weighting", "normalization",
            "n_layer", "n_head", "n_embd", "seed"} <= shared
    # the tasks change defaults, not meaning: same help text
    for name in shared:
        help_texts = {f.metadata["help"] for c in (ParityTaskConfig, LMTaskConfig)
                      for f in fields(c) if f.name == name}
        assert len(help_texts) == 1 or name == "n_embd", name
    assert ParityTaskConfig().sampler == "window:0,0.2" and LMTaskConfig().sampler == "uniform"
    assert ParityTaskConfig(model="mlp").n_embd == 2560 and ParityTaskConfig().n_embd == 128


def test_task_configs_fill_the_engine_defaults():
    cfg = LMTaskConfig(seed=4).train_config(steps=10)
    assert (cfg.steps, cfg.seed, cfg.betas, cfg.lr_schedule) == (10, 4, (0.9, 0.99), "cosine")
    assert ParityTaskConfig().train_config().batch_size == 128
