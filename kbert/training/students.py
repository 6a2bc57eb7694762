"""Students for distillation: smaller kbert task models built from a teacher, and views of a model's internals.

`student_from_teacher` keeps the teacher's width and copies its embeddings, head and every k-th encoder block;
`make_student` builds a named size (`kbert.BertConfig.named`), copied from the teacher where the widths allow; a
narrower student starts from the teacher's embeddings projected onto their principal directions.
`with_internals` exposes the hidden states and attention probabilities a task model computes on the way to its
outputs, without new weights: the distillation losses read them there.
"""

import dataclasses

import keras
import numpy as np

from kbert.config import BertConfig
from kbert.layers import BertEmbeddings, BertEncoderBlock
from kbert.models import (
    BertBackbone,
    BertPreprocessor,
)
from kbert.models.base import KbertTask
from kbert.models.presets import MODEL_CLASSES

# The task models a student can learn (their `distillable`), named in errors.
TASKS = tuple(cls for cls in MODEL_CLASSES if cls.distillable)
# The numerics a student keeps from its teacher; the sizes are what distillation changes.
_INHERITED_FIELDS = (
    "vocabulary_size",
    "max_sequence_length",
    "num_segments",
    "dropout",
    "attention_dropout",
    "activation",
    "layer_norm_epsilon",
    "initializer_range",
    "position_embedding",
)


def check_task_model(model, role="teacher"):
    """Raises `ValueError` unless `model` is a kbert task model (classifier, token classifier, QA, embedder)."""
    if not getattr(model, "distillable", False):
        raise ValueError(
            f"the {role} must be a kbert task model ({', '.join(task.__name__ for task in TASKS)}), got "
            f"{type(model).__name__}; load a fine-tuned model with e.g. kbert.BertClassifier.from_preset(folder)"
        )


def last_of_each_group(teacher_layers, student_layers):
    """The teacher block (1-based) each student block (1-based) stands for: the last of each group of k.

    With k = teacher_layers / student_layers a whole number this is k, 2k, ..., teacher_layers (the last block,
    next to the head, is always kept); otherwise the nearest block to i * teacher_layers / student_layers.
    """
    ratio = teacher_layers / student_layers
    return [max(1, round(index * ratio)) for index in range(1, student_layers + 1)]


def _task_config(teacher, backbone):
    config = {
        key: value for key, value in teacher.get_config().items() if key not in ("name", "preprocessor")
    }
    return {**config, "backbone": backbone}


def _attach_tokenizer(student, teacher, tokenizer=None):
    preprocessor = getattr(teacher, "preprocessor", None)
    sequence_length = preprocessor.sequence_length if preprocessor is not None else 128
    tokenizer = tokenizer or (preprocessor.tokenizer if preprocessor is not None else None)
    if tokenizer is not None:
        student.preprocessor = BertPreprocessor(tokenizer, sequence_length=sequence_length)
    return student


def _teacher_tokenizer(teacher):
    tokenizer = getattr(getattr(teacher, "preprocessor", None), "tokenizer", None)
    if tokenizer is None:
        raise ValueError(
            "a student with its own vocabulary maps tokens through the teacher's tokenizer, but the teacher has "
            "none; set teacher.preprocessor = kbert.BertPreprocessor(tokenizer) or load it with from_preset"
        )
    return tokenizer


def _token_embedding_rows(variable, teacher_embedding, teacher_tokenizer, tokenizer):
    """The student's token embedding: the teacher's row for every token both vocabularies hold, else its own."""
    rows = keras.ops.convert_to_numpy(variable).copy()
    teacher_rows = keras.ops.convert_to_numpy(teacher_embedding)
    teacher_ids = {}
    for index, token in enumerate(teacher_tokenizer.vocabulary):
        teacher_ids.setdefault(token, index)
    for index, token in enumerate(tokenizer.vocabulary):
        if token in teacher_ids:
            rows[index] = teacher_rows[teacher_ids[token]]
    return rows


