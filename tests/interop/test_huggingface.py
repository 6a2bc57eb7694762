"""Hugging Face checkpoints in and out, verified on the real all-MiniLM-L6-v2 weights and on small random ones."""

import json

import numpy as np
import pytest
import torch
import transformers

import kbert
from kbert.interop import save_huggingface
from tests.harness import to_numpy


def _batches(sentences, tokenizer, batch_size=16):
    packer = kbert.SegmentPacker(128, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    for start in range(0, len(sentences), batch_size):
        packed = packer(tokenizer(sentences[start : start + batch_size]))
        inputs = {key: np.asarray(value) for key, value in packed.items()}
        length = int(inputs["padding_mask"].sum(1).max())  # pad to the batch's longest
        yield {key: value[:, :length] for key, value in inputs.items()}


def _reference_model(directory, cls=transformers.BertModel):
    return cls.from_pretrained(directory).eval()


def _torch_inputs(inputs):
    return {
        "input_ids": torch.tensor(inputs["token_ids"], dtype=torch.long),
        "token_type_ids": torch.tensor(inputs["segment_ids"], dtype=torch.long),
        "attention_mask": torch.tensor(inputs["padding_mask"], dtype=torch.long),
    }


def test_minilm_backbone_matches_transformers(minilm_dir, real_sentences):
    backbone = kbert.BertBackbone.from_preset(minilm_dir)
    tokenizer = kbert.WordPieceTokenizer.from_preset(minilm_dir)
    reference = _reference_model(minilm_dir)
    worst = 0.0
    for inputs in _batches(real_sentences, tokenizer):
        ours = to_numpy(backbone(inputs))["sequence_output"]
        with torch.no_grad():
            theirs = reference(**_torch_inputs(inputs)).last_hidden_state.numpy()
        real = inputs["padding_mask"].astype(bool)
        worst = max(worst, float(np.abs(ours - theirs)[real].max()))
    assert worst <= 1e-4, worst


def test_minilm_embedder_matches_sentence_transformers(minilm_dir, real_sentences):
    from sentence_transformers import SentenceTransformer

    embedder = kbert.BertEmbedder.from_preset(minilm_dir, pooling="mean", normalize=True)
    tokenizer = kbert.WordPieceTokenizer.from_preset(minilm_dir)
    ours = np.concatenate([to_numpy(embedder(inputs)) for inputs in _batches(real_sentences, tokenizer)])
    reference = SentenceTransformer(minilm_dir, device="cpu").encode(
        real_sentences, normalize_embeddings=True
    )
    cosine = (ours * reference).sum(-1) / (np.linalg.norm(ours, axis=-1) * np.linalg.norm(reference, axis=-1))
    assert cosine.min() >= 0.99999, cosine.min()


def test_minilm_paraphrases_score_higher_than_unrelated_pairs(minilm_dir):
    embedder = kbert.BertEmbedder.from_preset(minilm_dir)
    pairs = [
        ("A man is playing a guitar.", "Someone plays the guitar."),
        ("The cat sleeps on the sofa.", "A kitten is napping on the couch."),
        ("How do I reset my password?", "I forgot my password, how can I change it?"),
        ("The stock market fell sharply today.", "Shares dropped steeply in today's trading."),
    ]
    first = embedder.predict([a for a, _ in pairs], verbose=0)
    second = embedder.predict([b for _, b in pairs], verbose=0)
    similarity = first @ second.T  # normalised embeddings: cosine
    paraphrase = np.diag(similarity)
    unrelated = similarity[~np.eye(len(pairs), dtype=bool)]
    assert paraphrase.min() > unrelated.max() + 0.1, similarity


def test_round_trip_keeps_weights_identical(minilm_dir, tmp_path):
    backbone = kbert.BertBackbone.from_preset(minilm_dir)
    save_huggingface(backbone, tmp_path / "out", tokenizer=kbert.WordPieceTokenizer.from_preset(minilm_dir))
    from safetensors.numpy import load_file

    original = load_file(f"{minilm_dir}/model.safetensors")
    written = load_file(tmp_path / "out" / "model.safetensors")
    assert set(written) == set(original) - {"embeddings.position_ids"}
    for name, value in written.items():
        np.testing.assert_array_equal(value, original[name], err_msg=name)
    assert (tmp_path / "out" / "vocab.txt").read_text() == open(f"{minilm_dir}/vocab.txt").read().rstrip(
        "\n"
    ) + "\n"
    # And transformers loads it with the same outputs.
    inputs = {
        "token_ids": np.array([[101, 7592, 2088, 102]]),
        "segment_ids": np.zeros((1, 4), "int32"),
        "padding_mask": np.ones((1, 4), "int32"),
    }
    with torch.no_grad():
        theirs = transformers.AutoModel.from_pretrained(tmp_path / "out")(
            **_torch_inputs(inputs)
        ).last_hidden_state
    np.testing.assert_allclose(to_numpy(backbone(inputs))["sequence_output"], theirs.numpy(), atol=1e-4)


SMALL = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=40,
    type_vocab_size=2,
)


def _random_inputs(seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1, 99, size=(3, 12)).astype("int32")
    padding_mask = (np.arange(12)[None] < np.array([[12], [9], [5]])).astype("int32")
    segment_ids = (np.arange(12)[None] >= 6).astype("int32") * padding_mask
    return {"token_ids": token_ids * padding_mask, "segment_ids": segment_ids, "padding_mask": padding_mask}


