"""Name tables between kbert's variables and other checkpoint formats: one row per weight, no special cases.

A row is `(kbert path, foreign name, transform)`. `{i}` stands for the encoder layer index. Transforms:
  "T"        the foreign matrix is the transpose (PyTorch `nn.Linear` stores [out, in]; Keras Dense [in, out]).
  "reshape"  the same values in another shape (KerasHub's per-head [hidden, heads, head_dim] attention kernels).
  None       identical.
"""

import re

HUGGINGFACE_BACKBONE = [
    ("embeddings/token_embedding/embeddings", "embeddings.word_embeddings.weight", None),
    ("embeddings/position_embeddings", "embeddings.position_embeddings.weight", None),
    ("embeddings/segment_embedding/embeddings", "embeddings.token_type_embeddings.weight", None),
    ("embeddings/layer_norm/gamma", "embeddings.LayerNorm.weight", None),
    ("embeddings/layer_norm/beta", "embeddings.LayerNorm.bias", None),
    ("encoder_block_{i}/attention/query/kernel", "encoder.layer.{i}.attention.self.query.weight", "T"),
    ("encoder_block_{i}/attention/query/bias", "encoder.layer.{i}.attention.self.query.bias", None),
    ("encoder_block_{i}/attention/key/kernel", "encoder.layer.{i}.attention.self.key.weight", "T"),
    ("encoder_block_{i}/attention/key/bias", "encoder.layer.{i}.attention.self.key.bias", None),
    ("encoder_block_{i}/attention/value/kernel", "encoder.layer.{i}.attention.self.value.weight", "T"),
    ("encoder_block_{i}/attention/value/bias", "encoder.layer.{i}.attention.self.value.bias", None),
    ("encoder_block_{i}/attention/output/kernel", "encoder.layer.{i}.attention.output.dense.weight", "T"),
    ("encoder_block_{i}/attention/output/bias", "encoder.layer.{i}.attention.output.dense.bias", None),
    (
        "encoder_block_{i}/attention_layer_norm/gamma",
        "encoder.layer.{i}.attention.output.LayerNorm.weight",
        None,
    ),
    (
        "encoder_block_{i}/attention_layer_norm/beta",
        "encoder.layer.{i}.attention.output.LayerNorm.bias",
        None,
    ),
    ("encoder_block_{i}/intermediate/kernel", "encoder.layer.{i}.intermediate.dense.weight", "T"),
    ("encoder_block_{i}/intermediate/bias", "encoder.layer.{i}.intermediate.dense.bias", None),
    ("encoder_block_{i}/output/kernel", "encoder.layer.{i}.output.dense.weight", "T"),
    ("encoder_block_{i}/output/bias", "encoder.layer.{i}.output.dense.bias", None),
    ("encoder_block_{i}/output_layer_norm/gamma", "encoder.layer.{i}.output.LayerNorm.weight", None),
    ("encoder_block_{i}/output_layer_norm/beta", "encoder.layer.{i}.output.LayerNorm.bias", None),
    ("pooler/dense/kernel", "pooler.dense.weight", "T"),
    ("pooler/dense/bias", "pooler.dense.bias", None),
]

# Task heads; in task checkpoints the backbone names above carry the prefix "bert.".
HUGGINGFACE_HEADS = [
    ("mlm_head/transform/kernel", "cls.predictions.transform.dense.weight", "T"),
    ("mlm_head/transform/bias", "cls.predictions.transform.dense.bias", None),
    ("mlm_head/layer_norm/gamma", "cls.predictions.transform.LayerNorm.weight", None),
    ("mlm_head/layer_norm/beta", "cls.predictions.transform.LayerNorm.bias", None),
    ("mlm_head/bias", "cls.predictions.bias", None),
    ("pair_head/kernel", "cls.seq_relationship.weight", "T"),
    ("pair_head/bias", "cls.seq_relationship.bias", None),
    ("logits/kernel", "classifier.weight", "T"),
    ("logits/bias", "classifier.bias", None),
    ("span_head/dense/kernel", "qa_outputs.weight", "T"),
    ("span_head/dense/bias", "qa_outputs.bias", None),
]

# Names Hugging Face writes that hold no weight of their own: a buffer and the decoder tied to the embedding.
HUGGINGFACE_IGNORED = re.compile(
    r"^(bert\.)?embeddings\.position_ids$|^cls\.predictions\.decoder\.(weight|bias)$"
)

