"""A model trained and saved under JAX or PyTorch exports like one trained under TensorFlow.

Training runs in a fresh subprocess of that backend (which also shows the exporter refusing to run there); the
export runs here, on TensorFlow, and the LiteRT file matches the training backend's own outputs.
"""

import json

import numpy as np
import pytest

from tests.harness import run_in_backend

pytestmark = pytest.mark.backend_independent

TRAIN_AND_SAVE = """
import json, numpy as np, kbert
from kbert.interop import save_kbert
tokenizer = kbert.WordPieceTokenizer(vocabulary={vocab!r})
backbone = kbert.BertBackbone(vocabulary_size=tokenizer.vocabulary_size, num_layers=2, num_heads=2, hidden_dim=32,
                              intermediate_dim=64, max_sequence_length=64)
model = kbert.BertClassifier(backbone, num_classes=2)
model.preprocessor = kbert.BertPreprocessor(tokenizer, sequence_length=16)
texts = ["a good day", "a bad day", "the weather is fine", "it rained all week"] * 2
model.compile()
model.fit(texts, np.array([1, 0, 1, 0] * 2), epochs=1, batch_size=4, verbose=0)
save_kbert(model, {folder!r})
inputs = model.preprocessor.preprocess(["a good day", "it rained"])
inputs = {{k: np.pad(v, ((0, 0), (0, 16 - v.shape[1]))) for k, v in inputs.items()}}
try:
    from kbert.export import export_litert
    export_litert(model, {folder!r} + "/never.tflite")
    refused = None
except RuntimeError as error:
    refused = str(error)
print(json.dumps({{"inputs": {{k: v.tolist() for k, v in inputs.items()}},
                  "logits": np.asarray(model.predict(inputs, verbose=0)).tolist(), "refused": refused}}))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_model_trained_on_other_backend_exports_and_matches(backend, vocab_path, tmp_path):
    from kbert.export import export_litert, interpreter

    folder = str(tmp_path / f"trained_{backend}")
    result = json.loads(
        run_in_backend(backend, TRAIN_AND_SAVE.format(vocab=vocab_path, folder=folder)).splitlines()[-1]
    )
    assert result["refused"] and "KERAS_BACKEND=tensorflow" in result["refused"]

    output = tmp_path / "model.tflite"
    report = export_litert(folder, output, "fp32", sequence_length=16, num_eval=8, latency_repeats=2)
    assert report["outputs"]["logits"]["max_abs_diff"] <= 1e-4
    runner = interpreter(output.read_bytes()).get_signature_runner()
    for row, expected in enumerate(result["logits"]):
        inputs = {key: np.asarray(value, "int32")[row : row + 1] for key, value in result["inputs"].items()}
        np.testing.assert_allclose(runner(**inputs)["logits"][0], expected, atol=1e-4)
