"""Export-time rewrites of the traced TensorFlow graph that the LiteRT file runs faster or quantizes better with.

The Keras layers stay as they are (training on every backend is untouched); the exporter freezes the token-ids
`tf.function`, edits two patterns that Keras' TensorFlow ops write, and traces the edited graph again with the same
signature. Every file is still checked against the Keras model (see `kbert.export.verify`).

1. Index wrap-around in embedding lookups. `keras.ops.take` maps negative ids to the end of the table
   (`SelectV2(Less(ids, 0), AddV2(ids, rows), ids)`) before the `GatherV2`. kbert's ids are never negative (the
   packer writes them; LiteRT's GATHER rejects an out-of-range id instead), so the lookup takes the ids directly.
   The three int32 ops are what made the 16x8 quantizer fail ("Max and min for dynamic tensors should be recorded
   during calibration: Failed for tensor serving_default_segment_ids:0").
2. The attention mask. Keras writes `SelectV2(mask, logits, -0.7 * float32_max)` in every layer. LiteRT's XNNPACK
   delegate has no SELECT_V2, so each layer's select split the graph into one more delegate partition (7 for six
   layers), and the -2.4e38 constant left an int8/int16 softmax input no resolution for the real logits (cosine
   0.30 in full int8). It becomes `AddV2(logits, bias)` with `bias = SelectV2(mask, 0, mask_logit)`, which the
   converter computes once for all layers when the length is static. With `mask_logit` = `FLOAT_MASK_LOGIT` the
   float outputs are the same: exp() of a masked logit underflows to exactly 0 either way. (A row whose keys are
   all padding, which a packed input with its [CLS] never has, would differ.)
3. For 16x8 only: LayerNorm's `SquaredDifference(x, mean)` becomes `d = Sub(x, mean); Mul(d, d)`, the same
   float arithmetic. The 16x8 quantizer marks SQUARED_DIFFERENCE as int16-capable but LiteRT has no int16 kernel
   for it ("SquaredDifference only supports FLOAT32 and INT32 now, got 7"); SUB and MUL have one.
"""

import numpy as np
import tensorflow as tf

# Large enough that exp(masked - max) is exactly 0 in float32 for any real logits, and small enough that the
# softmax's input range stays meaningful.
FLOAT_MASK_LOGIT = -1e4
# Keras writes its masks as a large negative constant; anything below this is one.
_LARGE_NEGATIVE = -1e9


def rewrite_function(function, mask_logit=FLOAT_MASK_LOGIT, split_squared_difference=False):
    """The token-ids `tf.function` with the rewrites above applied, and how many of each were made.

    Args:
        function: a `tf.function` with an input signature of one dict of named int32 specs (as
            `kbert.export.graphs.token_ids_function` makes).
        mask_logit: the additive bias at padded keys.
        split_squared_difference: rewrite 3 (for 16x8).

    Returns:
        `(function, counts)`: a `tf.function` with the same signature and output names (the model's weights as
        constants), and `{"embedding_index_wrap_removed": n, "attention_mask_select_to_bias": m, ...}`.
    """
    # The converter's own freezing step (variables → constants); the module is TensorFlow's, not public API.
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = function.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    graph_def = frozen.graph.as_graph_def()
    counts = {
        "embedding_index_wrap_removed": _remove_index_wrap(graph_def),
        "attention_mask_select_to_bias": _mask_select_to_bias(graph_def, mask_logit),
    }
    if split_squared_difference:
        counts["squared_difference_split"] = _split_squared_difference(graph_def)
    (spec,) = function.input_signature
    input_map = {f"{spec[key].name}:0": key for key in spec}
    output_names = [tensor.name for tensor in frozen.outputs]
    structure = concrete.structured_outputs

    @tf.function(input_signature=[spec], autograph=False)
    def rewritten(inputs):
        outputs = tf.graph_util.import_graph_def(
            graph_def,
            input_map={name: inputs[key] for name, key in input_map.items()},
            return_elements=output_names,
            name="kbert",
        )
        return tf.nest.pack_sequence_as(structure, outputs)

    return rewritten, counts


