"""Pretraining a BERT from text: corpus → vocabulary → instances → dynamic masking → `BertPretrainer.fit`.

`recipes/pretrain.py` is the command line over `PretrainingConfig` and `pretrain`.
"""

import contextlib
import dataclasses
import glob
import json
import math
import os
import shutil
import tempfile
import time

import keras

from kbert.backend import (
    fixed_shape_jit,
    global_device_count,
    process_count,
    process_index,
    wait_for_all_processes,
)
from kbert.config import BertConfig
from kbert.data import (
    build_instance_cache,
    builtin_corpus,
    cached_instances,
    corpus_digest,
    pretraining_dataset,
    read_bert_text,
    read_jsonl,
)
from kbert.files import write_json, write_on_one_process
from kbert.interop.folders import preset_format, preset_tokenizer
from kbert.models import BertBackbone, BertPretrainer
from kbert.text import WordPieceTokenizer, learn_vocabulary
from kbert.training.checkpoints import TrainingCheckpoint, check_output_folder
from kbert.training.distribution import batch_shards, data_parallel, model_parallel
from kbert.training.optimizers import create_optimizer
from kbert.training.runs import RunSettings, begin_run, join_processes

# Settings a resumed run may change: where it writes, how it executes, and the learning rate (to go on from the
# last good checkpoint with a lower one after a NaN loss). The others must match the checkpoint's.
FREE_ACROSS_RESUME = (
    "out",
    "jit",
    "data_parallel",
    "model_parallel",
    "lr",
    "warmup_steps",
    "coordinator",  # a rerun may use another port or host; the global batches stay the same
    "num_processes",
    "process_id",
)


@dataclasses.dataclass
class PretrainingConfig(RunSettings):
    """Everything a pretraining run needs; the command line maps one flag to each field.

    Attributes:
        corpus: text files or globs (BERT text format: one sentence a line, blank line between documents; or
            `.jsonl` with a "text" field); empty: the built-in corpus (Python standard library docstrings).
        vocab: a `vocab.txt`; None learns one of `vocab_size` tokens from the corpus.
        init: continue pretraining from this checkpoint (a kbert save, or a Hugging Face or KerasHub BERT
            folder) on the corpus, the "LM adaptation" step before fine-tuning; its sizes and vocabulary are
            used (`size`, `config` and `vocab` are ignored), and its masked-LM head when it has one.
        size: a `BertConfig.named` size; `config` (a JSON file) overrides it.
        seq_len, batch_size, steps, max_predictions: the data.
        lr, warmup_steps, weight_decay, optimizer: the optimizer (warmup then linear decay to 0 at `steps`);
            `warmup_steps` None: a tenth of `steps`, at most 50.
        objective: "nsp", "sop" or "mlm".
        mixed_precision: "none", "bf16" or "fp16".
        jit: compile the step: XLA on TensorFlow and JAX, torch.compile on PyTorch. None (the default): XLA on
            TensorFlow and JAX, eager on PyTorch, where compiling pays back only after several hundred steps
            (`kbert.backend.fixed_shape_jit`).
        grad_accum: batches whose gradients are averaged into one update (effective batch: batch_size x this).
        checkpoint_every: steps between checkpoints (and held-out evaluations); must divide `steps`. None: the
            largest divisor of `steps` up to 50.
        data_parallel: JAX: split each batch over all devices (`keras.distribution.DataParallel`).
        model_parallel: JAX: shard the encoder's weights over this many devices (`ModelParallel`); the batch
            is split over the groups left.
        eval_batches: held-out batches (fixed masks) for the initial and final metrics.
        out: the output folder.
    """

    corpus: list = dataclasses.field(default_factory=list)
    vocab: str | None = None
    init: str | None = None
    vocab_size: int = 8000
    lowercase: bool = True
    size: str = "tiny"
    config: str | None = None
    seq_len: int = 128
    batch_size: int = 32
    steps: int = 500
    max_predictions: int = 20
    lr: float = 1e-3
    warmup_steps: int | None = None
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    objective: str = "nsp"
    whole_word_masking: bool = False
    grad_accum: int = 1
    checkpoint_every: int | None = None
    data_parallel: bool = False
    model_parallel: int = 1
    eval_batches: int = 8
    out: str = "runs/pretrain"


