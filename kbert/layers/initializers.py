"""BERT's weight initializer, shared by every layer."""

import keras


def bert_initializer(initializer_range: float) -> keras.initializers.Initializer:
    """BERT initialises every kernel and embedding from a truncated normal with this standard deviation."""
    return keras.initializers.TruncatedNormal(stddev=initializer_range)
