"""Training utilities: optimizers and schedules, resumable checkpoints, several devices, pretraining."""

from kbert.training.checkpoints import TrainingCheckpoint, atomic_write, save_model
from kbert.training.distribution import data_parallel, encoder_layout_map, model_parallel
from kbert.training.optimizers import WarmupLinearDecay, create_optimizer

__all__ = [
    "TrainingCheckpoint",
    "WarmupLinearDecay",
    "atomic_write",
    "create_optimizer",
    "data_parallel",
    "encoder_layout_map",
    "model_parallel",
    "save_model",
]
