"""`export_litert`: a kbert model → a verified LiteRT (.tflite) file, its report and chart.

The steps: load into the TensorFlow backend → trace a `tf.function` (token ids in, or raw text in with the
tokenizer inside) → for token ids, the export-time graph rewrites of `kbert.export.rewrite` → convert with builtin
ops only → run the file in `ai_edge_litert` against the Keras model on held-out real text → ship it (atomically,
with the vocabulary and labels in its metadata) only if it keeps within `max_accuracy_drop`. Full int8 tries its
remedies in order (`FALLBACKS`) until one keeps within the budget. On request the server formats of
`kbert.export.servers` (SavedModel, ONNX) are written beside it, checked the same way.
"""

import dataclasses
import json
import math
import os
import tempfile
import time

import numpy as np

from kbert.export import converter, evaluation, graphs, mediapipe, rewrite, servers, verify, web
from kbert.export.loading import ExportError, LoadedModel, load_model, require_tensorflow_backend, wrap_model
from kbert.files import write_bytes

# What a request for a quantization tries, in order, until one keeps within the accuracy budget: full int8, then
# int16 activations (16x8), then int8 dense layers with the sensitive parts in float (int8-mixed).
FALLBACKS = {"int8": ("int8", "16x8", "int8-mixed")}
REMEDIES = {
    "int8": "full integer: int8 weights and activations",
    "16x8": "remedy 1: int16 activations, int8 weights (16x8)",
    "int8-mixed": "remedy 2: int8 dense layers; attention, softmax, LayerNorm, GELU, output projections and "
    "pooling kept float (selective quantization)",
}
# The additive mask at padded keys where the softmax input is quantized (int8, 16x8): its range sets the
# resolution of the real logits, and exp(-100) is still 0 beside them.
QUANTIZED_MASK_LOGIT = -100.0
METADATA_VOCABULARY = "vocab.txt"
METADATA_LABELS = "labels.json"
METADATA_CONFIG = "kbert_config.json"
# Outputs whose argmax is the task's answer (their agreement with Keras is the accuracy drop's measure).
TASK_OUTPUTS = ("logits", "start_logits", "end_logits", mediapipe.PROBABILITY)
# The shipped attempt's figures copied to the top of the report (and, where measured, the task's).
SHIPPED_FIGURES = ("file_size_bytes", "outputs", "latency_ms", "accuracy_drop_points", "graph_rewrites")
TASK_FIGURES = ("argmax_agreement", "keras_accuracy", "litert_accuracy")

