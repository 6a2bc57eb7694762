"""Distillation on every backend: a tiny teacher, fine-tuned on learnable synthetic data, teaches smaller students."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import kbert
from kbert.interop import save_kbert
from kbert.training import Distiller, make_student, student_from_teacher
from tests.harness import TINY, to_numpy

NUM_CLASSES = 3
# Each class draws its tokens from its own id range: a bag-of-tokens signal a tiny model learns in a few steps.
CLASS_RANGES = [(5, 35), (35, 65), (65, TINY["vocabulary_size"])]


def class_data(count=64, length=12, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, size=count).astype("int32")
    token_ids = np.stack([rng.integers(*CLASS_RANGES[label], size=length) for label in labels])
    token_ids[:, 0] = 2  # plays [CLS]
    real_lengths = rng.integers(length // 2, length + 1, size=count)
    padding_mask = (np.arange(length)[None, :] < real_lengths[:, None]).astype("int32")
    x = {
        "token_ids": (token_ids * padding_mask).astype("int32"),
        "segment_ids": np.zeros_like(padding_mask),
        "padding_mask": padding_mask,
    }
    return x, labels


def teacher_backbone(**overrides):
    # A wider initialisation than BERT's 0.02: training converges in fewer steps, and even an untrained model's
    # attention is far from uniform, so the attention term has something to compare.
    settings = {"dropout": 0.0, "attention_dropout": 0.0, "initializer_range": 0.1}
    return kbert.BertBackbone(**{**TINY, **settings, **overrides})


@pytest.fixture(scope="module")
def teacher():
    """A 2-layer tiny classifier fine-tuned until it separates the classes."""
    keras.utils.set_random_seed(0)
    model = kbert.BertClassifier(teacher_backbone(), num_classes=NUM_CLASSES)
    model.compile(optimizer=keras.optimizers.Adam(5e-3))
    x, y = class_data()
    accuracy = model.fit(x, y, epochs=24, batch_size=64, verbose=0).history["accuracy"][-1]
    assert accuracy >= 0.9, f"the teacher did not learn the synthetic task (accuracy {accuracy})"
    return model


def small_student(teacher):
    # Narrower (16 wide, 1 head) and shallower: exercises the hidden projection and the head-averaged attention.
    config = kbert.BertConfig(
        **{**TINY, "num_layers": 1, "hidden_dim": 16, "num_heads": 1, "intermediate_dim": 32}
    )
    return make_student(teacher, config, dropout=0.0, attention_dropout=0.0)


def test_distiller_fits_the_student_and_its_loss_falls(teacher):
    student = small_student(teacher)
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    distiller = Distiller(
        teacher, student, temperature=2.0, alpha=0.5, hidden_weight=1.0, attention_weight=1.0
    )
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    x, y = class_data()
    history = distiller.fit(x, y, epochs=20, batch_size=64, verbose=0).history
    before = {name: values[0] for name, values in history.items()}
    after = {name: values[-1] for name, values in history.items()}
    # One batch an epoch: the last epochs' figures are single steps, so take the best of the last three.
    best = {name: max(values[-3:]) for name, values in history.items()}

    expected = {
        "loss",
        "soft_loss",
        "hard_loss",
        "accuracy",
        "teacher_agreement",
        "hidden_loss",
        "attention_loss",
    }
    assert expected <= set(after)
    assert after["loss"] < 0.6 * before["loss"], (before, after)
    for term in ("soft_loss", "hard_loss", "hidden_loss", "attention_loss"):
        assert after[term] < before[term], (term, before, after)
    assert best["accuracy"] >= 0.8 and best["teacher_agreement"] >= 0.8, history
    # The teacher is frozen: fit moved only the student (and the projection).
    for old, new in zip(teacher_weights, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    trainable = {id(v) for v in distiller.trainable_variables}
    assert not any(id(v) in trainable for v in teacher.weights)
    assert all(id(v) in trainable for v in student.trainable_variables)


def test_students_are_smaller(teacher):
    assert small_student(teacher).count_params() < teacher.count_params()
    copied = student_from_teacher(teacher, num_layers=1)
    assert copied.count_params() < teacher.count_params()
    assert copied.backbone.config.num_layers == 1 and copied.backbone.config.hidden_dim == TINY["hidden_dim"]
    # A named size as wide as the teacher is copied from it; a wider one starts fresh.
    same_width = make_student(teacher, kbert.BertConfig(**{**TINY, "num_layers": 1}))
    np.testing.assert_array_equal(
        to_numpy(same_width.backbone.encoder_blocks[0].weights[0]),
        to_numpy(teacher.backbone.encoder_blocks[1].weights[0]),
    )


def test_a_narrower_student_starts_from_the_teachers_projected_embeddings(teacher):
    # One orthonormal projection P (the top principal directions of the teacher's token embeddings) maps every
    # teacher embedding table to the student's: the student's embedding sum is the projection of the teacher's.
    student = small_student(teacher)
    source, target = teacher.backbone.embeddings, student.backbone.embeddings
    tokens = to_numpy(source.token_embedding.embeddings).astype("float64")
    projection, *_ = np.linalg.lstsq(tokens, to_numpy(target.token_embedding.embeddings), rcond=None)
    np.testing.assert_allclose(projection.T @ projection, np.eye(target.hidden_dim), atol=1e-4)
    np.testing.assert_allclose(tokens @ projection, to_numpy(target.token_embedding.embeddings), atol=1e-5)
    for teacher_table, student_table in [
        (source.position_embeddings, target.position_embeddings),
        (source.segment_embedding.embeddings, target.segment_embedding.embeddings),
    ]:
        np.testing.assert_allclose(to_numpy(teacher_table) @ projection, to_numpy(student_table), atol=1e-5)
    centred = tokens - tokens.mean(axis=0)
    kept = np.linalg.norm(centred @ projection) ** 2 / np.linalg.norm(centred) ** 2
    assert kept > 16 / 32  # the top half of the directions keep more than half of the variance


# Default: the last block of each group of k (here k = 2: block 2, 1-based); or the blocks named (1-based).
@pytest.mark.parametrize("layers, chosen", [(None, [1]), ([1], [0])])
def test_layer_init_copies_the_chosen_teacher_layers(teacher, layers, chosen):
    student = student_from_teacher(teacher, num_layers=1, layers=layers)
    for student_block, teacher_index in zip(student.backbone.encoder_blocks, chosen, strict=True):
        teacher_block = teacher.backbone.encoder_blocks[teacher_index]
        for mine, theirs in zip(student_block.weights, teacher_block.weights, strict=True):
            np.testing.assert_array_equal(to_numpy(mine), to_numpy(theirs))
    for layer in ("embeddings", "pooler"):
        for mine, theirs in zip(
            student.backbone.get_layer(layer).weights, teacher.backbone.get_layer(layer).weights, strict=True
        ):
            np.testing.assert_array_equal(to_numpy(mine), to_numpy(theirs))
    np.testing.assert_array_equal(
        to_numpy(student.get_layer("logits").kernel), to_numpy(teacher.get_layer("logits").kernel)
    )
    # Not a shared object: training the student leaves the teacher alone.
    assert all(id(a) != id(b) for a in student.weights for b in teacher.weights)


def task_pair(kind):
    """A tiny teacher of each task and an exact copy of it as the student (same weights, same layers)."""
    backbone = teacher_backbone()
    models = {
        "classifier": lambda: kbert.BertClassifier(backbone, num_classes=NUM_CLASSES),
        "token_classifier": lambda: kbert.BertTokenClassifier(backbone, num_classes=4),
        "question_answerer": lambda: kbert.BertQuestionAnswerer(backbone),
        "embedder": lambda: kbert.BertEmbedder(backbone, pooling="mean"),
    }
    teacher = models[kind]()
    return teacher, student_from_teacher(teacher, num_layers=TINY["num_layers"])


def task_labels(kind, x):
    rng = np.random.default_rng(1)
    batch, length = x["token_ids"].shape
    if kind == "classifier":
        return rng.integers(0, NUM_CLASSES, size=batch).astype("int32")
    if kind == "token_classifier":
        labels = rng.integers(0, 4, size=(batch, length)).astype("int32")
        return np.where(x["padding_mask"] == 1, labels, kbert.BertTokenClassifier.IGNORE_LABEL).astype(
            "int32"
        )
    if kind == "question_answerer":
        return {"start_logits": np.full(batch, 2, "int32"), "end_logits": np.full(batch, 4, "int32")}
    return None


@pytest.mark.parametrize("kind", ["classifier", "token_classifier", "question_answerer", "embedder"])
def test_terms_vanish_for_an_exact_copy_and_not_for_a_smaller_student(kind):
    teacher, copy = task_pair(kind)
    x, _ = class_data(count=8)
    y = task_labels(kind, x)
    weights = dict(hidden_weight=1.0, attention_weight=1.0)
    distiller = Distiller(teacher, copy, **weights)
    terms, metrics = to_numpy(distiller.loss_terms(x, y, distiller(x, training=False)))
    for name in ("soft_loss", "hidden_loss", "attention_loss"):
        assert np.isfinite(terms[name]) and abs(terms[name]) < 1e-6, (name, terms)
    if kind == "embedder":
        assert metrics["cosine"] == pytest.approx(1.0, abs=1e-5)
    else:
        assert metrics["teacher_agreement"] == 1.0
        assert np.isfinite(terms["hard_loss"]) and terms["hard_loss"] > 0

    smaller = student_from_teacher(teacher, num_layers=1)
    distiller = Distiller(teacher, smaller, **weights)
    terms, _ = to_numpy(distiller.loss_terms(x, y, distiller(x, training=False)))
    for name in ("hidden_loss", "attention_loss"):
        assert np.isfinite(terms[name]) and terms[name] > 1e-9, (name, terms)


def test_student_saves_and_reloads_as_a_kbert_model(teacher, tmp_path):
    student = student_from_teacher(teacher, num_layers=1)
    initial = [w.copy() for w in student.get_weights()]
    distiller = Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    x, y = class_data(count=8)
    distiller.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(initial, student.get_weights(), strict=True))
    with pytest.raises(ValueError, match="save distiller.student"):
        distiller.save(str(tmp_path / "distiller.keras"))
    save_kbert(distiller.student, str(tmp_path / "student"))
    reloaded = kbert.BertClassifier.from_preset(str(tmp_path / "student"))
    np.testing.assert_allclose(to_numpy(reloaded(x)), to_numpy(student(x)), atol=1e-6)
    assert reloaded.backbone.config.num_layers == 1


def test_bad_input_raises_clear_errors(teacher):
    student = student_from_teacher(teacher, num_layers=1)
    with pytest.raises(ValueError, match="teacher must be a kbert task model.*BertBackbone"):
        Distiller(teacher.backbone, student)
    tagger = kbert.BertTokenClassifier(teacher_backbone(num_layers=1), num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match="student is a BertTokenClassifier but the teacher a BertClassifier"):
        Distiller(teacher, tagger)
    other_labels = kbert.BertClassifier(teacher_backbone(num_layers=1), num_classes=NUM_CLASSES + 1)
    with pytest.raises(ValueError, match="num_classes=4, the teacher 3"):
        Distiller(teacher, other_labels)
    with pytest.raises(ValueError, match="alpha must be in"):
        Distiller(teacher, student, alpha=1.5)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        Distiller(teacher, student, temperature=0)
    with pytest.raises(ValueError, match="layer_map"):
        Distiller(teacher, student, layer_map=[9])
    with pytest.raises(ValueError, match="num_layers=3"):
        student_from_teacher(teacher, num_layers=3)
    distiller = Distiller(teacher, student, alpha=0.5)
    distiller.compile()
    x, _ = class_data(count=8)
    weights = [w.copy() for w in teacher.get_weights()]
    with pytest.raises(ValueError, match="has no labels"):
        distiller.fit(x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="has no labels"):
        distiller.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), epochs=1, verbose=0)
    # Refused before any step: the teacher (shared with later tests) keeps its weights on every backend.
    for old, new in zip(weights, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    with pytest.raises(ValueError, match=r"token id \d+ >= vocabulary_size 97"):
        distiller.fit(
            dict(x, token_ids=x["token_ids"] + 97 * x["padding_mask"]), np.zeros(8, "int32"), verbose=0
        )


def test_a_student_with_its_own_vocabulary_reads_its_own_inputs(teacher):
    """separate_inputs: x = {"teacher": ..., "student": ...}; the output losses compare the two models' outputs."""
    copy = student_from_teacher(teacher, num_layers=TINY["num_layers"])
    x, y = class_data(count=8)
    same = {"teacher": x, "student": x}
    distiller = Distiller(teacher, copy, separate_inputs=True)
    terms, metrics = to_numpy(distiller.loss_terms(same, y, distiller(same, training=False)))
    assert abs(terms["soft_loss"]) < 1e-6 and metrics["teacher_agreement"] == 1.0
    shuffled = {"teacher": x, "student": {key: value[::-1] for key, value in x.items()}}
    terms, _ = to_numpy(distiller.loss_terms(shuffled, y, distiller(shuffled, training=False)))
    assert terms["soft_loss"] > 1e-3

    # A student with another vocabulary size trains on its own token ids with fit.
    student = make_student(teacher, kbert.BertConfig(**{**TINY, "num_layers": 1}), vocabulary_size=50)
    own_ids = dict(x, token_ids=(x["token_ids"] % 50) * x["padding_mask"])
    distiller = Distiller(teacher, student, separate_inputs=True)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = distiller.fit({"teacher": x, "student": own_ids}, y, epochs=2, batch_size=8, verbose=0).history
    assert np.isfinite(history["loss"]).all()

    with pytest.raises(ValueError, match="hidden and attention losses compare the models token by token"):
        Distiller(teacher, student, separate_inputs=True, hidden_weight=1.0)
    with pytest.raises(ValueError, match="vocabulary_size=50 differs.*separate_inputs=True"):
        Distiller(teacher, student)
    with pytest.raises(ValueError, match=r"x must be \{'teacher': inputs, 'student': inputs\}"):
        distiller.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="token id 60 >= vocabulary_size 50"):
        distiller.fit({"teacher": x, "student": dict(x, token_ids=np.full_like(x["token_ids"], 60))}, y)
    tagger = kbert.BertTokenClassifier(teacher_backbone(), num_classes=4)
    with pytest.raises(ValueError, match="not BertTokenClassifier"):
        Distiller(tagger, student_from_teacher(tagger, 1), separate_inputs=True)


