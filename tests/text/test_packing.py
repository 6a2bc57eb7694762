"""SegmentPacker: layout, BERT's longest-first truncation, and use inside tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from kbert.text import SegmentPacker, truncate_longest_first

pytestmark = pytest.mark.backend_independent

CLS, SEP, PAD = 101, 102, 0


def bert_truncate(first, second, budget):
    """google-research/bert `_truncate_seq_pair`, popping from the end (the fine-tuning version)."""
    first, second = list(first), list(second)
    while len(first) + len(second) > budget:
        (first if len(first) > len(second) else second).pop()
    return first, second


def test_pair_layout():
    packed = SegmentPacker(10, CLS, SEP, PAD)([[5, 6]], [[7, 8, 9]])
    assert packed["token_ids"].numpy().tolist() == [[CLS, 5, 6, SEP, 7, 8, 9, SEP, PAD, PAD]]
    assert packed["segment_ids"].numpy().tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 0, 0]]
    assert packed["padding_mask"].numpy().tolist() == [[1, 1, 1, 1, 1, 1, 1, 1, 0, 0]]
    assert all(value.dtype == tf.int32 and value.shape == (1, 10) for value in packed.values())


def test_single_segment_and_one_dimensional_input():
    packed = SegmentPacker(6, CLS, SEP, PAD)([1, 2, 3, 4, 5, 6, 7])
    assert packed["token_ids"].numpy().tolist() == [CLS, 1, 2, 3, 4, SEP]
    assert packed["segment_ids"].numpy().tolist() == [0] * 6


def test_truncation_equals_bert_on_all_small_lengths():
    rng = np.random.default_rng(0)
    packer = SegmentPacker(12, CLS, SEP, PAD)
    lengths = [(a, b) for a in range(0, 15) for b in range(1, 15)]
    first = [list(rng.integers(1000, 2000, a)) for a, _ in lengths]
    second = [list(rng.integers(2000, 3000, b)) for _, b in lengths]
    packed = packer(tf.ragged.constant(first, tf.int32), tf.ragged.constant(second, tf.int32))
    for row, a, b in zip(packed["token_ids"].numpy(), first, second, strict=True):
        kept_a, kept_b = bert_truncate(a, b, 9)
        expected = [CLS, *kept_a, SEP, *kept_b, SEP]
        assert row.tolist() == expected + [PAD] * (12 - len(expected))
    kept = truncate_longest_first(tf.constant([10, 3]), tf.constant([10, 30]), 9)
    assert [k.numpy().tolist() for k in kept] == [[5, 3], [4, 6]]


def test_inside_tf_data_with_ragged_batches():
    dataset = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([[1, 2], [3, 4, 5, 6, 7]])).ragged_batch(
        2
    )
    packer = SegmentPacker(5, CLS, SEP, PAD)
    (batch,) = list(dataset.map(lambda ids: packer(ids, ids)))
    assert batch["token_ids"].numpy().tolist() == [[CLS, 1, SEP, 1, SEP], [CLS, 3, SEP, 3, SEP]]


def test_too_short_sequence_length_raises():
    with pytest.raises(ValueError, match="sequence_length=2"):
        SegmentPacker(2, CLS, SEP, PAD)