def export_litert(
    model,
    output,
    quantization="dynamic",
    sequence_length=128,
    dynamic_length=False,
    with_tokenizer=False,
    with_pair=False,
    representative_texts=None,
    eval_records=None,
    num_calibration=100,
    num_eval=64,
    max_accuracy_drop=1.0,
    vocabulary=None,
    labels=None,
    latency_repeats=30,
    server_formats=(),
    graph_rewrites=True,
    for_mediapipe=None,
    logits=False,
    demo=False,
):
    """Exports `model` as a LiteRT file at `output` and writes `<output stem>.report.json` and `.report.png`.

    Every argument is checked before a file is created or changed. Then the order of writes is: the stale report
    of an earlier export at `output` is removed, the `.tflite` written (atomically), then its report (the chart,
    then the JSON, each atomically): a report on disk always describes the `.tflite` beside it, and an export
    killed half-way leaves no report of a file that was never written. A failed export (no attempt within
    `max_accuracy_drop`) writes its report with `"shipped": null` and an `"error"`, and leaves the `.tflite` path
    as it was: it neither writes nor removes a file there.

    Args:
        model: a path (kbert save folder or `.keras` file), a Keras model, or a `LoadedModel`.
        output: the `.tflite` path; written only when the file passes verification, via a temporary file.
        quantization: "fp32", "fp16", "dynamic" (dynamic-range int8), "int8" (full integer; if it loses more
            than `max_accuracy_drop`, tries "16x8", then "int8-mixed"), "16x8" or "int8-mixed" (see
            `kbert.export.converter`). The report's "shipped" and "remedy" say which one was written.
        sequence_length: the packed length (token-id models: the input length; string-in models: the maximum).
        dynamic_length: token-id inputs of any length `[1, None]` instead of `[1, sequence_length]`.
        with_tokenizer: a string-in model (`text` → outputs and `token_ids`) with the tokenizer in the graph.
        with_pair: string-in models also take `text_pair` (sentence-pair tasks).
        representative_texts: calibration text for "int8"/"16x8" (a list of strings; default the built-in
            corpus). Must not be empty.
        eval_records: held-out `{"text", "text_pair"?, "label"?}` dicts (labels as names or ints); default
            `num_eval` sentences of the built-in corpus that are not in the calibration set.
        max_accuracy_drop: the most the file may lose, in points (see `verify.accuracy_drop_points`); None
            ships whatever verifies.
        vocabulary, labels: a `vocab.txt` and class names, where the model's save lacks them.
        latency_repeats: timed calls for the median latency (batch 1, 2 threads).
        server_formats: also write "savedmodel" (`<stem>_savedmodel/`) and/or "onnx" (`<stem>.onnx`), token ids
            in, any batch and length, each checked against Keras (report: "servers"); see `kbert.export.servers`.
        graph_rewrites: apply `kbert.export.rewrite` to token-id graphs (report: "graph_rewrites").
        for_mediapipe: None: write the MediaPipe Tasks layout and metadata (`kbert.export.mediapipe`) where the
            runtimes can serve the model (single-text classifiers and embedders, token ids in); True: require it
            (an ExportError says why a model cannot have it); False: never. The report's "mediapipe" says which
            runtimes load the file, how MediaPipe's tokenizer agrees with kbert's on the eval texts, and, with the
            `mediapipe` package installed, the file run in MediaPipe against the Keras model.
        logits: a token-id classifier outputs its raw logits ("logits") instead of its probabilities
            ("probability", the softmax inside the file).
        demo: also write `<output stem>_demo/`, a web page that runs the file with MediaPipe Tasks for Web
            (`kbert.export.web`); needs the MediaPipe layout.

    Returns:
        The report (a dict; also written as JSON).

    Raises:
        RuntimeError: not on the TensorFlow backend.
        ExportError: Flex/custom ops needed, empty representative or eval set, unwritable output, or an accuracy
            drop beyond `max_accuracy_drop` for every fallback (the report is still written; no .tflite is).
        ValueError: a setting out of range.
    """
    require_tensorflow_backend()
    started = time.perf_counter()
    plan = _plan(
        model, output, quantization, sequence_length, dynamic_length, with_tokenizer, with_pair,
        representative_texts, eval_records, num_calibration, num_eval, max_accuracy_drop, vocabulary, labels,
        latency_repeats, server_formats, graph_rewrites, for_mediapipe, logits, demo,
    )  # fmt: skip
    inputs = _parity_inputs(plan)
    attempts, shipped = _convert_and_verify(plan, inputs)
    os.makedirs(os.path.dirname(os.path.abspath(plan.output)), exist_ok=True)
    report = _report(plan, inputs, attempts, shipped, _server_reports(plan, inputs))
    report["seconds"] = time.perf_counter() - started
    if not shipped:
        _fail(plan, report, attempts)
    return _ship(plan, inputs, report, shipped)


@dataclasses.dataclass
class _Plan:
    """An export's checked settings, with what follows from them."""

    loaded: LoadedModel
    output: str
    quantization: str
    sequence_length: int
    dynamic_length: bool
    with_tokenizer: bool
    with_pair: bool
    max_accuracy_drop: float | None
    latency_repeats: int
    server_formats: tuple
    graph_rewrites: bool
    demo: bool
    mediapipe_layout: bool  # the file gets MediaPipe's input order, metadata and packed files
    unservable: str | None  # why MediaPipe cannot serve the model, or None
    probabilities: bool  # a classifier's softmax inside the file
    calibration_texts: list | None
    records: list  # the eval records
    label_ids: object  # their labels as class ids, or None

    @property
    def report_path(self):
        return os.path.splitext(self.output)[0] + ".report.json"


