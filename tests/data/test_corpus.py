"""Corpus readers and the built-in corpus: formats, bad input, and no imports of stdlib modules."""

import json
import subprocess
import sys

import pytest

from kbert import data
from kbert.data import corpus

pytestmark = pytest.mark.backend_independent


def test_bert_text_format(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(
        "First sentence.\nSecond one.\n\n\nOther document.\n  \nThird document\n", encoding="utf-8"
    )
    assert list(data.read_bert_text(path)) == [
        ["First sentence.", "Second one."],
        ["Other document."],
        ["Third document"],
    ]
    assert list(data.read_bert_text(str(tmp_path / "*.txt"))) == list(data.read_bert_text([path]))


def test_bad_input_never_crashes(tmp_path, tokenizer):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "bad.txt").write_bytes(b"caf\xff\xfe ok\x00 nul\n" + b"x" * 1_000_000 + b"\n\nalone\n")
    assert list(data.read_bert_text(tmp_path / "empty.txt")) == []
    documents = list(data.read_bert_text(tmp_path / "bad.txt"))
    assert documents[0][0] == "caf\ufffd\ufffd ok\x00 nul" and len(documents[0][1]) == 1_000_000
    assert documents[1] == ["alone"]  # a document of one sentence
    ids = list(data.tokenize_documents(documents, tokenizer))
    assert ids[0][0] == tokenizer("caf ok nul").numpy().tolist() and ids[0][1] == [tokenizer.unk_id]
    instances = data.create_instances(ids, 32, tokenizer.cls_id, tokenizer.sep_id, seed=0)
    assert instances and all(len(instance.token_ids) <= 32 for instance in instances)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        list(data.read_bert_text(tmp_path / "missing.txt"))


def test_jsonl_documents_are_split_into_sentences(tmp_path):
    path = tmp_path / "docs.jsonl"
    lines = [
        {"text": "One sentence here. See e.g. Python docs! Mr. Smith stays."},
        {"other": 1},
        "not json {",
        {"text": "Line one\nLine two."},
    ]
    path.write_text(
        "\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines) + "\n\n", encoding="utf-8"
    )
    assert list(data.read_jsonl(path)) == [
        ["One sentence here.", "See e.g. Python docs!", "Mr. Smith stays."],
        ["Line one", "Line two."],
    ]


def test_builtin_corpus_is_large_real_text():
    documents = data.builtin_corpus()
    sentences = [sentence for document in documents for sentence in document]
    assert len(documents) > 3000 and len(sentences) > 10000
    assert all(len(sentence.split()) >= 3 for sentence in sentences)
    assert not any(sentence.startswith(">>>") for sentence in sentences)
    assert data.builtin_corpus(max_files=10) == data.builtin_corpus(max_files=10)


def test_builtin_corpus_imports_no_stdlib_module():
    # `this` and `antigravity` act on import (print the Zen, open a browser); parsing must not import them.
    # The module is loaded from its file alone (no TensorFlow import) in a fresh interpreter.
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('corpus', {corpus.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert len(module.builtin_corpus()) > 3000\n"
        "print(sorted({'this', 'antigravity', 'turtle', 'tkinter'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert "Beautiful is better than ugly" not in result.stdout
