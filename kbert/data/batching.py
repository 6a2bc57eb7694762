"""Batches of similar lengths, each cut to its longest row: how kbert runs text of varied length through a model.

Fine-tuning, distillation and the task models' `fit`, `evaluate` and `predict` on raw text all go through here:
examples are grouped by length (`length_groups`), each batch is cut to its longest real row (for a compiled step,
rounded up to one of few lengths: `padded_length`), and predictions come back in input order
(`predict_in_length_order`).
"""

import keras
import numpy as np
import tensorflow as tf

from kbert.inputs import INPUT_KEYS

# Shuffled batches are drawn from pools of this many batches' worth of examples (see `length_groups`).
POOL_BATCHES = 50


def length_groups(lengths, batch_size, rng=None):
    """Example indices in groups of `batch_size` (the last may be short) of similar lengths.

    Without `rng` (prediction): all examples sorted by length and cut in order, the least padding. With `rng`
    (training): a random permutation cut into pools of `POOL_BATCHES` batches, each pool sorted by length and
    cut into batches, the batches in random order; each call gives every example new batch companions at
    nearly the same padding (as Hugging Face's `group_by_length`). Either way ceil(examples / batch_size)
    groups.
    """
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    order, pool, groups = rng.permutation(len(lengths)), POOL_BATCHES * batch_size, []
    for start in range(0, len(order), pool):
        members = order[start : start + pool]
        members = members[np.argsort(lengths[members], kind="stable")]
        groups += [members[first : first + batch_size] for first in range(0, len(members), batch_size)]
    return [groups[index] for index in rng.permutation(len(groups))]


def padded_length(length, compiled=False):
    """The length a batch whose longest row has `length` tokens is cut to.

    A compiled step (XLA on JAX, or TensorFlow with `jit_compile`) compiles once per input shape (about 1 s for
    MiniLM on 2 CPU cores), so it gets one of 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512...: two lengths
    a doubling (above 16 tokens less than a third of padding), 12 shapes up to 512. A step that is not compiled
    (TensorFlow graph mode, eager PyTorch) gets `length` itself: padding would be work for nothing.
    """
    length = int(length)
    if not compiled:
        return length
    if length <= 16:
        return -(-length // 8) * 8
    size = 16
    while size < length:
        if size * 3 // 2 >= length:
            return size * 3 // 2
        size *= 2
    return size


def is_packed(inputs) -> bool:
    """True for one set of packed model inputs (a dict holding `token_ids`, `segment_ids`, `padding_mask`)."""
    return isinstance(inputs, dict) and set(INPUT_KEYS) <= set(inputs)


def _named_parts(inputs):
    """`{name: part}` of `inputs`: one set of packed inputs (named ""), or a dict of named parts, each packed
    inputs or an array taken whole (e.g. a teacher's precomputed outputs)."""
    return {"": inputs} if is_packed(inputs) else dict(inputs)


def real_lengths(inputs):
    """Each example's real tokens: the longest of its texts for [examples, k, seq_len] inputs, and the longest of
    its packed parts for named parts (see `batches`)."""
    parts = [part for part in _named_parts(inputs).values() if is_packed(part)]
    lengths = [np.asarray(part["padding_mask"]).sum(axis=-1) for part in parts]
    lengths = [length.max(axis=1) if length.ndim == 2 else length for length in lengths]
    return np.max(np.stack(lengths), axis=0)


def cut_batches(inputs, targets, groups, compiled=False):
    """Yields `(x, *targets)` for each group of example indices (from `length_groups`): `x` the packed rows cut to
    the group's longest (`padded_length(..., compiled)`; [examples, k, seq_len] inputs as [batch x k, length]
    rows; named parts each cut to its own longest, arrays taken whole), each target array taken at the group's
    rows (a 2-D target, per token, cut with the first packed inputs)."""
    parts = _named_parts(inputs)
    lengths = {name: real_lengths(part) for name, part in parts.items() if is_packed(part)}
    for group in groups:
        x, cut = {}, {}
        for name, part in parts.items():
            if name not in lengths:
                x[name] = np.asarray(part)[group]
                continue
            cut[name] = padded_length(lengths[name][group].max(), compiled)
            rows = {key: value[group, ..., : cut[name]] for key, value in part.items()}
            x[name] = {key: value.reshape(-1, value.shape[-1]) for key, value in rows.items()}
        length = next(iter(cut.values()))
        x = x[""] if "" in x else x
        yield (x, *keras.tree.map_structure(lambda a: _take(a, group, length), targets))  # noqa: B023


def _take(array, rows, length):
    return array[rows, :length] if array.ndim == 2 else array[rows]


def as_target_arrays(targets):
    """A tuple of labels (and sample weights: arrays, lists, or dicts of them) as NumPy arrays, float32 or int32."""

    def array(values):
        values = np.asarray(values)
        return values.astype(np.float32 if values.dtype.kind == "f" else np.int32)

    return tuple(
        {key: array(value) for key, value in target.items()} if isinstance(target, dict) else array(target)
        for target in targets
    )


def dataset_of(generate, targets, steps=None, inputs=None):
    """A `tf.data.Dataset` over `generate()` (which yields `(x, *targets)` as `cut_batches`), of `steps` batches
    when known; `inputs` (named parts, see `batches`) gives the structure of `x` when it is not one set of packed
    inputs."""
    def array_spec(a):
        return tf.TensorSpec([None] * a.ndim, tf.as_dtype(a.dtype))

    packed_spec = {key: tf.TensorSpec([None, None], tf.int32) for key in INPUT_KEYS}
    if inputs is None or is_packed(inputs):
        spec = packed_spec
    else:
        spec = {name: packed_spec if is_packed(part) else array_spec(np.asarray(part)) for name, part in inputs.items()}
    target_spec = keras.tree.map_structure(array_spec, targets)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=(spec, *target_spec))
    if steps is not None:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    return dataset.prefetch(tf.data.AUTOTUNE)


