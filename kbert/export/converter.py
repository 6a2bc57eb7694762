"""`tf.lite.TFLiteConverter` settings per quantization, the builtin-ops-only check, and metadata in the file.

Quantizations (`QUANTIZATIONS`):
  fp32     no quantization.
  fp16     float16 weights, dequantized to float32 at load time (half the file).
  dynamic  dynamic-range int8: int8 weights, activations quantized on the fly in matmuls (a quarter of the file).
  int8     full integer: int8 weights and activations calibrated on a representative set; ops without an int8
           kernel stay float.
  16x8     int16 activations, int8 weights, calibrated (more accurate than int8 where activations are sensitive).
  int8-mixed
           int8 weights and calibrated int8 activations in the dense layers (FULLY_CONNECTED) and lookups only;
           attention matmuls, softmax, LayerNorm, GELU, residual adds and pooling stay float32, and so do the output
           projections (the dense layers that read the GELU output or the attention context, whose outliers one
           int8 scale cannot hold: with them in int8 the MiniLM embedding keeps a cosine of 0.92, without them
           0.995). TF's selective quantization: `tf.lite.experimental.QuantizationDebugger` with the other builtin
           ops and those nodes denylisted.
"""

import collections
import re

import flatbuffers
import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema

from kbert.export.loading import ExportError

QUANTIZATIONS = ("fp32", "fp16", "dynamic", "int8", "16x8", "int8-mixed")
CALIBRATED = ("int8", "16x8", "int8-mixed")
# The ops "int8-mixed" may run on int8 activations; every other builtin op is denylisted (kept float). Not
# BATCH_MATMUL: XNNPACK runs no int8 batch matmul, so each one split the delegate and the file ran slower than
# fp32. Measured in docs/performance.md, 'int8'.
MIXED_INTEGER_OPS = ("FULLY_CONNECTED", "GATHER")

# The tensorflow-text ops that `tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS` registers in LiteRT.
TFTEXT_CUSTOM_OPS = frozenset({
    "FastBertNormalize", "FastWordpieceTokenizeWithOffsets", "FastWordpieceDetokenize", "RaggedTensorToTensor",
    "RoundRobinTrim", "RoundRobinGenerateMasks", "WhitespaceTokenizeWithOffsetsV2", "ByteSplitWithOffsets",
    "ByteSplitByOffsets", "FastSentencepieceTokenize", "FastSentencepieceDetokenize", "Utf8Binarize",
    "SentenceFragmentsV2", "TFText>NgramsStringJoin",
})  # fmt: skip

_BUILTIN_NAMES = {
    code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}
_UNSUPPORTED_OP = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")


