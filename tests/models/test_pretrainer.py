import keras
import numpy as np
import pytest

import kbert
from tests.harness import TINY, random_inputs, tiny_backbone, to_numpy


def pretraining_batch(batch=8, length=16, predictions=4, seed=0):
    rng = np.random.default_rng(seed)
    x = random_inputs(batch=batch, length=length, real_lengths=[length] * batch, seed=seed)
    positions = np.stack([rng.choice(np.arange(1, length), predictions, replace=False) for _ in range(batch)])
    x["mask_positions"] = positions.astype("int32")
    y = {
        "mlm_ids": np.take_along_axis(x["token_ids"], positions, axis=1),
        "mlm_weights": np.ones((batch, predictions), "float32"),
        "pair_label": rng.integers(0, 2, size=(batch,)).astype("int32"),
    }
    x["token_ids"] = x["token_ids"].copy()
    np.put_along_axis(x["token_ids"], positions, 3, axis=1)  # 3 plays [MASK]
    return x, y


@pytest.mark.parametrize("objective, outputs", [("nsp", 2), ("sop", 2), ("mlm", 1)])
def test_outputs(objective, outputs):
    model = kbert.BertPretrainer(tiny_backbone(), objective=objective)
    x, _ = pretraining_batch(batch=3, predictions=5)
    result = to_numpy(model(x))
    assert len(result) == outputs
    assert result["mlm_logits"].shape == (3, 5, TINY["vocabulary_size"])
    if outputs == 2:
        assert result["pair_logits"].shape == (3, 2)


def test_decoder_is_tied_to_token_embedding():
    backbone = tiny_backbone()
    model = kbert.BertPretrainer(backbone)
    embedding = backbone.token_embedding.embeddings
    assert sum(w is embedding for w in model.trainable_weights) == 1
    # Only the MLM bias, transform and LayerNorm are new: no second [vocab, hidden] matrix.
    extra = model.count_params() - backbone.count_params()
    hidden, vocab = TINY["hidden_dim"], TINY["vocabulary_size"]
    assert extra == vocab + hidden * hidden + hidden + 2 * hidden + (hidden * 2 + 2)


def test_overfits_a_fixed_batch():
    backbone = tiny_backbone(dropout=0.0, attention_dropout=0.0)
    model = kbert.BertPretrainer(backbone, objective="nsp")
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    x, y = pretraining_batch()
    first = model.evaluate(x, y, verbose=0, return_dict=True)
    model.fit(x, y, epochs=150, batch_size=8, verbose=0)
    last = model.evaluate(x, y, verbose=0, return_dict=True)
    assert {"mlm_loss", "mlm_accuracy", "pair_loss", "pair_accuracy"} <= set(last)
    assert last["mlm_loss"] <= 0.1 * first["mlm_loss"], (first, last)
    assert last["mlm_accuracy"] == 1.0


def test_mlm_weights_exclude_padded_predictions():
    model = kbert.BertPretrainer(tiny_backbone(), objective="mlm")
    model.compile()
    x, y = pretraining_batch(batch=4)
    full = model.evaluate(x, y, verbose=0, return_dict=True)["mlm_loss"]
    # Padded prediction slots (weight 0) may hold any id: the loss must not move.
    y_padded = dict(y, mlm_ids=y["mlm_ids"].copy(), mlm_weights=y["mlm_weights"].copy())
    x_padded = dict(x, mask_positions=x["mask_positions"].copy())
    y_padded["mlm_weights"][:, -1] = 0.0
    y_padded["mlm_ids"][:, -1] = 0
    partial = model.evaluate(x_padded, y_padded, verbose=0, return_dict=True)["mlm_loss"]
    y_check = {k: v[:, :-1] for k, v in y.items() if k != "pair_label"}
    x_check = dict(x, mask_positions=x["mask_positions"][:, :-1])
    reference = model.evaluate(x_check, y_check, verbose=0, return_dict=True)["mlm_loss"]
    assert partial == pytest.approx(reference, rel=1e-5)
    assert full != pytest.approx(partial, rel=1e-5)


def test_save_and_load_keeps_weights_and_optimizer_state(tmp_path):
    model = kbert.BertPretrainer(tiny_backbone(dropout=0.0, attention_dropout=0.0), objective="sop")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x, y = pretraining_batch(batch=2)
    model.fit(x, y, epochs=2, verbose=0)
    expected = to_numpy(model(x))
    model.save(tmp_path / "pretrainer.keras")
    loaded = keras.models.load_model(tmp_path / "pretrainer.keras")
    assert type(loaded) is kbert.BertPretrainer and loaded.objective == "sop"
    assert loaded.backbone.token_embedding is loaded.mlm_head.token_embedding
    for key, value in to_numpy(loaded(x)).items():
        np.testing.assert_array_equal(value, expected[key])
    # Training continues where it stopped: same optimizer step count and the same next step.
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 2
    model.fit(x, y, epochs=1, verbose=0)
    loaded.fit(x, y, epochs=1, verbose=0)
    for key, value in to_numpy(loaded(x)).items():
        np.testing.assert_allclose(value, to_numpy(model(x))[key], atol=1e-5)


def test_clear_errors():
    backbone = tiny_backbone()
    with pytest.raises(ValueError, match="objective='mlm_nsp'"):
        kbert.BertPretrainer(backbone, objective="mlm_nsp")
    model = kbert.BertPretrainer(backbone)
    with pytest.raises(ValueError, match="computes its own losses"):
        model.compile(loss="mse")
    x, y = pretraining_batch(batch=2)
    del x["mask_positions"]
    with pytest.raises(ValueError, match=r"missing input key\(s\) \['mask_positions'\]"):
        model(x)
    x, y = pretraining_batch(batch=2, length=16)
    x["mask_positions"][0, 0] = 16
    with pytest.raises(ValueError, match="mask_positions must index the sequence"):
        model.predict(x, verbose=0)
    model.compile()
    x, y = pretraining_batch(batch=2)
    with pytest.raises(ValueError, match="needs targets"):
        model.fit(x, y["mlm_ids"], verbose=0)
