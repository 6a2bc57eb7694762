"""Hugging Face BERT checkpoints: `config.json` + `model.safetensors` (+ `vocab.txt`), read and written.

Only safetensors are read: a pickled PyTorch `.bin` can run code when loaded, so it is refused.
"""

import dataclasses
import json
import os

import numpy as np

from kbert.config import BertConfig
from kbert.files import atomic_write, write_json

# Hugging Face builds these without a pooler: writing one would only produce "unused weights" warnings there.
WITHOUT_POOLER = ("BertForMaskedLM", "BertForTokenClassification", "BertForQuestionAnswering")

# Hugging Face `hidden_act` → kbert activation. BERT's "gelu" is the exact erf form.
ACTIVATIONS_IN = {
    "gelu": "gelu",
    "gelu_python": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "relu": "relu",
    "silu": "silu",
}
ACTIVATIONS_OUT = {"gelu": "gelu", "gelu_approximate": "gelu_pytorch_tanh", "relu": "relu", "silu": "silu"}

# BertConfig field ← Hugging Face key.
CONFIG_KEYS = {
    "vocabulary_size": "vocab_size",
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "hidden_dim": "hidden_size",
    "intermediate_dim": "intermediate_size",
    "max_sequence_length": "max_position_embeddings",
    "num_segments": "type_vocab_size",
    "dropout": "hidden_dropout_prob",
    "attention_dropout": "attention_probs_dropout_prob",
    "layer_norm_epsilon": "layer_norm_eps",
    "initializer_range": "initializer_range",
}

REQUIRED_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
# transformers.BertConfig's defaults, for keys a config.json may leave out.
HUGGINGFACE_DEFAULTS = {
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "layer_norm_eps": 1e-12,
    "initializer_range": 0.02,
}


def is_checkpoint(directory) -> bool:
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as file:
        return "model_type" in json.load(file)


def config_from_huggingface(hf_config: dict) -> BertConfig:
    """A `BertConfig` from a Hugging Face `config.json` dict; non-BERT configs are refused."""
    model_type = hf_config.get("model_type")
    if model_type != "bert":
        raise ValueError(
            f"config.json has model_type={model_type!r}; kbert loads BERT checkpoints (model_type 'bert') only"
        )
    position_type = hf_config.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ValueError(
            f"position_embedding_type={position_type!r} is not supported; kbert uses absolute positions"
        )
    activation = hf_config.get("hidden_act", "gelu")
    if activation not in ACTIVATIONS_IN:
        raise ValueError(f"hidden_act={activation!r} is not supported; use one of {sorted(ACTIVATIONS_IN)}")
    missing = [key for key in REQUIRED_KEYS if key not in hf_config]
    if missing:
        raise ValueError(f"config.json lacks {missing}; is it a complete BERT config?")
    hf_config = {**HUGGINGFACE_DEFAULTS, **hf_config}
    fields = {field: hf_config[key] for field, key in CONFIG_KEYS.items()}
    return BertConfig(**fields, activation=ACTIVATIONS_IN[activation])


def config_to_huggingface(config: BertConfig, architecture: str, **extra) -> dict:
    if config.position_embedding != "learned":
        raise ValueError("Hugging Face BERT has learned positions only; this model uses sinusoidal ones")
    if config.activation not in ACTIVATIONS_OUT:
        raise ValueError(f"activation {config.activation!r} has no Hugging Face BERT equivalent")
    fields = dataclasses.asdict(config)
    hf_config = {key: fields[field] for field, key in CONFIG_KEYS.items()}
    hf_config.update(
        model_type="bert",
        architectures=[architecture],
        hidden_act=ACTIVATIONS_OUT[config.activation],
        position_embedding_type="absolute",
        pad_token_id=0,
        **extra,
    )
    return hf_config


def read_checkpoint(directory):
    """Returns `(hf_config dict, {name: np.ndarray})` of a Hugging Face BERT folder."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    with open(os.path.join(directory, "config.json"), encoding="utf-8") as file:
        hf_config = json.load(file)
    config_from_huggingface(hf_config)  # a non-BERT config fails here, before any weight is read
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as file:
            files = sorted(set(json.load(file)["weight_map"].values()))
    elif os.path.isfile(os.path.join(directory, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        pickles = [name for name in os.listdir(directory) if name.endswith((".bin", ".pt", ".pth", ".ckpt"))]
        if pickles:
            raise ValueError(
                f"{directory!r} has only pickled PyTorch weights {pickles}; kbert reads safetensors only (a pickle "
                f"can run code when loaded). Convert it once where you trust it: "
                f"`transformers.AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`"
            )
        raise ValueError(f"no weights in {directory!r}: expected model.safetensors next to config.json")
    arrays = {}
    for name in files:
        path = os.path.join(directory, name)
        try:
            arrays.update(load_file(path))
        except (SafetensorError, OSError) as error:
            raise ValueError(
                f"{path!r} is truncated or corrupt ({error}); download or copy it again"
            ) from error
    return hf_config, arrays


def write_checkpoint(directory, hf_config, arrays):
    """Writes `config.json` and `model.safetensors`; each file appears whole or not at all."""
    from safetensors.numpy import save_file

    tensors = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    atomic_write(
        os.path.join(directory, "model.safetensors"),
        lambda temporary: save_file(tensors, temporary, metadata={"format": "pt"}),
    )
    write_json(hf_config, os.path.join(directory, "config.json"), sort_keys=True)


def head_units(arrays):
    """The number of outputs of a checkpoint's classification head (`classifier.weight` rows), or None."""
    head = arrays.get("classifier.weight")
    return None if head is None else int(head.shape[0])


def architecture(directory) -> str:
    """The first of the folder's `config.json` `architectures` ("BertModel" when it names none)."""
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as file:
        return (json.load(file).get("architectures") or ["BertModel"])[0]
