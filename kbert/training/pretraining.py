"""Pretraining a BERT from text: corpus → vocabulary → instances → dynamic masking → `BertPretrainer.fit`.

`recipes/pretrain.py` is the command line over `PretrainingConfig` and `pretrain`.
"""

import dataclasses
import glob
import json
import os
import time

import keras

from kbert.config import BertConfig
from kbert.data import build_instance_cache, builtin_corpus, pretraining_dataset, read_bert_text, read_jsonl
from kbert.models import BertBackbone, BertPretrainer
from kbert.text import WordPieceTokenizer, learn_vocabulary
from kbert.training.optimizers import create_optimizer

MIXED_PRECISION = {"none": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


@dataclasses.dataclass
class PretrainingConfig:
    """Everything a pretraining run needs; the command line maps one flag to each field.

    Attributes:
        corpus: text files or globs (BERT text format: one sentence a line, blank line between documents; or
            `.jsonl` with a "text" field); empty: the built-in corpus (Python standard library docstrings).
        vocab: a `vocab.txt`; None learns one of `vocab_size` tokens from the corpus.
        size: a `BertConfig.named` size; `config` (a JSON file) overrides it.
        seq_len, batch_size, steps, max_predictions: the data.
        lr, warmup_steps, weight_decay, optimizer: the optimizer (warmup then linear decay to 0 at `steps`).
        objective: "nsp", "sop" or "mlm".
        mixed_precision: "none", "bf16" or "fp16".
        jit: compile the step with XLA (TensorFlow, JAX); on PyTorch `jit` has no effect.
        eval_batches: held-out batches (fixed masks) for the initial and final metrics.
        out: the output folder.
    """

    corpus: list = dataclasses.field(default_factory=list)
    vocab: str | None = None
    vocab_size: int = 8000
    lowercase: bool = True
    size: str = "tiny"
    config: str | None = None
    seq_len: int = 128
    batch_size: int = 32
    steps: int = 500
    max_predictions: int = 20
    lr: float = 1e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    objective: str = "nsp"
    whole_word_masking: bool = False
    mixed_precision: str = "none"
    jit: bool = True
    seed: int = 0
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
    jsonl = [f for f in files if f.endswith(".jsonl")]
    text = [f for f in files if not f.endswith(".jsonl")]
    documents = list(read_jsonl(jsonl)) if jsonl else []
    documents += list(read_bert_text(text)) if text else []
    if not documents:
        raise ValueError(f"the corpus files {files} hold no sentence")
    return documents


def _tokenizer(config, documents, out):
    if config.vocab:
        tokenizer = WordPieceTokenizer(vocabulary=config.vocab, lowercase=config.lowercase)
    else:
        sentences = (sentence for document in documents for sentence in document)
        vocabulary = learn_vocabulary(
            sentences, vocabulary_size=config.vocab_size, lowercase=config.lowercase
        )
        tokenizer = WordPieceTokenizer(vocabulary=vocabulary, lowercase=config.lowercase)
    tokenizer.save_to_preset(out)
    return tokenizer


def _model_config(config, vocabulary_size):
    if config.config:
        model_config = BertConfig.from_json(config.config)
        return dataclasses.replace(model_config, vocabulary_size=vocabulary_size)
    return BertConfig.named(
        config.size, vocabulary_size=vocabulary_size, max_sequence_length=max(config.seq_len, 128)
    )


class _StepTimer(keras.callbacks.Callback):
    """Training time without the first step (compilation), for tokens/s."""

    def __init__(self):
        super().__init__()
        self.start = None
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        if self.start is None:
            self.start = time.perf_counter()
        else:
            self.steps += 1

    def seconds(self):
        return time.perf_counter() - self.start if self.start is not None else 0.0


def pretrain(config: PretrainingConfig) -> dict:
    """Runs pretraining and writes to `config.out`: `model.keras` (the pretrainer), `vocab.txt`,
    `tokenizer_config.json`, `config.json` (the model), `history.json`, `loss.png` and `metrics.json`.

    Returns:
        The metrics written to `metrics.json`.
    """
    wall_start = time.perf_counter()
    if config.mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision={config.mixed_precision!r}; choose one of {list(MIXED_PRECISION)}")
    if config.steps < 1 or config.batch_size < 1:
        raise ValueError(f"steps ({config.steps}) and batch_size ({config.batch_size}) must be >= 1")
    os.makedirs(config.out, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    keras.config.set_dtype_policy(MIXED_PRECISION[config.mixed_precision])

    documents = read_corpus(config.corpus)
    tokenizer = _tokenizer(config, documents, config.out)
    pair_task = "sop" if config.objective == "sop" else "nsp"
    cache = os.path.join(config.out, "instances")
    build_instance_cache(
        documents, tokenizer, cache, max_seq_length=config.seq_len, pair_task=pair_task, seed=config.seed
    )

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
    train = dataset(config.seed, 10000).repeat()

    model_config = _model_config(config, tokenizer.vocabulary_size)
    model_config.to_json(os.path.join(config.out, "config.json"))
    model = BertPretrainer(BertBackbone.from_bert_config(model_config), objective=config.objective)
    optimizer = create_optimizer(
        config.optimizer, config.lr, config.warmup_steps, config.steps, weight_decay=config.weight_decay
    )
    model.compile(optimizer=optimizer, jit_compile=config.jit and keras.config.backend() != "torch")

    initial = model.evaluate(evaluation, verbose=0, return_dict=True)
    timer = _StepTimer()
    # Short "epochs" of the endless stream give a loss curve and held-out metrics every few dozen steps.
    steps_per_epoch = max(d for d in range(1, min(config.steps, 50) + 1) if config.steps % d == 0)
    history = model.fit(
        train,
        steps_per_epoch=steps_per_epoch,
        epochs=config.steps // steps_per_epoch,
        validation_data=evaluation,
        callbacks=[timer],
        shuffle=False,  # the dataset shuffles itself
        verbose=2 if os.environ.get("CI") else 1,
    )
    final = model.evaluate(evaluation, verbose=0, return_dict=True)
    with open(os.path.join(config.out, "history.json"), "w", encoding="utf-8") as file:
        json.dump({"steps_per_epoch": steps_per_epoch, **history.history}, file, indent=2)
    plot_history(history.history, steps_per_epoch, initial, os.path.join(config.out, "loss.png"))

    model.save(os.path.join(config.out, "model.keras"))
    metrics = {
        "initial_mlm_loss": initial["mlm_loss"],
        "final_mlm_loss": final["mlm_loss"],
        "initial_mlm_accuracy": initial["mlm_accuracy"],
        "final_mlm_accuracy": final["mlm_accuracy"],
        "final_pair_accuracy": final.get("pair_accuracy"),
        "steps": config.steps,
        "tokens_per_second": timer.steps * config.batch_size * config.seq_len / max(timer.seconds(), 1e-9),
        "wall_seconds": time.perf_counter() - wall_start,
        "backend": keras.config.backend(),
    }
    with open(os.path.join(config.out, "metrics.json"), "w", encoding="utf-8") as file:
        json.dump(metrics, file, indent=2)
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
