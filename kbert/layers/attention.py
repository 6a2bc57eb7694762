"""Multi-head self-attention: one fused path and one explicit path that agree.

Shape legend: B batch, T query positions, S key positions, N heads, H head size.
"""

import math

import keras
from keras import ops

from kbert.backend import torch_compiling
from kbert.layers.dense import Dense
from kbert.layers.dropout import Dropout
from kbert.layers.initializers import bert_initializer

# Added to the logits of padded keys on the explicit path. Large enough that exp() underflows to exactly 0
# in float32, small enough to survive int8 quantization after a clip (see PEERS.md D6).
MASK_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="kbert")
class MultiHeadSelfAttention(keras.layers.Layer):
    """BERT's self-attention: query/key/value projections, scaled dot product, output projection.

    Attention goes through `keras.ops.dot_product_attention` (fused, flash where the backend has it) unless the
    caller needs the probabilities (`return_attention=True`), attention dropout is active (training with
    `attention_dropout > 0`) or torch.compile traces the call; then one explicit softmax path computes them in
    float32.

    Call arguments:
        hidden_states: [B, T, hidden_dim].
        attention_mask: bool [B, S], True at real (non-padding) tokens.
        training: Python bool.
        return_attention: also return the probabilities [B, N, T, S] (float32).
    """

    def __init__(self, hidden_dim, num_heads, attention_dropout=0.1, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} does not divide hidden_dim={hidden_dim}")
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads
        self.attention_dropout = attention_dropout
        self.initializer_range = initializer_range

        def dense(name):
            return Dense(
                hidden_dim,
                kernel_initializer=bert_initializer(initializer_range),
                dtype=self.dtype_policy,
                name=name,
            )

        self.query = dense("query")
        self.key = dense("key")
        self.value = dense("value")
        self.output_dense = dense("output")
        self.dropout_layer = Dropout(attention_dropout, dtype=self.dtype_policy, name="dropout")

    def build(self, hidden_states_shape, attention_mask_shape=None):
        for layer in (self.query, self.key, self.value, self.output_dense):
            layer.build(hidden_states_shape)
        self.built = True

    def call(self, hidden_states, attention_mask, training=None, return_attention=False):
        batch, length = ops.shape(hidden_states)[0], ops.shape(hidden_states)[1]
        # Projections on [B*T, hidden]: one plain GEMM each way, whose backward XLA's CPU backend runs faster than
        # that of the same product on [B, T, hidden] (a contraction over two dimensions).
        # Measured in docs/performance.md, 'Where the JAX step's time goes'.
        flat = ops.reshape(hidden_states, (-1, self.hidden_dim))
        heads = (batch, length, self.num_heads, self.head_dim)
        query = ops.reshape(self.query(flat), heads)  # [B, T, N, H]
        key = ops.reshape(self.key(flat), heads)
        value = ops.reshape(self.value(flat), heads)
        # [B, 1, 1, S]; expand_dims rather than [:, None, None, :], which LiteRT cannot lower with a dynamic batch.
        mask = ops.expand_dims(ops.expand_dims(ops.cast(attention_mask, "bool"), 1), 1)

        use_dropout = bool(training) and self.attention_dropout > 0
        # Under torch.compile the explicit path is the faster one: inductor fuses scale, mask and softmax around
        # two batched GEMMs, where PyTorch's CPU SDPA kernel is slow at BERT's small heads.
        # Measured in docs/performance.md, 'Attention'.
        if return_attention or use_dropout or torch_compiling():
            context, probabilities = self._explicit_attention(query, key, value, mask, use_dropout)
        else:
            context = ops.dot_product_attention(query, key, value, mask=mask)
            probabilities = None
        output = self.output_dense(ops.reshape(context, (-1, self.hidden_dim)))
        output = ops.reshape(output, (batch, length, self.hidden_dim))
        return (output, probabilities) if return_attention else output

    def _explicit_attention(self, query, key, value, mask, use_dropout):
        # Softmax in float32 whatever the compute dtype (mixed precision keeps it there).
        logits = ops.einsum("btnh,bsnh->bnts", query, key)  # [B, N, T, S]
        logits = ops.cast(logits, "float32") / math.sqrt(self.head_dim)
        logits = ops.where(mask, logits, MASK_LOGIT)
        probabilities = ops.softmax(logits, axis=-1)
        # Called only when it drops: a layer first called inside torch.compile (where this path is taken in
        # inference too) changes Keras state that the compiled step guards on (KbertModel.make_train_function).
        dropped = self.dropout_layer(probabilities, training=True) if use_dropout else probabilities
        context = ops.einsum("bnts,bsnh->btnh", ops.cast(dropped, value.dtype), value)  # [B, T, N, H]
        return context, probabilities

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            attention_dropout=self.attention_dropout,
            initializer_range=self.initializer_range,
        )
        return config
