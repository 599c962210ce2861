"""The LM presets build exactly the settings recorded for them: every preset
and durability stage for a run of each kind (tests/fixtures/lm_preset_configs.json),
and every committed run of the corpus sweep (results/lm/python_reference) and
of the durability study (results/lm/durability), so that those runs still
resume and are skipped.

The fixture was recorded from the Preset that repeated the configs' fields,
before it came to hold the configs themselves. Regenerate it only for an
intended change of a preset's settings: ``python tests/test_lm_presets.py --write``.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script (--write)
    sys.path.insert(0, str(REPO))

from experiments.lm import durability as D  # noqa: E402
from experiments.lm import sweep  # noqa: E402
from experiments.lm.presets import PRESETS, SMOOTH_LAWS  # noqa: E402
from mdtheory.runfiles import settings_changes  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "lm_preset_configs.json"
LM = REPO / "results" / "lm"
CORPUS_SWEEP = LM / "python_reference"        # a committed corpus-preset sweep (--text-file)
DURABILITY = LM / "durability" / "runs"       # every committed durability stage
NAN = float("nan")
# stored before LMTaskConfig's default eval scheme became "exact-count": those
# runs hold "midpoint", so the committed runs are compared on everything else
NOT_COMPARED = {"eval_scheme"}


def representative_runs(preset) -> list[sweep.RunSpec]:
    """One run of each kind at the preset's last seed (a seed other than 0 where it has one)."""
    seed = max(preset.seeds)
    law = preset.smooth[0] if preset.smooth else SMOOTH_LAWS[0]
    return [sweep.RunSpec("window", "window", 0.3, 0.4, seed), sweep.RunSpec("uniform", "uniform", 0.0, 1.0, seed),
            sweep.RunSpec("predicted", "predicted", 0.411, 0.511, seed),
            sweep.RunSpec("smooth", "smooth", NAN, NAN, seed, law), sweep.RunSpec("ar", "ar", NAN, NAN, seed)]


def stage_presets(results: Path = LM) -> dict:
    """The durability stages' presets (the window and the best smooth law as committed)."""
    best = D.best_smooth
    D.best_smooth = lambda _results: "predicted:law=logitnormal,width=0.2"
    try:
        return {f"durability/{stage}": D.stage_preset(stage, (0.3, 0.4), D.SEEDS, results) for stage in D.STAGES}
    finally:
        D.best_smooth = best


def records() -> dict:
    """asdict(task) and asdict(train) from Preset.configs, per preset (and stage) and kind of run."""
    presets = {**{f"preset/{name}": preset for name, preset in PRESETS.items()}, **stage_presets()}
    out = {}
    for label, preset in presets.items():
        for spec in representative_runs(preset):
            task, train = preset.configs(spec.seed, **spec.rate())
            out[f"{label}/{spec.kind}"] = {"task": asdict(task), "train": asdict(train)}
    return json.loads(json.dumps(out))  # tuples as lists, like the fixture


def write_fixture() -> None:
    lines = [f" {json.dumps(key)}: {json.dumps(value, sort_keys=True)}" for key, value in records().items()]
    FIXTURE.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")


def test_presets_build_the_recorded_settings():
    """Every preset and durability stage, a run of each kind: exactly the recorded (task, train) settings."""
    recorded = json.loads(FIXTURE.read_text(encoding="utf-8"))
    built = records()
    assert sorted(built) == sorted(recorded)
    for key in recorded:
        assert built[key] == recorded[key], key
    # the seed is the run's, in both settings
    assert all(r["task"]["seed"] == r["train"]["seed"] for r in built.values())


def assert_same_settings(stored: dict, task, cfg, where: str) -> None:
    """The engine's resume check (mdtheory.runfiles.settings_changes) finds
    nothing changed, and the settings it lets a resume change (steps, the
    evaluation and checkpoint cadence, ...) are the stored ones too."""
    mine = {k: v for k, v in asdict(task).items() if k not in NOT_COMPARED}
    assert set(mine) <= set(stored["task"]), where  # every setting of the task is in the record
    old_task = {k: v for k, v in stored["task"].items() if k not in NOT_COMPARED}
    task_json = json.loads(json.dumps({**old_task, **mine}))  # the corpus' own numbers (fingerprint...) as stored
    assert settings_changes(old_task, stored["train"], task_json, cfg) == [], where
    record = replace(cfg, progress=False).record()  # the sweep trains without a bar
    set_per_run = {"out_dir", "resume"}
    assert {k: v for k, v in stored["train"].items() if k not in set_per_run} == \
        {k: v for k, v in record.items() if k not in set_per_run}, where


def stored_runs(root: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(root.glob("*/config.json"))}


@pytest.mark.skipif(not (CORPUS_SWEEP / "runs" / "corpus").is_dir(), reason="committed corpus sweep absent")
def test_the_corpus_preset_builds_the_committed_corpus_sweep():
    stored = stored_runs(CORPUS_SWEEP / "runs" / "corpus")
    runs, _ = sweep.plan(PRESETS["corpus"], CORPUS_SWEEP, pending={})  # its t* from the sweep's folder; never writes
    assert sorted(r.name for r in runs) == sorted(stored)  # the same run folders, all of them
    for spec in runs:
        # the corpus as the sweep's --text-file F sets it (F resolved: the runs were trained in two clones)
        preset = replace(PRESETS["corpus"], text_file=stored[spec.name]["task"]["text_file"])
        task, cfg = preset.configs(spec.seed, **spec.rate())
        assert_same_settings(stored[spec.name], task, cfg, spec.name)


@pytest.mark.skipif(not DURABILITY.is_dir(), reason="committed durability runs absent")
def test_the_durability_stages_build_the_committed_runs(monkeypatch):
    for stage in D.STAGES:
        stored = stored_runs(DURABILITY / stage)
        assert stored, stage
        samplers = {run["task"]["sampler"] for run in stored.values()}
        smooth = sorted(s for s in samplers if s.startswith("predicted:"))
        monkeypatch.setattr(D, "best_smooth", lambda _results: smooth[-1] if smooth else None)
        seeds = sorted({run["task"]["seed"] for run in stored.values()})
        preset, runs, root = D.stage_plan(stage, (0.3, 0.4), seeds, LM, pending={})  # the window the quick sweep chose
        assert root == DURABILITY / stage
        assert sorted(r.name for r in runs) == sorted(stored), stage  # the same run folders, all of them
        for spec in runs:
            task, cfg = preset.configs(spec.seed, **spec.rate())
            assert_same_settings(stored[spec.name], task, cfg, f"{stage}/{spec.name}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_fixture()
        print(f"wrote {FIXTURE}")
    else:
        sys.exit("usage: python tests/test_lm_presets.py --write")
