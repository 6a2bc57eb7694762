"""Running a LiteRT file in `ai_edge_litert` and measuring it against the Keras model: parity, task agreement,
latency; the `<name>.report.json` and the PNG chart.
"""

import statistics
import time

import numpy as np

from kbert.files import atomic_write, write_json

LATENCY_THREADS = 2


def interpreter(flatbuffer, num_threads=LATENCY_THREADS, custom_ops=False):
    """An `ai_edge_litert` interpreter for `flatbuffer`; `custom_ops` registers tensorflow-text's ops."""
    from ai_edge_litert import interpreter as litert

    if custom_ops:
        import tensorflow_text

        return litert.InterpreterWithCustomOps(
            model_content=flatbuffer,
            num_threads=num_threads,
            custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS,
        )
    return litert.Interpreter(model_content=flatbuffer, num_threads=num_threads)


def run_examples(runner, examples):
    """Runs the signature runner once per example (a dict of arrays with a batch dim); returns a list of dicts."""
    return [runner(**example) for example in examples]


def median_latency_ms(runner, example, repeats=30, warmup=3):
    """Median wall time in milliseconds of one call with `example` (batch 1)."""
    for _ in range(warmup):
        runner(**example)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner(**example)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def _cosine(a, b):
    a, b = a.reshape(-1).astype("float64"), b.reshape(-1).astype("float64")
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return 1.0 if denominator == 0 else float(a @ b / denominator)


def compare_outputs(reference, candidate, masks=None):
    """Parity of two lists of per-example output dicts (same keys).

    Args:
        reference, candidate: lists of `{name: array [1, ...]}`.
        masks: optional per-example padding masks [1, seq]; per-token outputs are compared on real tokens only
            (what padding positions hold is no output a user reads).

    Returns:
        `{name: {"max_abs_diff", "mean_cosine", "min_cosine"}}` and per-example cosines `{name: [...]}`.
    """
    summary, cosines = {}, {}
    for name in reference[0]:
        deltas, values = [], []
        for index, (ref, cand) in enumerate(zip(reference, candidate, strict=True)):
            ref, cand = np.asarray(ref[name], "float32"), np.asarray(cand[name], "float32")
            if (
                masks is not None
                and ref.ndim >= 2
                and ref.shape[1] == masks[index].shape[1]
                and name != "token_ids"
            ):
                real = masks[index][0].astype(bool)
                ref, cand = ref[:, real], cand[:, real]
            deltas.append(float(np.max(np.abs(ref - cand))) if ref.size else 0.0)
            values.append(_cosine(ref, cand))
        summary[name] = {
            "max_abs_diff": max(deltas),
            "mean_cosine": float(np.mean(values)),
            "min_cosine": float(np.min(values)),
        }
        cosines[name] = values
    return summary, cosines


def task_agreement(reference, candidate, task_outputs, labels=None, masks=None):
    """Argmax agreement (and accuracy when `labels` are given) on the task outputs.

    Per-token outputs ([1, seq, classes] logits, [1, seq] span logits) agree position by position over real
    tokens (token logits) or as the argmax position (span logits). Returns a dict of fractions in [0, 1].
    """
    agree, total, correct_reference, correct_candidate = 0, 0, 0, 0
    for index, (ref_out, cand_out) in enumerate(zip(reference, candidate, strict=True)):
        for name in task_outputs:
            ref, cand = np.asarray(ref_out[name]), np.asarray(cand_out[name])
            ref_arg, cand_arg = ref.argmax(-1).reshape(-1), cand.argmax(-1).reshape(-1)
            if ref.ndim == 3 and masks is not None:
                real = masks[index][0].astype(bool)
                ref_arg, cand_arg = ref_arg[real], cand_arg[real]
            agree += int(np.sum(ref_arg == cand_arg))
            total += ref_arg.size
            if (
                labels is not None
                and ref.ndim == 2
                and ref.shape[0] == 1
                and name in ("logits", "probability")
            ):
                correct_reference += int(ref_arg[0] == labels[index])
                correct_candidate += int(cand_arg[0] == labels[index])
    result = {"argmax_agreement": agree / max(total, 1)}
    if labels is not None and len(labels):
        result["keras_accuracy"] = correct_reference / len(labels)
        result["litert_accuracy"] = correct_candidate / len(labels)
    return result


def accuracy_drop_points(task, summary):
    """The number `--max-accuracy-drop` is held to, in percentage points.

    Accuracy lost against labels when there are labels; else the argmax disagreement (classifiers, taggers, QA);
    else, for embeddings and hidden states, 100 x (1 - mean cosine) of the first output.
    """
    if "keras_accuracy" in task:
        return 100.0 * (task["keras_accuracy"] - task["litert_accuracy"])
    if "argmax_agreement" in task:
        return 100.0 * (1.0 - task["argmax_agreement"])
    first = next(iter(summary.values()))
    return 100.0 * (1.0 - first["mean_cosine"])


def write_report(report, path):
    """Writes `report` as JSON at `path` and a PNG chart next to it (`<name>.report.png`).

    Each file is written atomically; the chart first, so a JSON report on disk always has its chart.
    """
    chart = path[: -len(".json")] + ".png" if path.endswith(".json") else path + ".png"
    write_chart(report, chart)
    write_json(report, path, default=_json_default)
    return path, chart


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to the report")


def write_chart(report, path):
    """A PNG: per-example cosine of the main output, and the attempts' size, latency and accuracy drop."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attempts = report["attempts"]
    figure, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    cosines = report.get("per_example_cosine") or [1.0]
    # One bin when the cosines are (nearly) equal: NumPy cannot cut a range of ~1e-16 into 20 bins.
    axes[0].hist(cosines, bins=20 if np.ptp(cosines) > 1e-6 else 1, color="tab:blue")
    axes[0].set_title(f"cosine to Keras per example ({report['shipped'] or 'nothing shipped'})")
    names = [attempt["quantization"] for attempt in attempts]
    for axis, key, title in (
        (axes[1], "file_size_bytes", "file size (MB)"),
        (axes[2], "latency_ms", f"latency ms (batch 1, {LATENCY_THREADS} threads)"),
        (axes[3], "accuracy_drop_points", "accuracy drop (points)"),
    ):
        values = [attempt.get(key) or 0 for attempt in attempts]
        if key == "file_size_bytes":
            values = [value / 1e6 for value in values]
        colors = ["tab:green" if name == report["shipped"] else "tab:gray" for name in names]
        axis.bar(names, values, color=colors)
        axis.set_title(title)
        for index, value in enumerate(values):
            axis.text(index, value, f"{value:.3g}", ha="center", va="bottom", fontsize=8)
    if report.get("max_accuracy_drop") is not None:
        axes[3].axhline(report["max_accuracy_drop"], color="tab:red", linestyle="--")
    figure.suptitle(f"{report['name']}: {report['model_class']} → LiteRT", fontsize=10)
    figure.tight_layout()
    try:
        atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=80))  # its suffix names the format
    finally:
        plt.close(figure)
    return path
