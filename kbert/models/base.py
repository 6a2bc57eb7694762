"""What every kbert model shares: input checks, `compile` defaults and config round-trips."""

import keras

from kbert.models.checks import (
    INPUT_KEYS,
    check_input_keys,
    check_input_values,
    inputs_already_checked,
)


class KbertModel(keras.Model):
    """Base of `BertBackbone` and the task models (all functional models built in `__init__`).

    Concrete inputs (eager calls, and `fit`/`evaluate`/`predict` on arrays) are checked once for missing keys,
    out-of-range ids and over-long sequences, so a mistake raises a `ValueError` instead of a silent clamp.
    """

    input_keys = INPUT_KEYS

    def _input_limits(self) -> dict:
        raise NotImplementedError

    def _check_inputs(self, inputs):
        check_input_keys(inputs, self.input_keys)
        check_input_values(inputs, **self._input_limits())

    def __call__(self, inputs, *args, **kwargs):
        self._check_inputs(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def _check_data(self, x):
        """Checks `x` up front when it is a dict of arrays; returns whether it did."""
        if isinstance(x, dict):
            self._check_inputs(x)
            return True
        return False

    def fit(self, x=None, y=None, validation_data=None, **kwargs):
        self._check_data(x)
        if isinstance(validation_data, tuple | list) and validation_data:
            self._check_data(validation_data[0])
        # Per-step checks would cost a host sync each step on eager backends; arrays were checked above.
        with inputs_already_checked():
            return super().fit(x, y, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        if self._check_data(x):
            with inputs_already_checked():
                return super().evaluate(x, y, **kwargs)
        return super().evaluate(x, y, **kwargs)

    def predict(self, x, **kwargs):
        if self._check_data(x):
            with inputs_already_checked():
                return super().predict(x, **kwargs)
        return super().predict(x, **kwargs)

    def _default_loss(self):
        return None

    def _default_metrics(self):
        return None

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """As `keras.Model.compile`; "auto" picks the task's usual loss, AdamW(5e-5) and metrics."""
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(5e-5, weight_decay=0.01)
        if loss == "auto":
            loss = self._default_loss()
        if metrics == "auto":
            metrics = self._default_metrics()
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Our compile() only fills in "auto" defaults, so the saved arguments replay through it unchanged.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def _base_config(self) -> dict:
        # Functional models' own get_config() describes the graph; ours describe the constructor.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        if isinstance(config.get("backbone"), dict):
            config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)


class KbertTask(KbertModel):
    """A head on a `BertBackbone`; subclasses wire `backbone(inputs)` to their outputs in `__init__`."""

    def _input_limits(self) -> dict:
        return self.backbone._input_limits()

    @staticmethod
    def backbone_inputs() -> dict:
        """Fresh symbolic inputs `{token_ids, segment_ids, padding_mask}`, int32 [batch, seq]."""
        return {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in INPUT_KEYS}
