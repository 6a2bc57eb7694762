"""The pretraining entry point end to end, on a small slice of the built-in corpus."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import kbert
from kbert.data import builtin_corpus
from kbert.training.pretraining import PretrainingConfig, pretrain

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "docstrings.txt"
    documents = builtin_corpus(max_files=40)
    path.write_text("\n\n".join("\n".join(document) for document in documents) + "\n", encoding="utf-8")
    return path


def test_pretrain_writes_a_kbert_save_and_metrics(corpus_file, tmp_path):
    config = PretrainingConfig(
        corpus=[str(corpus_file)],
        vocab_size=600,
        steps=15,
        grad_accum=2,  # 30 batches, 15 updates
        checkpoint_every=5,
        warmup_steps=3,
        batch_size=8,
        seq_len=32,
        max_predictions=5,
        eval_batches=2,
        out=str(tmp_path / "run"),
    )
    metrics = pretrain(config)
    out = tmp_path / "run"
    for name in (
        "model.keras",
        "vocab.txt",
        "tokenizer_config.json",
        "config.json",
        "loss.png",
        "metrics.json",
    ):
        assert (out / name).is_file(), name
    written = json.loads((out / "metrics.json").read_text())
    assert written == pytest.approx(metrics)
    for key in (
        "initial_mlm_loss",
        "final_mlm_loss",
        "initial_mlm_accuracy",
        "final_mlm_accuracy",
        "final_pair_accuracy",
        "steps",
        "tokens_per_second",
        "wall_seconds",
    ):
        assert key in written
    assert written["final_mlm_loss"] < written["initial_mlm_loss"]
    assert written["steps"] == 15 and written["tokens_per_second"] > 0
    assert len(json.loads((out / "history.json").read_text())["mlm_loss"]) == 3
    state = json.loads((out / "checkpoints" / "ckpt-000000030.json").read_text())
    assert state["batches"] == 30 and (out / "checkpoints" / state["weights"]).is_file()
    assert any((out / "logs" / "train").iterdir())  # TensorBoard events
    model = keras.models.load_model(out / "model.keras")
    assert isinstance(model, kbert.BertPretrainer)
    vocabulary = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert model.backbone.config.vocabulary_size == len(vocabulary) <= 600
    assert kbert.BertConfig.from_json(out / "config.json") == model.backbone.config

    # --init: continue pretraining from that save (LM adaptation) starts where the first run ended.
    again = pretrain(
        dataclasses.replace(
            config,
            init=str(out),
            vocab_size=0,
            steps=2,
            checkpoint_every=2,
            warmup_steps=1,
            out=str(tmp_path / "adapted"),
        )
    )
    assert again["initial_mlm_loss"] == pytest.approx(written["final_mlm_loss"], rel=1e-4)
    assert (tmp_path / "adapted" / "vocab.txt").read_text(encoding="utf-8") == (out / "vocab.txt").read_text(
        encoding="utf-8"
    )


@pytest.mark.backend_independent
def test_command_line_help_explains_every_flag():
    result = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "pretrain.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in (
        "--backend",
        "--corpus",
        "--vocab",
        "--init",
        "--vocab-size",
        "--size",
        "--config",
        "--seq-len",
        "--batch-size",
        "--steps",
        "--lr",
        "--warmup-steps",
        "--weight-decay",
        "--optimizer",
        "--objective",
        "--whole-word-masking",
        "--mixed-precision",
        "--jit",
        "--grad-accum",
        "--checkpoint-every",
        "--data-parallel",
        "--model-parallel",
        "--seed",
        "--out",
    ):
        assert flag in result.stdout, flag


def test_checkpoint_every_must_divide_steps(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every=7 must divide steps=30"):
        pretrain(PretrainingConfig(steps=30, checkpoint_every=7, out=str(tmp_path / "run")))


def test_bad_corpus_path_is_named(tmp_path):
    with pytest.raises(ValueError, match="no corpus file matches"):
        pretrain(PretrainingConfig(corpus=[str(tmp_path / "missing*.txt")], out=str(tmp_path / "run")))