def student_from_teacher(teacher, num_layers, layers=None, tokenizer=None):
    """A student of the teacher's task and width with `num_layers` blocks, initialised from the teacher.

    The embeddings, pooler and task head are copied, and student block i from teacher block `layers[i]`
    (1-based; default `last_of_each_group`). The student shares the teacher's tokenizer (its preprocessor), or
    takes `tokenizer` (a smaller vocabulary, e.g. learned on the task's text with `kbert.text.learn_vocabulary`):
    then the token embedding holds the teacher's row for each token both vocabularies share.

    Raises:
        ValueError: `teacher` is not a kbert task model, or `num_layers`/`layers` do not fit it.
    """
    check_task_model(teacher)
    teacher_layers = teacher.backbone.config.num_layers
    if not isinstance(num_layers, int) or not 1 <= num_layers <= teacher_layers:
        raise ValueError(
            f"num_layers={num_layers!r}: a student built from the teacher's blocks has 1..{teacher_layers} "
            f"layers; use make_student(teacher, size) for other sizes"
        )
    chosen = list(layers) if layers is not None else last_of_each_group(teacher_layers, num_layers)
    if len(chosen) != num_layers or not all(1 <= index <= teacher_layers for index in chosen):
        raise ValueError(
            f"layers={chosen} must name {num_layers} teacher blocks, each in 1..{teacher_layers} (1-based)"
        )
    backbone_config = {key: value for key, value in teacher.backbone.get_config().items() if key != "name"}
    if tokenizer is not None:
        teacher_tokenizer = _teacher_tokenizer(teacher)
        backbone_config["vocabulary_size"] = tokenizer.vocabulary_size
    backbone = BertBackbone.from_config({**backbone_config, "num_layers": num_layers})
    student = type(teacher).from_config(_task_config(teacher, backbone))

    source = {variable.path: variable for variable in teacher.weights}
    for variable in student.weights:
        path = variable.path
        group, _, rest = path.partition("/")
        if group.startswith("encoder_block_"):
            path = f"encoder_block_{chosen[int(group.rsplit('_', 1)[1])] - 1}/{rest}"
        if tokenizer is not None and variable is student.backbone.token_embedding.embeddings:
            variable.assign(_token_embedding_rows(variable, source[path], teacher_tokenizer, tokenizer))
            continue
        # A copy, not the teacher's buffer: JAX's training step donates (reuses) the buffers it updates.
        variable.assign(keras.ops.convert_to_numpy(source[path]))
    return _attach_tokenizer(student, teacher, tokenizer)


def make_student(teacher, size="tiny", tokenizer=None, **overrides):
    """A student of a named size (`kbert.BertConfig.named`: "tiny", "mini", "L4_H256"...) or a `BertConfig`.

    The student keeps the teacher's vocabulary (or takes `tokenizer`'s), sequence length and numerics
    (`overrides` change any field). When its width, heads and feed-forward equal the teacher's, it is
    `student_from_teacher` (every k-th block copied); otherwise its blocks start from a fresh initialisation and,
    when it is narrower, its embeddings from the teacher's projected to its width (`_project_embeddings`).
    """
    check_task_model(teacher)
    teacher_config = teacher.backbone.config
    inherited = {name: getattr(teacher_config, name) for name in _INHERITED_FIELDS}
    if tokenizer is not None:
        inherited["vocabulary_size"] = tokenizer.vocabulary_size
    if isinstance(size, BertConfig):
        config = dataclasses.replace(size, **{**inherited, **overrides})
    else:
        config = BertConfig.named(size, **{**inherited, **overrides})
    same_width = all(
        getattr(config, name) == getattr(teacher_config, name)
        for name in ("hidden_dim", "num_heads", "intermediate_dim", *_INHERITED_FIELDS)
        if name != "vocabulary_size" or tokenizer is None
    )
    if same_width and config.num_layers <= teacher_config.num_layers:
        return student_from_teacher(teacher, config.num_layers, tokenizer=tokenizer)
    flags = {
        "output_hidden_states": teacher.backbone.output_hidden_states,
        "output_attentions": teacher.backbone.output_attentions,
        "dtype": teacher.backbone.dtype_policy,
    }
    backbone = BertBackbone.from_bert_config(config, **flags)
    student = type(teacher).from_config(_task_config(teacher, backbone))
    if config.hidden_dim < teacher_config.hidden_dim:
        _project_embeddings(student, teacher, tokenizer)
    return _attach_tokenizer(student, teacher, tokenizer)


