import keras
import numpy as np
import pytest

import kbert
from tests.harness import random_inputs, tiny_backbone, to_numpy


def _save_load_same(model, inputs, tmp_path):
    expected = to_numpy(model(inputs))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    keras.tree.map_structure(np.testing.assert_array_equal, to_numpy(loaded(inputs)), expected)
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    keras.tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), to_numpy(clone(inputs)), expected
    )


@pytest.mark.parametrize("pair", [False, True])
def test_classifier_single_and_pair(pair, tmp_path):
    model = kbert.BertClassifier(tiny_backbone(), num_classes=3)
    inputs = random_inputs(batch=4)
    if not pair:
        inputs["segment_ids"] = np.zeros_like(inputs["segment_ids"])
    logits = to_numpy(model(inputs))
    assert logits.shape == (4, 3) and logits.dtype == np.float32
    labels = np.array([0, 1, 2, 1])
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(inputs, labels, epochs=3, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert np.isfinite(history.history["loss"]).all()
    _save_load_same(model, inputs, tmp_path)


def test_token_classifier_ignores_label_minus_100(tmp_path):
    model = kbert.BertTokenClassifier(tiny_backbone(), num_classes=5)
    inputs = random_inputs(batch=3, length=10)
    assert to_numpy(model(inputs)).shape == (3, 10, 5)
    labels = np.where(inputs["padding_mask"] == 1, np.arange(10)[None, :] % 5, -100)
    model.compile()
    loss = model.evaluate(inputs, labels, verbose=0, return_dict=True)["loss"]
    # Changing the labels of ignored positions leaves the loss unchanged.
    other = np.where(labels == -100, -100, labels)
    assert model.evaluate(inputs, other, verbose=0, return_dict=True)["loss"] == pytest.approx(loss, rel=1e-6)
    model.fit(inputs, labels, epochs=1, verbose=0)
    _save_load_same(model, inputs, tmp_path)


def test_question_answerer(tmp_path):
    model = kbert.BertQuestionAnswerer(tiny_backbone())
    inputs = random_inputs(batch=2, length=12)
    outputs = to_numpy(model(inputs))
    assert sorted(outputs) == ["end_logits", "start_logits"]
    assert outputs["start_logits"].shape == (2, 12) and outputs["end_logits"].shape == (2, 12)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    y = {"start_logits": np.array([3, 4]), "end_logits": np.array([5, 6])}
    history = model.fit(inputs, y, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    _save_load_same(model, inputs, tmp_path)


@pytest.mark.parametrize("pooling", ["mean", "cls", "concat_last_4"])
def test_embedder(pooling, tmp_path):
    backbone = tiny_backbone(num_layers=4, output_hidden_states=pooling == "concat_last_4")
    model = kbert.BertEmbedder(backbone, pooling=pooling, normalize=True)
    inputs = random_inputs(batch=3, length=10)
    embeddings = to_numpy(model(inputs))
    width = 4 * 32 if pooling == "concat_last_4" else 32
    assert embeddings.shape == (3, width)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, atol=1e-5)
    _save_load_same(model, inputs, tmp_path)


def test_mean_pooling_averages_real_tokens_only():
    backbone = tiny_backbone()
    inputs = random_inputs(batch=3, length=10)
    sequence = to_numpy(backbone(inputs))["sequence_output"]
    embeddings = to_numpy(kbert.BertEmbedder(backbone, pooling="mean", normalize=False)(inputs))
    mask = inputs["padding_mask"][:, :, None]
    np.testing.assert_allclose(embeddings, (sequence * mask).sum(1) / mask.sum(1), atol=1e-5)


def test_embedder_clear_errors():
    with pytest.raises(ValueError, match="output_hidden_states=True"):
        kbert.BertEmbedder(tiny_backbone(num_layers=4), pooling="concat_last_4")
    with pytest.raises(ValueError, match="pooling='max'"):
        kbert.BertEmbedder(tiny_backbone(), pooling="max")
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        kbert.BertClassifier(tiny_backbone(), num_classes=0)


def test_task_checks_inputs_like_the_backbone():
    model = kbert.BertClassifier(tiny_backbone(), num_classes=2)
    inputs = random_inputs()
    inputs["token_ids"][0, 0] = 500
    with pytest.raises(ValueError, match="token id 500 >= vocabulary_size 97"):
        model.predict(inputs, verbose=0)
    with pytest.raises(ValueError, match="token id 500 >= vocabulary_size 97"):
        model.fit(inputs, np.zeros(3), verbose=0)
