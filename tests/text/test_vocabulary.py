"""Vocabulary learning: a usable vocab.txt from the built-in corpus."""

import pytest

from kbert.data import builtin_corpus
from kbert.text import WordPieceTokenizer, learn_vocabulary

pytestmark = pytest.mark.backend_independent


def test_learned_vocabulary_tokenizes_the_corpus(tmp_path):
    sentences = [sentence for document in builtin_corpus(max_files=60) for sentence in document]
    path = tmp_path / "vocab.txt"
    vocabulary = learn_vocabulary(sentences, 800, output_path=path)
    assert vocabulary[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert 700 <= len(vocabulary) <= 800 and len(set(vocabulary)) == len(vocabulary)
    assert any(token.startswith("##") for token in vocabulary)
    tokenizer = WordPieceTokenizer(path)
    ids = tokenizer(sentences[:500]).flat_values.numpy()
    assert (ids == tokenizer.unk_id).mean() < 0.01
    assert tokenizer.detokenize(tokenizer("the value is returned.")).numpy() == b"the value is returned."


def test_too_small_vocabulary_size_raises():
    with pytest.raises(ValueError, match="vocabulary_size=5"):
        learn_vocabulary(["a b c"], 5)
