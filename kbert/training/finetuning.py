"""Fine-tuning a pretrained BERT: files → packed windows → length-bucketed batches → `fit` → dev metric → a kbert save.

The tasks (classify, tag, qa, embed) and their files, models and metrics are in `kbert.training.finetuning_tasks`;
`recipes/finetune.py` is the command line over `FinetuningConfig` and `finetune`.
"""

import contextlib
import dataclasses
import math
import os
import time

import keras

from kbert.backend import varying_shape_jit
from kbert.data.batching import batches, predict_windows
from kbert.data.windows import LONG_TEXT
from kbert.files import save_model, write_json
from kbert.training.checkpoints import check_output_folder
from kbert.training.distribution import batch_shards, data_parallel
from kbert.training.finetuning_tasks import TASKS
from kbert.training.lora import count_parameters, enable_lora, merged_copy
from kbert.training.metrics import classification_metrics  # noqa: F401  (re-exported: the classify metric)
from kbert.training.optimizers import create_optimizer
from kbert.training.runs import RunSettings, begin_run, require_one_process


@dataclasses.dataclass
class FinetuningConfig(RunSettings):
    """Everything a fine-tuning run needs; the command line maps one flag to each field.

    Attributes:
        task: "classify", "tag", "qa" or "embed" (files and metrics in `kbert.training.finetuning_tasks`).
        init: the pretrained checkpoint (a kbert save, or a Hugging Face or KerasHub BERT folder).
        train, dev, test: the task's files; dev is scored after each epoch, test once with the best model.
        seq_len: the window length (longer inputs are truncated, or split into windows; see `long_text`).
        doc_stride: tokens between the starts of consecutive windows over a long text (BERT's doc_stride): SQuAD
            contexts, and classify/embed texts with `long_text` "mean" or "max".
        max_answer_length: qa: the longest answer predicted, in tokens.
        long_text: classify/embed: "truncate" keeps each text's first window; "mean" or "max" split long texts into
            windows and average or max their logits (classify) or embeddings (embed) per text.
        lora_rank: 0 fine-tunes every weight; N > 0 trains rank-N LoRA adapters on the encoder's dense layers and
            the task head only (`kbert.training.lora.enable_lora`).
        batch_size, epochs, lr, warmup_ratio, weight_decay: AdamW with warmup then linear decay, as BERT.
        patience: epochs without a better dev metric before stopping (the best epoch's model is kept).
        mixed_precision, seed, out: as in pretraining.
        jit: XLA-compile the step; None chooses per backend and device (`kbert.backend.varying_shape_jit`).
        data_parallel: JAX: split each batch over every device of the host (`keras.distribution.DataParallel`);
            the one short batch of an epoch is padded with weight-0 rows so every device gets its share
            (`kbert.data.batching.device_rows`). classify, tag and qa (embed's in-batch negatives need whole
            batches).
    """

    task: str = "classify"
    init: str = ""
    train: str = ""
    dev: str | None = None
    test: str | None = None
    seq_len: int = 128
    doc_stride: int = 128
    max_answer_length: int = 30
    long_text: str = "truncate"
    lora_rank: int = 0
    batch_size: int = 32
    epochs: int = 3
    lr: float = 5e-5
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    patience: int = 1
    data_parallel: bool = False
    out: str = "runs/finetune"


