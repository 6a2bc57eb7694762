"""`BertPretrainer`: masked-LM plus next-sentence (NSP) or sentence-order (SOP) prediction."""

import keras
from keras import ops

from kbert.backend import concrete_value, sparse_cross_entropy
from kbert.layers import MaskedLMHead, bert_initializer
from kbert.models.base import KbertTask

OBJECTIVES = ("nsp", "sop", "mlm")


@keras.saving.register_keras_serializable(package="kbert")
class BertPretrainer(KbertTask):
    """BERT pretraining: masked-LM at `mask_positions` (decoder tied to the token embedding) + a 2-way pair head.

    Args:
        backbone: a `kbert.BertBackbone`.
        objective: "nsp" (next sentence: pair_label 1 = B follows A), "sop" (sentence order: 1 = in order)
            or "mlm" (masked-LM only, no pair head).

    Inputs: the backbone's `token_ids`, `segment_ids`, `padding_mask` and `mask_positions` (int [batch, P]).
    Outputs: `mlm_logits` [batch, P, vocabulary_size] and, unless objective="mlm", `pair_logits` [batch, 2].
    Targets (the `y` of `fit`): `mlm_ids` [batch, P], `mlm_weights` [batch, P] (0 at padded predictions)
    and `pair_label` [batch]. The losses are computed by the model; `compile` takes no `loss`. Logged metrics:
    `mlm_loss`, `mlm_accuracy` and, with a pair head, `pair_loss`, `pair_accuracy`.
    """

    input_keys = ("token_ids", "segment_ids", "padding_mask", "mask_positions")
    huggingface_architectures = {"BertForMaskedLM": {"objective": "mlm"}, "BertForPreTraining": {}}
    export_refusal = (
        "BertPretrainer is a training model (masked-LM at given positions); export its backbone "
        "(pretrainer.backbone) or a task model built on it"
    )

    def __init__(self, backbone, objective="nsp", **kwargs):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective={objective!r}; choose one of {OBJECTIVES}")
        config = backbone.config
        dtype = kwargs.pop("dtype", backbone.dtype_policy)

        # === Layers ===
        mlm_head = MaskedLMHead(
            backbone.token_embedding,
            activation=config.activation,
            layer_norm_epsilon=config.layer_norm_epsilon,
            initializer_range=config.initializer_range,
            dtype=dtype,
            name="mlm_head",
        )
        pair_head = None
        if objective != "mlm":
            pair_head = keras.layers.Dense(
                2,
                kernel_initializer=bert_initializer(config.initializer_range),
                dtype=dtype,
                name="pair_head",
            )

        # === Functional wiring ===
        inputs = self.backbone_inputs()
        inputs["mask_positions"] = keras.Input(shape=(None,), dtype="int32", name="mask_positions")
        features = backbone({key: inputs[key] for key in ("token_ids", "segment_ids", "padding_mask")})
        outputs = {"mlm_logits": mlm_head(features["sequence_output"], inputs["mask_positions"])}
        if pair_head is not None:
            outputs["pair_logits"] = pair_head(features["pooled_output"])
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.objective = objective
        self.mlm_head = mlm_head
        self.pair_head = pair_head
        self.mlm_loss_tracker = keras.metrics.Mean(name="mlm_loss")
        self.mlm_accuracy_tracker = keras.metrics.Mean(name="mlm_accuracy")
        if pair_head is not None:
            self.pair_loss_tracker = keras.metrics.Mean(name="pair_loss")
            self.pair_accuracy_tracker = keras.metrics.Mean(name="pair_accuracy")

    def _check_inputs(self, inputs):
        super()._check_inputs(inputs)
        positions, token_ids = concrete_value(inputs["mask_positions"]), concrete_value(inputs["token_ids"])
        if positions is not None and token_ids is not None and positions.size:
            if positions.max() >= token_ids.shape[1] or positions.min() < 0:
                raise ValueError(
                    f"mask_positions must index the sequence (0 <= position < {token_ids.shape[1]}), "
                    f"got range [{positions.min()}, {positions.max()}]"
                )

    def compile(self, optimizer="auto", loss=None, metrics=None, **kwargs):
        """As `keras.Model.compile`; the losses are built in, so `loss` and `metrics` must stay None."""
        if loss not in (None, "auto") or metrics not in (None, "auto"):
            raise ValueError(
                "BertPretrainer computes its own losses and metrics (mlm_loss, mlm_accuracy, pair_loss, "
                "pair_accuracy); call compile() without loss= and metrics="
            )
        super().compile(optimizer=optimizer, loss=None, metrics=None, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y, dict) or "mlm_ids" not in y or "mlm_weights" not in y:
            raise ValueError(
                "BertPretrainer needs targets y = {'mlm_ids', 'mlm_weights', 'pair_label'} "
                f"(pair_label unless objective='mlm'); got {sorted(y) if isinstance(y, dict) else type(y)}"
            )
        # BERT's loss: the mean over real predictions (weights 0 at padded prediction slots).
        weights = ops.cast(y["mlm_weights"], "float32")
        logits = ops.cast(y_pred["mlm_logits"], "float32")
        labels = ops.cast(y["mlm_ids"], "int32")
        per_token, correct = sparse_cross_entropy(labels, logits, return_hits=True)
        total_weight = ops.sum(weights)
        mlm_loss = ops.sum(per_token * weights) / (total_weight + 1e-5)
        self.mlm_loss_tracker.update_state(mlm_loss, sample_weight=total_weight)
        self.mlm_accuracy_tracker.update_state(correct, sample_weight=weights)
        loss = mlm_loss
        if self.pair_head is not None:
            if "pair_label" not in y:
                raise ValueError(f"objective={self.objective!r} needs y['pair_label'] (0/1 per example)")
            pair_logits = ops.cast(y_pred["pair_logits"], "float32")
            pair_labels = ops.cast(y["pair_label"], "int32")
            pair_loss = ops.mean(sparse_cross_entropy(pair_labels, pair_logits))
            self.pair_loss_tracker.update_state(pair_loss)
            self.pair_accuracy_tracker.update_state(
                ops.cast(ops.equal(ops.argmax(pair_logits, axis=-1), pair_labels), "float32")
            )
            loss = loss + pair_loss
        # Regularisation losses added by layers (kernel_regularizer and the like), if any.
        for extra in self.losses:
            loss = loss + ops.cast(extra, "float32")
        return loss

    def get_config(self):
        return {
            **self._base_config(),
            "backbone": keras.layers.serialize(self.backbone),
            "objective": self.objective,
        }
