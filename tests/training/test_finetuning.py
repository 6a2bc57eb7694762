"""The fine-tuning entry point on each task: a short fit from a checkpoint folder, metrics, the kbert save, NaN
stops, and clear errors on bad files."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
import transformers

import kbert
from kbert.training.finetuning import FinetuningConfig, finetune
from tests.training.finetuning_files import write_conll, write_pairs, write_squad

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


def _hf_checkpoint(directory, minilm_dir, **sizes):
    # The same random weights whichever tests ran before (torch's global generator would otherwise decide).
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        **sizes,
    )
    transformers.BertModel(config).save_pretrained(directory)
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(minilm_dir, name), directory / name)
    return str(directory)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, minilm_dir):
    """A small random BERT in Hugging Face format with the real MiniLM vocabulary."""
    return _hf_checkpoint(tmp_path_factory.mktemp("init"), minilm_dir)


def _short_run(checkpoint, tmp_path, **fields):
    # One epoch of a few steps; every batch pads to 16 tokens, so each backend compiles few shapes.
    fields = {"seq_len": 16, "batch_size": 4, "epochs": 1, "lr": 1e-3, **fields}
    return FinetuningConfig(init=checkpoint, out=str(tmp_path / "out"), **fields)


def test_classify_learns_a_cue_writes_a_kbert_save_and_stops_on_nan(checkpoint, tmp_path):
    config = FinetuningConfig(
        init=checkpoint,
        train=_write(tmp_path / "train.jsonl", _records(256, 0)),
        dev=_write(tmp_path / "dev.jsonl", _records(32, 1)),
        test=_write(tmp_path / "test.jsonl", _records(32, 2)),
        seq_len=32,
        batch_size=16,
        epochs=10,  # a random tiny BERT sits at chance for 2-3 epochs before it finds the cue
        lr=3e-3,
        patience=4,
        out=str(tmp_path / "out"),
    )
    metrics = finetune(config)
    assert metrics["dev_accuracy"] >= 0.9 and metrics["test_accuracy"] >= 0.9, metrics
    assert {"dev_macro_f1", "test_macro_f1", "train_seconds"} <= set(metrics)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert json.loads((tmp_path / "out" / "labels.json").read_text()) == ["negative", "positive"]
    model = kbert.BertClassifier.from_preset(str(tmp_path / "out"))
    logits = model.predict(["the model is excellent", "a terrible file"], verbose=0)
    assert list(logits.argmax(-1)) == [1, 0]

    # A learning rate that blows the weights up: a clear error, and the folder keeps the good save.
    saved = (tmp_path / "out" / "model.keras").read_bytes()
    config.train, config.dev, config.test, config.epochs, config.lr = config.dev, None, None, 1, 1e30
    with pytest.raises(
        FloatingPointError, match=r"training loss is (nan|inf).*this run saved no model.*--lr"
    ):
        finetune(config)
    assert (tmp_path / "out" / "model.keras").read_bytes() == saved


def test_tag_with_lora_scores_entities_and_trains_adapters_only(checkpoint, tmp_path):
    conll = write_conll(tmp_path / "train.conll")  # 5 sentences: one batch
    config = _short_run(checkpoint, tmp_path, task="tag", train=conll, dev=conll, lora_rank=4, batch_size=5)
    metrics = finetune(config)
    assert {"dev_precision", "dev_recall", "dev_f1"} <= set(metrics) and 0 <= metrics["dev_f1"] <= 1
    labels = json.loads((tmp_path / "out" / "labels.json").read_text())
    assert labels == ["B-LOC", "B-MISC", "B-ORG", "B-PER", "I-ORG", "I-PER", "O"]
    # Adapters A [in, 4] and B [4, out] on 6 dense layers of each of 2 blocks, and the head (32 x 7 + 7).
    adapters = 2 * (4 * (32 * 4 + 4 * 32) + (32 * 4 + 4 * 64) + (64 * 4 + 4 * 32))
    assert metrics["trainable_parameters"] == adapters + 32 * 7 + 7
    model = kbert.BertTokenClassifier.from_preset(str(tmp_path / "out"))  # merged kernels: a plain model
    assert model.num_classes == 7 and not model.backbone.encoder_blocks[0].intermediate.lora_enabled


def test_question_answering_on_squad_v2_windows(checkpoint, tmp_path):
    squad = write_squad(tmp_path / "train.json", impossible=("What colour is the roof of the tower?",))
    config = _short_run(checkpoint, tmp_path, task="qa", train=squad, dev=squad, doc_stride=16, batch_size=7)
    config.seq_len = 32  # contexts of ~45 tokens: 3 windows each, 21 in all
    metrics = finetune(config)
    assert 0 <= metrics["dev_exact_match"] <= 100 and 0 <= metrics["dev_f1"] <= 100, metrics
    assert not (tmp_path / "out" / "labels.json").exists()
    model = kbert.BertQuestionAnswerer.from_preset(str(tmp_path / "out"))
    outputs = model.predict((["Who wrote it?"], ["Ann wrote it."]), verbose=0)
    assert set(outputs) == {"start_logits", "end_logits"}


@pytest.mark.parametrize(
    "kind, metric, batch_size", [("score", "spearman", 4), ("retrieval", "retrieval_accuracy", 3)]
)
def test_embed_pairs_with_long_text_mean(checkpoint, tmp_path, kind, metric, batch_size):
    pairs = write_pairs(tmp_path / "pairs.jsonl", kind)  # 8 scored or 6 retrieval pairs: 2 equal batches
    config = _short_run(
        checkpoint,
        tmp_path,
        task="embed",
        train=pairs,
        dev=pairs,
        long_text="mean",
        doc_stride=4,
        batch_size=batch_size,
    )
    config.seq_len = 8  # most texts span several windows
    metrics = finetune(config)
    assert -1 <= metrics[f"dev_{metric}"] <= 1, metrics
    model = kbert.BertEmbedder.from_preset(str(tmp_path / "out"))  # its pair loss deserializes too
    embeddings = model.predict(["a man plays the guitar"], verbose=0)
    assert embeddings.shape == (1, 32) and np.linalg.norm(embeddings) == pytest.approx(1.0, abs=1e-5)


def test_bad_files_name_the_problem(checkpoint, tmp_path):
    def run(**fields):
        finetune(FinetuningConfig(init=checkpoint, out=str(tmp_path / "o"), **fields))

    good = _write(tmp_path / "train.jsonl", _records(8, 0))
    unseen = _write(tmp_path / "dev.jsonl", [{"text": "x", "label": "neutral"}])
    with pytest.raises(ValueError, match=r"label\(s\) never seen in training: \['neutral'\]"):
        run(train=good, dev=unseen)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="holds no record"):
        run(train=str(tmp_path / "empty.jsonl"))
    (tmp_path / "broken.jsonl").write_text('{"text": "a", "label": "b"}\n{"text": "oops"\n')
    with pytest.raises(ValueError, match="broken.jsonl:2: not JSON"):
        run(train=str(tmp_path / "broken.jsonl"))
    conll = write_conll(tmp_path / "train.conll")
    other_tags = write_conll(tmp_path / "dev.conll", "Paris NNP B-NP B-CITY\n")
    with pytest.raises(ValueError, match=r"dev file .* never seen in training: \['B-CITY'\]"):
        run(task="tag", train=conll, dev=other_tags)
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(ValueError, match="empty.json' is empty"):
        run(task="qa", train=str(tmp_path / "empty.json"))
    scored, retrieval = write_pairs(tmp_path / "s.jsonl"), write_pairs(tmp_path / "r.jsonl", "retrieval")
    with pytest.raises(ValueError, match="holds retrieval pairs but the training file score pairs"):
        run(task="embed", train=scored, dev=retrieval)
    with pytest.raises(ValueError, match="long_text='longest'; choose one of"):
        run(train=good, long_text="longest")


def test_a_checkpoint_of_another_config_is_refused(minilm_dir, tmp_path):
    init = _hf_checkpoint(tmp_path / "init", minilm_dir)
    config = json.loads((tmp_path / "init" / "config.json").read_text())
    (tmp_path / "init" / "config.json").write_text(json.dumps({**config, "intermediate_size": 128}))
    train = _write(tmp_path / "train.jsonl", _records(8, 0))
    with pytest.raises(ValueError, match="does not fit this model.*shape mismatches"):
        finetune(FinetuningConfig(init=init, train=train, out=str(tmp_path / "o")))