def test_precomputed_teacher_outputs_give_the_same_losses_and_train(teacher):
    """x = {"student", "teacher_outputs"}: the epochs skip the teacher's forward pass, the losses are unchanged."""
    student = student_from_teacher(teacher, num_layers=1)
    x, y = class_data(count=8)
    distiller = Distiller(teacher, student)
    live_terms, live_metrics = to_numpy(distiller.loss_terms(x, y, distiller(x, training=False)))
    cached = {"student": x, "teacher_outputs": to_numpy(teacher.predict(x, verbose=0))}
    terms, metrics = to_numpy(distiller.loss_terms(cached, y, distiller(cached, training=False)))
    assert live_terms["soft_loss"] > 1e-3  # the 1-layer student differs from the teacher
    for name in live_terms:
        np.testing.assert_allclose(terms[name], live_terms[name], rtol=1e-5, atol=1e-6)
    assert metrics["teacher_agreement"] == live_metrics["teacher_agreement"]

    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = distiller.fit(cached, y, epochs=2, batch_size=4, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    with pytest.raises(ValueError, match="precomputed teacher_outputs serve the output loss only"):
        Distiller(teacher, student_from_teacher(teacher, 1), hidden_weight=1.0).fit(cached, y, verbose=0)


def test_student_vocabulary_starts_from_the_teachers_shared_token_rows(vocab_path):
    from tests.export.conftest import tiny_task

    teacher, tokenizer = tiny_task("classifier", vocab_path)
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cat", "dog", "##s", "zzqx"]
    own = kbert.WordPieceTokenizer(vocabulary)
    student = student_from_teacher(teacher, num_layers=1, tokenizer=own)
    assert student.backbone.config.vocabulary_size == len(vocabulary)
    assert student.preprocessor.tokenizer is own
    rows = to_numpy(student.backbone.token_embedding.embeddings)
    teacher_rows = to_numpy(teacher.backbone.token_embedding.embeddings)
    for index, token in enumerate(vocabulary[:-1]):
        np.testing.assert_array_equal(rows[index], teacher_rows[tokenizer.token_to_id(token)])
    assert not any(np.array_equal(rows[-1], row) for row in teacher_rows[:1000])  # "zzqx": not the teacher's
    fresh = make_student(teacher, "tiny", tokenizer=own)
    assert fresh.backbone.config.vocabulary_size == len(vocabulary) and fresh.preprocessor.tokenizer is own


WORDS = {
    "animal": "cat dog horse cow sheep goat bird fish".split(),
    "plant": "tree flower grass rose oak moss fern reed".split(),
    "tool": "hammer saw drill wrench knife axe spade chisel".split(),
}


def write_records(path, count, seed):
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as file:
        for _ in range(count):
            label = str(rng.choice(sorted(WORDS)))
            text = " ".join(rng.choice(WORDS[label], size=rng.integers(3, 8)))
            file.write(json.dumps({"text": text, "label": label}) + "\n")
    return str(path)


@pytest.mark.backend_independent
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_command_line_distils_a_saved_classifier(vocab_path, tmp_path, monkeypatch, capsys):
    """export/distill.py: a kbert save in, a general then a task pass, a student kbert save and metrics.json out
    (the LiteRT export is skipped here: it is export/tflite.py's, tested with it)."""
    from export.distill import main
    from tests.export.conftest import tiny_task

    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")  # main() sets it; restored after the test
    teacher, tokenizer = tiny_task("classifier", vocab_path)
    save_kbert(teacher, str(tmp_path / "teacher"))
    labels = ["tool", "plant", "animal"]  # the teacher's order, not sorted: distill must follow labels.json
    (tmp_path / "teacher" / "labels.json").write_text(json.dumps(labels))
    train = write_records(tmp_path / "train.jsonl", 24, seed=0)
    dev = write_records(tmp_path / "dev.jsonl", 8, seed=1)
    out = tmp_path / "run"
    teacher_path = str(tmp_path / "teacher")
    common = "--backend tensorflow --no-jit --epochs 1 --batch-size 8 --seq-len 16 --quantize none".split()
    common += ["--train", train, "--dev", dev]
    arguments = [*common, "--teacher", teacher_path, "--student-layers", "1"]
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("a cat and a dog\n\nan oak by the reeds\na saw, a drill and an axe\n")
    general = ["--general-epochs", "1", "--unlabeled", str(unlabeled)]
    assert main([*arguments, *general, "--hidden-loss", "1", "--out", str(out)]) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["general_examples"] == 3
    assert set(metrics["general_final_train"]) == {
        "loss",
        "hidden_loss",
        "attention_loss",
        "teacher_agreement",
    }
    assert {"soft_loss", "hard_loss", "hidden_loss", "accuracy"} <= set(metrics["final_train"])
    for key in ("teacher_dev_accuracy", "student_dev_accuracy", "accuracy_retained", "train_seconds"):
        assert np.isfinite(metrics[key]), key
    assert metrics["student_parameters"] < metrics["teacher_parameters"] == teacher.count_params()
    assert metrics["parameter_share"] == pytest.approx(
        metrics["student_parameters"] / metrics["teacher_parameters"]
    )
    assert json.loads((out / "student" / "labels.json").read_text()) == labels
    student = kbert.BertClassifier.from_preset(str(out / "student"))
    assert student.backbone.config.num_layers == 1
    assert student.preprocessor.tokenizer.vocabulary == tokenizer.vocabulary
    assert student.predict(["a cat and a dog"], verbose=0).shape == (1, 3)

    # A student vocabulary learned on the training texts: its own tokenizer, saved with it.
    own = tmp_path / "own_vocabulary"
    own_vocabulary = ["--student-size", "tiny", "--student-vocab-size", "60"]
    assert main([*common, "--teacher", teacher_path, *own_vocabulary, "--out", str(own)]) == 0
    student = kbert.BertClassifier.from_preset(str(own / "student"))
    size = student.backbone.config.vocabulary_size
    assert size == len(student.preprocessor.tokenizer.vocabulary) <= 60
    assert (
        json.loads((own / "metrics.json").read_text())["student_vocabulary"]
        == "learned on the training texts"
    )
    assert student.predict(["a cat and a dog"], verbose=0).shape == (1, 3)
    capsys.readouterr()

    def refused(argv):
        """A refusal of main(): exit code 2 and its `error: ...` line on stderr."""
        assert main(argv) == 2
        return capsys.readouterr().err

    bad = ["--out", str(tmp_path / "bad")]
    assert "drop --hidden-loss, --attention-loss and --general-epochs" in refused(
        [*arguments, "--student-vocab-size", "60", "--hidden-loss", "1", *bad]
    )

    embedder, _ = tiny_task("embedder", vocab_path)
    save_kbert(embedder, str(tmp_path / "embedder"))
    assert "the teacher is a BertEmbedder" in refused(
        [*common, "--teacher", str(tmp_path / "embedder"), *bad]
    )
    with open(train, "a", encoding="utf-8") as file:
        file.write(json.dumps({"text": "a fungus", "label": "fungus"}) + "\n")
    assert "error: the train file has label(s) the teacher does not know: ['fungus']" in refused(
        [*arguments, *bad]
    )
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="the train file has label"):
        main([*arguments, *bad, "--debug"])
