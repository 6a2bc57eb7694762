"""Writing kbert models as Hugging Face checkpoints (KerasHub: `kbert.interop.kerashub.save_kerashub`)."""

import os
import shutil

import numpy as np

from kbert.interop import huggingface
from kbert.interop.tables import huggingface_table, to_foreign

# kbert model → (Hugging Face architecture, whether it keeps the pooler): HF builds the MLM, token-classification
# and QA models without a pooler, so writing one would only produce "unused weights" warnings there.
ARCHITECTURES = {
    "BertBackbone": ("BertModel", True),
    "BertEmbedder": ("BertModel", True),
    "BertClassifier": ("BertForSequenceClassification", True),
    "BertTokenClassifier": ("BertForTokenClassification", False),
    "BertQuestionAnswerer": ("BertForQuestionAnswering", False),
}


def save_huggingface(model, directory, tokenizer=None, labels=None):
    """Writes `model` as a Hugging Face BERT folder that `transformers.AutoModel.from_pretrained` loads.

    Args:
        model: a kbert backbone or task model.
        directory: the output folder (`config.json`, `model.safetensors`, and `vocab.txt` +
            `tokenizer_config.json` when a tokenizer is given or attached to the model).
        tokenizer: a `kbert.text.WordPieceTokenizer` (default: the model's preprocessor's, if any).
        labels: class names for `id2label` (classifiers).
    """
    name = type(model).__name__
    if name == "BertPretrainer":
        architecture, keep_pooler = (
            ("BertForMaskedLM", False) if model.objective == "mlm" else ("BertForPreTraining", True)
        )
    elif name in ARCHITECTURES:
        architecture, keep_pooler = ARCHITECTURES[name]
    else:
        raise ValueError(f"{name} has no Hugging Face BERT equivalent")
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
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "model.keras")
    model.save(path + ".tmp.keras")
    os.replace(path + ".tmp.keras", path)
    tokenizer = tokenizer or getattr(getattr(model, "preprocessor", None), "tokenizer", None)
    if tokenizer is not None:
        tokenizer.save_to_preset(directory)
    return directory