def _plan(
    model, output, quantization, sequence_length, dynamic_length, with_tokenizer, with_pair, representative_texts,
    eval_records, num_calibration, num_eval, max_accuracy_drop, vocabulary, labels, latency_repeats,
    server_formats, graph_rewrites, for_mediapipe, logits, demo,
):  # fmt: skip
    """Checks every argument, before anything is converted or written (see `export_litert`)."""
    output = os.fspath(output)
    _check_writable(output)
    if quantization not in converter.QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r}; choose one of {converter.QUANTIZATIONS}")
    _check_settings(sequence_length, num_calibration, num_eval, max_accuracy_drop, latency_repeats)
    if eval_records is not None and not eval_records:
        raise ExportError("eval_records is empty; give held-out records, or None for the built-in corpus")
    unknown = sorted(set(server_formats) - set(servers.SERVER_FORMATS))
    if unknown:
        raise ValueError(f"server_formats {unknown}; choose from {servers.SERVER_FORMATS}")
    loaded = _as_loaded(model, vocabulary, labels)
    graphs.check_exportable(loaded.model)
    _check_tokenizer_inside(loaded, with_tokenizer, quantization)
    unservable = mediapipe.unservable_reason(
        loaded.model, loaded.tokenizer, with_tokenizer, with_pair, loaded.labels, dynamic_length
    )
    mediapipe_layout = _check_mediapipe(output, unservable, for_mediapipe, demo)
    calibration_texts = _calibration_texts(loaded, quantization, representative_texts, num_calibration)
    records = (
        eval_records
        if eval_records is not None
        else [{"text": text} for text in evaluation.default_texts(num_eval, skip=num_calibration)]
    )
    label_ids = evaluation.label_ids(records, loaded.labels)
    _check_sequence_length(loaded.model, sequence_length)
    return _Plan(
        loaded=loaded,
        output=output,
        quantization=quantization,
        sequence_length=sequence_length,
        dynamic_length=dynamic_length,
        with_tokenizer=with_tokenizer,
        with_pair=with_pair,
        max_accuracy_drop=max_accuracy_drop,
        latency_repeats=latency_repeats,
        server_formats=tuple(server_formats),
        graph_rewrites=graph_rewrites,
        demo=demo,
        mediapipe_layout=mediapipe_layout,
        unservable=unservable,
        probabilities=loaded.model.mediapipe_task == mediapipe.CLASSIFIER and not with_tokenizer and not logits,
        calibration_texts=calibration_texts,
        records=records,
        label_ids=label_ids,
    )


def _check_tokenizer_inside(loaded, with_tokenizer, quantization):
    """Raises `ExportError` for a string-in file without a vocabulary, or with a calibrated quantization."""
    if with_tokenizer and loaded.tokenizer is None:
        raise ExportError(
            "with_tokenizer needs the model's vocabulary: pass a kbert save folder (vocab.txt) or vocabulary=..."
        )
    if with_tokenizer and quantization in converter.CALIBRATED:
        raise ExportError(
            f"quantization={quantization!r} calibrates in a LiteRT interpreter that lacks the tensorflow-text ops; "
            "export the string-in model as 'dynamic' (int8 weights) or export token ids in with full int8"
        )


def _check_mediapipe(output, unservable, for_mediapipe, demo):
    """Whether the file gets the MediaPipe layout; raises `ExportError` where it is required and impossible."""
    if for_mediapipe and unservable:
        raise ExportError(f"cannot export for MediaPipe: {unservable}; export without for_mediapipe")
    layout = unservable is None and for_mediapipe is not False
    if demo:
        if not layout:
            raise ExportError(
                f"the web demo runs the file in MediaPipe, which cannot serve it: {unservable or 'for_mediapipe=False'}"
            )
        web.check_demo_folder(web.demo_folder(output))
    return layout


