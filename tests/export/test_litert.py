"""LiteRT export of every kbert model type: parity with Keras, quantization budgets, the string-in model, bad input.

Runs in a TensorFlow-backend process (see conftest.py); tiny models on a real vocabulary and real text.
"""

import json
import os

import numpy as np
import pytest

pytestmark = pytest.mark.backend_independent

from tests.export.conftest import tiny_task  # noqa: E402

FAST = dict(num_eval=8, latency_repeats=2)


@pytest.mark.parametrize(
    "kind", ["backbone", "classifier", "token_classifier", "question_answerer", "embedder"]
)
def test_each_model_type_runs_in_litert_and_matches_keras_fp32(kind, vocab_path, tmp_path):
    from kbert.export import export_litert, op_counts

    model, _ = tiny_task(kind, vocab_path)
    output = tmp_path / f"{kind}.tflite"
    report = export_litert(model, output, "fp32", sequence_length=32, vocabulary=vocab_path, **FAST)
    assert report["shipped"] == "fp32"
    for name, parity in report["outputs"].items():
        assert parity["max_abs_diff"] <= 1e-4, (name, parity)
    assert report["accuracy_drop_points"] == pytest.approx(0.0, abs=1e-9)
    flatbuffer = output.read_bytes()
    assert not [op for op in op_counts(flatbuffer) if op.startswith("CUSTOM")]
    saved = json.loads((tmp_path / f"{kind}.report.json").read_text())
    assert saved["file_size_bytes"] == report["file_size_bytes"] and saved["latency_ms"] > 0
    assert (tmp_path / f"{kind}.report.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "quantization, min_cosine, max_size_ratio",
    [("fp16", 0.9999, 0.55), ("dynamic", 0.999, 0.3), ("int8", 0.99, 0.3)],
)
def test_quantized_classifier_within_budget(quantization, min_cosine, max_size_ratio, vocab_path, tmp_path):
    from kbert.export import export_litert

    model, _ = tiny_task("classifier", vocab_path)
    report = export_litert(
        model, tmp_path / "model.tflite", quantization, sequence_length=32, num_calibration=16, logits=True,
        **FAST,
    )  # fmt: skip
    assert report["outputs"]["logits"]["mean_cosine"] >= min_cosine
    assert report["file_size_bytes"] <= max_size_ratio * report["keras_float32_weights_bytes"]
    assert report["accuracy_drop_points"] <= 1.0


def test_dynamic_sequence_length_accepts_any_length(vocab_path, tmp_path):
    from kbert.export import export_litert, interpreter

    model, tokenizer = tiny_task("embedder", vocab_path)
    output = tmp_path / "dynamic.tflite"
    report = export_litert(model, output, "fp32", sequence_length=32, dynamic_length=True, **FAST)
    # MediaPipe loads such a file but fails on its first text: the export says so and writes no MediaPipe metadata.
    assert not report["mediapipe"]["ready"] and "dynamic-length" in report["mediapipe"]["reason"]
    runner = interpreter(output.read_bytes()).get_signature_runner()
    for length in (5, 17):
        inputs = {
            "token_ids": np.full((1, length), 2000, "int32"),
            "segment_ids": np.zeros((1, length), "int32"),
            "padding_mask": np.ones((1, length), "int32"),
        }
        expected = np.asarray(model(inputs))
        np.testing.assert_allclose(runner(**inputs)["embedding"], expected, atol=1e-5)


