"""Fine-tuning heads on `BertBackbone`: sequence classification, token classification and span QA."""

import keras
from keras import ops

from kbert.inputs import IGNORE_LABEL
from kbert.layers import Dropout, bert_initializer
from kbert.models.base import KbertTask


def _logits_dense(backbone, units, name, dtype):
    return keras.layers.Dense(
        units,
        kernel_initializer=bert_initializer(backbone.config.initializer_range),
        dtype=dtype,
        name=name,
    )


class LogitsTask(KbertTask):
    """Dropout and a dense layer of `num_classes` logits on one backbone output (`features`)."""

    features = None  # "pooled_output" or "sequence_output"
    output_name = "logits"
    distillable = True

    def __init__(self, backbone, num_classes, dropout=None, **kwargs):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        dropout = backbone.config.dropout if dropout is None else dropout
        dtype = kwargs.pop("dtype", backbone.dtype_policy)

        # === Layers ===
        dropout_layer = Dropout(dropout, dtype=dtype, name="classifier_dropout")
        output_dense = _logits_dense(backbone, num_classes, "logits", dtype)

        # === Functional wiring ===
        inputs = self.backbone_inputs()
        outputs = output_dense(dropout_layer(backbone(inputs)[self.features]))
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.num_classes = num_classes
        self.dropout = dropout

    @classmethod
    def preset_arguments(cls, kwargs, head_units=None, labels=None, source=None):
        if "num_classes" in kwargs:
            return dict(kwargs)
        if head_units is None and not labels:
            raise ValueError(f"{source!r} has no classifier head: pass num_classes=... to build a fresh one")
        return {**kwargs, "num_classes": head_units if head_units is not None else len(labels)}

    def _default_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def get_config(self):
        return {
            **self._base_config(),
            "backbone": keras.layers.serialize(self.backbone),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package="kbert")
class BertClassifier(LogitsTask):
    """Sequence (or sequence-pair) classification from the pooled [CLS] output.

    Pairs are packed `[CLS] A [SEP] B [SEP]` with segment ids 0 then 1; the model itself is the same.

    Args:
        backbone: a `kbert.BertBackbone`.
        num_classes: number of labels.
        dropout: dropout before the output layer (default: the backbone's).

    Outputs: logits [batch, num_classes]. `compile()` defaults to sparse categorical cross-entropy on
    logits and accuracy.
    """

    features = "pooled_output"
    huggingface_architectures = {"BertForSequenceClassification": {}}
    mediapipe_task = "TextClassifier"

    def _default_loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@keras.saving.register_keras_serializable(package="kbert")
class BertTokenClassifier(LogitsTask):
    """Per-token classification (tagging, NER) from the sequence output.

    Args: as `BertClassifier`.

    Outputs: logits [batch, seq, num_classes]. `compile()` defaults to sparse categorical cross-entropy that
    ignores label -100 (Hugging Face's convention for padding and non-first word pieces).
    """

    features = "sequence_output"
    huggingface_architectures = {"BertForTokenClassification": {}}
    IGNORE_LABEL = IGNORE_LABEL

    def _default_loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=self.IGNORE_LABEL)


