"""Batches of similar lengths: pool bucketing for training, the lengths a compiled step is cut to."""

import numpy as np
import pytest

from kbert.data.batching import POOL_BATCHES, length_groups, padded_length

pytestmark = pytest.mark.backend_independent


def test_training_batches_are_new_each_epoch_and_nearly_as_tight_as_sorted():
    """Pool bucketing: every example once per epoch, new batch companions each epoch, little padding."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, 64, size=POOL_BATCHES * 32 * 3 + 17)

    def padding(groups):
        return sum(int(lengths[g].max()) * len(g) for g in groups) / lengths.sum() - 1

    sorted_groups = length_groups(lengths, 32)
    epochs = [length_groups(lengths, 32, rng) for _ in range(2)]
    for groups in [sorted_groups, *epochs]:
        assert len(groups) == -(-len(lengths) // 32) and max(len(g) for g in groups) == 32
        assert sorted(np.concatenate(groups).tolist()) == list(range(len(lengths)))
    first, second = ({frozenset(g.tolist()) for g in groups} for groups in epochs)
    assert len(first & second) < len(first) // 10
    assert padding(sorted_groups) < 0.01
    assert padding(epochs[0]) < 0.05 < padding(np.array_split(np.arange(len(lengths)), len(sorted_groups)))


def test_compiled_steps_see_few_lengths_and_others_none_padded():
    lengths = range(1, 513)
    compiled = sorted({padded_length(length, compiled=True) for length in lengths})
    assert compiled == [8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
    assert all(0 <= padded_length(length, True) - length < max(8, length / 2) for length in lengths)
    assert [padded_length(length) for length in lengths] == list(lengths)
