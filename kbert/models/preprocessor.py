"""`BertPreprocessor`: raw strings → model inputs, so task models take text in `fit`, `evaluate` and `predict`."""

import keras
import numpy as np

from kbert.models.checks import InputError
from kbert.text import WordPieceTokenizer
from kbert.text.packing import pack_texts


@keras.saving.register_keras_serializable(package="kbert")
class BertPreprocessor(keras.layers.Layer):
    """Tokenizes and packs text: one list of strings, or a `(texts, text_pairs)` tuple for sentence pairs.

    A call's texts are padded to the longest (at most `sequence_length`). Task models run raw text in batches of
    similar length, each cut to its longest (`kbert.models.raw_text`). Saved with the model (vocabulary as an
    asset).

    Args:
        tokenizer: a `kbert.WordPieceTokenizer`.
        sequence_length: the longest packed sequence; longer inputs are truncated longest-first.

    Example:
    ```python
    classifier.preprocessor = BertPreprocessor(tokenizer, sequence_length=128)
    classifier.predict(["some text", "another"])
    ```
    """

    def __init__(self, tokenizer=None, sequence_length=128, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.sequence_length = sequence_length
        self.tokenizer = tokenizer
        # No weights: built from the start. Unbuilt, it would make Keras' JAX `predict_on_batch` run the whole model
        # eagerly before the compiled step on every call (a task model tracks it as a sublayer).
        # Measured in docs/inference.md, 'Why JAX was three times slower'.
        self.built = True

    def preprocess(self, texts):
        """`{token_ids, segment_ids, padding_mask}` int32 NumPy arrays for a list of texts or a pair of lists."""
        if self.tokenizer is None:
            raise ValueError(
                "this preprocessor has no tokenizer (was it loaded without its vocabulary asset?)"
            )
        first, second = texts if isinstance(texts, tuple) and len(texts) == 2 else (texts, None)
        second = None if second is None else _as_strings(second)
        return pack_texts(self.tokenizer, _as_strings(first), second, self.sequence_length, pad_to_longest=True)

    def save_assets(self, dir_path):
        self.tokenizer.save_to_preset(dir_path)

    def load_assets(self, dir_path):
        self.tokenizer = WordPieceTokenizer.from_preset(dir_path)

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length}


def is_text(x) -> bool:
    """True for raw text inputs: a string, a list/array of strings, or a pair of those."""
    if isinstance(x, tuple) and len(x) == 2 and all(is_text(part) for part in x):
        return True
    if isinstance(x, str):
        return True
    if isinstance(x, list) and x and all(isinstance(item, str) for item in x):
        return True
    return isinstance(x, np.ndarray) and x.dtype.kind in "USO" and x.ndim == 1


_SCALARS = (str, bytes, int, float, bool, type(None), np.generic)


def check_text(x):
    """Raises `InputError` for what is meant as raw text but is not all strings (a list holding None or numbers,
    an empty list) or is not valid Unicode (a lone surrogate such as "\\ud800", which no encoder can write)."""
    if (
        isinstance(x, tuple)
        and len(x) == 2
        and all(isinstance(part, list | tuple | np.ndarray) for part in x)
    ):
        for part in x:
            check_text(list(part))
        if len(x[0]) != len(x[1]):
            raise InputError(
                f"{len(x[0])} texts but {len(x[1])} text pairs; a pair input is (texts, text_pairs) of equal length"
            )
        return
    if isinstance(x, np.ndarray) and x.dtype.kind in "OU" and x.ndim == 1:
        x = list(x)
    if isinstance(x, str):
        x = [x]
    if not isinstance(x, list):
        return
    if not x:
        raise InputError("got an empty list; pass at least one text (a list of strings)")
    if not all(isinstance(item, _SCALARS) for item in x):
        return  # a list of arrays or dicts: not text, left to Keras
    for index, item in enumerate(x):
        if not isinstance(item, str):
            raise InputError(
                f"text {index} is {item!r} ({type(item).__name__}), not a string; raw-text inputs are a list of "
                "strings (or a pair of lists), token inputs a dict of token_ids, segment_ids and padding_mask"
            )
        try:
            item.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InputError(
                f"text {index} holds {item[error.start]!r} at character {error.start}, a lone surrogate that is not "
                "valid Unicode; decode the source text with errors='replace' (or fix its encoding)"
            ) from None


def _as_strings(texts):
    if isinstance(texts, str):
        return [texts]
    return [str(text) for text in texts]