def read_corpus(paths):
    """Documents (lists of sentences) from files/globs, or the built-in corpus when `paths` is empty."""
    if not paths:
        return builtin_corpus()
    files = sorted({match for pattern in paths for match in glob.glob(os.path.expanduser(pattern))})
    if not files:
        raise ValueError(
            f"no corpus file matches {paths}; pass text files or globs (BERT text format or .jsonl)"
        )
    folders = [f for f in files if os.path.isdir(f)]
    if folders:
        raise ValueError(
            f"corpus {folders[0]!r} is a folder; pass its files, e.g. {os.path.join(folders[0], '*.txt')!r}"
        )
    jsonl = [f for f in files if f.endswith(".jsonl")]
    text = [f for f in files if not f.endswith(".jsonl")]
    documents = list(read_jsonl(jsonl)) if jsonl else []
    documents += list(read_bert_text(text)) if text else []
    if not documents:
        raise ValueError(f"the corpus files {files} hold no sentence")
    return documents


def _tokenizer(config, documents):
    if config.init:
        tokenizer = preset_tokenizer(config.init)
        if tokenizer is None:
            raise ValueError(
                f"--init {config.init!r} has no vocab.txt; its tokenizer is needed to pretrain further"
            )
    elif config.vocab:
        tokenizer = WordPieceTokenizer(vocabulary=config.vocab, lowercase=config.lowercase)
    else:
        sentences = (sentence for document in documents for sentence in document)
        vocabulary = learn_vocabulary(
            sentences, vocabulary_size=config.vocab_size, lowercase=config.lowercase
        )
        tokenizer = WordPieceTokenizer(vocabulary=vocabulary, lowercase=config.lowercase)
    return tokenizer


def _model_config(config, vocabulary_size):
    if config.config:
        try:
            model_config = BertConfig.from_json(config.config)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{config.config}:{error.lineno}: not valid JSON ({error.msg}); --config takes a JSON object of "
                "kbert.BertConfig fields"
            ) from None
        except (TypeError, ValueError) as error:
            raise ValueError(f"{config.config}: {error}") from None
        return dataclasses.replace(model_config, vocabulary_size=vocabulary_size)
    return BertConfig.named(
        config.size, vocabulary_size=vocabulary_size, max_sequence_length=max(config.seq_len, 128)
    )


def _build_model(config, tokenizer):
    """The pretrainer (fresh, or `config.init`'s weights) and its `BertConfig`; checks `seq_len` fits it."""
    if config.init:
        model = BertPretrainer.from_preset(config.init, objective=config.objective)
        model_config, source = model.backbone.config, f"the --init model {config.init!r}"
    else:
        model_config = _model_config(config, tokenizer.vocabulary_size)
        model = BertPretrainer(BertBackbone.from_bert_config(model_config), objective=config.objective)
        source = f"--config {config.config!r}" if config.config else f"--size {config.size!r}"
    if config.seq_len > model_config.max_sequence_length:
        raise ValueError(
            f"seq_len={config.seq_len} > the max_sequence_length {model_config.max_sequence_length} of "
            f"{source}; use --seq-len {model_config.max_sequence_length} or less"
        )
    return model, model_config


class _StepTimer(keras.callbacks.Callback):
    """Training time without each process's first batch (compilation), for tokens/s; kept in `totals`, which
    the checkpoint saves, so a resumed run reports the whole run."""

    def __init__(self, totals):
        super().__init__()
        self.totals = totals
        self.start = None

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.batches = None, 0

    def on_train_batch_end(self, batch, logs=None):
        if self.start is None:
            self.start = time.perf_counter()
        else:
            self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        # Before the checkpoint's on_epoch_end, so the totals it saves include this epoch.
        if self.start is not None:
            self.totals["timed_batches"] += self.batches
            self.totals["timed_seconds"] += time.perf_counter() - self.start


def _steps_per_checkpoint(config):
    if config.checkpoint_every is None:
        # Short "epochs" of the endless stream give a loss curve and held-out metrics every few dozen steps.
        return max(d for d in range(1, min(config.steps, 50) + 1) if config.steps % d == 0)
    if config.checkpoint_every < 1 or config.steps % config.checkpoint_every:
        raise ValueError(
            f"checkpoint_every={config.checkpoint_every} must divide steps={config.steps} (a checkpoint ends "
            "each Keras epoch); choose a divisor, e.g. "
            f"{[d for d in range(1, min(config.steps, 1000) + 1) if config.steps % d == 0][-4:]}"
        )
    return config.checkpoint_every


