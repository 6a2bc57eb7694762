"""Mixed precision and XLA compilation, on the models users train."""

import keras
import numpy as np
import pytest

import kbert
from tests.harness import random_inputs, tiny_backbone, to_numpy
from tests.models.test_pretrainer import pretraining_batch


def test_mixed_bfloat16_keeps_variables_layernorm_and_softmax_in_float32():
    reference = tiny_backbone(output_attentions=True, dropout=0.0)
    inputs = random_inputs(batch=2, length=12)
    keras.config.set_dtype_policy("mixed_bfloat16")
    backbone = tiny_backbone(output_attentions=True, dropout=0.0)
    backbone.set_weights(reference.get_weights())
    assert all(w.dtype == "float32" for w in backbone.weights)
    assert backbone.encoder_blocks[0].intermediate.compute_dtype == "bfloat16"

    outputs = to_numpy(backbone(inputs))
    assert str(outputs["sequence_output"].dtype) == "bfloat16"
    # The probabilities come out of a float32 softmax: rows sum to 1 far inside bfloat16's 4e-3 resolution.
    for probabilities in outputs["attentions"]:
        assert probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    # LayerNorm computes in float32: each output row is normalised to bfloat16 precision.
    sequence = outputs["sequence_output"].astype("float32")
    np.testing.assert_allclose(sequence.mean(-1), 0.0, atol=2e-2)
    # And the whole model stays close to float32.
    expected = to_numpy(reference(inputs))["sequence_output"]
    assert np.abs(sequence - expected).max() < 0.1


def test_a_model_built_in_bfloat16_saves_and_reloads_in_bfloat16(tmp_path):
    classifier = kbert.BertClassifier(tiny_backbone(dtype="bfloat16"), num_classes=2)
    assert classifier.dtype_policy.name == classifier.backbone.dtype_policy.name == "bfloat16"
    classifier.save(tmp_path / "classifier.keras")
    loaded = keras.models.load_model(tmp_path / "classifier.keras")
    assert loaded.backbone.encoder_blocks[0].intermediate.compute_dtype == "bfloat16"
    assert {str(weight.dtype) for weight in loaded.weights} == {"bfloat16"}


def test_mixed_bfloat16_pretrainer_trains():
    reference = kbert.BertPretrainer(tiny_backbone(dropout=0.0, attention_dropout=0.0))
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = kbert.BertPretrainer(tiny_backbone(dropout=0.0, attention_dropout=0.0))
    model.set_weights(reference.get_weights())
    x, y = pretraining_batch()
    # The tied masked-LM decoder (the largest product of a pretraining step) runs in bfloat16, not float32,
    # and its logits stay close to float32's; the loss casts them back to float32.
    logits = to_numpy(model(x)["mlm_logits"])
    assert str(logits.dtype) == "bfloat16"
    expected = to_numpy(reference(x)["mlm_logits"])
    assert np.abs(logits.astype("float32") - expected).max() < 0.05 * np.abs(expected).max() + 0.05
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(x, y, epochs=30, verbose=0)
    losses = history.history["mlm_loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]


@pytest.mark.skipif(
    keras.config.backend() == "torch", reason="jit_compile=True means XLA: TensorFlow and JAX"
)
def test_jit_compile_matches_eager_training_step():
    x, y = pretraining_batch()
    results = []
    for jit in (True, False):
        keras.utils.set_random_seed(1)
        model = kbert.BertPretrainer(tiny_backbone(dropout=0.0, attention_dropout=0.0))
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit)
        model.fit(x, y, epochs=2, verbose=0)
        results.append(model.evaluate(x, y, verbose=0, return_dict=True)["mlm_loss"])
    assert results[0] == pytest.approx(results[1], rel=1e-4)


def test_compiled_prediction_matches_eager_call():
    # Compiled predict: XLA on TensorFlow and JAX, torch.compile on PyTorch (where attention takes the explicit
    # softmax path, the eager call the fused one). The second row is padded, so the two masks must agree too.
    backbone = tiny_backbone(dropout=0.0)
    inputs = random_inputs(batch=2, length=12)
    expected = to_numpy(backbone(inputs))
    backbone.compile(jit_compile=True)
    compiled = backbone.predict_on_batch(inputs)
    for name in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(to_numpy(compiled[name]), expected[name], atol=1e-5)


@pytest.mark.skipif(keras.config.backend() != "torch", reason="torch.compile: PyTorch only")
def test_torch_compiled_fit_and_evaluate_compile_once_and_match_eager():
    # Keras sets Python state during the first step (gradients, the optimizer's weight-decay cache, the name
    # scope of layers first called in training) that a step compiled from the first call guards on: it would
    # compile a second time at the second call, as long again as the first compile.
    import torch

    from kbert.training import create_optimizer

    x, y = pretraining_batch()
    torch._dynamo.reset()
    results = []
    for jit in (True, False):
        keras.utils.set_random_seed(1)
        model = kbert.BertPretrainer(tiny_backbone(dropout=0.0, attention_dropout=0.0))
        model.compile(optimizer=create_optimizer("adamw", 1e-2, 1, 8), jit_compile=jit)
        with torch._dynamo.config.patch(error_on_recompile=True):
            model.fit(x, y, batch_size=2, epochs=2, verbose=0)  # 8 steps
            results.append(model.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)["mlm_loss"])
    assert results[0] == pytest.approx(results[1], rel=1e-4)
