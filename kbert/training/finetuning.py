"""Fine-tuning a pretrained BERT for text classification: records → length-bucketed batches → `fit` → metrics.

`recipes/finetune.py` is the command line over `FinetuningConfig` and `finetune`.
"""

import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf

from kbert.data.records import read_records
from kbert.models import BertClassifier
from kbert.text import SegmentPacker
from kbert.training.checkpoints import save_model, write_json
from kbert.training.optimizers import create_optimizer
from kbert.training.pretraining import MIXED_PRECISION

PAD_MULTIPLE = 16  # batches are padded to a multiple of this: few distinct shapes for XLA


@dataclasses.dataclass
class FinetuningConfig:
    """Everything a fine-tuning run needs; the command line maps one flag to each field.

    Attributes:
        init: the pretrained checkpoint (a kbert save, or a Hugging Face or KerasHub BERT folder).
        train, dev, test: JSONL or CSV files with `text`, optional `text_pair`, and `label`.
        seq_len: the longest packed sequence (longer inputs are truncated longest-first).
        batch_size, epochs, lr, warmup_ratio, weight_decay: AdamW with warmup then linear decay, as BERT.
        patience: epochs without a better dev macro-F1 before stopping (the best epoch's model is kept).
        mixed_precision, jit, seed, out: as in pretraining.
    """

    init: str = ""
    train: str = ""
    dev: str | None = None
    test: str | None = None
    seq_len: int = 128
    batch_size: int = 32
    epochs: int = 3
    lr: float = 5e-5
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    patience: int = 1
    mixed_precision: str = "none"
    jit: bool = True
    seed: int = 0
    out: str = "runs/finetune"


