"""Distilling a fine-tuned text classifier from files: teacher save + records → student kbert save + metrics.

`export/distill.py` is the command line over `DistillationConfig` and `distill`; the model side is
`kbert.export.Distiller`. Records are packed as fine-tuning packs them and batched by its `batches`.
"""

import dataclasses
import math
import os
import time

import keras
import numpy as np

from kbert.backend import varying_shape_jit
from kbert.data.batching import batches, predict_windows
from kbert.data.records import read_records
from kbert.files import save_model, write_json
from kbert.models import BertClassifier
from kbert.models.presets import load_saved
from kbert.text import WordPieceTokenizer, learn_vocabulary
from kbert.text.packing import pack_texts
from kbert.training.checkpoints import check_output_folder
from kbert.training.distiller import Distiller
from kbert.training.metrics import classification_metrics
from kbert.training.optimizers import create_optimizer
from kbert.training.runs import RunSettings, begin_run, require_one_process
from kbert.training.students import check_task_model, make_student, student_from_teacher


@dataclasses.dataclass
class DistillationConfig(RunSettings):
    """Everything a distillation run needs; the command line maps one flag to each field.

    Attributes:
        teacher: a fine-tuned `BertClassifier`: a kbert save folder (`model.keras`, `vocab.txt`, `labels.json`)
            or a `.keras` file (then `vocab` unless the model carries its preprocessor).
        train, dev: JSONL or CSV records with `text`, optional `text_pair`, and `label`.
        student_size: a `kbert.BertConfig.named` size ("tiny", "mini", "L4_H256"...).
        student_layers: instead of a size, the teacher's width with this many of its blocks, copied.
        general_epochs: epochs of general distillation first (TinyBERT's: hidden states and attentions only, no
            labels) on `unlabeled`, or on the training texts when no `unlabeled` is given; 0 skips it.
        unlabeled: text for general distillation: a `.txt` file (one text a line) or records (`.jsonl`/`.csv`).
        student_vocabulary_size: a smaller WordPiece vocabulary for the student, learned on the training texts
            (the student gets its own tokenizer; shared tokens start from the teacher's embeddings). Output
            losses only: no hidden, attention or general distillation.
        temperature, alpha, hidden_loss, attention_loss: see `Distiller` (`hidden_loss` and `attention_loss` are
            the weights of those terms; 0 leaves them out).
        seq_len, batch_size, epochs, lr, warmup_ratio, weight_decay, jit, seed, out: as in fine-tuning.

    Raises:
        ValueError: a setting out of range, naming it (`lr` must be finite and > 0, `temperature` > 0, `alpha`
            in [0, 1], the loss weights >= 0, the counts >= 1); paths are checked by `distill`.
    """

    teacher: str = ""
    train: str = ""
    dev: str | None = None
    vocab: str | None = None
    student_size: str = "tiny"
    student_layers: int | None = None
    general_epochs: int = 0
    unlabeled: str | None = None
    student_vocabulary_size: int | None = None
    temperature: float = 2.0
    alpha: float = 0.5
    hidden_loss: float = 0.0
    attention_loss: float = 0.0
    seq_len: int = 128
    batch_size: int = 32
    epochs: int = 3
    lr: float = 1e-4
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    out: str = "runs/distill"

    def __post_init__(self):
        self.check_run_settings()
        for name, value, example in (("lr", self.lr, "1e-4"), ("temperature", self.temperature, "2")):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r}; it must be a finite number > 0, such as {example}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha={self.alpha!r}; the soft loss's share must be in [0, 1] (default 0.5)")
        if not 0 <= self.warmup_ratio <= 1:
            raise ValueError(f"warmup_ratio={self.warmup_ratio!r}; the warmup share must be in [0, 1]")
        weights = {
            "hidden_loss": self.hidden_loss,
            "attention_loss": self.attention_loss,
            "weight_decay": self.weight_decay,
        }
        for name, value in weights.items():
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value!r}; it must be a finite number >= 0 (0: off)")
        self.check_counts("epochs", "batch_size", "seq_len", "student_layers", "student_vocabulary_size")
        if self.general_epochs < 0:
            raise ValueError(f"general_epochs={self.general_epochs!r}; it must be >= 0 (0: no general pass)")
        if self.unlabeled and not self.general_epochs:
            raise ValueError(
                f"unlabeled={self.unlabeled!r} is read by general distillation only; set general_epochs >= 1 "
                f"or drop unlabeled"
            )


