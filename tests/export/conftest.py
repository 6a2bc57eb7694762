"""LiteRT export tests run in a TensorFlow-backend process: the export's own requirement.

When the suite runs under another backend first (`KBERT_TEST_BACKENDS=jax`), each test here re-runs itself in a
fresh `KERAS_BACKEND=tensorflow` pytest subprocess instead of being skipped. Tests marked `every_backend` run in
the backend of the pass like the model tests.
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


# A real-text task the project builds itself: sentences of the built-in corpus (standard-library docstrings),
# labelled by what they describe.
LABELS = ["returns", "raises", "other"]


def labelled_texts(count, skip=0):
    """`count` (sentence, label index) pairs from the built-in corpus, after `skip` sentences."""
    from kbert.export.evaluation import default_texts

    def label(text):
        text = text.lower()
        if "return" in text:
            return 0
        return 1 if any(word in text for word in ("raise", "error", "exception")) else 2

    return [(text, label(text)) for text in default_texts(count, skip=skip)]


def train_classifier(vocab_path):
    """A tiny classifier (2 layers, width 32, the real vocabulary) fine-tuned on 1,500 labelled sentences in this
    process's backend: confident, non-uniform probabilities for the export checks."""
    import keras
    import numpy as np

    import kbert
    from kbert.training import create_optimizer

    keras.utils.set_random_seed(0)
    texts, labels = zip(*labelled_texts(1500), strict=True)
    tokenizer = kbert.WordPieceTokenizer(vocabulary=vocab_path)
    backbone = kbert.BertBackbone(
        vocabulary_size=tokenizer.vocabulary_size, num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=64,
    )  # fmt: skip
    model = kbert.BertClassifier(backbone, num_classes=len(LABELS))
    model.preprocessor = kbert.BertPreprocessor(tokenizer, sequence_length=64)
    model.compile(optimizer=create_optimizer(learning_rate=2e-3, warmup_steps=10, total_steps=94))
    model.fit(list(texts), np.asarray(labels), epochs=2, batch_size=32, verbose=0)
    return model