def test_string_in_model_gives_kbert_ids_and_two_step_outputs(vocab_path, tmp_path):
    """Text pair in, logits out: ids equal kbert's tokenizer + packer on real text and hard cases, except the
    listed line with literal special tokens; vocabulary and labels travel in the file."""
    from kbert.export import HARD_CASES, export_litert, interpreter, read_metadata
    from kbert.text import SegmentPacker

    model, tokenizer = tiny_task("classifier", vocab_path)
    records = [
        {"text": "A quick brown fox.", "text_pair": "It jumps over the lazy dog!"},
        {"text": "Ünïcödé naïve café", "text_pair": "北京 " + "word " * 40},
        {"text": "only the first segment", "text_pair": ""},
    ]
    output = tmp_path / "text.tflite"
    report = export_litert(
        model, output, "dynamic", sequence_length=32, with_tokenizer=True, with_pair=True,
        eval_records=records, labels=["negative", "neutral", "positive"], latency_repeats=2,
    )  # fmt: skip
    checks = report["tokenizer_checks"]
    assert checks["lines"] == len(records) + len(HARD_CASES)
    assert [line["text"] for line in checks["differing_lines"]] == [
        "the [CLS] token and [SEP] literally, plus [MASK]"
    ]
    assert "literal special token" in checks["differing_lines"][0]["reason"]
    assert report["outputs"]["logits"]["mean_cosine"] > 0.999

    flatbuffer = output.read_bytes()
    metadata = read_metadata(flatbuffer)
    assert metadata["vocab.txt"].decode().splitlines() == tokenizer.vocabulary
    assert json.loads(metadata["labels.json"]) == ["negative", "neutral", "positive"]
    assert json.loads(metadata["kbert_config.json"])["inputs"] == ["text", "text_pair"]

    # Directly: the file's ids are the two-step path's ids (truncation of a long pair included).
    runner = interpreter(flatbuffer, custom_ops=True).get_signature_runner()
    packer = SegmentPacker(32, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    for record in records:
        result = runner(
            text=np.array([record["text"]], dtype=object),
            text_pair=np.array([record["text_pair"]], dtype=object),
        )
        packed = packer(tokenizer([record["text"]]), tokenizer([record["text_pair"]]))
        expected = np.asarray(packed["token_ids"])[:, : int(np.asarray(packed["padding_mask"]).sum())]
        np.testing.assert_array_equal(result["token_ids"], expected)
        np.testing.assert_allclose(result["logits"], np.asarray(model(packed)), atol=2e-3)


def test_graph_needing_flex_ops_fails_naming_op_and_layer():
    import keras
    import tensorflow as tf

    from kbert.export import ExportError
    from kbert.export.converter import convert_function

    class IncompleteGamma(keras.layers.Layer):
        def call(self, x):
            return tf.math.igamma(x, x)  # no LiteRT builtin: TF Select (Flex) only

    inputs = keras.Input((4,))
    model = keras.Model(inputs, IncompleteGamma(name="gamma_layer")(keras.layers.Dense(4)(inputs)))
    function = tf.function(lambda x: model(x), input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    with pytest.raises(ExportError, match=r"Igamma.*gamma_layer.*Flex"):
        convert_function(function, model.weights)


def test_unsupported_models_and_bad_input_raise_clear_errors(vocab_path, tmp_path):
    import keras

    import kbert
    from kbert.export import ExportError, export_litert

    model, _ = tiny_task("classifier", vocab_path)
    with pytest.raises(ValueError, match="BertPretrainer.*backbone"):
        export_litert(kbert.BertPretrainer(model.backbone), tmp_path / "p.tflite")
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="cannot export a Sequential"):
        export_litert(plain, tmp_path / "s.tflite")
    with pytest.raises(ExportError, match="representative set is empty"):
        export_litert(model, tmp_path / "e.tflite", "int8", representative_texts=["", "  "], **FAST)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match="cannot write the output"):
        export_litert(model, blocker / "x.tflite", "fp32", **FAST)
    assert not list(tmp_path.glob("*.tflite"))


def test_report_follows_the_tflite_and_a_failed_export_leaves_the_file_alone(
    vocab_path, tmp_path, monkeypatch
):
    """The .tflite is written first, then its report; a failed export writes a report with its "error" and
    neither writes nor removes the .tflite; an export killed mid-write leaves no report of another file."""
    from kbert.export import ExportError, export_litert, verify
    from tests.harness import folder_digest

    model, _ = tiny_task("classifier", vocab_path)
    output = tmp_path / "model.tflite"
    report_path = tmp_path / "model.report.json"
    write_report, calls = verify.write_report, []

    def checked_write_report(report, path):
        # What is on disk when the report is written: the .tflite, and no report of an earlier export.
        calls.append((output.exists() and output.read_bytes(), report_path.exists()))
        return write_report(report, path)

    monkeypatch.setattr(verify, "write_report", checked_write_report)
    with pytest.raises(ExportError, match="max_accuracy_drop=-1") as failed:
        export_litert(model, output, "fp16", sequence_length=16, max_accuracy_drop=-1, **FAST)
    report = json.loads(report_path.read_text())
    assert report["shipped"] is None and report["error"] == str(failed.value)
    assert calls == [(False, False)] and not output.exists()

    report = export_litert(model, output, "fp32", sequence_length=16, **FAST)
    assert calls[-1] == (output.read_bytes(), False)  # the failed export's report was removed first
    assert json.loads(report_path.read_text())["shipped"] == "fp32" and "error" not in report

    shipped = folder_digest(tmp_path)
    with pytest.raises(ExportError, match="the file already there is left as it was"):
        export_litert(model, output, "fp16", sequence_length=16, max_accuracy_drop=-1, **FAST)
    after = folder_digest(tmp_path)
    assert after["model.tflite"] == shipped["model.tflite"] and after.keys() == shipped.keys()
    assert json.loads(report_path.read_text())["error"]

    def interrupted(_):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_litert(model, output, "fp32", sequence_length=16, **FAST)
    assert folder_digest(tmp_path) == {"model.tflite": shipped["model.tflite"]}


def test_command_line_exports_a_kbert_save(vocab_path, tmp_path):
    import importlib.util

    from kbert.export import read_metadata
    from kbert.interop import save_kbert
    from tests.export.conftest import REPO

    model, _ = tiny_task("classifier", vocab_path)
    save_kbert(model, tmp_path / "saved")
    (tmp_path / "saved" / "labels.json").write_text(json.dumps(["a", "b", "c"]))
    spec = importlib.util.spec_from_file_location("tflite_cli", os.path.join(REPO, "export", "tflite.py"))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    output = tmp_path / "out" / "classifier.tflite"
    assert cli.main([
        "--model", str(tmp_path / "saved"), "--out", str(output), "--quantization", "dynamic", "--seq-len", "16",
        "--with-tokenizer", "--num-eval", "4", "--latency-repeats", "2",
    ]) == 0  # fmt: skip
    assert json.loads(read_metadata(output.read_bytes())["labels.json"]) == ["a", "b", "c"]
    report = json.loads((tmp_path / "out" / "classifier.report.json").read_text())
    assert report["shipped"] == "dynamic" and report["with_tokenizer"]
