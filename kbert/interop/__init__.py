"""Checkpoints in and out: Hugging Face BERT (safetensors) and KerasHub BERT presets, through name tables.

This package knows file formats, weight names and how to assign weights; it builds no model. Building a model
from a folder is `kbert.models.presets` (`from_preset`), which uses it.
"""

from kbert.interop.folders import check_vocabulary, load_keras_file, preset_format, preset_tokenizer
from kbert.interop.kerashub import save_kerashub
from kbert.interop.saving import save_huggingface, save_kbert

__all__ = [
    "check_vocabulary",
    "load_keras_file",
    "preset_format",
    "preset_tokenizer",
    "save_huggingface",
    "save_kbert",
    "save_kerashub",
]
