"""BERT's activations: the exact (erf) GELU, its tanh approximation, and any Keras activation by name."""

import math

import keras


@keras.saving.register_keras_serializable(package="kbert")
def gelu(x):
    """BERT's exact GELU, x * Phi(x) = x * (1 + erf(x / sqrt(2))) / 2, as Keras' `gelu(approximate=False)`.

    On JAX it is written with erf here: Keras calls `jax.nn.gelu`, which goes through erfc, whose XLA CPU code
    is a branchy select chain. Other backends keep their fused kernel (PyTorch's runs eager in one op).
    Measured in docs/performance.md, 'Cross-entropy'.
    """
    if keras.config.backend() == "jax":
        return x * (0.5 + 0.5 * keras.ops.erf(x * (1.0 / math.sqrt(2.0))))
    return keras.activations.gelu(x, approximate=False)


@keras.saving.register_keras_serializable(package="kbert")
def gelu_approximate(x):
    """The tanh approximation of GELU (KerasHub's BERT and GPT-2 use it); BERT itself uses the exact form."""
    return keras.activations.gelu(x, approximate=True)


def get_activation(name: str):
    """A Keras activation by name; "gelu" is the exact (erf) GELU, "gelu_approximate" the tanh form."""
    if name == "gelu":
        return gelu
    if name == "gelu_approximate":
        return gelu_approximate
    try:
        return keras.activations.get(name)
    except ValueError as error:
        raise ValueError(
            f"unknown activation {name!r}; use 'gelu' (BERT), 'gelu_approximate' or a Keras activation name"
        ) from error
