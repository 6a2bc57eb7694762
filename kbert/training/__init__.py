"""Training utilities: optimizers and schedules."""

from kbert.training.optimizers import WarmupLinearDecay, create_optimizer

__all__ = ["WarmupLinearDecay", "create_optimizer"]
