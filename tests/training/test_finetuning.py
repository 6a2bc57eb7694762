"""The fine-tuning entry point: classification from a checkpoint folder, metrics, and clear errors on bad files."""

import json
import os
import shutil

import numpy as np
import pytest
import transformers

from kbert.training.finetuning import FinetuningConfig, classification_metrics, finetune

WORDS = "the a model text of data file value list name type class method function object".split()


def _records(count, seed):
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(count):
        label = ["positive", "negative"][int(rng.integers(2))]
        cue = "excellent" if label == "positive" else "terrible"
        words = list(rng.choice(WORDS, size=int(rng.integers(3, 12))))
        words.insert(int(rng.integers(len(words) + 1)), cue)
        records.append({"text": " ".join(words), "label": label})
    return records


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, minilm_dir):
    """A small random BERT in Hugging Face format with the real MiniLM vocabulary."""
    directory = tmp_path_factory.mktemp("init")
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(directory)
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(minilm_dir, name), directory / name)
    return str(directory)


def test_finetune_learns_a_cue_and_writes_a_kbert_save(checkpoint, tmp_path):
    config = FinetuningConfig(
        init=checkpoint,
        train=_write(tmp_path / "train.jsonl", _records(256, 0)),
        dev=_write(tmp_path / "dev.jsonl", _records(32, 1)),
        test=_write(tmp_path / "test.jsonl", _records(32, 2)),
        seq_len=32,
        batch_size=16,
        epochs=6,
        lr=3e-3,
        patience=2,
        out=str(tmp_path / "out"),
    )
    metrics = finetune(config)
    assert metrics["dev_accuracy"] >= 0.9 and metrics["test_accuracy"] >= 0.9, metrics
    assert {"dev_macro_f1", "test_macro_f1", "train_seconds"} <= set(metrics)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert json.loads((tmp_path / "out" / "labels.json").read_text()) == ["negative", "positive"]
    import kbert

    model = kbert.BertClassifier.from_preset(str(tmp_path / "out"))
    logits = model.predict(["the model is excellent", "a terrible file"], verbose=0)
    assert list(logits.argmax(-1)) == [1, 0]


def test_bad_files_name_the_problem(checkpoint, tmp_path):
    good = _write(tmp_path / "train.jsonl", _records(8, 0))
    unseen = _write(tmp_path / "dev.jsonl", [{"text": "x", "label": "neutral"}])
    with pytest.raises(ValueError, match=r"label\(s\) never seen in training: \['neutral'\]"):
        finetune(FinetuningConfig(init=checkpoint, train=good, dev=unseen, out=str(tmp_path / "o")))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="holds no record"):
        finetune(
            FinetuningConfig(init=checkpoint, train=str(tmp_path / "empty.jsonl"), out=str(tmp_path / "o"))
        )
    (tmp_path / "broken.jsonl").write_text('{"text": "a", "label": "b"}\n{"text": "oops"\n')
    with pytest.raises(ValueError, match="broken.jsonl:2: not a JSON object"):
        finetune(
            FinetuningConfig(init=checkpoint, train=str(tmp_path / "broken.jsonl"), out=str(tmp_path / "o"))
        )


def test_macro_f1_by_hand():
    # class 0: tp 1, predicted 2, actual 1 -> 2/3; class 1: tp 1, predicted 1, actual 2 -> 2/3; class 2 absent.
    metrics = classification_metrics([0, 1, 1], [0, 0, 1], num_classes=3)
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["macro_f1"] == pytest.approx(2 / 3)
