"""Models from local folders: `from_preset`, the one loader of a kbert save, and conversion between formats.

A folder holds a kbert save (`model.keras`, `vocab.txt`, `labels.json`), a Hugging Face BERT checkpoint
(`config.json` + `model.safetensors`) or a KerasHub BERT preset. File formats, weight names and the assignment of
weights are `kbert.interop`'s; what differs per model class (its Hugging Face architectures, the arguments a
checkpoint fixes, the backbone flags it needs) is declared on the class (`KbertModel`), so nothing here names one.
"""

import dataclasses
import json
import logging
import os

import keras

from kbert.config import BertConfig
from kbert.interop import huggingface, kerashub
from kbert.interop.folders import (
    check_vocabulary,
    check_vocabulary_size,
    load_keras_file,
    preset_format,
    preset_tokenizer,
    read_labels,
)
from kbert.interop.kerashub import save_kerashub
from kbert.interop.saving import save_huggingface, save_kbert
from kbert.interop.tables import NameTable, huggingface_table
from kbert.interop.weights import assign_weights
from kbert.models.backbone import BertBackbone
from kbert.models.preprocessor import BertPreprocessor
from kbert.models.pretrainer import BertPretrainer
from kbert.models.tasks import BertClassifier, BertEmbedder, BertQuestionAnswerer, BertTokenClassifier
from kbert.text import WordPieceTokenizer

logger = logging.getLogger("kbert")

# Every model class, in the order a Hugging Face architecture is looked up (BertModel reads as the backbone).
MODEL_CLASSES = (
    BertBackbone,
    BertPretrainer,
    BertClassifier,
    BertTokenClassifier,
    BertQuestionAnswerer,
    BertEmbedder,
)
BACKBONE_FLAGS = ("output_hidden_states", "output_attentions", "dtype")
CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(BertConfig))


@dataclasses.dataclass
class LoadedModel:
    """A model with the files saved beside it.

    Attributes:
        model: the Keras model (a kbert backbone or task model).
        tokenizer: its `WordPieceTokenizer`, or None (then it takes token ids only).
        labels: class names for classifiers, or None.
        source: where it came from (a path, or "<in memory>").
    """

    model: keras.Model
    tokenizer: WordPieceTokenizer | None = None
    labels: list | None = None
    source: str = "<in memory>"


def saved_model_paths(path):
    """`(folder, model_file)` of a kbert save folder (its `model.keras`) or a bare `.keras` file; `folder` is None
    for a file, `model_file` None when `path` is neither."""
    path = os.fspath(path)
    folder = path if os.path.isdir(path) else None
    model_path = os.path.join(path, "model.keras") if folder else path
    if not (model_path.endswith(".keras") and os.path.isfile(model_path)):
        return folder, None
    return folder, model_path


def load_saved(path, vocabulary=None, what="") -> LoadedModel:
    """Loads a kbert save folder (`model.keras`, `vocab.txt`, `labels.json`) or a bare `.keras` file, once.

    Args:
        path: the folder or file.
        vocabulary: a `vocab.txt` that wins over the folder's and the model's own (for a bare `.keras` file whose
            model carries no preprocessor).
        what: how errors name the model ("teacher", ...), before its path.

    Raises:
        ValueError: `path` holds no kbert save, or the vocabulary or labels do not belong to the model.
    """
    path = os.fspath(path)
    folder, model_path = saved_model_paths(path)
    if model_path is None:
        raise ValueError(
            f"{what + ' ' if what else ''}{path!r} is neither a .keras file nor a kbert save folder (model.keras, vocab.txt); save the "
            f"model with model.save('model.keras') or kbert.interop.save_kbert(model, folder)"
        )
    model = load_keras_file(model_path)
    return with_files(model, vocabulary=vocabulary, folder=folder, source=path, model_file=model_path)


