"""Distillation benchmark: a fine-tuned teacher and its distilled student as LiteRT int8 files, side by side.

    python bench/distill.py --teacher runs/teacher --student runs/distill/student --dev dev.jsonl [--seq-len 64]

Both are kbert save folders (the student: `export/distill.py`'s DIR/student). Each is exported with
`kbert.export.export_litert` at dynamic-range int8 and at full int8 (the exporter's remedies within its 1-point
budget), checked on `--num-eval` dev records (the file's accuracy), and all files are timed in one interleaved loop
(batch 1, `--seq-len`, 2 threads: the median wall ms of consecutive calls and of the first call after a pause; and
the calling thread's CPU ms of a 1-thread call; see edge.time_all) on real dev text. Keras dev accuracy on the
whole dev file comes from the distillation run's metrics.json when it sits next to the student folder. Goals (edge issue): the student has >= 4x fewer parameters, its int8 latency is >= 3x
lower than the teacher's, and it keeps >= 97 % of the teacher's dev accuracy.
"""

import argparse
import json
import os
import sys
import tempfile

os.environ["KERAS_BACKEND"] = "tensorflow"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RESULTS, ratio  # noqa: E402
from edge import THREADS, litert_factory, time_all  # noqa: E402

GOALS = {"parameters": 4.0, "latency": 3.0, "accuracy_retained": 0.97}


def export_files(name, folder, dev_records, seq_len, num_eval, workdir):
    """{row name: (runner factory, row)} for the model's dynamic and full int8 files."""
    from kbert.export import ExportError, export_litert, load_model

    loaded = load_model(folder)
    entries = {}
    for quantization in ("dynamic", "int8"):
        path = os.path.join(workdir, f"{name}_{quantization}.tflite")
        try:
            report = export_litert(
                loaded, path, quantization, seq_len, eval_records=dev_records[:num_eval], latency_repeats=3,
                representative_texts=[record["text"] for record in dev_records[-200:]],
            )  # fmt: skip
        except ExportError as error:
            entries[f"{name} {quantization}"] = (None, {"error": str(error)[:300]})
            continue
        with open(path, "rb") as file:
            factory = litert_factory(file.read())
        row = {
            "parameters": int(loaded.model.count_params()),
            "shipped": report["shipped"],
            "file_size_bytes": report["file_size_bytes"],
            "litert_accuracy": report.get("litert_accuracy"),
            "keras_accuracy_same_records": report.get("keras_accuracy"),
        }
        entries[f"{name} {quantization}"] = (factory, row)
    return loaded, entries


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="the teacher's kbert save folder")
    parser.add_argument("--student", required=True, help="the student's kbert save folder")
    parser.add_argument("--dev", required=True, help="dev records (JSONL/CSV with text and label)")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--num-eval", type=int, default=500, help="dev records each .tflite is checked on")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--output", default=os.path.join(RESULTS, "distill.json"))
    args = parser.parse_args()
    from kbert.data.records import read_records
    from kbert.export.evaluation import token_examples

    dev_records = read_records(args.dev)
    rows, runners = {}, {}
    with tempfile.TemporaryDirectory() as workdir:
        for name, folder in (("teacher", args.teacher), ("student", args.student)):
            loaded, entries = export_files(name, folder, dev_records, args.seq_len, args.num_eval, workdir)
            # Every file is timed on the same real dev sentence, tokenized by its own model's tokenizer.
            example = token_examples(loaded, dev_records[:1], args.seq_len)[0]
            for row_name, (factory, row) in entries.items():
                rows[row_name] = row
                if factory is not None:
                    multi, single = factory(THREADS), factory(1)
                    runners[row_name] = (
                        lambda x, f=multi, e=example: f(e),
                        lambda x, f=single, e=example: f(e),
                    )
        timings = time_all(runners, None, rounds=args.rounds)
    for name, timing in timings.items():
        rows[name].update(timing)

    metrics_path = os.path.join(os.path.dirname(os.path.abspath(args.student)), "metrics.json")
    keras_accuracy = {}
    if os.path.isfile(metrics_path):
        with open(metrics_path, encoding="utf-8") as file:
            metrics = json.load(file)
        keras_accuracy = {role: metrics.get(f"{role}_dev_accuracy") for role in ("teacher", "student")}

    def value(name, key):
        return rows.get(name, {}).get(key)

    summary = {
        "parameters_fewer": ratio(
            value("teacher dynamic", "parameters"), value("student dynamic", "parameters")
        ),
        "accuracy_retained_keras": ratio(keras_accuracy.get("student"), keras_accuracy.get("teacher")),
    }
    for quantization in ("dynamic", "int8"):
        summary[f"latency_lower_{quantization}"] = ratio(
            value(f"teacher {quantization}", "latency_ms"), value(f"student {quantization}", "latency_ms")
        )
        summary[f"accuracy_retained_litert_{quantization}"] = ratio(
            value(f"student {quantization}", "litert_accuracy"),
            value(f"teacher {quantization}", "litert_accuracy"),
        )
    lines = [
        "| model | params | file MB | latency ms (2 threads) | first call after idle ms | CPU ms (1 thread) | "
        "LiteRT dev acc | Keras dev acc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error'][:100]} | | | | | | |")
            continue
        shipped = f" (shipped {row['shipped']})" if row["shipped"] not in name else ""
        keras = keras_accuracy.get(name.split()[0])
        lines.append(
            f"| {name}{shipped} | {row['parameters'] / 1e6:.2f}M | {row['file_size_bytes'] / 1e6:.2f} | "
            f"{row['latency_ms']:.2f} | {row['first_call_ms']:.2f} | {row['cpu_ms_1_thread']:.2f} | {row['litert_accuracy']:.4f} | "
            + (f"{keras:.4f} |" if keras is not None else "|")
        )
    print("\n".join(lines))
    print(json.dumps(summary, indent=2))
    print(f"goals: parameters >= {GOALS['parameters']}x fewer, latency >= {GOALS['latency']}x lower, accuracy "
          f">= {GOALS['accuracy_retained']:.0%} of the teacher's")  # fmt: skip
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as file:
        json.dump(
            {"rows": rows, "summary": summary, "goals": GOALS, "keras_dev_accuracy": keras_accuracy, "seq_len":
             args.seq_len, "num_eval": args.num_eval, "table": "\n".join(lines)}, file, indent=2,
        )  # fmt: skip


if __name__ == "__main__":
    main()
