"""Dropout whose mask compiles to fast code: XLA on TensorFlow and JAX, inductor on PyTorch.

Inside an XLA function, `keras.layers.Dropout` on TensorFlow calls `tf.nn.experimental.stateless_dropout`, whose
auto-selected random algorithm XLA's CPU backend compiles to a slow path: the masks of one encoder block (three
[16, 128, 256] and one [16, 4, 128, 128] tensor) take 357 ms there against 10 ms with the threefry algorithm. kbert
first drew them with threefry there (the L4/H256 MLM step, batch 16, seq 128, 2 cores: 450-495 -> 390-394 ms; no
dropout at all: 383-388 ms) and now with the integer hash below, as on JAX (interleaved runs, threefry/hash:
414/391 and 416/402 ms). Outside XLA (graph mode) Keras' dropout is fast (15 ms) and is kept there, as in eager
PyTorch. The mask is drawn from the layer's SeedGenerator: runs stay reproducible from a seed and resume with the
same masks.

On JAX, Keras' dropout draws its mask with `jax.random.bernoulli` (threefry bits): 2.3 ms for a [16, 4, 128, 128]
mask on 2 cores, and 32 ms of the same MLM step's forward + backward (510 ms with it, 480 ms without). There kbert
hashes (element index, seed) with two rounds of the lowbias32 integer hash instead, a counter-based generator like
threefry and philox but with 4 multiplies per element instead of their 20-round ciphers: 0.45 ms for that mask, and
the step with dropout runs as fast as without it.

Under `torch.compile` the same hash replaces Keras' dropout (torch's generator, drawn inside inductor's kernels;
with inductor's `fallback_random`, ATen's bernoulli_ takes 56 ms of the step). The whole compiled PyTorch MLM step,
interleaved runs: 528-568 -> 471-484 ms. The seed is advanced with tensor ops rather than `SeedGenerator.next()`, which goes through
NumPy and would split the compiled step at every dropout layer. Eager PyTorch keeps Keras' dropout (one ATen kernel
beats a dozen eager integer ops).

The hash's mask is a uint8 0/1 from a sign bit, multiplied in: inductor's CPU code writes a comparison's bool tensor
an element at a time, and the 13 bool masks of the step took 34 ms of its forward (interleaved runs, compiled
PyTorch step, old/new: fp32 534/453 and 563/475 ms, bf16 296/253 and 351/236 ms; JAX unchanged, 529/525 and
522/514 ms).
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
    comparison's bool tensor slowly (the 13 masks of the L4/H256 step, batch 16, seq 128: 34 ms as bool, 2.7 ms
    as uint8 from the sign bit)."""
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
