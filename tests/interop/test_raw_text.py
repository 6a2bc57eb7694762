"""Task models from presets take raw strings (KerasHub's convention) as well as token-id dicts."""

import keras
import numpy as np

import kbert
from tests.harness import to_numpy


def test_predict_on_text_equals_predict_on_ids(minilm_dir):
    classifier = kbert.BertClassifier.from_preset(minilm_dir, num_classes=3)
    texts = ["A short one.", "A somewhat longer sentence about tokenizers and models.", "Pairs work too."]
    tokenizer = kbert.WordPieceTokenizer.from_preset(minilm_dir)
    packed = kbert.SegmentPacker(64, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)(tokenizer(texts))
    ids = {key: np.asarray(value) for key, value in packed.items()}
    np.testing.assert_allclose(
        classifier.predict(texts, verbose=0), classifier.predict(ids, verbose=0), atol=1e-5
    )
    pairs = (["What is BERT?", "Who wrote it?"], ["A language model.", "Researchers at Google."])
    packed = kbert.SegmentPacker(64, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)(
        tokenizer(pairs[0]), tokenizer(pairs[1])
    )
    ids = {key: np.asarray(value) for key, value in packed.items()}
    np.testing.assert_allclose(
        classifier.predict(pairs, verbose=0), classifier.predict(ids, verbose=0), atol=1e-5
    )


def test_fit_on_text_and_save_with_the_tokenizer(minilm_dir, tmp_path):
    classifier = kbert.BertClassifier.from_preset(minilm_dir, num_classes=2)
    texts = ["good movie", "great film", "terrible plot", "awful acting"]
    labels = np.array([1, 1, 0, 0])
    classifier.compile(optimizer=keras.optimizers.Adam(1e-4))
    history = classifier.fit(texts, labels, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    expected = classifier.predict(texts, verbose=0)
    classifier.save(tmp_path / "classifier.keras")
    loaded = keras.models.load_model(tmp_path / "classifier.keras")
    assert loaded.preprocessor is not None
    np.testing.assert_allclose(loaded.predict(texts, verbose=0), expected, atol=1e-5)
    assert to_numpy(loaded("one string")).shape == (1, 2)


def test_bfloat16_fast_mode_keeps_the_sentence_embeddings(minilm_dir):
    """The fast mode is a Keras dtype policy: on real weights its vectors stay within cosine 0.999 of float32's."""
    texts = [
        "A short one.",
        "Return the number of items in a container, counting each of them once and only once.",
        "The tokenizer splits words into pieces.",
        "x",
    ]
    exact = kbert.BertEmbedder.from_preset(minilm_dir, pooling="mean", normalize=True)
    fast = kbert.BertEmbedder.from_preset(minilm_dir, pooling="mean", normalize=True, dtype="bfloat16")
    assert fast.backbone.encoder_blocks[0].intermediate.compute_dtype == "bfloat16"
    cosines = np.sum(exact.predict(texts, verbose=0) * fast.predict(texts, verbose=0).astype("float32"), axis=1)
    assert cosines.min() > 0.999, cosines