@keras.saving.register_keras_serializable(package="kbert")
class BertQuestionAnswerer(KbertTask):
    """Extractive QA: start and end logits over the sequence (SQuAD style, as BertForQuestionAnswering).

    Outputs: a dict `start_logits`, `end_logits`, each [batch, seq] (padding positions are not masked, as in
    the reference; restrict decoding to the context tokens). Train with
    `y={"start_logits": start_index, "end_logits": end_index}`; `compile()` defaults to cross-entropy on each.
    """

    huggingface_architectures = {"BertForQuestionAnswering": {}}
    distillable = True

    def __init__(self, backbone, **kwargs):
        dtype = kwargs.pop("dtype", backbone.dtype_policy)

        # === Layers ===
        span_head = SpanHead(backbone.config.initializer_range, dtype=dtype, name="span_head")

        # === Functional wiring ===
        inputs = self.backbone_inputs()
        start, end = span_head(backbone(inputs)["sequence_output"])
        super().__init__(
            inputs=inputs,
            outputs={"start_logits": start, "end_logits": end},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.backbone = backbone

    def _default_loss(self):
        return {
            "start_logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "end_logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        }

    def get_config(self):
        return {
            **self._base_config(),
            "backbone": keras.layers.serialize(self.backbone),
        }


@keras.saving.register_keras_serializable(package="kbert")
class SpanHead(keras.layers.Layer):
    """One dense layer of 2 units over the sequence, split into start and end logits, each [batch, seq]."""

    def __init__(self, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            2,
            kernel_initializer=bert_initializer(initializer_range),
            dtype=self.dtype_policy,
            name="dense",
        )

    def build(self, sequence_shape):
        self.dense.build(sequence_shape)
        self.built = True

    def call(self, sequence):
        logits = self.dense(sequence)  # [batch, seq, 2]
        return logits[..., 0], logits[..., 1]

    def get_config(self):
        return {**super().get_config(), "initializer_range": self.initializer_range}


POOLINGS = ("mean", "cls", "concat_last_4")


@keras.saving.register_keras_serializable(package="kbert")
class BertEmbedder(KbertTask):
    """Sentence embeddings: mean or [CLS] pooling, or the mean-pooled concatenation of the last 4 layers.

    Args:
        backbone: a `kbert.BertBackbone` (built with `output_hidden_states=True` for "concat_last_4").
        pooling: "mean" (over the padding mask; the sentence-transformers recipe), "cls", or "concat_last_4"
            (the BERT paper's feature-based recipe; width 4 x hidden_dim).
        normalize: L2-normalise the embedding (cosine similarity becomes a dot product).

    Outputs: float [batch, hidden_dim] (or [batch, 4 * hidden_dim]). `compile()` defaults to mean squared
    error, for regressing onto a teacher's embeddings.
    """

    huggingface_architectures = {"BertModel": {}}
    output_name = "embedding"
    mediapipe_task = "TextEmbedder"
    distillable = True

    @classmethod
    def backbone_flags(cls, kwargs):
        return {"output_hidden_states": True} if kwargs.get("pooling") == "concat_last_4" else {}

    def __init__(self, backbone, pooling="mean", normalize=True, **kwargs):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}; choose one of {POOLINGS}")
        if pooling == "concat_last_4" and not backbone.output_hidden_states:
            raise ValueError(
                "pooling='concat_last_4' needs the backbone's hidden states; build it with "
                "BertBackbone(..., output_hidden_states=True)"
            )
        if pooling == "concat_last_4" and backbone.config.num_layers < 4:
            raise ValueError(
                f"pooling='concat_last_4' needs >= 4 layers, the backbone has {backbone.config.num_layers}"
            )
        dtype = kwargs.pop("dtype", backbone.dtype_policy)

        # === Functional wiring ===
        inputs = self.backbone_inputs()
        features = backbone(inputs)
        if pooling == "cls":
            embedding = features["sequence_output"][:, 0, :]
        else:
            sequence = features["sequence_output"]
            if pooling == "concat_last_4":
                sequence = keras.layers.Concatenate(axis=-1, dtype=dtype)(features["hidden_states"][-4:])
            embedding = MaskedMeanPooling(dtype=dtype, name="mean_pooling")(sequence, inputs["padding_mask"])
        if normalize:
            embedding = L2Normalize(dtype=dtype, name="l2_normalize")(embedding)
        super().__init__(inputs=inputs, outputs=embedding, dtype=dtype, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.pooling = pooling
        self.normalize = normalize

    def _default_loss(self):
        return keras.losses.MeanSquaredError()

    def get_config(self):
        return {
            **self._base_config(),
            "backbone": keras.layers.serialize(self.backbone),
            "pooling": self.pooling,
            "normalize": self.normalize,
        }


@keras.saving.register_keras_serializable(package="kbert")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean over the real tokens: [batch, seq, dim] and a 0/1 padding mask [batch, seq] → [batch, dim]."""

    def call(self, sequence, padding_mask):
        mask = ops.cast(padding_mask, "float32")[:, :, None]
        total = ops.sum(ops.cast(sequence, "float32") * mask, axis=1)
        return ops.cast(total / ops.maximum(ops.sum(mask, axis=1), 1e-9), self.compute_dtype)


@keras.saving.register_keras_serializable(package="kbert")
class L2Normalize(keras.layers.Layer):
    """x / max(||x||, 1e-12) along the last axis, computed in float32."""

    def call(self, x):
        x = ops.cast(x, "float32")
        norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))
        return ops.cast(x / ops.maximum(norm, 1e-12), self.compute_dtype)
