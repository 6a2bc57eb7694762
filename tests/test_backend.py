"""The backend-specific helper, on each backend: concrete values are read, traced ones never forced."""

import keras
import numpy as np

from kbert.backend import concrete_value


def test_concrete_inputs_are_read():
    values = np.arange(6, dtype="int32").reshape(2, 3)
    np.testing.assert_array_equal(concrete_value(values), values)
    np.testing.assert_array_equal(concrete_value(keras.ops.convert_to_tensor(values)), values)
    np.testing.assert_array_equal(concrete_value([[1, 2]]), [[1, 2]])


def test_symbolic_and_traced_inputs_are_skipped():
    assert concrete_value(keras.KerasTensor((2, 3), dtype="int32")) is None
    seen = []

    def probe(x):
        seen.append(concrete_value(x))
        return x + 1

    backend = keras.config.backend()
    if backend == "jax":
        import jax

        jax.jit(probe)(np.ones((2, 3), "int32"))
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.function(probe)(tf.ones((2, 3), tf.int32))
    else:
        # What torch.export and torch.compile trace with: fake and meta tensors.
        import torch
        from torch._subclasses.fake_tensor import FakeTensorMode

        with FakeTensorMode():
            probe(torch.ones(2, 3, dtype=torch.int32))
        probe(torch.ones(2, 3, dtype=torch.int32, device="meta"))
    assert seen and all(value is None for value in seen)


def test_global_random_state_round_trip():
    from kbert.backend import global_random_state, set_global_random_state

    state = global_random_state()
    if keras.config.backend() != "torch":
        assert state is None  # dropout draws from the layers' own SeedGenerator variables there
        return
    import torch

    first = torch.rand(5)
    set_global_random_state(state)
    np.testing.assert_array_equal(torch.rand(5).numpy(), first.numpy())