def _calibration_texts(loaded, quantization, representative_texts, num_calibration):
    """The calibration texts of a calibrated quantization (default: the built-in corpus), or None."""
    if quantization not in converter.CALIBRATED:
        return None
    if representative_texts is None:
        if loaded.tokenizer is None:
            raise ExportError(
                "full-integer calibration needs real text and the model's vocabulary: pass vocabulary=..."
            )
        representative_texts = evaluation.default_texts(num_calibration)
    texts = [text for text in representative_texts if str(text).strip()]
    if not texts:
        raise ExportError("the representative set is empty; give calibration text (one text a line)")
    return texts


@dataclasses.dataclass
class _Inputs:
    """The TensorFlow function to convert, the eval examples and Keras' outputs on them, calibration data."""

    function: object
    examples: list
    reference: list
    masks: list
    text_checks: dict | None
    representative: object  # a generator function of calibration examples, or None


def _parity_inputs(plan):
    """The function to convert and the examples that verify it (see `_Inputs`)."""
    loaded, length = plan.loaded, plan.sequence_length
    if plan.with_tokenizer:
        function = graphs.text_function(loaded.model, loaded.tokenizer, length, plan.with_pair)
        examples, reference, masks, text_checks = evaluation.string_parity_inputs(loaded, plan.records, length, plan.with_pair)
    else:
        function = graphs.token_ids_function(
            loaded.model, None if plan.dynamic_length else length, probabilities=plan.probabilities
        )
        examples = evaluation.token_examples(loaded, plan.records, length)
        reference = evaluation.keras_outputs(loaded.model, examples, plan.probabilities)
        masks = [example["padding_mask"] for example in examples]
        text_checks = None
    representative = None
    if plan.calibration_texts is not None:
        calibration = evaluation.token_examples(loaded, [{"text": text} for text in plan.calibration_texts], length)

        def representative():
            yield from calibration

    return _Inputs(function, examples, reference, masks, text_checks, representative)


def _convert_and_verify(plan, inputs):
    """Converts with each quantization of the request's fallbacks, until one keeps within the accuracy budget.

    Returns:
        `(attempts, shipped)`: a report entry per attempt; `shipped` is `(quantization, flatbuffer, cosines,
        raw outputs)` of the kept one, or None.
    """
    rewritten = {}
    attempts = []
    for quantization in FALLBACKS.get(plan.quantization, (plan.quantization,)):
        attempt_started = time.perf_counter()
        function, variables, rewrites = inputs.function, plan.loaded.model.weights, None
        if plan.graph_rewrites and not plan.with_tokenizer:
            options = _rewrite_options(quantization)
            if options not in rewritten:
                rewritten[options] = rewrite.rewrite_function(inputs.function, *options)
            function, rewrites = rewritten[options]
            variables = []  # frozen into the rewritten graph
        try:
            flatbuffer = converter.convert_function(
                function, variables, quantization, inputs.representative, custom_ops=plan.with_tokenizer
            )
        except RuntimeError as error:
            # The calibrating quantizer fails on some graphs (16x8 on the int32 index arithmetic of embedding
            # lookups); record it and try the next remedy.
            if quantization not in converter.CALIBRATED:
                raise
            first_line = str(error).strip().splitlines()[0]
            attempts.append({"quantization": quantization, "remedy": REMEDIES.get(quantization), "error": first_line})
            continue
        attempt, cosines, raw = _verify_attempt(plan, inputs, quantization, flatbuffer, rewrites)
        attempt["seconds"] = time.perf_counter() - attempt_started
        attempts.append(attempt)
        if plan.max_accuracy_drop is None or attempt["accuracy_drop_points"] <= plan.max_accuracy_drop:
            return attempts, (quantization, flatbuffer, cosines, raw)
    return attempts, None