def with_files(
    model, tokenizer=None, labels=None, vocabulary=None, folder=None, source="<in memory>", model_file=None
):
    """A `LoadedModel`: the tokenizer is `tokenizer`, else `vocabulary` (a vocab.txt), else the folder's, else the
    model's preprocessor's; labels are `labels`, else the folder's `labels.json`. Both are checked against the
    model (`ValueError` naming the mismatch, and the model by `model_file` or `source`)."""
    vocabulary_source = "the given tokenizer"
    if tokenizer is None and vocabulary is not None:
        tokenizer, vocabulary_source = WordPieceTokenizer(vocabulary=vocabulary), os.fspath(vocabulary)
    if tokenizer is None and folder:
        tokenizer, vocabulary_source = preset_tokenizer(folder), os.path.join(folder, "vocab.txt")
    if tokenizer is None:
        tokenizer = getattr(getattr(model, "preprocessor", None), "tokenizer", None)
        vocabulary_source = "the model's own vocabulary"
    if tokenizer is not None:
        check_vocabulary(model, tokenizer, vocabulary_source, model_file or source)
    if labels is None and folder:
        labels = read_labels(folder)
    num_classes = getattr(model, "num_classes", None)
    if labels is not None and num_classes is not None and len(labels) != num_classes:
        raise ValueError(f"{len(labels)} label names for a model with num_classes={num_classes}")
    return LoadedModel(model, tokenizer, list(labels) if labels else None, source)


def load_preset(cls, path, **kwargs):
    """Builds `cls` (a kbert model class) from the preset at `path`; see `KbertModel.from_preset`."""
    path = os.fspath(path)
    kind = preset_format(path)
    backbone_kwargs = {key: kwargs.pop(key) for key in list(kwargs) if key in BACKBONE_FLAGS + CONFIG_FIELDS}
    backbone_kwargs.update(cls.backbone_flags(kwargs))
    if kind == "kbert":
        return _from_kbert_save(cls, path, backbone_kwargs, kwargs)
    if kind == "huggingface":
        hf_config, arrays = huggingface.read_checkpoint(path)
        config = huggingface.config_from_huggingface(hf_config)
        table = huggingface_table("bert." if any(name.startswith("bert.") for name in arrays) else "")
        head_units, labels = huggingface.head_units(arrays), hf_config.get("id2label")
    else:
        config, arrays = kerashub.read_preset(path)
        table, head_units, labels = NameTable(kerashub.TABLE), None, None
    check_vocabulary_size(path, config)

    overrides = {key: value for key, value in backbone_kwargs.items() if key in CONFIG_FIELDS}
    flags = {key: value for key, value in backbone_kwargs.items() if key in BACKBONE_FLAGS}
    backbone = BertBackbone(**{**config.to_dict(), **overrides}, **flags)
    if cls is BertBackbone:
        model = backbone
    else:
        model = cls(backbone, **cls.preset_arguments(kwargs, head_units, labels, path))
    assign_weights(model, arrays, table, source=path)
    if cls is not BertBackbone:
        attach_preprocessor(model, path)
    return model


def _from_kbert_save(cls, path, backbone_kwargs, task_kwargs):
    """`cls` from a kbert save: the saved model itself when it is one, else a fresh head on its backbone."""
    loaded = load_saved(path)
    model = loaded.model
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
    if getattr(model, "preprocessor", None) is None and loaded.tokenizer is not None:
        # A save without a preprocessor (a pretraining run's) still takes raw text with its folder's vocabulary.
        attach_preprocessor(model, path, loaded.tokenizer)
    return model


def attach_preprocessor(model, path, tokenizer=None):
    """Gives a task model the preset's tokenizer (or `tokenizer`), so it takes raw text (KerasHub's convention)."""
    tokenizer = tokenizer or preset_tokenizer(path)
    if tokenizer is None:
        logger.warning("kbert: %s has no vocabulary; the model takes token ids only", path)
        return
    sequence_length = min(512, model.backbone.config.max_sequence_length)
    if os.path.isdir(path):
        sequence_length = min(sequence_length, _sentence_transformers_length(path) or sequence_length)
    model.preprocessor = BertPreprocessor(tokenizer, sequence_length=sequence_length)


