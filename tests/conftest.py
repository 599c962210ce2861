import os

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests run on 2-core machines; keep torch from oversubscribing.
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def sbatch_scripts(monkeypatch) -> list[str]:
    """submitit's SLURM executor without a cluster: every sbatch script it
    would submit is appended to the returned list (and a job id returned)."""
    from pathlib import Path

    from submitit.slurm.slurm import SlurmExecutor

    scripts = []

    def fake_sbatch(self, path):
        scripts.append(Path(path).read_text())
        return ["echo", "Submitted batch job 4242"]

    monkeypatch.setattr(SlurmExecutor, "_make_submission_command", fake_sbatch)
    monkeypatch.setattr(SlurmExecutor, "affinity", staticmethod(lambda: 1))  # as if srun were here
    return scripts
