"""BERT's GELU: the exact (erf) form on every backend, as Keras and Hugging Face compute it."""

import math

import keras
import numpy as np

from kbert.layers.activations import get_activation


def test_gelu_is_the_exact_erf_form():
    x = np.linspace(-12, 12, 4001).astype("float32")
    got = keras.ops.convert_to_numpy(get_activation("gelu")(keras.ops.convert_to_tensor(x)))
    erf = np.vectorize(math.erf)
    reference = x * 0.5 * (1.0 + erf(x.astype("float64") / math.sqrt(2.0)))  # Hugging Face's "gelu"
    np.testing.assert_allclose(got, reference, atol=2e-6)
    keras_gelu = keras.ops.convert_to_numpy(keras.activations.gelu(keras.ops.convert_to_tensor(x)))
    np.testing.assert_allclose(got, keras_gelu, atol=2e-6)
    approximate = keras.ops.convert_to_numpy(
        get_activation("gelu_approximate")(keras.ops.convert_to_tensor(x))
    )
    assert np.abs(approximate - reference).max() > 1e-4  # the tanh form is a different function


def test_gelu_layer_saves_and_loads(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation=get_activation("gelu"))(inputs))
    path = str(tmp_path / "gelu.keras")
    model.save(path)
    x = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.models.load_model(path)(x)),
        keras.ops.convert_to_numpy(model(x)),
        atol=1e-6,
    )