@pytest.mark.parametrize(
    "hf_class, kbert_class, kwargs",
    [
        ("BertForPreTraining", kbert.BertPretrainer, {"objective": "nsp"}),
        ("BertForSequenceClassification", kbert.BertClassifier, {}),
        ("BertForQuestionAnswering", kbert.BertQuestionAnswerer, {}),
        ("BertForTokenClassification", kbert.BertTokenClassifier, {}),
    ],
)
def test_task_heads_convert_and_match_logits(hf_class, kbert_class, kwargs, tmp_path):
    torch.manual_seed(0)
    config = transformers.BertConfig(**SMALL, num_labels=2 if hf_class == "BertForQuestionAnswering" else 5)
    reference = getattr(transformers, hf_class)(config).eval()
    reference.save_pretrained(tmp_path / "hf")
    model = kbert_class.from_preset(tmp_path / "hf", **kwargs)
    inputs = _random_inputs()
    with torch.no_grad():
        theirs = reference(**_torch_inputs(inputs))
    positions = np.array([[1, 2], [3, 4], [0, 4]])
    ours = to_numpy(model(dict(inputs, mask_positions=positions) if kwargs else inputs))
    real = inputs["padding_mask"].astype(bool)
    if hf_class == "BertForPreTraining":
        expected = np.take_along_axis(theirs.prediction_logits.numpy(), positions[:, :, None], axis=1)
        np.testing.assert_allclose(ours["mlm_logits"], expected, atol=1e-4)
        np.testing.assert_allclose(ours["pair_logits"], theirs.seq_relationship_logits.numpy(), atol=1e-4)
    elif hf_class == "BertForQuestionAnswering":
        np.testing.assert_allclose(ours["start_logits"][real], theirs.start_logits.numpy()[real], atol=1e-4)
        np.testing.assert_allclose(ours["end_logits"][real], theirs.end_logits.numpy()[real], atol=1e-4)
    elif hf_class == "BertForTokenClassification":
        np.testing.assert_allclose(ours[real], theirs.logits.numpy()[real], atol=1e-4)
    else:
        assert model.num_classes == 5
        np.testing.assert_allclose(ours, theirs.logits.numpy(), atol=1e-4)

    # And back: transformers loads kbert's save with the same logits.
    save_huggingface(model, tmp_path / "back")
    again = getattr(transformers, hf_class).from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        for name, value in again(**_torch_inputs(inputs)).items():
            np.testing.assert_allclose(value.numpy(), theirs[name].numpy(), atol=1e-5, err_msg=name)


def test_heads_missing_from_the_checkpoint_are_fresh(minilm_dir, caplog):
    with caplog.at_level("WARNING", logger="kbert"):
        classifier = kbert.BertClassifier.from_preset(minilm_dir, num_classes=3)
    assert "classifier head freshly initialised" in caplog.text
    assert to_numpy(classifier(_random_inputs())).shape == (3, 3)


class TestBadInput:
    def test_folder_without_weights(self, tmp_path):
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **SMALL}))
        with pytest.raises(ValueError, match="no weights in .*expected model.safetensors"):
            kbert.BertBackbone.from_preset(tmp_path)

    def test_pickled_weights_are_refused(self, tmp_path):
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **SMALL}))
        (tmp_path / "pytorch_model.bin").write_bytes(b"not even a pickle")
        with pytest.raises(ValueError, match="safetensors only"):
            kbert.BertBackbone.from_preset(tmp_path)

    def test_non_bert_config(self, tmp_path):
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
        with pytest.raises(ValueError, match="model_type='gpt2'"):
            kbert.BertBackbone.from_preset(tmp_path)

    def test_empty_folder(self, tmp_path):
        with pytest.raises(ValueError, match="holds no model"):
            kbert.BertBackbone.from_preset(tmp_path)

    def test_vocabulary_of_another_size(self, tmp_path):
        transformers.BertModel(transformers.BertConfig(**SMALL)).save_pretrained(tmp_path)
        (tmp_path / "vocab.txt").write_text(
            "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"]) + "\n"
        )
        with pytest.raises(
            ValueError, match="has 6 tokens but the checkpoint's embedding matrix has 99 rows"
        ):
            kbert.BertBackbone.from_preset(tmp_path)

    def test_truncated_safetensors(self, tmp_path):
        transformers.BertModel(transformers.BertConfig(**SMALL)).save_pretrained(tmp_path)
        weights = tmp_path / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        with pytest.raises(ValueError, match="truncated or corrupt"):
            kbert.BertBackbone.from_preset(tmp_path)

    def test_weights_of_another_config(self, tmp_path):
        transformers.BertModel(transformers.BertConfig(**SMALL)).save_pretrained(tmp_path)
        config = json.loads((tmp_path / "config.json").read_text())
        (tmp_path / "config.json").write_text(json.dumps({**config, "intermediate_size": 64}))
        with pytest.raises(ValueError, match="shape mismatches"):
            kbert.BertBackbone.from_preset(tmp_path)

    def test_unknown_weights_are_listed(self, tmp_path):
        from safetensors.numpy import load_file, save_file

        transformers.BertModel(transformers.BertConfig(**SMALL)).save_pretrained(tmp_path)
        arrays = load_file(tmp_path / "model.safetensors")
        save_file({**arrays, "adapter.lora_A": np.zeros((2, 2), "float32")}, tmp_path / "model.safetensors")
        with pytest.raises(ValueError, match="adapter.lora_A"):
            kbert.BertBackbone.from_preset(tmp_path)
