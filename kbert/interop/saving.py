"""Writing kbert models as Hugging Face checkpoints (KerasHub: `kbert.interop.kerashub.save_kerashub`)."""

import os
import shutil

import numpy as np

from kbert.files import save_model
from kbert.interop import huggingface
from kbert.interop.tables import huggingface_table, to_foreign


def save_huggingface(model, directory, tokenizer=None, labels=None):
    """Writes `model` as a Hugging Face BERT folder that `transformers.AutoModel.from_pretrained` loads.

    Args:
        model: a kbert backbone or task model.
        directory: the output folder (`config.json`, `model.safetensors`, and `vocab.txt` +
            `tokenizer_config.json` when a tokenizer is given or attached to the model).
        tokenizer: a `kbert.text.WordPieceTokenizer` (default: the model's preprocessor's, if any).
        labels: class names for `id2label` (classifiers).
    """
    architecture = model.huggingface_architecture()
    keep_pooler = architecture not in huggingface.WITHOUT_POOLER
    backbone = getattr(model, "backbone", model)
    extra = {}
    if hasattr(model, "num_classes"):
        labels = list(labels) if labels is not None else [f"LABEL_{i}" for i in range(model.num_classes)]
        extra["id2label"] = {str(i): label for i, label in enumerate(labels)}
        extra["label2id"] = {label: i for i, label in enumerate(labels)}
    hf_config = huggingface.config_to_huggingface(backbone.config, architecture, **extra)

    table = huggingface_table("" if architecture == "BertModel" else "bert.")
    arrays, seen = {}, set()
    for variable in model.weights:
        if id(variable) in seen or (not keep_pooler and variable.path.startswith("pooler/")):
            continue
        seen.add(id(variable))
        foreign, transform = table.to_foreign(variable.path)
        value = np.asarray(variable.numpy(), dtype="float32")
        arrays[foreign] = to_foreign(value, transform, value.T.shape if transform == "T" else value.shape)
    huggingface.write_checkpoint(directory, hf_config, arrays)

    tokenizer = tokenizer or getattr(getattr(model, "preprocessor", None), "tokenizer", None)
    if tokenizer is not None:
        tokenizer.save_to_preset(directory)
    return directory


def copy_vocabulary(source_directory, directory):
    """Copies `vocab.txt` (and `tokenizer_config.json`) between preset folders, when present."""
    for name in ("vocab.txt", "tokenizer_config.json"):
        path = os.path.join(source_directory, name)
        if os.path.isfile(path):
            shutil.copyfile(path, os.path.join(directory, name))


def save_kbert(model, directory, tokenizer=None):
    """Writes a kbert save: `model.keras` (written whole or not at all), plus `vocab.txt` and
    `tokenizer_config.json` when a tokenizer is given or attached to the model."""
    save_model(model, os.path.join(directory, "model.keras"))
    tokenizer = tokenizer or getattr(getattr(model, "preprocessor", None), "tokenizer", None)
    if tokenizer is not None:
        tokenizer.save_to_preset(directory)
    return directory
