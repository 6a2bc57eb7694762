"""The post-LayerNorm Transformer encoder block of BERT."""

import keras
from keras import ops

from kbert.layers.activations import get_activation
from kbert.layers.attention import MultiHeadSelfAttention
from kbert.layers.dense import Dense
from kbert.layers.dropout import Dropout
from kbert.layers.initializers import bert_initializer


@keras.saving.register_keras_serializable(package="kbert")
class BertEncoderBlock(keras.layers.Layer):
    """x = LN(x + Dropout(Attention(x))); x = LN(x + Dropout(W2 · GELU(W1 · x))).

    Call arguments:
        hidden_states: [batch, seq, hidden_dim].
        attention_mask: bool [batch, seq], True at real tokens.
        training: Python bool.
        return_attention: also return attention probabilities [batch, heads, seq, seq].
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        intermediate_dim,
        dropout=0.1,
        attention_dropout=0.1,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        initializer_range=0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range

        policy = self.dtype_policy
        initializer = bert_initializer(initializer_range)
        self.attention = MultiHeadSelfAttention(
            hidden_dim, num_heads, attention_dropout, initializer_range, dtype=policy, name="attention"
        )
        self.attention_dropout_layer = Dropout(dropout, dtype=policy, name="attention_output_dropout")
        self.attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=policy, name="attention_layer_norm"
        )
        self.intermediate = Dense(
            intermediate_dim,
            activation=get_activation(activation),
            kernel_initializer=initializer,
            dtype=policy,
            name="intermediate",
        )
        self.output_dense = Dense(hidden_dim, kernel_initializer=initializer, dtype=policy, name="output")
        self.output_dropout = Dropout(dropout, dtype=policy, name="output_dropout")
        self.output_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=policy, name="output_layer_norm"
        )

    def build(self, hidden_states_shape, attention_mask_shape=None):
        self.attention.build(hidden_states_shape)
        self.attention_layer_norm.build(hidden_states_shape)
        self.intermediate.build(hidden_states_shape)
        self.output_dense.build((*hidden_states_shape[:-1], self.intermediate_dim))
        self.output_layer_norm.build(hidden_states_shape)
        self.built = True

    def call(self, hidden_states, attention_mask, training=None, return_attention=False):
        attended = self.attention(
            hidden_states, attention_mask, training=training, return_attention=return_attention
        )
        if return_attention:
            attended, probabilities = attended
        attended = self.attention_dropout_layer(attended, training=training)
        hidden_states = self.attention_layer_norm(hidden_states + attended)
        # The feed-forward on [B*T, hidden]: plain GEMMs (see MultiHeadSelfAttention).
        shape = ops.shape(hidden_states)
        flat = ops.reshape(hidden_states, (-1, self.hidden_dim))
        feed_forward = ops.reshape(self.output_dense(self.intermediate(flat)), shape)
        feed_forward = self.output_dropout(feed_forward, training=training)
        hidden_states = self.output_layer_norm(hidden_states + feed_forward)
        return (hidden_states, probabilities) if return_attention else hidden_states

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            activation=self.activation,
            layer_norm_epsilon=self.layer_norm_epsilon,
            initializer_range=self.initializer_range,
        )
        return config
