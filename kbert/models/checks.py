"""Checks on model inputs that turn silent errors into clear ones.

JAX clamps out-of-range gather indices and TensorFlow's XLA does the same, so a token id above the vocabulary
would quietly read the wrong embedding. These checks run on concrete inputs (eager calls, `predict`,
`evaluate` and `fit` on arrays) and are skipped on symbolic or traced tensors, where they would cost a sync.
"""

import contextlib
import contextvars

import numpy as np

from kbert.backend import concrete_value, torch_compiling

INPUT_KEYS = ("token_ids", "segment_ids", "padding_mask")

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


def check_input_values(inputs, *, vocabulary_size, num_segments, max_sequence_length):
    """Raises ValueError for out-of-range ids or too-long sequences, when `inputs` are concrete."""
    if torch_compiling() or _checked.get():
        return
    token_ids = concrete_value(inputs["token_ids"])
    segment_ids = concrete_value(inputs["segment_ids"])
    if token_ids is not None and token_ids.ndim >= 2 and token_ids.shape[1] > max_sequence_length:
        raise ValueError(
            f"sequence length {token_ids.shape[1]} > max_sequence_length {max_sequence_length}; truncate "
            f"the input to {max_sequence_length} tokens or build the model with a larger max_sequence_length"
        )
    for name, values, limit, hint in [
        ("token id", token_ids, vocabulary_size, "was the model built with a different vocab.txt?"),
        ("segment id", segment_ids, num_segments, "BERT uses 0 for the first segment and 1 for the second"),
    ]:
        if values is None or values.size == 0:
            continue
        high, low = int(np.max(values)), int(np.min(values))
        if high >= limit:
            limit_name = "vocabulary_size" if name == "token id" else "num_segments"
            raise ValueError(f"{name} {high} >= {limit_name} {limit}; {hint}")
        if low < 0:
            raise ValueError(f"negative {name} {low}; ids must be in [0, {limit})")
