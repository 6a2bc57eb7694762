"""Raw text through a task model's `fit`, `evaluate` and `predict`: tokenized once, run in batches of similar length.

Text comes as a list of strings (or a `(texts, text_pairs)` pair of lists), or, for corpora larger than memory, as
a stream of batches of them: a generator, a `keras.utils.PyDataset` or a `tf.data.Dataset` of string tensors
(`fit` and `evaluate`: `(texts, labels)` or `(texts, labels, sample_weight)` batches, Keras' convention). A stream is
read in pools of `POOL_BATCHES` batches, each pool tokenized at once and cut into batches of similar length (see
`kbert.data.batching`); predictions come back in input order.
"""

import dataclasses
import itertools
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from kbert.data.batching import (
    POOL_BATCHES,
    as_target_arrays,
    batches,
    cut_batches,
    dataset_of,
    length_groups,
    predict_in_length_order,
    real_lengths,
    sequence_axes,
)
from kbert.models.checks import InputError
from kbert.models.preprocessor import check_text, is_text

DEFAULT_BATCH_SIZE = 32  # Keras' default


@dataclasses.dataclass
class TextStream:
    """Batches whose first part is raw text. `start()` begins a pass over them (each a tuple `(texts, *targets)`,
    texts a list of strings or a pair of lists; a generator gives one pass only); `steps` is their number when
    known; `first` the first batch."""

    start: Callable
    steps: int | None
    first: tuple


def text_input(x):
    """`(text, x)`: `text` is `x` as a list of strings or a pair of lists, or a `TextStream`, or None for other
    data (then `x` is given back whole, a generator included). Text that is not all valid strings is refused
    (`check_text`)."""
    check_text(x)
    if is_text(x):
        return ([x] if isinstance(x, str) else x), x
    return _text_stream(x)


def _text_stream(x):
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        first = spec[0] if isinstance(spec, tuple) else spec
        parts = first if isinstance(first, tuple) else (first,)
        if not all(isinstance(part, tf.TensorSpec) and part.dtype == tf.string for part in parts):
            return None, x
        steps = int(x.cardinality())

        def start():
            return map(_from_tensors, x.as_numpy_iterator())

        return TextStream(start, steps if steps >= 0 else None, next(start())), x
    if isinstance(x, keras.utils.PyDataset):
        first = _as_tuple(x[0])
        if not _is_text_batch(first[0]):
            return None, x
        return TextStream(lambda: (_as_tuple(x[index]) for index in range(len(x))), len(x), first), x
    if hasattr(x, "__next__"):
        try:
            first = next(x)
        except StopIteration:
            raise InputError("the generator yielded no batch; it must yield batches of texts") from None
        whole = _chained(first, x)
        if not _is_text_batch(_as_tuple(first)[0]):
            return None, whole
        return TextStream(lambda: map(_as_tuple, whole), None, _as_tuple(first)), whole
    return None, x


def _chained(first, rest):
    """A generator (what Keras takes) of `first` then `rest`."""
    yield first
    yield from rest


def _is_text_batch(texts):
    return is_text(texts) and not isinstance(texts, str)


def _as_tuple(element):
    return element if isinstance(element, tuple) and not is_text(element) else (element,)


def _count(texts):
    return len(texts[0] if isinstance(texts, tuple) else texts)


def _from_tensors(element):
    """A `tf.data` element as NumPy: string tensors become lists of `str`."""
    element = _as_tuple(element)

    def decode(texts):
        return [text.decode("utf-8", errors="replace") for text in texts]

    texts = element[0]
    texts = tuple(decode(part) for part in texts) if isinstance(texts, tuple) else decode(texts)
    return (texts, *element[1:])


def _pools(batches):
    """Groups a stream of `(texts, *targets)` batches into pools of up to `POOL_BATCHES`: yields `(texts,
    targets, sizes)`, the pool's texts (and each target) joined, and the sizes of its batches."""
    while pool := list(itertools.islice(batches, POOL_BATCHES)):
        if isinstance(pool[0][0], tuple):
            texts = tuple([text for batch in pool for text in batch[0][part]] for part in range(2))
        else:
            texts = [text for batch in pool for text in batch[0]]
        parts = [as_target_arrays(batch[1:]) for batch in pool]
        targets = tuple(
            keras.tree.map_structure(lambda *arrays: np.concatenate(arrays), *[part[index] for part in parts])
            for index in range(len(pool[0]) - 1)
        )
        yield texts, targets, [_count(batch[0]) for batch in pool]


