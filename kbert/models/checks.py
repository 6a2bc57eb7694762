"""Checks on model inputs that turn silent errors into clear ones.

JAX clamps out-of-range gather indices and TensorFlow's XLA does the same, so a token id above the vocabulary
would quietly read the wrong embedding. These checks run on concrete inputs (eager calls, `predict`,
`evaluate` and `fit` on arrays) and are skipped on symbolic or traced tensors, where they would cost a sync.
"""

import contextlib
import contextvars
import copy
import types

import keras
import numpy as np

from kbert.backend import concrete_value, torch_compiling
from kbert.inputs import INPUT_KEYS

_checked = contextvars.ContextVar("kbert_inputs_checked", default=False)


@contextlib.contextmanager
def inputs_already_checked():
    """Inside this block, per-call value checks are skipped (the data was checked once up front)."""
    token = _checked.set(True)
    try:
        yield
    finally:
        _checked.reset(token)


def check_input_keys(inputs, required=INPUT_KEYS):
    if not isinstance(inputs, dict):
        raise ValueError(
            f"BERT models take a dict of inputs with keys {list(required)}, got {type(inputs).__name__}; "
            f"tokenize and pack the text first (kbert.text) or pass raw strings to a model that has a "
            f"preprocessor"
        )
    missing = [key for key in required if key not in inputs]
    if missing:
        raise ValueError(
            f"missing input key(s) {missing}; got {sorted(inputs)}. BERT models need {list(required)}"
            + (" (mask_positions: indices of the masked tokens)" if "mask_positions" in missing else "")
        )


class InputError(ValueError):
    """A model input that cannot be right: an id out of range, a fractional id, mismatched shapes, bad text."""


def check_input_values(inputs, *, vocabulary_size, num_segments, max_sequence_length):
    """Raises `InputError` for out-of-range or fractional ids, mismatched shapes or too-long sequences, when
    `inputs` are concrete (not inside `inputs_already_checked`)."""
    if torch_compiling() or _checked.get():
        return
    values = {key: concrete_value(inputs[key]) for key in INPUT_KEYS if key in inputs}
    raise_on_bad_values(values, vocabulary_size, num_segments, max_sequence_length)


def raise_on_bad_values(values, vocabulary_size, num_segments, max_sequence_length):
    """The checks of `check_input_values` on a dict of NumPy arrays (None: not concrete, skipped)."""
    token_ids = values.get("token_ids")
    shapes = {key: tuple(value.shape) for key, value in values.items() if value is not None}
    if len(set(shapes.values())) > 1:
        raise InputError(
            f"the inputs differ in shape ({', '.join(f'{key} {shape}' for key, shape in shapes.items())}); "
            "token_ids, segment_ids and padding_mask must all be [batch, sequence_length]"
        )
    if token_ids is not None and token_ids.ndim >= 2 and token_ids.shape[1] > max_sequence_length:
        raise InputError(
            f"sequence length {token_ids.shape[1]} > max_sequence_length {max_sequence_length}; truncate "
            f"the input to {max_sequence_length} tokens or build the model with a larger max_sequence_length"
        )
    for key, name, limit, limit_name, hint in [
        ("token_ids", "token id", vocabulary_size, "vocabulary_size", "was the model built with a different vocab.txt?"),
        ("segment_ids", "segment id", num_segments, "num_segments", "BERT uses 0 for the first segment and 1 for the second"),
    ]:  # fmt: skip
        array = values.get(key)
        if array is None or array.size == 0:
            continue
        if array.dtype.kind not in "iub":
            if array.dtype.kind != "f":
                raise InputError(f"{key} has dtype {array.dtype}; pass integer ids (int32)")
            fractional = ~np.isfinite(array) | (array != np.floor(array))
            if fractional.any():
                where = tuple(int(i) for i in np.argwhere(fractional)[0])
                raise InputError(
                    f"{name} {float(array[where]):g} at {list(where)} is not a whole number; {key} must hold integer ids "
                    "(pass int32 arrays)"
                )
        high, low = int(np.max(array)), int(np.min(array))
        if high >= limit:
            raise InputError(f"{name} {high} >= {limit_name} {limit}; {hint}")
        if low < 0:
            raise InputError(f"negative {name} {low}; ids must be in [0, {limit})")


