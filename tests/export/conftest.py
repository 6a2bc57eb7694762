"""LiteRT export tests run in a TensorFlow-backend process: the export's own requirement.

When the suite runs under another backend first (`KBERT_TEST_BACKENDS=jax`), each test here re-runs itself in a
fresh `KERAS_BACKEND=tensorflow` pytest subprocess instead of being skipped. Tests marked `every_backend`
(distillation trains on any backend) run in the backend of the pass like the model tests.
"""

import os
import subprocess
import sys

import keras
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pytest_configure(config):
    config.addinivalue_line("markers", "every_backend: an export-folder test that runs on every backend")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if keras.backend.backend() == "tensorflow" or pyfuncitem.get_closest_marker("every_backend"):
        return None
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", pyfuncitem.nodeid],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"tensorflow subprocess failed:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
    )
    return True


@pytest.fixture(scope="session")
def vocab_path(minilm_dir):
    """A real BERT vocabulary (uncased, 30,522 tokens) for the tiny models, so tokenization is real."""
    return os.path.join(minilm_dir, "vocab.txt")


def tiny_task(kind, vocab_path, **kwargs):
    """A tiny kbert model of `kind` on the real vocabulary, with a preprocessor (raw text works)."""
    import kbert

    tokenizer = kbert.WordPieceTokenizer(vocabulary=vocab_path)
    backbone = kbert.BertBackbone(
        vocabulary_size=tokenizer.vocabulary_size, num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=64, **kwargs,
    )  # fmt: skip
    models = {
        "backbone": lambda: backbone,
        "classifier": lambda: kbert.BertClassifier(backbone, num_classes=3),
        "token_classifier": lambda: kbert.BertTokenClassifier(backbone, num_classes=5),
        "question_answerer": lambda: kbert.BertQuestionAnswerer(backbone),
        "embedder": lambda: kbert.BertEmbedder(backbone, pooling="mean", normalize=True),
    }
    model = models[kind]()
    if kind != "backbone":
        model.preprocessor = kbert.BertPreprocessor(tokenizer, sequence_length=64)
    return model, tokenizer
