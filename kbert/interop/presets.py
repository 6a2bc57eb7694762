"""`from_preset`: kbert models from a local folder — a kbert save, a Hugging Face BERT or a KerasHub BERT preset.

Weights go through the name tables of `kbert.interop.tables`. The model is built and every weight checked before
any is assigned, so a bad checkpoint raises an error and never returns a half-loaded model.
"""

import dataclasses
import errno
import json
import logging
import os
import zipfile

import keras
import numpy as np

from kbert.config import BertConfig
from kbert.interop import huggingface, kerashub
from kbert.interop.tables import HUGGINGFACE_IGNORED, NameTable, huggingface_table, to_kbert
from kbert.text import load_vocabulary

logger = logging.getLogger("kbert")

HEADS = {
    "mlm_head": "masked-LM head",
    "pair_head": "NSP/SOP head",
    "logits": "classifier head",
    "span_head": "span (QA) head",
    "pooler": "pooler",
}
BACKBONE_FLAGS = ("output_hidden_states", "output_attentions", "dtype")
CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(BertConfig))


def preset_format(path) -> str:
    """Which format `path` is: "kbert", "huggingface" or "kerashub"; what kind of local folder (or .keras file) `path` is."""
    path = os.fspath(path)
    if path.endswith(".keras") and os.path.isfile(path):
        return "kbert"
    if not os.path.isdir(path):
        raise ValueError(f"preset {path!r} is not a folder or a .keras file (kbert loads local folders only)")
    if os.path.isfile(os.path.join(path, "model.keras")):
        return "kbert"
    if kerashub.is_preset(path):
        return "kerashub"
    if huggingface.is_checkpoint(path):
        return "huggingface"
    raise ValueError(
        f"{path!r} holds no model: expected model.keras (kbert), config.json + model.safetensors (Hugging Face) "
        f"or a KerasHub preset (config.json + model.weights.h5 + metadata.json)"
    )


def vocabulary_path(path):
    """The vocabulary file of a preset folder, or None."""
    for name in ("vocab.txt", os.path.join("assets", "tokenizer", "vocabulary.txt")):
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def load_preset(cls, path, **kwargs):
    """Builds `cls` (a kbert model class) from the preset at `path`; see `KbertModel.from_preset`."""
    from kbert.models import BertBackbone, BertEmbedder

    path = os.fspath(path)
    kind = preset_format(path)
    backbone_kwargs = {key: kwargs.pop(key) for key in list(kwargs) if key in BACKBONE_FLAGS + CONFIG_FIELDS}
    if cls is BertEmbedder and kwargs.get("pooling") == "concat_last_4":
        backbone_kwargs["output_hidden_states"] = True
    if kind == "kbert":
        return _from_kbert_save(cls, path, backbone_kwargs, kwargs)

    if kind == "huggingface":
        hf_config, arrays = huggingface.read_checkpoint(path)
        config = huggingface.config_from_huggingface(hf_config)
        prefix = "bert." if any(name.startswith("bert.") for name in arrays) else ""
        table = huggingface_table(prefix)
        labels = hf_config.get("id2label")
    else:
        config, arrays = kerashub.read_preset(path)
        table = NameTable(kerashub.TABLE)
        labels = None
    _check_vocabulary(path, config)

    overrides = {key: value for key, value in backbone_kwargs.items() if key in CONFIG_FIELDS}
    flags = {key: value for key, value in backbone_kwargs.items() if key in BACKBONE_FLAGS}
    backbone = BertBackbone(**{**config.to_dict(), **overrides}, **flags)
    if cls is BertBackbone:
        model = backbone
    else:
        if cls.__name__ in ("BertClassifier", "BertTokenClassifier") and "num_classes" not in kwargs:
            kwargs["num_classes"] = _num_classes(arrays, labels, path)
        model = cls(backbone, **kwargs)
    assign_weights(model, arrays, table, source=path)
    if cls is not BertBackbone:
        attach_preprocessor(model, path)
    return model


