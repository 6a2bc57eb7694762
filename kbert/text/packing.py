"""Packing token ids into BERT's fixed-length `[CLS] A [SEP] B [SEP]` inputs."""

import numpy as np
import tensorflow as tf


def _as_ragged(ids):
    if isinstance(ids, tf.RaggedTensor):
        return tf.cast(ids, tf.int32), False
    if (
        isinstance(ids, tf.Tensor)
        and ids.shape.rank == 1
        or (isinstance(ids, list) and ids and isinstance(ids[0], int))
    ):
        return tf.RaggedTensor.from_tensor(tf.cast(tf.convert_to_tensor(ids), tf.int32)[tf.newaxis]), True
    if isinstance(ids, list) and not ids:
        raise ValueError("cannot pack an empty batch; pass at least one sequence")
    ids = tf.ragged.constant(ids, dtype=tf.int32) if isinstance(ids, list) else ids
    if not isinstance(ids, tf.RaggedTensor):
        ids = tf.RaggedTensor.from_tensor(tf.cast(ids, tf.int32))
    return ids, False


def _keep_first(ids, counts):
    """Keeps the first `counts[i]` ids of row i of a ragged tensor."""
    positions = tf.ragged.range(ids.row_lengths())
    return tf.ragged.boolean_mask(ids, positions < tf.cast(counts, positions.dtype)[:, tf.newaxis])


def longest_first_lengths(first_length, second_length, budget):
    """`truncate_longest_first` for Python ints."""
    if first_length + second_length <= budget:
        return first_length, second_length
    first = min(first_length, max(budget - second_length, (budget + 1) // 2))
    return first, budget - first


def truncate_longest_first(first_lengths, second_lengths, budget):
    """Lengths after BERT's `_truncate_seq_pair`: drop from the end of the longer segment (B on ties).

    Args:
        first_lengths, second_lengths: int tensors `[batch]`.
        budget: the total that may remain (`sequence_length - 3` for pairs).

    Returns:
        The kept lengths `(first, second)`.
    """
    first_lengths = tf.cast(first_lengths, tf.int32)
    second_lengths = tf.cast(second_lengths, tf.int32)
    fits = first_lengths + second_lengths <= budget
    # Popping one token at a time from the longer ends with A = max(budget - B, ceil(budget / 2)), at most A.
    first_kept = tf.minimum(first_lengths, tf.maximum(budget - second_lengths, (budget + 1) // 2))
    first = tf.where(fits, first_lengths, first_kept)
    second = tf.where(fits, second_lengths, budget - first_kept)
    return first, second


class SegmentPacker:
    """Packs one or two segments of ids into `{token_ids, segment_ids, padding_mask}` of a fixed length.

    Layout `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`, then `[PAD]`; segment ids 0 for `[CLS] A [SEP]`, 1 for
    `B [SEP]`; padding mask 1 on real tokens. Too-long inputs are cut from the end with BERT's longest-first rule.
    Runs eagerly and inside tf.data (graph mode).

    Args:
        sequence_length: the fixed output length (at least 3 for pairs, 2 for single segments).
        cls_id, sep_id, pad_id: the special token ids (`tokenizer.cls_id` ...).

    Example:
    ```python
    packer = SegmentPacker(128, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    inputs = packer(tokenizer(["a question"]), tokenizer(["its context"]))
    inputs["token_ids"].shape  # (1, 128), int32
    ```
    """

    def __init__(self, sequence_length, cls_id, sep_id, pad_id):
        if sequence_length < 3:
            raise ValueError(
                f"sequence_length={sequence_length} leaves no room for [CLS] x [SEP] y [SEP]; use >= 3"
            )
        self.sequence_length = int(sequence_length)
        self.cls_id, self.sep_id, self.pad_id = int(cls_id), int(sep_id), int(pad_id)

    def __call__(self, first, second=None):
        """Packs a batch (ragged `[batch, None]`, dense, or lists of id lists), or one sequence (1-D).

        Returns:
            A dict of int32 tensors `token_ids`, `segment_ids`, `padding_mask`, each `[batch, sequence_length]`
            (or `[sequence_length]` for a 1-D input).
        """
        first, single = _as_ragged(first)
        batch = first.nrows()
        if second is None:
            kept_first = tf.minimum(tf.cast(first.row_lengths(), tf.int32), self.sequence_length - 2)
            kept_second = tf.zeros_like(kept_first)
            second = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([batch], tf.int64))
            num_separators = 1
        else:
            second, _ = _as_ragged(second)
            kept_first, kept_second = truncate_longest_first(
                first.row_lengths(), second.row_lengths(), self.sequence_length - 3
            )
            num_separators = 2
        first = _keep_first(first, kept_first)
        second = _keep_first(second, kept_second)
        cls = tf.fill([batch, 1], self.cls_id)
        sep = tf.fill([batch, 1], self.sep_id)
        pieces = [cls, first, sep] + ([second, sep] if num_separators == 2 else [])
        token_ids = tf.concat(pieces, axis=1)
        first_zeros = tf.zeros_like(tf.concat([cls, first, sep], axis=1))
        if num_separators == 2:
            segment_ids = tf.concat([first_zeros, tf.ones_like(tf.concat([second, sep], axis=1))], axis=1)
        else:
            segment_ids = first_zeros
        shape = [None, self.sequence_length]
        outputs = {
            "token_ids": token_ids.to_tensor(default_value=self.pad_id, shape=shape),
            "segment_ids": segment_ids.to_tensor(default_value=0, shape=shape),
            "padding_mask": tf.ones_like(token_ids).to_tensor(default_value=0, shape=shape),
        }
        if single:
            outputs = {key: value[0] for key, value in outputs.items()}
        return outputs


def pack_ids(tokenizer, first, second=None, sequence_length=128, pad_to_longest=False):
    """Packs id sequences (and optional second segments) into model inputs: the one packer every caller uses.

    Args:
        tokenizer: gives the special ids (`cls_id`, `sep_id`, `pad_id`).
        first, second: a batch of id sequences (ragged, or lists of id lists); `second` None for single texts.
        sequence_length: the longest output; longer inputs are cut longest-first (see `SegmentPacker`).
        pad_to_longest: pad to the longest packed row of the batch (at most `sequence_length`) instead of to
            `sequence_length`.

    Returns:
        `{token_ids, segment_ids, padding_mask}` int32 NumPy arrays [rows, length].
    """
    first, _ = _as_ragged(first)
    second = None if second is None else _as_ragged(second)[0]
    length = sequence_length
    if pad_to_longest:
        longest = int(first.row_lengths().numpy().max(initial=0)) + 2
        if second is not None:
            longest += int(second.row_lengths().numpy().max(initial=0)) + 1
        length = min(sequence_length, longest)
    packer = SegmentPacker(length, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    return {key: np.asarray(value, dtype=np.int32) for key, value in packer(first, second).items()}


def pack_texts(tokenizer, texts, pairs=None, sequence_length=128, pad_to_longest=False):
    """`pack_ids` of the tokenized `texts` (and `pairs`, a list of the same length, or None): raw strings to model
    inputs, `[CLS] text [SEP] (pair [SEP])`."""
    second = None if pairs is None else tokenizer(list(pairs))
    return pack_ids(tokenizer, tokenizer(list(texts)), second, sequence_length, pad_to_longest)
