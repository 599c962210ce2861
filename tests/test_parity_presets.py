"""The parity presets find their committed runs again: every run folder under
a preset's root (presets.ROOTS) is the folder of a planned run, under exactly
its name, and each planned run builds the task and engine settings stored in
its folder, so the runner skips the finished runs and resumes the others."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from experiments.parity.presets import PRESETS, ROOTS, runs_of
from mdtheory.runfiles import is_run, read_run, settings_changes
from mdtheory.train.parity_task import ParityTask

REPO = Path(__file__).resolve().parents[1]


def run_folders(root: str) -> list[Path]:
    runs = REPO / root / "runs"
    return sorted(d for d in runs.iterdir() if d.is_dir() and not d.name.startswith(".")) if runs.is_dir() else []


@pytest.fixture(scope="module")
def planned():
    return {preset: runs_of(preset) for preset in PRESETS}


def test_planned_names_are_unique_and_a_shared_root_shares_only_equal_runs(planned):
    for preset, runs in planned.items():
        names = [r.name for r in runs]
        assert runs and len(set(names)) == len(names), preset
    by_root = defaultdict(dict)  # presets writing to one root may plan one run: then with the same settings
    for preset, runs in planned.items():
        for r in runs:
            task, cfg = r.configs()
            settings = (json.dumps(task.__dict__, sort_keys=True), json.dumps(cfg.record(), sort_keys=True))
            assert by_root[ROOTS[preset]].setdefault(r.name, settings) == settings, (preset, r.name)


def test_every_committed_run_folder_is_a_planned_run_under_its_name(planned):
    roots = sorted(set(ROOTS.values()))
    if not any(run_folders(root) for root in roots):
        pytest.skip("committed parity results absent")
    for root in roots:
        names = {r.name for preset, runs in planned.items() if ROOTS[preset] == root for r in runs}
        unplanned = [d.name for d in run_folders(root) if d.name not in names]
        assert unplanned == [], f"{root}: folders no preset plans (a run renamed?): {unplanned[:5]}"


def test_presets_build_the_settings_of_the_committed_runs(planned):
    """The check the engine makes on resume (runfiles.settings_changes), on
    the stored settings as read_run reads them (an old model name is read as
    its new one): no task or engine setting differs."""
    checked = 0
    for preset, runs in planned.items():
        for spec in runs:
            folder = REPO / ROOTS[preset] / "runs" / spec.name
            if not is_run(folder):
                continue
            stored = read_run(folder)
            task, cfg = spec.configs()
            parity = ParityTask(task)
            task_json = json.loads(json.dumps(parity.config()))
            assert settings_changes(stored.task, stored.train, task_json, cfg, parity.resumable_settings) == [], \
                (preset, spec.name)
            assert stored.train["steps"] <= spec.steps, (preset, spec.name)  # a budget is only ever raised
            checked += 1
    if not checked:
        pytest.skip("committed parity results absent")
