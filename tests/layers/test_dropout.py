import keras
import numpy as np
import pytest

from kbert.layers import Dropout
from tests.harness import to_numpy


def _compiled_calls(layer, x, calls):
    """Masks drawn inside the backend's compiled training path, where kbert's own mask runs: XLA on TensorFlow,
    torch.compile on PyTorch (in one graph: a break at every dropout layer would cost the step), JAX as it is."""
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        step = tf.function(lambda v: layer(v, training=True), jit_compile=True)
        return [step(x).numpy() for _ in range(calls)]
    if keras.config.backend() == "torch":
        import torch

        step = torch.compile(lambda v: layer(v, training=True), fullgraph=True)
        x = torch.as_tensor(x)
        return [to_numpy(step(x)) for _ in range(calls)]
    return [to_numpy(layer(x, training=True)) for _ in range(calls)]


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_dropout_keeps_the_rate_and_the_expectation(rate):
    x = np.ones((64, 128, 32), "float32")
    first, second = _compiled_calls(Dropout(rate, seed=3), x, 2)
    for out in (first, second):
        kept = out != 0
        assert abs(kept.mean() - (1 - rate)) < 0.01  # 262,144 draws: the standard error is under 0.001
        np.testing.assert_allclose(out[kept], 1 / (1 - rate), rtol=1e-6)
    assert (first != second).any(), "each call must draw a new mask"
    # Same seed, same masks: what resuming a run relies on.
    again = _compiled_calls(Dropout(rate, seed=3), x, 2)
    np.testing.assert_array_equal(again[0], first)
    np.testing.assert_array_equal(again[1], second)


def test_dropout_is_the_identity_at_inference():
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    np.testing.assert_array_equal(to_numpy(Dropout(0.3)(x, training=False)), x)
    np.testing.assert_array_equal(to_numpy(Dropout(0.3)(x)), x)


def test_dropout_round_trips_through_a_keras_save(tmp_path):
    inputs = keras.Input((8,))
    model = keras.Model(inputs, Dropout(0.2, name="drop")(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("drop"), Dropout) and loaded.get_layer("drop").rate == 0.2


def test_masks_of_successive_calls_are_independent():
    """Two calls (and neighbouring elements of one mask) agree as often as independent draws would."""
    x = np.ones((256, 1024), "float32")
    first, second = (out != 0 for out in _compiled_calls(Dropout(0.5, seed=11), x, 2))
    assert abs((first == second).mean() - 0.5) < 0.01  # 262,144 pairs: the standard error is 0.001
    assert abs((first[:, 1:] == first[:, :-1]).mean() - 0.5) < 0.01
    assert abs((first[1:] == first[:-1]).mean() - 0.5) < 0.01