def check_paths(config):
    """Refuses an `out` that cannot be a folder or would overlap the inputs; reads and writes nothing.

    `out` must not be the teacher's folder nor inside it, and no input may lie in `out/student/` or be
    `out/metrics.json` (what `distill` writes).
    """
    check_output_folder(config.out)
    out = os.path.realpath(config.out)
    if os.path.isdir(config.teacher) and _is_within(out, os.path.realpath(config.teacher)):
        raise ValueError(
            f"out={config.out!r} is the teacher's folder {config.teacher!r} or inside it; the student would be "
            f"written among the teacher's files: choose another output folder"
        )
    written = [os.path.join(out, "student"), os.path.join(out, "metrics.json")]
    inputs = {name: getattr(config, name) for name in ("teacher", "vocab", "train", "dev", "unlabeled")}
    for name, path in inputs.items():
        if path and any(_is_within(os.path.realpath(path), target) for target in written):
            raise ValueError(
                f"{name}={path!r} lies where this run writes ({written[0]}/, {written[1]}); choose another "
                f"output folder"
            )


def _is_within(path, folder):
    """`path` is `folder` or inside it (real paths; `samefile` also catches hard links and bind mounts)."""
    if os.path.exists(path) and os.path.exists(folder) and os.path.samefile(path, folder):
        return True
    return os.path.commonpath([path, folder]) == folder


def encode(records, tokenizer, seq_len):
    """`[CLS] text [SEP] (text_pair [SEP])` packed to `seq_len` (longest-first truncation): int32 NumPy arrays
    `token_ids`, `segment_ids`, `padding_mask` [records, seq_len], as fine-tuning packs them."""
    has_pair = any(record["text_pair"] for record in records)
    pairs = [record["text_pair"] or "" for record in records] if has_pair else None
    return pack_texts(tokenizer, [record["text"] for record in records], pairs, seq_len)


def read_texts(path):
    """Unlabeled text as records `{text, text_pair}`: a `.txt` file (one text a line) or JSONL/CSV records."""
    if not os.fspath(path).endswith(".txt"):
        return read_records(path, require_label=False)
    with open(path, encoding="utf-8") as file:
        texts = [line.strip() for line in file if line.strip()]
    if not texts:
        raise ValueError(f"{path!r} holds no text; expected one text a line")
    return [{"text": text, "text_pair": None} for text in texts]


def learn_student_tokenizer(records, vocabulary_size, teacher_tokenizer):
    """A `WordPieceTokenizer` with a vocabulary of about `vocabulary_size` learned on the records' texts,
    normalising text as the teacher's tokenizer does."""
    texts = [record["text"] for record in records] + [r["text_pair"] for r in records if r["text_pair"]]
    vocabulary = learn_vocabulary(texts, vocabulary_size, lowercase=teacher_tokenizer.lowercase)
    return WordPieceTokenizer(
        vocabulary, lowercase=teacher_tokenizer.lowercase, strip_accents=teacher_tokenizer.strip_accents
    )


def load_teacher(path, vocabulary=None):
    """The teacher model, its tokenizer and its label names from a kbert save folder or a `.keras` file."""
    loaded = load_saved(path, vocabulary=vocabulary, what="teacher")
    check_task_model(loaded.model)
    if loaded.tokenizer is None:
        raise ValueError(f"teacher {os.fspath(path)!r} has no vocabulary; pass its vocab.txt (--vocab)")
    return loaded


def distill(config: DistillationConfig) -> dict:
    """Distils the classifier `config.teacher` into a smaller student on `config.train`.

    Writes to `config.out`: `student/` (a kbert save: `model.keras`, `vocab.txt`, `tokenizer_config.json`,
    `labels.json`) and `metrics.json` (`teacher_dev_accuracy`, `student_dev_accuracy`, macro-F1s,
    `accuracy_retained`, `teacher_parameters`, `student_parameters`, `parameter_share`, `train_seconds`...).
    Returns the metrics. Every path is checked (`check_paths`), and every input read, before a file is written.
    """
    check_paths(config)
    require_one_process(config, "distillation")
    begin_run(config)
    run = _prepare(config)
    metrics = _train_student(run)
    if run.dev_records:
        metrics.update(_dev_metrics(run))
    _save(run, metrics)
    return metrics


