"""A kbert save records the vocabulary it was trained with, and loading refuses a vocab.txt that is not it; a
pretraining save (no preprocessor) loads as a task model that takes raw text."""

import keras
import numpy as np
import pytest

import kbert
from kbert.interop.saving import save_kbert
from tests.harness import TINY, tiny_backbone

TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
    f"w{i}" for i in range(TINY["vocabulary_size"] - 5)
]


def _write_vocabulary(folder, tokens):
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")


def test_a_vocab_txt_that_is_not_the_models_is_refused(tmp_path):
    classifier = kbert.BertClassifier(tiny_backbone(), num_classes=2)
    classifier.preprocessor = kbert.BertPreprocessor(kbert.WordPieceTokenizer(TOKENS), sequence_length=16)
    save_kbert(classifier, tmp_path)
    record = keras.models.load_model(tmp_path / "model.keras").vocabulary_record
    assert record["vocabulary_size"] == len(TOKENS) and len(record["vocabulary_sha256"]) == 64
    assert kbert.BertClassifier.from_preset(tmp_path).predict(["w1 w2"], verbose=0).shape == (1, 2)

    swapped = list(TOKENS)
    swapped[10], swapped[11] = swapped[11], swapped[10]  # same size: only the fingerprint tells
    _write_vocabulary(tmp_path, swapped)
    with pytest.raises(
        ValueError, match=r"vocab.txt \(97 tokens, sha256 \w+\) is not the vocabulary .*model.keras"
    ):
        kbert.BertClassifier.from_preset(tmp_path)


def test_a_save_without_the_record_is_checked_by_size(tmp_path):
    backbone = tiny_backbone()
    backbone.save(tmp_path / "model.keras")  # no tokenizer known: no record
    _write_vocabulary(tmp_path, TOKENS + ["extra"])
    with pytest.raises(ValueError, match=r"has 98 tokens but the embedding of .*model.keras has 97 rows"):
        kbert.BertBackbone.from_preset(tmp_path)


def test_a_pretraining_save_loads_as_a_task_that_takes_text(tmp_path):
    tokenizer = kbert.WordPieceTokenizer(TOKENS)
    pretrainer = kbert.BertPretrainer(tiny_backbone(), objective="nsp")
    pretrainer.record_vocabulary(tokenizer)
    pretrainer.save(tmp_path / "model.keras")
    tokenizer.save_to_preset(tmp_path)
    classifier = kbert.BertClassifier.from_preset(tmp_path, num_classes=3)
    assert classifier.preprocessor.tokenizer.vocabulary == TOKENS
    logits = classifier.predict(["w1 w2 w3", "w4"], verbose=0)
    assert logits.shape == (2, 3) and np.isfinite(logits).all()


def test_a_file_that_is_not_a_keras_archive_is_named(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=r"model.keras' is not a .keras file \(not a zip archive"):
        kbert.BertClassifier.from_preset(tmp_path)
