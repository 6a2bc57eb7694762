"""What every kbert model shares: input checks, `compile` defaults and config round-trips."""

import contextlib

import keras

from kbert.backend import variables_kept_on_error
from kbert.models import raw_text
from kbert.models.checks import (
    INPUT_KEYS,
    InputError,
    check_input_keys,
    check_input_values,
    checked_data,
    input_errors_raised,
    inputs_already_checked,
)
from kbert.models.preprocessor import check_text, is_text


class KbertModel(keras.Model):
    """Base of `BertBackbone` and the task models (all functional models built in `__init__`).

    Concrete inputs (eager calls, and `fit`/`evaluate`/`predict` on arrays) are checked once for missing keys,
    out-of-range ids and over-long sequences, so a mistake raises a `ValueError` instead of a silent clamp.
    """

    input_keys = INPUT_KEYS

    # === What differs per model type ===
    # The generic code that loads, converts, distils and exports models reads these, so it never names a class.
    # Hugging Face architectures this class stands for, each with the constructor arguments that select it; a
    # model is written as the first whose arguments it has, and a checkpoint read as the first class listing it.
    huggingface_architectures: dict = {}
    # The name of the one output tensor in exported files; None when the outputs are already a dict.
    output_name: str | None = None
    # Why the model cannot become a LiteRT file, with the fix; None when it can.
    export_refusal: str | None = None
    # The MediaPipe Tasks runtime that serves this model ("TextClassifier", "TextEmbedder"), or None.
    mediapipe_task: str | None = None
    # Whether a smaller student can learn this task from it (`kbert.training.distillation`).
    distillable = False

    @classmethod
    def preset_arguments(cls, kwargs, head_units=None, labels=None, source=None) -> dict:
        """Constructor arguments for a model of this class built from a checkpoint (`from_preset`): the given
        `kwargs`, completed from what the checkpoint holds (the rows of its output layer `head_units`, its
        `labels`); `source` names it in errors."""
        return dict(kwargs)

    @classmethod
    def backbone_flags(cls, kwargs) -> dict:
        """Backbone flags this class needs for the constructor arguments `kwargs` (e.g. hidden states)."""
        return {}

    def huggingface_architecture(self) -> str:
        """The Hugging Face architecture this model is written as (`kbert.interop.save_huggingface`)."""
        for architecture, arguments in self.huggingface_architectures.items():
            if all(getattr(self, key, None) == value for key, value in arguments.items()):
                return architecture
        raise ValueError(f"{type(self).__name__} has no Hugging Face BERT equivalent")

    def __init__(self, *args, **kwargs):
        dtype = kwargs.get("dtype")
        super().__init__(*args, **kwargs)
        if dtype is not None:
            # Keras' functional constructor drops `dtype`: the model's policy, its config and so a reloaded save
            # would say float32 while its layers compute in the policy given.
            self.dtype_policy = dtype

    def _input_limits(self) -> dict:
        raise NotImplementedError

    def _check_inputs(self, inputs):
        check_input_keys(inputs, self.input_keys)
        check_input_values(inputs, **self._input_limits())

    # `preprocessor` (a BertPreprocessor) is set on task models that take raw text. It is read with getattr:
    # a class-level default would shadow the instance's on the torch backend, where modules live in _modules.

    def _from_text(self, x):
        """Raw text (strings, or a pair of string lists) becomes model inputs through the preprocessor."""
        check_text(x)
        return self.packed_text(x) if is_text(x) else x

    def packed_text(self, texts):
        """`{token_ids, segment_ids, padding_mask}` int32 arrays for raw text (a list of strings or a pair of
        lists), padded to the longest (see `BertPreprocessor.preprocess`) and checked against the model."""
        preprocessor = getattr(self, "preprocessor", None)
        if preprocessor is None:
            raise ValueError(
                f"{type(self).__name__} got raw text but has no preprocessor: tokenize and pack first "
                f"(kbert.WordPieceTokenizer + kbert.SegmentPacker), build the model with from_preset(...), or set "
                f"model.preprocessor = kbert.models.BertPreprocessor(tokenizer)"
            )
        packed = preprocessor.preprocess(texts)
        self._check_inputs(packed)
        return packed

    def __call__(self, inputs, *args, **kwargs):
        inputs = self._from_text(inputs)
        self._check_inputs(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def _check_data(self, x):
        """Checks `x` up front when it is a dict of arrays; data read batch by batch (a `tf.data.Dataset`, a
        generator, a `PyDataset`) is checked as each batch is read. Returns (x, checked)."""
        if isinstance(x, dict):
            self._check_inputs(x)
            return x, True
        checked = checked_data(x, self._input_limits())
        return checked, checked is not x

    # Raw text (a list of strings, a pair of lists, or a stream of batches of them) is tokenized once and run in
    # batches of similar length, each cut to its longest row (`kbert.models.raw_text`); arrays and datasets of
    # token ids go to Keras as given.

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        **kwargs,
    ):
        validation_batch_size = kwargs.get("validation_batch_size") or batch_size
        validation_data = self._validation_data(validation_data, validation_batch_size)
        text, x = raw_text.text_input(x)
        if text is not None:
            if validation_split:
                raise InputError(
                    "validation_split is not supported with raw text; pass validation_data=(texts, labels)"
                )
            x = raw_text.training_data(self, text, y, sample_weight, batch_size, shuffle)
            y = sample_weight = batch_size = None
            shuffle = False  # done: new batches of similar lengths each epoch
        x, _ = self._check_data(x)
        # Per-step checks would cost a host sync each step on eager backends; the data is checked as it is read.
        with inputs_already_checked(), input_errors_raised(), variables_kept_on_error(self):
            return super().fit(
                x,
                y,
                batch_size=batch_size,
                epochs=epochs,
                verbose=verbose,
                callbacks=callbacks,
                validation_split=validation_split,
                validation_data=validation_data,
                shuffle=shuffle,
                class_weight=class_weight,
                sample_weight=sample_weight,
                **kwargs,
            )

    def _validation_data(self, validation_data, batch_size):
        """`fit`'s validation data: raw text (`(texts, labels[, sample_weight])`, or a stream) as batches of
        similar lengths; arrays checked."""
        if validation_data is None:
            return None
        if isinstance(validation_data, tuple | list):
            text, first = raw_text.text_input(validation_data[0])
            if text is None:
                return (self._check_data(first)[0], *validation_data[1:])
            return raw_text.training_data(self, text, *validation_data[1:3], batch_size=batch_size)
        text, validation_data = raw_text.text_input(validation_data)
        if text is not None:
            return raw_text.training_data(self, text)
        return self._check_data(validation_data)[0]

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, **kwargs):
        text, x = raw_text.text_input(x)
        if text is not None:
            x = raw_text.training_data(self, text, y, sample_weight, batch_size)
            y = sample_weight = batch_size = None
        x, checked = self._check_data(x)
        with _checks_skipped(checked), input_errors_raised(), variables_kept_on_error(self):
            return super().evaluate(
                x, y, batch_size=batch_size, verbose=verbose, sample_weight=sample_weight, **kwargs
            )

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        text, x = raw_text.text_input(x)
        with input_errors_raised(), variables_kept_on_error(self):
            if text is not None:
                with inputs_already_checked():
                    return raw_text.predict_text(self, text, batch_size, verbose, steps, callbacks)
            x, checked = self._check_data(x)
            with _checks_skipped(checked):
                return super().predict(x, batch_size, verbose, steps, callbacks)

    # torch.compile guards the compiled step on Python state that Keras sets during the first step: a layer's
    # name-scope path (dropout layers are first called in training), the optimizer's weight-decay cache,
    # gradients that exist (`zero_grad` checks each). Compiled from the first step, the step meets new state at
    # the second and compiles again, forward and backward: about as long as the first compile. Running the first
    # step of each function eager (the same computation) lets the single compile see the state of every later step.

    def make_train_function(self, force=False):
        fresh = self.train_function is None or force
        made = super().make_train_function(force)
        if fresh and _torch_compiled(self):
            self.train_function = _eager_first_call(
                lambda data: self.train_step(data[0]), self.train_function
            )
        return made

    def make_test_function(self, force=False):
        fresh = self.test_function is None or force
        made = super().make_test_function(force)
        if fresh and _torch_compiled(self):

            def eager(data):
                import torch

                with torch.no_grad():
                    return self.test_step(data[0])

            self.test_function = _eager_first_call(eager, self.test_function)
        return made

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """Builds this model from a local folder: a kbert save (`model.keras`), a Hugging Face BERT checkpoint
        (`config.json` + `model.safetensors`) or a KerasHub BERT preset.

        Keyword arguments go to the constructor (`num_classes`, `pooling`, `objective`...); backbone flags
        (`output_hidden_states`, `output_attentions`, `dtype`) and `BertConfig` fields (`dropout`,
        `activation`...) go to the backbone. Task heads found in the checkpoint are loaded, others freshly
        initialised with a log line. Raises `ValueError` naming the problem for folders that hold no BERT,
        weights that do not fit, or vocabularies of another size.
        """
        from kbert.models.presets import load_preset

        return load_preset(cls, preset, **kwargs)

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

    def record_vocabulary(self, tokenizer):
        """Records which vocabulary this model is trained with (`tokenizer`'s size and fingerprint) in its config,
        so that its saves carry the record and loading them with another `vocab.txt` is refused
        (`kbert.interop.check_vocabulary`). A model with a preprocessor records its tokenizer's by itself."""
        self._vocabulary_record = (tokenizer.vocabulary_size, tokenizer.vocabulary_sha256)

    @property
    def vocabulary_record(self) -> dict | None:
        """`{"vocabulary_size", "vocabulary_sha256"}` of the vocabulary this model is trained with, or None when
        unknown (a model never given a tokenizer, or a save older than the record)."""
        tokenizer = getattr(getattr(self, "preprocessor", None), "tokenizer", None)
        if tokenizer is not None:
            return {
                "vocabulary_size": tokenizer.vocabulary_size,
                "vocabulary_sha256": tokenizer.vocabulary_sha256,
            }
        record = getattr(self, "_vocabulary_record", None)
        return None if record is None else {"vocabulary_size": record[0], "vocabulary_sha256": record[1]}

    def _base_config(self) -> dict:
        # Functional models' own get_config() describes the graph; ours describe the constructor.
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }
        if getattr(self, "preprocessor", None) is not None:
            config["preprocessor"] = keras.layers.serialize(self.preprocessor)
        if self.vocabulary_record is not None:
            config["vocabulary"] = self.vocabulary_record
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        if isinstance(config.get("backbone"), dict):
            config["backbone"] = keras.layers.deserialize(config["backbone"])
        preprocessor = config.pop("preprocessor", None)
        vocabulary = config.pop("vocabulary", None)
        model = cls(**config)
        if preprocessor is not None:
            model.preprocessor = keras.layers.deserialize(preprocessor)
        if vocabulary is not None:
            model._vocabulary_record = (vocabulary["vocabulary_size"], vocabulary["vocabulary_sha256"])
        return model


class KbertTask(KbertModel):
    """A head on a `BertBackbone`; subclasses wire `backbone(inputs)` to their outputs in `__init__`."""

    def _input_limits(self) -> dict:
        return self.backbone._input_limits()

    @staticmethod
    def backbone_inputs() -> dict:
        """Fresh symbolic inputs `{token_ids, segment_ids, padding_mask}`, int32 [batch, seq]."""
        return {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in INPUT_KEYS}


def _checks_skipped(checked):
    """Skips the per-call checks for data already checked (up front, or as it is read)."""
    return inputs_already_checked() if checked else contextlib.nullcontext()


def _torch_compiled(model):
    """True when Keras compiles `model`'s steps with torch.compile (PyTorch backend, `jit_compile=True`)."""
    return keras.config.backend() == "torch" and model.jit_compile is True


def _eager_first_call(eager, compiled):
    """A step function that runs `eager` on its first call and `compiled` on every later one."""
    called = []

    def step(data):
        if called:
            return compiled(data)
        called.append(True)
        return eager(data)

    return step