class _BestOnDev(keras.callbacks.Callback):
    """After each epoch: stops with a clear error on a non-finite loss; scores the dev set, saves the model when
    its metric is the best so far, and stops after `patience` epochs without a better one.

    The best weights are set back at the end; without a dev set the last epoch's model is saved."""

    def __init__(self, evaluate_dev, metric, patience, save, path):
        super().__init__()
        self.evaluate_dev, self.metric, self.patience = evaluate_dev, metric, patience
        self.save, self.path = save, path
        self.best, self.best_epoch, self.best_scores, self.best_weights = -math.inf, None, None, None
        self.bad_epochs, self.save_seconds, self.dev_seconds = 0, 0.0, 0.0

    def _save(self):
        started = time.perf_counter()
        self.save()
        self.save_seconds += time.perf_counter() - started

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            kept = (
                f"{self.path} keeps the model of epoch {self.best_epoch} (the best so far)"
                if self.best_epoch
                else "this run saved no model"
            )
            raise FloatingPointError(
                f"the training loss is {float(loss)} in epoch {epoch + 1}; {kept}. Lower the learning rate "
                f"(--lr), lengthen the warmup or train in float32, then rerun"
            )
        if self.evaluate_dev is None:
            return
        started = time.perf_counter()
        scores = self.evaluate_dev()
        self.dev_seconds += time.perf_counter() - started
        print(f"epoch {epoch + 1}: dev " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()), flush=True)
        if scores[self.metric] > self.best:
            self.best, self.best_epoch, self.best_scores = scores[self.metric], epoch + 1, scores
            self.best_weights, self.bad_epochs = self.model.get_weights(), 0
            self._save()
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
        if self.evaluate_dev is None:
            self._save()


def _check_config(config):
    if config.task not in TASKS:
        raise ValueError(f"task={config.task!r}; choose one of {list(TASKS)}")
    config.check_run_settings()
    require_one_process(config, "fine-tuning")
    if config.data_parallel and config.task == "embed":
        raise ValueError(
            "data_parallel fine-tunes classify, tag and qa; embed's in-batch negatives need whole batches on one device"
        )
    if config.data_parallel and keras.config.backend() != "jax":
        raise ValueError(f"data_parallel needs the JAX backend, not {keras.config.backend()!r}; run with --backend jax")
    if config.long_text not in LONG_TEXT:
        raise ValueError(f"long_text={config.long_text!r}; choose one of {list(LONG_TEXT)}")
    config.check_counts("seq_len", "doc_stride", "max_answer_length", "batch_size", "epochs", "patience")
    if config.lora_rank < 0:
        raise ValueError(f"lora_rank={config.lora_rank}; use 0 (off) or a positive rank such as 8")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise ValueError(
            f"lr={config.lr}; the learning rate must be a finite number > 0 (BERT: 2e-5 to 5e-5)"
        )
    if not 0 <= config.warmup_ratio <= 1:
        raise ValueError(
            f"warmup_ratio={config.warmup_ratio}; use a share of the steps in [0, 1] (BERT: 0.1)"
        )
    if not (math.isfinite(config.weight_decay) and config.weight_decay >= 0):
        raise ValueError(f"weight_decay={config.weight_decay}; use a finite number >= 0 (BERT: 0.01)")
    check_output_folder(config.out, {"--init": config.init})


def finetune(config: FinetuningConfig) -> dict:
    """Fine-tunes `config.init` for `config.task` on `config.train`.

    Writes to `config.out` a kbert save of the best dev epoch (`model.keras`, uncompiled, LoRA kernels merged;
    `vocab.txt`, `tokenizer_config.json`, and `labels.json` for classify and tag) and `metrics.json`: `dev_<metric>` and `test_<metric>` for each of the
    task's metrics, `train_seconds` (the training steps) and `dev_seconds` (scoring dev after each epoch), and counts. Returns the metrics.

    Raises:
        ValueError: for a bad setting or file (naming it), a dev/test label never seen in training, or a
            checkpoint that does not fit.
        FloatingPointError: when the training loss becomes NaN or infinite; `model.keras` keeps the best model of
            the epochs before, if any.
    """
    _check_config(config)
    begin_run(config)
    task, train_records, evaluation = _read_data(config)
    distribution = data_parallel() if config.data_parallel else None
    with distribution.scope() if distribution else contextlib.nullcontext():
        return _finetune(config, task, train_records, evaluation, batch_shards(distribution))