def _warmup_steps(config):
    return min(50, config.steps // 10) if config.warmup_steps is None else config.warmup_steps


def _check_config(config):
    """Every setting in range, before anything is read or written."""
    config.check_run_settings()
    if config.objective not in ("nsp", "sop", "mlm"):
        raise ValueError(f"objective={config.objective!r}; choose 'nsp', 'sop' or 'mlm'")
    config.check_counts("steps", "batch_size", "grad_accum", "max_predictions", "eval_batches", "model_parallel")
    if config.seq_len < 5:
        raise ValueError(f"seq_len={config.seq_len} is too short for [CLS] A [SEP] B [SEP]; use 5 or more")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise ValueError(f"lr={config.lr}; the learning rate must be a finite number > 0 (BERT: 1e-4)")
    if not 0 <= _warmup_steps(config) <= config.steps:
        raise ValueError(
            f"warmup_steps={config.warmup_steps}; use 0 to steps={config.steps} (warmup, then linear decay to 0 at "
            "steps)"
        )
    if not (math.isfinite(config.weight_decay) and config.weight_decay >= 0):
        raise ValueError(f"weight_decay={config.weight_decay}; use a finite number >= 0 (BERT: 0.01)")
    if not (config.init or config.vocab) and config.vocab_size < 10:
        raise ValueError(f"vocab_size={config.vocab_size}; a learned vocabulary needs at least 10 tokens")


def _check_paths(config):
    """The output folder can be made, and is not the --init checkpoint (which the run must not change)."""
    if config.init:
        preset_format(config.init)  # raises for a path that holds no checkpoint
    check_output_folder(config.out, {"--init": config.init})


def _check_existing_run(config, tokenizer):
    """An --out that holds files of a run must be this run's: a model without checkpoints, or a vocabulary other
    than this run's, is refused (the settings are checked against the checkpoint when it is restored)."""
    checkpoints = os.path.join(config.out, "checkpoints")
    has_checkpoint = bool(TrainingCheckpoint(checkpoints, 1).state_paths())
    if not has_checkpoint and os.path.isfile(os.path.join(config.out, "model.keras")):
        raise ValueError(
            f"{config.out!r} holds a model.keras but no pretraining checkpoint (checkpoints/): it is not a run "
            "this command can resume; pass a new --out"
        )
    saved_vocabulary = os.path.join(config.out, "vocab.txt")
    if has_checkpoint and os.path.isfile(saved_vocabulary):
        saved = WordPieceTokenizer(vocabulary=saved_vocabulary)
        if saved.vocabulary != tokenizer.vocabulary:
            raise ValueError(
                f"{config.out!r} holds a run with another vocabulary ({saved_vocabulary}: {saved.vocabulary_size} "
                f"tokens; this run's: {tokenizer.vocabulary_size}); rerun with the same --vocab/--vocab-size and "
                "corpus to resume, or pass a new --out"
            )


def _instance_cache(config, documents, tokenizer, corpus_key):
    """`out/instances`, reused when it was built from the same corpus and settings, else built in a staging folder
    that replaces it only once it holds at least one batch (so a corpus too small for a batch changes nothing)."""
    cache = os.path.join(config.out, "instances")
    pair_task = "sop" if config.objective == "sop" else "nsp"
    settings = dict(
        max_seq_length=config.seq_len, pair_task=pair_task, seed=config.seed, corpus_key=corpus_key
    )
    if process_index() == 0:  # process 0 builds the cache; the others read it once it is there
        _reuse_or_build(cache, config, documents, tokenizer, settings)
    wait_for_all_processes("kbert-instances")
    if process_index() != 0:
        meta = cached_instances(documents, tokenizer, cache, **settings)
        if meta is None:
            raise ValueError(f"{cache!r} is not readable from process {process_index()}: --out must be shared")
        _check_enough_instances(meta, config)
    return cache


def _reuse_or_build(cache, config, documents, tokenizer, settings):
    """Keeps the cache when it was built from the same corpus and settings, else builds it in a staging folder."""
    meta = cached_instances(documents, tokenizer, cache, **settings)
    if meta is not None:
        _check_enough_instances(meta, config)
        return
    created = not os.path.exists(config.out)
    os.makedirs(config.out, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".instances-", dir=config.out)
    try:
        _check_enough_instances(build_instance_cache(documents, tokenizer, staging, **settings), config)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(config.out, ignore_errors=True)
        raise
    if os.path.isdir(cache):
        shutil.rmtree(cache)
    os.replace(staging, cache)


def _check_enough_instances(meta, config):
    if meta["num_instances"] < config.batch_size:
        raise ValueError(
            f"the corpus gives {meta['num_instances']} training sequences, fewer than one batch "
            f"(batch_size={config.batch_size}); give a larger corpus or a smaller --batch-size"
        )


def _distribution(config):
    if config.data_parallel and config.model_parallel > 1:
        raise ValueError(
            "data_parallel and model_parallel > 1 exclude each other; model_parallel splits "
            "the batch over the devices it leaves"
        )
    if config.model_parallel > 1:
        return model_parallel(config.model_parallel)
    return data_parallel() if config.data_parallel else None


def pretrain(config: PretrainingConfig) -> dict:
    """Runs pretraining and writes to `config.out`: `model.keras` (the pretrainer), `vocab.txt`,
    `tokenizer_config.json`, `config.json` (the model), `history.json`, `loss.png`, `metrics.json`, TensorBoard
    logs in `logs/` and the training state in `checkpoints/`.

    Rerunning with the same config after an interruption (even SIGKILL) resumes from the last checkpoint, written
    every `checkpoint_every` steps: weights, optimizer, step, data position and dropout's random state, so the
    result equals an uninterrupted run's (up to float rounding). A run that finished restores and trains no more.

    Returns:
        The metrics written to `metrics.json`.

    Raises:
        FloatingPointError: when the training loss becomes NaN or infinite; the last good checkpoint is kept.
        ValueError: bad settings, or `out` holding a checkpoint of a run with other settings.
    """
    wall_start = time.perf_counter()
    # Validate, then write: settings, paths, corpus, vocabulary, the output folder's run, the model and the
    # instances are all checked before anything under `out` is created or changed.
    documents, corpus_key, tokenizer, distribution = _prepare(config)
    scope = distribution.scope if distribution else contextlib.nullcontext
    with scope():
        model, model_config, checkpoint, state = _build_and_restore(config, tokenizer, corpus_key)
    cache = _instance_cache(config, documents, tokenizer, corpus_key)
    if checkpoint.writer:  # in a run over several processes, process 0 alone writes to `out`
        tokenizer.save_to_preset(config.out)
        model_config.to_json(os.path.join(config.out, "config.json"))
    with scope():
        initial, final = _train(config, model, checkpoint, state, cache, tokenizer)
    metrics = _write_results(config, model, tokenizer, checkpoint, initial, final, wall_start)
    wait_for_all_processes("kbert-done")  # the others return once process 0's files are written
    return metrics


def _prepare(config):
    """Checks the settings and paths, reads the corpus and makes the vocabulary, checks what `out` holds:
    `(documents, corpus_key, tokenizer, distribution)`."""
    _check_config(config)
    _steps_per_checkpoint(config)  # raises for a checkpoint_every that does not divide steps
    join_processes(config)  # before any JAX computation
    _check_paths(config)
    documents = read_corpus(config.corpus)
    corpus_key = corpus_digest(documents)
    tokenizer = _tokenizer(config, documents)
    _check_existing_run(config, tokenizer)
    begin_run(config)
    distribution = _distribution(config)
    if config.batch_size % batch_shards(distribution):
        raise ValueError(
            f"batch_size={config.batch_size} must divide evenly over the {batch_shards(distribution)} "
            "devices that split each batch"
        )
    return documents, corpus_key, tokenizer, distribution


def _batches_per_checkpoint(config):
    return _steps_per_checkpoint(config) * config.grad_accum  # Keras counts batches, not updates


def _build_and_restore(config, tokenizer, corpus_key):
    """The compiled pretrainer, its `config.json` contents, its checkpoint callback and the restored state (None
    for a fresh run); refuses a checkpoint in `out` of other settings."""
    model, model_config = _build_model(config, tokenizer)
    optimizer = create_optimizer(
        config.optimizer,
        config.lr,
        _warmup_steps(config),
        config.steps,
        weight_decay=config.weight_decay,
        gradient_accumulation_steps=config.grad_accum,
    )
    model.compile(optimizer=optimizer, jit_compile=fixed_shape_jit(config.jit))
    model.optimizer.build(model.trainable_variables)
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in FREE_ACROSS_RESUME}
    settings["corpus_sha256"] = corpus_key
    checkpoint = TrainingCheckpoint(
        os.path.join(config.out, "checkpoints"),
        _batches_per_checkpoint(config),
        settings=settings,
        writer=process_index() == 0,
    )
    state = checkpoint.restore(model)
    return model, model_config, checkpoint, state