def _nodes(graph_def):
    return {node.name: node for node in graph_def.node}


def _source(name):
    """The producing node's name of an input reference ("node", "node:1"; never a control input here)."""
    return name.split(":")[0]


def _const_value(node):
    if node is None or node.op != "Const":
        return None
    return tf.make_ndarray(node.attr["value"].tensor)


def _consumers(graph_def, name):
    return [
        (node, index)
        for node in graph_def.node
        for index, reference in enumerate(node.input)
        if reference in (name, f"{name}:0")
    ]


def _remove_index_wrap(graph_def):
    """SelectV2(Less(x, 0), AddV2(x, n), x) → x (see the module docstring, 1)."""
    nodes, removed = _nodes(graph_def), 0
    for node in list(graph_def.node):
        if node.op not in ("SelectV2", "Select") or len(node.input) != 3:
            continue
        condition, wrapped, ids = (nodes.get(_source(name)) for name in node.input)
        if condition is None or wrapped is None or condition.op != "Less" or wrapped.op != "AddV2":
            continue
        zero = _const_value(nodes.get(_source(condition.input[1])))
        if zero is None or np.any(zero != 0):
            continue
        if not (condition.input[0] == wrapped.input[0] == node.input[2]) or ids is None:
            continue
        for consumer, index in _consumers(graph_def, node.name):
            consumer.input[index] = node.input[2]
        removed += 1
    return removed


def _mask_select_to_bias(graph_def, mask_logit):
    """SelectV2(mask, logits, large negative) → AddV2(logits, SelectV2(mask, 0, mask_logit)) (docstring, 2)."""
    nodes, rewritten = _nodes(graph_def), 0
    for node in list(graph_def.node):
        if node.op != "SelectV2" or len(node.input) != 3:
            continue
        fill = _const_value(nodes.get(_source(node.input[2])))
        if (
            fill is None
            or fill.size != 1
            or not fill.dtype.kind == "f"
            or float(fill.ravel()[0]) > _LARGE_NEGATIVE
        ):
            continue
        dtype = node.attr["T"].type
        numpy_dtype = tf.dtypes.as_dtype(dtype).as_numpy_dtype
        zero = _add_const(graph_def, f"{node.name}/kbert_zero", np.zeros((), numpy_dtype))
        fill_value = _add_const(
            graph_def, f"{node.name}/kbert_mask_logit", np.asarray(mask_logit, numpy_dtype)
        )
        bias = graph_def.node.add()
        bias.name, bias.op = f"{node.name}/kbert_mask_bias", "SelectV2"
        bias.input.extend([node.input[0], zero, fill_value])
        bias.attr["T"].type = dtype
        logits = node.input[1]
        node.op = "AddV2"
        del node.input[:]
        node.input.extend([logits, bias.name])
        rewritten += 1
    return rewritten


def _split_squared_difference(graph_def):
    """SquaredDifference(x, y) → Mul(d, d) with d = Sub(x, y) (docstring, 3)."""
    split = 0
    for node in list(graph_def.node):
        if node.op != "SquaredDifference":
            continue
        difference = graph_def.node.add()
        difference.name, difference.op = f"{node.name}/kbert_difference", "Sub"
        difference.input.extend(node.input[:2])
        difference.attr["T"].CopyFrom(node.attr["T"])
        control = [name for name in node.input if name.startswith("^")]
        node.op = "Mul"
        del node.input[:]
        node.input.extend([difference.name, difference.name, *control])
        split += 1
    return split


def _add_const(graph_def, name, value):
    node = graph_def.node.add()
    node.name, node.op = name, "Const"
    node.attr["dtype"].type = tf.dtypes.as_dtype(value.dtype).as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    return name
