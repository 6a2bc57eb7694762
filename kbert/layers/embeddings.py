"""Token + segment + position embeddings, followed by LayerNorm and dropout."""

import keras
import numpy as np
from keras import ops

from kbert.layers.dropout import Dropout
from kbert.layers.initializers import bert_initializer


def sinusoidal_table(length: int, dim: int) -> np.ndarray:
    """The fixed position table of "Attention Is All You Need": [length, dim], sines then cosines interleaved."""
    positions = np.arange(length, dtype=np.float64)[:, None]
    frequencies = np.power(10000.0, -np.arange(0, dim, 2, dtype=np.float64) / dim)[None, :]
    table = np.zeros((length, dim), dtype=np.float64)
    table[:, 0::2] = np.sin(positions * frequencies)
    table[:, 1::2] = np.cos(positions * frequencies)
    return table.astype("float32")


@keras.saving.register_keras_serializable(package="kbert")
class BertEmbeddings(keras.layers.Layer):
    """Sums token, segment and absolute position embeddings, then LayerNorm and dropout.

    Args:
        vocabulary_size, hidden_dim, max_sequence_length, num_segments, dropout, layer_norm_epsilon,
        initializer_range, position_embedding: as in `kbert.BertConfig`.

    Call arguments:
        token_ids: int tensor [batch, seq].
        segment_ids: int tensor [batch, seq].

    Returns:
        float tensor [batch, seq, hidden_dim].

    The token embedding is a `keras.layers.ReversibleEmbedding`, so the masked-LM head can decode with its
    transpose (weight tying, as BERT).
    """

    def __init__(
        self,
        vocabulary_size,
        hidden_dim,
        max_sequence_length,
        num_segments=2,
        dropout=0.1,
        layer_norm_epsilon=1e-12,
        initializer_range=0.02,
        position_embedding="learned",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.position_embedding = position_embedding

        initializer = bert_initializer(initializer_range)
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocabulary_size,
            hidden_dim,
            tie_weights=True,
            embeddings_initializer=initializer,
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.segment_embedding = keras.layers.Embedding(
            num_segments,
            hidden_dim,
            embeddings_initializer=initializer,
            dtype=self.dtype_policy,
            name="segment_embedding",
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy, name="dropout")

    def build(self, token_ids_shape, segment_ids_shape=None):
        self.token_embedding.build(token_ids_shape)
        self.segment_embedding.build(token_ids_shape)
        if self.position_embedding == "learned":
            self.position_embeddings = self.add_weight(
                name="position_embeddings",
                shape=(self.max_sequence_length, self.hidden_dim),
                initializer=bert_initializer(self.initializer_range),
            )
        else:
            table = sinusoidal_table(self.max_sequence_length, self.hidden_dim)
            self.position_embeddings = self.add_weight(
                name="position_embeddings",
                shape=table.shape,
                initializer=keras.initializers.Constant(table),
                trainable=False,
            )
        self.layer_norm.build((*token_ids_shape, self.hidden_dim))
        self.built = True

    def call(self, token_ids, segment_ids, training=None):
        sequence_length = token_ids.shape[1]
        if sequence_length is not None and sequence_length > self.max_sequence_length:
            raise ValueError(
                f"sequence length {sequence_length} > max_sequence_length {self.max_sequence_length}; "
                f"truncate the input to {self.max_sequence_length} tokens or build the model with a larger "
                f"max_sequence_length"
            )
        length = ops.shape(token_ids)[1]
        positions = ops.cast(self.position_embeddings[:length], self.compute_dtype)
        embeddings = (
            self.token_embedding(token_ids) + self.segment_embedding(segment_ids) + positions[None, :, :]
        )
        return self.dropout_layer(self.layer_norm(embeddings), training=training)

    def compute_output_shape(self, token_ids_shape, segment_ids_shape=None):
        return (*token_ids_shape, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            hidden_dim=self.hidden_dim,
            max_sequence_length=self.max_sequence_length,
            num_segments=self.num_segments,
            dropout=self.dropout,
            layer_norm_epsilon=self.layer_norm_epsilon,
            initializer_range=self.initializer_range,
            position_embedding=self.position_embedding,
        )
        return config
