"""LoRA adapters on the encoder and the sentence-pair losses, on a tiny config on every backend."""

import keras
import numpy as np
import pytest

import kbert
from kbert.training import CosineSimilarityLoss, InBatchNegativesLoss, enable_lora
from kbert.training.lora import count_parameters, merged_copy
from tests.harness import random_inputs, tiny_backbone


def test_lora_trains_only_the_adapters_and_the_head_and_saves_merged(tmp_path):
    model = kbert.BertClassifier(tiny_backbone(), num_classes=3)
    full = count_parameters(model.trainable_weights)
    enable_lora(model, 2)
    # Per block: query, key, value, output (32 -> 32), intermediate (32 -> 64), output (64 -> 32); and the head.
    adapters = 2 * (4 * (32 * 2 + 2 * 32) + (32 * 2 + 2 * 64) + (64 * 2 + 2 * 32))
    assert count_parameters(model.trainable_weights) == adapters + 32 * 3 + 3 < full / 10

    weights = [v for v in model.weights if "seed_generator" not in v.path]
    before = [keras.ops.convert_to_numpy(v).copy() for v in weights]
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(random_inputs(batch=4, length=10), np.array([0, 1, 2, 0]), batch_size=2, epochs=1, verbose=0)
    changed = {
        v.path
        for v, old in zip(weights, before, strict=True)
        if not np.array_equal(keras.ops.convert_to_numpy(v), old)
    }
    expected = {v.path for v in weights if "lora_kernel" in v.path} | {"logits/kernel", "logits/bias"}
    assert len(expected) == 2 * 6 * 2 + 2 and changed == expected

    inputs = random_inputs(batch=2, length=8, seed=1)
    logits = keras.ops.convert_to_numpy(model(inputs))
    merged_copy(model).save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert not loaded.backbone.encoder_blocks[0].attention.query.lora_enabled
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(inputs)), logits, atol=1e-5)


def test_lora_refuses_a_bad_rank():
    model = kbert.BertClassifier(tiny_backbone(), num_classes=2)
    with pytest.raises(ValueError, match="LoRA rank=0; use a positive integer"):
        enable_lora(model, 0)
    with pytest.raises(ValueError, match="LoRA rank=40 exceeds the width of"):
        enable_lora(model, 40)


def _unit(rows):
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_pair_losses_match_numpy():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(6, 5)).astype("float32")  # pairs (a0, b0), (a1, b1), (a2, b2) interleaved
    first, second = _unit(embeddings[0::2]), _unit(embeddings[1::2])
    scores = np.array([0.9, -0.2, 0.4], "float32")
    cosine = np.sum(first * second, axis=-1)
    loss = CosineSimilarityLoss()(scores, embeddings)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss), np.mean((cosine - scores) ** 2), rtol=1e-5)

    logits = 20.0 * first @ second.T
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -np.mean(np.diag(log_softmax))
    loss = InBatchNegativesLoss()(np.zeros(3, "float32"), embeddings)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss), expected, rtol=1e-5)
    assert InBatchNegativesLoss.from_config(InBatchNegativesLoss(scale=5.0).get_config()).scale == 5.0