def _train(config, model, checkpoint, state, cache, tokenizer):
    """Trains from the restored state to `config.steps`: `(initial, final)` held-out metrics."""

    def dataset(seed, shuffle_buffer):
        return pretraining_dataset(
            cache,
            tokenizer,
            batch_size=config.batch_size,
            sequence_length=config.seq_len,
            max_predictions_per_seq=config.max_predictions,
            whole_word_masking=config.whole_word_masking,
            seed=seed,
            shuffle_buffer=shuffle_buffer,
        )

    # Held-out masks: the same batches and masks before and after training.
    evaluation = dataset(config.seed + 1, 0).take(config.eval_batches).cache()
    if state is None:
        initial = model.evaluate(evaluation, verbose=0, return_dict=True)
        checkpoint.extra = {"initial": initial, "timed_batches": 0, "timed_seconds": 0.0}
    else:
        checkpoint.extra = state["extra"]
        initial = checkpoint.extra["initial"]
        print(
            f"Resuming from the checkpoint after step {state['batches'] // config.grad_accum} in "
            f"{checkpoint.backup_dir}"
        )
    batches_done = state["batches"] if state else 0
    # The stream is seeded, so its position is the count of batches consumed: skip them.
    train = dataset(config.seed, 10000).repeat().skip(batches_done)
    callbacks = [_StepTimer(checkpoint.extra), checkpoint]
    if checkpoint.writer:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(config.out, "logs"), write_graph=False))
    model.fit(
        train,
        steps_per_epoch=_batches_per_checkpoint(config),
        epochs=config.steps // _steps_per_checkpoint(config),
        validation_data=evaluation,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself
        verbose=(2 if os.environ.get("CI") else 1) if checkpoint.writer else 0,  # one progress bar
    )
    return initial, model.evaluate(evaluation, verbose=0, return_dict=True)


