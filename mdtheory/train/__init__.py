"""Training: one engine (engine.py) running tasks (task.py) such as k-parity
(parity_task.py) and language modelling (lm_task.py), with the settings of
both in config.py.

CLI: ``python -m mdtheory.train parity|lm ...`` (see __main__.py).
"""
from .config import TaskConfig, TrainConfig
from .engine import TrainingDiverged, TrainResult, train
from .task import Task, step_generator

__all__ = ["Task", "TaskConfig", "TrainConfig", "TrainResult", "TrainingDiverged", "step_generator", "train"]
