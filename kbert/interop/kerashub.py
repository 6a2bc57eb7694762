"""KerasHub BERT presets (`keras_hub.models.BertBackbone`), read and written through KerasHub itself.

KerasHub hard-codes the tanh-approximate GELU; a model imported from KerasHub keeps kbert's exact GELU unless the
caller passes `activation="gelu_approximate"`, so its outputs differ from KerasHub's by ~4e-3 on real weights.
"""

import json
import os

import numpy as np

from kbert.config import BertConfig
from kbert.interop.tables import KERASHUB_BACKBONE, NameTable, to_foreign

TABLE = KERASHUB_BACKBONE


def is_preset(directory) -> bool:
    metadata = os.path.join(directory, "metadata.json")
    if os.path.isfile(metadata):
        with open(metadata, encoding="utf-8") as file:
            return "keras_hub_version" in json.load(file)
    return False


def read_preset(directory):
    """Returns `(BertConfig, {KerasHub variable path: np.ndarray})` of a KerasHub BERT preset folder."""
    import keras_hub

    with open(os.path.join(directory, "config.json"), encoding="utf-8") as file:
        class_name = json.load(file).get("class_name")
    if class_name != "BertBackbone":
        raise ValueError(
            f"{directory!r} is a KerasHub {class_name} preset; kbert imports BertBackbone presets only"
        )
    backbone = keras_hub.models.BertBackbone.from_preset(directory)
    config = BertConfig(
        vocabulary_size=backbone.vocabulary_size,
        num_layers=backbone.num_layers,
        num_heads=backbone.num_heads,
        hidden_dim=backbone.hidden_dim,
        intermediate_dim=backbone.intermediate_dim,
        max_sequence_length=backbone.max_sequence_length,
        num_segments=backbone.num_segments,
        dropout=backbone.dropout,
        attention_dropout=backbone.dropout,
    )
    arrays = {variable.path: np.asarray(variable.numpy()) for variable in backbone.weights}
    return config, arrays


def save_kerashub(model, directory, tokenizer=None):
    """Writes `model`'s backbone as a KerasHub `BertBackbone` preset (and a `BertTokenizer` when given)."""
    import keras_hub

    backbone = getattr(model, "backbone", model)
    config = backbone.config
    target = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocabulary_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        hidden_dim=config.hidden_dim,
        intermediate_dim=config.intermediate_dim,
        dropout=config.dropout,
        max_sequence_length=config.max_sequence_length,
        num_segments=config.num_segments,
    )
    targets = {variable.path: variable for variable in target.weights}
    table = NameTable(TABLE)
    for variable in backbone.weights:
        name, transform = table.to_foreign(variable.path)
        destination = targets.pop(name)
        destination.assign(to_foreign(np.asarray(variable.numpy()), transform, tuple(destination.shape)))
    if targets:
        raise ValueError(f"KerasHub weights left unset: {sorted(targets)}")
    directory = os.fspath(directory)
    target.save_to_preset(directory)
    if tokenizer is not None:
        keras_hub.models.BertTokenizer(
            vocabulary=list(tokenizer.vocabulary), lowercase=tokenizer.get_config().get("lowercase", True)
        ).save_to_preset(directory)
    return target