def _progress(model, callbacks, verbose, steps):
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    return keras.callbacks.CallbackList(
        callbacks,
        add_history=True,
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=1,
        steps=steps,
        model=model,
    )


def predict_text(model, text, batch_size=None, verbose="auto", steps=None, callbacks=None):
    """`model.predict` on raw text (`text` from `text_input`: a list, or a stream of batches): outputs in input
    order, as NumPy arrays. Sequence outputs span the longest packed row of the call, zero past each row's real
    tokens."""
    if isinstance(text, TextStream):
        source = text.start() if steps is None else itertools.islice(text.start(), steps)
        pools, steps = _pools(source), steps or text.steps
    else:
        batch_size = batch_size or DEFAULT_BATCH_SIZE
        pools, steps = [(text, (), [batch_size])], -(-_count(text) // batch_size)
    axes = sequence_axes(model)
    progress = _progress(model, callbacks, verbose, steps)
    done = [0]

    def on_batch(outputs):
        progress.on_predict_batch_begin(done[0])
        progress.on_predict_batch_end(done[0], {"outputs": outputs})
        done[0] += 1

    progress.on_predict_begin()
    parts = [
        predict_in_length_order(
            model.predict_on_batch,
            model.packed_text(texts),
            sizes[0],
            axes,
            on_batch,
            bool(model.jit_compile),
        )
        for texts, _, sizes in pools
    ]
    progress.on_predict_end()
    return _concatenate(parts, axes)


def _concatenate(parts, axes):
    """Joins the pools' outputs along the batch, their sequence axes padded with zeros to the longest."""
    if len(parts) == 1:
        return parts[0]

    def join(sequence, *arrays):
        widths = [
            max(a.shape[axis] for a in arrays) if axis in sequence else None for axis in range(arrays[0].ndim)
        ]
        padded = [
            np.pad(
                a, [(0, 0 if width is None else width - a.shape[axis]) for axis, width in enumerate(widths)]
            )
            for a in arrays
        ]
        return np.concatenate(padded)

    return keras.tree.map_structure(join, axes, *parts)


def training_data(model, text, y=None, sample_weight=None, batch_size=None, shuffle=False):
    """`fit`/`evaluate` data for raw text (`text` from `text_input`): a `tf.data.Dataset` of `(x, y)` or `(x, y,
    sample_weight)` batches of similar lengths, each cut to its longest; with `shuffle`, new batches in random
    order each epoch (drawn from NumPy's global generator, which `keras.utils.set_random_seed` seeds), as the
    fine-tuning recipe's."""
    seed = np.random.randint(2**31 - 1) if shuffle else 0
    compiled = bool(model.jit_compile)
    if not isinstance(text, TextStream):
        if y is None:
            raise InputError("raw texts for fit/evaluate need labels: pass y (one label per text)")
        _check_counts(text, (y,) if sample_weight is None else (y, sample_weight))
        packed = model.packed_text(text)
        return batches(packed, y, batch_size or DEFAULT_BATCH_SIZE, shuffle, seed, sample_weight, compiled)
    if y is not None or sample_weight is not None:
        raise InputError(
            "a stream of text batches carries its labels: yield (texts, labels) batches and pass no y or "
            "sample_weight"
        )
    stream = text
    if len(stream.first) < 2:
        raise InputError(
            "the stream yields texts without labels; for fit/evaluate yield (texts, labels) batches"
        )

    rng = np.random.default_rng(seed) if shuffle else None

    def generate():
        for texts, targets, sizes in _pools(stream.start()):
            _check_counts(texts, targets)
            packed = model.packed_text(texts)
            groups = length_groups(real_lengths(packed), sizes[0], rng)
            if len(groups) != len(sizes):  # batches of irregular sizes: kept as they come, one step each
                groups = np.split(np.arange(sum(sizes)), np.cumsum(sizes)[:-1])
            yield from cut_batches(packed, targets, groups, compiled)

    return dataset_of(generate, as_target_arrays(stream.first[1:]), stream.steps)


def _check_counts(texts, targets):
    count = _count(texts)
    for target in targets:
        for values in target.values() if isinstance(target, dict) else [target]:
            if len(values) != count:
                raise InputError(
                    f"{count} texts but {len(values)} labels (or sample weights); pass one per text"
                )
