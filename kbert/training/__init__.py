"""Training utilities: optimizers and schedules, resumable checkpoints, several devices, pretraining, fine-tuning
(`kbert.training.finetuning`) with its metrics, LoRA and sentence-pair losses."""

from kbert.training.checkpoints import TrainingCheckpoint, atomic_write, save_model
from kbert.training.distribution import data_parallel, encoder_layout_map, model_parallel
from kbert.training.lora import enable_lora
from kbert.training.losses import CosineSimilarityLoss, InBatchNegativesLoss
from kbert.training.optimizers import WarmupLinearDecay, create_optimizer

__all__ = [
    "CosineSimilarityLoss",
    "InBatchNegativesLoss",
    "TrainingCheckpoint",
    "WarmupLinearDecay",
    "atomic_write",
    "create_optimizer",
    "data_parallel",
    "enable_lora",
    "encoder_layout_map",
    "model_parallel",
    "save_model",
]
