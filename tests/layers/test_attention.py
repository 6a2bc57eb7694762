import keras
import numpy as np
import pytest

from kbert.layers import BertEmbeddings, MultiHeadSelfAttention
from kbert.layers.embeddings import sinusoidal_table
from tests.harness import random_inputs, to_numpy


def _attention_inputs(seed=0):
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(3, 7, 32)).astype("float32")
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5], dtype="int32")
    return hidden, mask


def test_fused_and_explicit_paths_agree():
    layer = MultiHeadSelfAttention(hidden_dim=32, num_heads=4, attention_dropout=0.1)
    hidden, mask = _attention_inputs()
    fused = to_numpy(layer(hidden, mask))
    explicit, probabilities = to_numpy(layer(hidden, mask, return_attention=True))
    np.testing.assert_allclose(fused, explicit, atol=1e-5)
    assert probabilities.shape == (3, 4, 7, 7) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)
    # Padded keys get exactly no attention.
    assert np.all(probabilities[1, :, :, 4:] == 0) and np.all(probabilities[2, :, :, 2:] == 0)


def test_attention_dropout_only_in_training():
    layer = MultiHeadSelfAttention(hidden_dim=32, num_heads=4, attention_dropout=0.5)
    hidden, mask = _attention_inputs()
    inference = to_numpy(layer(hidden, mask, training=False))
    np.testing.assert_allclose(inference, to_numpy(layer(hidden, mask)), atol=1e-6)
    trained = to_numpy(layer(hidden, mask, training=True))
    assert np.abs(trained - inference).max() > 1e-3


def test_sinusoidal_positions_are_the_transformer_table():
    table = sinusoidal_table(50, 16)
    np.testing.assert_allclose(table[:, 0], np.sin(np.arange(50)), atol=1e-6)
    np.testing.assert_allclose(table[:, 1], np.cos(np.arange(50)), atol=1e-6)
    np.testing.assert_allclose(table[3, 14], np.sin(3 / 10000 ** (14 / 16)), atol=1e-6)
    layer = BertEmbeddings(97, 16, 50, position_embedding="sinusoidal", dropout=0.0)
    inputs = random_inputs(length=12)
    layer(inputs["token_ids"], inputs["segment_ids"])
    assert not layer.position_embeddings.trainable
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.position_embeddings), table, atol=1e-7)


@pytest.mark.parametrize("position_embedding", ["learned", "sinusoidal"])
def test_embeddings_shape(position_embedding):
    layer = BertEmbeddings(97, 32, 24, position_embedding=position_embedding)
    inputs = random_inputs(length=10)
    assert tuple(layer(inputs["token_ids"], inputs["segment_ids"]).shape) == (3, 10, 32)