@dataclasses.dataclass
class _Run:
    """A distillation run with its inputs read and checked, and its student built."""

    config: DistillationConfig
    teacher: keras.Model
    tokenizer: WordPieceTokenizer
    student: keras.Model
    student_tokenizer: WordPieceTokenizer  # the teacher's, unless the student learned its own vocabulary
    label_names: list
    train_records: list
    dev_records: list | None
    unlabeled: list  # the texts of general distillation

    @property
    def separate_inputs(self):
        return self.student_tokenizer is not self.tokenizer

    def label_array(self, records, labelled=True):
        label_ids = {name: index for index, name in enumerate(self.label_names)}
        return np.asarray([label_ids[str(r["label"])] if labelled else 0 for r in records], np.int32)


def _prepare(config):
    """Reads the teacher and every file, checks the labels, and builds the student (see `_Run`)."""
    loaded = load_teacher(config.teacher, config.vocab)
    teacher, tokenizer = loaded.model, loaded.tokenizer
    if not isinstance(teacher, BertClassifier):
        raise ValueError(
            f"distill() reads classification records, but the teacher is a {type(teacher).__name__}; for other "
            f"tasks use kbert.training.Distiller with your own data"
        )
    train_records = read_records(config.train)
    dev_records = read_records(config.dev) if config.dev else None
    unlabeled = read_texts(config.unlabeled) if config.unlabeled else train_records
    label_names = loaded.labels or sorted({str(r["label"]) for r in train_records})
    _check_labels(label_names, teacher, {"train": train_records, "dev": dev_records or []})
    student_tokenizer = _student_tokenizer(config, train_records, tokenizer)
    new_tokenizer = student_tokenizer if student_tokenizer is not tokenizer else None
    if config.student_layers is not None:
        student = student_from_teacher(teacher, config.student_layers, tokenizer=new_tokenizer)
    else:
        student = make_student(teacher, config.student_size, tokenizer=new_tokenizer)
    for model in (teacher, student):
        if config.seq_len > model.backbone.config.max_sequence_length:
            raise ValueError(
                f"seq_len={config.seq_len} > max_sequence_length {model.backbone.config.max_sequence_length}"
            )
    return _Run(
        config, teacher, tokenizer, student, student_tokenizer, label_names, train_records, dev_records, unlabeled
    )


def _check_labels(label_names, teacher, files):
    """Raises `ValueError` when the label names do not fit the teacher, or a file (`{name: records}`) has others."""
    if len(label_names) != teacher.num_classes:
        raise ValueError(
            f"{len(label_names)} labels in the training file but the teacher has num_classes="
            f"{teacher.num_classes}; give the teacher's save folder (with labels.json)"
        )
    for name, records in files.items():
        unknown = sorted({str(r["label"]) for r in records} - set(label_names))
        if unknown:
            raise ValueError(f"the {name} file has label(s) the teacher does not know: {unknown[:10]}")


def _student_tokenizer(config, train_records, tokenizer):
    """The student's tokenizer: the teacher's, or a smaller vocabulary learned on the training texts."""
    if not config.student_vocabulary_size:
        return tokenizer
    if config.hidden_loss or config.attention_loss or config.general_epochs:
        raise ValueError(
            "a student vocabulary tokenizes the text differently from the teacher, so hidden-state, "
            "attention and general distillation (which compare token by token) do not apply; drop "
            "--hidden-loss, --attention-loss and --general-epochs, or the student vocabulary"
        )
    return learn_student_tokenizer(train_records, config.student_vocabulary_size, tokenizer)


