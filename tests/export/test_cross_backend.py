"""A model trained and saved under JAX or PyTorch exports like one trained under TensorFlow, and runs in MediaPipe.

Training runs in a fresh subprocess of that backend (which also shows the exporter refusing to run there); the
export runs here, on TensorFlow, and the LiteRT file matches the training backend's own outputs.
"""

import json

import numpy as np
import pytest

from tests.export.conftest import LABELS, REPO, labelled_texts
from tests.harness import run_in_backend

pytestmark = pytest.mark.backend_independent

TRAIN_AND_SAVE = """
import json, sys
sys.path.insert(0, {repo!r})
import numpy as np
from kbert.interop import save_kbert
from tests.export.conftest import train_classifier
model = train_classifier({vocab!r})
save_kbert(model, {folder!r})
inputs = model.preprocessor.preprocess(["a function that returns a list", "it raised an error"])
inputs = {{k: np.pad(v, ((0, 0), (0, 64 - v.shape[1]))) for k, v in inputs.items()}}
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
def test_model_trained_on_other_backend_exports_and_runs_in_mediapipe(backend, vocab_path, tmp_path):
    from kbert.export import export_litert, interpreter

    folder = str(tmp_path / f"trained_{backend}")
    code = TRAIN_AND_SAVE.format(repo=REPO, vocab=vocab_path, folder=folder)
    result = json.loads(run_in_backend(backend, code).splitlines()[-1])
    assert result["refused"] and "KERAS_BACKEND=tensorflow" in result["refused"]

    output = tmp_path / "model.tflite"
    records = [{"text": text, "label": LABELS[label]} for text, label in labelled_texts(200, skip=2000)]
    report = export_litert(
        folder, output, "fp32", sequence_length=64, eval_records=records, labels=LABELS, latency_repeats=2
    )
    assert report["outputs"]["probability"]["max_abs_diff"] <= 1e-5
    runner = interpreter(output.read_bytes()).get_signature_runner()
    for row, logits in enumerate(result["logits"]):
        inputs = {key: np.asarray(value, "int32")[row : row + 1] for key, value in result["inputs"].items()}
        expected = np.exp(logits) / np.sum(np.exp(logits))
        np.testing.assert_allclose(runner(**inputs)["probability"][0], expected, atol=1e-5)
    runtime = report["mediapipe"]["runtime"]
    assert runtime["label_names"] == LABELS
    agreeing = runtime["where_tokenizers_agree"]
    assert agreeing["top1_agreement"] >= 0.995 and agreeing["max_abs_diff_probability"] <= 1e-3, runtime