def configure(converter, quantization, representative_dataset=None):
    """Sets `converter`'s optimizations and op sets for `quantization` (one of `QUANTIZATIONS`)."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r}; choose one of {QUANTIZATIONS}")
    builtins = tf.lite.OpsSet.TFLITE_BUILTINS
    converter.target_spec.supported_ops = [builtins]
    if quantization == "fp32":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization in CALIBRATED:
        if representative_dataset is None:
            raise ValueError(f"quantization={quantization!r} needs a representative dataset")
        converter.representative_dataset = representative_dataset
        integer = (
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            if quantization == "16x8"
            else tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        )
        converter.target_spec.supported_ops = [integer, builtins]
    return converter


def convert_function(function, variables, quantization="fp32", representative_dataset=None, custom_ops=False):
    """Converts a `tf.function` with an input signature into LiteRT flatbuffer bytes.

    Args:
        function: the `tf.function` (becomes the "serving_default" signature).
        variables: the model's variables (Keras variables), frozen into the file as constants.
        quantization: one of `QUANTIZATIONS`.
        representative_dataset: for "int8" and "16x8", a callable yielding lists of input arrays in the order of
            the signature's inputs.
        custom_ops: allow the tensorflow-text custom ops (string-in models); any other custom op still fails.

    Raises:
        ExportError: the graph needs TF ops that LiteRT lacks as builtins (Flex/select ops), naming them and the
            layers they come from.
    """
    holder = (
        tf.Module()
    )  # variables must be tracked by the trackable object, or the converter keeps VAR_HANDLEs
    holder.variables_to_freeze = [getattr(variable, "value", variable) for variable in variables]
    holder.serve = function
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], holder)
    configure(converter, quantization, representative_dataset)
    converter.allow_custom_ops = bool(custom_ops)
    try:
        flatbuffer = (
            _mixed_int8(converter, representative_dataset)
            if quantization == "int8-mixed"
            else converter.convert()
        )
    except (
        Exception
    ) as error:  # the converter raises ConverterError (and sometimes others) with MLIR diagnostics
        ops = sorted(set(_UNSUPPORTED_OP.findall(str(error))))
        if not ops:
            raise
        layers = _scopes_using(function, ops)
        raise ExportError(
            f"the graph needs TensorFlow ops that LiteRT has no builtin for: {', '.join(ops)}"
            + (f" (from {', '.join(layers)})" if layers else "")
            + ". kbert never adds TF Select (Flex) ops, which ai-edge-litert cannot run; replace the layer "
            "that uses them with builtin-friendly ops"
        ) from None
    check_ops(flatbuffer, custom_ops)
    return flatbuffer


def _mixed_int8(converter, representative_dataset):
    """Calibrates like full int8, then quantizes only `MIXED_INTEGER_OPS` minus the output projections."""
    options = tf.lite.experimental.QuantizationDebugOptions
    denylisted = sorted(name for name in _BUILTIN_NAMES.values() if name not in MIXED_INTEGER_OPS)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=representative_dataset,
        debug_options=options(denylisted_ops=denylisted),
    )
    projections = output_projections(debugger.calibrated_model)
    if projections:
        debugger.options = options(denylisted_ops=denylisted, denylisted_nodes=projections)
    return debugger.get_nondebug_quantized_model()


def output_projections(flatbuffer):
    """Output tensor names of the FULLY_CONNECTED ops whose input comes, through reshapes and transposes, from a
    GELU (the feed-forward output) or a BATCH_MATMUL (the attention context)."""
    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    names = []
    for subgraph in model.subgraphs:
        producer = {output: operator for operator in subgraph.operators for output in operator.outputs}

        def op_name(operator):
            code = model.operatorCodes[operator.opcodeIndex]
            return _BUILTIN_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode))

        for operator in subgraph.operators:
            if op_name(operator) != "FULLY_CONNECTED":
                continue
            source = producer.get(operator.inputs[0])
            while source is not None and op_name(source) in ("RESHAPE", "TRANSPOSE"):
                source = producer.get(source.inputs[0])
            if source is not None and op_name(source) in ("GELU", "BATCH_MATMUL"):
                name = subgraph.tensors[operator.outputs[0]].name
                names.append(name.decode() if isinstance(name, bytes) else name)
    return names


def _scopes_using(function, op_types, limit=10):
    """The name scopes (Keras layer paths) of the traced graph's ops of `op_types`, for error messages."""
    graph = function.get_concrete_function().graph
    scopes = [op.name.rsplit("/", 1)[0] for op in graph.get_operations() if op.type in op_types]
    return sorted(set(scopes))[:limit]


def op_counts(flatbuffer) -> collections.Counter:
    """How many times each op occurs in a LiteRT file, over all subgraphs ("CUSTOM:<name>" for custom ops)."""
    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    counts = collections.Counter()
    for subgraph in model.subgraphs:
        for operator in subgraph.operators:
            code = model.operatorCodes[operator.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            if builtin == schema.BuiltinOperator.CUSTOM:
                counts[f"CUSTOM:{code.customCode.decode()}"] += 1
            else:
                counts[_BUILTIN_NAMES.get(builtin, str(builtin))] += 1
    return counts


def check_ops(flatbuffer, allow_tftext=False):
    """Raises `ExportError` if the file has Flex ops or custom ops other than (when allowed) tensorflow-text's."""
    custom = sorted(name[len("CUSTOM:") :] for name in op_counts(flatbuffer) if name.startswith("CUSTOM:"))
    flex = [name for name in custom if name.startswith("Flex")]
    other = [
        name
        for name in custom
        if not name.startswith("Flex") and not (allow_tftext and name in TFTEXT_CUSTOM_OPS)
    ]
    if flex or other:
        raise ExportError(
            "the LiteRT file would need "
            + (f"TF Select (Flex) ops {flex} " if flex else "")
            + (f"custom ops {other} " if other else "")
            + "that ai-edge-litert cannot run"
            + ("" if allow_tftext else " (only the string-in model may use tensorflow-text's registered ops)")
        )


def add_metadata(flatbuffer, entries) -> bytes:
    """Returns `flatbuffer` with `entries` ({name: bytes}) added to the model's metadata table.

    Any flatbuffer reader of the LiteRT schema finds them by name (`Model.metadata[i].name` → `buffers[...]`).
    """
    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    model.metadata = list(model.metadata or [])
    for name, data in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, np.uint8)
        model.buffers.append(buffer)
        metadata = schema.MetadataT()
        metadata.name = name
        metadata.buffer = len(model.buffers) - 1
        model.metadata.append(metadata)
    builder = flatbuffers.Builder(len(flatbuffer) + sum(len(data) for data in entries.values()) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_metadata(flatbuffer) -> dict:
    """The model's metadata table as {name: bytes}."""
    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    found = {}
    for metadata in model.metadata or []:
        data = model.buffers[metadata.buffer].data
        found[metadata.name.decode() if isinstance(metadata.name, bytes) else metadata.name] = (
            bytes(bytearray(data)) if data is not None else b""
        )
    return found