KERASHUB_BACKBONE = [
    ("embeddings/token_embedding/embeddings", "token_embedding/embeddings", None),
    ("embeddings/position_embeddings", "position_embedding/embeddings", None),
    ("embeddings/segment_embedding/embeddings", "segment_embedding/embeddings", None),
    ("embeddings/layer_norm/gamma", "embeddings_layer_norm/gamma", None),
    ("embeddings/layer_norm/beta", "embeddings_layer_norm/beta", None),
    (
        "encoder_block_{i}/attention/query/kernel",
        "transformer_layer_{i}/self_attention_layer/query/kernel",
        "reshape",
    ),
    (
        "encoder_block_{i}/attention/query/bias",
        "transformer_layer_{i}/self_attention_layer/query/bias",
        "reshape",
    ),
    (
        "encoder_block_{i}/attention/key/kernel",
        "transformer_layer_{i}/self_attention_layer/key/kernel",
        "reshape",
    ),
    (
        "encoder_block_{i}/attention/key/bias",
        "transformer_layer_{i}/self_attention_layer/key/bias",
        "reshape",
    ),
    (
        "encoder_block_{i}/attention/value/kernel",
        "transformer_layer_{i}/self_attention_layer/value/kernel",
        "reshape",
    ),
    (
        "encoder_block_{i}/attention/value/bias",
        "transformer_layer_{i}/self_attention_layer/value/bias",
        "reshape",
    ),
    (
        "encoder_block_{i}/attention/output/kernel",
        "transformer_layer_{i}/self_attention_layer/attention_output/kernel",
        "reshape",
    ),
    (
        "encoder_block_{i}/attention/output/bias",
        "transformer_layer_{i}/self_attention_layer/attention_output/bias",
        None,
    ),
    (
        "encoder_block_{i}/attention_layer_norm/gamma",
        "transformer_layer_{i}/self_attention_layer_norm/gamma",
        None,
    ),
    (
        "encoder_block_{i}/attention_layer_norm/beta",
        "transformer_layer_{i}/self_attention_layer_norm/beta",
        None,
    ),
    (
        "encoder_block_{i}/intermediate/kernel",
        "transformer_layer_{i}/feedforward_intermediate_dense/kernel",
        None,
    ),
    (
        "encoder_block_{i}/intermediate/bias",
        "transformer_layer_{i}/feedforward_intermediate_dense/bias",
        None,
    ),
    ("encoder_block_{i}/output/kernel", "transformer_layer_{i}/feedforward_output_dense/kernel", None),
    ("encoder_block_{i}/output/bias", "transformer_layer_{i}/feedforward_output_dense/bias", None),
    ("encoder_block_{i}/output_layer_norm/gamma", "transformer_layer_{i}/feedforward_layer_norm/gamma", None),
    ("encoder_block_{i}/output_layer_norm/beta", "transformer_layer_{i}/feedforward_layer_norm/beta", None),
    ("pooler/dense/kernel", "pooled_dense/kernel", None),
    ("pooler/dense/bias", "pooled_dense/bias", None),
]


def huggingface_table(backbone_prefix=""):
    """The Hugging Face table; task checkpoints store the backbone under `backbone_prefix` "bert."."""
    rows = [
        (kbert, backbone_prefix + foreign, transform) for kbert, foreign, transform in HUGGINGFACE_BACKBONE
    ]
    return NameTable(rows + HUGGINGFACE_HEADS)


def _pattern(template):
    return re.compile("^" + re.escape(template).replace(r"\{i\}", r"(\d+)") + "$")


class NameTable:
    """Translates kbert variable paths to foreign names and back, from rows of `(kbert, foreign, transform)`.

    Args:
        rows: the table.
    """

    def __init__(self, rows):
        self.rows = [
            (_pattern(kbert), kbert, _pattern(foreign), foreign, transform)
            for kbert, foreign, transform in rows
        ]

    def to_foreign(self, path):
        """(foreign name, transform) for a kbert variable path, or None if the table has no row for it."""
        for kbert_pattern, _, _, foreign, transform in self.rows:
            match = kbert_pattern.match(path)
            if match:
                return foreign.replace("{i}", match.group(1)) if match.groups() else foreign, transform
        return None

    def knows_foreign(self, name):
        return any(foreign_pattern.match(name) for _, _, foreign_pattern, _, _ in self.rows)


def to_kbert(array, transform, shape):
    """A foreign array as the kbert variable of `shape` expects it."""
    if transform == "T":
        array = array.T
    elif transform == "reshape":
        array = array.reshape(shape)
    return array


def to_foreign(array, transform, shape):
    """A kbert array as the foreign weight of `shape` expects it."""
    if transform == "T":
        return array.T
    if transform == "reshape":
        return array.reshape(shape)
    return array
