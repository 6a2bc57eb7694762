import keras
import numpy as np
import pytest

import kbert
from tests.harness import BACKENDS, TINY, random_inputs, run_in_backend, tiny_backbone, to_numpy


def test_output_shapes_and_dtypes():
    backbone = tiny_backbone(output_hidden_states=True, output_attentions=True)
    outputs = to_numpy(backbone(random_inputs(batch=3, length=10)))
    assert outputs["sequence_output"].shape == (3, 10, 32)
    assert outputs["pooled_output"].shape == (3, 32)
    assert len(outputs["hidden_states"]) == TINY["num_layers"] + 1
    assert all(h.shape == (3, 10, 32) for h in outputs["hidden_states"])
    assert len(outputs["attentions"]) == TINY["num_layers"]
    assert all(a.shape == (3, 2, 10, 10) and a.dtype == np.float32 for a in outputs["attentions"])
    assert all(v.dtype == np.float32 for v in (outputs["sequence_output"], outputs["pooled_output"]))
    np.testing.assert_allclose(outputs["hidden_states"][-1], outputs["sequence_output"])
    assert np.all(np.abs(outputs["pooled_output"]) <= 1.0)  # tanh


def test_default_outputs_are_sequence_and_pooled():
    outputs = tiny_backbone()(random_inputs())
    assert sorted(outputs) == ["pooled_output", "sequence_output"]


def test_padding_does_not_change_real_positions():
    backbone = tiny_backbone()
    inputs = random_inputs(batch=3, length=10)
    padded = {key: np.pad(value, ((0, 0), (0, 7))) for key, value in inputs.items()}
    short = to_numpy(backbone(inputs))
    long = to_numpy(backbone(padded))
    mask = inputs["padding_mask"].astype(bool)
    np.testing.assert_allclose(
        long["sequence_output"][:, :10][mask], short["sequence_output"][mask], atol=1e-5
    )
    np.testing.assert_allclose(long["pooled_output"], short["pooled_output"], atol=1e-5)


def test_config_round_trip_and_keras_save(tmp_path):
    backbone = tiny_backbone(position_embedding="sinusoidal")
    inputs = random_inputs()
    expected = to_numpy(backbone(inputs))

    clone = kbert.BertBackbone.from_config(backbone.get_config())
    assert clone.get_config() == backbone.get_config()
    assert isinstance(clone.config, kbert.BertConfig) and clone.config == backbone.config
    clone.set_weights(backbone.get_weights())
    np.testing.assert_allclose(
        to_numpy(clone(inputs))["sequence_output"], expected["sequence_output"], atol=1e-6
    )

    path = tmp_path / "backbone.keras"
    backbone.save(path)
    loaded = keras.models.load_model(path)  # safe mode
    assert type(loaded) is kbert.BertBackbone
    for key in expected:
        np.testing.assert_array_equal(to_numpy(loaded(inputs))[key], expected[key])


def test_from_bert_config():
    config = kbert.BertConfig.named("tiny", vocabulary_size=50, max_sequence_length=16)
    backbone = kbert.BertBackbone.from_bert_config(config)
    assert backbone.config == config
    assert backbone.count_params() > 0


def test_model_saved_under_one_backend_loads_under_another(tmp_path):
    # Each backend's run saves and the next backend loads: tf -> jax -> torch -> tf over the three runs.
    here = keras.config.backend()
    other = BACKENDS[(BACKENDS.index(here) + 1) % len(BACKENDS)]
    backbone = tiny_backbone()
    inputs = random_inputs()
    path = tmp_path / "backbone.keras"
    backbone.save(path)
    np.savez(tmp_path / "inputs.npz", **inputs)
    np.save(tmp_path / "expected.npy", to_numpy(backbone(inputs))["sequence_output"])
    code = f"""
import keras, numpy as np, kbert
model = keras.models.load_model({str(path)!r})
assert type(model) is kbert.BertBackbone
inputs = dict(np.load({str(tmp_path / "inputs.npz")!r}))
out = keras.ops.convert_to_numpy(model(inputs)["sequence_output"])
print(float(np.abs(out - np.load({str(tmp_path / "expected.npy")!r})).max()))
"""
    max_difference = float(run_in_backend(other, code).strip().splitlines()[-1])
    assert max_difference <= 1e-5, f"{here} -> {other}: max |diff| {max_difference}"


def test_bool_padding_mask_is_accepted():
    backbone = tiny_backbone()
    inputs = random_inputs()
    as_bool = dict(inputs, padding_mask=inputs["padding_mask"].astype(bool))
    np.testing.assert_allclose(
        to_numpy(backbone(as_bool))["sequence_output"],
        to_numpy(backbone(inputs))["sequence_output"],
        atol=1e-6,
    )


class TestClearErrors:
    def test_heads_must_divide_hidden(self):
        with pytest.raises(ValueError, match="num_heads=3 does not divide hidden_dim=32"):
            tiny_backbone(num_heads=3)

    def test_sequence_longer_than_max(self):
        backbone = tiny_backbone()
        with pytest.raises(ValueError, match="sequence length 30 > max_sequence_length 24"):
            backbone(random_inputs(length=30))
        with pytest.raises(ValueError, match="max_sequence_length 24"):
            backbone.predict(random_inputs(length=30), verbose=0)

    @pytest.mark.parametrize("call", ["eager", "predict"])
    def test_token_id_out_of_vocabulary(self, call):
        backbone = tiny_backbone()
        inputs = random_inputs()
        inputs["token_ids"][0, 0] = TINY["vocabulary_size"]
        with pytest.raises(ValueError, match="token id 97 >= vocabulary_size 97"):
            backbone(inputs) if call == "eager" else backbone.predict(inputs, verbose=0)

    def test_negative_token_id(self):
        inputs = random_inputs()
        inputs["token_ids"][1, 1] = -1
        with pytest.raises(ValueError, match="negative token id -1"):
            tiny_backbone()(inputs)

    def test_segment_id_out_of_range(self):
        inputs = random_inputs()
        inputs["segment_ids"][0, 0] = 2
        with pytest.raises(ValueError, match="segment id 2 >= num_segments 2"):
            tiny_backbone()(inputs)

    def test_missing_input_key(self):
        inputs = random_inputs()
        del inputs["padding_mask"]
        with pytest.raises(ValueError, match=r"missing input key\(s\) \['padding_mask'\]"):
            tiny_backbone()(inputs)
        with pytest.raises(ValueError, match="a dict of inputs"):
            tiny_backbone()(random_inputs()["token_ids"])
