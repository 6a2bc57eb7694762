"""Loading a saved kbert model into the TensorFlow-backend process that every edge export runs in.

A model trained on JAX or PyTorch is saved as a `.keras` file like any other; its weights load unchanged under
the TensorFlow backend, which is the only one whose graphs `tf.lite.TFLiteConverter` reads.
"""

import dataclasses
import json
import os

import keras

from kbert.interop import check_vocabulary, load_keras_file
from kbert.text import WordPieceTokenizer


class ExportError(ValueError):
    """An export that cannot produce a correct LiteRT file; the message names the cause and the fix."""


def require_tensorflow_backend():
    """Raises `RuntimeError` unless Keras runs on the TensorFlow backend."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"kbert.export converts TensorFlow graphs, but Keras runs on {keras.backend.backend()!r}: set "
            f"KERAS_BACKEND=tensorflow before importing keras (python export/tflite.py does). A model trained "
            f"on any backend loads there from its .keras file."
        )


@dataclasses.dataclass
class LoadedModel:
    """A model ready for export, with what the string-in file embeds.

    Attributes:
        model: the Keras model (a kbert backbone or task model).
        tokenizer: its `WordPieceTokenizer`, or None (then the file takes token ids only).
        labels: class names for classifiers, or None.
        source: where it came from (a path, or "<in memory>").
    """

    model: keras.Model
    tokenizer: WordPieceTokenizer | None = None
    labels: list | None = None
    source: str = "<in memory>"


def saved_model_paths(path):
    """`(folder, model_file)` of a kbert save folder (its `model.keras`) or a bare `.keras` file; `folder` is None
    for a file, `model_file` None when `path` is neither."""
    path = os.fspath(path)
    folder = path if os.path.isdir(path) else None
    model_path = os.path.join(path, "model.keras") if folder else path
    if not (model_path.endswith(".keras") and os.path.isfile(model_path)):
        return folder, None
    return folder, model_path


def load_model(path, vocabulary=None) -> LoadedModel:
    """Loads a kbert save folder (`model.keras`, `vocab.txt`, `labels.json`...) or a bare `.keras` file.

    Args:
        path: the folder or file.
        vocabulary: a `vocab.txt` for a bare `.keras` file whose model carries no preprocessor; it wins over the
            folder's and the model's own.

    Raises:
        RuntimeError: Keras is not on the TensorFlow backend.
        ExportError: `path` holds no kbert model.
    """
    require_tensorflow_backend()
    path = os.fspath(path)
    folder, model_path = saved_model_paths(path)
    if model_path is None:
        raise ExportError(
            f"{path!r} is neither a .keras file nor a kbert save folder (model.keras, vocab.txt); save the model "
            f"with model.save('model.keras') or kbert.interop.save_kbert(model, folder)"
        )
    model = load_keras_file(model_path)
    return wrap_model(model, vocabulary=vocabulary, folder=folder, source=path)


def wrap_model(model, tokenizer=None, labels=None, vocabulary=None, folder=None, source="<in memory>"):
    """A `LoadedModel` for an in-memory model: the tokenizer is `tokenizer`, else `vocabulary` (a vocab.txt), else
    the folder's `vocab.txt`, else the model's preprocessor's; labels from `labels` or the folder's `labels.json`."""
    vocabulary_source = "the given tokenizer"
    if tokenizer is None and vocabulary is not None:
        tokenizer, vocabulary_source = WordPieceTokenizer(vocabulary=vocabulary), os.fspath(vocabulary)
    if tokenizer is None and folder and os.path.isfile(os.path.join(folder, "vocab.txt")):
        tokenizer = WordPieceTokenizer.from_preset(folder)
        vocabulary_source = os.path.join(folder, "vocab.txt")
    if tokenizer is None:
        tokenizer = getattr(getattr(model, "preprocessor", None), "tokenizer", None)
        vocabulary_source = "the model's own vocabulary"
    if tokenizer is not None:
        try:
            check_vocabulary(model, tokenizer, vocabulary_source, source)
        except ValueError as error:
            raise ExportError(str(error)) from None
    if labels is None and folder and os.path.isfile(os.path.join(folder, "labels.json")):
        labels_path = os.path.join(folder, "labels.json")
        try:
            with open(labels_path, encoding="utf-8") as file:
                labels = json.load(file)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ExportError(
                f"{labels_path}: not a JSON list of class names ({error}); the fine-tuning recipe writes it"
            ) from None
        if isinstance(labels, dict):  # {"0": "name", ...} or {"name": 0, ...}
            labels = _labels_from_mapping(labels)
    num_classes = getattr(model, "num_classes", None)
    if labels is not None and num_classes is not None and len(labels) != num_classes:
        raise ExportError(f"{len(labels)} label names for a model with num_classes={num_classes}")
    return LoadedModel(
        model=model, tokenizer=tokenizer, labels=list(labels) if labels else None, source=source
    )


def _labels_from_mapping(mapping):
    if all(str(key).isdigit() for key in mapping):
        return [mapping[key] for key in sorted(mapping, key=int)]
    return [name for name, _ in sorted(mapping.items(), key=lambda item: int(item[1]))]
