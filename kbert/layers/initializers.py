"""BERT's weight initializer and activations, shared by every layer."""

import keras


def bert_initializer(initializer_range: float) -> keras.initializers.Initializer:
    """BERT initialises every kernel and embedding from a truncated normal with this standard deviation."""
    return keras.initializers.TruncatedNormal(stddev=initializer_range)


@keras.saving.register_keras_serializable(package="kbert")
def gelu_approximate(x):
    """The tanh approximation of GELU (KerasHub's BERT and GPT-2 use it); BERT itself uses the exact form."""
    return keras.activations.gelu(x, approximate=True)


def get_activation(name: str):
    """A Keras activation by name; "gelu" is the exact (erf) GELU, "gelu_approximate" the tanh form."""
    if name == "gelu_approximate":
        return gelu_approximate
    try:
        return keras.activations.get(name)
    except ValueError as error:
        raise ValueError(
            f"unknown activation {name!r}; use 'gelu' (BERT), 'gelu_approximate' or a Keras activation name"
        ) from error
