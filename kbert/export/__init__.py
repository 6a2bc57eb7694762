"""Edge export: LiteRT (.tflite) conversion with quantization, the tokenizer inside, MediaPipe metadata,
verification reports.

Conversion runs on the TensorFlow backend (models trained on any backend load there from their `.keras` files).
Distillation into smaller students trains on any backend and lives in `kbert.training` (`Distiller`,
`make_student`, `student_from_teacher` are importable from here too).
"""

from kbert.data.records import read_records
from kbert.export.converter import QUANTIZATIONS, add_metadata, check_ops, op_counts, read_metadata
from kbert.export.evaluation import HARD_CASES
from kbert.export.litert import export_litert
from kbert.export.loading import ExportError, LoadedModel, load_model, require_tensorflow_backend
from kbert.export.verify import interpreter
from kbert.training import Distiller, make_student, student_from_teacher

__all__ = [
    "HARD_CASES",
    "Distiller",
    "QUANTIZATIONS",
    "ExportError",
    "LoadedModel",
    "add_metadata",
    "check_ops",
    "export_litert",
    "interpreter",
    "load_model",
    "make_student",
    "op_counts",
    "read_metadata",
    "read_records",
    "require_tensorflow_backend",
    "student_from_teacher",
]
