"""The TensorFlow functions that become LiteRT signatures: token ids in, or raw text in (tokenizer inside).

Everything here uses only ops that LiteRT has as builtins, plus the tensorflow-text ops its registrar provides
(`FastBertNormalize`, `FastWordpieceTokenizeWithOffsets`). Ragged-tensor ops (`RaggedRange`, `RaggedGather`,
int64 `UnsortedSegmentSum`) are not among them, so the string path keeps tokens as flat ids + row ids and packs
them into dense `[batch, length]` inputs with a scatter.
"""

import tensorflow as tf

from kbert.export.mediapipe import PROBABILITY
from kbert.inputs import INPUT_KEYS
from kbert.text import truncate_longest_first


def check_exportable(model):
    """Raises `ValueError` for models the exporter does not handle, naming the fix."""
    if not hasattr(model, "export_refusal"):
        raise ValueError(f"cannot export a {type(model).__name__}; kbert.export handles kbert models")
    if model.export_refusal:
        raise ValueError(model.export_refusal)
    backbone = getattr(model, "backbone", model)
    if backbone.output_attentions or (backbone.output_hidden_states and backbone is model):
        raise ValueError(
            "the backbone outputs hidden states/attentions (a distillation teacher); rebuild it without "
            "output_hidden_states/output_attentions for the edge"
        )


def named_outputs(model, outputs) -> dict:
    """The model's outputs as a flat dict of named float tensors (a single tensor under `model.output_name`)."""
    if isinstance(outputs, dict):
        return dict(outputs)
    return {model.output_name: outputs}


def token_ids_function(model, sequence_length=None, batch_size=1, probabilities=False):
    """A `tf.function` of `{token_ids, segment_ids, padding_mask}` (int32 [batch, seq]) → named outputs.

    Args:
        model: a kbert model.
        sequence_length: a fixed length, or None for a dynamic one (resize the interpreter's inputs).
        batch_size: a fixed batch, or None for a dynamic one.
        probabilities: a classifier's softmax as the one output `PROBABILITY` instead of its logits.
    """
    spec = {key: tf.TensorSpec([batch_size, sequence_length], tf.int32, name=key) for key in INPUT_KEYS}

    @tf.function(input_signature=[spec], autograph=False)
    def serve(inputs):
        outputs = named_outputs(model, model(inputs, training=False))
        if probabilities:
            return {PROBABILITY: tf.nn.softmax(tf.cast(outputs["logits"], tf.float32), axis=-1)}
        return outputs

    return serve


def pack_flat(first, second, batch, sequence_length, cls_id, sep_id, pad_id, pad_to_longest=False):
    """`kbert.SegmentPacker` on flat ids: `[CLS] A [SEP] (B [SEP])`, longest-first truncation, dense outputs.

    Args:
        first, second: `(flat_ids, row_ids)` from `WordPieceTokenizer.tokenize_litert_flat`; `second` may be None.
        batch: the number of rows (a scalar tensor).
        sequence_length: the maximum packed length.
        pad_to_longest: pad to the longest packed row instead of `sequence_length`.

    Returns:
        `{token_ids, segment_ids, padding_mask}`, int32 [batch, length].
    """

    def lengths(row_ids):
        return tf.math.unsorted_segment_sum(tf.ones_like(row_ids), row_ids, batch)

    first_lengths = lengths(first[1])
    if second is None:
        kept_first = tf.minimum(first_lengths, sequence_length - 2)
        kept_second = tf.zeros_like(kept_first)
        total = kept_first + 2
    else:
        kept_first, kept_second = truncate_longest_first(
            first_lengths, lengths(second[1]), sequence_length - 3
        )
        total = kept_first + kept_second + 3
    length = tf.reduce_max(total) if pad_to_longest else sequence_length

    def scatter_segment(flat_ids, row_ids, segment_lengths, kept, column_offset):
        row_starts = tf.cumsum(segment_lengths, exclusive=True)
        position = tf.range(tf.shape(row_ids)[0]) - tf.gather(row_starts, row_ids)
        keep = position < tf.gather(kept, row_ids)
        indices = tf.stack([row_ids, position + tf.gather(column_offset, row_ids)], axis=1)
        return tf.scatter_nd(tf.boolean_mask(indices, keep), tf.boolean_mask(flat_ids, keep), [batch, length])

    token_ids = scatter_segment(*first, first_lengths, kept_first, tf.ones_like(kept_first))
    column = tf.range(length)[tf.newaxis, :]  # [1, length]
    first_sep = (kept_first + 1)[:, tf.newaxis]
    is_separator = tf.equal(column, first_sep)
    segment_ids = tf.zeros_like(token_ids)
    if second is not None:
        token_ids += scatter_segment(*second, lengths(second[1]), kept_second, kept_first + 2)
        is_separator |= tf.equal(column, (total - 1)[:, tf.newaxis])
        segment_ids = tf.cast(column > first_sep, tf.int32)
    padding_mask = column < total[:, tf.newaxis]
    token_ids = tf.where(tf.equal(column, 0), cls_id, tf.where(is_separator, sep_id, token_ids))
    token_ids = tf.where(padding_mask, token_ids, pad_id)
    segment_ids = tf.where(padding_mask, segment_ids, 0)
    return {
        "token_ids": token_ids,
        "segment_ids": segment_ids,
        "padding_mask": tf.cast(padding_mask, tf.int32),
    }


def text_function(model, tokenizer, sequence_length, with_pair=False, pad_to_longest=True):
    """A `tf.function` of raw text (`text`, and `text_pair` when `with_pair`), string [1] → named outputs, plus
    `token_ids` (the packed ids, for checking the tokenizer on the device).

    One text a call: with a dynamic batch *and* a dynamic length, the attention mask's `[:, None, None, :]`
    becomes a StridedSlice that LiteRT cannot run as a builtin.
    """
    spec = [tf.TensorSpec([1], tf.string, name="text")]
    if with_pair:
        spec.append(tf.TensorSpec([1], tf.string, name="text_pair"))

    def serve(text, text_pair=None):
        batch = tf.shape(text)[0]
        first = tokenizer.tokenize_litert_flat(text)
        second = None if text_pair is None else tokenizer.tokenize_litert_flat(text_pair)
        inputs = pack_flat(
            first, second, batch, sequence_length, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id,
            pad_to_longest=pad_to_longest,
        )  # fmt: skip
        outputs = named_outputs(model, model(inputs, training=False))
        outputs["token_ids"] = inputs["token_ids"]
        return outputs

    if with_pair:
        return tf.function(
            lambda text, text_pair: serve(text, text_pair), input_signature=spec, autograph=False
        )
    return tf.function(lambda text: serve(text), input_signature=spec, autograph=False)
