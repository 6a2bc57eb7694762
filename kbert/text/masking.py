"""Masked-LM masking of packed batches, vectorised in TensorFlow (so tf.data re-masks every epoch for free).

BERT's rule (google-research/bert `create_masked_lm_predictions`): choose `min(max_predictions, max(1,
round(masked_lm_prob * n)))` of the `n` real tokens (never a special token), a whole word at a time with
whole-word masking; replace each chosen token by `[MASK]` 80 % of the time, a random token 10 %, itself 10 %.
kbert counts `n` without [CLS]/[SEP] (the original counted them). With whole-word masking the words are taken in
random order until the next one would not fit (the original skips it and tries further words), so a sequence can
get up to one word fewer than the budget.
"""

import tensorflow as tf


def mask_tokens(
    token_ids,
    seed,
    mask_id,
    special_ids,
    random_token_ids,
    max_predictions,
    masked_lm_prob=0.15,
    mask_token_rate=0.8,
    random_token_rate=0.1,
    word_starts=None,
):
    """Chooses and replaces masked-LM targets in a packed batch.

    Args:
        token_ids: int32 `[batch, length]` packed ids (with [CLS], [SEP], [PAD]).
        seed: int `[2]` seed of the stateless random ops; the same seed gives the same masks.
        mask_id: id of `[MASK]`.
        special_ids: 1-D ids that are never masked ([PAD], [CLS], [SEP], [MASK], [UNK]).
        random_token_ids: 1-D ids to draw the "random token" replacement from.
        max_predictions: the fixed number of target slots.
        masked_lm_prob: share of real tokens to predict.
        mask_token_rate: share of chosen tokens replaced by `[MASK]`.
        random_token_rate: share replaced by a random token (the rest keep their id).
        word_starts: optional bool `[batch, length]`, True where a word starts (not a "##" piece); given, whole
            words are masked together.

    Returns:
        A dict: `token_ids` (masked, int32 `[batch, length]`), `mask_positions` (int32 `[batch,
        max_predictions]`, 0 in unused slots), `mlm_ids` (the original ids there, 0 in unused slots) and
        `mlm_weights` (float32, 1.0 on used slots).
    """
    token_ids = tf.cast(token_ids, tf.int32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
    special_ids = tf.cast(tf.reshape(special_ids, [-1]), tf.int32)
    maskable = ~tf.reduce_any(token_ids[:, :, tf.newaxis] == special_ids, axis=-1)
    budget = _prediction_budget(maskable, max_predictions, masked_lm_prob)
    starts, word, num_slots = _word_ids(maskable, word_starts)
    chosen = _choose_words(maskable, starts, word, num_slots, budget, seeds[0])
    used, mask_positions, mlm_ids = _target_slots(token_ids, chosen, max_predictions)
    masked = _replace_chosen(
        token_ids, chosen, seeds[1], seeds[2], mask_id, random_token_ids, mask_token_rate, random_token_rate
    )
    return {
        "token_ids": masked,
        "mask_positions": tf.cast(mask_positions, tf.int32),
        "mlm_ids": tf.cast(mlm_ids, tf.int32),
        "mlm_weights": tf.cast(used, tf.float32),
    }


def _prediction_budget(maskable, max_predictions, masked_lm_prob):
    """Targets per row: `min(max_predictions, max(1, round(masked_lm_prob * n)))`, 0 for a row with no real token."""
    num_maskable = tf.reduce_sum(tf.cast(maskable, tf.int32), axis=1)
    budget = tf.cast(tf.round(tf.cast(num_maskable, tf.float32) * masked_lm_prob), tf.int32)
    return tf.minimum(max_predictions, tf.maximum(tf.minimum(num_maskable, 1), budget))


def _word_ids(maskable, word_starts):
    """Word starts `[batch, length]`, a word id per token unique across the batch, and the number of ids."""
    batch, length = tf.shape(maskable)[0], tf.shape(maskable)[1]
    # Words: a maskable token starts one when it is not a "##" piece or follows a special token.
    previous_maskable = tf.pad(maskable[:, :-1], [[0, 0], [1, 0]])
    starts = (
        maskable if word_starts is None else maskable & (tf.cast(word_starts, tf.bool) | ~previous_maskable)
    )
    row_offset = tf.range(batch)[:, tf.newaxis] * length
    word = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1 + row_offset  # [batch, length], unique per row
    num_slots = batch * length
    # Special tokens get words of their own (never chosen), so they never join the word before them.
    word = tf.where(maskable, word, num_slots + row_offset + tf.range(length)[tf.newaxis])
    return starts, word, num_slots * 2


def _choose_words(maskable, starts, word, num_slots, budget, seed):
    """True on the tokens of the words taken in random order (from `seed`) while they fit in each row's budget."""
    batch, length = tf.shape(maskable)[0], tf.shape(maskable)[1]
    # Each word gets a random rank; sorting by (rank, position) lists the words in random order, contiguously.
    score = tf.random.stateless_uniform([batch, length], seed, maxval=1 << 20, dtype=tf.int32)
    word_score = tf.math.unsorted_segment_max(tf.where(starts, score, -1), word, num_slots)
    position = tf.broadcast_to(tf.range(length)[tf.newaxis], [batch, length])
    key = tf.cast(tf.gather(word_score, word), tf.int64) * tf.cast(length, tf.int64) + tf.cast(
        position, tf.int64
    )
    key = tf.where(maskable, key, tf.int64.max)
    order = tf.argsort(key, axis=1, stable=True)
    sorted_maskable = tf.gather(maskable, order, batch_dims=1)
    sorted_word = tf.gather(word, order, batch_dims=1)
    count = tf.cumsum(tf.cast(sorted_maskable, tf.int32), axis=1)
    word_end_count = tf.gather(tf.math.unsorted_segment_max(count, sorted_word, num_slots), sorted_word)
    chosen_sorted = sorted_maskable & (word_end_count <= budget[:, tf.newaxis])
    return tf.gather(chosen_sorted, tf.argsort(order, axis=1), batch_dims=1)


def _target_slots(token_ids, chosen, max_predictions):
    """The chosen positions in increasing order, padded to max_predictions: `(used, mask_positions, mlm_ids)`."""
    batch, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
    position = tf.broadcast_to(tf.range(length)[tf.newaxis], [batch, length])
    ranked = tf.argsort(tf.where(chosen, position, position + length), axis=1)[:, :max_predictions]
    ranked = tf.pad(ranked, [[0, 0], [0, tf.maximum(max_predictions - length, 0)]])
    used = tf.gather(chosen, ranked, batch_dims=1) & (tf.range(max_predictions) < length)[tf.newaxis]
    mask_positions = tf.where(used, ranked, 0)
    mlm_ids = tf.where(used, tf.gather(token_ids, ranked, batch_dims=1), 0)
    return used, mask_positions, mlm_ids


def _replace_chosen(
    token_ids, chosen, draw_seed, index_seed, mask_id, random_token_ids, mask_token_rate, random_token_rate
):
    """The chosen tokens replaced by [MASK], by a random token from `random_token_ids`, or kept, at those rates."""
    batch, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
    draw = tf.random.stateless_uniform([batch, length], draw_seed)
    random_index = tf.random.stateless_uniform(
        [batch, length], index_seed, maxval=tf.size(random_token_ids), dtype=tf.int32
    )
    random_tokens = tf.gather(tf.cast(random_token_ids, tf.int32), random_index)
    masked = tf.where(chosen & (draw < mask_token_rate), mask_id, token_ids)
    return tf.where(
        chosen & (draw >= mask_token_rate) & (draw < mask_token_rate + random_token_rate),
        random_tokens,
        masked,
    )