def _verify_attempt(plan, inputs, quantization, flatbuffer, rewrites):
    """Runs a converted file on the eval examples against Keras: `(report entry, per-example cosines, raw
    outputs)`."""
    runner = verify.interpreter(flatbuffer, custom_ops=plan.with_tokenizer).get_signature_runner()
    candidate = verify.run_examples(runner, inputs.examples)
    raw = [dict(outputs) for outputs in candidate]
    if plan.with_tokenizer:
        candidate, inputs.text_checks = evaluation.trim_to_real_tokens(
            candidate, inputs.reference, inputs.text_checks, plan.records, plan.loaded.tokenizer
        )
    summary, cosines = verify.compare_outputs(inputs.reference, candidate, inputs.masks)
    summary.pop("token_ids", None)
    task_outputs = [name for name in inputs.reference[0] if name in TASK_OUTPUTS]
    task = (
        verify.task_agreement(inputs.reference, candidate, task_outputs, plan.label_ids, inputs.masks)
        if task_outputs
        else {}
    )
    attempt = {
        "quantization": quantization,
        "remedy": REMEDIES.get(quantization),
        "graph_rewrites": rewrites,
        "file_size_bytes": len(flatbuffer),
        "outputs": summary,
        **task,
        "accuracy_drop_points": verify.accuracy_drop_points(task, summary),
        "latency_ms": verify.median_latency_ms(runner, inputs.examples[0], repeats=plan.latency_repeats),
        "op_counts": dict(converter.op_counts(flatbuffer).most_common()),
    }
    return attempt, cosines, raw


def _server_reports(plan, inputs):
    """The server formats asked for, written and checked (`kbert.export.servers`), or None."""
    if not plan.server_formats:
        return None
    loaded = plan.loaded
    if plan.with_tokenizer:
        examples = evaluation.token_examples(loaded, plan.records, plan.sequence_length)
        reference = evaluation.keras_outputs(loaded.model, examples)
    else:
        examples, reference = inputs.examples, inputs.reference
    masks = [example["padding_mask"] for example in examples]
    return servers.export_servers(
        loaded.model, plan.output, plan.server_formats, examples, reference, masks, latency_repeats=plan.latency_repeats
    )


def _report(plan, inputs, attempts, shipped, server_reports):
    """The report of an export: its settings, every attempt, and the shipped attempt's figures."""
    loaded = plan.loaded
    report = {
        "name": os.path.basename(plan.output),
        "source": loaded.source,
        "model_class": type(loaded.model).__name__,
        "requested": plan.quantization,
        "shipped": shipped[0] if shipped else None,
        "remedy": REMEDIES.get(shipped[0]) if shipped else None,
        "with_tokenizer": plan.with_tokenizer,
        "sequence_length": plan.sequence_length,
        "dynamic_length": plan.dynamic_length and not plan.with_tokenizer,
        "num_eval_examples": len(inputs.examples),
        "num_calibration_texts": len(plan.calibration_texts or []),
        "eval_inputs": "token ids of real text" if loaded.tokenizer is not None else "random token ids (no vocabulary)",
        "max_accuracy_drop": plan.max_accuracy_drop,
        "keras_float32_weights_bytes": int(sum(np.prod(w.shape) * 4 for w in loaded.model.weights)),
        "latency_setup": f"median of {plan.latency_repeats} calls, batch 1, {verify.LATENCY_THREADS} threads",
        "attempts": attempts,
        "tokenizer_checks": inputs.text_checks,
        "servers": server_reports,
    }
    if shipped:
        best = attempts[-1]
        shown = SHIPPED_FIGURES + tuple(key for key in TASK_FIGURES if key in best)
        report.update({key: best[key] for key in shown})
        report["per_example_cosine"] = shipped[2][next(iter(best["outputs"]))]
    return report


def _fail(plan, report, attempts):
    """Writes the report of an export that kept no file, and raises its `ExportError`."""
    tried = "; ".join(
        f"{a['quantization']}: " + (f"drop {a['accuracy_drop_points']:.2f}" if "error" not in a else a["error"])
        for a in attempts
    )
    kept = " (the file already there is left as it was)" if os.path.exists(plan.output) else ""
    report["error"] = (
        f"no LiteRT file kept within max_accuracy_drop={plan.max_accuracy_drop} points ({tried}); nothing written "
        f"to {plan.output!r}{kept}, see {plan.report_path}. Try another quantization, more calibration text, or a "
        f"larger budget"
    )
    verify.write_report(report, plan.report_path)
    raise ExportError(report["error"])


