"""Training: optimizers and schedules, resumable checkpoints, several devices, pretraining
(`kbert.training.pretraining`), fine-tuning (`kbert.training.finetuning`) with its metrics, distillation into
smaller students (`Distiller`, `make_student`; the file-to-file run `kbert.training.distillation`), LoRA and
sentence-pair losses."""

from kbert.files import atomic_write, save_model
from kbert.training.checkpoints import TrainingCheckpoint
from kbert.training.distiller import Distiller
from kbert.training.distribution import data_parallel, encoder_layout_map, model_parallel
from kbert.training.lora import enable_lora
from kbert.training.losses import CosineSimilarityLoss, InBatchNegativesLoss
from kbert.training.optimizers import WarmupLinearDecay, create_optimizer
from kbert.training.students import make_student, student_from_teacher

__all__ = [
    "CosineSimilarityLoss",
    "Distiller",
    "InBatchNegativesLoss",
    "TrainingCheckpoint",
    "WarmupLinearDecay",
    "atomic_write",
    "create_optimizer",
    "data_parallel",
    "enable_lora",
    "encoder_layout_map",
    "model_parallel",
    "make_student",
    "save_model",
    "student_from_teacher",
]