def device_rows(group, devices):
    """A group's rows padded to a multiple of `devices` (its first row repeated), and a weight per row: 1, and 0 on
    the repeats, so that every device of a data-parallel step gets its share and the repeats count in no loss."""
    pad = -len(group) % devices
    rows = np.concatenate([group, np.repeat(group[:1], pad)])
    return rows, np.concatenate([np.ones(len(group), np.float32), np.zeros(pad, np.float32)])


def batches(packed, labels, batch_size, shuffle, seed, sample_weight=None, compiled=False, devices=1):
    """A `tf.data.Dataset` of `(x, y)` (or `(x, y, sample_weight)`) batches of similar lengths, each cut to its
    longest (`padded_length(..., compiled)`: pass the `jit_compile` of the model that trains on them): the one
    length-bucketed batcher of fine-tuning, distillation and the models' `fit` on raw text.

    Args:
        packed: int32 arrays `token_ids`, `segment_ids`, `padding_mask`, [examples, seq_len]; or [examples, k,
            seq_len] for k texts per example (embedding pairs), yielded as [batch x k, length] rows, the texts of
            an example next to each other. Or named parts `{name: packed inputs or an array [examples, ...]}`
            (the `Distiller`'s teacher and student inputs, a teacher's precomputed outputs): `x` then holds each
            part, packed ones cut to their own longest, and batches group the longest of an example's parts.
        labels: an array [examples], or [examples, seq_len] (per token: cut with the inputs), or a dict of them.
        shuffle: new batches each epoch, in random order (drawn from `seed`; see `length_groups`); else the
            examples sorted by length.
        sample_weight: None, or a float array [examples] (or [examples, seq_len], cut as per-token labels).
        devices: the devices a data-parallel step splits each batch over: a batch of other size (the one short
            batch of an epoch) is padded to a multiple with weight-0 rows (`device_rows`), and the batches always
            carry a sample weight. Single packed inputs [examples, seq_len] only.
    """
    if devices > 1:
        return _device_batches(packed, labels, batch_size, shuffle, seed, sample_weight, compiled, devices)
    targets = as_target_arrays((labels,) if sample_weight is None else (labels, sample_weight))
    lengths, rng = real_lengths(packed), np.random.default_rng(seed)
    steps = -(-len(lengths) // batch_size)

    def generate():
        groups = length_groups(lengths, batch_size, rng if shuffle else None)
        return cut_batches(packed, targets, groups, compiled)

    return dataset_of(generate, targets, steps, packed)


def _device_batches(packed, labels, batch_size, shuffle, seed, sample_weight, compiled, devices):
    """`batches` for a data-parallel step over `devices`: each group padded to a multiple of them."""
    if not is_packed(packed) or np.asarray(packed["token_ids"]).ndim != 2 or batch_size % devices:
        raise ValueError(
            f"data-parallel batches need one text (or pair) per example and a batch_size divisible by the "
            f"{devices} devices; got batch_size={batch_size}"
        )
    rows_total = len(np.asarray(packed["token_ids"]))
    weights = np.ones(rows_total, np.float32) if sample_weight is None else sample_weight
    targets = as_target_arrays((labels, weights))
    lengths, rng = real_lengths(packed), np.random.default_rng(seed)

    def generate():
        padded = [device_rows(group, devices) for group in length_groups(lengths, batch_size, rng if shuffle else None)]
        cut = cut_batches(packed, targets, [rows for rows, _ in padded], compiled)
        for (x, y, weight), (_, keep) in zip(cut, padded, strict=True):
            yield x, y, weight * (keep[:, None] if weight.ndim == 2 else keep)

    return dataset_of(generate, targets, -(-rows_total // batch_size))


def sequence_axes(model):
    """For each output of the functional `model`, the axes (after the batch) of unknown size: the sequence axes
    (`sequence_output` [batch, seq, dim]: {1}; attention [batch, heads, seq, seq]: {2, 3}; logits: {}), as
    frozensets (leaves of `keras.tree`, where a tuple would be a node)."""
    return keras.tree.map_structure(
        lambda tensor: frozenset(axis for axis in range(1, len(tensor.shape)) if tensor.shape[axis] is None),
        model.output,
    )


def predict_in_length_order(predict_batch, packed, batch_size, axes, on_batch=None, compiled=False):
    """`predict_batch`'s outputs for the packed rows [rows, seq_len], run in length-sorted batches, in input order.

    Each batch is cut to its longest row (`padded_length(..., compiled)`); a short last batch repeats its first
    row, so every batch of one length has one shape (one compilation). Outputs with sequence axes (`axes`,
    from `sequence_axes`) span `seq_len` and hold 0 at the positions past each row's real tokens (where a model
    run on padded rows gives values computed on [PAD] tokens, which depend on the padding).

    Args:
        predict_batch: a function from a dict of int32 arrays [batch, length] to an output structure of arrays.
        on_batch: called with each batch's outputs (Keras' progress bar), or None.

    Returns:
        The output structure of NumPy arrays [rows, ...].
    """
    lengths = real_lengths(packed)
    width = np.asarray(packed["token_ids"]).shape[-1]
    groups = length_groups(lengths, batch_size)
    results = None
    for group in groups:
        length = min(width, padded_length(lengths[group].max(), compiled))
        rows = np.concatenate([group, np.repeat(group[:1], batch_size - len(group))])
        outputs = predict_batch({key: np.asarray(value)[rows, :length] for key, value in packed.items()})
        outputs = keras.tree.map_structure(keras.ops.convert_to_numpy, outputs)
        if results is None:
            results = keras.tree.map_structure(
                lambda a, sequence: np.zeros(
                    (
                        len(lengths),
                        *(width if axis in sequence else size for axis, size in enumerate(a.shape[1:], 1)),
                    ),
                    a.dtype,
                ),
                outputs,
                axes,
            )
        mask = np.asarray(packed["padding_mask"])[group, :length].astype(bool)
        keras.tree.map_structure(
            lambda result, a, sequence: _place(result, a[: len(group)], group, sequence, mask),  # noqa: B023
            results,
            outputs,
            axes,
        )
        if on_batch is not None:
            on_batch(outputs)
    return results


def predict_windows(model, packed, batch_size):
    """A functional model's outputs for packed windows [windows, seq_len], run in length-sorted batches and
    returned in input order (an array, or a dict of arrays, [windows, ...]; sequence outputs span seq_len, zero
    past each window's real tokens)."""
    return predict_in_length_order(
        model.predict_on_batch, packed, batch_size, sequence_axes(model), compiled=bool(model.jit_compile)
    )


def _place(result, batch, rows, sequence, mask):
    """result[rows] = batch, where `batch` is cut short on the `sequence` axes and zeroed where `mask` [rows,
    length] marks padding along any of them."""
    for axis in sequence:
        batch = np.where(np.expand_dims(mask, [a for a in range(1, batch.ndim) if a != axis]), batch, 0)
    index = (
        rows,
        *(slice(0, batch.shape[axis]) if axis in sequence else slice(None) for axis in range(1, batch.ndim)),
    )
    result[index] = batch