def _ship(plan, inputs, report, shipped):
    """Adds the metadata, checks the final bytes, then writes the file, the demo and the report, in that order."""
    loaded = plan.loaded
    data = _with_metadata(loaded, report, plan.with_tokenizer, plan.with_pair, shipped[1], plan.mediapipe_layout)
    _check_unchanged(data, inputs.examples, shipped[3], plan.with_tokenizer)
    report["mediapipe"] = _mediapipe_report(
        loaded, data, plan.records, inputs.examples, inputs.reference, plan.sequence_length,
        plan.mediapipe_layout, plan.unservable,
    )  # fmt: skip
    _remove_report(plan.report_path)  # an earlier export's: from here until the new one is written there is none
    write_bytes(data, plan.output)
    if plan.demo:
        report["demo"] = web.write_demo(
            web.demo_folder(plan.output),
            data,
            loaded.model.mediapipe_task,
            f"{os.path.basename(plan.output)}: kbert {type(loaded.model).__name__} in MediaPipe Tasks for Web",
        )
    verify.write_report(report, plan.report_path)
    return report


def _rewrite_options(quantization):
    """`rewrite.rewrite_function`'s (mask_logit, split_squared_difference) for a quantization."""
    quantized_softmax = quantization in ("int8", "16x8")
    mask_logit = QUANTIZED_MASK_LOGIT if quantized_softmax else rewrite.FLOAT_MASK_LOGIT
    return mask_logit, quantization == "16x8"


def _as_loaded(model, vocabulary, labels):
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, str | os.PathLike):
        loaded = load_model(model, vocabulary=vocabulary)
        if labels is not None:
            loaded.labels = list(labels)
        return loaded
    return wrap_model(model, labels=labels, vocabulary=vocabulary)


def _check_settings(sequence_length, num_calibration, num_eval, max_accuracy_drop, latency_repeats):
    counts = dict(
        sequence_length=sequence_length,
        num_calibration=num_calibration,
        num_eval=num_eval,
        latency_repeats=latency_repeats,
    )
    for name, value in counts.items():
        if not (isinstance(value, int | np.integer) and value >= 1):
            raise ValueError(f"{name}={value!r}; it must be a whole number >= 1")
    if max_accuracy_drop is not None and math.isnan(max_accuracy_drop):
        raise ValueError("max_accuracy_drop=nan; give a number of points, or None for no limit")


def _check_sequence_length(model, sequence_length):
    config = getattr(getattr(model, "backbone", model), "config", None)
    longest = getattr(config, "max_sequence_length", None)
    if longest is not None and sequence_length > longest:
        raise ValueError(
            f"sequence_length={sequence_length} > the model's max_sequence_length {longest}; give at most {longest}"
        )


def _check_writable(output):
    """Refuses an output path that cannot be written, without creating or changing anything."""
    if os.path.isdir(output):
        raise ExportError(f"output {output!r} is a folder; give the .tflite file's path")
    folder = os.path.dirname(os.path.abspath(output))
    while not os.path.exists(folder):  # the nearest existing folder above: makedirs creates the rest
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise ExportError(f"cannot write the output {output!r}: {folder!r} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write the output {output!r}: {folder!r} is not writable")


def _remove_report(report_path):
    # The JSON first: a chart without its JSON is no report of anything.
    chart = report_path[: -len(".json")] + ".png"
    for path in (report_path, chart):
        if os.path.exists(path):
            os.remove(path)