def _sentence_transformers_length(path):
    """How long a sentence-transformers folder cuts its texts (all-MiniLM-L6-v2: 256), or None: the same
    vectors need the same cut."""
    sentence_config = os.path.join(path, "sentence_bert_config.json")
    if not os.path.isfile(sentence_config):
        return None
    with open(sentence_config, encoding="utf-8") as file:
        try:
            length = json.load(file).get("max_seq_length")
            return None if length is None else int(length)
        except (ValueError, TypeError, AttributeError):
            raise ValueError(
                f"{sentence_config!r} is not a sentence-transformers config (JSON with max_seq_length); "
                "fix or remove it"
            ) from None


def class_for_architecture(architecture):
    """The kbert class that reads a Hugging Face architecture, with the constructor arguments that select it
    (`BertBackbone` for an architecture no class lists)."""
    for cls in MODEL_CLASSES:
        if architecture in cls.huggingface_architectures:
            return cls, dict(cls.huggingface_architectures[architecture])
    return BertBackbone, {}


def load_any(source) -> LoadedModel:
    """The model in `source` (any of the three formats) as the kbert class that matches its heads, with its
    tokenizer: a kbert save as saved, a KerasHub preset as a backbone, a Hugging Face checkpoint by its
    architecture."""
    source = os.fspath(source)
    kind = preset_format(source)
    if kind == "kbert":
        return load_saved(source)
    if kind == "kerashub":
        model = BertBackbone.from_preset(source)
    else:
        cls, arguments = class_for_architecture(huggingface.architecture(source))
        model = cls.from_preset(source, **arguments)
    tokenizer = getattr(getattr(model, "preprocessor", None), "tokenizer", None)
    return LoadedModel(model, tokenizer or preset_tokenizer(source), None, source)


# Files of a kbert, Hugging Face or KerasHub checkpoint: a destination holding one is refused.
CHECKPOINT_FILES = ("model.keras", "model.safetensors", "pytorch_model.bin", "model.weights.h5", "config.json")
SAVERS = {"kbert": save_kbert, "huggingface": save_huggingface, "kerashub": save_kerashub}


def check_destination(source, destination):
    """Refuses, before anything is written, a destination that is the source folder or the folder of a source
    `.keras` file (the save would overwrite what it converts; `samefile` sees through links), or that already
    holds a checkpoint."""
    if not (os.path.exists(source) and os.path.exists(destination)):
        return  # a missing source is load_any's to report; a destination yet to be made is not the source
    folder = source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source))
    if os.path.samefile(folder, destination):
        what = "the source" if folder == source else "the folder of the source"
        raise ValueError(
            f"destination {destination!r} is {what} {source!r}; converting in place would overwrite the "
            f"checkpoint it reads: give another destination folder"
        )
    held = [name for name in CHECKPOINT_FILES if os.path.isfile(os.path.join(destination, name))]
    if held:
        raise ValueError(
            f"destination {destination!r} already holds a checkpoint ({', '.join(held)}); converting there would "
            "overwrite it: give a new or empty folder"
        )


def convert_checkpoint(source, destination, to) -> LoadedModel:
    """Writes the model in `source` (kbert, Hugging Face or KerasHub) to the folder `destination` in format `to`
    ("kbert", "huggingface" or "kerashub"), with its tokenizer; returns what was loaded."""
    if to not in SAVERS:
        raise ValueError(f"to={to!r}; choose one of {sorted(SAVERS)}")
    check_destination(source, destination)
    loaded = load_any(source)
    SAVERS[to](loaded.model, destination, tokenizer=loaded.tokenizer)
    return loaded
