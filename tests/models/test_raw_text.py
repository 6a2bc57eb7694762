"""Raw text through fit, evaluate and predict: batches of similar length, results in input order, streams of text."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kbert
from kbert.models import raw_text
from kbert.models.checks import InputError
from tests.harness import tiny_backbone

WORDS = "the model reads text in batches of similar length and gives each result back in its place".split()


def _texts(count, seed=0):
    """Unsorted texts of 1 to 24 words (3 to about 30 tokens with [CLS] and [SEP])."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 25))) for _ in range(count)]


def _model(cls, tokenizer, **kwargs):
    backbone = tiny_backbone(vocabulary_size=tokenizer.vocabulary_size, max_sequence_length=64)
    model = cls(backbone, **kwargs)
    model.preprocessor = kbert.models.BertPreprocessor(tokenizer, sequence_length=64)
    return model


def _padded_to_the_maximum(tokenizer, texts, pairs=None):
    packer = kbert.SegmentPacker(64, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    packed = packer(tokenizer(texts), None if pairs is None else tokenizer(pairs))
    return {key: np.asarray(value, "int32") for key, value in packed.items()}


def test_predict_on_text_equals_predict_on_padded_arrays_in_input_order(tokenizer):
    texts = _texts(45)
    embedder = _model(kbert.BertEmbedder, tokenizer, pooling="mean")
    packed = _padded_to_the_maximum(tokenizer, texts)
    expected = embedder.predict(packed, batch_size=45, verbose=0)
    np.testing.assert_allclose(embedder.predict(texts, batch_size=8, verbose=0), expected, atol=1e-5)
    # Every layer built (the preprocessor has no weights): else Keras' JAX predict_on_batch reruns the model eagerly.
    assert all(layer.built for layer in embedder._flatten_layers())

    tagger = _model(kbert.BertTokenClassifier, tokenizer, num_classes=5)
    expected = tagger.predict(packed, batch_size=45, verbose=0)
    got = tagger.predict(texts, batch_size=8, verbose=0)
    longest = int(packed["padding_mask"].sum(axis=1).max())
    assert got.shape == (45, longest, 5)  # the longest row of the call
    real = packed["padding_mask"][:, : got.shape[1]].astype(bool)
    np.testing.assert_allclose(got[real], expected[:, : got.shape[1]][real], atol=1e-5)
    assert not got[~real].any()  # zero past each row's real tokens

    first, second = texts[:20], texts[20:40]
    classifier = _model(kbert.BertClassifier, tokenizer, num_classes=3)
    np.testing.assert_allclose(
        classifier.predict((first, second), batch_size=6, verbose=0),
        classifier.predict(_padded_to_the_maximum(tokenizer, first, second), verbose=0),
        atol=1e-5,
    )


def test_predict_on_a_stream_of_text_batches(tokenizer, monkeypatch):
    monkeypatch.setattr(raw_text, "POOL_BATCHES", 2)  # several pools: outputs joined and padded across them
    texts = _texts(30, seed=1)
    tagger = _model(kbert.BertTokenClassifier, tokenizer, num_classes=4)
    expected = tagger.predict(texts, batch_size=4, verbose=0)

    def generate():
        for start in range(0, len(texts), 4):
            yield texts[start : start + 4]

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return -(-len(texts) // 4)

        def __getitem__(self, index):
            return texts[4 * index : 4 * index + 4]

    streams = {
        "generator": generate(),
        "tf.data": tf.data.Dataset.from_tensor_slices(texts).batch(4),
        "PyDataset": Batches(),
    }
    for name, stream in streams.items():
        got = tagger.predict(stream, verbose=0)
        width = min(got.shape[1], expected.shape[1])
        assert got.shape[0] == len(texts), name
        np.testing.assert_allclose(got[:, :width], expected[:, :width], atol=1e-5, err_msg=name)
        assert not got[:, width:].any() and not expected[:, width:].any()


def test_fit_and_evaluate_on_text_lists_and_streams(tokenizer):
    texts = _texts(40, seed=2)
    labels = np.asarray([len(text.split()) > 12 for text in texts], "int32")
    classifier = _model(kbert.BertClassifier, tokenizer, num_classes=2)
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3))
    packed = _padded_to_the_maximum(tokenizer, texts)
    loss, accuracy = classifier.evaluate(texts, labels, batch_size=8, verbose=0)
    expected_loss, expected_accuracy = classifier.evaluate(packed, labels, batch_size=40, verbose=0)
    assert loss == pytest.approx(expected_loss, abs=1e-5)
    assert accuracy == pytest.approx(expected_accuracy)

    history = classifier.fit(
        texts, labels, batch_size=8, epochs=2, validation_data=(texts[:16], labels[:16]), verbose=0
    )
    assert np.isfinite(history.history["loss"]).all() and len(history.history["val_loss"]) == 2
    stream = tf.data.Dataset.from_tensor_slices((texts, labels)).batch(8)
    history = classifier.fit(stream, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert classifier.evaluate(stream, verbose=0)[0] == pytest.approx(
        classifier.evaluate(texts, labels, verbose=0)[0], abs=1e-5
    )


def test_raw_text_mistakes_are_named(tokenizer):
    classifier = _model(kbert.BertClassifier, tokenizer, num_classes=2)
    classifier.compile()
    with pytest.raises(InputError, match="3 texts but 2 labels"):
        classifier.fit(["a", "b", "c"], np.asarray([0, 1]), verbose=0)
    with pytest.raises(InputError, match="need labels"):
        classifier.evaluate(["a", "b"], verbose=0)
    with pytest.raises(InputError, match="without labels"):
        classifier.fit(tf.data.Dataset.from_tensor_slices(["a", "b"]).batch(2), verbose=0)
