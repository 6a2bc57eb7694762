"""Server formats beside the LiteRT file: a TensorFlow SavedModel and an ONNX file, each checked against Keras.

Both take token ids (`token_ids`, `segment_ids`, `padding_mask`: int32 [batch, seq], any batch and length) and
give the outputs of the LiteRT signature, by the same names ("embedding", "logits", "sequence_output"...).

- SavedModel: Keras' `ExportArchive` (what `model.export(format="tf_saved_model")` writes) with the model's
  token-ids function as its "serving_default" endpoint; checked through `tf.saved_model.load(...).signatures`.
- ONNX: `tf2onnx.convert.from_function` on that function, as `model.export(format="onnx")` does on the TensorFlow
  backend, plus one op handler. Keras' own call fails on every kbert model with the exact GELU: TensorFlow writes
  `gelu(x) = x/2 * erfc(-x/sqrt(2))`, and tf2onnx 1.17 has no `Erfc` ("Tensorflow op [.../Gelu/Erfc: Erfc] is not
  supported"), leaving a file onnxruntime refuses ("No Op registered for Erfc"). The handler writes `1 - Erf(x)`
  (ONNX has `Erf`), with no way to pass it through `model.export`. Checked in `onnxruntime`.
"""

import os
import shutil
import time

import numpy as np

from kbert.export import graphs, verify
from kbert.export.loading import ExportError

SERVER_FORMATS = ("savedmodel", "onnx")
ONNX_OPSET = 17
# A server file is float32 like the Keras model: it must give the same outputs up to summation order.
MIN_COSINE = 0.99999


def server_path(output, server_format):
    """Where `server_format` is written next to the LiteRT file `output`: `<stem>.onnx`, `<stem>_savedmodel/`."""
    stem = os.path.splitext(os.fspath(output))[0]
    return stem + (".onnx" if server_format == "onnx" else "_savedmodel")


def export_servers(model, output, server_formats, examples, reference, masks, latency_repeats=30):
    """Writes each of `server_formats` next to `output` and checks it against the Keras outputs.

    Args:
        model: the Keras model.
        output: the LiteRT file's path (the server files take its stem, see `server_path`).
        server_formats: a subset of `SERVER_FORMATS`.
        examples, reference, masks: token-id examples [1, seq], the Keras outputs, their padding masks.
        latency_repeats: timed calls (batch 1) for the median latency.

    Returns:
        `{format: {"path", "outputs": {name: {max_abs_diff, mean_cosine, min_cosine}}, "latency_ms", ...}}`.

    Raises:
        ExportError: an unknown format, a missing package, or a file whose outputs differ from Keras (nothing is
            left at its path then).
    """
    unknown = sorted(set(server_formats) - set(SERVER_FORMATS))
    if unknown:
        raise ExportError(f"server formats {unknown}; choose from {SERVER_FORMATS} (and 'tflite')")
    function = graphs.token_ids_function(model, sequence_length=None, batch_size=None)
    results = {}
    for server_format in server_formats:
        started = time.perf_counter()
        path = server_path(output, server_format)
        partial = f"{path}.partial-{os.getpid()}"
        try:
            if server_format == "savedmodel":
                runner, details = _saved_model(model, function, partial)
            else:
                runner, details = _onnx(function, partial)
            candidate = verify.run_examples(runner, examples)
            summary, _ = verify.compare_outputs(reference, candidate, masks)
            worst = min(parity["min_cosine"] for parity in summary.values())
            if worst < MIN_COSINE:
                raise ExportError(
                    f"the {server_format} file differs from the Keras model (min cosine {worst:.6f} < {MIN_COSINE}): "
                    f"{summary}; please report it"
                )
            batched = _check_batch(runner, examples, reference, masks)
            latency = verify.median_latency_ms(runner, examples[0], repeats=latency_repeats)
            _replace(partial, path)
        finally:
            _remove(partial)
        results[server_format] = {
            "path": os.path.basename(path),
            "outputs": summary,
            "batched_max_abs_diff": batched,
            "latency_ms": latency,
            **details,
            "seconds": time.perf_counter() - started,
        }
    return results


def _saved_model(model, function, path):
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", function)
    archive.write_out(path, verbose=False)
    signature = tf.saved_model.load(path).signatures["serving_default"]

    def runner(**inputs):
        return {name: value.numpy() for name, value in signature(**inputs).items()}

    details = {
        "runtime": f"tensorflow {tf.__version__}",
        "latency_setup": "tf.saved_model.load signature, TensorFlow's default thread pools",
    }
    return runner, details


def _onnx(function, path):
    try:
        import onnxruntime
        import tf2onnx
    except ImportError as error:
        raise ExportError(
            f"the ONNX export needs tf2onnx and onnxruntime ({error}): pip install -e '.[dev]' or "
            "pip install 'tf2onnx>=1.17' onnxruntime"
        ) from None
    tf2onnx.convert.from_function(
        function,
        input_signature=function.input_signature,
        opset=ONNX_OPSET,
        custom_op_handlers={"Erfc": (_erfc_as_one_minus_erf, [])},
        output_path=path,
    )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = verify.LATENCY_THREADS
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types (InvalidGraph, Fail...)
        raise ExportError(
            f"tf2onnx wrote an ONNX file that onnxruntime cannot load: {str(error).splitlines()[0]}; the graph "
            "has a TensorFlow op tf2onnx cannot convert"
        ) from None
    output_names = [output.name for output in session.get_outputs()]

    def runner(**inputs):
        return dict(zip(output_names, session.run(output_names, inputs), strict=True))

    details = {
        "runtime": f"onnxruntime {onnxruntime.__version__}",
        "opset": ONNX_OPSET,
        "converter": f"tf2onnx {tf2onnx.__version__}",
        "latency_setup": f"CPUExecutionProvider, {verify.LATENCY_THREADS} intra-op threads",
    }
    return runner, details


def _erfc_as_one_minus_erf(graph, node, name, args):
    """tf2onnx handler: TensorFlow's `Erfc(x)` (in the exact GELU) as ONNX `1 - Erf(x)`."""
    from tf2onnx import utils

    node.type = "Erf"
    dtype = utils.map_onnx_to_numpy_type(graph.get_dtype(node.input[0]))
    one = graph.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype=dtype)).output[0]
    graph.insert_new_node_on_output("Sub", node.output[0], inputs=[one, node.output[0]])


def _check_batch(runner, examples, reference, masks):
    """Max |Δ| of one call on a batch of up to 8 examples (the server files take any batch size)."""
    count = min(8, len(examples))
    batch = {key: np.concatenate([example[key] for example in examples[:count]]) for key in examples[0]}
    outputs = runner(**batch)
    worst = 0.0
    for index in range(count):
        mask = masks[index][0].astype(bool)
        for name, expected in reference[index].items():
            got = np.asarray(outputs[name])[index : index + 1]
            expected = np.asarray(expected)
            if expected.ndim >= 2 and expected.shape[1] == mask.shape[0]:
                got, expected = got[:, mask], expected[:, mask]
            worst = max(worst, float(np.max(np.abs(got - expected))) if expected.size else 0.0)
    return worst


def _replace(partial, path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    os.replace(partial, path)


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