def _write_results(config, model, tokenizer, checkpoint, initial, final, wall_start):
    """Writes `history.json`, `loss.png`, `model.keras` and `metrics.json` (each atomically, by process 0 alone);
    the metrics."""
    steps_per_checkpoint = _steps_per_checkpoint(config)
    history = checkpoint.history
    model.record_vocabulary(tokenizer)
    if checkpoint.writer:
        write_json({"steps_per_epoch": steps_per_checkpoint, **history}, os.path.join(config.out, "history.json"))
        plot_history(history, steps_per_checkpoint, initial, os.path.join(config.out, "loss.png"))
    write_on_one_process(os.path.join(config.out, "model.keras"), model.save, checkpoint.writer)
    timed = checkpoint.extra
    tokens = timed["timed_batches"] * config.batch_size * config.seq_len
    metrics = {
        "initial_mlm_loss": initial["mlm_loss"],
        "final_mlm_loss": final["mlm_loss"],
        "initial_mlm_accuracy": initial["mlm_accuracy"],
        "final_mlm_accuracy": final["mlm_accuracy"],
        "final_pair_accuracy": final.get("pair_accuracy"),
        "steps": config.steps,
        "tokens_per_second": tokens / max(timed["timed_seconds"], 1e-9),
        "wall_seconds": time.perf_counter() - wall_start,
        "backend": keras.config.backend(),
        "num_processes": process_count(),
        "global_devices": global_device_count(),
    }
    if checkpoint.writer:
        write_json(metrics, os.path.join(config.out, "metrics.json"))
    return metrics


def plot_history(history, steps_per_epoch, initial, path):
    """A PNG of the training and held-out losses against steps; held-out curves start at step 0 (`initial`)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4))
    for key in ("mlm_loss", "val_mlm_loss", "pair_loss", "val_pair_loss"):
        if key not in history:
            continue
        steps = [steps_per_epoch * (i + 1) for i in range(len(history[key]))]
        values = list(history[key])
        if key.startswith("val_"):
            steps, values = [0, *steps], [initial[key[4:]], *values]
        label = f"held-out {key[4:]}" if key.startswith("val_") else f"training {key}"
        axes.plot(
            steps,
            values,
            label=label,
            marker="o",
            markersize=3,
            linestyle="--" if key.startswith("val_") else "-",
        )
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title("kbert pretraining")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
