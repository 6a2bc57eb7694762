"""Server formats beside the LiteRT file: a TF SavedModel and an ONNX file, any batch and length, equal to Keras."""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.backend_independent

from tests.export.conftest import tiny_task  # noqa: E402


def test_savedmodel_and_onnx_match_keras_at_any_batch_and_length(vocab_path, tmp_path):
    import onnxruntime
    import tensorflow as tf

    from kbert.export import export_litert

    model, _ = tiny_task("question_answerer", vocab_path)
    output = tmp_path / "qa.tflite"
    report = export_litert(
        model, output, "fp32", sequence_length=16, num_eval=4, latency_repeats=2,
        server_formats=("savedmodel", "onnx"),
    )  # fmt: skip
    for name in ("savedmodel", "onnx"):
        server = report["servers"][name]
        for parity in server["outputs"].values():
            assert parity["max_abs_diff"] <= 1e-5 and parity["min_cosine"] >= 0.99999, (name, parity)
        assert server["batched_max_abs_diff"] <= 1e-5
    assert json.loads((tmp_path / "qa.report.json").read_text())["servers"]["onnx"]["opset"] == 17

    rng = np.random.default_rng(0)
    inputs = {
        "token_ids": rng.integers(1000, 2000, (3, 9)).astype("int32"),
        "segment_ids": np.zeros((3, 9), "int32"),
        "padding_mask": np.ones((3, 9), "int32"),
    }
    expected = {key: np.asarray(value) for key, value in model(inputs).items()}
    signature = tf.saved_model.load(str(tmp_path / "qa_savedmodel")).signatures["serving_default"]
    saved = signature(**{key: tf.constant(value) for key, value in inputs.items()})
    session = onnxruntime.InferenceSession(str(tmp_path / "qa.onnx"), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    onnx = dict(zip(names, session.run(names, inputs), strict=True))
    for key, value in expected.items():
        np.testing.assert_allclose(saved[key].numpy(), value, atol=1e-5)
        np.testing.assert_allclose(onnx[key], value, atol=1e-5)


def test_unknown_server_format_is_refused(vocab_path, tmp_path):
    from kbert.export import export_litert

    model, _ = tiny_task("embedder", vocab_path)
    with pytest.raises(ValueError, match=r"server_formats \['torchscript'\].*savedmodel"):
        export_litert(model, tmp_path / "m.tflite", "fp32", server_formats=("torchscript",))
