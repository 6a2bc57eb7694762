"""Loading a saved kbert model into the TensorFlow-backend process that every edge export runs in.

A model trained on JAX or PyTorch is saved as a `.keras` file like any other; its weights load unchanged under
the TensorFlow backend, which is the only one whose graphs `tf.lite.TFLiteConverter` reads. The loading itself is
the one loader of kbert saves, `kbert.models.presets.load_saved`.
"""

import keras

from kbert.models.presets import LoadedModel, load_saved, with_files

__all__ = ["ExportError", "LoadedModel", "load_model", "require_tensorflow_backend", "wrap_model"]


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


def load_model(path, vocabulary=None) -> LoadedModel:
    """`load_saved(path, vocabulary)` for an export: a kbert save folder (`model.keras`, `vocab.txt`,
    `labels.json`...) or a bare `.keras` file.

    Raises:
        RuntimeError: Keras is not on the TensorFlow backend.
        ExportError: `path` holds no kbert model, or its vocabulary or labels do not fit it.
    """
    require_tensorflow_backend()
    try:
        return load_saved(path, vocabulary=vocabulary)
    except ValueError as error:
        raise ExportError(str(error)) from None


def wrap_model(model, tokenizer=None, labels=None, vocabulary=None, folder=None, source="<in memory>"):
    """`with_files(...)` for an in-memory model, its errors as `ExportError`."""
    try:
        return with_files(model, tokenizer, labels, vocabulary, folder, source)
    except ValueError as error:
        raise ExportError(str(error)) from None
