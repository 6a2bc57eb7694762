import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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
