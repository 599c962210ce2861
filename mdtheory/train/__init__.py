"""Training: one engine (engine.py) running tasks (task.py) such as k-parity
(parity_task.py) and language modelling (lm_task.py).

CLI: ``python -m mdtheory.train parity|lm ...`` (see __main__.py).
"""
from .engine import TrainConfig, TrainingDiverged, TrainResult, train
from .task import Task, step_generator

__all__ = ["Task", "TrainConfig", "TrainResult", "TrainingDiverged", "step_generator", "train"]
