"""`BertConfig`: the sizes and numerics of a BERT model, one object that round-trips to JSON.

The field names are the keyword arguments of `kbert.BertBackbone`, so
`kbert.BertBackbone(**config.to_dict())` builds the model a config describes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

POSITION_EMBEDDINGS = ("learned", "sinusoidal")

# name: (num_layers, hidden_dim). Heads are hidden_dim / 64 and the feed-forward is 4 x hidden_dim, as in
# "Well-Read Students Learn Better" (the 24 compact BERTs) and the original base/large models.
_NAMED_SIZES = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
    "large": (24, 1024),
}
_GRID_LAYERS = range(2, 13, 2)
_GRID_WIDTHS = (128, 256, 512, 768)
_GRID_NAME = re.compile(r"^L(\d+)_H(\d+)$")


@dataclasses.dataclass
class BertConfig:
    """Hyper-parameters of a BERT encoder.

    Args:
        vocabulary_size: number of WordPiece tokens; token ids must be below it.
        num_layers: number of post-LayerNorm encoder blocks.
        num_heads: attention heads per block; must divide `hidden_dim`.
        hidden_dim: width of the residual stream.
        intermediate_dim: width of the feed-forward layer inside each block.
        max_sequence_length: longest sequence the position embedding covers.
        num_segments: number of segment (token type) ids; segment ids must be below it.
        dropout: dropout rate on embeddings, attention output and feed-forward output.
        attention_dropout: dropout rate on the attention probabilities (BERT: 0.1).
        activation: feed-forward activation; "gelu" is BERT's exact (erf) GELU, "gelu_approximate" the tanh
            form KerasHub uses.
        layer_norm_epsilon: LayerNorm epsilon (BERT: 1e-12).
        initializer_range: standard deviation of the truncated-normal initializer (BERT: 0.02).
        position_embedding: "learned" (BERT) or "sinusoidal" (the fixed table of the original Transformer).

    Example:
    >>> config = BertConfig.named("L4_H256", vocabulary_size=1000)
    >>> config.num_heads, config.intermediate_dim
    (4, 1024)
    """

    vocabulary_size: int = 30522
    num_layers: int = 12
    num_heads: int = 12
    hidden_dim: int = 768
    intermediate_dim: int = 3072
    max_sequence_length: int = 512
    num_segments: int = 2
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    layer_norm_epsilon: float = 1e-12
    initializer_range: float = 0.02
    position_embedding: str = "learned"

    def __post_init__(self):
        validate(**self.to_dict())

    @classmethod
    def named(cls, name: str, **overrides) -> BertConfig:
        """A named size: tiny, mini, small, medium, base, large, or a grid name such as "L4_H256".

        Grid names cover L in 2..12 (step 2) and H in 128/256/512/768. Keyword arguments override fields.
        """
        if name in _NAMED_SIZES:
            num_layers, hidden_dim = _NAMED_SIZES[name]
        else:
            match = _GRID_NAME.match(name)
            if not match or int(match[1]) not in _GRID_LAYERS or int(match[2]) not in _GRID_WIDTHS:
                raise ValueError(f"unknown config name {name!r}; choose one of {cls.names()}")
            num_layers, hidden_dim = int(match[1]), int(match[2])
        fields = dict(
            num_layers=num_layers,
            hidden_dim=hidden_dim,
            num_heads=hidden_dim // 64,
            intermediate_dim=4 * hidden_dim,
        )
        fields.update(overrides)
        return cls(**fields)

    @staticmethod
    def names() -> list[str]:
        """All names `named` accepts."""
        grid = [f"L{layers}_H{width}" for layers in _GRID_LAYERS for width in _GRID_WIDTHS]
        return list(_NAMED_SIZES) + grid

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict) -> BertConfig:
        unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(
                f"unknown BertConfig field(s) {unknown}; valid fields are "
                f"{[f.name for f in dataclasses.fields(cls)]}"
            )
        return cls(**fields)

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The config as a JSON string; also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        if path is not None:
            with open(path, "w", encoding="utf-8") as file:
                file.write(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> BertConfig:
        """Reads a config from a JSON string or a path to a JSON file."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            with open(text_or_path, encoding="utf-8") as file:
                text = file.read()
        return cls.from_dict(json.loads(text))


def validate(
    *,
    vocabulary_size,
    num_layers,
    num_heads,
    hidden_dim,
    intermediate_dim,
    max_sequence_length,
    num_segments,
    dropout,
    attention_dropout,
    activation,
    layer_norm_epsilon,
    initializer_range,
    position_embedding,
):
    """Raises a `ValueError` naming the bad value and the fix; shared by `BertConfig` and `BertBackbone`."""
    for name, value in [
        ("vocabulary_size", vocabulary_size),
        ("num_layers", num_layers),
        ("num_heads", num_heads),
        ("hidden_dim", hidden_dim),
        ("intermediate_dim", intermediate_dim),
        ("max_sequence_length", max_sequence_length),
        ("num_segments", num_segments),
    ]:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if hidden_dim % num_heads:
        raise ValueError(
            f"num_heads={num_heads} does not divide hidden_dim={hidden_dim}; choose num_heads among "
            f"{[n for n in range(1, hidden_dim + 1) if hidden_dim % n == 0 and n <= 64]} "
            f"(BERT uses hidden_dim / 64)"
        )
    for name, rate in [("dropout", dropout), ("attention_dropout", attention_dropout)]:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {rate!r}")
    if position_embedding not in POSITION_EMBEDDINGS:
        raise ValueError(f"position_embedding={position_embedding!r}; choose one of {POSITION_EMBEDDINGS}")
    if position_embedding == "sinusoidal" and hidden_dim % 2:
        raise ValueError(f"sinusoidal position embeddings need an even hidden_dim, got {hidden_dim}")
    if layer_norm_epsilon <= 0 or initializer_range <= 0:
        raise ValueError(
            f"layer_norm_epsilon ({layer_norm_epsilon}) and initializer_range ({initializer_range}) must be > 0"
        )
    if not isinstance(activation, str):
        raise ValueError(f"activation must be the name of a Keras activation, got {activation!r}")
