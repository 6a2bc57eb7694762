"""The backend-specific helpers, on each backend: concrete values are read (traced ones never forced), the
random state round-trips, cross-entropy matches Keras' (and its hits are top-1), the row bias adds, and large
buffers are reused after `import kbert` on JAX and PyTorch."""

import platform
import sys

import keras
import numpy as np
import pytest

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


def test_sparse_cross_entropy_matches_keras():
    from kbert.backend import sparse_cross_entropy

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 50)).astype("float32") * 4
    labels = rng.integers(0, 50, size=(2, 5))
    expected = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    got = sparse_cross_entropy(labels, logits)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(expected), rtol=1e-5
    )
    # Large logits neither overflow nor lose the label's term; bfloat16 logits (mixed precision) give float32.
    huge = np.array([[1e4, -1e4, 0.0], [30.0, 30.0, -1e4]], "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(sparse_cross_entropy(np.array([1, 0]), huge)),
        [2e4, np.log(2.0)],
        rtol=1e-6,
    )
    got = sparse_cross_entropy(np.array([1, 0]), keras.ops.cast(huge, "bfloat16"))
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(got), [19968.0, np.log(2.0)], rtol=1e-6
    )  # 1e4 -> 9984


def test_sparse_cross_entropy_hits_are_top1():
    from kbert.backend import sparse_cross_entropy

    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3, 6, 40)).astype("float32") * 3
    labels = rng.integers(0, 40, size=(3, 6))
    labels[0, 0] = logits[0, 0].argmax()  # at least one hit
    logits[1, 1, labels[1, 1]] = logits[1, 1].max()  # a tie with the top logit counts as a hit
    loss, hits = sparse_cross_entropy(labels, logits, return_hits=True)
    expected = np.take_along_axis(logits, labels[..., None], -1)[..., 0] >= logits.max(-1)
    assert expected[0, 0] and expected[1, 1] and not expected.all()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(hits), expected.astype("float32"))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loss),
        keras.ops.convert_to_numpy(sparse_cross_entropy(labels, logits)),
        rtol=1e-6,
    )


def test_add_row_bias_adds_and_its_bias_gradient_is_the_column_sum():
    from kbert.backend import add_row_bias

    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(6, 9)).astype("float32")
    bias = rng.normal(size=(9,)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(add_row_bias(matrix, bias)), matrix + bias, rtol=1e-6
    )
    if keras.config.backend() == "jax":  # the backend where it is a product (see its docstring)
        import jax

        weights = rng.normal(size=(6, 9)).astype("float32")
        gradient = jax.grad(lambda b: (add_row_bias(matrix, b) * weights).sum())(bias)
        np.testing.assert_allclose(np.asarray(gradient), weights.sum(0), rtol=1e-5)


REPEATED_LARGE_BUFFERS = """
import resource
import keras
import kbert

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def step():  # two 64 MB tensors of the backend made, used and dropped, as in a training step
    x = keras.ops.ones((16 << 20,), "float32")
    return float(keras.ops.convert_to_numpy(keras.ops.sum(x * 2.0)))

step()
before = faults()
for _ in range(4):
    step()
print(faults() - before)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc malloc only"
)
def test_large_buffers_are_reused_after_import_on_jax_and_torch():
    from kbert.backend import keep_large_allocations
    from tests.harness import run_in_backend

    backend = keras.config.backend()
    if backend == "tensorflow":
        assert not keep_large_allocations()  # TensorFlow's own allocator keeps its memory
        return
    # Unmapped when freed, each step's two buffers would fault in 32K fresh pages again: 131K over 4 steps.
    # Kept, 16K-49K (a backend thread that allocated before the import keeps an arena of its own).
    assert int(run_in_backend(backend, REPEATED_LARGE_BUFFERS).split()[-1]) < 66000


@pytest.mark.skipif(keras.config.backend() != "torch", reason="torch.compile: PyTorch only")
def test_sparse_cross_entropy_compiled_matches_eager_with_gradient():
    import torch

    from kbert.backend import sparse_cross_entropy

    rng = np.random.default_rng(1)
    labels = torch.tensor(rng.integers(0, 50, size=(3, 4)))
    values = rng.normal(size=(3, 4, 50)).astype("float32") * 4

    def loss_and_gradient(function):
        logits = torch.tensor(values, requires_grad=True)
        per_row = function(labels, logits)
        (per_row * torch.arange(12.0).reshape(3, 4)).sum().backward()
        return per_row.detach().numpy(), logits.grad.numpy()

    eager = loss_and_gradient(sparse_cross_entropy)
    compiled = loss_and_gradient(torch.compile(sparse_cross_entropy, fullgraph=True))
    np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-5)
    np.testing.assert_allclose(compiled[1], eager[1], rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="TensorFlow functions only")
def test_tensorflow_xla_compiling_only_inside_xla_functions():
    import tensorflow as tf

    from kbert.backend import tensorflow_xla_compiling

    seen = []

    def record():
        seen.append(tensorflow_xla_compiling())
        return tf.constant(0)

    record()
    tf.function(record)()
    tf.function(record, jit_compile=True)()
    assert seen == [False, False, True]


def test_matmul_add_equals_matmul_plus_bias_in_float32_and_bfloat16():
    """The dense layers' product with its bias (one fused call on PyTorch) equals the two-step result."""
    import keras

    from kbert.backend import matmul_add

    rng = np.random.default_rng(0)
    x, kernel, bias = rng.normal(size=(3, 5, 8)), rng.normal(size=(8, 6)), rng.normal(size=(6,))
    expected = x @ kernel + bias
    for dtype, tolerance in (("float32", 1e-5), ("bfloat16", 0.1)):
        args = [keras.ops.convert_to_tensor(value, dtype) for value in (x, kernel, bias)]
        result = keras.ops.convert_to_numpy(keras.ops.cast(matmul_add(*args), "float32"))
        assert result.shape == (3, 5, 6)
        np.testing.assert_allclose(result, expected, atol=tolerance, rtol=tolerance)