def _train_student(run):
    """General distillation (if asked), then task distillation; the training metrics."""
    config, teacher, student = run.config, run.teacher, run.student
    metrics = {"backend": keras.config.backend(), "train_examples": len(run.train_records)}
    start = time.perf_counter()
    if config.general_epochs:
        general = Distiller(teacher, student, output_weight=0.0, hidden_weight=1.0, attention_weight=1.0)
        metrics["general_examples"] = len(run.unlabeled)
        metrics["general_final_train"] = _fit(run, general, run.unlabeled, config.general_epochs, labelled=False)
    distiller = Distiller(
        teacher,
        student,
        temperature=config.temperature,
        alpha=config.alpha,
        hidden_weight=config.hidden_loss,
        attention_weight=config.attention_loss,
        separate_inputs=run.separate_inputs,
    )
    metrics["final_train"] = _fit(run, distiller, run.train_records, config.epochs)
    metrics.update(
        train_seconds=time.perf_counter() - start,
        student_config=student.backbone.config.to_dict(),
        student_vocabulary="learned on the training texts" if run.separate_inputs else "the teacher's",
        teacher_parameters=teacher.count_params(),
        student_parameters=student.count_params(),
    )
    metrics["parameter_share"] = metrics["student_parameters"] / metrics["teacher_parameters"]
    return metrics


def _fit(run, distiller, records, epochs, labelled=True):
    """Trains `distiller` on `records`; the last epoch's logs."""
    config = run.config
    total_steps = -(-len(records) // config.batch_size) * epochs
    jit = varying_shape_jit(config.jit)
    distiller.compile(
        optimizer=create_optimizer(
            "adamw", config.lr, int(config.warmup_ratio * total_steps), total_steps, config.weight_decay
        ),
        jit_compile=jit,
    )
    labels = run.label_array(records, labelled)
    teacher_packed = encode(records, run.tokenizer, config.seq_len)
    if distiller.hidden_weight or distiller.attention_weight:  # the teacher runs in every step
        data = batches(teacher_packed, labels, config.batch_size, True, config.seed, compiled=jit)
    else:  # output losses only: the teacher's outputs once, not in every step of every epoch
        student_packed = teacher_packed
        if run.separate_inputs:
            student_packed = encode(records, run.student_tokenizer, config.seq_len)
        outputs = predict_windows(run.teacher, teacher_packed, config.batch_size)
        parts = {"student": student_packed, "teacher_outputs": outputs}
        data = batches(parts, labels, config.batch_size, True, config.seed, compiled=jit)
    if not labelled:
        data = data.map(lambda x, y: x)
    verbose = 2 if os.environ.get("CI") else 1
    history = distiller.fit(data, epochs=epochs, shuffle=False, verbose=verbose).history
    return {name: float(values[-1]) for name, values in history.items()}


def _dev_metrics(run):
    """Teacher and student accuracy and macro-F1 on the dev records, and the accuracy the student retains."""
    metrics = {}
    for role, model, tokenizer in [
        ("teacher", run.teacher, run.tokenizer),
        ("student", run.student, run.student_tokenizer),
    ]:
        packed = encode(run.dev_records, tokenizer, run.config.seq_len)
        labels = run.label_array(run.dev_records)
        data = batches(packed, labels, run.config.batch_size, False, run.config.seed, compiled=model.jit_compile)
        predicted, expected = [], []
        for x, y in data.as_numpy_iterator():
            predicted.append(keras.ops.convert_to_numpy(model.predict_on_batch(x)).argmax(-1))
            expected.append(y)
        scores = classification_metrics(np.concatenate(expected), np.concatenate(predicted), len(run.label_names))
        metrics.update({f"{role}_dev_{key}": value for key, value in scores.items()})
    metrics["accuracy_retained"] = metrics["student_dev_accuracy"] / max(metrics["teacher_dev_accuracy"], 1e-9)
    return metrics


def _save(run, metrics):
    """Writes the student (a kbert save with its vocabulary and label names) and `metrics.json`, atomically."""
    student_dir = os.path.join(run.config.out, "student")
    run.student.record_vocabulary(run.student_tokenizer)
    save_model(run.student, os.path.join(student_dir, "model.keras"))
    run.student_tokenizer.save_to_preset(student_dir)
    write_json(list(run.label_names), os.path.join(student_dir, "labels.json"))
    write_json(metrics, os.path.join(run.config.out, "metrics.json"))
