"""The edge graph: export-time rewrites, full-int8 remedies in order, the float output projections of int8-mixed."""

import pytest

pytestmark = pytest.mark.backend_independent

from tests.export.conftest import tiny_task  # noqa: E402


def test_rewrites_drop_index_wrap_and_mask_selects_without_changing_outputs(vocab_path, tmp_path):
    from kbert.export import export_litert, op_counts

    model, _ = tiny_task("embedder", vocab_path)
    output = tmp_path / "embedder.tflite"
    report = export_litert(model, output, "fp32", sequence_length=32, num_eval=8, latency_repeats=2)
    assert report["graph_rewrites"] == {"embedding_index_wrap_removed": 2, "attention_mask_select_to_bias": 2}
    assert report["outputs"]["embedding"]["max_abs_diff"] <= 1e-5  # eval sentences are padded to 32
    counts = op_counts(output.read_bytes())
    # One select computes the mask bias for both layers (XNNPACK has no SELECT_V2); no int32 index arithmetic.
    assert counts["SELECT_V2"] == 1 and "LESS" not in counts and "SELECT" not in counts


def test_full_int8_tries_16x8_then_int8_mixed_and_reports_each(vocab_path, tmp_path):
    from kbert.export import ExportError, export_litert

    model, _ = tiny_task("embedder", vocab_path)
    with pytest.raises(ExportError, match=r"int8: drop .*; 16x8: drop .*; int8-mixed: drop"):
        export_litert(
            model, tmp_path / "m.tflite", "int8", sequence_length=16, num_eval=8, num_calibration=16,
            latency_repeats=2, max_accuracy_drop=-1,
        )  # fmt: skip
    import json

    report = json.loads((tmp_path / "m.report.json").read_text())
    attempts = {attempt["quantization"]: attempt for attempt in report["attempts"]}
    assert list(attempts) == ["int8", "16x8", "int8-mixed"]
    assert all(attempt["remedy"] and "error" not in attempt for attempt in attempts.values())
    assert attempts["16x8"]["graph_rewrites"]["squared_difference_split"] == 5  # 2 x 2 blocks + embeddings
    assert attempts["int8-mixed"]["outputs"]["embedding"]["mean_cosine"] >= 0.99


def test_int8_mixed_keeps_the_output_projections_float(vocab_path):
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    from kbert.export.converter import convert_function, output_projections
    from kbert.export.graphs import token_ids_function

    model, _ = tiny_task("backbone", vocab_path)
    function = token_ids_function(model, 16)
    assert len(output_projections(convert_function(function, model.weights, "fp32"))) == 4

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(8):
            ids = rng.integers(1000, 3000, (1, 16)).astype("int32")
            yield {"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": np.ones_like(ids)}

    mixed = schema.ModelT.InitFromPackedBuf(
        convert_function(function, model.weights, "int8-mixed", representative), 0
    )
    graph = mixed.subgraphs[0]
    fully_connected = [
        op for op in graph.operators
        if mixed.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.FULLY_CONNECTED
    ]  # fmt: skip
    weight_types = [graph.tensors[op.inputs[1]].type for op in fully_connected]
    # 2 blocks x (query, key, value, intermediate + pooler) in int8; attention and feed-forward outputs float.
    assert weight_types.count(schema.TensorType.FLOAT32) == 4
    assert weight_types.count(schema.TensorType.INT8) == len(fully_connected) - 4