def preset_tokenizer(path):
    """The preset folder's `WordPieceTokenizer` (kbert, Hugging Face or KerasHub layout), or None."""
    from kbert.text import WordPieceTokenizer

    vocabulary = vocabulary_path(path)
    if vocabulary is None:
        return None
    kerashub_config = os.path.join(path, "tokenizer.json")
    if vocabulary.endswith("vocabulary.txt") and os.path.isfile(kerashub_config):
        with open(kerashub_config, encoding="utf-8") as file:
            lowercase = json.load(file).get("config", {}).get("lowercase", True)
        return WordPieceTokenizer(vocabulary=vocabulary, lowercase=lowercase)
    return WordPieceTokenizer.from_preset(path)


def attach_preprocessor(model, path):
    """Gives a task model the preset's tokenizer, so it takes raw text (KerasHub's convention)."""
    from kbert.models import BertPreprocessor

    tokenizer = preset_tokenizer(path)
    if tokenizer is None:
        logger.warning("kbert: %s has no vocabulary; the model takes token ids only", path)
        return
    sequence_length = min(512, model.backbone.config.max_sequence_length)
    # A sentence-transformers folder says how long its texts are cut (all-MiniLM-L6-v2: 256): the same vectors.
    sentence_config = os.path.join(path, "sentence_bert_config.json")
    if os.path.isfile(sentence_config):
        with open(sentence_config, encoding="utf-8") as file:
            try:
                limit = int(json.load(file).get("max_seq_length", sequence_length))
            except (ValueError, TypeError, AttributeError):
                raise ValueError(
                    f"{sentence_config!r} is not a sentence-transformers config (JSON with max_seq_length); "
                    "fix or remove it"
                ) from None
        sequence_length = min(sequence_length, limit)
    model.preprocessor = BertPreprocessor(tokenizer, sequence_length=sequence_length)


def _num_classes(arrays, labels, path):
    if "classifier.weight" in arrays:
        return int(arrays["classifier.weight"].shape[0])
    if labels:
        return len(labels)
    raise ValueError(f"{path!r} has no classifier head: pass num_classes=... to build a fresh one")


def _check_vocabulary(path, config):
    vocabulary = vocabulary_path(path)
    if vocabulary is None:
        return
    size = len(load_vocabulary(vocabulary))
    if size != config.vocabulary_size:
        raise ValueError(
            f"{vocabulary!r} has {size} tokens but the checkpoint's embedding matrix has {config.vocabulary_size} "
            f"rows; the vocabulary does not belong to these weights"
        )


