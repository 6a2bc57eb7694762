"""Dropout whose mask compiles to fast code: XLA on TensorFlow and JAX, inductor on PyTorch.

Where Keras' dropout compiles to slow code (TensorFlow inside XLA, whose CPU backend compiles the auto-selected
random algorithm of `stateless_dropout` to a slow path; JAX, whose threefry bits are a 20-round cipher per element;
torch.compile, whose inductor draws torch's generator inside its kernels), the mask is a counter-based integer hash
of (element index, seed) instead: two rounds of lowbias32, a few vectorised integer ops per element. Where Keras'
dropout is fast (TensorFlow graph mode; eager PyTorch, where one ATen kernel beats a dozen eager integer ops) it is
kept. The mask is drawn from the layer's SeedGenerator: runs stay reproducible from a seed and resume with the same
masks.

Under torch.compile the seed is advanced with tensor ops rather than `SeedGenerator.next()`, which goes through
NumPy and would split the compiled step at every dropout layer; and the mask is a uint8 0/1 from a sign bit,
multiplied in, because inductor's CPU code writes a comparison's bool tensor an element at a time.

Measured in docs/performance.md, 'Dropout masks'.
"""

import math

import keras

from kbert.backend import int_bitwise_ops, tensorflow_xla_compiling, torch_compiling

# The two multipliers of the lowbias32 integer hash (C. Wellons' hash-prospector), as signed 32-bit values.
_HASH_MULTIPLIERS = (0x7FEB352D, 0x846CA68B - (1 << 32))


def _mix(x):
    """lowbias32 on int32 (wrapping multiplies; the right shift is arithmetic, so each is masked to be logical)."""
    xor, and_, shift = int_bitwise_ops()

    def xor_shifted(x, bits):
        return xor(x, and_(shift(x, bits), (1 << (32 - bits)) - 1))

    x = xor_shifted(x, 16) * _HASH_MULTIPLIERS[0]
    x = xor_shifted(x, 15) * _HASH_MULTIPLIERS[1]
    return xor_shifted(x, 16)


def _next_seed(seed_generator):
    """`seed_generator.next()` in tensor ops only (Keras' adds a NumPy array, which torch.compile cannot trace)."""
    state = seed_generator.state
    seed = state.value * 1
    state.assign(state.value + keras.ops.convert_to_tensor([0, 1], dtype=state.dtype))
    return seed


def _hash_keep_mask(inputs, keep_probability, seed_generator):
    """A uint8 mask shaped as `inputs`, 1 with probability `keep_probability` (to 2^-24), from a counter-based
    hash of (element index, seed): on JAX, inside TensorFlow's XLA functions and under torch.compile, which run
    it as a few vectorised integer ops per element. None elsewhere (Keras' dropout is used there).

    The mask is the sign bit of (24 hash bits - threshold), not a comparison: inductor's CPU code stores a
    comparison's bool tensor slowly. Measured in docs/performance.md, 'Dropout masks'."""
    compiled = keras.config.backend() == "jax" or torch_compiling() or tensorflow_xla_compiling()
    if not compiled or None in inputs.shape or math.prod(inputs.shape) >= 2**31:
        return None
    size = math.prod(inputs.shape)
    # uint32 seeds into int32 without saturating (as Keras' TensorFlow dropout folds them).
    seed = keras.ops.cast(keras.ops.mod(_next_seed(seed_generator), 2**31 - 1), "int32")
    xor, and_, shift = int_bitwise_ops()
    key = _mix(xor(_mix(seed[0]), seed[1]))
    bits = _mix(xor(_mix(keras.ops.arange(size, dtype="int32")), key))
    threshold = int(round(keep_probability * (1 << 24)))
    # -1 where the 24 bits fall below the threshold, else 0.
    kept = shift(and_(shift(bits, 8), 0xFFFFFF) - threshold, 31)
    return keras.ops.reshape(keras.ops.cast(and_(kept, 1), "uint8"), inputs.shape)


@keras.saving.register_keras_serializable(package="kbert")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` (same arguments, same expected output) with the fast mask above."""

    def call(self, inputs, training=False):
        if not training or self.rate <= 0 or self.rate >= 1 or self.noise_shape is not None:
            return super().call(inputs, training=training)
        keep = 1.0 - self.rate
        mask = _hash_keep_mask(inputs, keep, self.seed_generator)
        if mask is None:
            return super().call(inputs, training=training)
        return inputs / keras.ops.cast(keep, inputs.dtype) * keras.ops.cast(mask, inputs.dtype)
