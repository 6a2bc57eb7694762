"""Bad inputs to the Python API raise an `InputError` (a ValueError) that names the problem, on every backend and
for every way of feeding data: arrays, raw text, a tf.data.Dataset, a generator, a PyDataset or a torch DataLoader."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kbert
from kbert.models.checks import InputError
from kbert.text import WordPieceTokenizer
from tests.harness import TINY, random_inputs, tiny_backbone

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
    f"w{i}" for i in range(TINY["vocabulary_size"] - 5)
]


@pytest.fixture
def classifier():
    model = kbert.BertClassifier(tiny_backbone(), num_classes=3)
    model.preprocessor = kbert.BertPreprocessor(WordPieceTokenizer(VOCABULARY), sequence_length=24)
    model.compile()
    return model


@pytest.mark.parametrize(
    "texts, message",
    [
        ([None], r"text 0 is None \(NoneType\), not a string"),
        (["w1 w2", None], r"text 1 is None \(NoneType\), not a string"),
        ([42], r"text 0 is 42 \(int\), not a string"),
        (["w1", "bad \ud800 text"], r"text 1 holds '\\ud800' at character 4, a lone surrogate"),
        ([], "empty list"),
        ((["w1", "w2"], ["w3"]), "2 texts but 1 text pairs"),
    ],
)
def test_bad_text_is_named(classifier, texts, message):
    with pytest.raises(InputError, match=message):
        classifier.predict(texts, verbose=0)


def test_good_text_still_predicts(classifier):
    assert classifier.predict(["w1 w2", "w3"], verbose=0).shape == (2, 3)


def test_mismatched_shapes_and_fractional_ids_are_named(classifier):
    inputs = random_inputs()
    short_segments = {**inputs, "segment_ids": inputs["segment_ids"][:, :5]}
    with pytest.raises(InputError, match=r"differ in shape .*segment_ids \(3, 5\)"):
        classifier.predict(short_segments, verbose=0)
    fractional = {key: value.astype("float32") for key, value in inputs.items()}
    fractional["token_ids"][0, 1] = 7.9
    with pytest.raises(InputError, match=r"token id 7.9 at \[0, 1\] is not a whole number"):
        classifier(fractional)
    whole = {key: value.astype("float32") for key, value in inputs.items()}
    assert classifier.predict(whole, verbose=0).shape == (3, 3)  # whole-number floats are fine


def _out_of_range():
    inputs = random_inputs()
    inputs["token_ids"] = inputs["token_ids"].copy()
    inputs["token_ids"][2, 3] = 500
    return inputs


def _generator(inputs, labels=None):
    for start in range(0, 3, 2):
        batch = {key: value[start : start + 2] for key, value in inputs.items()}
        yield batch if labels is None else (batch, labels[start : start + 2])


class _Batches(keras.utils.PyDataset):
    def __init__(self, inputs, labels):
        super().__init__()
        self.inputs, self.labels = inputs, labels

    def __len__(self):
        return 2

    def __getitem__(self, index):
        rows = slice(2 * index, 2 * index + 2)
        return {key: value[rows] for key, value in self.inputs.items()}, self.labels[rows]


def _torch_loader(inputs, labels):
    import torch

    rows = [({key: value[i] for key, value in inputs.items()}, labels[i]) for i in range(len(labels))]
    return torch.utils.data.DataLoader(rows, batch_size=2)


@pytest.mark.parametrize("kind", ["dataset", "generator", "py_dataset", "torch_dataloader"])
def test_out_of_range_ids_in_streamed_data_raise_instead_of_nan(classifier, kind):
    # JAX fills out-of-range gathers with NaN and XLA clamps them: without the check these give NaN or wrong
    # outputs with no error.
    inputs, labels = _out_of_range(), np.array([0, 1, 2])
    make = {
        "dataset": lambda: tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(2),
        "generator": lambda: _generator(inputs, labels),
        "py_dataset": lambda: _Batches(inputs, labels),
        "torch_dataloader": lambda: _torch_loader(inputs, labels),
    }[kind]
    message = r"token id 500 >= vocabulary_size 97"
    with pytest.raises(InputError, match=message):
        classifier.fit(make(), epochs=1, shuffle=False, verbose=0)
    with pytest.raises(InputError, match=message):
        classifier.evaluate(make(), verbose=0)
    if kind == "dataset":
        with pytest.raises(InputError, match=message):
            classifier.predict(tf.data.Dataset.from_tensor_slices(inputs).batch(2), verbose=0)
    # The model is whole after the errors (Keras' JAX loops empty the variables while they run; the bad batch is
    # the second, so the error comes after a training step).
    good = random_inputs()
    predictions = classifier.predict(tf.data.Dataset.from_tensor_slices(good).batch(2), verbose=0)
    assert np.isfinite(predictions).all()
    np.testing.assert_allclose(predictions, classifier.predict(good, verbose=0), atol=1e-5)
