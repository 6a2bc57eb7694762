"""KerasHub BERT presets in and out."""

import keras
import keras_hub
import numpy as np
import pytest

import kbert
from kbert.interop import save_kerashub
from tests.harness import random_inputs, to_numpy

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"word{i}" for i in range(92)]


@pytest.fixture
def kerashub_preset(tmp_path):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=97,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=24,
    )
    # Random weights everywhere, biases and LayerNorm included, so the round trip checks every row of the table.
    rng = np.random.default_rng(0)
    for variable in backbone.weights:
        variable.assign(rng.normal(size=variable.shape).astype("float32") * 0.5)
    directory = str(tmp_path / "kerashub")
    backbone.save_to_preset(directory)
    keras_hub.models.BertTokenizer(vocabulary=VOCABULARY, lowercase=True).save_to_preset(directory)
    return directory, backbone


def test_kerashub_round_trip_keeps_weights_identical(kerashub_preset, tmp_path):
    directory, original = kerashub_preset
    backbone = kbert.BertBackbone.from_preset(directory)
    assert backbone.config.activation == "gelu"  # kbert's exact GELU unless asked otherwise
    written = save_kerashub(backbone, tmp_path / "back")
    reloaded = keras_hub.models.BertBackbone.from_preset(str(tmp_path / "back"))
    assert len(reloaded.weights) == len(original.weights) == len(written.weights)
    for before, after in zip(original.weights, reloaded.weights, strict=True):
        assert before.path == after.path
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(before), keras.ops.convert_to_numpy(after))


def test_outputs_match_kerashub_with_its_gelu(kerashub_preset):
    directory, original = kerashub_preset
    inputs = random_inputs()
    expected = to_numpy(original(inputs))["sequence_output"]
    same_gelu = kbert.BertBackbone.from_preset(directory, activation="gelu_approximate")
    np.testing.assert_allclose(to_numpy(same_gelu(inputs))["sequence_output"], expected, atol=1e-5)
    exact = kbert.BertBackbone.from_preset(directory)
    assert np.abs(to_numpy(exact(inputs))["sequence_output"] - expected).max() > 1e-4


def test_kerashub_tokenizer_becomes_the_preprocessor(kerashub_preset):
    directory, _ = kerashub_preset
    classifier = kbert.BertClassifier.from_preset(directory, num_classes=2)
    assert classifier.preprocessor is not None
    logits = classifier.predict(["word1 word2", "word3"], verbose=0)
    assert logits.shape == (2, 2)


def test_non_bert_kerashub_preset_is_refused(tmp_path):
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=50,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=8,
    )
    backbone.save_to_preset(tmp_path / "gpt2")
    with pytest.raises(ValueError, match="GPT2Backbone preset"):
        kbert.BertBackbone.from_preset(tmp_path / "gpt2")