def checked_data(x, limits):
    """`x` with every batch's model inputs checked as it is read, for data that cannot be checked up front: a
    `tf.data.Dataset` (checked inside the input pipeline, on every backend), a Python generator, a
    `keras.utils.PyDataset` or a torch `DataLoader`. Anything else is returned as it is. A bad batch raises `InputError` from the data
    (through `input_errors_raised`), before the step that would have read it: JAX fills out-of-range gathers
    with NaN and XLA clamps them, so the step itself would fail silently."""

    def check_batch(batch):
        inputs = batch[0] if isinstance(batch, tuple | list) else batch
        if isinstance(inputs, dict):
            values = {key: concrete_value(inputs[key]) for key in INPUT_KEYS if key in inputs}
            raise_on_bad_values(values, **limits)
        return batch

    if _is_tf_dataset(x):
        return _checked_dataset(x, limits)
    if isinstance(x, types.GeneratorType):
        return (check_batch(batch) for batch in x)
    if isinstance(x, keras.utils.PyDataset):
        return _CheckedPyDataset(x, check_batch)
    if _is_torch_dataloader(x):
        # A copy whose collate function checks each batch; DataLoader allows setting collate_fn after __init__.
        loader = copy.copy(x)
        loader.collate_fn = _CheckedCollate(x.collate_fn, check_batch)
        return loader
    return x


def _is_torch_dataloader(x):
    return any(
        cls.__name__ == "DataLoader" and cls.__module__.startswith("torch.utils.data")
        for cls in type(x).__mro__
    )


class _CheckedCollate:
    """A DataLoader's collate function followed by a check of the batch (a class, so worker processes can pickle
    it when the collate function itself pickles)."""

    def __init__(self, collate, check):
        self.collate, self.check = collate, check

    def __call__(self, samples):
        return self.check(self.collate(samples))


def _is_tf_dataset(x):
    return any(
        cls.__name__ == "DatasetV2" and cls.__module__.startswith("tensorflow.") for cls in type(x).__mro__
    )


def _checked_dataset(dataset, limits):
    import tensorflow as tf

    @tf.autograph.experimental.do_not_convert
    def check_inputs(inputs):
        if not isinstance(inputs, dict) or "token_ids" not in inputs:
            return inputs
        keys = [key for key in INPUT_KEYS if key in inputs]

        def check(*arrays):
            raise_on_bad_values(dict(zip(keys, arrays, strict=True)), **limits)
            return arrays[0]

        token_ids = tf.numpy_function(check, [inputs[key] for key in keys], inputs["token_ids"].dtype)
        token_ids.set_shape(inputs["token_ids"].shape)
        return {**inputs, "token_ids": token_ids}

    @tf.autograph.experimental.do_not_convert
    def check_element(*element):
        if len(element) == 1:
            return check_inputs(element[0])
        return (check_inputs(element[0]), *element[1:])

    return dataset.map(check_element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class _CheckedPyDataset(keras.utils.PyDataset):
    """A `PyDataset` whose batches pass through `check` as they are read."""

    def __init__(self, inner, check):
        super().__init__(
            workers=inner.workers,
            use_multiprocessing=inner.use_multiprocessing,
            max_queue_size=inner.max_queue_size,
        )
        self.inner, self.check = inner, check

    def __getitem__(self, index):
        return self.check(self.inner[index])

    def __len__(self):
        return len(self.inner)

    @property
    def num_batches(self):
        return self.inner.num_batches

    def on_epoch_begin(self):
        self.inner.on_epoch_begin()

    def on_epoch_end(self):
        self.inner.on_epoch_end()


@contextlib.contextmanager
def input_errors_raised():
    """Turns an `InputError` raised inside a `tf.data` pipeline (which TensorFlow wraps in an `OpError` with the
    Python traceback as text) back into the `InputError` with its message."""
    try:
        yield
    except Exception as error:
        message = _input_error_message(error)
        if message is None:
            raise
        raise InputError(message) from None


def _input_error_message(error):
    if not type(error).__module__.startswith("tensorflow"):
        return None
    text = str(error)
    marker = f"{InputError.__name__}: "
    if marker not in text:
        return None
    return text.split(marker, 1)[1].splitlines()[0].strip()