def _metadata(loaded, report, with_tokenizer, with_pair):
    model = loaded.model
    config = {
        "model_class": type(model).__name__,
        "quantization": report["shipped"],
        "sequence_length": report["sequence_length"],
        "dynamic_length": report["dynamic_length"],
        "inputs": ["text"] + (["text_pair"] if with_pair else [])
        if with_tokenizer
        else ["token_ids", "segment_ids", "padding_mask"],
        "outputs": list(report["outputs"]) + (["token_ids"] if with_tokenizer else []),
        "labels": loaded.labels,
    }
    entries = {}
    if loaded.tokenizer is not None:
        tokenizer = loaded.tokenizer
        config["tokenizer"] = {
            **tokenizer.get_config(),
            "special_token_ids": dict(tokenizer.special_token_ids),
            "vocabulary_size": tokenizer.vocabulary_size,
        }
        entries[METADATA_VOCABULARY] = ("\n".join(tokenizer.vocabulary) + "\n").encode("utf-8")
    if loaded.labels is not None:
        entries[METADATA_LABELS] = json.dumps(loaded.labels).encode("utf-8")
    entries[METADATA_CONFIG] = json.dumps(config, indent=1).encode("utf-8")
    return entries


def _with_metadata(loaded, report, with_tokenizer, with_pair, flatbuffer, mediapipe_layout):
    """The shipped file's bytes: kbert's metadata entries, and for MediaPipe its input order, `TFLITE_METADATA`
    and the packed vocabulary and label files."""
    entries = _metadata(loaded, report, with_tokenizer, with_pair)
    if not mediapipe_layout:
        return converter.add_metadata(flatbuffer, entries)
    output = next(iter(report["outputs"]))
    labels = loaded.labels if loaded.model.mediapipe_task == mediapipe.CLASSIFIER else None
    described = {
        graphs.PROBABILITY: "class probabilities (softmax), by the label file's order",
        "logits": "class logits (no softmax), by the label file's order",
        "embedding": "the text's embedding",
    }
    entries[mediapipe.METADATA_NAME] = mediapipe.model_metadata(
        name=os.path.splitext(report["name"])[0],
        description=f"kbert {report['model_class']}, {report['shipped']}",
        output_name=output,
        output_description=described[output],
        labels=labels,
    )
    data = converter.add_metadata(mediapipe.order_inputs(flatbuffer), entries)
    return mediapipe.pack_files(data, mediapipe.associated_files(loaded.tokenizer, labels))


def _check_unchanged(data, examples, verified, with_tokenizer):
    """Runs the final bytes (metadata added) and requires the outputs that were verified, unchanged."""
    runner = verify.interpreter(data, custom_ops=with_tokenizer).get_signature_runner()
    for example, expected in zip(examples, verified, strict=True):
        result = runner(**example)
        for name, value in expected.items():
            if name in result and not np.array_equal(np.asarray(result[name]), np.asarray(value)):
                raise ExportError(
                    f"the file's output {name!r} changed when its metadata was added; please report it"
                )


def _mediapipe_report(loaded, data, records, examples, reference, sequence_length, layout, unservable):
    """The report's "mediapipe" section: which runtimes load the file, how MediaPipe's tokenizer agrees with kbert's
    on the eval texts, and (with the `mediapipe` package) the file run in MediaPipe on the raw eval texts."""
    if not layout:
        reason = unservable or "not asked for (for_mediapipe=False)"
        return {"ready": False, "reason": reason, "runtimes": ["LiteRT interpreter"]}
    task = loaded.model.mediapipe_task
    texts = [record["text"] for record in records]
    kbert_ids = np.concatenate([example["token_ids"] for example in examples])
    agreement, agree = mediapipe.tokenizer_agreement(texts, loaded.tokenizer, kbert_ids, sequence_length)
    output = next(iter(reference[0]))
    keras_outputs = np.concatenate([item[output] for item in reference])
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.tflite")
        with open(path, "wb") as file:
            file.write(data)
        runtime = mediapipe.runtime_report(path, texts, task, keras_outputs, agree, loaded.labels)
    return {
        "ready": True,
        "runtimes": ["LiteRT interpreter", f"MediaPipe Tasks {task}"]
        + (["TFLite Task Library BertNLClassifier"] if output == graphs.PROBABILITY else []),
        "scores": "probabilities" if output == graphs.PROBABILITY else output,
        "tokenizer_agreement": agreement,
        "runtime": runtime,
    }
