"""LiteRT export tests run in a TensorFlow-backend process: the export's own requirement.

When the suite runs under another backend first (`KBERT_TEST_BACKENDS=jax`), each test here re-runs itself in a
fresh `KERAS_BACKEND=tensorflow` pytest subprocess instead of being skipped. Tests marked `every_backend`
(distillation trains on any backend) run in the backend of the pass like the model tests.
"""

import hashlib
import os
import re
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


def folder_digest(path):
    """`{relative path: sha256}` of every file under `path`, and `"<folder>"` for every folder: equal digests
    before and after a command mean it created, changed and removed nothing there."""
    digest = {}
    for folder, folders, files in os.walk(path):
        for name in folders:
            digest[os.path.relpath(os.path.join(folder, name), path)] = "<folder>"
        for name in files:
            with open(os.path.join(folder, name), "rb") as file:
                digest[os.path.relpath(os.path.join(folder, name), path)] = hashlib.sha256(
                    file.read()
                ).hexdigest()
    return digest


def run_command(arguments, cwd):
    """Runs `python *arguments` from `cwd` with the repository importable; returns the finished process."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, *arguments], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


# What TensorFlow's C++ logging prints on stderr at import, whatever TF_CPP_MIN_LOG_LEVEL says.
_NATIVE_LOG = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl::InitializeLog)")


def refusal(result):
    """The one-line message of a refused command: exit code 2, no traceback, `error: ...` as the whole of
    stderr (TensorFlow's native start-up log lines aside)."""
    assert result.returncode == 2, f"exit code {result.returncode}:\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    lines = [line for line in result.stderr.splitlines() if line.strip() and not _NATIVE_LOG.match(line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-4000:]
    return lines[0]
