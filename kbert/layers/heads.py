"""Pooler and pretraining heads: masked-LM (tied to the token embedding) and the 2-way NSP/SOP head."""

import keras
from keras import ops

from kbert.backend import add_row_bias
from kbert.layers.activations import get_activation
from kbert.layers.initializers import bert_initializer


@keras.saving.register_keras_serializable(package="kbert")
class BertPooler(keras.layers.Layer):
    """tanh(W · h[CLS]): the pooled output of BERT. Input [batch, seq, hidden] → [batch, hidden]."""

    def __init__(self, hidden_dim, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            hidden_dim,
            activation="tanh",
            kernel_initializer=bert_initializer(initializer_range),
            dtype=self.dtype_policy,
            name="dense",
        )

    def build(self, sequence_output_shape):
        self.dense.build((sequence_output_shape[0], sequence_output_shape[-1]))
        self.built = True

    def call(self, sequence_output):
        return self.dense(sequence_output[:, 0, :])

    def get_config(self):
        config = super().get_config()
        config.update(hidden_dim=self.hidden_dim, initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="kbert")
class MaskedLMHead(keras.layers.Layer):
    """Dense → GELU → LayerNorm → transpose of the token embedding + bias, only at `mask_positions`.

    Computing logits only at the masked positions (not at every token) is what keeps the vocabulary
    projection from dominating a pretraining step.

    Args:
        token_embedding: the backbone's `keras.layers.ReversibleEmbedding`; its matrix is the decoder (tied).
        activation, layer_norm_epsilon, initializer_range: as in `kbert.BertConfig`.

    Call arguments:
        sequence_output: [batch, seq, hidden].
        mask_positions: int [batch, predictions], indices into seq.

    Returns:
        logits [batch, predictions, vocabulary_size].
    """

    def __init__(
        self, token_embedding, activation="gelu", layer_norm_epsilon=1e-12, initializer_range=0.02, **kwargs
    ):
        super().__init__(**kwargs)
        self.token_embedding = token_embedding
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        hidden_dim = token_embedding.output_dim
        self.transform = keras.layers.Dense(
            hidden_dim,
            activation=get_activation(activation),
            kernel_initializer=bert_initializer(initializer_range),
            dtype=self.dtype_policy,
            name="transform",
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )

    def build(self, sequence_output_shape, mask_positions_shape=None):
        hidden_dim = self.token_embedding.output_dim
        self.transform.build((None, None, hidden_dim))
        self.layer_norm.build((None, None, hidden_dim))
        self.bias = self.add_weight(name="bias", shape=(self.token_embedding.input_dim,), initializer="zeros")
        self.built = True

    def call(self, sequence_output, mask_positions):
        positions = ops.cast(mask_positions, "int32")[:, :, None]
        gathered = ops.take_along_axis(sequence_output, positions, axis=1)  # [batch, predictions, hidden]
        # [batch * predictions, hidden]: plain GEMMs, whose backward XLA's CPU runs faster than batched ones.
        hidden = self.layer_norm(self.transform(ops.reshape(gathered, (-1, self.token_embedding.output_dim))))
        # The tied decoder in the compute dtype: called inside this layer, the embedding (which does not autocast)
        # would hand over its float32 matrix and run the largest product of the step in float32 under bf16.
        kernel = ops.cast(self.token_embedding.embeddings, self.compute_dtype)
        logits = ops.matmul(ops.cast(hidden, self.compute_dtype), ops.transpose(kernel))
        logits = add_row_bias(logits, ops.cast(self.bias, self.compute_dtype))
        return ops.reshape(logits, (ops.shape(mask_positions)[0], ops.shape(mask_positions)[1], -1))

    def get_config(self):
        config = super().get_config()
        config.update(
            token_embedding=keras.layers.serialize(self.token_embedding),
            activation=self.activation,
            layer_norm_epsilon=self.layer_norm_epsilon,
            initializer_range=self.initializer_range,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["token_embedding"] = keras.layers.deserialize(config["token_embedding"])
        return cls(**config)
