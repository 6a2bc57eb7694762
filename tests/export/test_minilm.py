"""The real all-MiniLM-L6-v2 embedder (seq 128): dynamic-range int8 is a quarter of fp32 and keeps its meaning."""

import pytest

pytestmark = [pytest.mark.backend_independent, pytest.mark.slow]


def test_minilm_embedder_dynamic_int8_size_and_cosine(minilm_dir, tmp_path):
    import kbert
    from kbert.export import export_litert
    from kbert.export.converter import convert_function
    from kbert.export.graphs import token_ids_function

    embedder = kbert.BertEmbedder.from_preset(minilm_dir, pooling="mean", normalize=True)
    fp32_size = len(convert_function(token_ids_function(embedder, 128), embedder.weights, "fp32"))
    report = export_litert(
        embedder, tmp_path / "minilm.tflite", "dynamic", 128, num_eval=24, latency_repeats=3
    )
    assert report["file_size_bytes"] <= 0.26 * fp32_size, (report["file_size_bytes"], fp32_size)
    assert report["outputs"]["embedding"]["mean_cosine"] >= 0.99
    assert report["eval_inputs"] == "token ids of real text"