def _finetune(config, task, train_records, evaluation, devices):
    """Builds, trains (keeping the best dev epoch's save) and scores the model; the metrics."""
    model, tokenizer = _build_model(config, task)
    jit = varying_shape_jit(config.jit)
    train = batches(
        *task.training_data(tokenizer, train_records),
        config.batch_size,
        True,
        config.seed,
        compiled=jit,
        devices=devices,
    )
    _compile(config, model, task, int(train.cardinality()) * config.epochs, jit)
    prepared = {split: task.prepare(tokenizer, records) for split, records in evaluation.items()}

    def evaluate(split):
        predict = lambda packed: predict_windows(model, packed, config.batch_size)  # noqa: E731
        return task.evaluate(evaluation[split], prepared[split], predict)

    model_path = os.path.join(config.out, "model.keras")

    def save():
        # Written only with a model worth keeping: a failed run leaves the folder's previous save whole.
        tokenizer.save_to_preset(config.out)
        if task.labels is not None:
            write_json(task.labels, os.path.join(config.out, "labels.json"))
        save_model(merged_copy(model), model_path)  # uncompiled: no optimizer state in the deliverable

    dev = (lambda: evaluate("dev")) if "dev" in evaluation else None
    watch = _BestOnDev(dev, task.metric, config.patience, save, model_path)
    start = time.perf_counter()
    model.fit(train, epochs=config.epochs, callbacks=[watch], shuffle=False, verbose=2 if os.environ.get("CI") else 1)
    results = {
        # The training steps alone; scoring dev each epoch and saving the best model are timed apart.
        "train_seconds": time.perf_counter() - start - watch.save_seconds - watch.dev_seconds,
        "dev_seconds": watch.dev_seconds,
        "backend": keras.config.backend(),
        "task": config.task,
        "train_examples": len(train_records),
        "trainable_parameters": count_parameters(model.trainable_weights),
        "best_epoch": watch.best_epoch,
    }
    if task.labels is not None:
        results["labels"] = len(task.labels)
    for split in evaluation:
        scores = (split == "dev" and watch.best_scores) or evaluate(split)  # dev: the best epoch's, as scored
        results.update({f"{split}_{key}": value for key, value in scores.items()})
    write_json(results, os.path.join(config.out, "metrics.json"))
    return results


def _read_data(config):
    """The task, its training records (its labels learned from them) and `{split: records}` of dev and test,
    each checked against the training labels."""
    task = TASKS[config.task](config)
    train_records = task.read(config.train)
    task.learn(train_records)
    evaluation = {}
    for split, path in (("dev", config.dev), ("test", config.test)):
        if path:
            evaluation[split] = task.read(path)
            task.check(split, path, evaluation[split])
    return task, train_records, evaluation


def _build_model(config, task):
    """The task model from `config.init` with its tokenizer, the pooler frozen where the task does not use it,
    LoRA adapters where asked."""
    model = task.build()
    tokenizer = model.preprocessor.tokenizer if model.preprocessor is not None else None
    if tokenizer is None:
        raise ValueError(
            f"{config.init!r} has no vocabulary (vocab.txt); fine-tuning on text needs its tokenizer"
        )
    if config.seq_len > model.backbone.config.max_sequence_length:
        raise ValueError(
            f"seq_len={config.seq_len} > the model's max_sequence_length "
            f"{model.backbone.config.max_sequence_length}; lower --seq-len"
        )
    if not task.uses_pooler:
        for variable in model.backbone.pooler.weights:
            variable.trainable = False
    if config.lora_rank:
        enable_lora(model, config.lora_rank)
    return model, tokenizer


def _compile(config, model, task, total_steps, jit):
    """Compiles with AdamW, linear warmup then decay over `total_steps`, and the task's loss and metrics."""
    model.compile(
        optimizer=create_optimizer(
            "adamw", config.lr, int(config.warmup_ratio * total_steps), total_steps, weight_decay=config.weight_decay
        ),
        loss=task.loss(),
        metrics=task.fit_metrics,
        jit_compile=jit,
    )
