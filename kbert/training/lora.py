"""LoRA fine-tuning: Keras' own low-rank adapters on the encoder's dense layers, the rest of the backbone frozen."""

import os
import tempfile

import numpy as np

from kbert.layers import BertEncoderBlock


def encoder_dense_layers(backbone):
    """Each encoder block's query, key, value and attention output projections and its two feed-forward layers."""
    layers = []
    for block in backbone.encoder_blocks:
        if not isinstance(block, BertEncoderBlock):
            raise ValueError(f"{block.name!r} is a {type(block).__name__}, not a BertEncoderBlock")
        attention = block.attention
        layers += [attention.query, attention.key, attention.value, attention.output_dense]
        layers += [block.intermediate, block.output_dense]
    return layers


def enable_lora(model, rank, alpha=None):
    """Adds rank-`rank` LoRA adapters (`keras.layers.Dense.enable_lora`) to every encoder dense layer of a task
    model and freezes all other backbone weights (embeddings, LayerNorms, biases, pooler); the task head outside
    the backbone stays trainable. Call it before `compile`.

    The adapted kernel is W + (alpha / rank) A·B with A [in, rank] random and B [rank, out] zero, so the model's
    outputs are unchanged until training moves B. `merged_copy` gives the plain model to save and export.

    Args:
        model: a built kbert task model (`model.backbone` a `BertBackbone`).
        rank: the adapters' rank, >= 1.
        alpha: the scale numerator (default `rank`, a scale of 1).

    Returns:
        The adapted dense layers.
    """
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"LoRA rank={rank!r}; use a positive integer (e.g. 8), or leave LoRA off")
    layers = encoder_dense_layers(model.backbone)
    for layer in layers:
        if layer.lora_enabled:
            raise ValueError(f"LoRA is already enabled on {layer.path!r}; call enable_lora once per model")
        if rank > min(layer.kernel.shape):
            raise ValueError(
                f"LoRA rank={rank} exceeds the width of {layer.path!r} {tuple(layer.kernel.shape)}"
            )
    adapters = set()
    for layer in layers:
        layer.enable_lora(rank, lora_alpha=alpha)
        adapters.update(id(v) for v in (layer.lora_kernel_a, layer.lora_kernel_b))
    for variable in model.backbone.weights:
        if id(variable) not in adapters:
            variable.trainable = False
    return layers


def merged_copy(model):
    """An uncompiled copy of `model` with each LoRA kernel merged, W + (alpha / rank) A·B, and no adapters: what
    to save, serve or export (a model without adapters is copied as it is).

    It holds no optimizer state: the adapters' state has no place in the merged model (loading a `model.save` of
    the adapted model skips it with a warning), and a finished run's schedule is spent anyway.
    """
    plain = type(model).from_config(model.get_config())
    if getattr(model, "preprocessor", None) is not None:
        plain.preprocessor.tokenizer = model.preprocessor.tokenizer  # an asset: from_config leaves it out
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "merged.weights.h5")
        model.save_weights(path)  # Dense.save_own_variables writes merged kernels
        plain.load_weights(path)
    return plain


def count_parameters(variables):
    """The number of scalars in `variables`."""
    return sum(int(np.prod(v.shape)) for v in variables)