def load_keras_file(path):
    """`keras.models.load_model(path)` (safe mode), with an error that names a file that is not a `.keras` archive
    (Keras reports a truncated or foreign file as "File not found")."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, "no such file", path)
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a .keras file (not a zip archive: truncated, or another format); save models with "
            "model.save('model.keras')"
        )
    return keras.models.load_model(path)


def check_vocabulary(model, tokenizer, vocabulary_source, model_source):
    """Raises `ValueError` when `tokenizer`'s vocabulary is not the one `model` was trained with.

    A model that records its vocabulary (`KbertModel.vocabulary_record`: kbert saves since the record exists)
    must get exactly that vocabulary; otherwise the vocabulary must have as many tokens as the embedding has rows.
    The sources (paths) name the two sides in the message.
    """
    record = getattr(model, "vocabulary_record", None)
    size = tokenizer.vocabulary_size
    if record is not None and (size, tokenizer.vocabulary_sha256) != (
        record["vocabulary_size"],
        record["vocabulary_sha256"],
    ):
        raise ValueError(
            f"{vocabulary_source} ({size} tokens, sha256 {tokenizer.vocabulary_sha256[:12]}) is not the vocabulary "
            f"{model_source} was trained with ({record['vocabulary_size']} tokens, sha256 "
            f"{record['vocabulary_sha256'][:12]}); use the vocab.txt saved with that model"
        )
    rows = getattr(model, "backbone", model).config.vocabulary_size
    if size != rows:
        raise ValueError(
            f"{vocabulary_source} has {size} tokens but the embedding of {model_source} has {rows} rows; the "
            "vocabulary does not belong to these weights: use the vocab.txt saved with that model"
        )


def _from_kbert_save(cls, path, backbone_kwargs, task_kwargs):
    from kbert.models import BertBackbone

    model_path = path if path.endswith(".keras") else os.path.join(path, "model.keras")
    model = load_keras_file(model_path)
    folder_tokenizer = None if path.endswith(".keras") else preset_tokenizer(path)
    if folder_tokenizer is not None:
        check_vocabulary(model, folder_tokenizer, os.path.join(path, "vocab.txt"), model_path)
    backbone = model if isinstance(model, BertBackbone) else model.backbone
    if backbone_kwargs:
        rebuilt = BertBackbone.from_config({**backbone.get_config(), **backbone_kwargs})
        rebuilt.set_weights(backbone.get_weights())
        backbone = rebuilt
    if cls is BertBackbone:
        return backbone
    same_task = all(getattr(model, key, None) == value for key, value in task_kwargs.items())
    if not (type(model) is cls and not backbone_kwargs and same_task):
        logger.warning(
            "kbert: %s head freshly initialised (the save at %s holds a %s)",
            cls.__name__,
            path,
            type(model).__name__,
        )
        model = cls(backbone, **task_kwargs)
    if getattr(model, "preprocessor", None) is None and folder_tokenizer is not None:
        # A save without a preprocessor (a pretraining run's) still takes raw text with its folder's vocabulary.
        attach_preprocessor(model, path)
    return model


def assign_weights(model, arrays, table, source):
    """Checks every weight of `model` against `arrays` (foreign names, via `table`), then assigns them.

    Backbone weights must all be present with the right shapes; a task head (or the pooler) that the checkpoint
    lacks, or has with other shapes, is freshly initialised with a log line. Checkpoint names the table does not
    know raise an error that lists them.
    """
    unknown = sorted(
        name for name in arrays if not table.knows_foreign(name) and not HUGGINGFACE_IGNORED.match(name)
    )
    if unknown:
        raise ValueError(
            f"{source!r} has weights kbert does not know (not a BERT checkpoint?): {unknown[:20]}"
        )
    updates, missing, mismatched, fresh = {}, [], [], set()
    seen = set()
    for variable in model.weights:
        if id(variable) in seen:
            continue
        seen.add(id(variable))
        mapped = table.to_foreign(variable.path)
        group = variable.path.split("/")[0]
        optional = group in HEADS
        if mapped is None and optional:
            fresh.add(group)  # the format has no such head (KerasHub backbone presets)
            continue
        if mapped is None:
            raise ValueError(f"kbert variable {variable.path!r} has no row in the name table")
        name, transform = mapped
        if name not in arrays:
            (fresh.add(group) if optional else missing.append(name))
            continue
        value = arrays[name]
        try:
            value = to_kbert(value, transform, tuple(variable.shape))
        except ValueError:
            pass
        if tuple(value.shape) != tuple(variable.shape):
            if optional:
                fresh.add(group)
            else:
                mismatched.append(
                    f"{name} {tuple(arrays[name].shape)} vs {variable.path} {tuple(variable.shape)}"
                )
            continue
        updates.setdefault(group, []).append((variable, value))
    if missing or mismatched:
        raise ValueError(
            f"{source!r} does not fit this model: "
            + (f"missing weights {missing[:20]}" if missing else "")
            + ("; " if missing and mismatched else "")
            + (f"shape mismatches {mismatched[:20]}" if mismatched else "")
        )
    for group, pairs in updates.items():
        if group in fresh:
            continue  # a head loaded only in part is not loaded at all
        for variable, value in pairs:
            variable.assign(np.asarray(value, dtype=variable.dtype))
    for group in sorted(fresh):
        logger.warning("kbert: %s freshly initialised (not in %s)", HEADS[group], source)
    loaded = sorted(HEADS[group] for group in updates if group in HEADS and group not in fresh)
    logger.info("kbert: loaded the backbone%s from %s", "".join(f", {h}" for h in loaded), source)
