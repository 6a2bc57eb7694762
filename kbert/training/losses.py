"""Sentence-pair losses for training `BertEmbedder` (the sentence-transformers recipes).

Both take the embeddings of a batch of pairs interleaved, `y_pred` [2 x pairs, dim] = a0, b0, a1, b1, ... (what
`kbert.data.batching.batches` yields for [pairs, 2, seq] inputs), so the embedder trains with plain `fit`.
"""

import keras
from keras import ops

from kbert.backend import sparse_cross_entropy


def _pairs(y_pred):
    y_pred = ops.cast(y_pred, "float32")
    pairs = ops.reshape(y_pred, (-1, 2, ops.shape(y_pred)[-1]))
    unit = pairs / ops.maximum(ops.sqrt(ops.sum(ops.square(pairs), axis=-1, keepdims=True)), 1e-12)
    return unit[:, 0], unit[:, 1]


@keras.saving.register_keras_serializable(package="kbert")
class CosineSimilarityLoss(keras.losses.Loss):
    """Mean squared error between cos(a, b) and the pair's score (y_true [pairs], in [-1, 1])."""

    def __init__(self, name="cosine_similarity_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        first, second = _pairs(y_pred)
        cosine = ops.sum(first * second, axis=-1)
        return ops.square(cosine - ops.cast(ops.reshape(y_true, (-1,)), "float32"))


@keras.saving.register_keras_serializable(package="kbert")
class InBatchNegativesLoss(keras.losses.Loss):
    """Softmax cross-entropy that picks each query's positive among all the batch's positives (the others are its
    negatives), on cosine similarities times `scale` (sentence-transformers' MultipleNegativesRankingLoss).
    `y_true` is unused (any [pairs] array)."""

    def __init__(self, scale=20.0, name="in_batch_negatives_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.scale = scale

    def call(self, y_true, y_pred):
        queries, positives = _pairs(y_pred)
        logits = self.scale * ops.matmul(queries, ops.transpose(positives))  # [pairs, pairs]
        targets = ops.arange(ops.shape(logits)[0])
        return sparse_cross_entropy(targets, logits)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
