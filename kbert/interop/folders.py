"""Model folders on disk: which format a folder holds (kbert, Hugging Face, KerasHub), its tokenizer, vocabulary and
label names, and `.keras` files read with errors that name the problem."""

import errno
import json
import logging
import os
import zipfile

import keras

from kbert.interop import huggingface, kerashub
from kbert.text import load_vocabulary

logger = logging.getLogger("kbert")

def preset_format(path) -> str:
    """Which format `path` is: "kbert", "huggingface" or "kerashub"; what kind of local folder (or .keras file) `path` is."""
    path = os.fspath(path)
    if path.endswith(".keras") and os.path.isfile(path):
        return "kbert"
    if not os.path.isdir(path):
        raise ValueError(f"preset {path!r} is not a folder or a .keras file (kbert loads local folders only)")
    if os.path.isfile(os.path.join(path, "model.keras")):
        return "kbert"
    if kerashub.is_preset(path):
        return "kerashub"
    if huggingface.is_checkpoint(path):
        return "huggingface"
    raise ValueError(
        f"{path!r} holds no model: expected model.keras (kbert), config.json + model.safetensors (Hugging Face) "
        f"or a KerasHub preset (config.json + model.weights.h5 + metadata.json)"
    )


def vocabulary_path(path):
    """The vocabulary file of a preset folder, or None."""
    for name in ("vocab.txt", os.path.join("assets", "tokenizer", "vocabulary.txt")):
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def preset_tokenizer(path):
    """The preset folder's `WordPieceTokenizer` (kbert, Hugging Face or KerasHub layout), or None."""
    from kbert.text import WordPieceTokenizer

    vocabulary = vocabulary_path(path)
    if vocabulary is None:
        return None
    kerashub_config = os.path.join(path, "tokenizer.json")
    if vocabulary.endswith("vocabulary.txt") and os.path.isfile(kerashub_config):
        with open(kerashub_config, encoding="utf-8") as file:
            lowercase = json.load(file).get("config", {}).get("lowercase", True)
        return WordPieceTokenizer(vocabulary=vocabulary, lowercase=lowercase)
    return WordPieceTokenizer.from_preset(path)


def check_vocabulary_size(path, config):
    """Raises `ValueError` when the folder's vocabulary has another size than the checkpoint's embedding."""
    vocabulary = vocabulary_path(path)
    if vocabulary is None:
        return
    size = len(load_vocabulary(vocabulary))
    if size != config.vocabulary_size:
        raise ValueError(
            f"{vocabulary!r} has {size} tokens but the checkpoint's embedding matrix has {config.vocabulary_size} "
            f"rows; the vocabulary does not belong to these weights"
        )


def load_keras_file(path):
    """`keras.models.load_model(path)` (safe mode), with an error that names a file that is not a `.keras` archive
    (Keras reports a truncated or foreign file as "File not found")."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, "no such file", path)
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a .keras file (not a zip archive: truncated, or another format); save models with "
            "model.save('model.keras')"
        )
    return keras.models.load_model(path)


def check_vocabulary(model, tokenizer, vocabulary_source, model_source):
    """Raises `ValueError` when `tokenizer`'s vocabulary is not the one `model` was trained with.

    A model that records its vocabulary (`KbertModel.vocabulary_record`: kbert saves since the record exists)
    must get exactly that vocabulary; otherwise the vocabulary must have as many tokens as the embedding has rows.
    The sources (paths) name the two sides in the message.
    """
    record = getattr(model, "vocabulary_record", None)
    size = tokenizer.vocabulary_size
    if record is not None and (size, tokenizer.vocabulary_sha256) != (
        record["vocabulary_size"],
        record["vocabulary_sha256"],
    ):
        raise ValueError(
            f"{vocabulary_source} ({size} tokens, sha256 {tokenizer.vocabulary_sha256[:12]}) is not the vocabulary "
            f"{model_source} was trained with ({record['vocabulary_size']} tokens, sha256 "
            f"{record['vocabulary_sha256'][:12]}); use the vocab.txt saved with that model"
        )
    rows = getattr(model, "backbone", model).config.vocabulary_size
    if size != rows:
        raise ValueError(
            f"{vocabulary_source} has {size} tokens but the embedding of {model_source} has {rows} rows; the "
            "vocabulary does not belong to these weights: use the vocab.txt saved with that model"
        )




def read_labels(folder):
    """The class names in a save folder's `labels.json` (a list, `{"0": name}` or `{name: 0}`), or None."""
    path = os.path.join(folder, "labels.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as file:
            labels = json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path}: not a JSON list of class names ({error}); the fine-tuning recipe writes it"
        ) from None
    if isinstance(labels, dict):
        if all(str(key).isdigit() for key in labels):
            return [labels[key] for key in sorted(labels, key=int)]
        return [name for name, _ in sorted(labels.items(), key=lambda item: int(item[1]))]
    return list(labels)
