"""`BertBackbone`: embeddings, N post-LN encoder blocks and the tanh pooler, as a functional Keras model."""

import keras

from kbert.config import BertConfig
from kbert.layers import BertEmbeddings, BertEncoderBlock, BertPooler
from kbert.models.base import KbertModel, KbertTask


@keras.saving.register_keras_serializable(package="kbert")
class BertBackbone(KbertModel):
    """The BERT encoder.

    Args:
        vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim, max_sequence_length,
        num_segments, dropout, attention_dropout, activation, layer_norm_epsilon, initializer_range,
        position_embedding: see `kbert.BertConfig` (same names, same defaults: BERT-base).
        output_hidden_states: also output "hidden_states", a list of num_layers + 1 tensors
            [batch, seq, hidden_dim] (the embeddings, then each block's output).
        output_attentions: also output "attentions", a list of num_layers tensors [batch, heads, seq, seq]
            (float32 probabilities; computed on the explicit attention path).
        dtype: a dtype or `keras.DTypePolicy` ("mixed_bfloat16" keeps variables, LayerNorm and softmax in
            float32).

    Inputs: a dict of int tensors [batch, seq]: `token_ids`, `segment_ids`, `padding_mask` (1 at real tokens).
    Outputs: a dict with `sequence_output` [batch, seq, hidden_dim] and `pooled_output` [batch, hidden_dim].

    Example:
    >>> backbone = BertBackbone(vocabulary_size=1000, num_layers=2, hidden_dim=64, num_heads=2,
    ...                         intermediate_dim=128, max_sequence_length=32)
    >>> import numpy as np
    >>> ids = np.ones((2, 8), "int32")
    >>> out = backbone({"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": ids})
    >>> tuple(out["sequence_output"].shape), tuple(out["pooled_output"].shape)
    ((2, 8, 64), (2, 64))
    """

    huggingface_architectures = {"BertModel": {}}

    def __init__(
        self,
        vocabulary_size=30522,
        num_layers=12,
        num_heads=12,
        hidden_dim=768,
        intermediate_dim=3072,
        max_sequence_length=512,
        num_segments=2,
        dropout=0.1,
        attention_dropout=0.1,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        initializer_range=0.02,
        position_embedding="learned",
        output_hidden_states=False,
        output_attentions=False,
        dtype=None,
        **kwargs,
    ):
        config = BertConfig(
            vocabulary_size=vocabulary_size,
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            max_sequence_length=max_sequence_length,
            num_segments=num_segments,
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation=activation,
            layer_norm_epsilon=layer_norm_epsilon,
            initializer_range=initializer_range,
            position_embedding=position_embedding,
        )

        # === Layers ===
        embeddings = BertEmbeddings(
            vocabulary_size,
            hidden_dim,
            max_sequence_length,
            num_segments=num_segments,
            dropout=dropout,
            layer_norm_epsilon=layer_norm_epsilon,
            initializer_range=initializer_range,
            position_embedding=position_embedding,
            dtype=dtype,
            name="embeddings",
        )
        encoder_blocks = [
            BertEncoderBlock(
                hidden_dim,
                num_heads,
                intermediate_dim,
                dropout=dropout,
                attention_dropout=attention_dropout,
                activation=activation,
                layer_norm_epsilon=layer_norm_epsilon,
                initializer_range=initializer_range,
                dtype=dtype,
                name=f"encoder_block_{index}",
            )
            for index in range(num_layers)
        ]
        pooler = BertPooler(hidden_dim, initializer_range, dtype=dtype, name="pooler")

        # === Functional wiring ===
        inputs = KbertTask.backbone_inputs()
        hidden = embeddings(inputs["token_ids"], inputs["segment_ids"])
        hidden_states, attentions = [hidden], []
        for block in encoder_blocks:
            if output_attentions:
                hidden, probabilities = block(hidden, inputs["padding_mask"], return_attention=True)
                attentions.append(probabilities)
            else:
                hidden = block(hidden, inputs["padding_mask"])
            hidden_states.append(hidden)
        outputs = {"sequence_output": hidden, "pooled_output": pooler(hidden)}
        if output_hidden_states:
            outputs["hidden_states"] = hidden_states
        if output_attentions:
            outputs["attentions"] = attentions
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.config = config
        self.output_hidden_states = output_hidden_states
        self.output_attentions = output_attentions
        self.embeddings = embeddings
        self.encoder_blocks = encoder_blocks
        self.pooler = pooler

    @property
    def token_embedding(self) -> keras.layers.ReversibleEmbedding:
        """The token embedding; the masked-LM head decodes with its transpose."""
        return self.embeddings.token_embedding

    def _input_limits(self) -> dict:
        return {
            "vocabulary_size": self.config.vocabulary_size,
            "num_segments": self.config.num_segments,
            "max_sequence_length": self.config.max_sequence_length,
        }

    def get_config(self):
        return {
            **self._base_config(),
            **self.config.to_dict(),
            "output_hidden_states": self.output_hidden_states,
            "output_attentions": self.output_attentions,
        }

    @classmethod
    def from_bert_config(cls, config: BertConfig, **kwargs) -> "BertBackbone":
        """A backbone of the sizes in `config`; `kwargs` add output flags, dtype or name."""
        return cls(**config.to_dict(), **kwargs)
