"""Checkpoints in and out: Hugging Face BERT (safetensors) and KerasHub BERT presets, through name tables."""

from kbert.interop.kerashub import save_kerashub
from kbert.interop.presets import check_vocabulary, load_keras_file, load_preset, preset_format
from kbert.interop.saving import save_huggingface, save_kbert

__all__ = [
    "check_vocabulary",
    "load_keras_file",
    "load_preset",
    "preset_format",
    "save_huggingface",
    "save_kbert",
    "save_kerashub",
]