def _project_embeddings(student, teacher, tokenizer=None):
    """Starts a narrower student's embeddings from the teacher's, projected onto the top principal directions of
    the teacher's token embeddings: token rows (those both vocabularies hold, with `tokenizer`), positions and
    segments go through one projection, so the student's embedding sum is the projection of the teacher's. A
    fresh student knows only the task's text; this one starts with the teacher's lexicon."""
    source, target = teacher.backbone.embeddings, student.backbone.embeddings
    tokens = keras.ops.convert_to_numpy(source.token_embedding.embeddings).astype(np.float64)
    _, _, directions = np.linalg.svd(tokens - tokens.mean(axis=0), full_matrices=False)
    projection = directions[: target.hidden_dim].T  # [teacher width, student width]
    projected = (tokens @ projection).astype(np.float32)
    variable = target.token_embedding.embeddings
    if tokenizer is None:
        variable.assign(projected)
    else:
        variable.assign(_token_embedding_rows(variable, projected, _teacher_tokenizer(teacher), tokenizer))
    pairs = [(source.segment_embedding.embeddings, target.segment_embedding.embeddings)]
    if source.position_embedding == target.position_embedding == "learned":
        pairs.append((source.position_embeddings, target.position_embeddings))
    for teacher_table, student_table in pairs:
        # Rows past the teacher's (a longer max_sequence_length override) keep their fresh initialisation.
        table = keras.ops.convert_to_numpy(student_table).copy()
        rows = min(len(table), teacher_table.shape[0])
        teacher_rows = keras.ops.convert_to_numpy(teacher_table)[:rows].astype(np.float64)
        table[:rows] = teacher_rows @ projection
        student_table.assign(table)


def _same_layer(layer):
    return layer


class _BlockWithAttention(keras.layers.Layer):
    """Calls an encoder block (its weights, not a copy) for its output and attention probabilities.

    Why a wrapper: Keras' functional graph check counts a layer's outputs by its first call, so a block first
    called for its output alone cannot hand out probabilities in another graph; the wrapper's first call can.
    """

    def __init__(self, block):
        super().__init__(name=f"{block.name}_with_attention", dtype=block.dtype_policy)
        self.block = block
        self.built = True

    def call(self, hidden_states, attention_mask, training=None):
        return self.block(hidden_states, attention_mask, training=training, return_attention=True)


def with_internals(task, hidden_states=True, attentions=True):
    """A functional model over `task`'s own layers (no new weights) that also returns its internals.

    Returns a model of the task's inputs whose output is a dict: `outputs` (the task's outputs), and when asked
    `hidden_states` (num_layers + 1 tensors [batch, seq, hidden_dim]: embeddings, then each block) and
    `attentions` (num_layers tensors [batch, heads, seq, seq], float32 probabilities from the explicit
    attention path). Without attentions, attention stays on the fused path.
    """
    check_task_model(task, role="model")
    backbone = task.backbone
    block_index = {id(block): index for index, block in enumerate(backbone.encoder_blocks)}
    states, probabilities = {}, {}

    def tap_blocks(layer, *args, **kwargs):
        if isinstance(layer, BertEncoderBlock) and attentions:
            returns_pair = kwargs.pop("return_attention", False)
            hidden, attention = _BlockWithAttention(layer)(*args, **kwargs)
            probabilities[block_index[id(layer)]] = attention
            output = (hidden, attention) if returns_pair else hidden
        else:
            output = layer(*args, **kwargs)
            hidden = output[0] if isinstance(output, tuple) else output
        if isinstance(layer, BertEmbeddings):
            states[0] = hidden
        elif isinstance(layer, BertEncoderBlock):
            states[block_index[id(layer)] + 1] = hidden
        return output

    inputs = KbertTask.backbone_inputs()
    tapped = keras.models.clone_model(
        backbone, input_tensors=inputs, clone_function=_same_layer, call_function=tap_blocks
    )
    internals = dict(tapped.output)
    if hidden_states:
        internals["hidden_states"] = [states[index] for index in sorted(states)]
    if attentions:
        internals["attentions"] = [probabilities[index] for index in sorted(probabilities)]
    features = keras.Model(inputs, internals, name=f"{backbone.name}_internals")

    taps = {}

    def swap_backbone(layer, *args, **kwargs):
        if layer is not backbone:
            return layer(*args, **kwargs)
        output = features(*args, **kwargs)
        taps.update({key: output[key] for key in ("hidden_states", "attentions") if key in internals})
        return {key: output[key] for key in backbone.output}

    inputs = KbertTask.backbone_inputs()
    clone = keras.models.clone_model(
        task, input_tensors=inputs, clone_function=_same_layer, call_function=swap_backbone
    )
    return keras.Model(inputs, {"outputs": clone.output, **taps}, name=f"{task.name}_internals")