def classification_metrics(labels, predictions, num_classes):
    """Accuracy and macro-F1 (the mean of per-class F1 over the classes present in labels or predictions)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    scores = []
    for label in range(num_classes):
        true_positive = np.sum((predictions == label) & (labels == label))
        predicted, actual = np.sum(predictions == label), np.sum(labels == label)
        if predicted == 0 and actual == 0:
            continue
        scores.append(2 * true_positive / (predicted + actual))
    return {"accuracy": float(np.mean(labels == predictions)), "macro_f1": float(np.mean(scores))}


def encode(records, tokenizer, seq_len):
    """`[CLS] A [SEP] (B [SEP])` packed by `kbert.SegmentPacker` (longest-first truncation) to `seq_len`:
    a dict of int32 NumPy arrays `token_ids`, `segment_ids`, `padding_mask`, each [records, seq_len]."""
    packer = SegmentPacker(seq_len, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    has_pair = any(r["text_pair"] for r in records)
    second = tokenizer([r["text_pair"] or "" for r in records]) if has_pair else None
    packed = packer(tokenizer([r["text"] for r in records]), second)
    return {key: np.asarray(value, dtype=np.int32) for key, value in packed.items()}


def batches(packed, labels, batch_size, shuffle, seed):
    """A `tf.data.Dataset` of `(x, y)` batches of similar lengths, each cut to its longest (multiple of 16)."""
    lengths = packed["padding_mask"].sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    groups = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    labels = np.asarray(labels, np.int32)

    def generate():
        rng = np.random.default_rng(seed)
        sequence = rng.permutation(len(groups)) if shuffle else range(len(groups))
        for group_index in sequence:
            group = groups[group_index]
            length = -(-int(lengths[group].max()) // PAD_MULTIPLE) * PAD_MULTIPLE
            yield {key: value[group, :length] for key, value in packed.items()}, labels[group]

    spec = {
        key: tf.TensorSpec([None, None], tf.int32) for key in ("token_ids", "segment_ids", "padding_mask")
    }
    dataset = tf.data.Dataset.from_generator(
        generate, output_signature=(spec, tf.TensorSpec([None], tf.int32))
    )
    return dataset.apply(tf.data.experimental.assert_cardinality(len(groups))).prefetch(tf.data.AUTOTUNE)


class _BestOnDev(keras.callbacks.Callback):
    """Evaluates dev macro-F1 after each epoch, keeps the best weights, and stops after `patience` worse epochs."""

    def __init__(self, predict_dev, patience):
        super().__init__()
        self.predict_dev, self.patience = predict_dev, patience
        self.best, self.best_weights, self.bad_epochs, self.history = -1.0, None, 0, []

    def on_epoch_end(self, epoch, logs=None):
        metrics = self.predict_dev()
        self.history.append(metrics)
        print(
            f"epoch {epoch + 1}: dev accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}"
        )
        if metrics["macro_f1"] > self.best:
            self.best, self.best_weights, self.bad_epochs = metrics["macro_f1"], self.model.get_weights(), 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def finetune(config: FinetuningConfig) -> dict:
    """Fine-tunes `config.init` on `config.train`; writes a kbert save (`model.keras`, `vocab.txt`,
    `tokenizer_config.json`, `labels.json`) and `metrics.json` (`dev_accuracy`, `dev_macro_f1`, `test_...`,
    `train_seconds`) to `config.out`, and returns the metrics."""
    if config.mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision={config.mixed_precision!r}; choose one of {list(MIXED_PRECISION)}")
    keras.utils.set_random_seed(config.seed)
    keras.config.set_dtype_policy(MIXED_PRECISION[config.mixed_precision])
    os.makedirs(config.out, exist_ok=True)

    train_records = read_records(config.train)
    label_names = sorted({str(r["label"]) for r in train_records})
    label_ids = {name: index for index, name in enumerate(label_names)}
    splits = {"dev": config.dev, "test": config.test}
    evaluation = {name: read_records(path) for name, path in splits.items() if path}
    for name, records in evaluation.items():
        unseen = sorted({str(r["label"]) for r in records} - set(label_ids))
        if unseen:
            raise ValueError(f"the {name} file has label(s) never seen in training: {unseen[:10]}")

    model = BertClassifier.from_preset(config.init, num_classes=len(label_names))
    tokenizer = model.preprocessor.tokenizer if model.preprocessor is not None else None
    if tokenizer is None:
        raise ValueError(
            f"{config.init!r} has no vocabulary (vocab.txt); fine-tuning on text needs its tokenizer"
        )
    if config.seq_len > model.backbone.config.max_sequence_length:
        raise ValueError(
            f"seq_len={config.seq_len} > the model's max_sequence_length "
            f"{model.backbone.config.max_sequence_length}"
        )

    def dataset(records, shuffle, seed=config.seed):
        labels = [label_ids[str(r["label"])] for r in records]
        return batches(
            encode(records, tokenizer, config.seq_len), labels, config.batch_size, shuffle, seed
        ), labels

    train, _ = dataset(train_records, shuffle=True)
    steps_per_epoch = -(-len(train_records) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    model.compile(
        optimizer=create_optimizer(
            "adamw",
            config.lr,
            int(config.warmup_ratio * total_steps),
            total_steps,
            weight_decay=config.weight_decay,
        ),
        jit_compile=config.jit and keras.config.backend() != "torch",
    )

    def predict(name):
        predicted, labels = [], []
        for x, y in dataset(evaluation[name], shuffle=False)[0].as_numpy_iterator():
            predicted.append(keras.ops.convert_to_numpy(model.predict_on_batch(x)).argmax(-1))
            labels.append(y)
        return classification_metrics(np.concatenate(labels), np.concatenate(predicted), len(label_names))

    callbacks = [_BestOnDev(lambda: predict("dev"), config.patience)] if "dev" in evaluation else []
    start = time.perf_counter()
    verbose = 2 if os.environ.get("CI") else 1
    model.fit(train, epochs=config.epochs, callbacks=callbacks, shuffle=False, verbose=verbose)
    metrics = {
        "train_seconds": time.perf_counter() - start,
        "backend": keras.config.backend(),
        "labels": len(label_names),
        "train_examples": len(train_records),
    }
    for name in evaluation:
        metrics.update({f"{name}_{key}": value for key, value in predict(name).items()})

    save_model(model, os.path.join(config.out, "model.keras"))
    tokenizer.save_to_preset(config.out)
    write_json(label_names, os.path.join(config.out, "labels.json"))
    write_json(metrics, os.path.join(config.out, "metrics.json"))
    return metrics
